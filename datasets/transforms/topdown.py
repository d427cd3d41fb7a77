"""Top-down crops of one person (or animal) box: the validation crop and HRNet's augmentation.

A box becomes a crop centre and a crop size (w, h) at the model's aspect ratio with padding
(``box_to_center_size``, SimpleBaseline/HRNet ``_box2cs``, kept in pixels instead of their 200-px
units). ``TopDownCrop`` warps that rectangle onto the (w, h) input; ``TopDownAugment`` first
jitters it as SimpleBaseline/HRNet train (half-body, scale, rotation, flip) and composes all of it
into one affine, so the image is resampled once and the keypoints move by the same matrix.

Two crop matrices (``topdown_matrix``), for an input of W x H pixels, a crop of ``size`` (sw, sh)
source pixels around ``center`` (cx, cy) and a rotation R (degrees, content turned
counter-clockwise as seen, as ``geometry.crop_matrix``):

- ``unbiased=False`` (pixel area): ``x' = diag(W / sw, H / sh) R (x - c) + ((W - 1) / 2,
  (H - 1) / 2)``. The box's edges ``c -+ size / 2`` land on the input's outer pixel edges -0.5 and
  W - 0.5; this is ``geometry.crop_matrix``. (HRNet's ``get_affine_transform`` has the same
  scale but puts the centre at W / 2, half a pixel right and down of ours.)
- ``unbiased=True`` (UDP's unit length, Huang et al. 2020, "The Devil is in the Details"):
  ``x' = diag((W - 1) / sw, (H - 1) / sh) R (x - c) + ((W - 1) / 2, (H - 1) / 2)``. An image
  of W pixels measures W - 1 unit lengths, so the box's edges land on the outer pixel *centres*
  0 and W - 1 (mmpose ``get_udp_warp_matrix``); the UDP codec then maps input to heatmap by
  ``(heatmap - 1) / (input - 1)``.

In both modes a flip is the mirror x -> W - 1 - x of the crop, exactly (pixel centres on integers);
the one-pixel flip-test shift of the MSRA codec comes from its heatmap mapping, not from here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from animalpose.datasets.geometry import apply_affine, flip_matrix
from animalpose.datasets.transforms.crop import CropResult, check_inputs, mark_outside, warp_crop

__all__ = [
    "BOX_PADDING",
    "HALF_BODY_PADDING",
    "HALF_BODY_PROBABILITY",
    "HALF_BODY_MIN_KEYPOINTS",
    "box_to_center_size",
    "topdown_matrix",
    "half_body_box",
    "TopDownParams",
    "draw_topdown_params",
    "TopDownCrop",
    "TopDownAugment",
]

#: Box padding of SimpleBaseline/HRNet (``_box2cs``: ``scale = scale * 1.25``).
BOX_PADDING = 1.25
#: Padding of the half-body box (HRNet ``half_body_transform``: ``scale = scale * 1.5``).
HALF_BODY_PADDING = 1.5
#: Probability of the half-body crop (HRNet ``PROB_HALF_BODY: 0.3``).
HALF_BODY_PROBABILITY = 0.3
#: Half-body needs more than this many labelled keypoints (HRNet ``NUM_JOINTS_HALF_BODY: 8``).
HALF_BODY_MIN_KEYPOINTS = 8
#: A half needs more than this many labelled keypoints to be chosen (HRNet: ``len(...) > 2``).
HALF_BODY_MIN_PART = 2
#: HRNet picks the upper half when ``np.random.randn() < 0.5`` (a normal, not a uniform draw),
#: so with probability Phi(0.5) = 0.69; we keep the draw.
HALF_BODY_UPPER_THRESHOLD = 0.5
#: Flip probability (HRNet ``random.random() <= 0.5``).
FLIP_PROBABILITY = 0.5


def box_to_center_size(
    bbox_xywh: Sequence[float] | np.ndarray, *, aspect_ratio: float, padding: float = BOX_PADDING
) -> tuple[np.ndarray, np.ndarray]:
    """Crop centre (2,) and size (w, h) in source pixels of a COCO ``[x, y, w, h]`` box.

    The centre is the box centre ``(x + w / 2, y + h / 2)``; the box is widened or heightened to
    ``aspect_ratio`` = w / h of the model input (192 / 256 = 0.75), then both sides are
    multiplied by ``padding`` (SimpleBaseline/HRNet ``_box2cs``, in pixels, not 200-px units).
    One side may be 0 (HRNet keeps such clipped one-pixel boxes): the ratio gives it its size.

    Raises:
        ValueError: non-finite values, a negative side or no extent at all, or a non-positive
            ratio or padding.
    """
    box = np.asarray(bbox_xywh, dtype=np.float64).reshape(-1)
    if box.shape != (4,) or not np.isfinite(box).all():
        raise ValueError(f"box must be 4 finite numbers [x, y, w, h], got {box.tolist()}")
    if not (aspect_ratio > 0 and padding > 0):
        raise ValueError(
            f"aspect_ratio and padding must be positive, got {aspect_ratio}, {padding}"
        )
    x, y, w, h = (float(v) for v in box)
    if w < 0 or h < 0 or w + h <= 0:
        raise ValueError(f"box [x, y, w, h] = {box.tolist()} has no extent")
    center = np.array([x + w / 2.0, y + h / 2.0])
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    return center, np.array([w, h]) * padding


def topdown_matrix(
    center: Sequence[float] | np.ndarray,
    size: Sequence[float] | np.ndarray,
    input_size: tuple[int, int],
    *,
    rotation: float = 0.0,
    unbiased: bool = False,
) -> np.ndarray:
    """2x3 affine from source pixels to the (W, H) ``input_size`` crop (the module docstring
    gives both matrices): ``size`` (w, h) source pixels around ``center``, ``rotation`` degrees
    (content counter-clockwise as seen), ``unbiased`` for UDP's unit-length scale."""
    cx, cy = (float(v) for v in np.asarray(center, dtype=np.float64).reshape(2))
    sw, sh = (float(v) for v in np.asarray(size, dtype=np.float64).reshape(2))
    if not (sw > 0 and sh > 0 and math.isfinite(sw) and math.isfinite(sh)):
        raise ValueError(f"crop size must be positive and finite, got {(sw, sh)}")
    out_w, out_h = input_size
    lengths = (out_w - 1, out_h - 1) if unbiased else (out_w, out_h)
    t = math.radians(rotation)
    c, s = math.cos(t), math.sin(t)
    lin = np.diag([lengths[0] / sw, lengths[1] / sh]) @ np.array([[c, s], [-s, c]])
    offset = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0]) - lin @ np.array([cx, cy])
    return np.concatenate([lin, offset[:, None]], axis=1)


