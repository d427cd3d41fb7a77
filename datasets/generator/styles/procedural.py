"""Procedural building blocks shared by coats and scenery: fractal value noise, smoothstep,
random colours and piecewise-linear palettes. Colours are RGB in [0, 1].
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["noise2", "palette_map", "random_colour", "smoothstep"]


def noise2(rng: np.random.Generator, h: int, w: int, cells: float, octaves: int = 3) -> np.ndarray:
    """(h, w) fractal value noise in about [0, 1], ``cells`` lattice cells across the longer
    side."""
    total, norm, amp = np.zeros((h, w), np.float32), 0.0, 1.0
    for o in range(octaves):
        n = max(2, round(cells * 2**o))
        gh, gw = max(2, n * h // max(h, w) + 2), max(2, n * w // max(h, w) + 2)
        total += amp * cv2.resize(
            rng.random((gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
        )
        norm += amp
        amp *= 0.5
    return np.clip(total / norm, 0.0, 1.0)


def smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour in [0, 1], any hue, often saturated."""
    hue, sat, val = rng.uniform(0, 180), rng.uniform(0.3, 1.0), rng.uniform(0.2, 1.0)
    hsv = np.array([[[hue, sat * 255, val * 255]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0] / 255.0


def palette_map(t: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] (...) through a piecewise-linear palette (C, 3) -> (..., 3)."""
    x = np.clip(t, 0.0, 1.0) * (len(colours) - 1)
    i = np.minimum(np.floor(x).astype(int), len(colours) - 2)
    f = (x - i)[..., None]
    return colours[i] * (1.0 - f) + colours[i + 1] * f
