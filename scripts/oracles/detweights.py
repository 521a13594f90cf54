#!/usr/bin/python3
"""
Deterministic weights shared by the PyTorch oracles and the TypeScript parity tests
(test/engine/parity/detweights.ts is the same definition, line for line).

Full-width VGG19 weights (80 MB) cannot be committed, so both sides generate identical ones from a
seed with integer arithmetic only:

  mix32(h)      murmur3's 32-bit finaliser: h ^= h>>16; h *= 0x85ebca6b; h ^= h>>13; h *= 0xc2b2ae35;
                h ^= h>>16 (all mod 2^32)
  key(seed, t)  mix32(mix32(seed) ^ t)                           t: the tensor's index
  h(seed, t, i) mix32((key(seed, t) + i * 0x9e3779b9) mod 2^32)  i: the element's index
  u             (h >> 8) / 2^24, in [0, 1), exact in float64

  kernel element i: float32((2u - 1) * a),  a = sqrt(6 / fan_in) * gain   (float64; He-uniform when gain 1)
  bias element i:   float32((2u - 1) * 0.01 + offset)

Element indices run over the PyTorch layout (OIHW for kernels), C order. Every operation above is a
correctly rounded IEEE operation, so numpy here and JavaScript (Math.imul, >>> 0, Math.fround) give
the same bits; `checksum` (the sum of the float32 bit patterns mod 2^32) lets a test confirm it.

Tensor indices:
  VGG19 conv k (0-based, conv1_1 = 0 ... conv5_4 = 15): kernel t = 2k, bias t = 2k + 1
  PhotoWCT decoder of level L, the layer mirroring VGG conv k: kernel t = 1000 L + 2k, bias + 1
"""
import math

import numpy as np

M32 = np.uint64(0xFFFFFFFF)
GOLDEN = 0x9E3779B9

# VGG19's 16 convolutions: (name, block index 0..4); widths per block come from the caller.
VGG19_CONVS = [
    ('conv1_1', 0), ('conv1_2', 0),
    ('conv2_1', 1), ('conv2_2', 1),
    ('conv3_1', 2), ('conv3_2', 2), ('conv3_3', 2), ('conv3_4', 2),
    ('conv4_1', 3), ('conv4_2', 3), ('conv4_3', 3), ('conv4_4', 3),
    ('conv5_1', 4), ('conv5_2', 4), ('conv5_3', 4), ('conv5_4', 4),
]
TINY_WIDTHS = [8, 16, 32, 64, 64]
FULL_WIDTHS = [64, 128, 256, 512, 512]


def mix32(h):
    """murmur3 fmix32 on uint64 arrays (or ints) holding 32-bit values."""
    h = np.asarray(h, dtype=np.uint64)
    h = h ^ (h >> np.uint64(16))
    h = (h * np.uint64(0x85EBCA6B)) & M32
    h = h ^ (h >> np.uint64(13))
    h = (h * np.uint64(0xC2B2AE35)) & M32
    h = h ^ (h >> np.uint64(16))
    return h


def key(seed, t):
    return int(mix32(int(mix32(seed & 0xFFFFFFFF)) ^ (t & 0xFFFFFFFF)))


def uniforms(seed, t, n):
    """u in [0, 1) for elements 0..n-1 of tensor t (float64, exact)."""
    i = np.arange(n, dtype=np.uint64)
    h = mix32((np.uint64(key(seed, t)) + i * np.uint64(GOLDEN)) & M32)
    return (h >> np.uint64(8)).astype(np.float64) / 16777216.0


def kernel(seed, t, shape, fan_in, gain=1.0):
    a = math.sqrt(6.0 / fan_in) * gain
    n = int(np.prod(shape))
    return ((2.0 * uniforms(seed, t, n) - 1.0) * a).astype(np.float32).reshape(shape)


def bias(seed, t, n, offset=0.0):
    return ((2.0 * uniforms(seed, t, n) - 1.0) * 0.01 + offset).astype(np.float32)


