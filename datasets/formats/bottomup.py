"""Bottom-up keypoint samples: one whole image with every person of a COCO-style keypoint file
(Associative Embedding, HigherHRNet; data set name ``coco_bottomup``).

The annotations are read as for top-down data (``load_coco_keypoints``, person category,
``coco_layout.coco_paths``: the real COCO 2017 layout or the built-in humans'): crowd
annotations and annotations without a labelled keypoint are no people (COCO's training rule).
HigherHRNet masks them out of the heatmap loss instead (its ``COCOKeypoints.get_mask``):
``load_ignore_regions`` reads them back from the file as ``IgnoreRegion`` s (segmentation
polygons or RLE, else the box), and every sample carries their ``mask``. The training split
holds the images with at least one kept person; an evaluation split holds every image of the
file, people or not, as COCOeval scores them all.

A sample (docs/architecture.md's contract, with people):

- ``image``: (3, S, S) uint8, the whole image on the square input (``BottomUpResize``, or
  ``BottomUpAugment`` for training: ``datasets/transforms/bottomup.py``);
- ``keypoints``: (``max_people``, K, 3) float32 input pixels + weight per person, the people of
  the file in file order, padded with zero rows (weight 0) up to ``max_people``;
- ``meta``: ``index``, ``image_id``, ``matrix`` (2, 3) float64 image -> input affine (every
  augmentation included; invert it to bring predictions back), ``image_size`` (2,) float64 image
  (w, h), ``num_people`` (people of the file on the image, at most ``max_people``),
  ``keypoints_image`` (``max_people``, K, 3) float64 annotations in image pixels + COCO's v,
  ``flipped``;
- ``mask``: (S, S) uint8 loss mask on the input, 0 over the image's ignore regions, else 1
  (``image_mask`` warped by ``meta["matrix"]``: ``transforms.bottomup.warp_mask``); all ones
  without regions (or when built without them).
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pycocotools import mask as mask_utils

from animalpose.datasets.fileio import DataError, check_regular_file, read_image
from animalpose.datasets.formats.base import Augmenter, KeypointDataset
from animalpose.datasets.formats.coco import CocoKeypointSet, image_path, load_coco_keypoints
from animalpose.datasets.formats.coco_layout import COCO_CATEGORY, coco_paths
from animalpose.datasets.keypoints import KeypointSpec
from animalpose.datasets.transforms.bottomup import BottomUpAugment, BottomUpResize, warp_mask

__all__ = [
    "MAX_PEOPLE",
    "BottomUpKeypoints",
    "IgnoreRegion",
    "build_bottomup_dataset",
    "image_mask",
    "load_ignore_regions",
]

#: HigherHRNet's ``DATASET.MAX_NUM_PEOPLE``: people kept per image (the first in file order).
MAX_PEOPLE = 30


#: Why an annotation is an ``IgnoreRegion`` (``load_coco_keypoints``' skip reasons).
IGNORE_REASONS = ("crowd", "no_keypoints")


@dataclasses.dataclass(frozen=True, eq=False)
class IgnoreRegion:
    """An annotated region that is no person, masked out of the heatmap loss.

    Attributes:
        id: annotation id. image_id: its image.
        reason: ``"crowd"`` (``iscrowd``) or ``"no_keypoints"`` (no labelled keypoint).
        segmentation: COCO polygons (a list of flat [x0, y0, x1, y1, ...] lists), an RLE dict
            (``size`` [h, w], ``counts`` a list or a compressed string), or None: the box.
        bbox: (4,) float64 x, y, w, h.

    Region coordinates are COCO's continuous ones (pixel (i, j) covers [i, i + 1) x [j, j + 1),
    ``pycocotools.mask`` rasterises them).
    """

    id: int
    image_id: int
    reason: str
    segmentation: list | dict | None
    bbox: np.ndarray


def _is_polygons(segmentation: Any) -> bool:
    return isinstance(segmentation, list) and all(
        isinstance(p, list)
        and len(p) >= 6
        and len(p) % 2 == 0
        and all(isinstance(v, int | float) and np.isfinite(v) for v in p)
        for p in segmentation
    )


def _check_rle(where: str, rle: dict, image: Any) -> None:
    size = rle.get("size")
    counts = rle.get("counts")
    if not isinstance(counts, list | str) or not isinstance(size, list) or len(size) != 2:
        raise DataError(f"{where}: an RLE segmentation needs 'size' [h, w] and 'counts'")
    if list(size) != [image.height, image.width]:
        raise DataError(
            f"{where}: RLE size {size} is not its image's [h, w] [{image.height}, {image.width}]"
        )


def load_ignore_regions(annotations: CocoKeypointSet) -> dict[int, list[IgnoreRegion]]:
    """The ignore regions of ``annotations``' images, by image id, in file order (module docs).

    Reads ``annotations.path`` again (``load_coco_keypoints`` keeps people only): every
    annotation of a category in ``annotations.categories`` on an image in ``annotations.images``
    that is crowd (``iscrowd``) or has no labelled keypoint (``num_keypoints`` 0, or no v > 0
    where the field is absent), HigherHRNet's rule. The file was checked by
    ``load_coco_keypoints``; here only the segmentation is.

    Raises:
        DataError: a segmentation that is neither polygons (lists of at least 3 finite (x, y)
            pairs), an RLE of the image's size, nor empty; names the file and annotation id.
    """
    path = Path(annotations.path)
    check_regular_file(path, "keypoint annotation file")
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: keypoint annotation file is not valid JSON ({exc})") from None
    kept = {inst.id for inst in annotations.instances}
    regions: dict[int, list[IgnoreRegion]] = {}
    for entry in data.get("annotations", []):
        image = annotations.images.get(entry.get("image_id"))
        if image is None or entry.get("category_id") not in annotations.categories:
            continue
        if entry["id"] in kept:
            continue
        if entry.get("iscrowd", 0):
            reason = "crowd"
        elif "num_keypoints" in entry:
            reason = "no_keypoints" if entry["num_keypoints"] == 0 else ""
        else:
            labelled = np.asarray(entry["keypoints"], dtype=np.float64)[2::3] > 0
            reason = "" if labelled.any() else "no_keypoints"
        if not reason:
            continue
        where = f"{path}: annotation id {entry['id']}"
        segmentation = entry.get("segmentation") or None
        if isinstance(segmentation, dict):
            _check_rle(where, segmentation, image)
        elif segmentation is not None and not _is_polygons(segmentation):
            raise DataError(
                f"{where}: segmentation must be polygons (lists of at least 3 finite (x, y) "
                "pairs) or an RLE dict"
            )
        regions.setdefault(image.id, []).append(
            IgnoreRegion(
                id=int(entry["id"]),
                image_id=image.id,
                reason=reason,
                segmentation=segmentation,
                bbox=np.asarray(entry["bbox"], dtype=np.float64),
            )
        )
    return regions


def _region_pixels(region: IgnoreRegion, width: int, height: int) -> np.ndarray:
    """(H, W) bool pixels of one region: its segmentation, else its box."""
    seg = region.segmentation
    if isinstance(seg, dict) and isinstance(seg["counts"], str):
        rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii")}
    elif isinstance(seg, dict):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        if seg is None:
            x, y, w, h = region.bbox
            if not (w > 0 and h > 0):
                return np.zeros((height, width), dtype=bool)
            seg = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    with warnings.catch_warnings():  # pycocotools' Cython decode predates NumPy 2's copy keyword
        warnings.simplefilter("ignore", DeprecationWarning)
        return mask_utils.decode(rle).astype(bool)


def image_mask(regions: list[IgnoreRegion], width: int, height: int) -> np.ndarray:
    """(H, W) uint8 loss mask of a ``width`` x ``height`` image: 0 inside any of ``regions``,
    1 elsewhere (where the heatmap loss counts)."""
    ignored = np.zeros((int(height), int(width)), dtype=bool)
    for region in regions:
        ignored |= _region_pixels(region, int(width), int(height))
    return (~ignored).astype(np.uint8)


class BottomUpKeypoints(KeypointDataset):
    """One sample per image (module docs).

    Args:
        annotations: the keypoint file read by ``load_coco_keypoints`` onto ``spec``.
        image_root: folder of the images; image ``i`` is ``image_root / file_name``.
        augmenter: ``BottomUpResize`` or ``BottomUpAugment`` (``(image, people (M, K, 3), rng)
            -> CropResult`` with (M, K, 3) keypoints), built with ``spec``'s flip index.
        seed: non-negative seed of the per-sample draws.
        every_image: one sample per image of the file (evaluation); else only per image with
            a kept person (training).
        max_people: M, the people kept per image and the padded length of ``keypoints``.
        ignore_regions: image id -> its ``IgnoreRegion`` s (``load_ignore_regions``), masked
            out of every sample's ``mask``; None: masks of ones.

    Attributes:
        annotations: as given (evaluation reads its path, images and categories).
        instances: the kept people, in file order (``annotations.instances``).
        image_ids: (N,) the image id of each sample.

    Raises:
        DataError: an image file name that leaves ``image_root`` or does not exist (names the
            json, the image id and the path), or an image whose size differs from the json's.
    """

    def __init__(
        self,
        *,
        annotations: CocoKeypointSet,
        image_root: str | os.PathLike,
        augmenter: Augmenter,
        seed: int,
        every_image: bool = False,
        max_people: int = MAX_PEOPLE,
        ignore_regions: dict[int, list[IgnoreRegion]] | None = None,
    ) -> None:
        super().__init__(augmenter=augmenter, spec=annotations.spec, seed=seed)
        if max_people < 1:
            raise ValueError(f"max_people must be positive, got {max_people}")
        self.annotations = annotations
        self.image_root = Path(image_root)
        self.max_people = int(max_people)
        self.ignore_regions = dict(ignore_regions or {})
        self.instances = list(annotations.instances)
        people: dict[int, list[int]] = {}
        for i, inst in enumerate(self.instances):
            people.setdefault(inst.image_id, []).append(i)
        ids = list(annotations.images) if every_image else list(people)
        self.image_ids = np.array(ids, dtype=np.int64)
        self._people = [people.get(i, [])[: self.max_people] for i in ids]
        self._paths = [image_path(annotations, annotations.images[i], self.image_root) for i in ids]

    def __len__(self) -> int:
        return len(self.image_ids)

    def keypoints_image(self, index: int) -> np.ndarray:
        """(P, K, 3) float64 annotations of sample ``index``'s people in image pixels, ``spec``
        order, COCO's v (0 unlabelled, 1 occluded, 2 visible); P <= ``max_people``."""
        k = self.spec.num_keypoints
        rows = [
            np.asarray(self.instances[i].keypoints, dtype=np.float64) for i in self._people[index]
        ]
        return np.stack(rows) if rows else np.zeros((0, k, 3), dtype=np.float64)

    def _read(self, index: int) -> np.ndarray:
        path = self._paths[index]
        image = read_image(path)
        info = self.annotations.images[int(self.image_ids[index])]
        h, w = image.shape[:2]
        if (w, h) != (info.width, info.height):
            raise DataError(
                f"{path}: image is {w}x{h} but {self.annotations.path} says image {info.id} is "
                f"{info.width}x{info.height}"
            )
        return image

    def _padded(self, people: np.ndarray, dtype: type) -> np.ndarray:
        out = np.zeros((self.max_people, self.spec.num_keypoints, 3), dtype=dtype)
        out[: len(people)] = people
        return out

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        image = self._read(index)
        people = self.keypoints_image(index)
        result = self.augmenter(image, people, self.rng(index))
        crop = np.ascontiguousarray(np.asarray(result.image, dtype=np.uint8).transpose(2, 0, 1))
        h, w = image.shape[:2]
        size = crop.shape[1]
        regions = self.ignore_regions.get(int(self.image_ids[index]))
        if regions:
            mask = warp_mask(image_mask(regions, w, h), result.matrix, size)
        else:
            mask = np.ones((size, size), dtype=np.uint8)
        meta = {
            "index": int(index),
            "image_id": int(self.image_ids[index]),
            "matrix": np.asarray(result.matrix, dtype=np.float64),
            "image_size": np.array([w, h], dtype=np.float64),
            "num_people": len(people),
            "keypoints_image": self._padded(people, np.float64),
            "flipped": bool(result.flipped),
        }
        return {
            "image": torch.from_numpy(crop),
            "keypoints": torch.from_numpy(self._padded(result.keypoints, np.float32)),
            "mask": torch.from_numpy(mask),
            "meta": meta,
        }