def half_body_box(
    keypoints: np.ndarray,
    upper_body: Sequence[int],
    lower_body: Sequence[int],
    *,
    upper_first: bool,
    aspect_ratio: float,
    padding: float = HALF_BODY_PADDING,
) -> tuple[np.ndarray, np.ndarray] | None:
    """HRNet's ``half_body_transform``: the crop (centre (2,), size (w, h)) of one body half.

    Of the labelled (visible > 0) keypoints, take the upper half when ``upper_first`` and it has
    more than 2, else the lower half when it has more than 2, else the upper half. The centre is
    the *mean* of the chosen keypoints (not their box centre, as HRNet and mmpose), the size their
    extent made ``aspect_ratio`` = w / h and times ``padding``. None when fewer than 2 keypoints
    are chosen or they span no extent. A keypoint far from the others can fall outside the box
    (the mean leans towards the crowd): the reference behaviour, kept.
    """
    labelled = np.asarray(keypoints)[:, 2] > 0
    upper = [i for i in upper_body if labelled[i]]
    lower = [i for i in lower_body if labelled[i]]
    if upper_first and len(upper) > HALF_BODY_MIN_PART:
        chosen = upper
    else:
        chosen = lower if len(lower) > HALF_BODY_MIN_PART else upper
    if len(chosen) < 2:
        return None
    xy = np.asarray(keypoints, dtype=np.float64)[chosen, :2]
    w, h = xy.max(axis=0) - xy.min(axis=0)
    if w > aspect_ratio * h:
        h = w / aspect_ratio
    elif w < aspect_ratio * h:
        w = h * aspect_ratio
    if not (w > 0 and h > 0):
        return None
    return xy.mean(axis=0), np.array([w, h]) * padding


def _finish(
    image: np.ndarray,
    keypoints: np.ndarray,
    matrix: np.ndarray,
    input_size: tuple[int, int],
    flip_index: np.ndarray | None,
) -> CropResult:
    """Warp once, move the keypoints by ``matrix``, weight 1 where labelled (v > 0) and on the
    crop, swap channels when ``flip_index`` is given (the matrix then contains the mirror)."""
    w, h = input_size
    crop = warp_crop(image, matrix, (w, h))
    weight = (keypoints[:, 2] > 0).astype(np.float64)
    out = np.concatenate([apply_affine(keypoints[:, :2], matrix), weight[:, None]], axis=1)
    if flip_index is not None:
        out = out[flip_index]
    return CropResult(crop, mark_outside(out, w, h), matrix, flip_index is not None)


def _check_input_size(input_size) -> tuple[int, int]:
    w, h = (int(v) for v in input_size)
    if w < 2 or h < 2 or (w, h) != tuple(input_size):
        raise ValueError(f"input_size must be two integers (w, h) >= 2, got {input_size}")
    return w, h


