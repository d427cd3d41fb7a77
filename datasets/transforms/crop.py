"""Crop results, the plain (validation) crop, and batched on-device input normalisation."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from animalpose.datasets.geometry import apply_affine, crop_matrix

__all__ = ["CropResult", "CenterCrop", "warp_crop", "mark_outside", "Normalizer"]


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


class Normalizer:
    """uint8 (B, 3, H, W) batch -> float input, on the batch's device.

    Default: ``(x / 255 - mean) / std``. ``legacy=True`` reproduces the reference's input
    (reference-compat spec 2): each crop min-max stretched to 0..255 over all its pixels (old
    ``scipy.misc.imresize`` behaviour), divided by 255, mean subtracted, std ignored. Reference
    checkpoints need the legacy input.
    """

    def __init__(self, mean, std, legacy: bool = False) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, 3, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(1, 3, 1, 1)
        if (self.std <= 0).any():
            raise ValueError(f"std must be positive, got {self.std.flatten().tolist()}")
        self.legacy = bool(legacy)
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # One copy per device, made once: a per-batch host->device copy would stall the stream.
        if device not in self._on_device:
            self._on_device[device] = (self.mean.to(device), self.std.to(device))
        return self._on_device[device]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        mean, std = self._stats(x.device)
        if self.legacy:
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            hi = x.amax(dim=(1, 2, 3), keepdim=True)
            # imresize's bytescale: (x - lo) * 255 / (hi - lo), truncated to uint8.
            x = torch.floor((x - lo) * (255.0 / (hi - lo).clamp_min(1e-6)))
            return x / 255.0 - mean
        return (x / 255.0 - mean) / std
