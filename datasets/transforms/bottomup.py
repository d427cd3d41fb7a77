"""Bottom-up inputs and targets: a whole image with every person on one square input, and the
Associative Embedding targets of a batch (HigherHRNet, Cheng et al. 2020,
HRNet/HigherHRNet-Human-Pose-Estimation ``lib/dataset/transforms/transforms.py``
``RandomAffineTransform``, ``RandomHorizontalFlip``; ``lib/dataset/target_generators``
``HeatmapGenerator``, ``JointsGenerator``).

Geometry (``bottomup_matrix``): the image's longer side fills the S x S input, centred, the other
side padded with black; pixel-area alignment as ``geometry.crop_matrix`` (the image's outer pixel
edges land on the input's, -0.5 and S - 0.5). ``BottomUpAugment`` draws HigherHRNet's training
jitter into the same one affine: a region side times U(0.75, 1.5) (> 1 zooms out), a rotation
U(-30, 30) degrees, a shift of the region centre by up to 0.2 of its side on each axis, and a
mirror with p 0.5 (left and right keypoints swap channels by the spec's ``flip_index``).
``BottomUpResize`` is the evaluation input (no jitter). Both return a ``CropResult`` whose
keypoints are (M, K, 3): every person, input pixels + weight (1 when labelled and on the input,
else 0 with x = y = 0).

Targets (``bottomup_targets``): per keypoint type the maximum over people of the codec's
Gaussians (``codec.encode``: ``data.sigma``, the run's alignment), per-keypoint weights 1, and
for the tag loss each person's keypoint heatmap cell (the Gaussian's rounded centre) with a
visibility that is 1 only for a labelled keypoint whose cell lies on the heatmap. A model with
several outputs (HigherHRNet: strides 4 and 2) gets heatmaps for every output resolution
(``heatmap_sizes``), each with the same sigma in its own heatmap pixels (``codec_at_size``);
the cells are the first output's, which alone carries tags.

Loss masks (HigherHRNet's ``get_mask``): the pixels of crowd regions and of people without a
labelled keypoint must not count in the heatmap loss. ``warp_mask`` takes an image-sized mask
(1 = counts) through the sample's affine onto the input, like the image (pixels off the image
count: only annotated regions are left out, where HigherHRNet also drops the black padding);
``bottomup_targets(..., masks=)`` shrinks it to every output resolution by the area average and
keeps the heatmap pixels more than ``MASK_THRESHOLD`` of whose input pixels count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.geometry import apply_affine, crop_matrix
from animalpose.datasets.transforms.crop import CropResult, warp_crop

__all__ = [
    "FLIP_PROBABILITY",
    "MASK_THRESHOLD",
    "MAX_ROTATION",
    "MAX_SCALE",
    "MAX_TRANSLATE",
    "MIN_SCALE",
    "BottomUpAugment",
    "BottomUpParams",
    "BottomUpResize",
    "BottomUpTargets",
    "bottomup_matrix",
    "bottomup_targets",
    "codec_at_size",
    "resize_masks",
    "warp_mask",
]

#: HigherHRNet's ``DATASET.MIN_SCALE`` / ``MAX_SCALE`` (experiments/coco/higher_hrnet/*.yaml):
#: the region side is the longer image side times U(MIN_SCALE, MAX_SCALE); > 1 zooms out.
MIN_SCALE = 0.75
MAX_SCALE = 1.5
#: HigherHRNet's ``DATASET.MAX_ROTATION``: rotation U(-30, 30) degrees.
MAX_ROTATION = 30.0
#: HigherHRNet's ``DATASET.MAX_TRANSLATE`` 40 is in its 200-pixel scale units, where the region
#: side is 200: the centre moves up to 40 / 200 of the region side along each axis.
MAX_TRANSLATE = 40.0 / 200.0
#: HigherHRNet's ``DATASET.FLIP``: mirror with probability 0.5.
FLIP_PROBABILITY = 0.5
#: A resampled mask pixel counts when more than this share of it counts (HigherHRNet binarises
#: its warped masks with ``> 0.5``).
MASK_THRESHOLD = 0.5


def bottomup_matrix(
    image_size: tuple[int, int],
    input_size: int,
    *,
    scale: float = 1.0,
    rotation: float = 0.0,
    shift: Sequence[float] = (0.0, 0.0),
    flip: bool = False,
) -> np.ndarray:
    """2x3 affine from image pixels to the S x S input (module docs).

    Args:
        image_size: (w, h) of the image in pixels.
        input_size: S, the input side.
        scale: region side / the longer image side (1: the whole image fits; > 1 zooms out).
        rotation: degrees, content counter-clockwise as seen (``geometry.crop_matrix``).
        shift: (dx, dy) of the region centre from the image centre, in image pixels.
        flip: mirror the input (x -> S - 1 - x) after the rotation.
    """
    w, h = (int(v) for v in image_size)
    if w < 1 or h < 1 or input_size < 1 or not scale > 0:
        raise ValueError(
            f"image size {image_size}, input size {input_size} and scale {scale} must be positive"
        )
    center = np.array([(w - 1) / 2.0 + float(shift[0]), (h - 1) / 2.0 + float(shift[1])])
    return crop_matrix(center, max(w, h) * float(scale), (input_size, input_size), rotation, flip)


def _check_people(image: np.ndarray, people: np.ndarray) -> np.ndarray:
    """(M, K, 3) float64 people; ValueError unless the image is (H, W, 3) uint8."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"bottom-up inputs take (H, W, 3) uint8 images, got {image.shape}")
    kp = np.asarray(people, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[2] != 3:
        raise ValueError(f"people must be (M, K, 3) (x, y, visible), got {kp.shape}")
    return kp


def _move_people(
    people: np.ndarray, matrix: np.ndarray, size: int, flip_index: np.ndarray | None
) -> np.ndarray:
    """(M, K, 3) image pixels + v -> input pixels + weight (1 when labelled and on the input,
    else the row zeroed); channels swapped by ``flip_index`` when given."""
    xy = apply_affine(people[..., :2], matrix) if people.size else people[..., :2]
    x, y = xy[..., 0], xy[..., 1]
    on_input = (x >= -0.5) & (x < size - 0.5) & (y >= -0.5) & (y < size - 0.5)
    keep = (people[..., 2] > 0) & on_input & np.isfinite(xy).all(-1)
    out = np.where(keep[..., None], np.concatenate([xy, keep[..., None]], axis=-1), 0.0)
    if flip_index is not None:
        out = out[:, flip_index]
    return out.astype(np.float32)


@dataclass(frozen=True)
class BottomUpParams:
    """One draw of ``BottomUpAugment``: scale (region side factor, > 1 zooms out), rotation
    (degrees), shift (dx, dy) as fractions of the region side, flip."""

    scale: float = 1.0
    rotation: float = 0.0
    shift: tuple[float, float] = (0.0, 0.0)
    flip: bool = False


class BottomUpResize:
    """The evaluation input: the whole image on the S x S input, longer side fitted, centred.

    Args:
        input_size: S, the square input side.
        flip_index: (K,) channel permutation of a mirror (``spec.flip_index``); needed only by
            draws with ``flip``.

    Called ``(image (H, W, 3) uint8, people (M, K, 3) image pixels + v, rng=None) ->
    CropResult`` with (M, K, 3) input-pixel keypoints + weight (module docs);
    ``apply(image, people, params)`` applies a ``BottomUpParams`` draw.
    """

    def __init__(
        self, input_size: int, flip_index: Sequence[int] | np.ndarray | None = None
    ) -> None:
        if int(input_size) != input_size or input_size < 2:
            raise ValueError(f"input_size must be an integer >= 2, got {input_size}")
        self.input_size = int(input_size)
        self.flip_index = None
        if flip_index is not None:
            index = np.asarray(flip_index, dtype=np.int64).reshape(-1)
            k = len(index)
            if not np.array_equal(np.sort(index), np.arange(k)) or not np.array_equal(
                index[index], np.arange(k)
            ):
                raise ValueError(
                    f"flip_index must be a permutation that is its own inverse, got "
                    f"{index.tolist()}"
                )
            self.flip_index = index

    def apply(self, image: np.ndarray, people: np.ndarray, params: BottomUpParams) -> CropResult:
        """``image`` and ``people`` through the one affine of ``params`` (one resample)."""
        kp = _check_people(image, people)
        if params.flip and self.flip_index is None:
            raise ValueError("a mirrored draw needs the flip_index of the keypoints")
        if self.flip_index is not None and kp.shape[1] != len(self.flip_index):
            raise ValueError(f"{kp.shape[1]} keypoints but a flip_index of {len(self.flip_index)}")
        h, w = image.shape[:2]
        side = max(w, h) * params.scale
        m = bottomup_matrix(
            (w, h),
            self.input_size,
            scale=params.scale,
            rotation=params.rotation,
            shift=(params.shift[0] * side, params.shift[1] * side),
            flip=params.flip,
        )
        crop = warp_crop(image, m, (self.input_size, self.input_size))
        index = self.flip_index if params.flip else None
        return CropResult(crop, _move_people(kp, m, self.input_size, index), m, params.flip)

    def __call__(self, image: np.ndarray, people: np.ndarray, rng=None) -> CropResult:
        return self.apply(image, people, BottomUpParams())


class BottomUpAugment(BottomUpResize):
    """HigherHRNet's training jitter of a whole image, one affine and one resample (module docs).

    Args:
        input_size: S, the square input side.
        flip_index: (K,) channel permutation of a mirror (``spec.flip_index``).
        min_scale, max_scale: the region side factor's range (``MIN_SCALE``, ``MAX_SCALE``).
        max_rotation: rotation range in degrees (``MAX_ROTATION``; ``data.rot_factor``).
        max_translate: centre shift range, a fraction of the region side (``MAX_TRANSLATE``).
        flip: allow the mirror.

    Called like ``BottomUpResize`` with a generator (``draw``), or ``apply(..., params)``.
    """

    def __init__(
        self,
        input_size: int,
        flip_index: Sequence[int] | np.ndarray,
        *,
        min_scale: float = MIN_SCALE,
        max_scale: float = MAX_SCALE,
        max_rotation: float = MAX_ROTATION,
        max_translate: float = MAX_TRANSLATE,
        flip: bool = True,
    ) -> None:
        super().__init__(input_size, flip_index)
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        if max_rotation < 0 or max_translate < 0:
            raise ValueError(
                f"max_rotation and max_translate must be >= 0, got {max_rotation}, {max_translate}"
            )
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)
        self.max_rotation = float(max_rotation)
        self.max_translate = float(max_translate)
        self.flip = bool(flip)

    def draw(self, rng: np.random.Generator) -> BottomUpParams:
        """One draw; every value is drawn on every call (the stream does not depend on flags)."""
        scale = float(rng.uniform(self.min_scale, self.max_scale))
        rotation = float(rng.uniform(-self.max_rotation, self.max_rotation))
        shift = rng.uniform(-self.max_translate, self.max_translate, 2)
        mirror = bool(rng.random() < FLIP_PROBABILITY) and self.flip
        return BottomUpParams(scale, rotation, (float(shift[0]), float(shift[1])), mirror)

    def __call__(self, image: np.ndarray, people: np.ndarray, rng: np.random.Generator):
        return self.apply(image, people, self.draw(rng))


