"""Crop geometry: boxes, crop affine matrices, inverse transforms, flips.

Conventions (stated once, used everywhere): coordinates are 0-based pixels, (x, y); pixel ``i``
covers ``[i - 0.5, i + 0.5]``, so its centre is the integer ``i``. A crop is a square (or
``(w, h)`` rectangle) of the source given by its ``center`` and ``size`` in source pixels plus a
rotation in degrees (counter-clockwise as seen). ``crop_matrix`` returns the 2x3 affine ``A``,
``dst = A @ [x, y, 1]``, mapping the crop's source square *edge to edge* onto the output
``[-0.5, W - 0.5]``; OpenCV's ``warpAffine`` uses the same pixel-centre convention, so images and
keypoints move together exactly. The reference's conventions (1-based points, scale in units of
200 px) live only in the ``legacy_*`` functions at the bottom (docs/reference_compat.md §7.1).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "box_from_points",
    "crop_matrix",
    "invert_affine",
    "apply_affine",
    "flip_matrix",
    "flip_keypoints",
    "legacy_center_scale",
    "legacy_transform_matrix",
    "legacy_transform",
    "LEGACY_SCALE_UNIT",
]


def box_from_points(points: np.ndarray, frame_size: tuple[int, int] | None = None) -> np.ndarray:
    """Axis-aligned box ``[x0, y0, x1, y1]`` of the (N, 2) ``points``.

    ``frame_size`` (w, h), when given, clips the box to the frame's pixel centres.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0:
        raise ValueError("box_from_points needs at least one point")
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    if frame_size is not None:
        w, h = frame_size
        x0, x1 = np.clip([x0, x1], 0, w - 1)
        y0, y1 = np.clip([y0, y1], 0, h - 1)
    return np.array([x0, y0, x1, y1], dtype=np.float64)


def crop_matrix(
    center: tuple[float, float] | np.ndarray,
    size: float | tuple[float, float] | np.ndarray,
    output_size: tuple[int, int],
    rotation: float = 0.0,
    flip: bool = False,
) -> np.ndarray:
    """2x3 affine mapping source pixels to crop pixels.

    Args:
        center: crop centre (x, y) in source pixels.
        size: crop side in source pixels, or (w, h).
        output_size: (W, H) of the crop in output pixels.
        rotation: degrees; positive turns the *content* counter-clockwise in the crop.
        flip: mirror the crop horizontally (x -> W - 1 - x) after the rotation.
    """
    cx, cy = float(center[0]), float(center[1])
    sw, sh = (float(size), float(size)) if np.isscalar(size) else (float(size[0]), float(size[1]))
    if sw <= 0 or sh <= 0:
        raise ValueError(f"crop size must be positive, got {(sw, sh)}")
    out_w, out_h = output_size
    kx, ky = out_w / sw, out_h / sh
    # Image y points down, so turning content counter-clockwise as seen is a clockwise
    # rotation in (x, y) maths coordinates.
    t = math.radians(rotation)
    c, s = math.cos(t), math.sin(t)
    rot = np.array([[c, s], [-s, c]])
    lin = np.diag([kx, ky]) @ rot
    out_c = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0])
    offset = out_c - lin @ np.array([cx, cy])
    m = np.concatenate([lin, offset[:, None]], axis=1)
    if flip:
        m = flip_matrix(out_w) @ np.vstack([m, [0.0, 0.0, 1.0]])
    return m.astype(np.float64)


def flip_matrix(width: int) -> np.ndarray:
    """2x3 affine of a horizontal mirror of an image ``width`` pixels wide: x -> W - 1 - x."""
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a 2x3 affine (or a (..., 2, 3) stack)."""
    m = np.asarray(matrix, dtype=np.float64)
    lin, off = m[..., :, :2], m[..., :, 2:]
    inv = np.linalg.inv(lin)
    return np.concatenate([inv, -inv @ off], axis=-1)


def apply_affine(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2x3 affine to (..., N, 2) points (extra trailing columns are kept untouched)."""
    pts = np.asarray(points, dtype=np.float64)
    m = np.asarray(matrix, dtype=np.float64)
    xy = pts[..., :2] @ np.swapaxes(m[..., :, :2], -1, -2) + m[..., None, :, 2]
    if pts.shape[-1] > 2:
        return np.concatenate([xy, pts[..., 2:]], axis=-1)
    return xy


def flip_keypoints(keypoints: np.ndarray, width: int, flip_index: np.ndarray) -> np.ndarray:
    """Mirror (..., K, C) keypoints in an image ``width`` wide and swap left/right channels."""
    out = np.array(keypoints, dtype=np.float64, copy=True)
    out[..., 0] = width - 1 - out[..., 0]
    return out[..., flip_index, :]


# --- the reference's conventions (bearpaw/pytorch-pose lineage) -------------------------------

#: The reference measures crop sizes in units of 200 pixels ("scale").
LEGACY_SCALE_UNIT = 200.0


def legacy_center_scale(box: np.ndarray, factor: float) -> tuple[np.ndarray, float]:
    """Reference crop of a box: centre of the box and ``scale = factor * longer side / 200``."""
    x0, y0, x1, y1 = [float(v) for v in box]
    center = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
    return center, factor * max(x1 - x0, y1 - y0) / LEGACY_SCALE_UNIT


def legacy_transform_matrix(
    center: np.ndarray, scale: float, res: tuple[int, int], rot: float = 0.0
) -> np.ndarray:
    """The reference's ``get_transform``: 3x3 matrix from 1-based source to 0-based crop pixels.

    ``res`` is (h, w) as in the reference. Rotation turns about the crop centre.
    """
    h = LEGACY_SCALE_UNIT * scale
    t = np.zeros((3, 3))
    t[0, 0] = float(res[1]) / h
    t[1, 1] = float(res[0]) / h
    t[0, 2] = res[1] * (-float(center[0]) / h + 0.5)
    t[1, 2] = res[0] * (-float(center[1]) / h + 0.5)
    t[2, 2] = 1
    if rot != 0:
        rot = -rot  # the reference rotates with this sign
        rot_mat = np.zeros((3, 3))
        rot_rad = rot * np.pi / 180
        sn, cs = np.sin(rot_rad), np.cos(rot_rad)
        rot_mat[0, :2] = [cs, -sn]
        rot_mat[1, :2] = [sn, cs]
        rot_mat[2, 2] = 1
        t_mat = np.eye(3)
        t_mat[0, 2] = -res[1] / 2
        t_mat[1, 2] = -res[0] / 2
        t_inv = t_mat.copy()
        t_inv[:2, 2] *= -1
        t = t_inv @ rot_mat @ t_mat @ t
    return t


def legacy_transform(
    pt: np.ndarray,
    center: np.ndarray,
    scale: float,
    res: tuple[int, int],
    invert: bool = False,
    rot: float = 0.0,
) -> np.ndarray:
    """The reference's ``transform``: a 1-based point to integer crop coordinates (+1), or back.

    Reproduces the reference's rounding (``astype(int) + 1``) so its heatmap targets and its
    ``preds*.mat`` coordinates can be recreated bit for bit.
    """
    t = legacy_transform_matrix(center, scale, res, rot=rot)
    if invert:
        t = np.linalg.inv(t)
    new_pt = np.array([pt[0] - 1, pt[1] - 1, 1.0]).T
    new_pt = t @ new_pt
    return new_pt[:2].astype(int) + 1
