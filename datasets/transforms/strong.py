"""Training augmenters: the reference's strong ``_sp`` pipeline and its classic pipeline.

The reference's ``_sp`` pipeline (JitengMu/Learning-from-Synthetic-Animals,
``pose/datasets/synthetic_animal_sp.py`` and ``real_animal_sp.py``; both identical), as read from
its source:

- The crop box (centre, side) is computed *before* augmentation from the un-augmented
  annotation and never recomputed: the affine moves the animal relative to a fixed box (it scales
  and turns about the frame centre), so parts of the animal can leave the crop.
- Training only, on the full frame and its keypoints together, an imgaug ``Sequential`` with
  ``random_order=True`` (a fresh random permutation each call) of four steps, each wrapped in
  ``Sometimes(0.5)``: an ``Affine`` (independent x/y scale U(0.5, 1.5); translation U(-5, 5) % of
  the frame per axis; rotation U(-30, 30) deg; shear U(-20, 20) deg; nearest or bilinear with equal
  odds; constant fill, imgaug drawing one fill value per channel from U(0, 255)),
  ``AdditiveGaussianNoise`` (std fixed at 0.5 x 255, not a range; independent noise per channel
  with probability 0.5, else one noise plane for all channels), ``GaussianBlur`` (sigma
  U(1, 5)) and ``ContrastNormalization`` (= ``LinearContrast``: v -> 127 + alpha (v - 127),
  alpha U(0.5, 2), one alpha per channel with probability 0.5).
- Its README names imgaug 0.3.0, where a tuple ``shear`` shears the x axis only (y-axis shear,
  and "a tuple shears both axes by the same angle", came in imgaug 0.4.0, PR #482). We shear x
  only, as the reference's runs did.
- The synthetic loader then zeroes keypoints that left the 640 x 480 frame; the real loader
  does not.
- Then a horizontal flip with p = 0.5 (Python ``random``, outside imgaug): the frame is mirrored,
  keypoint x -> W - x (one pixel off the image's W - 1 - x), left/right channels are swapped and the
  crop centre is mirrored the same way.
- Then the crop: rotation 0 (``--scale-factor`` / ``--rot-factor`` are unused by ``_sp``),
  padding outside the frame black, one bilinear resize (``scipy.misc.imresize``).

Ours: the flip is exact (x -> W - 1 - x), all randomness comes from the ``rng`` argument, and a
keypoint is zeroed (x = y = visible = 0) when it is missing, outside the source frame, outside the
frame after the affine, or outside the crop (for synthetic and real data alike).

Backends of ``StrongAugment`` (both apply the parameters drawn by ``draw_strong_params``):

- ``"imgaug"``: imgaug's own augmenters run the drawn steps on the full frame, then imgaug's
  ``Fliplr``, then one bilinear crop warp. The installed imgaug (``imaug`` 0.4.3) composes the
  affine as rotate -> scale -> x-shear (x' = x - tanh(shear) y) -> translate about the frame centre,
  where 0.3.0 used skimage's ``AffineTransform`` (scale -> shear -> rotate, sin/cos of the shear):
  same parameter ranges, a slightly different family of matrices. Its keypoints have pixel
  centres at i + 0.5, so we add 0.5 before and subtract it after.
- ``"fused"`` (default, fast): the same parameters; affine, flip and crop composed into one 2x3
  matrix and the frame warped once into the S x S crop (nearest or bilinear as drawn, fill as
  drawn); the photometric steps then run on the crop in the drawn order. Differences from
  ``"imgaug"``: one resampling instead of two (sharper); Gaussian noise is drawn per *crop* pixel
  (by table look-up, see ``NOISE_TABLE``; the reference draws it per frame pixel and the crop
  resize then smooths it); the blur sigma is
  converted to crop pixels by sqrt|det| of the linear map from the frame the blur acted on to the
  crop (an isotropic stand-in for a sheared blur); which regions see which steps is kept (the
  affine's fill is reset to its colour where the affine falls in the order, the out-of-frame
  padding is set black at the end), but blur and noise near those borders mix slightly
  differently. Keypoints and the returned matrix agree between backends to float32 precision.

The classic pipeline (reference ``synthetic_animal.py`` / ``real_animal.py``, bearpaw/pytorch-pose
lineage): crop side x clamp(1 + f N, 1 - f, 1 + f) (f = ``--scale-factor`` 0.25), rotation
clamp(r N, -2 r, 2 r) (r = ``--rot-factor`` 30) with p = 0.6 else 0, horizontal flip p = 0.5,
per-channel gain U(0.8, 1.2) clipped at 255; one warp. The reference multiplies the frame before
cropping and mirrors the frame before rotating; we apply the gain to the crop and mirror the
rotated crop (the same distribution: the rotation angle is symmetric about 0).
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
from animalpose.datasets.transforms.crop import CenterCrop, CropResult, mark_outside, warp_crop

__all__ = [
    "AffineStep",
    "NoiseStep",
    "BlurStep",
    "ContrastStep",
    "StrongParams",
    "ClassicParams",
    "STRONG_PROBABILITIES",
    "draw_strong_params",
    "draw_classic_params",
    "affine_step_matrix",
    "StrongAugment",
    "ClassicAugment",
    "AUGMENTERS",
    "BACKENDS",
    "build_augmenter",
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

# --- the reference's classic constants (synthetic_animal.py, bearpaw/pytorch-pose) -------------
CLASSIC_ROTATION_PROBABILITY = 0.6  # r = clamp(randn * rf, -2 rf, 2 rf) if random() <= 0.6 else 0
CLASSIC_FLIP_PROBABILITY = 0.5
GAIN_RANGE = (0.8, 1.2)  # img[c].mul_(random.uniform(0.8, 1.2)).clamp_(0, 1)


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


# --- shared pieces ----------------------------------------------------------------------------
def _check_inputs(image: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"augmenters take (H, W, 3) uint8 images, got {image.shape} {image.dtype}")
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 2 or kp.shape[1] != 3:
        raise ValueError(f"keypoints must be (K, 3) (x, y, visible), got {kp.shape}")
    return kp


def _inside_frame(xy: np.ndarray, frame_size: tuple[int, int]) -> np.ndarray:
    """(K,) bool: (K, 2) points inside a (W, H) frame's pixel area [-0.5, W - 0.5)."""
    w, h = frame_size
    x, y = xy[:, 0], xy[:, 1]
    return (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)