def warp_mask(mask: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """An image-sized loss mask on the S x S input, by the sample's affine (module docs).

    Args:
        mask: (H, W) bool or 0/1 array of the image, 1 where the heatmap loss counts.
        matrix: (2, 3) image -> input affine (``CropResult.matrix``: the image's own warp).
        size: S, the input side.

    Returns:
        (S, S) uint8, 1 where the bilinearly warped mask exceeds ``MASK_THRESHOLD``; input
        pixels off the image count (1).
    """
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"a loss mask is (H, W), got {m.shape}")
    warped = cv2.warpAffine(
        m.astype(np.float32),
        np.asarray(matrix, dtype=np.float64),
        (int(size), int(size)),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=1.0,
    )
    return (warped > MASK_THRESHOLD).astype(np.uint8)


def codec_at_size(codec, heatmap_size: tuple[int, int]):
    """``codec`` for (w, h) ``heatmap_size`` heatmaps of the same input: a copy with the same
    class, sigma (in its own heatmap pixels: HigherHRNet's sigma 2 at every resolution),
    convention and options; ``codec`` itself when the size is its own.

    Raises:
        ValueError: ``codec`` is not an ``MSRAHeatmap`` (or subclass), whose only size-derived
            state is the stride; or a size below 1.
    """
    size = (int(heatmap_size[0]), int(heatmap_size[1]))
    if tuple(codec.heatmap_size) == size:
        return codec
    if not isinstance(codec, MSRAHeatmap):
        raise ValueError(
            f"targets at several resolutions need a Gaussian heatmap codec (MSRAHeatmap and its "
            f"subclasses: pixel-area, msra, dark, soft-argmax), not {type(codec).__name__}"
        )
    if min(size) < 1:
        raise ValueError(f"heatmap_size must be positive, got {heatmap_size}")
    return codec.with_heatmap_size(size)


