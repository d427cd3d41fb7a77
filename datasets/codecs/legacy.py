"""The reference's heatmap targets (``data.legacy``, docs/reference_compat.md §8).

Its targets sit on an integer cell: ``trunc(res * (x - c) / (200 s) + res / 2)`` (its
``transform``: 1-based, truncated toward zero, centre float32, scale float64), drawn by its
``draw_labelmap``: a (6 sigma + 1) square patch whose corner is ``trunc(pt - 3 sigma)``, cut at the
map border, with weight 0 only when the corner test says the patch misses the map. Samples of a
legacy data set carry each keypoint at the corner of its cell in crop pixels, ``cell * stride -
0.5``, so this codec's ``trunc((u + 0.5) / stride)`` gives the cell back exactly; NaN coordinates
mean "not drawn" (an empty map that keeps its weight).
"""

from __future__ import annotations

import numpy as np
import torch

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.geometry import LEGACY_SCALE_UNIT, legacy_transform

__all__ = [
    "LegacyHeatmap",
    "legacy_cell_to_input",
    "legacy_gaussian_patch",
    "legacy_heatmap_cells",
]

#: The reference measures crop sizes in units of 200 pixels ("scale").
SCALE_UNIT = LEGACY_SCALE_UNIT


def legacy_heatmap_cells(
    points: np.ndarray, center: np.ndarray, scale: float, heatmap_size: int
) -> np.ndarray:
    """(K, 2) int64 0-based heatmap cells of the reference's target for (K, 2) frame points.

    Its loader's dtypes: points float32 and ``pt + 1`` in float32 (a torch tensor), centre
    float32, ``scale`` a Python float; then its ``transform`` (``geometry.legacy_transform``:
    ``pt - 1``, the ``get_transform`` matrix by ``np.dot`` in float64, ``astype(int) + 1``,
    truncation toward zero). ``draw_labelmap`` gets that result - 1, the cell returned here.
    """
    pts = np.asarray(points, dtype=np.float32)[:, :2]
    c = np.asarray(center, dtype=np.float32).reshape(2)
    res = (int(heatmap_size), int(heatmap_size))
    cells = [legacy_transform(p + np.float32(1), c, float(scale), res) - 1 for p in pts]
    return np.asarray(cells, dtype=np.int64).reshape(-1, 2)


def legacy_cell_to_input(cells: np.ndarray, stride: float) -> np.ndarray:
    """Integer heatmap cells -> crop pixels ``cell * stride - 0.5`` (float32 exact), the point
    that ``LegacyHeatmap`` maps back to the same cell."""
    return np.asarray(cells, dtype=np.float64) * float(stride) - 0.5


def legacy_gaussian_patch(sigma: float) -> np.ndarray:
    """The reference's (n, n) float32 Gaussian patch: ``n = len(arange(0, 6 sigma + 1))``,
    centre ``(6 sigma + 1) // 2``, values ``exp(-(dx^2 + dy^2) / (2 sigma^2))`` in float64."""
    size = 6 * sigma + 1
    x = np.arange(0, size, 1, float)
    y = x[:, None]
    x0 = size // 2
    return np.exp(-((x - x0) ** 2 + (y - x0) ** 2) / (2 * sigma**2)).astype(np.float32)


class LegacyHeatmap(MSRAHeatmap):
    """The reference's targets (module docs); decoding is ``MSRAHeatmap``'s.

    Encode: cell ``trunc((u + 0.5) / stride)``; patch corner ``ul = trunc(cell - 3 sigma)``, far
    corner ``br = trunc(cell + 3 sigma + 1)``; weight = visible, times 0 when ``ul >= size`` or
    ``br < 0`` on either axis; a NaN keypoint is not drawn and keeps its weight.
    """

    def __repr__(self) -> str:
        return super().__repr__().replace("MSRAHeatmap", "LegacyHeatmap", 1)

    def _encode_tensor(self, keypoints: torch.Tensor, visible: torch.Tensor):
        kp = keypoints.float()
        vis = visible.to(kp.device).float()
        w_hm, h_hm = self.heatmap_size
        sx, sy = self.stride
        drawn = torch.isfinite(kp).all(-1)
        safe = torch.nan_to_num(kp, nan=0.0, posinf=0.0, neginf=0.0)
        cell_x = torch.trunc((safe[..., 0] + 0.5) / sx)
        cell_y = torch.trunc((safe[..., 1] + 0.5) / sy)
        reach = 3 * self.sigma
        ul_x, ul_y = torch.trunc(cell_x - reach), torch.trunc(cell_y - reach)
        br_x, br_y = torch.trunc(cell_x + reach + 1), torch.trunc(cell_y + reach + 1)
        missed = (ul_x >= w_hm) | (ul_y >= h_hm) | (br_x < 0) | (br_y < 0)
        weights = vis * torch.where(drawn & missed, 0.0, 1.0)
        paint = drawn & ~missed
        patch = torch.from_numpy(legacy_gaussian_patch(self.sigma)).to(kp.device)
        n = patch.shape[0]
        xs = torch.arange(w_hm, device=kp.device, dtype=kp.dtype)
        ys = torch.arange(h_hm, device=kp.device, dtype=kp.dtype)
        gx = xs - ul_x[..., None]  # (..., K, w): patch column of every map column
        gy = ys - ul_y[..., None]  # (..., K, h)
        in_x = (gx >= 0) & (gx < n) & (xs < br_x[..., None])
        in_y = (gy >= 0) & (gy < n) & (ys < br_y[..., None])
        ix = gx.clamp(0, n - 1).long()
        iy = gy.clamp(0, n - 1).long()
        values = patch[iy[..., :, None], ix[..., None, :]]  # (..., K, h, w)
        mask = in_y[..., :, None] & in_x[..., None, :] & paint[..., None, None]
        return torch.where(mask, values, torch.zeros((), device=kp.device)), weights
