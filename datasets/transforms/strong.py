"""The reference's strong ``_sp`` augmentation: imgaug steps on the full frame, then the crop.

``draw_strong_params`` draws one augmentation (a random order of affine, Gaussian noise, blur and
contrast, each with p = 0.5, then a horizontal flip with p = 0.5); ``StrongAugment`` applies it
with the ``"fused"`` backend (one OpenCV warp, photometric steps on the crop) or the ``"imgaug"``
backend (imgaug's own augmenters, then one crop warp). All randomness comes from the ``rng``
argument; a keypoint is zeroed when missing or outside the frame, the affine or the crop.
Reference pipeline and backend differences: docs/reference_compat.md §1.4, §7.4.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import cv2
import numpy as np
from scipy.special import ndtri

from animalpose.datasets.geometry import apply_affine, crop_matrix
from animalpose.datasets.transforms.crop import (
    CropResult,
    check_inputs,
    finish_keypoints,
    inside_frame,
    lut_per_channel,
    warp_crop,
)

__all__ = [
    "AffineStep",
    "NoiseStep",
    "BlurStep",
    "ContrastStep",
    "StrongParams",
    "STRONG_PROBABILITIES",
    "draw_strong_params",
    "affine_step_matrix",
    "StrongAugment",
    "BACKENDS",
]

# --- the reference's _sp constants (synthetic_animal_sp.py, real_animal_sp.py) -----------------
#: Probability of each step (``iaa.Sometimes(0.5, ...)``) and of the flip (``random() <= 0.5``).
STRONG_PROBABILITIES: Mapping[str, float] = MappingProxyType(
    {
        "affine": 0.5,
        "noise": 0.5,
        "blur": 0.5,
        "contrast": 0.5,
        "flip": 0.5,
    }
)
SCALE_RANGE = (0.5, 1.5)  # Affine scale, per axis independently
TRANSLATE_FRACTION = 0.05  # Affine translate_percent +-5 % of the frame width / height
ROTATE_DEGREES = 30.0  # Affine rotate=(-30, 30)
SHEAR_DEGREES = 20.0  # Affine shear=(-20, 20), x axis only under imgaug 0.3.0
FILL_MAX = 255  # Affine cval=(0, 255): imgaug draws U(0, 255) per channel, int() truncates
NOISE_STD = 0.5 * 255  # AdditiveGaussianNoise(scale=0.5*255): a constant, not a range
NOISE_PER_CHANNEL = 0.5  # per_channel=0.5
BLUR_SIGMA_RANGE = (1.0, 5.0)  # GaussianBlur(sigma=(1.0, 5.0))
CONTRAST_RANGE = (0.5, 2.0)  # ContrastNormalization((0.5, 2.0), per_channel=0.5)
CONTRAST_PER_CHANNEL = 0.5
CONTRAST_CENTER = 127  # imgaug's LinearContrast centre for uint8: 127 + alpha (v - 127)
#: Gaussian noise by table look-up (3x faster than drawing normals): entry i is
#: rint(NOISE_STD x Phi^-1((i + 0.5) / NOISE_LEVELS)), clipped to +-255 like imgaug's noise (a
#: uint8 pixel saturates beyond that). Each integer noise value gets its exact probability to
#: within 1 / NOISE_LEVELS.
NOISE_LEVELS = 2**16
NOISE_TABLE = np.clip(
    np.rint(NOISE_STD * ndtri((np.arange(NOISE_LEVELS) + 0.5) / NOISE_LEVELS)), -255, 255
).astype(np.int16)
NOISE_TABLE.flags.writeable = False
#: imgaug ``order`` -> OpenCV interpolation (the affine's ``order=[0, 1]``).
INTERPOLATIONS = {0: cv2.INTER_NEAREST, 1: cv2.INTER_LINEAR}
#: imgaug's keypoints put pixel centres at i + 0.5; ours at i.
IMGAUG_PIXEL_OFFSET = 0.5


@dataclass(frozen=True)
class AffineStep:
    """imgaug ``Affine`` about the frame centre: scale (sx, sy), translate (tx, ty) as fractions of
    (W, H), rotate and x-shear in degrees, interpolation order 0 / 1, fill colour (r, g, b)."""

    scale: tuple[float, float]
    translate: tuple[float, float]
    rotate: float
    shear: float
    order: int
    fill: tuple[int, int, int]


@dataclass(frozen=True)
class NoiseStep:
    """Additive Gaussian noise of std ``NOISE_STD``; ``seed`` seeds its generator."""

    per_channel: bool
    seed: int


@dataclass(frozen=True)
class BlurStep:
    """Gaussian blur; ``sigma`` in pixels of the frame the step acts on."""

    sigma: float


@dataclass(frozen=True)
class ContrastStep:
    """Linear contrast 127 + alpha (v - 127); one alpha for all channels or one per channel."""

    alphas: tuple[float, ...]


Step = AffineStep | NoiseStep | BlurStep | ContrastStep


@dataclass(frozen=True)
class StrongParams:
    """One draw of the ``_sp`` pipeline: the applied steps in application order, then the flip."""

    steps: tuple[Step, ...]
    flip: bool

    @property
    def affine(self) -> AffineStep | None:
        return next((s for s in self.steps if isinstance(s, AffineStep)), None)


def _probabilities(overrides: Mapping[str, float] | None) -> dict[str, float]:
    merged = dict(STRONG_PROBABILITIES)
    for name, p in (overrides or {}).items():
        if name not in merged:
            raise KeyError(f"unknown strong-augmentation step {name!r}; valid: {list(merged)}")
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"probability of {name!r} must be in [0, 1], got {p}")
        merged[name] = float(p)
    return merged


def draw_strong_params(
    rng: np.random.Generator, probabilities: Mapping[str, float] = STRONG_PROBABILITIES
) -> StrongParams:
    """Draw one ``_sp`` augmentation (same distributions as the reference's imgaug sequence).

    Every parameter is drawn on every call, so a seed's stream does not depend on which steps fire.
    ``probabilities`` maps ``"affine" "noise" "blur" "contrast" "flip"`` to their probabilities.
    """
    p = _probabilities(probabilities)
    order = rng.permutation(4)
    fires = rng.random(5) < np.array([p["affine"], p["noise"], p["blur"], p["contrast"], p["flip"]])
    sx, sy = rng.uniform(*SCALE_RANGE, size=2)
    tx, ty = rng.uniform(-TRANSLATE_FRACTION, TRANSLATE_FRACTION, size=2)
    rotate = rng.uniform(-ROTATE_DEGREES, ROTATE_DEGREES)
    shear = rng.uniform(-SHEAR_DEGREES, SHEAR_DEGREES)
    interp = int(rng.integers(0, 2))
    fill = rng.integers(0, FILL_MAX, size=3)
    noise_per_channel = bool(rng.random() < NOISE_PER_CHANNEL)
    noise_seed = int(rng.integers(0, 2**31 - 1))
    sigma = rng.uniform(*BLUR_SIGMA_RANGE)
    contrast_per_channel = bool(rng.random() < CONTRAST_PER_CHANNEL)
    alphas = rng.uniform(*CONTRAST_RANGE, size=3 if contrast_per_channel else 1)
    candidates = (
        AffineStep(
            (float(sx), float(sy)),
            (float(tx), float(ty)),
            float(rotate),
            float(shear),
            interp,
            (int(fill[0]), int(fill[1]), int(fill[2])),
        ),
        NoiseStep(noise_per_channel, noise_seed),
        BlurStep(float(sigma)),
        ContrastStep(tuple(float(a) for a in alphas)),
    )
    steps = tuple(candidates[i] for i in order if fires[i])
    return StrongParams(steps=steps, flip=bool(fires[4]))


def affine_step_matrix(step: AffineStep, frame_size: tuple[int, int]) -> np.ndarray:
    """3x3 matrix of the affine step in our pixel-centre convention, for a (W, H) frame.

    Matches the installed imgaug's ``Affine`` on images exactly: about the centre
    ((W - 1) / 2, (H - 1) / 2), rotate (clockwise as seen for a positive angle), then scale, then
    x-shear x -> x - tanh(shear) y, then translate by (tx W, ty H).
    """
    w, h = frame_size
    t = math.radians(step.rotate)
    rot = np.array([[math.cos(t), -math.sin(t)], [math.sin(t), math.cos(t)]])
    shear = np.array([[1.0, math.tanh(-math.radians(step.shear))], [0.0, 1.0]])
    lin = shear @ np.diag(step.scale) @ rot
    c = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    offset = c + np.array([step.translate[0] * w, step.translate[1] * h]) - lin @ c
    return np.vstack([np.concatenate([lin, offset[:, None]], axis=1), [0.0, 0.0, 1.0]])


# --- imgaug's photometric conventions (both backends) ------------------------------------------
def _contrast_tables(alphas: tuple[float, ...]) -> list[np.ndarray]:
    # imgaug's adjust_contrast_linear: float32 table, clipped, truncated to uint8.
    v = np.arange(256, dtype=np.float32)
    return [
        np.clip(CONTRAST_CENTER + np.float32(a) * (v - CONTRAST_CENTER), 0, 255).astype(np.uint8)
        for a in alphas
    ]


def _blur_kernel_size(sigma: float) -> int:
    """imgaug's kernel size for a Gaussian of ``sigma`` px (99 % / 97 % / 95 % of the weight)."""
    k = 3.3 * sigma if sigma < 3.0 else (2.9 * sigma if sigma < 5.0 else 2.6 * sigma)
    k = int(max(k, 5))
    return k + 1 if k % 2 == 0 else k


# --- the fused backend -------------------------------------------------------------------------
def _add_noise(image: np.ndarray, step: NoiseStep) -> np.ndarray:
    h, w, c = image.shape
    bits = np.random.default_rng(step.seed).integers(
        0, NOISE_LEVELS, size=(h, w, c if step.per_channel else 1), dtype=np.uint16
    )
    out = image.astype(np.int16)
    out += np.take(NOISE_TABLE, bits)
    np.clip(out, 0, 255, out=out)
    return out.astype(np.uint8)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    k = _blur_kernel_size(sigma)
    return cv2.GaussianBlur(
        image, (k, k), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT_101
    )


def _covers(matrix: np.ndarray, frame_size: tuple[int, int], output_size: int) -> bool:
    """Every crop pixel of ``matrix`` samples strictly inside the (W, H) frame."""
    s = output_size - 1
    corners = np.array([[0.0, 0.0], [s, 0.0], [0.0, s], [s, s]])
    lin, off = matrix[:2, :2], matrix[:2, 2]
    back = np.linalg.solve(lin, (corners - off).T).T
    w, h = frame_size
    return bool(((back >= 0) & (back <= [w - 1, h - 1])).all())


def _coverage(matrix: np.ndarray, frame_size: tuple[int, int], output_size: int) -> np.ndarray:
    """(S, S) bool: crop pixels whose source under ``matrix`` lies in the (W, H) frame."""
    w, h = frame_size
    ones = np.full((h, w), 255, dtype=np.uint8)
    return warp_crop(ones, matrix[:2], (output_size, output_size), cv2.INTER_NEAREST, 0) > 0


def _apply_fused(image, keypoints, center, size, params, output_size, flip_index) -> CropResult:
    h, w = image.shape[:2]
    s = output_size
    aff = params.affine
    a3 = affine_step_matrix(aff, (w, h)) if aff is not None else np.eye(3)
    crop = np.vstack([crop_matrix(center, size, (s, s), flip=params.flip), [0.0, 0.0, 1.0]])
    m = crop @ a3
    fill = aff.fill if aff is not None else (0, 0, 0)
    interp = INTERPOLATIONS[aff.order] if aff is not None else cv2.INTER_LINEAR
    out = warp_crop(image, m[:2], (s, s), interp, fill)
    in_frame = in_source = None
    photometric = len(params.steps) > (aff is not None)
    if (aff is not None or photometric) and not (
        _covers(crop, (w, h), s) and _covers(m, (w, h), s)
    ):
        in_frame = _coverage(crop, (w, h), s)
        in_source = _coverage(m, (w, h), s) if aff is not None else in_frame
    affine_done = False
    for step in params.steps:
        if isinstance(step, AffineStep):
            affine_done = True
            if in_source is not None:
                out[~in_source] = fill  # the affine's fill never saw the earlier steps
        elif isinstance(step, NoiseStep):
            out = _add_noise(out, step)
        elif isinstance(step, BlurStep):
            to_crop = crop if affine_done else m  # from the frame the blur acted on
            out = _blur(out, step.sigma * math.sqrt(abs(np.linalg.det(to_crop[:2, :2]))))
        else:
            out = lut_per_channel(out, _contrast_tables(step.alphas))
    if in_frame is not None:
        out[~in_frame] = 0  # the reference pads the crop with black after all steps
    keep = inside_frame(keypoints[:, :2], (w, h))
    keep &= inside_frame(apply_affine(keypoints[:, :2], a3[:2]), (w, h))
    kp = finish_keypoints(
        apply_affine(keypoints[:, :2], m[:2]), keypoints, keep, params.flip, flip_index, s
    )
    return CropResult(out, kp, m[:2].copy(), params.flip)


# --- the imgaug backend ------------------------------------------------------------------------
def _imgaug_step(step: Step):
    import imgaug.augmenters as iaa  # imported on use: slow, and only this backend needs it
    import imgaug.parameters as iap

    if isinstance(step, AffineStep):
        return iaa.Affine(
            scale={"x": step.scale[0], "y": step.scale[1]},
            translate_percent={"x": step.translate[0], "y": step.translate[1]},
            rotate=step.rotate,
            shear={"x": step.shear, "y": 0.0},
            order=step.order,
            cval=iap.DeterministicList(list(step.fill)),
            mode="constant",
        )
    if isinstance(step, NoiseStep):
        return iaa.AdditiveGaussianNoise(
            scale=NOISE_STD, per_channel=step.per_channel, seed=step.seed
        )
    if isinstance(step, BlurStep):
        return iaa.GaussianBlur(sigma=step.sigma)
    return iaa.LinearContrast(
        alpha=iap.DeterministicList(list(step.alphas)), per_channel=len(step.alphas) > 1
    )


def _apply_imgaug(image, keypoints, center, size, params, output_size, flip_index) -> CropResult:
    import imgaug.augmenters as iaa
    from imgaug.augmentables.kps import KeypointsOnImage

    h, w = image.shape[:2]
    s = output_size
    img = np.ascontiguousarray(image)
    kps = KeypointsOnImage.from_xy_array(keypoints[:, :2] + IMGAUG_PIXEL_OFFSET, shape=img.shape)
    for step in params.steps:
        img, kps = _imgaug_step(step)(image=img, keypoints=kps)
    after_affine = kps.to_xy_array().astype(np.float64) - IMGAUG_PIXEL_OFFSET
    cx = float(center[0])
    if params.flip:
        img, kps = iaa.Fliplr(1.0)(image=img, keypoints=kps)
        cx = w - 1 - cx
    crop = crop_matrix((cx, float(center[1])), size, (s, s))
    out = warp_crop(img, crop, (s, s))
    flipped_xy = kps.to_xy_array().astype(np.float64) - IMGAUG_PIXEL_OFFSET
    keep = inside_frame(keypoints[:, :2], (w, h)) & inside_frame(after_affine, (w, h))
    kp = finish_keypoints(
        apply_affine(flipped_xy, crop), keypoints, keep, params.flip, flip_index, s
    )
    aff = params.affine
    a3 = affine_step_matrix(aff, (w, h)) if aff is not None else np.eye(3)
    m = crop_matrix(center, size, (s, s), flip=params.flip) @ a3
    return CropResult(out, kp, m, params.flip)


#: ``StrongAugment`` backends (``--augment-backend``).
BACKENDS = {"fused": _apply_fused, "imgaug": _apply_imgaug}


class StrongAugment:
    """The reference's ``_sp`` strong augmentation on the full frame, then the crop.

    Args:
        output_size: crop side S in pixels.
        flip_index: (K,) channel permutation of a horizontal flip (``spec.flip_index``).
        backend: ``"fused"`` (one warp, OpenCV) or ``"imgaug"`` (imgaug's augmenters).
        probabilities: overrides of ``STRONG_PROBABILITIES`` by step name (e.g. ``{"noise": 0}``).
    """

    def __init__(
        self,
        *,
        output_size: int,
        flip_index,
        backend: str = "fused",
        probabilities: Mapping[str, float] | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise KeyError(f"unknown augment backend {backend!r}; valid: {list(BACKENDS)}")
        self.output_size = int(output_size)
        self.flip_index = np.asarray(flip_index, dtype=np.int64)
        self.backend = backend
        self.probabilities = _probabilities(probabilities)

    def __call__(
        self, image, keypoints, center, size: float, rng: np.random.Generator
    ) -> CropResult:
        params = draw_strong_params(rng, self.probabilities)
        return self.apply(image, keypoints, center, size, params)

    def apply(self, image, keypoints, center, size: float, params: StrongParams) -> CropResult:
        """Apply given parameters (the same ``params`` give the same geometry on every backend)."""
        kp = check_inputs(image, keypoints)
        if len(kp) != len(self.flip_index):
            raise ValueError(f"{len(kp)} keypoints but a flip_index of {len(self.flip_index)}")
        return BACKENDS[self.backend](
            image,
            kp,
            np.asarray(center, dtype=np.float64),
            float(size),
            params,
            self.output_size,
            self.flip_index,
        )
