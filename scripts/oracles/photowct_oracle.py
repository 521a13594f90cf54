#!/usr/bin/python3
"""
Oracle for FastPhotoStyle's PhotoWCT (NVIDIA/FastPhotoStyle: models.py, photo_wct.py), reimplemented in
PyTorch from its published definitions, with deterministic weights (detweights.py):

  VGGEncoder(L)  conv0 (1x1, 3->3: RGB in [0, 1] -> BGR 0-255 minus the mean), then VGG19's convs to
                 conv{L}_1, each on a reflection-padded input (1 px), ReLU after each; 2x2 max-pools,
                 stride 2, recording their argmax (return_indices) and their input sizes.
  VGGDecoder(L)  the mirror: conv B_I maps B_I's out -> in channels, in reverse order, ReLU after each but
                 the last (conv1_1, RGB in [0, 1]); max-unpooling with the encoder's switches after
                 conv4_1, conv3_1 and conv2_1 (to the recorded sizes).
  WCT core       f_c, f_s (C x HW) mean-centred; cov_c = f_c f_c^T / (HW - 1) + I, cov_s likewise without +I;
                 both decomposed by torch.svd; eigenvalues kept up to the last one >= 1e-5 (all if none is);
                 f_cs = E_s D_s^1/2 E_s^T E_c D_c^-1/2 E_c^T f_c + mean_s; alpha * f_cs + (1 - alpha) * f_c
                 (the WCT paper's blend; alpha = 1 here, as FastPhotoStyle).
  transform      style features of all levels from e4 (forward_multiple); the content goes through
                 e4 -> WCT -> d4 -> e3 -> WCT -> d3 -> e2 -> WCT -> d2 -> e1 -> WCT -> d1, unclamped between
                 levels; the result is saved as torchvision's save_image does: clamp(x * 255 + 0.5, 0, 255),
                 truncated to uint8.

Cascade: the full-width network (64/128/256/512) at 256x160 on a photo pair from assets/, and a narrow
one (4/8/16/32) whose state dict it writes with torch.save in FastPhotoStyle's key names, as
photo_wct_small.pth (zip) and photo_wct_small_legacy.pth (the legacy serialization of the published
2018 file), and runs from the reloaded file. Each in float64 (the reference) and in float32,
FastPhotoStyle's own precision, for the spread. With random decoders the cascade is chaotic: a max-pool
window whose two largest values differ by ~1e-7 relative flips its switch under a 1e-6 change of the
input, and the next levels amplify the flip (one run of the narrow network: 3 levels max against
float64; the same run with the input moved by one float32 ulp: 220). So the float32 spread is measured
over FLOAT32_RUNS runs: the input as is, and moved by one ulp (relative 2^-23, random signs) with
different seeds; the fixture keeps every run's figures.

Levels: each level alone (teacher-forced), full width at 128x80: level 4 on the content; level L < 4 on
the float64 output of level L + 1, quantised to x = (k - 64) / 64, k in 0..255 (exact in float32; values
outside [0, 1] kept, as the cascade passes them on), stored as the 8-bit PNG of k. Without the
cascade's amplification these are sharp: a wrong layer, padding, switch or regulariser shows at once.

Writes test/fixtures/parity/photowct.json, photowct-*.png and photo_wct_small.pth.
Run by hand: scripts/oracles/photowct_oracle.py (about a minute and a half on 2 cores)
"""
import collections
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import detweights as dw
from common import FIXTURES, level_stats, load_rgb8, write_json, write_png

torch.set_num_threads(2)

SEED = 11
FULL = [64, 128, 256, 512, 512]
SMALL = [4, 8, 16, 32, 32]
CONTENT = ('photo-Dune.jpg', 256, 160)
STYLE = ('photo-Storm.jpg', 256, 170)
LEVEL_CONTENT = ('photo-Dune.jpg', 128, 80)
LEVEL_STYLE = ('photo-Storm.jpg', 128, 85)
FLOAT32_RUNS = 6
ULP_SEED = 1234
EPS_CUT = 1e-5
POOLED = {'conv1_2', 'conv2_2', 'conv3_4'}      # a max-pool follows these
UNPOOLED = {'conv4_1': 2, 'conv3_1': 1, 'conv2_1': 0}  # unpool with pool k's switches after these


