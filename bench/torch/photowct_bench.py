#!/usr/bin/python3
"""PyTorch's side of `npm run bench -- photowct` (bench/photowct.ts): PhotoWCT's cascade, the same work on the
same sizes and threads, as FastPhotoStyle defines it.

Encoders: VGG19 (full widths 64/128/256/512/512, random He weights, zero biases, shared by the four
levels) up to reluL_1 with reflection padding, Caffe preprocessing (RGB 0-255 -> BGR minus the mean),
max-pooling with indices. Decoders: random He weights mirroring the encoder convolution for
convolution (decL_1 ... dec1_1, the last one linear), reflection padding, max-unpooling with the
content's indices. WCT (Li et al.; FastPhotoStyle's __wct_core) on [C, H*W] features:
  cov_c = Xc Xc^T / (Dc - 1) + lambda*I,  cov_s = Xs Xs^T / (Ds - 1)  (mean-centred)
  f_cs  = cov_s^{1/2} cov_c^{-1/2} Xc + mean_s,  square roots by eigen-decomposition (torch.linalg.eigh),
  eigenvalues below 1e-5*lambda dropped,
with lambda = the reference's +I rescaled as src-main/engine/photo/wct.ts's automatic rule does
(min(1, 1e-4 * mean eigenvalue of cov_c): exactly +I on Caffe-scale features). Per run, as bench/photowct.ts:
the style is encoded once for all levels (FastPhotoStyle's forward_multiple), then the content image goes
through levels 4, 3, 2, 1 (encode content, WCT, decode, each timed; unclamped between levels), and the
cascade total; one warm-up run, then --runs timed, median.
No autograd (torch.no_grad), float32, NCHW.

Images: --images DIR holding WxH-content.rgb and WxH-style.rgb (raw RGB8, H*W*3 bytes, row-major),
which bench/photowct.ts writes from the same resized photos it uses; without them, uniform noise.
Progress goes to stderr; stdout gets one JSON object:
  {"torch", "python", "threads", "runs", "device", "entries": [{"name", "size", "medianMs", "runs",
   "peakRssMB", "note"?}], "peakRssMB"}
with bench/photowct.ts's entry names and sizes.

  /usr/bin/python3 bench/torch/photowct_bench.py --threads 2 --sizes 512x512,1024x512 --runs 3 [--images DIR]
"""
import argparse
import json
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

WIDTHS = [64, 128, 256, 512, 512]
BLOCKS = [2, 2, 4, 4, 4]
CAFFE_MEAN_BGR = [103.939, 116.779, 123.68]
REFERENCE_CUTOFF = 1e-5
AUTO_REGULARIZER_FRACTION = 1e-4


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def he(g, cout, cin):
    return torch.randn(cout, cin, 3, 3, generator=g) * (2.0 / (9 * cin)) ** 0.5


def encoder_layers(level):
    """[('conv', name, cin, cout) | ('pool',)] of VGG19 up to conv{level}_1."""
    out = []
    cin = 3
    for b, (n, cout) in enumerate(zip(BLOCKS, WIDTHS), start=1):
        for i in range(1, n + 1):
            out.append(('conv', f'conv{b}_{i}', cin, cout))
            cin = cout
            if b == level:
                return out
        out.append(('pool',))
    return out


def decoder_convs(level):
    """The encoder's convolutions in reverse, out -> in channels: (name, cin, cout, unpool_after, relu)."""
    enc = encoder_layers(level)
    out = []
    for i in range(len(enc) - 1, -1, -1):
        if enc[i][0] != 'conv':
            continue
        _, name, cin, cout = enc[i]
        out.append(('dec' + name[4:], cout, cin, i > 0 and enc[i - 1][0] == 'pool', name != 'conv1_1'))
    return out


class PhotoAutoencoders:
    def __init__(self, seed=1):
        g = torch.Generator().manual_seed(seed)
        self.enc = {}
        for layer in encoder_layers(5):
            if layer[0] == 'conv':
                _, name, cin, cout = layer
                self.enc[name] = (he(g, cout, cin), torch.zeros(cout))
        self.dec = {}
        for level in (1, 2, 3, 4):
            self.dec[level] = [(name, he(g, cout, cin), torch.zeros(cout), unpool, relu)
                               for name, cin, cout, unpool, relu in decoder_convs(level)]
        self.mean = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)

    @staticmethod
    def conv(x, w, b, relu):
        y = F.conv2d(F.pad(x, (1, 1, 1, 1), mode='reflect'), w, b)
        return F.relu(y, inplace=True) if relu else y

    def encode(self, rgb255, level):
        x = rgb255.flip(1) - self.mean
        pools = []
        for layer in encoder_layers(level):
            if layer[0] == 'pool':
                size = x.shape[-2:]
                x, idx = F.max_pool2d(x, 2, 2, return_indices=True)
                pools.append((idx, size))
            else:
                w, b = self.enc[layer[1]]
                x = self.conv(x, w, b, True)
        return x, pools

    def encode_multiple(self, rgb255, levels):
        """FastPhotoStyle's forward_multiple: every level's style features from one pass to relu4_1."""
        x = rgb255.flip(1) - self.mean
        out = {}
        for layer in encoder_layers(max(levels)):
            if layer[0] == 'pool':
                x = F.max_pool2d(x, 2, 2)
            else:
                w, b = self.enc[layer[1]]
                x = self.conv(x, w, b, True)
                if layer[1][-2:] == '_1' and int(layer[1][4]) in levels:
                    out[int(layer[1][4])] = x
        return out

    def decode(self, f, level, pools):
        x = f
        pools = list(pools)
        for _, w, b, unpool, relu in self.dec[level]:
            x = self.conv(x, w, b, relu)
            if unpool:
                idx, size = pools.pop()
                x = F.max_unpool2d(x, idx, 2, 2, output_size=size)
        return x


