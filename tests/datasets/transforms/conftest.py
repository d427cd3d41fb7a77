"""Shared fixtures: a dark frame with one Gaussian blob per keypoint, and a blob finder."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

#: Blob standard deviation in source pixels (large enough to survive a 0.5x affine scale).
BLOB_SIGMA = 4.0


@dataclass
class Scene:
    """A (W, H) = (200, 150) frame, a crop of 140 px around its centre into 96 px, and a toy
    5-keypoint spec: 0 / 1 and 3 / 4 are left / right pairs, 2 is unpaired."""

    frame: tuple[int, int] = (200, 150)
    center: np.ndarray = field(default_factory=lambda: np.array([100.0, 75.0]))
    size: float = 140.0
    out: int = 96
    flip_index: np.ndarray = field(default_factory=lambda: np.array([1, 0, 2, 4, 3]))

    @property
    def keypoints(self) -> np.ndarray:
        """(5, 3) distinct source keypoints near the centre (kept in view by any affine)."""
        offsets = np.array([[-14.0, -9.0], [13.0, -11.0], [1.5, 14.0], [-9.0, 10.5], [15.5, 6.0]])
        return np.concatenate([self.center + offsets, np.ones((5, 1))], axis=1)

    def blob_frame(self, xy) -> np.ndarray:
        """Dark (H, W, 3) uint8 frame with a bright Gaussian blob centred on ``xy``."""
        w, h = self.frame
        ys, xs = np.mgrid[0:h, 0:w]
        g = np.exp(-((xs - xy[0]) ** 2 + (ys - xy[1]) ** 2) / (2 * BLOB_SIGMA**2))
        return np.repeat(np.round(255 * g).astype(np.uint8)[..., None], 3, axis=2)

    def textured_frame(self, seed: int = 0) -> np.ndarray:
        """Smooth random colour frame (H, W, 3) uint8, for photometric checks."""
        w, h = self.frame
        small = np.random.default_rng(seed).integers(40, 216, (h // 10, w // 10, 3))
        return np.kron(small, np.ones((10, 10, 1))).astype(np.uint8)


def centroid(image: np.ndarray) -> np.ndarray:
    """Intensity-weighted centroid (x, y) of an (S, S, 3) image (channel mean)."""
    v = image.astype(np.float64).mean(axis=2)
    ys, xs = np.mgrid[0 : v.shape[0], 0 : v.shape[1]]
    return np.array([(v * xs).sum(), (v * ys).sum()]) / v.sum()


@pytest.fixture
def scene() -> Scene:
    return Scene()


@pytest.fixture
def find_blob():
    return centroid
