"""Crop results, the plain (validation) crop, and the crop helpers every augmenter shares."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from animalpose.datasets.geometry import apply_affine, crop_matrix

__all__ = [
    "CropResult",
    "CenterCrop",
    "warp_crop",
    "mark_outside",
    "check_inputs",
    "inside_frame",
    "finish_keypoints",
    "lut_per_channel",
]


@dataclass
class CropResult:
    """What an augmenter returns: the crop and everything needed to map back.

    image: (S, S, 3) uint8 RGB crop. keypoints: (K, 3) crop pixels + visible, model order.
    matrix: (2, 3) source -> crop affine. flipped: the crop is mirrored.
    """

    image: np.ndarray
    keypoints: np.ndarray
    matrix: np.ndarray
    flipped: bool = False


def warp_crop(
    image: np.ndarray,
    matrix: np.ndarray,
    output_size: tuple[int, int],
    interpolation: int = cv2.INTER_LINEAR,
    border_value: tuple[int, int, int] = (0, 0, 0),
) -> np.ndarray:
    """Warp ``image`` by the 2x3 ``matrix`` into an ``output_size`` (w, h) crop (one resample)."""
    return cv2.warpAffine(
        image,
        np.asarray(matrix, dtype=np.float64),
        tuple(int(v) for v in output_size),
        flags=interpolation,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border_value,
    )


def mark_outside(keypoints: np.ndarray, width: int, height: int) -> np.ndarray:
    """Zero (x, y, visible) of keypoints outside ``[-0.5, W - 0.5) x [-0.5, H - 0.5)``.

    Missing keypoints (visible <= 0) are zeroed too, so a batch never carries stale coordinates.
    """
    kp = np.array(keypoints, dtype=np.float32, copy=True)
    x, y = kp[:, 0], kp[:, 1]
    outside = ~((x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5))
    outside |= ~np.isfinite(kp[:, :2]).all(axis=1) | (kp[:, 2] <= 0)
    kp[outside] = 0.0
    return kp


class CenterCrop:
    """The un-augmented crop: square of ``size`` source pixels around ``center``, resized to
    ``output_size`` pixels in one bilinear warp. Used for validation, testing and pseudo-labels."""

    def __init__(self, output_size: int) -> None:
        self.output_size = int(output_size)

    def __call__(self, image, keypoints, center, size, rng=None) -> CropResult:
        s = self.output_size
        m = crop_matrix(center, size, (s, s))
        crop = warp_crop(image, m, (s, s))
        kp = np.asarray(keypoints, dtype=np.float64)
        moved = np.concatenate([apply_affine(kp[:, :2], m), kp[:, 2:3]], axis=1)
        return CropResult(crop, mark_outside(moved, s, s), m, False)


def check_inputs(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """(K, 3) float64 keypoints; ValueError unless the image is (H, W, 3) uint8 and the keypoints
    (K, 3) (x, y, visible)."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"augmenters take (H, W, 3) uint8 images, got {image.shape} {image.dtype}")
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != 3:
        raise ValueError(f"keypoints must be (K, 3) (x, y, visible), got {kp.shape}")
    return kp


def inside_frame(xy: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(K,) bool: (K, 2) points inside a (W, H) frame's pixel area [-0.5, W - 0.5)."""
    w, h = frame_size
    x, y = xy[:, 0], xy[:, 1]
    return (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)


def finish_keypoints(
    crop_xy: np.ndarray,
    keypoints: np.ndarray,
    keep: np.ndarray,
    flip: bool,
    flip_index: np.ndarray,
    output_size: int,
) -> np.ndarray:
    """Crop-pixel keypoints (K, 3): drop ``~keep``, swap channels on a flip, zero off-crop ones."""
    visible = np.where(keep, keypoints[:, 2], 0.0)
    out = np.concatenate([crop_xy, visible[:, None]], axis=1)
    if flip:
        out = out[flip_index]
    return mark_outside(out, output_size, output_size)


def lut_per_channel(image: np.ndarray, tables: list[np.ndarray]) -> np.ndarray:
    """Apply one 256-entry uint8 table to all channels, or one table per channel."""
    lut = tables[0] if len(tables) == 1 else np.stack(tables, axis=-1)[None]
    return cv2.LUT(image, lut)
