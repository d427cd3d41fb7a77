"""Where a ``coco`` (top-down keypoints) split lives under the image path, and how it is built.

Two layouts are read: the real COCO 2017 one (``annotations/person_keypoints_val2017.json``,
images in ``val2017/`` or ``images/val2017/``) and the built-in humans'
(``annotations/person_keypoints_val.json``, images in ``val/``; ``python datasets/generate.py
--benchmark humans-v1-cpu``). ``build_topdown_dataset`` is ``registry.build_dataset``'s path for
top-down data: ground-truth boxes for training, a detector's (``detections``) optionally for
evaluation, HRNet's augmentation for training and the plain top-down crop otherwise.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.base import TEST_SPLIT
from animalpose.datasets.formats.coco import CocoKeypointSet, load_coco_keypoints, load_detections
from animalpose.datasets.formats.topdown import TopDownKeypoints
from animalpose.datasets.keypoints import KeypointSpec
from animalpose.datasets.transforms.topdown import (
    HALF_BODY_PROBABILITY,
    TopDownAugment,
    TopDownCrop,
)

__all__ = [
    "AUTO_DETECTIONS",
    "COCO_CATEGORY",
    "COCO_SPLITS",
    "CocoPaths",
    "build_topdown_dataset",
    "coco_paths",
    "detections_path",
]

#: The category a ``coco`` data set reads (COCO's person keypoints).
COCO_CATEGORY = "person"
#: Our split names -> the COCO layout's (``val2017``, ``person_keypoints_val.json``, ...).
COCO_SPLITS = {"train": "train", "valid": "val", "test": "test"}
#: ``detections`` value that picks the detection file beside the annotations (``detections_path``).
AUTO_DETECTIONS = "auto"
#: The person detections SimpleBaseline/HRNet evaluate COCO val2017 with (their data layout,
#: ``person_detection_results/``), tried by ``detections="auto"`` in the real COCO layout.
HRNET_DETECTIONS = "person_detection_results/COCO_{split}2017_detections_AP_H_56_person.json"


@dataclass(frozen=True)
class CocoPaths:
    """Where a ``coco`` split lives under the image path.

    annotations: the keypoint json. images: the image folder (``file_name`` is relative to it).
    layout: ``"coco2017"`` (``annotations/person_keypoints_val2017.json``, images in ``val2017/``
    or ``images/val2017/``) or ``"builtin"`` (the built-in humans:
    ``annotations/person_keypoints_val.json``, images in ``val/``). split: the layout's split
    name (``val`` for our ``valid``).
    """

    annotations: Path
    images: Path
    layout: str
    split: str


def coco_paths(root: str | os.PathLike, split: str) -> CocoPaths:
    """The keypoint json and image folder of ``split`` (train, valid or test) under ``root``: the
    real COCO 2017 layout first, then the built-in humans' (``CocoPaths``).

    Raises:
        DataError: an unknown split; no annotation file (the message lists every path tried and,
            for the test split, says that COCO publishes no test keypoints); an annotation file
            without its image folder (lists the folders tried).
    """
    if split not in COCO_SPLITS:
        raise DataError(
            f"{root}: dataset 'coco' has no split {split!r}; known: {', '.join(COCO_SPLITS)}"
        )
    root, name = Path(root), COCO_SPLITS[split]
    layouts = (
        (
            "coco2017",
            root / "annotations" / f"person_keypoints_{name}2017.json",
            (root / f"{name}2017", root / "images" / f"{name}2017"),
        ),
        ("builtin", root / "annotations" / f"person_keypoints_{name}.json", (root / name,)),
    )
    for layout, ann_path, folders in layouts:
        if not ann_path.is_file():
            continue
        for folder in folders:
            if folder.is_dir():
                return CocoPaths(ann_path, folder, layout, name)
        raise DataError(
            f"{ann_path}: no image folder for split {split!r}; tried "
            + ", ".join(map(str, folders))
        )
    tried = ", ".join(str(ann) for _, ann, _ in layouts)
    hint = (
        " (COCO publishes no test keypoint annotations: test-dev is scored by the COCO server; "
        "report on --eval-split valid, or use built-in humans, which hold out a test split)"
        if split == TEST_SPLIT
        else ""
    )
    raise DataError(
        f"{root}: no COCO keypoint annotations for split {split!r}; tried {tried}{hint}. "
        "--image-path is a COCO 2017 folder (annotations/person_keypoints_val2017.json, "
        "val2017/) or built-in humans (python datasets/generate.py --benchmark humans-v1-cpu "
        "--image-path human_data)"
    )


def detections_path(paths: CocoPaths, detections: str | os.PathLike) -> Path:
    """The detection results file ``detections`` names for a split at ``paths``: a path as given,
    or for ``AUTO_DETECTIONS`` the file beside the annotations (built-in humans:
    ``annotations/<split>_detections.json``; COCO 2017: the same, then SimpleBaseline/HRNet's
    ``person_detection_results/COCO_<split>2017_detections_AP_H_56_person.json``).

    Raises:
        DataError: the file does not exist (the message lists the paths tried).
    """
    if str(detections) != AUTO_DETECTIONS:
        path = Path(detections)
        if not path.is_file():
            raise DataError(f"{path}: detection results file (data.detections) does not exist")
        return path
    root = paths.annotations.parent.parent
    tried = [paths.annotations.parent / f"{paths.split}_detections.json"]
    if paths.layout == "coco2017":
        tried.append(root / HRNET_DETECTIONS.format(split=paths.split))
    for path in tried:
        if path.is_file():
            return path
    raise DataError(
        f"{paths.annotations}: no detection results beside it for --detections auto; tried "
        + ", ".join(map(str, tried))
    )


def _limit_images(annotations: CocoKeypointSet, instances: list, limit: int) -> tuple:
    """The first ``limit`` boxes of ``instances`` rounded up to whole images: (annotations with
    only those images and their instances, the boxes on those images). Whole images, so that an
    AP over ``annotations`` counts no person of a kept image as missed."""
    if limit <= 0 or limit >= len(instances):
        return annotations, instances
    kept = {inst.image_id for inst in instances[:limit]}
    annotations = dataclasses.replace(
        annotations,
        images={i: im for i, im in annotations.images.items() if i in kept},
        instances=[inst for inst in annotations.instances if inst.image_id in kept],
    )
    return annotations, [inst for inst in instances if inst.image_id in kept]


def build_topdown_dataset(
    *,
    root: str | os.PathLike,
    split: str,
    input_size: tuple[int, int],
    spec: KeypointSpec,
    seed: int,
    augment: bool,
    scale_factor: float,
    rot_factor: float,
    limit: int,
    detections: str | os.PathLike,
    det_score: float,
    unbiased: bool,
    annotation_spec: KeypointSpec | None = None,
    half_body: bool = True,
) -> TopDownKeypoints:
    """A ``coco`` split: the annotations of ``coco_paths(root, split)`` (person category),
    detection boxes for evaluation splits when ``detections`` is set, the first ``limit`` boxes
    in whole images, ``TopDownAugment`` when ``augment`` else ``TopDownCrop``.

    ``annotation_spec`` is the json's keypoint spec when it is not the model's ``spec`` (a COCO
    person file read for an ``animal18`` model: ``TopDownKeypoints`` moves the corresponding
    keypoints); ``half_body`` False turns the half-body crop off."""
    paths = coco_paths(root, split)
    annotations = load_coco_keypoints(
        paths.annotations, spec=annotation_spec or spec, categories=(COCO_CATEGORY,)
    )
    boxes = None
    if detections and split != "train":
        boxes = load_detections(
            detections_path(paths, detections), images=annotations, score_threshold=det_score
        )
    annotations, instances = _limit_images(
        annotations, annotations.instances if boxes is None else boxes, limit
    )
    if augment:
        augmenter = TopDownAugment(
            input_size,
            spec.flip_index,
            scale_factor=scale_factor,
            rot_factor=rot_factor,
            half_body_prob=HALF_BODY_PROBABILITY if half_body else 0.0,
            upper_body=spec.upper_body_index,
            lower_body=spec.lower_body_index,
            unbiased=unbiased,
        )
    else:
        augmenter = TopDownCrop(input_size, unbiased=unbiased)
    return TopDownKeypoints(
        annotations=annotations,
        image_root=paths.images,
        augmenter=augmenter,
        seed=seed,
        spec=spec,
        detections=None if boxes is None else instances,
    )
