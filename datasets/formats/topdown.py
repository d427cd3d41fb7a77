"""Top-down keypoint samples: one crop per person (or animal) box of a COCO-style keypoint file.

The boxes are the ground-truth boxes of a ``CocoKeypointSet`` (``formats/coco.py``) or a
detector's boxes (``load_detections``) on the same images; every AP a run prints must say which
(``box_source``). Each box becomes a crop centre and size (w, h) at the model's aspect ratio with
1.25 padding (``transforms.topdown.box_to_center_size``), and the augmenter (``TopDownCrop`` for
validation, ``TopDownAugment`` for training) cuts the crop.

Samples follow the contract of docs/architecture.md with rectangular crops: ``image`` (3, h, w)
uint8, ``keypoints`` (K, 3) float32 crop pixels + weight (1 when labelled, v > 0, and on the crop,
else 0 with x = y = 0: the COCO top-down target weight), ``meta`` with ``size`` (w, h) and the COCO
ids, score and box. Randomness per ``(seed, epoch, index)`` comes from ``KeypointDataset``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from animalpose.datasets.correspondence import correspondence
from animalpose.datasets.fileio import DataError, read_image
from animalpose.datasets.formats.base import Augmenter, KeypointDataset
from animalpose.datasets.formats.coco import (
    CocoImage,
    CocoInstance,
    CocoKeypointSet,
    image_path,
)
from animalpose.datasets.keypoints import KeypointSpec
from animalpose.datasets.transforms.topdown import BOX_PADDING, box_to_center_size

__all__ = ["BOX_SOURCES", "TopDownKeypoints"]

#: ``TopDownKeypoints.box_source``: the annotation file's boxes, or a detector's.
BOX_SOURCES = ("ground truth", "detections")


class TopDownKeypoints(KeypointDataset):
    """One sample per box: the instances of ``annotations``, or ``detections`` on its images.

    Args:
        annotations: the keypoint file read by ``load_coco_keypoints`` / ``load_mpii``.
        image_root: folder of the images; image ``i`` is ``image_root / file_name``.
        augmenter: ``TopDownCrop`` or ``TopDownAugment`` (``(image, keypoints, center, size
            (w, h), rng) -> CropResult``), built with ``spec``'s flip index.
        seed: non-negative seed of the per-sample draws.
        spec: the model's keypoint spec (default ``annotations.spec``); another spec gets the
            keypoints both share, moved by name or by a cross-species correspondence
            (``datasets/correspondence.py``: a person's arms as an animal's front legs), the
            others unlabelled.
        detections: boxes to crop instead of the ground truth (``load_detections``); their
            keypoints are unlabelled.
        aspect_ratio: w / h of the crop (default: the augmenter's ``input_size``).
        padding: box padding (SimpleBaseline/HRNet 1.25).

    Raises:
        DataError: an instance on an image the file lacks, an image file name that leaves
            ``image_root`` or does not exist (the message names the json, the image id and the
            path), or a box without extent (names the json and the annotation id).
    """

    def __init__(
        self,
        *,
        annotations: CocoKeypointSet,
        image_root: str | os.PathLike,
        augmenter: Augmenter,
        seed: int,
        spec: KeypointSpec | None = None,
        detections: Sequence[CocoInstance] | None = None,
        aspect_ratio: float | None = None,
        padding: float = BOX_PADDING,
    ) -> None:
        spec = annotations.spec if spec is None else spec
        super().__init__(augmenter=augmenter, spec=spec, seed=seed)
        self.annotations = annotations
        self.image_root = Path(image_root)
        self.box_source = BOX_SOURCES[detections is not None]
        self.instances: list[CocoInstance] = list(
            annotations.instances if detections is None else detections
        )
        if aspect_ratio is None:
            input_size = getattr(augmenter, "input_size", None)
            if input_size is None:
                raise ValueError(
                    "aspect_ratio is needed: the augmenter has no input_size to take it from"
                )
            aspect_ratio = input_size[0] / input_size[1]
        self.aspect_ratio = float(aspect_ratio)
        self.padding = float(padding)
        self._src, self._tgt = correspondence(annotations.spec, spec)
        self._paths = self._check_images()
        boxes = [self._crop_box(inst) for inst in self.instances]
        self.centers = np.array([c for c, _ in boxes], dtype=np.float64).reshape(-1, 2)
        self.sizes = np.array([s for _, s in boxes], dtype=np.float64).reshape(-1, 2)

    def _what(self, inst: CocoInstance) -> str:
        kind = "detection" if self.box_source == BOX_SOURCES[1] else "annotation"
        return f"{self.annotations.path}: {kind} {inst.id} (image {inst.image_id})"

    def _check_images(self) -> dict[int, Path]:
        """Image id -> path of every image an instance uses, each checked once (cheap stat)."""
        paths: dict[int, Path] = {}
        for inst in self.instances:
            if inst.image_id in paths:
                continue
            image = self.annotations.images.get(inst.image_id)
            if image is None:
                raise DataError(f"{self._what(inst)}: the file has no image {inst.image_id}")
            paths[inst.image_id] = image_path(self.annotations, image, self.image_root)
        return paths

    def _crop_box(self, inst: CocoInstance) -> tuple[np.ndarray, np.ndarray]:
        try:
            return box_to_center_size(
                inst.bbox, aspect_ratio=self.aspect_ratio, padding=self.padding
            )
        except ValueError as exc:
            raise DataError(f"{self._what(inst)}: degenerate box ({exc})") from None

    def __len__(self) -> int:
        return len(self.instances)

    def image(self, image_id: int) -> CocoImage:
        """The ``CocoImage`` of ``image_id``."""
        return self.annotations.images[image_id]

    def keypoints_image(self, index: int) -> np.ndarray:
        """(K, 3) float64 annotation of sample ``index`` in source pixels, ``spec`` order, COCO's
        v (0 unlabelled, 1 occluded, 2 visible) in the last column."""
        inst = self.instances[index]
        kp = np.asarray(inst.keypoints, dtype=np.float64)
        if kp.shape != (self.annotations.spec.num_keypoints, 3):
            raise DataError(
                f"{self._what(inst)}: keypoints of shape {kp.shape}, expected "
                f"({self.annotations.spec.num_keypoints}, 3) for spec {self.annotations.spec.name}"
            )
        out = np.zeros((self.spec.num_keypoints, 3), dtype=np.float64)
        out[self._tgt] = kp[self._src]
        return out

    def _read(self, inst: CocoInstance) -> np.ndarray:
        path = self._paths[inst.image_id]
        image = read_image(path)
        info = self.annotations.images[inst.image_id]
        h, w = image.shape[:2]
        if info.width > 0 and info.height > 0 and (w, h) != (info.width, info.height):
            raise DataError(
                f"{path}: image is {w}x{h} but {self.annotations.path} says image {info.id} is "
                f"{info.width}x{info.height}"
            )
        return image

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} samples")
        inst = self.instances[index]
        keypoints_image = self.keypoints_image(index)
        center, size = self.centers[index], self.sizes[index]
        result = self.augmenter(
            self._read(inst), keypoints_image, center.copy(), size.copy(), self.rng(index)
        )
        crop = np.ascontiguousarray(np.asarray(result.image, dtype=np.uint8).transpose(2, 0, 1))
        meta = {
            "index": int(index),
            "matrix": np.asarray(result.matrix, dtype=np.float64),
            "center": center.copy(),
            "size": size.copy(),
            "keypoints_image": keypoints_image,
            "flipped": bool(result.flipped),
            "shot": -1,
            "frame": -1,
            "image_id": int(inst.image_id),
            "instance_id": int(inst.id),
            "score": float(inst.score),
            "bbox": np.asarray(inst.bbox, dtype=np.float64).copy(),
        }
        return {
            "image": torch.from_numpy(crop),
            "keypoints": torch.from_numpy(np.asarray(result.keypoints, dtype=np.float32)),
            "meta": meta,
        }
