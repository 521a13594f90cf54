import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vgg19Convs, torchvisionIndex, kerasName, TINY_WIDTHS, isFeatureName } from '../../../src-main/engine/models/vgg19.ts';

test('the layer table has the 16 convs of VGG19 with their channels', () => {
  const convs = vgg19Convs();
  assert.equal(convs.length, 16);
  assert.deepEqual(convs.map((c) => c.outChannels), [64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512]);
  assert.equal(convs[2].inChannels, 64);
  const params = convs.reduce((s, c) => s + 9 * c.inChannels * c.outChannels + c.outChannels, 0);
  assert.ok(params > 20.0e6 && params < 20.1e6, `about 20 M parameters, got ${params}`);
});

test('torchvision and Keras names match the published files', () => {
  assert.deepEqual(
    vgg19Convs().map((c) => torchvisionIndex(c.name)),
    [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34],
  );
  assert.equal(kerasName('conv4_3'), 'block4_conv3');
  assert.equal(vgg19Convs(TINY_WIDTHS).at(-1)?.outChannels, 64);
  assert.ok(isFeatureName('relu4_2') && isFeatureName('pool3') && !isFeatureName('relu2_3'));
});