def checksum(arr):
    """Sum of the float32 bit patterns, mod 2^32 (order-independent, exact)."""
    bits = np.ascontiguousarray(arr, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    return int(bits.sum() & M32) if bits.size < (1 << 32) else None


def vgg19_convs(widths):
    """[(name, k, in_channels, out_channels)] for the 16 convs at the given block widths."""
    out = []
    cin = 3
    for k, (name, block) in enumerate(VGG19_CONVS):
        out.append((name, k, cin, widths[block]))
        cin = widths[block]
    return out


def vgg19_weights(seed, widths, upto=None):
    """{name: (kernel OIHW float32, bias float32)} for VGG19's convs (up to and including `upto`)."""
    w = {}
    for name, k, cin, cout in vgg19_convs(widths):
        w[name] = (kernel(seed, 2 * k, (cout, cin, 3, 3), 9 * cin), bias(seed, 2 * k + 1, cout))
        if name == upto:
            break
    return w


# PhotoWCT (FastPhotoStyle): encoders to relu{L}_1 share VGG19's convs up to conv4_1; the decoder of
# level L mirrors its encoder: layer convB_I maps B_I's out -> in channels; the last (conv1_1) outputs
# RGB in [0, 1] linearly. Its gain and bias offset keep the untrained decoders' output in range.
PHOTO_ENCODER = ['conv1_1', 'conv1_2', 'conv2_1', 'conv2_2', 'conv3_1', 'conv3_2', 'conv3_3', 'conv3_4', 'conv4_1']
DECODER_OUT_GAIN = 1.0 / 255.0
DECODER_OUT_OFFSET = 0.5
CAFFE_MEAN_BGR = [103.939, 116.779, 123.68]


def photo_encoder_convs(level):
    return PHOTO_ENCODER[:PHOTO_ENCODER.index('conv%d_1' % level) + 1]


def photo_decoder_convs(level):
    """The decoder's layers in forward order (FastPhotoStyle's VGGDecoder): the encoder's, reversed."""
    return list(reversed(photo_encoder_convs(level)))


def conv0():
    """FastPhotoStyle's conv0 as the published file has it: RGB in [0, 1] -> BGR * 255 - mean."""
    w = np.zeros((3, 3, 1, 1), dtype=np.float32)
    for o in range(3):
        w[o, 2 - o, 0, 0] = 255.0
    b = np.array([-m for m in CAFFE_MEAN_BGR], dtype=np.float32)
    return w, b


def photo_wct_weights(seed, widths):
    """
    {'e': {name: (w, b)} (conv0 and the convs to conv4_1, shared by e1..e4),
     'd': {level: {name: (w, b)}}}, all float32, OIHW.
    """
    convs = {name: (k, cin, cout) for name, k, cin, cout in vgg19_convs(widths)}
    enc = {'conv0': conv0()}
    enc.update(vgg19_weights(seed, widths, upto='conv4_1'))
    dec = {}
    for level in (1, 2, 3, 4):
        d = {}
        for name in photo_decoder_convs(level):
            k, cin, cout = convs[name]
            # Mirror: cout -> cin channels.
            last = name == 'conv1_1'
            gain = DECODER_OUT_GAIN if last else 1.0
            offset = DECODER_OUT_OFFSET if last else 0.0
            d[name] = (kernel(seed, 1000 * level + 2 * k, (cin, cout, 3, 3), 9 * cout, gain),
                       bias(seed, 1000 * level + 2 * k + 1, cin, offset))
        dec[level] = d
    return {'e': enc, 'd': dec}


def photo_wct_state_dict(seed, widths):
    """[(key, array)] in FastPhotoStyle's PhotoWCT.state_dict() order: e1, d1, e2, d2, e3, d3, e4, d4."""
    w = photo_wct_weights(seed, widths)
    out = []
    for level in (1, 2, 3, 4):
        for name in ['conv0'] + photo_encoder_convs(level):
            ww, bb = w['e'][name]
            out.append(('e%d.%s.weight' % (level, name), ww))
            out.append(('e%d.%s.bias' % (level, name), bb))
        for name in photo_decoder_convs(level):
            ww, bb = w['d'][level][name]
            out.append(('d%d.%s.weight' % (level, name), ww))
            out.append(('d%d.%s.bias' % (level, name), bb))
    return out


def deterministic_noise(seed, t, n, amplitude):
    """float32 noise in [-amplitude, amplitude) from the same hash (test inputs)."""
    return ((2.0 * uniforms(seed, t, n) - 1.0) * amplitude).astype(np.float32)


if __name__ == '__main__':
    # Self-check values the TS test also prints: a few hashes and checksums.
    print('u(1, 0, 0..3) =', uniforms(1, 0, 4).tolist())
    w = vgg19_weights(1, TINY_WIDTHS)
    print('tiny conv1_1 kernel checksum', checksum(w['conv1_1'][0]))
