"""The reference loaders' quirks (``data.legacy``, docs/reference_compat.md §8).

Each ``legacy_*_targets`` function restates one reference loader's rule for a sample's crop box
and targets (which landmarks get a heatmap, which weight each keeps) as a ``LegacyTargets``;
``legacy_sample_keypoints`` turns it into the sample's crop keypoints for
``codecs.legacy.LegacyHeatmap``. Nothing here runs unless a data set is built with ``legacy=True``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animalpose.datasets.codecs.legacy import (
    SCALE_UNIT,
    legacy_cell_to_input,
    legacy_heatmap_cells,
)
from animalpose.datasets.geometry import apply_affine

__all__ = [
    "REFERENCE_FRAME",
    "LegacyTargets",
    "legacy_sample_keypoints",
    "legacy_synthetic_targets",
    "legacy_tigdog_targets",
]

#: synthetic_animal_sp.py clips the box to, and keeps keypoints inside, a 640 x 480 frame
#: whatever the image's size (the size of its renders).
REFERENCE_FRAME = (640, 480)


@dataclass(frozen=True)
class LegacyTargets:
    """One sample as the reference's loader holds it.

    points: (K, 2) float32 frame pixels; drawn: (K,) bool, the landmark gets a heatmap (its
    ``tpts[i, 1] > 0``); weights: (K,) float32 target weights before ``draw_labelmap``'s test;
    center: (2,) float32 (a ``torch.Tensor``); scale: float64 crop side / 200.
    """

    points: np.ndarray
    drawn: np.ndarray
    weights: np.ndarray
    center: np.ndarray
    scale: float

    @property
    def size(self) -> float:
        """The crop side in frame pixels."""
        return SCALE_UNIT * self.scale


def legacy_tigdog_targets(landmarks: np.ndarray, box_factor: float) -> LegacyTargets:
    """real_animal(_sp).py: (K, 3) raw (x, y, visibility) -> its targets.

    Box: the positive x values and the positive y values, each taken separately, whatever the
    visibility; ``scale = longer side / 200 * box_factor``. A landmark is drawn when y > 0 and
    keeps its raw visibility as weight (occluded landmarks get a map; (0, 0) with visibility 1
    keeps weight 1 with no map). Raises ValueError when no x or no y is positive.
    """
    raw = np.asarray(landmarks, dtype=np.float64)
    x, y = raw[:, 0], raw[:, 1]
    xs, ys = x[x > 0], y[y > 0]
    if xs.size == 0 or ys.size == 0:
        raise ValueError("no landmark has positive coordinates")
    x_min, x_max, y_min, y_max = (float(v) for v in (xs.min(), xs.max(), ys.min(), ys.max()))
    center = np.array([(x_min + x_max) / 2.0, (y_min + y_max) / 2.0], dtype=np.float32)
    scale = max(x_max - x_min, y_max - y_min) / SCALE_UNIT * box_factor
    points = raw[:, :2].astype(np.float32)
    return LegacyTargets(points, points[:, 1] > 0, raw[:, 2].astype(np.float32), center, scale)


def _numpy1_clip(value: np.float16, high: int) -> float:
    """``np.clip(float16 scalar, 0, high)`` under NumPy 1's promotion: the Python ints made it
    float64 (NumPy 2 keeps float16, and the later ``/ 2.0`` rounds to float16)."""
    return min(max(float(value), 0.0), float(high))


def legacy_synthetic_targets(
    vertices: np.ndarray, rows: np.ndarray, box_factor: float
) -> LegacyTargets:
    """synthetic_animal_sp.py: the (3299, 3) ``_kpts.npy`` and the K vertex rows -> its targets.

    Everything starts from the float16 copy of the file. Box: min / max over all vertices, each
    clipped to ``REFERENCE_FRAME`` in float64, ``scale = longer side / 200 * box_factor``. The K
    keypoints are visible; one outside ``[0, 640] x [0, 480]`` (the edges inside) is zeroed, weight
    included; a keypoint is drawn when y > 0 (y = 0 keeps weight 1 with no map).
    """
    v16 = np.asarray(vertices).astype(np.float16)
    w, h = REFERENCE_FRAME
    x_min, x_max = (_numpy1_clip(v, w) for v in (v16[:, 0].min(), v16[:, 0].max()))
    y_min, y_max = (_numpy1_clip(v, h) for v in (v16[:, 1].min(), v16[:, 1].max()))
    center = np.array([(x_min + x_max) / 2.0, (y_min + y_max) / 2.0], dtype=np.float32)
    scale = max(x_max - x_min, y_max - y_min) / SCALE_UNIT * box_factor
    pts = v16[np.asarray(rows)].astype(np.float32)
    pts[:, 2] = 1.0
    x, y = pts[:, 0], pts[:, 1]
    pts[(x < 0) | (y < 0) | (x > w) | (y > h)] = 0.0
    return LegacyTargets(pts[:, :2].copy(), pts[:, 1] > 0, pts[:, 2].copy(), center, scale)


def legacy_sample_keypoints(
    targets: LegacyTargets,
    *,
    matrix: np.ndarray,
    flipped: bool,
    flip_index: np.ndarray,
    exact: bool,
    input_size: int,
    heatmap_size: int,
) -> np.ndarray:
    """(K, 3) float32 sample keypoints for ``LegacyHeatmap``: crop (x, y), NaN when not drawn,
    and the weight.

    ``exact`` (the un-augmented crop of ``targets.center`` / ``targets.size``): each keypoint at
    the corner of the reference's own cell (``legacy_heatmap_cells``), so the cell is bit-exact.
    Otherwise the points go through ``matrix`` (source -> crop, augmentation included) and the
    codec truncates; ``flipped`` swaps channels by ``flip_index``.
    """
    if exact:
        cells = legacy_heatmap_cells(targets.points, targets.center, targets.scale, heatmap_size)
        xy = legacy_cell_to_input(cells, input_size / heatmap_size)
    else:
        xy = apply_affine(targets.points.astype(np.float64), matrix)
    out = np.concatenate([xy, targets.weights[:, None].astype(np.float64)], axis=1)
    out[~targets.drawn, :2] = np.nan
    if flipped:
        out = out[np.asarray(flip_index)]
    return out.astype(np.float32)
