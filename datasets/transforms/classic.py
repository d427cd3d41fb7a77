"""The reference's classic (non-``_sp``) augmentation: scale, rotation, flip and gain, one warp.

Crop side x clamp(1 + f N, 1 - f, 1 + f), rotation clamp(r N, -2 r, 2 r) with p = 0.6 else 0,
horizontal flip p = 0.5, per-channel gain U(0.8, 1.2) clipped at 255 (bearpaw/pytorch-pose
lineage; docs/reference_compat.md §1.4, §7.4).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animalpose.datasets.geometry import apply_affine, crop_matrix
from animalpose.datasets.transforms.crop import (
    CropResult,
    check_inputs,
    finish_keypoints,
    inside_frame,
    lut_per_channel,
    warp_crop,
)

__all__ = ["ClassicParams", "draw_classic_params", "ClassicAugment"]

#: The reference's classic constants (synthetic_animal.py, bearpaw/pytorch-pose).
CLASSIC_ROTATION_PROBABILITY = 0.6  # r = clamp(randn * rf, -2 rf, 2 rf) if random() <= 0.6 else 0
CLASSIC_FLIP_PROBABILITY = 0.5
GAIN_RANGE = (0.8, 1.2)  # img[c].mul_(random.uniform(0.8, 1.2)).clamp_(0, 1)


@dataclass(frozen=True)
class ClassicParams:
    """One classic draw: crop-side factor, rotation (deg, counter-clockwise as seen), flip and
    per-channel gains."""

    scale: float
    rotation: float
    flip: bool
    gains: tuple[float, float, float]


def draw_classic_params(
    rng: np.random.Generator, scale_factor: float, rot_factor: float
) -> ClassicParams:
    scale = float(
        np.clip(1.0 + scale_factor * rng.standard_normal(), 1 - scale_factor, 1 + scale_factor)
    )
    rotation = float(np.clip(rot_factor * rng.standard_normal(), -2 * rot_factor, 2 * rot_factor))
    if not rng.random() < CLASSIC_ROTATION_PROBABILITY:
        rotation = 0.0
    flip = bool(rng.random() < CLASSIC_FLIP_PROBABILITY)
    g = rng.uniform(*GAIN_RANGE, size=3)
    return ClassicParams(scale, rotation, flip, (float(g[0]), float(g[1]), float(g[2])))


class ClassicAugment:
    """The reference's non-``_sp`` augmentation: scale, rotation, flip and colour gain, one warp.

    Args:
        output_size: crop side S in pixels.
        flip_index: (K,) channel permutation of a horizontal flip.
        scale_factor: ``--scale-factor``; the crop side is scaled by clamp(1 + f N, 1 - f, 1 + f).
        rot_factor: ``--rot-factor`` in degrees; rotation clamp(r N, -2 r, 2 r) with p = 0.6.
    """

    def __init__(
        self, *, output_size: int, flip_index, scale_factor: float = 0.25, rot_factor: float = 30.0
    ) -> None:
        self.output_size = int(output_size)
        self.flip_index = np.asarray(flip_index, dtype=np.int64)
        self.scale_factor = float(scale_factor)
        self.rot_factor = float(rot_factor)

    def __call__(
        self, image, keypoints, center, size: float, rng: np.random.Generator
    ) -> CropResult:
        return self.apply(
            image,
            keypoints,
            center,
            size,
            draw_classic_params(rng, self.scale_factor, self.rot_factor),
        )

    def apply(self, image, keypoints, center, size: float, params: ClassicParams) -> CropResult:
        kp = check_inputs(image, keypoints)
        s = self.output_size
        m = crop_matrix(
            center, float(size) * params.scale, (s, s), rotation=params.rotation, flip=params.flip
        )
        out = warp_crop(image, m, (s, s))
        v = np.arange(256, dtype=np.float64)
        out = lut_per_channel(
            out, [np.clip(np.rint(v * g), 0, 255).astype(np.uint8) for g in params.gains]
        )
        keep = inside_frame(kp[:, :2], (image.shape[1], image.shape[0]))
        kp = finish_keypoints(apply_affine(kp[:, :2], m), kp, keep, params.flip, self.flip_index, s)
        return CropResult(out, kp, m, params.flip)