def conv_reflect(h, w, b, relu=True):
    h = F.conv2d(F.pad(h, (1, 1, 1, 1), mode='reflect'), w, b)
    return F.relu(h) if relu else h


def encode(x, enc, level):
    """VGGEncoder(level).forward: features, [(switches, size)] per pool, and each relu{B}_1 on the way."""
    h = F.conv2d(x, *enc['conv0'])
    pools = []
    firsts = {}
    for name in dw.photo_encoder_convs(level):
        h = conv_reflect(h, *enc[name])
        if name.endswith('_1'):
            firsts[int(name[4])] = h
        if name in POOLED:
            size = h.shape[2:]
            h, idx = F.max_pool2d(h, 2, 2, return_indices=True)
            pools.append((idx, size))
    return h, pools, firsts


def decode(h, dec, level, pools):
    for name in dw.photo_decoder_convs(level):
        h = conv_reflect(h, *dec[name], relu=name != 'conv1_1')
        if name in UNPOOLED:
            idx, size = pools[UNPOOLED[name]]
            h = F.max_unpool2d(h, idx, 2, 2, output_size=size)
    return h


def kept(e):
    """FastPhotoStyle's cut-off: up to the last eigenvalue >= 1e-5 (descending), or all if none is."""
    k = e.shape[0]
    for i in range(e.shape[0] - 1, -1, -1):
        if e[i] >= EPS_CUT:
            return i + 1
    return k


def wct_core(fc, fs):
    """fc, fs: C x N. Whitening with +I, colouring, style mean (see the header)."""
    c, n = fc.shape
    mc = fc.mean(1, keepdim=True)
    xc = fc - mc
    cov_c = xc @ xc.t() / (n - 1) + torch.eye(c, dtype=fc.dtype)
    _, ec, vc = torch.svd(cov_c, some=False)
    kc = kept(ec)
    ms = fs.mean(1, keepdim=True)
    xs = fs - ms
    cov_s = xs @ xs.t() / (fs.shape[1] - 1)
    _, es, vs = torch.svd(cov_s, some=False)
    ks = kept(es)
    whiten = (vc[:, :kc] * ec[:kc].pow(-0.5)) @ vc[:, :kc].t()
    colour = (vs[:, :ks] * es[:ks].pow(0.5)) @ vs[:, :ks].t()
    return colour @ (whiten @ xc) + ms


def wct(cf, sf, alpha=1.0):
    c = cf.shape[1]
    fc = cf[0].reshape(c, -1)
    fs = sf[0].reshape(c, -1)
    out = wct_core(fc, fs)
    if alpha != 1.0:
        out = alpha * out + (1 - alpha) * fc
    return out.reshape(cf.shape)


def transform(content01, style01, weights, dtype, alpha=1.0, trace=None, levels=(4, 3, 2, 1)):
    """PhotoWCT.transform on NCHW RGB in [0, 1]; returns the decoded image (unclamped)."""
    enc = {k: tuple(torch.from_numpy(np.asarray(t, dtype=np.float64)).to(dtype) for t in v) for k, v in weights['e'].items()}
    decs = {l: {k: tuple(torch.from_numpy(np.asarray(t, dtype=np.float64)).to(dtype) for t in v) for k, v in d.items()} for l, d in weights['d'].items()}
    with torch.no_grad():
        _, _, sfeat = encode(style01.to(dtype), enc, 4)
        x = content01.to(dtype)
        for level in levels:
            cf, pools, _ = encode(x, enc, level)
            x = decode(wct(cf, sfeat[level], alpha), decs[level], level, pools)
            if trace is not None:
                trace.append((level, float(x.min()), float(x.max()), float(((x < 0) | (x > 1)).double().mean())))
    return x


def save_image_uint8(x):
    """torchvision.utils.save_image's conversion of one image: clamp(x*255 + 0.5, 0, 255) -> uint8, HWC."""
    y = torch.clamp(x[0] * 255 + 0.5, 0, 255).to(torch.uint8)
    return y.permute(1, 2, 0).numpy()