def _limit_images(annotations: CocoKeypointSet, image_ids: list[int]) -> CocoKeypointSet:
    """``annotations`` with only ``image_ids`` and their people (so an AP over it counts no
    person of another image as missed)."""
    kept = set(image_ids)
    return dataclasses.replace(
        annotations,
        images={i: im for i, im in annotations.images.items() if i in kept},
        instances=[inst for inst in annotations.instances if inst.image_id in kept],
    )


def build_bottomup_dataset(
    *,
    root: str | os.PathLike,
    split: str,
    input_size: int,
    spec: KeypointSpec,
    seed: int,
    augment: bool,
    rot_factor: float,
    limit: int,
    masks: bool = True,
) -> BottomUpKeypoints:
    """A ``coco_bottomup`` split: the person annotations of ``coco_paths(root, split)`` on
    ``spec``; ``BottomUpAugment`` (HigherHRNet's scale, shift and flip, rotation up to
    ``rot_factor`` degrees) when ``augment``, else ``BottomUpResize``; the train split's images
    with people, every image of the other splits; the first ``limit`` images (0: all), the
    annotations cut to them; with ``masks`` the crowd and keypoint-less regions of those images
    (``load_ignore_regions``) masked out of the samples' ``mask``."""
    paths = coco_paths(root, split)
    annotations = load_coco_keypoints(paths.annotations, spec=spec, categories=(COCO_CATEGORY,))
    every_image = split != "train"
    if limit > 0:
        if every_image:
            ids = list(annotations.images)
        else:
            ids = list(dict.fromkeys(inst.image_id for inst in annotations.instances))
        annotations = _limit_images(annotations, ids[:limit])
    if augment:
        augmenter = BottomUpAugment(input_size, spec.flip_index, max_rotation=rot_factor)
    else:
        augmenter = BottomUpResize(input_size, spec.flip_index)
    return BottomUpKeypoints(
        annotations=annotations,
        image_root=paths.images,
        augmenter=augmenter,
        seed=seed,
        every_image=every_image,
        ignore_regions=load_ignore_regions(annotations) if masks else None,
    )
