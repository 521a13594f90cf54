#!/usr/bin/python3
"""PyTorch's side of `npm run bench -- vgg` (bench/run.ts): the same work on the same sizes and threads.

Full-width VGG19 (64/128/256/512/512) with random He-initialised weights and zero biases, Caffe
preprocessing (RGB 0-255 -> BGR minus the mean), zero padding and max-pooling, input uniform in 0-255:
  - forward to relu5_1 (no autograd, in-place ReLU: what a PyTorch user writes for inference);
  - forward to relu5_1 and backward of its sum to the input (weights need no gradient);
  - one Gatys iteration: neural-style's losses (content relu4_2: MSE; style relu1_1, relu2_1,
    relu3_1, relu4_1, relu5_1: MSE of Grams / (N*D); TV: 1/2 sum of squared steps over the image
    less its last row and column), weights 5 / 100 / 1e-3, targets taken from the input itself (as
    bench/run.ts does), the gradient, and one step of torch.optim.LBFGS (history 100, max_iter 1: one
    function evaluation per step and no line search, as neural-style's optim.lbfgs).
Timing as bench/run.ts: two warm-up calls, then --runs timed calls, median (the upper one of an even
count). Progress goes to stderr; stdout gets one JSON object:
  {"torch", "python", "threads", "runs", "device", "entries": [{"name", "size", "medianMs", "runs",
   "peakRssMB"}], "peakRssMB"}
where entry names and sizes are bench/run.ts's, and peakRssMB is this process's peak RSS
(getrusage ru_maxrss) right after the measure.

  /usr/bin/python3 bench/torch/vgg_bench.py --threads 2 --sizes 256,512 --runs 5
"""
import argparse
import json
import resource
import sys
import time

import torch
import torch.nn.functional as F

WIDTHS = [64, 128, 256, 512, 512]
BLOCKS = [2, 2, 4, 4, 4]
CAFFE_MEAN_BGR = [103.939, 116.779, 123.68]
CONTENT_LAYERS = ['relu4_2']
STYLE_LAYERS = ['relu1_1', 'relu2_1', 'relu3_1', 'relu4_1', 'relu5_1']
WEIGHTS = {'content': 5.0, 'style': 100.0, 'tv': 1e-3}


def peak_rss_mb():
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Vgg19:
    """VGG19's convolutions and pools as plain functional ops, random He weights (seeded)."""

    def __init__(self, seed=1):
        g = torch.Generator().manual_seed(seed)
        self.layers = []  # ('conv', name, weight, bias) | ('pool', name)
        cin = 3
        for b, (n, cout) in enumerate(zip(BLOCKS, WIDTHS), start=1):
            for i in range(1, n + 1):
                w = torch.randn(cout, cin, 3, 3, generator=g) * (2.0 / (9 * cin)) ** 0.5
                self.layers.append(('conv', f'conv{b}_{i}', w, torch.zeros(cout)))
                cin = cout
            self.layers.append(('pool', f'pool{b}'))
        self.mean = torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1)

    def depth_of(self, name):
        for k, layer in enumerate(self.layers):
            if layer[1] == name or (layer[0] == 'conv' and 'relu' + layer[1][4:] == name):
                return k
        raise ValueError(f'unknown VGG19 feature {name}')

    def features(self, rgb255, names):
        """[1,3,H,W] RGB 0-255 -> {name: feature} up to the deepest requested one."""
        last = max(self.depth_of(n) for n in names)
        wanted = set(names)
        out = {}
        x = rgb255.flip(1) - self.mean
        inplace = not torch.is_grad_enabled()
        for layer in self.layers[:last + 1]:
            if layer[0] == 'pool':
                x = F.max_pool2d(x, 2, 2)
            else:
                _, name, w, b = layer
                x = F.relu(F.conv2d(x, w, b, padding=1), inplace=inplace)
                relu = 'relu' + name[4:]
                if relu in wanted:
                    out[relu] = x
            if layer[1] in wanted:
                out[layer[1]] = x
        return out


def gram(f):
    """Normalised Gram G / (N*D) of [1,N,H,W]."""
    _, n, h, w = f.shape
    m = f.reshape(n, h * w)
    return (m @ m.t()) / (n * h * w)


def tv_loss(x):
    corner = x[:, :, :-1, :-1]
    dx = corner - x[:, :, :-1, 1:]
    dy = corner - x[:, :, 1:, :-1]
    return 0.5 * (dx.square().sum() + dy.square().sum())


def timed(fn, runs):
    fn()  # two warm-ups, as bench/run.ts (first calls allocate and pack weights)
    fn()
    ms = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1e3)
    return sorted(ms)[len(ms) // 2]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--threads', type=int, required=True)
    ap.add_argument('--sizes', default='256,512')
    ap.add_argument('--runs', type=int, default=5)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    sizes = [int(s) for s in args.sizes.split(',')]
    runs = args.runs
    net = Vgg19()
    entries = []

    def record(name, size, ms):
        e = {'name': name, 'size': size, 'medianMs': round(ms, 1), 'runs': runs, 'peakRssMB': peak_rss_mb()}
        entries.append(e)
        log(f'  pytorch {name:<34} {size:<9} {e["medianMs"]:>9} ms  RSS {e["peakRssMB"]} MB')

    layers = list(dict.fromkeys(CONTENT_LAYERS + STYLE_LAYERS))
    for size in sizes:
        label = f'{size}\u00b2'
        x = torch.rand(1, 3, size, size) * 255

        def forward():
            with torch.no_grad():
                net.features(x, ['relu5_1'])
        record('vgg19 forward to relu5_1', label, timed(forward, runs))

        def forward_backward():
            xg = x.clone().requires_grad_(True)
            y = net.features(xg, ['relu5_1'])['relu5_1'].sum()
            torch.autograd.grad(y, xg)
        record('vgg19 forward+backward to input', label, timed(forward_backward, runs))

        with torch.no_grad():
            f = net.features(x, layers)
            content_t = {l: f[l].clone() for l in CONTENT_LAYERS}
            style_t = {l: gram(f[l]) for l in STYLE_LAYERS}
            del f
        xi = x.clone().requires_grad_(True)
        opt = torch.optim.LBFGS([xi], lr=1, max_iter=1, history_size=100, tolerance_grad=-1, tolerance_change=-1)

        def closure():
            opt.zero_grad()
            f = net.features(xi, layers)
            content = sum(F.mse_loss(f[l], content_t[l]) for l in CONTENT_LAYERS)
            style = sum(F.mse_loss(gram(f[l]), style_t[l]) for l in STYLE_LAYERS)
            loss = WEIGHTS['content'] * content + WEIGHTS['style'] * style + WEIGHTS['tv'] * tv_loss(xi)
            loss.backward()
            return loss

        def iteration():
            opt.step(closure)
        record('gatys iteration (L-BFGS)', label, timed(iteration, runs))
        del opt, xi, content_t, style_t

    print(json.dumps({
        'torch': torch.__version__, 'python': sys.version.split()[0], 'threads': torch.get_num_threads(), 'runs': runs,
        'device': f'CPU (PyTorch {torch.__version__}, {"oneDNN" if torch.backends.mkldnn.is_available() else "native"} convolutions, '
                  f'{torch.get_num_threads()} thread{"" if torch.get_num_threads() == 1 else "s"})',
        'entries': entries, 'peakRssMB': peak_rss_mb(),
    }))


if __name__ == '__main__':
    main()