def wct(fc, fs):
    """[1,C,H,W] content and style features -> the whitened and coloured content features."""
    c = fc.shape[1]
    xc = fc.reshape(c, -1)
    xs = fs.reshape(c, -1)
    mc = xc.mean(1, keepdim=True)
    xcc = xc - mc
    cov_c = (xcc @ xcc.t()) / (xc.shape[1] - 1)
    u2 = min(1.0, AUTO_REGULARIZER_FRACTION * float(cov_c.diagonal().sum()) / c)
    if not u2 > 0:
        u2 = 1.0
    cov_c += u2 * torch.eye(c)
    ms = xs.mean(1, keepdim=True)
    xss = xs - ms
    cov_s = (xss @ xss.t()) / (xs.shape[1] - 1)
    cutoff = REFERENCE_CUTOFF * u2
    ec, vc = torch.linalg.eigh(cov_c)
    es, vs = torch.linalg.eigh(cov_s)
    kc = ec > cutoff
    ks = es > cutoff
    vc, ec, vs, es = vc[:, kc], ec[kc], vs[:, ks], es[ks]
    whiten = (vc * ec.rsqrt()) @ vc.t()
    colour = (vs * es.sqrt()) @ vs.t()
    out = colour @ (whiten @ xcc) + ms
    return out.reshape(fc.shape)


def load_image(images, w, h, kind, g):
    path = os.path.join(images, f'{w}x{h}-{kind}.rgb') if images else None
    if path and os.path.exists(path):
        with open(path, 'rb') as f:
            data = bytearray(f.read())
        if len(data) != w * h * 3:
            raise SystemExit(f'{path}: {len(data)} bytes, expected {w * h * 3}')
        return torch.frombuffer(data, dtype=torch.uint8).float().reshape(1, h, w, 3).permute(0, 3, 1, 2).contiguous(), 'photo'
    return torch.rand(1, 3, h, w, generator=g) * 255, 'noise'


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, required=True)
    ap.add_argument('--sizes', default='512x512,1024x512')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--images', default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    runs = args.runs
    aes = PhotoAutoencoders()
    g = torch.Generator().manual_seed(7)
    entries = []
    inputs = set()

    def record(name, size, ms, note=None):
        e = {'name': name, 'size': size, 'medianMs': round(ms, 1), 'runs': runs, 'peakRssMB': peak_rss_mb()}
        if note:
            e['note'] = note
        entries.append(e)
        log(f'  pytorch {name:<34} {size:<10} {e["medianMs"]:>9} ms  RSS {e["peakRssMB"]} MB')

    with torch.no_grad():
        for w, h in ([int(v) for v in s.split('x')] for s in args.sizes.split(',')):
            size = f'{w}\u00d7{h}'
            content, kc = load_image(args.images, w, h, 'content', g)
            style, ks = load_image(args.images, w, h, 'style', g)
            inputs.update((kc, ks))
            times = {}

            def add(k, ms):
                times.setdefault(k, []).append(ms)
            for run in range(runs + 1):
                x = content
                t_all = time.perf_counter()
                t = time.perf_counter()
                styles = aes.encode_multiple(style, (4, 3, 2, 1))
                if run > 0:
                    add('encode style (all levels)', (time.perf_counter() - t) * 1e3)
                for level in (4, 3, 2, 1):
                    t = time.perf_counter()
                    fc, pools = aes.encode(x, level)
                    enc_c = time.perf_counter() - t
                    t = time.perf_counter()
                    fcs = wct(fc, styles[level])
                    wct_s = time.perf_counter() - t
                    t = time.perf_counter()
                    x = aes.decode(fcs, level, pools)  # unclamped between levels, as FastPhotoStyle
                    dec = time.perf_counter() - t
                    if run > 0:
                        add(f'relu{level}_1 encode content', enc_c * 1e3)
                        add(f'relu{level}_1 WCT', wct_s * 1e3)
                        add(f'relu{level}_1 decode', dec * 1e3)
                    del fc, fcs, pools
                del styles
                if run > 0:
                    add('cascade total', (time.perf_counter() - t_all) * 1e3)
            for k, ms in times.items():
                record(f'photowct {k}', size, sorted(ms)[len(ms) // 2], 'square roots: torch.linalg.eigh (float32)' if k.endswith('WCT') else None)

    n = torch.get_num_threads()
    print(json.dumps({
        'torch': torch.__version__, 'python': sys.version.split()[0], 'threads': n, 'runs': runs, 'inputs': sorted(inputs),
        'device': f'CPU (PyTorch {torch.__version__}, {"oneDNN" if torch.backends.mkldnn.is_available() else "native"} convolutions, '
                  f'{n} thread{"" if n == 1 else "s"})',
        'entries': entries, 'peakRssMB': peak_rss_mb(),
    }))


if __name__ == '__main__':
    main()
