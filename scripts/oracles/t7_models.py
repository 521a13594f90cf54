#!/usr/bin/python3
"""
FastPhotoStyle's Google Drive models.zip in its published form, at narrow widths: the Torch7 networks
its converter.py reads (models/vgg_normalised_conv{L}_1_mask.t7, models/feature_invertor_conv{L}_1_mask.t7,
L = 1..4), holding the same deterministic weights as photo_wct_small.pth (photowct_oracle.py: seed 11,
widths 4/8/16/32), so the studio's .t7 route can be checked against its .pth route bit for bit.

The files are written by this script's own implementation of torch7's File.lua writeObject (binary,
little-endian, int 4 bytes, long 8), independent of the studio's TypeScript reader:
  nil 0 | number 1: double | string 2: int n, bytes | boolean 5: int
  table 3: int ref, int n, n x (key, value) | torch 4: int ref, "V 1", class name, then
  tensor: int ndim, long size[], long stride[], long offset+1, storage object; storage: long n, raw;
  other classes (nn modules): their fields as one table object.
A second occurrence of an object is its ref only (a shared storage, a module referenced twice).

The networks are laid out as the Lua models are (the indices converter.py uses): the encoder is
nn.Sequential(conv0 1x1, then per conv: SpatialReflectionPadding, SpatialConvolution, ReLU, with
SpatialMaxPooling after conv1_2, conv2_2, conv3_4); the decoder the mirror with SpatialMaxUnpooling that
references a pooling module. To exercise the format as real files use it: the encoders' parameters are
views into one flat storage (as after Torch's getParameters()), decoder 2 is a CudaTensor network, and
decoder 1 is written without version strings (files from before torch7's versioning).

Writes test/fixtures/parity/photowct_small_models.zip. Run by hand: scripts/oracles/t7_models.py
"""
import io
import os
import struct
import zipfile

import numpy as np

import detweights as dw
from common import FIXTURES

SEED = 11
SMALL = [4, 8, 16, 32, 32]

# converter.py's module indices (0-based, as torch.legacy's Sequential.get).
ENCODER_INDEX = {'conv0': 0, 'conv1_1': 2, 'conv1_2': 5, 'conv2_1': 9, 'conv2_2': 12, 'conv3_1': 16,
                 'conv3_2': 19, 'conv3_3': 22, 'conv3_4': 25, 'conv4_1': 29}
DECODER_INDEX = {
    1: {'conv1_1': 1},
    2: {'conv2_1': 1, 'conv1_2': 5, 'conv1_1': 8},
    3: {'conv3_1': 1, 'conv2_2': 5, 'conv2_1': 8, 'conv1_2': 12, 'conv1_1': 15},
    4: {'conv4_1': 1, 'conv3_4': 5, 'conv3_3': 8, 'conv3_2': 11, 'conv3_1': 14, 'conv2_2': 18,
        'conv2_1': 21, 'conv1_2': 25, 'conv1_1': 28},
}


class Table:
    def __init__(self, items):
        self.items = list(items)


class Obj:
    def __init__(self, cls, fields, version=1):
        self.cls, self.fields, self.version = cls, fields, version


class Storage:
    def __init__(self, cls, arr):
        self.cls, self.arr = cls, arr


class Tensor:
    def __init__(self, cls, shape, storage, offset=0, strides=None):
        self.cls, self.shape, self.storage, self.offset = cls, list(shape), storage, offset
        if strides is None:
            strides, s = [], 1
            for d in reversed(self.shape):
                strides.insert(0, s)
                s *= d
        self.strides = strides


class Writer:
    def __init__(self, versioned=True):
        self.out = io.BytesIO()
        self.refs = {}
        self.versioned = versioned

    def i32(self, v):
        self.out.write(struct.pack('<i', v))

    def i64(self, v):
        self.out.write(struct.pack('<q', v))

    def raw_string(self, s):
        b = s.encode('latin1')
        self.i32(len(b))
        self.out.write(b)

    def ref(self, obj):
        """Writes the ref; True when the object itself follows (first occurrence)."""
        if id(obj) in self.refs:
            self.i32(self.refs[id(obj)][0])
            return False
        # The object is kept alive with its ref: a freed temporary's id could be reused by another object.
        self.refs[id(obj)] = (len(self.refs) + 1, obj)
        self.i32(self.refs[id(obj)][0])
        return True

    def write(self, v):
        if v is None:
            self.i32(0)
        elif isinstance(v, bool):
            self.i32(5)
            self.i32(1 if v else 0)
        elif isinstance(v, (int, float)):
            self.i32(1)
            self.out.write(struct.pack('<d', float(v)))
        elif isinstance(v, str):
            self.i32(2)
            self.raw_string(v)
        elif isinstance(v, Table):
            self.i32(3)
            if self.ref(v):
                self.i32(len(v.items))
                for k, x in v.items:
                    self.write(k)
                    self.write(x)
        else:
            self.i32(4)
            if not self.ref(v):
                return
            if self.versioned:
                self.raw_string('V %d' % (v.version if isinstance(v, Obj) else 1))
            self.raw_string(v.cls)
            if isinstance(v, Storage):
                self.i64(v.arr.size)
                self.out.write(v.arr.astype('<' + v.arr.dtype.str[1:]).tobytes())
            elif isinstance(v, Tensor):
                self.i32(len(v.shape))
                for d in v.shape:
                    self.i64(d)
                for s in v.strides:
                    self.i64(s)
                self.i64(v.offset + 1)
                self.write(v.storage)
            else:
                self.write(Table(v.fields))


