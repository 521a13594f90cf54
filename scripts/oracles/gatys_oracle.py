#!/usr/bin/python3
"""
Oracle for the Gatys losses as jcjohnson/neural-style defines them (neural_style.lua), in PyTorch:
the content, style and TV parts of the loss at neural-style's default layers and weights, and the
gradient of their total with respect to the image, in float64 (the reference) and float32 (to know how
far float32 itself strays). Written from the published definitions:

  network   VGG19's convolutions, 3x3, zero padding 1, ReLU after each; 2x2 max-pool, stride 2, after
            each block, in Caffe's ceil mode (loadcaffe builds them so; the 'odd' case has sizes that
            are not multiples of 16, where ceil and floor differ). Input: neural-style's preprocess
            scales the [0,1] image by 256 (not 255), reorders to BGR and takes off the mean pixel
            (103.939, 116.779, 123.68); with x on the 0-255 scale that is BGR(x * 256/255) - mean.
  content   ContentLoss: w_c * MSE(F, P) = w_c * mean over N*D values of (F - P)^2    (relu4_2)
  style     StyleLoss: G = F F^T / (N*D), w_s * MSE(G, A) = w_s * mean over N^2 of (G - A)^2, per layer
            (relu1_1, relu2_1, relu3_1, relu4_1, relu5_1), each layer weighted w_s
  tv        TVLoss (first module, on the preprocessed image y) writes the gradient of w_tv * 1/2 * sum
            over i < H-1, j < W-1 of (y[i,j] - y[i,j+1])^2 + (y[i,j] - y[i+1,j])^2 (per channel); that is
            the loss used here, y = x * 256/255 (the mean cancels in differences)
  weights   w_c = 5, w_s = 100, w_tv = 1e-3 (neural-style's defaults)

Networks: deterministic weights (detweights.py) at the tiny widths (8/16/32/64/64) and the full ones
(64/128/256/512/512). Inputs: a content photo and a painting from assets/, resized; x = content +
deterministic noise (not the content, so that the content loss and its gradient are not zero).

Writes test/fixtures/parity/gatys.json and gatys-*.bin. Run by hand: scripts/oracles/gatys_oracle.py
"""
import time

import numpy as np
import torch
import torch.nn.functional as F

import detweights as dw
from common import load_rgb8, write_bin, write_json

torch.set_num_threads(2)

MEAN_BGR = [103.939, 116.779, 123.68]
INPUT_SCALE = 256.0 / 255.0
CONTENT_LAYERS = ['relu4_2']
STYLE_LAYERS = ['relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1']
WEIGHTS = {'content': 5.0, 'style': 100.0, 'tv': 1e-3}
BLOCK_ENDS = {'conv1_2', 'conv2_2', 'conv3_4', 'conv4_4', 'conv5_4'}
SEED = 7
NOISE_SEED = 99
NOISE_AMPLITUDE = 40.0

CASES = [
    # name, widths, content (asset, w, h), style (asset, w, h)
    ('tiny', dw.TINY_WIDTHS, ('content-chelsea.jpg', 48, 32), ('art-starry_night.jpg', 48, 48)),
    ('full', dw.FULL_WIDTHS, ('content-chelsea.jpg', 64, 48), ('art-starry_night.jpg', 48, 48)),
    # Sizes that are not multiples of 16: the ceil-mode pools' partial windows count here.
    ('odd', dw.TINY_WIDTHS, ('content-chelsea.jpg', 50, 35), ('art-starry_night.jpg', 41, 37)),
]


def to_nchw(hwc, dtype):
    return torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1))[None].astype(np.float64)).to(dtype)


def features(x, weights, widths, wanted, ceil=True):
    """relu features of x (NCHW, RGB 0-255) by name."""
    mean = torch.tensor(MEAN_BGR, dtype=x.dtype).view(1, 3, 1, 1)
    h = x[:, [2, 1, 0]] * INPUT_SCALE - mean
    out = {}
    for name, _k, _cin, _cout in dw.vgg19_convs(widths):
        if all(w in out for w in wanted):
            break
        wk, bk = weights[name]
        h = F.relu(F.conv2d(h, wk, bk, padding=1))
        out['relu' + name[4:]] = h
        if name in BLOCK_ENDS:
            h = F.max_pool2d(h, 2, 2, ceil_mode=ceil)
    return {w: out[w] for w in wanted}


def gram(f):
    _, n, hh, ww = f.shape
    m = f.reshape(n, hh * ww)
    return m @ m.t() / (n * hh * ww)


def tv(x):
    corner = x[:, :, :-1, :-1]
    dx = corner - x[:, :, :-1, 1:]
    dy = corner - x[:, :, 1:, :-1]
    return 0.5 * ((dx * dx).sum() + (dy * dy).sum())


