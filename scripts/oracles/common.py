#!/usr/bin/python3
"""Helpers the oracles share: paths, deterministic image loading, fixture writing."""
import json
import os

import numpy as np
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ASSETS = os.path.join(ROOT, 'assets', 'samples')
FIXTURES = os.path.join(ROOT, 'test', 'fixtures', 'parity')


def load_rgb8(name, width, height):
    """An asset resized to exactly width x height (PIL's box filter, deterministic), uint8 HWC RGB."""
    img = Image.open(os.path.join(ASSETS, name)).convert('RGB')
    return np.asarray(img.resize((width, height), Image.BOX), dtype=np.uint8).copy()


def write_bin(name, arr):
    """float32 little-endian, C order; returns the index entry."""
    a = np.ascontiguousarray(arr, dtype='<f4')
    os.makedirs(FIXTURES, exist_ok=True)
    a.tofile(os.path.join(FIXTURES, name))
    return {'file': name, 'dtype': 'float32', 'shape': list(a.shape)}


def write_png(name, rgb8):
    os.makedirs(FIXTURES, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(rgb8, dtype=np.uint8), 'RGB').save(os.path.join(FIXTURES, name), optimize=True)
    return {'file': name, 'dtype': 'uint8', 'shape': list(rgb8.shape)}


def write_json(name, obj):
    os.makedirs(FIXTURES, exist_ok=True)
    with open(os.path.join(FIXTURES, name), 'w') as f:
        json.dump(obj, f, indent=2, sort_keys=False)
        f.write('\n')


def level_stats(a, b):
    """max, mean |a - b| and the fraction off by more than one level, of two uint8 images."""
    d = np.abs(a.astype(np.int32) - b.astype(np.int32))
    return {'max': int(d.max()), 'mean': float(d.mean()), 'fracOver1': float((d > 1).mean())}