def empty(cls):
    return Tensor(cls, [], None)


def module(cls, fields, tensor_cls):
    base = [('output', empty(tensor_cls)), ('gradInput', empty(tensor_cls)), ('train', False), ('_type', tensor_cls)]
    return Obj(cls, fields + base)


def conv(w, b, tensor_cls, views=None):
    o, i, kh, kw = w.shape
    if views is None:
        storage_cls = tensor_cls.replace('Tensor', 'Storage')
        weight = Tensor(tensor_cls, w.shape, Storage(storage_cls, w.reshape(-1).copy()))
        bias = Tensor(tensor_cls, b.shape, Storage(storage_cls, b.copy()))
    else:
        weight, bias = views
    return module('nn.SpatialConvolution', [
        ('nInputPlane', i), ('nOutputPlane', o), ('kW', kw), ('kH', kh), ('dW', 1), ('dH', 1),
        ('padW', 0), ('padH', 0), ('weight', weight), ('bias', bias),
        ('gradWeight', Tensor(tensor_cls, w.shape, Storage(tensor_cls.replace('Tensor', 'Storage'), np.zeros(w.size, np.float32)))),
        ('gradBias', Tensor(tensor_cls, b.shape, Storage(tensor_cls.replace('Tensor', 'Storage'), np.zeros(b.size, np.float32)))),
    ], tensor_cls)


def pad(tensor_cls):
    return module('nn.SpatialReflectionPadding', [('pad_l', 1), ('pad_r', 1), ('pad_t', 1), ('pad_b', 1)], tensor_cls)


def relu(tensor_cls):
    return module('nn.ReLU', [('threshold', 0), ('val', 0), ('inplace', False)], tensor_cls)


def pool(tensor_cls):
    return module('nn.SpatialMaxPooling', [('kW', 2), ('kH', 2), ('dW', 2), ('dH', 2), ('padW', 0), ('padH', 0),
                                          ('ceil_mode', False), ('indices', empty('torch.LongTensor'))], tensor_cls)


def sequential(mods, tensor_cls):
    return module('nn.Sequential', [('modules', Table([(k + 1, m) for k, m in enumerate(mods)]))], tensor_cls)


def encoder(level, enc):
    """nn.Sequential to conv{level}_1; every parameter a view into one flat FloatStorage (getParameters)."""
    names = ['conv0'] + dw.photo_encoder_convs(level)
    flat = np.concatenate([np.concatenate([enc[n][0].reshape(-1), enc[n][1]]) for n in names]).astype(np.float32)
    storage = Storage('torch.FloatStorage', flat)
    views, at = {}, 0
    for n in names:
        w, b = enc[n]
        views[n] = (Tensor('torch.FloatTensor', w.shape, storage, at), Tensor('torch.FloatTensor', b.shape, storage, at + w.size))
        at += w.size + b.size
    t = 'torch.FloatTensor'
    mods = [conv(*enc['conv0'], t, views['conv0'])]
    for n in dw.photo_encoder_convs(level):
        mods += [pad(t), conv(*enc[n], t, views[n]), relu(t)]
        if n in ('conv1_2', 'conv2_2', 'conv3_4'):
            mods.append(pool(t))
    for n, i in ENCODER_INDEX.items():
        if i < len(mods) and n in names:
            assert mods[i].cls == 'nn.SpatialConvolution' and mods[i].fields[8][1] is views[n][0], (level, n, i)
    return sequential(mods, t)


def decoder(level, dec, tensor_cls):
    mods = []
    for n in dw.photo_decoder_convs(level):
        w, b = dec[n]
        mods += [pad(tensor_cls), conv(w, b, tensor_cls)]
        if n != 'conv1_1':
            mods.append(relu(tensor_cls))
        if n in ('conv4_1', 'conv3_1', 'conv2_1'):
            mods.append(module('nn.SpatialMaxUnpooling', [('pooling', pool(tensor_cls))], tensor_cls))
    for n, i in DECODER_INDEX[level].items():
        assert mods[i].cls == 'nn.SpatialConvolution' and mods[i].fields[0][1] == dec[n][0].shape[1], (level, n, i)
    return sequential(mods, tensor_cls)


def t7(obj, versioned=True):
    w = Writer(versioned)
    w.write(obj)
    return w.out.getvalue()


def main():
    weights = dw.photo_wct_weights(SEED, SMALL)
    path = os.path.join(FIXTURES, 'photowct_small_models.zip')
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:
        for level in (1, 2, 3, 4):
            z.writestr('models/vgg_normalised_conv%d_1_mask.t7' % level, t7(encoder(level, weights['e'])))
            cls = 'torch.CudaTensor' if level == 2 else 'torch.FloatTensor'
            z.writestr('models/feature_invertor_conv%d_1_mask.t7' % level, t7(decoder(level, weights['d'][level], cls), versioned=level != 1))
    print('wrote', path, os.path.getsize(path), 'bytes')


if __name__ == '__main__':
    main()