def _finish_keypoints(
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


def _lut_per_channel(image: np.ndarray, tables: list[np.ndarray]) -> np.ndarray:
    """Apply one 256-entry uint8 table to all channels, or one table per channel."""
    lut = tables[0] if len(tables) == 1 else np.stack(tables, axis=-1)[None]
    return cv2.LUT(image, lut)


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
            out = _lut_per_channel(out, _contrast_tables(step.alphas))
    if in_frame is not None:
        out[~in_frame] = 0  # the reference pads the crop with black after all steps
    keep = _inside_frame(keypoints[:, :2], (w, h))
    keep &= _inside_frame(apply_affine(keypoints[:, :2], a3[:2]), (w, h))
    kp = _finish_keypoints(
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
    keep = _inside_frame(keypoints[:, :2], (w, h)) & _inside_frame(after_affine, (w, h))
    kp = _finish_keypoints(
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
        kp = _check_inputs(image, keypoints)
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
        kp = _check_inputs(image, keypoints)
        s = self.output_size
        m = crop_matrix(
            center, float(size) * params.scale, (s, s), rotation=params.rotation, flip=params.flip
        )
        out = warp_crop(image, m, (s, s))
        v = np.arange(256, dtype=np.float64)
        out = _lut_per_channel(
            out, [np.clip(np.rint(v * g), 0, 255).astype(np.uint8) for g in params.gains]
        )
        keep = _inside_frame(kp[:, :2], (image.shape[1], image.shape[0]))
        kp = _finish_keypoints(
            apply_affine(kp[:, :2], m), kp, keep, params.flip, self.flip_index, s
        )
        return CropResult(out, kp, m, params.flip)


#: Augmenters by name (``data.augment``); "none" is the validation crop.
AUGMENTERS = {"strong": StrongAugment, "classic": ClassicAugment, "none": CenterCrop}
#: The options each augmenter takes.
_OPTIONS = {
    "strong": ("output_size", "flip_index", "backend"),
    "classic": ("output_size", "flip_index", "scale_factor", "rot_factor"),
    "none": ("output_size",),
}


def build_augmenter(
    name: str,
    *,
    output_size: int,
    flip_index,
    scale_factor: float = 0.25,
    rot_factor: float = 30.0,
    backend: str = "fused",
):
    """The augmenter called ``name`` (a key of ``AUGMENTERS``) built from the shared options."""
    if name not in AUGMENTERS:
        raise KeyError(f"unknown augmenter {name!r}; valid: {list(AUGMENTERS)}")
    options = {
        "output_size": output_size,
        "flip_index": flip_index,
        "scale_factor": scale_factor,
        "rot_factor": rot_factor,
        "backend": backend,
    }
    return AUGMENTERS[name](**{k: options[k] for k in _OPTIONS[name]})