# nn.Modules with FastPhotoStyle's attribute names and registration order, only to write a state dict
# laid out exactly as PhotoWCT.state_dict() (parameter names, order, _metadata).
class Encoder(nn.Module):
    def __init__(self, level, widths):
        super().__init__()
        convs = {name: (cin, cout) for name, _k, cin, cout in dw.vgg19_convs(widths)}
        self.conv0 = nn.Conv2d(3, 3, 1, 1, 0)
        for name in dw.photo_encoder_convs(level):
            cin, cout = convs[name]
            setattr(self, name, nn.Conv2d(cin, cout, 3, 1, 0))


class Decoder(nn.Module):
    def __init__(self, level, widths):
        super().__init__()
        convs = {name: (cin, cout) for name, _k, cin, cout in dw.vgg19_convs(widths)}
        for name in dw.photo_decoder_convs(level):
            cin, cout = convs[name]
            setattr(self, name, nn.Conv2d(cout, cin, 3, 1, 0))


class PhotoWCTModule(nn.Module):
    def __init__(self, widths):
        super().__init__()
        for level in (1, 2, 3, 4):
            setattr(self, 'e%d' % level, Encoder(level, widths))
            setattr(self, 'd%d' % level, Decoder(level, widths))


def write_state_dict(path, seed, widths, legacy):
    model = PhotoWCTModule(widths)
    sd = model.state_dict()
    ours = collections.OrderedDict(dw.photo_wct_state_dict(seed, widths))
    assert list(sd.keys()) == list(ours.keys()), 'key order differs from PhotoWCT.state_dict()'
    model.load_state_dict({k: torch.from_numpy(v) for k, v in ours.items()})
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=not legacy)


def weights_from_state_dict(sd):
    """The oracle's weight structure back from a loaded state dict (e4's encoder; d1..d4)."""
    enc = {}
    dec = {1: {}, 2: {}, 3: {}, 4: {}}
    for key, t in sd.items():
        part, name, kind = key.split('.')
        arr = t.numpy()
        if part == 'e4':
            enc.setdefault(name, [None, None])[0 if kind == 'weight' else 1] = arr
        elif part[0] == 'd':
            dec[int(part[1])].setdefault(name, [None, None])[0 if kind == 'weight' else 1] = arr
        else:
            # e1..e3 are copies of e4 in FastPhotoStyle's published file, and here.
            same = sd['e4.%s.%s' % (name, kind)].numpy()
            assert np.array_equal(arr, same), key
    return {'e': {k: tuple(v) for k, v in enc.items()}, 'd': {l: {k: tuple(v) for k, v in d.items()} for l, d in dec.items()}}


def nchw01(rgb8):
    return torch.from_numpy(rgb8.transpose(2, 0, 1)[None].astype(np.float64) / 255.0)


def ulp_moved(x01, k):
    """Run k's input: as is (k = 0), or each value moved by one float32 ulp (relative 2^-23), random signs."""
    if k == 0:
        return x01
    u = torch.from_numpy(dw.uniforms(ULP_SEED, k, x01.numel()).reshape(x01.shape))
    return x01 * (1 + torch.sign(2 * u - 1) * 2.0 ** -23)


def spread_runs(tag, content01, style01, weights, ref8, levels=(4, 3, 2, 1)):
    """float32 runs against the float64 result: per run and the largest."""
    runs = []
    for k in range(FLOAT32_RUNS):
        x = transform(ulp_moved(content01, k), style01, weights, torch.float32, levels=levels)
        runs.append(level_stats(save_image_uint8(x), ref8))
    worst = {'max': max(r['max'] for r in runs), 'mean': max(r['mean'] for r in runs), 'fracOver1': max(r['fracOver1'] for r in runs)}
    print(f'{tag} float32 vs float64 over {FLOAT32_RUNS} runs: {worst}; runs {[(r["max"], round(r["mean"], 4)) for r in runs]}')
    return {'runs': runs, 'worst': worst}


def run_case(tag, weights, content8, style8):
    t0 = time.time()
    trace = []
    x = transform(nchw01(content8), nchw01(style8), weights, torch.float64, trace=trace)
    out = save_image_uint8(x)
    print(f'{tag} float64: {time.time() - t0:.1f} s; per level (min, max, fraction outside [0,1]) '
          f'{[(l, round(a, 3), round(b, 3), round(f, 4)) for l, a, b, f in trace]}')
    return out, spread_runs(tag, nchw01(content8), nchw01(style8), weights, out)


