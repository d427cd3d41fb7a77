"""The reference's crop image (``data.legacy``, docs/reference_compat.md §8).

Its ``crop``: frames more than twice the crop's size are first shrunk (byte-scaled, PIL
bilinear); the 200-px box is copied between integer corners (its ``transform``) into a zero
canvas, which is byte-scaled (min-max over all pixels and channels, rounded) and resized to the
output with PIL's bilinear filter. SciPy's removed ``bytescale`` / ``imresize`` are restated here
with the dtypes NumPy 1 gave them.
"""

from __future__ import annotations

import math

import numpy as np

from animalpose.datasets.geometry import LEGACY_SCALE_UNIT, legacy_transform

__all__ = ["DOWNSCALE_RATIO", "legacy_bytescale", "legacy_crop", "legacy_resize"]

#: The reference shrinks the frame first when the box is at least this many times the output.
DOWNSCALE_RATIO = 2


def legacy_bytescale(data: np.ndarray) -> np.ndarray:
    """SciPy's ``bytescale``: uint8 passes through; otherwise ``(x - min) * 255 / (max - min)``
    over all pixels and channels, clipped, plus 0.5, truncated (a flat image gives 0).

    NumPy 1 computed the factor in float64 and cast it to float32 arrays' dtype (value-based
    casting); NumPy 2 would keep float64 there, so the cast is explicit.
    """
    data = np.asarray(data)
    if data.dtype == np.uint8:
        return data
    low, high = data.min(), data.max()
    span = float(high - low) or 1.0
    factor = np.asarray(255.0 / span, dtype=data.dtype)
    scaled = (data - low) * factor
    return (scaled.clip(0, 255) + data.dtype.type(0.5)).astype(np.uint8)


def legacy_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``scipy.misc.imresize(image, (h, w))`` for an (H, W, 3) image: ``legacy_bytescale``, then
    PIL's bilinear resize to ``size`` = (w, h)."""
    from PIL import Image  # Pillow comes with torchvision and matplotlib

    pil = Image.fromarray(np.ascontiguousarray(legacy_bytescale(image)), mode="RGB")
    return np.asarray(pil.resize(tuple(int(v) for v in size), resample=Image.BILINEAR))


def _resize_matrix(src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """3x3 affine of a resize from (w, h) ``src`` to ``dst`` (pixel centres on integers)."""
    kx, ky = dst[0] / src[0], dst[1] / src[1]
    return np.array([[kx, 0.0, 0.5 * kx - 0.5], [0.0, ky, 0.5 * ky - 0.5], [0.0, 0.0, 1.0]])


def legacy_crop(
    image: np.ndarray, center: np.ndarray, scale: float, output_size: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """The reference's crop of an (H, W, 3) uint8 frame, no rotation.

    Args:
        center: (2,) crop centre, float32 as the reference holds it; scale: side / 200.
        output_size: the square output's side.

    Returns:
        crop (S, S, 3) uint8 (what the reference's input is before ``/ 255 - mean``) and the
        2x3 source -> crop affine of its geometry (None when the frame shrinks below 2 pixels
        and the reference returns a black crop).
    """
    res = int(output_size)
    img = np.asarray(image).astype(np.float32)
    if img.max() > 1:  # im_to_torch
        img /= np.float32(255)
    ht, wd = img.shape[:2]
    c = np.asarray(center, dtype=np.float32).reshape(2)
    s = float(scale)
    to_work = np.eye(3)
    sf = s * LEGACY_SCALE_UNIT / res
    if sf >= DOWNSCALE_RATIO:
        new_size = math.floor(max(ht, wd) / sf)
        new_ht, new_wd = math.floor(ht / sf), math.floor(wd / sf)
        if new_size < 2:
            return np.zeros((res, res, 3), dtype=np.uint8), None
        img = legacy_resize(img, (new_wd, new_ht))
        to_work = _resize_matrix((wd, ht), (new_wd, new_ht))
        c = (c * np.float32(1.0)) / np.float32(sf)  # torch float32 arithmetic
        s = s / sf
    ul = legacy_transform(np.array([0, 0]), c, s, (res, res), invert=True)
    br = legacy_transform(np.array([res, res]), c, s, (res, res), invert=True)
    canvas = np.zeros((br[1] - ul[1], br[0] - ul[0], 3))
    h, w = img.shape[:2]
    new_x = max(0, -ul[0]), min(br[0], w) - ul[0]
    new_y = max(0, -ul[1]), min(br[1], h) - ul[1]
    old_x = max(0, ul[0]), min(w, br[0])
    old_y = max(0, ul[1]), min(h, br[1])
    canvas[new_y[0] : new_y[1], new_x[0] : new_x[1]] = img[old_y[0] : old_y[1], old_x[0] : old_x[1]]
    crop = legacy_resize(canvas, (res, res))
    shift = np.array([[1.0, 0.0, -ul[0]], [0.0, 1.0, -ul[1]], [0.0, 0.0, 1.0]])
    to_crop = _resize_matrix((canvas.shape[1], canvas.shape[0]), (res, res)) @ shift @ to_work
    return crop, to_crop[:2]