class TopDownCrop:
    """The validation crop: the ``size`` (w, h) rectangle around ``center`` warped onto the
    (w, h) ``input_size`` in one bilinear resample (``topdown_matrix``; ``unbiased`` selects
    UDP's unit-length matrix).

    Called ``(image (H, W, 3) uint8, keypoints (K, 3) source pixels + v, center (2,),
    size (2,) (w, h), rng=None) -> CropResult``; the result's keypoints are (K, 3) crop pixels
    + weight: 1 when labelled (v > 0) and on the crop, else 0 with x = y = 0.
    """

    def __init__(self, input_size: tuple[int, int], *, unbiased: bool = False) -> None:
        self.input_size = _check_input_size(input_size)
        self.unbiased = bool(unbiased)

    def __call__(self, image, keypoints, center, size, rng=None) -> CropResult:
        kp = check_inputs(image, keypoints)
        m = topdown_matrix(center, size, self.input_size, unbiased=self.unbiased)
        return _finish(image, kp, m, self.input_size, None)


@dataclass(frozen=True)
class TopDownParams:
    """One draw of ``TopDownAugment``.

    half_body: try the half-body crop (it applies when enough keypoints are labelled).
    upper_first: the half-body crop prefers the upper half. scale: factor on the crop size
    (> 1 zooms out). rotation: degrees, content counter-clockwise as seen. flip: mirror.
    """

    half_body: bool
    upper_first: bool
    scale: float
    rotation: float
    flip: bool


def draw_topdown_params(
    rng: np.random.Generator,
    *,
    scale_factor: float,
    rot_factor: float,
    rot_prob: float,
    flip: bool,
    half_body_prob: float,
) -> TopDownParams:
    """HRNet's draws (``JointsDataset.__getitem__``): half-body with ``half_body_prob`` (upper
    half first when a normal draw is < 0.5), scale ``clip(1 + sf N, 1 - sf, 1 + sf)``, rotation
    ``clip(rf N, -2 rf, 2 rf)`` with ``rot_prob`` else 0, flip with p 0.5 when ``flip``.

    Every value is drawn on every call, so the stream does not depend on which steps fire.
    """
    half_body = bool(rng.random() < half_body_prob)
    upper_first = bool(rng.standard_normal() < HALF_BODY_UPPER_THRESHOLD)
    sf, rf = scale_factor, rot_factor
    scale = float(np.clip(1.0 + sf * rng.standard_normal(), 1.0 - sf, 1.0 + sf))
    rotation = float(np.clip(rf * rng.standard_normal(), -2.0 * rf, 2.0 * rf))
    if not rng.random() < rot_prob:
        rotation = 0.0
    mirror = bool(rng.random() < FLIP_PROBABILITY) and flip
    return TopDownParams(half_body, upper_first, scale, rotation, mirror)


def _check_probability(name: str, p: float) -> float:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")
    return float(p)