def resize_masks(masks: torch.Tensor, heatmap_size: tuple[int, int]) -> torch.Tensor:
    """(B, S, S) input loss masks (1 counts) -> (B, h, w) float32 0/1 at ``heatmap_size``
    (w, h): the area average over each heatmap pixel's input pixels (pixel-area alignment)
    above ``MASK_THRESHOLD``."""
    if masks.dim() != 3:
        raise ValueError(f"masks must be (B, S, S), got {tuple(masks.shape)}")
    w_hm, h_hm = (int(v) for v in heatmap_size)
    m = masks.float()
    if m.shape[-2:] != (h_hm, w_hm):
        m = F.interpolate(m[:, None], (h_hm, w_hm), mode="area")[:, 0]
    return (m > MASK_THRESHOLD).float()


@dataclass(frozen=True)
class BottomUpTargets:
    """What ``AELoss`` trains on (B batch, M people, K keypoints, h x w the first output's
    heatmap, h_i x w_i a later output's).

    heatmaps: (B, K, h, w) float32, per type the maximum over people of their Gaussians.
    weights: ``heatmap_loss`` weights of ``heatmaps``: (B, K) float32 ones (every keypoint
        type's heatmap counts, with or without people), or with loss masks the (B, h, w) mask.
    cells: (B, M, K, 2) int64 (x, y) heatmap cell of each person's keypoint (0 where not visible).
    visible: (B, M, K) float32, 1 for a labelled keypoint whose cell lies on the heatmap.
    higher_heatmaps, higher_weights: the same for every later output (HigherHRNet's stride-2
        head): (B, K, h_i, w_i) and (B, K) ones or (B, h_i, w_i) masks; () with one output.
    """

    heatmaps: torch.Tensor
    weights: torch.Tensor
    cells: torch.Tensor
    visible: torch.Tensor
    higher_heatmaps: tuple[torch.Tensor, ...] = ()
    higher_weights: tuple[torch.Tensor, ...] = ()

    @property
    def heatmaps_per_output(self) -> list[torch.Tensor]:
        """One heatmap target per model output (``AELoss``'s ``heatmaps`` list)."""
        return [self.heatmaps, *self.higher_heatmaps]

    @property
    def weights_per_output(self) -> list[torch.Tensor]:
        """One ``heatmap_loss`` weight per model output (``AELoss``'s ``weights`` list)."""
        return [self.weights, *self.higher_weights]