def losses(weights, widths, content, style, x, dtype, ceil=True):
    """(parts dict of floats, {part: gradient, HWC float64 array})."""
    tw = {k: (torch.from_numpy(w.astype(np.float64)).to(dtype), torch.from_numpy(b.astype(np.float64)).to(dtype)) for k, (w, b) in weights.items()}
    c = to_nchw(content, dtype)
    s = to_nchw(style, dtype)
    xt = to_nchw(x, dtype).requires_grad_(True)
    with torch.no_grad():
        P = features(c, tw, widths, CONTENT_LAYERS, ceil)
        A = {k: gram(v) for k, v in features(s, tw, widths, STYLE_LAYERS, ceil).items()}
    fx = features(xt, tw, widths, CONTENT_LAYERS + STYLE_LAYERS, ceil)
    lc = WEIGHTS['content'] * sum(torch.mean((fx[l] - P[l]) ** 2) for l in CONTENT_LAYERS)
    ls = WEIGHTS['style'] * sum(torch.mean((gram(fx[l]) - A[l]) ** 2) for l in STYLE_LAYERS)
    ltv = WEIGHTS['tv'] * tv(xt * INPUT_SCALE)
    total = lc + ls + ltv
    named = {'content': lc, 'style': ls, 'tv': ltv, 'total': total}
    parts = {k: v.item() for k, v in named.items()}
    grads = {k: torch.autograd.grad(v, xt, retain_graph=True)[0][0].permute(1, 2, 0).double().numpy() for k, v in named.items()}
    return parts, grads


def cosine(a, b):
    a = a.reshape(-1)
    b = b.reshape(-1)
    return float(a @ b / np.sqrt((a @ a) * (b @ b)))


def main():
    index = {
        'description': 'neural-style losses and gradient (scripts/oracles/gatys_oracle.py); float32 LE .bin, HWC, RGB 0-255',
        'weights': {'seed': SEED, 'kernel': 'detweights: He-uniform sqrt(6/fan_in), OIHW element order', 'bias': '0.01 * (2u - 1)'},
        'preprocessing': 'caffe', 'contentLayers': CONTENT_LAYERS, 'styleLayers': STYLE_LAYERS, 'lossWeights': WEIGHTS,
        'cases': {},
    }
    for name, widths, (cname, cw, ch), (sname, sw, sh) in CASES:
        t0 = time.time()
        weights = dw.vgg19_weights(SEED, widths)
        content = load_rgb8(cname, cw, ch).astype(np.float32)
        style = load_rgb8(sname, sw, sh).astype(np.float32)
        noise = dw.deterministic_noise(NOISE_SEED, 0, content.size, NOISE_AMPLITUDE).reshape(content.shape)
        x = (content + noise).astype(np.float32)
        p64, g64 = losses(weights, widths, content, style, x, torch.float64)
        p32, g32 = losses(weights, widths, content, style, x, torch.float32)
        rel32 = {k: abs(p32[k] - p64[k]) / abs(p64[k]) for k in p64}
        cos32 = {k: cosine(g32[k], g64[k]) for k in g64}
        checks = {f'{n}.{kind}': dw.checksum(t) for n, (w, b) in weights.items() for kind, t in (('weight', w), ('bias', b))}
        index['cases'][name] = {
            'widths': widths,
            'content': {'asset': cname, **write_bin(f'gatys-{name}-content.bin', content)},
            'style': {'asset': sname, **write_bin(f'gatys-{name}-style.bin', style)},
            'x': {'noise': {'seed': NOISE_SEED, 'tensor': 0, 'amplitude': NOISE_AMPLITUDE}, **write_bin(f'gatys-{name}-x.bin', x)},
            # Per part on the tiny network (a content-gradient error would hide under the style's in the
            # total); the total alone on the full one (each extra pass costs seconds on the cpu backend).
            'grad': {k: {'of': f'{k} (weighted), float64 oracle rounded to float32', **write_bin(f'gatys-{name}-grad-{k}.bin', g64[k])}
                     for k in (g64 if name != 'full' else ['total'])},
            'float64': p64,
            'float32': {**p32, 'relativeToFloat64': rel32, 'gradCosine': cos32,
                        'gradMaxRelative': {k: float(np.abs(g32[k] - g64[k]).max() / np.abs(g64[k]).max()) for k in g64}},
            'checksums': checks,
        }
        print(f'{name}: {time.time() - t0:.1f} s  f64 {p64}')
        print(f'  float32 vs float64: relative {rel32}, gradient cosines {cos32}')
        if name == 'tiny':
            # What loadcaffe's ceil-mode pools change at a size that is not a multiple of 16 (not a fixture).
            s40 = load_rgb8(sname, 40, 40).astype(np.float32)
            pc, _ = losses(weights, widths, content, s40, x, torch.float64, ceil=True)
            pf, _ = losses(weights, widths, content, s40, x, torch.float64, ceil=False)
            print(f'  40x40 style: style loss ceil-mode pools {pc["style"]:.6g}, floor {pf["style"]:.6g} '
                  f'(relative {abs(pc["style"] - pf["style"]) / pc["style"]:.3g})')
    write_json('gatys.json', index)


if __name__ == '__main__':
    main()
