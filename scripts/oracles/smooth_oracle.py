#!/usr/bin/python3
"""
Oracle for FastPhotoStyle's closed-form smoothing (NVIDIA/FastPhotoStyle: photo_smooth.py, Propagator),
reimplemented with numpy/scipy in float64 from its published definitions:

  affinity   Levin et al.'s matting affinity of the content image (colours / 255): for every 3x3 window
             lying wholly inside the image, with mean mu and biased covariance Sigma of its 9 colours,
             each pair (i, j) of its pixels gets (1 + (I_i - mu)^T (Sigma + eps/9 I)^-1 (I_j - mu)) / 9,
             eps = 1e-7, summed over the windows (a sparse matrix W)
  normalise  d = column sums of W, S = D^-1/2 W D^-1/2
  solve      (I - beta S) V = Y per channel by a sparse direct factorisation, R = (1 - beta) V,
             beta = 0.9999; Y = the stylised image / 255
  borders    both images padded by 2 pixels (edge replication) before, and the padding cropped after
  8 bits     np.uint8(np.clip(R * 255, 0, 255)), as its process() returns the image (truncation)

One deliberate difference, the studio's (src-main/engine/photo/affinity.ts): FastPhotoStyle's process()
first crops 2 pixels off each side of the stylised image and resizes the content to that smaller size
(PIL's resize with the (h, w) order it passes), then pads both back: its result is 4 pixels smaller
than its input, and its content is resampled. Here, as in the studio, both images keep their size and
are only padded, so that the two results can be compared pixel for pixel.

Inputs: a photo from assets/ at 64x40 and a "stylised" version of it (its colours remapped, a painting
blended in, deterministic noise), both 8-bit, as FastPhotoStyle reads its inputs from PNG files.
Writes test/fixtures/parity/smooth.json and smooth-*. Run by hand: scripts/oracles/smooth_oracle.py
"""
import time

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

import detweights as dw
from common import load_rgb8, write_bin, write_json, write_png

BETA = 0.9999
EPS = 1e-7
PAD = 2
WIDTH, HEIGHT = 64, 40
CONTENT = 'photo-Dune.jpg'
PAINTING = 'art-the_scream.jpg'


def matting_affinity(img, eps=EPS):
    """Sparse W (N x N) of an H x W x 3 float image, windows of 3x3 wholly inside it."""
    h, w, _ = img.shape
    n = h * w
    idx = np.arange(n).reshape(h, w)
    win = np.stack([idx[dy:h - 2 + dy, dx:w - 2 + dx] for dy in range(3) for dx in range(3)], axis=-1).reshape(-1, 9)
    colours = img.reshape(n, 3)[win]                                   # m x 9 x 3
    mu = colours.mean(axis=1, keepdims=True)                           # m x 1 x 3
    dev = colours - mu
    sigma = np.einsum('mki,mkj->mij', colours, colours) / 9 - np.einsum('mki,mkj->mij', mu, mu)
    inv = np.linalg.inv(sigma + (eps / 9) * np.eye(3))
    vals = (1 + np.einsum('mki,mij,mlj->mkl', dev, inv, dev)) / 9        # m x 9 x 9, pairs (k, l)
    rows = np.repeat(win, 9, axis=1).ravel()
    cols = np.tile(win, (1, 9)).ravel()
    return scipy.sparse.coo_matrix((vals.ravel(), (rows, cols)), shape=(n, n)).tocsc()


def pad_edge(img, pad):
    return np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode='edge')


def smooth(content8, stylised8, beta=BETA):
    content = pad_edge(content8.astype(np.float64) / 255, PAD)
    y = pad_edge(stylised8.astype(np.float64) / 255, PAD)
    hp, wp, _ = content.shape
    n = hp * wp
    W = matting_affinity(content)
    d = np.asarray(W.sum(axis=0)).ravel()
    Dm = scipy.sparse.diags(d ** -0.5)
    S = Dm @ W @ Dm
    A = (scipy.sparse.identity(n) - beta * S).tocsc()
    solve = scipy.sparse.linalg.factorized(A)
    yv = y.reshape(n, 3)
    v = np.stack([solve(yv[:, c]) for c in range(3)], axis=1) * (1 - beta)
    # The residual of the solve, to know how exact the oracle itself is.
    res = max(np.linalg.norm(A @ v[:, c] - (1 - beta) * yv[:, c]) / np.linalg.norm((1 - beta) * yv[:, c]) for c in range(3))
    return v.reshape(hp, wp, 3)[PAD:PAD + content8.shape[0], PAD:PAD + content8.shape[1]], res


def stylised_version(content8):
    """The content's colours remapped, a painting blended in and noise: 8-bit, deterministic."""
    c = content8.astype(np.float64)
    m = np.array([[0.55, 0.35, 0.10], [0.10, 0.60, 0.30], [0.05, 0.25, 0.75]])
    painting = load_rgb8(PAINTING, WIDTH, HEIGHT).astype(np.float64)
    noise = dw.deterministic_noise(2024, 0, c.size, 12.0).reshape(c.shape).astype(np.float64)
    y = 0.65 * (c @ m.T) + 0.35 * painting + 30 + noise
    return np.clip(np.round(y), 0, 255).astype(np.uint8)


def main():
    t0 = time.time()
    content8 = load_rgb8(CONTENT, WIDTH, HEIGHT)
    stylised8 = stylised_version(content8)
    r, res = smooth(content8, stylised8)
    fps8 = np.uint8(np.clip(r * 255.0, 0, 255.0))
    rounded8 = np.uint8(np.clip(np.round(r * 255.0), 0, 255))
    print(f'{time.time() - t0:.1f} s; relative residual {res:.2e}; range {r.min():.4f}..{r.max():.4f}; '
          f'values off by >= 1 level between truncation and rounding: {(fps8 != rounded8).mean():.3f}')
    write_json('smooth.json', {
        'description': "FastPhotoStyle's closed-form smoothing (scripts/oracles/smooth_oracle.py), float64, scipy's sparse LU; "
                       'both images padded by 2 px (edge) and cropped, without its crop-and-resize of the inputs',
        'beta': BETA, 'eps': EPS, 'pad': PAD, 'relativeResidual': res,
        'content': {'asset': CONTENT, **write_png('smooth-content.png', content8)},
        'stylised': {'made': f'content colours remapped, {PAINTING} blended in, noise', **write_png('smooth-stylised.png', stylised8)},
        'float64': {'note': 'R cropped, not clamped, stored as float32', **write_bin('smooth-result.bin', r)},
        'uint8': {'note': 'np.uint8(np.clip(R * 255, 0, 255)): truncation, as FastPhotoStyle', **write_png('smooth-result.png', fps8)},
    })


if __name__ == '__main__':
    main()