def quantise_level_input(x):
    """x -> k = clip(round(64 x) + 64, 0, 255); the level's input is then (k - 64) / 64, exact in float32."""
    k = torch.clamp(torch.round(x[0] * 64) + 64, 0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return k, torch.from_numpy((k.astype(np.float64) - 64) / 64).permute(2, 0, 1)[None]


def run_levels(weights):
    content8 = load_rgb8(*LEVEL_CONTENT)
    style8 = load_rgb8(*LEVEL_STYLE)
    out = {
        'widths': FULL[:4],
        'content': {'asset': LEVEL_CONTENT[0], **write_png('photowct-levels-content.png', content8)},
        'style': {'asset': LEVEL_STYLE[0], **write_png('photowct-levels-style.png', style8)},
        'inputCode': 'level 4: the content (k / 255); level L < 4: x = (k - 64) / 64',
        'levels': {},
    }
    x = nchw01(content8)
    for level in (4, 3, 2, 1):
        entry = {}
        if level < 4:
            k, x = quantise_level_input(prev)
            entry['input'] = write_png(f'photowct-levels-in{level}.png', k)
        y = transform(x, nchw01(style8), weights, torch.float64, levels=(level,))
        ref8 = save_image_uint8(y)
        entry['float64'] = write_png(f'photowct-levels-out{level}.png', ref8)
        entry['float32VsFloat64'] = spread_runs(f'level {level}', x, nchw01(style8), weights, ref8, levels=(level,))
        out['levels'][str(level)] = entry
        prev = y
    return out


def main():
    content8 = load_rgb8(*CONTENT)
    style8 = load_rgb8(*STYLE)
    index = {
        'description': "FastPhotoStyle's PhotoWCT.transform with deterministic weights (scripts/oracles/photowct_oracle.py); 8-bit results as save_image writes them",
        'weights': {'seed': SEED, 'decoderOutGain': dw.DECODER_OUT_GAIN, 'decoderOutOffset': dw.DECODER_OUT_OFFSET},
        'alpha': 1, 'levels': [4, 3, 2, 1],
        'content': {'asset': CONTENT[0], **write_png('photowct-content.png', content8)},
        'style': {'asset': STYLE[0], **write_png('photowct-style.png', style8)},
        'cases': {},
    }
    # Full width: the deterministic weights as detweights defines them.
    full = dw.photo_wct_weights(SEED, FULL)
    res, spread = run_case('full', full, content8, style8)
    sd = dw.photo_wct_state_dict(SEED, FULL)
    index['cases']['full'] = {
        'widths': FULL[:4],
        'float64': write_png('photowct-full-f64.png', res),
        'float32VsFloat64': spread,
        'checksums': {k: dw.checksum(v) for k, v in sd},
    }
    # Narrow: written by torch.save in both serializations, then run from the file as torch.load reads it.
    # The zip file's bytes are reproducible; the legacy one's storage keys are memory addresses, so its
    # bytes change from run to run (its tensors do not).
    files = [('photo_wct_small.pth', False, 'zip (torch >= 1.6)'), ('photo_wct_small_legacy.pth', True, 'legacy (_use_new_zipfile_serialization=False), as the published 2018 file')]
    for name, legacy, _what in files:
        write_state_dict(os.path.join(FIXTURES, name), SEED, SMALL, legacy)
    loaded = torch.load(os.path.join(FIXTURES, files[0][0]))
    again = torch.load(os.path.join(FIXTURES, files[1][0]))
    assert list(loaded.keys()) == list(again.keys()) and all(torch.equal(loaded[k], again[k]) for k in loaded)
    small = weights_from_state_dict(loaded)
    res, spread = run_case('small', small, content8, style8)
    index['cases']['small'] = {
        'widths': SMALL[:4],
        'pth': [{'file': name, 'serialization': what} for name, _legacy, what in files],
        'float64': write_png('photowct-small-f64.png', res),
        'float32VsFloat64': spread,
        'checksums': {k: dw.checksum(v.numpy()) for k, v in loaded.items()},
    }
    index['levels'] = run_levels(full)
    write_json('photowct.json', index)


if __name__ == '__main__':
    main()