def _max_gaussians(codec, kp: torch.Tensor, rows: torch.Tensor, people: int) -> torch.Tensor:
    """(B, K, h, w): per image and type the maximum of the Gaussians of ``rows`` (indices into
    the flattened (B * M) people of ``kp`` (B, M, K, 3) that have a labelled keypoint)."""
    batch, _, num_keypoints, _ = kp.shape
    w_hm, h_hm = codec.heatmap_size
    heatmaps = kp.new_zeros((batch, num_keypoints, h_hm, w_hm))
    if rows.numel():
        flat = kp.flatten(0, 1)[rows]
        maps, _ = codec.encode(flat[..., :2], flat[..., 2])
        index = (rows // people).view(-1, 1, 1, 1).expand_as(maps)
        heatmaps.scatter_reduce_(0, index, maps.float(), "amax", include_self=True)
    return heatmaps


def bottomup_targets(
    codec,
    keypoints: torch.Tensor,
    *,
    masks: torch.Tensor | None = None,
    heatmap_sizes: Sequence[tuple[int, int]] | None = None,
) -> BottomUpTargets:
    """The AE targets of a batch of people (module docs).

    Args:
        codec: a Gaussian heatmap codec (``MSRAHeatmap`` and kin: ``encode``, ``to_heatmap``,
            ``heatmap_size``) for the S x S input: the first output's.
        keypoints: (B, M, K, 3) input pixels + weight (the samples' ``keypoints``), on the device.
        masks: (B, S, S) input loss masks, 1 where the heatmap loss counts (the samples'
            ``mask``); None: every pixel counts and the weights stay (B, K) ones.
        heatmap_sizes: (w, h) of every model output, the first ``codec.heatmap_size``
            (HigherHRNet: [S / 4, S / 2]); None: the codec's only.

    Only the people with a labelled keypoint are encoded, so the work does not grow with the
    padding up to M.
    """
    if keypoints.dim() != 4 or keypoints.shape[-1] != 3:
        raise ValueError(f"keypoints must be (B, M, K, 3), got {tuple(keypoints.shape)}")
    sizes = [tuple(codec.heatmap_size)]
    if heatmap_sizes is not None:
        sizes = [(int(w), int(h)) for w, h in heatmap_sizes]
        if not sizes or sizes[0] != tuple(codec.heatmap_size):
            raise ValueError(
                f"heatmap_sizes {sizes} must start with the codec's heatmap size "
                f"{tuple(codec.heatmap_size)} (the output that carries the tags)"
            )
    batch, people, num_keypoints, _ = keypoints.shape
    if masks is not None and (masks.dim() != 3 or masks.shape[0] != batch):
        raise ValueError(f"masks must be (B, S, S) with B = {batch}, got {tuple(masks.shape)}")
    w_hm, h_hm = codec.heatmap_size
    kp = keypoints.float()
    labelled = kp[..., 2] > 0
    rows = labelled.any(-1).flatten().nonzero().squeeze(1)  # persons of (B * M) with keypoints
    heatmaps = [_max_gaussians(codec_at_size(codec, size), kp, rows, people) for size in sizes]
    if masks is None:
        weights = [kp.new_ones((batch, num_keypoints)) for _ in sizes]
    else:
        weights = [resize_masks(masks.to(kp.device), size) for size in sizes]
    cells = torch.floor(codec.to_heatmap(kp[..., :2]) + 0.5)
    on_map = (cells[..., 0] >= 0) & (cells[..., 0] < w_hm) & (cells[..., 1] >= 0)
    visible = labelled & on_map & (cells[..., 1] < h_hm)
    cells = torch.where(visible[..., None], cells, torch.zeros_like(cells)).long()
    return BottomUpTargets(
        heatmaps=heatmaps[0],
        weights=weights[0],
        cells=cells,
        visible=visible.float(),
        higher_heatmaps=tuple(heatmaps[1:]),
        higher_weights=tuple(weights[1:]),
    )