class TopDownAugment:
    """SimpleBaseline/HRNet training augmentation of a top-down crop, one affine, one resample.

    In HRNet's order: the half-body crop (``half_body_box``) with ``half_body_prob`` when more than
    ``half_body_min_keypoints`` keypoints are labelled; the crop size times
    ``clip(1 + scale_factor N, 1 -+ scale_factor)``; a rotation ``clip(rot_factor N, -+2
    rot_factor)`` degrees with ``rot_prob``; a horizontal flip with p 0.5 (HRNet mirrors the
    image, x -> width - 1 - x, and the centre, and swaps the keypoint channels by ``flip_index``).
    The matrix is ``topdown_matrix(center', size', rotation)`` (times the source mirror on a
    flip); all randomness comes from the ``rng`` argument.

    Args:
        input_size: (w, h) of the model input, e.g. (192, 256).
        flip_index: (K,) channel permutation of a flip (``spec.flip_index``).
        scale_factor, rot_factor, rot_prob: HRNet's ``SCALE_FACTOR``, ``ROT_FACTOR`` and 0.6.
        flip: allow the flip.
        half_body_prob: HRNet's ``PROB_HALF_BODY``; needs ``upper_body``.
        upper_body, lower_body: channel indices of the halves (``spec.upper_body_index``,
            ``spec.lower_body_index``); an empty ``lower_body`` means every channel not in
            ``upper_body`` (HRNet).
        unbiased: UDP's unit-length matrix (module docstring).
        half_body_min_keypoints: HRNet's ``NUM_JOINTS_HALF_BODY``.

    Called like ``TopDownCrop``; ``apply(..., params)`` applies a given ``TopDownParams``.
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        flip_index: Sequence[int] | np.ndarray,
        *,
        scale_factor: float = 0.35,
        rot_factor: float = 45.0,
        rot_prob: float = 0.6,
        flip: bool = True,
        half_body_prob: float = HALF_BODY_PROBABILITY,
        upper_body: Sequence[int] = (),
        lower_body: Sequence[int] = (),
        unbiased: bool = False,
        half_body_min_keypoints: int = HALF_BODY_MIN_KEYPOINTS,
    ) -> None:
        self.input_size = _check_input_size(input_size)
        self.flip_index = np.asarray(flip_index, dtype=np.int64).reshape(-1)
        k = len(self.flip_index)
        if not np.array_equal(np.sort(self.flip_index), np.arange(k)) or not np.array_equal(
            self.flip_index[self.flip_index], np.arange(k)
        ):
            raise ValueError(
                f"flip_index must be a permutation that is its own inverse, got "
                f"{self.flip_index.tolist()}"
            )
        if not 0.0 <= scale_factor < 1.0:
            raise ValueError(f"scale_factor must be in [0, 1), got {scale_factor}")
        if rot_factor < 0:
            raise ValueError(f"rot_factor must be non-negative, got {rot_factor}")
        self.scale_factor = float(scale_factor)
        self.rot_factor = float(rot_factor)
        self.rot_prob = _check_probability("rot_prob", rot_prob)
        self.flip = bool(flip)
        self.half_body_prob = _check_probability("half_body_prob", half_body_prob)
        self.upper_body = tuple(int(i) for i in upper_body)
        lower = tuple(int(i) for i in lower_body)
        self.lower_body = lower or tuple(i for i in range(k) if i not in self.upper_body)
        if self.half_body_prob > 0 and not self.upper_body:
            raise ValueError(
                "half_body_prob > 0 needs upper_body (and lower_body) channel indices, e.g. "
                "spec.upper_body_index and spec.lower_body_index; pass half_body_prob=0 to turn "
                "the half-body crop off"
            )
        for name, ids in (("upper_body", self.upper_body), ("lower_body", self.lower_body)):
            bad = [i for i in ids if not 0 <= i < k]
            if bad:
                raise ValueError(f"{name} has indices {bad} outside 0..{k - 1}")
        shared = sorted(set(self.upper_body) & set(self.lower_body))
        if shared:
            raise ValueError(f"upper_body and lower_body share channels {shared}")
        self.unbiased = bool(unbiased)
        self.half_body_min_keypoints = int(half_body_min_keypoints)

    @property
    def aspect_ratio(self) -> float:
        return self.input_size[0] / self.input_size[1]

    def draw(self, rng: np.random.Generator) -> TopDownParams:
        """One draw of this augmenter's parameters."""
        return draw_topdown_params(
            rng,
            scale_factor=self.scale_factor,
            rot_factor=self.rot_factor,
            rot_prob=self.rot_prob,
            flip=self.flip,
            half_body_prob=self.half_body_prob,
        )

    def __call__(self, image, keypoints, center, size, rng: np.random.Generator) -> CropResult:
        return self.apply(image, keypoints, center, size, self.draw(rng))

    def crop_box(
        self, keypoints: np.ndarray, center, size, params: TopDownParams
    ) -> tuple[np.ndarray, np.ndarray]:
        """Centre (2,) and size (w, h) after the half-body step and the scale (before the flip)."""
        kp = np.asarray(keypoints, dtype=np.float64)
        c = np.asarray(center, dtype=np.float64).reshape(2)
        s = np.asarray(size, dtype=np.float64).reshape(2)
        if params.half_body and int((kp[:, 2] > 0).sum()) > self.half_body_min_keypoints:
            box = half_body_box(
                kp,
                self.upper_body,
                self.lower_body,
                upper_first=params.upper_first,
                aspect_ratio=self.aspect_ratio,
            )
            if box is not None:
                c, s = box
        return c, s * params.scale

    def apply(self, image, keypoints, center, size, params: TopDownParams) -> CropResult:
        """Apply given parameters (one warp)."""
        kp = check_inputs(image, keypoints)
        if len(kp) != len(self.flip_index):
            raise ValueError(f"{len(kp)} keypoints but a flip_index of {len(self.flip_index)}")
        c, s = self.crop_box(kp, center, size, params)
        if not params.flip:
            m = topdown_matrix(
                c, s, self.input_size, rotation=params.rotation, unbiased=self.unbiased
            )
            return _finish(image, kp, m, self.input_size, None)
        width = image.shape[1]
        mirrored = np.array([width - 1 - c[0], c[1]])
        crop = topdown_matrix(
            mirrored, s, self.input_size, rotation=params.rotation, unbiased=self.unbiased
        )
        m = crop[:, :2] @ flip_matrix(width)
        m[:, 2] += crop[:, 2]
        return _finish(image, kp, m, self.input_size, self.flip_index)
