"""The one place that turns a ``--dataset`` name into a dataset object and its mean/std.

``DATASETS`` lists the reference's dataset names (docs/reference_compat.md §1.4): the
class, the augmentation of the training split (``_sp``: the strong pipeline; others: the classic
one) and which mean file normalises the input (§1.2: the synthetic mean for everything except
supervised ``real_animal`` training, which uses ``mean_by_video``).

``coco`` is the top-down human data set (``TopDownKeypoints``): one crop per person box of a
COCO keypoint json, found under the image path in the real COCO 2017 layout or the built-in
humans' layout (``coco_layout.py``), with the SimpleBaseline/HRNet augmentation for training
(``TopDownAugment``), the plain ``TopDownCrop`` otherwise, ground-truth boxes or a detector's
(``detections``) for evaluation, and ImageNet's mean/std. ``animal`` means nothing to it: it
reads the ``person`` category (``COCO_CATEGORY``).

``coco_bottomup`` is the same files read bottom-up (``BottomUpKeypoints``, Associative
Embedding): one sample per whole image with every person, on a square ``input_size`` input,
HigherHRNet's augmentation for training (``BottomUpAugment``), ImageNet's mean/std.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.base import TEST_SPLIT, KeypointDataset
from animalpose.datasets.formats.bottomup import BottomUpKeypoints, build_bottomup_dataset
from animalpose.datasets.formats.coco_layout import (
    AUTO_DETECTIONS,
    COCO_CATEGORY,
    COCO_SPLITS,
    CocoPaths,
    build_topdown_dataset,
    coco_paths,
    detections_path,
)
from animalpose.datasets.formats.crops import RealAnimalCrop
from animalpose.datasets.formats.means import KNOWN_SYNTHETIC_MEANS, MEAN_NAME
from animalpose.datasets.formats.splits import check_split_dir
from animalpose.datasets.formats.synthetic import (
    SyntheticAnimal,
    reference_synthetic_dir,
    synthetic_dir,
    synthetic_mean_std,
)
from animalpose.datasets.formats.synthetic_multitask import SyntheticAnimalMultitask
from animalpose.datasets.formats.tigdog import RealAnimal, tigdog_mean_std
from animalpose.datasets.formats.topdown import TopDownKeypoints
from animalpose.datasets.keypoints import KeypointSpec
from animalpose.datasets.transforms.crop import CenterCrop

__all__ = [
    "AUTO_DETECTIONS",
    "BOTTOMUP",
    "BOTTOMUP_DATASETS",
    "COCO_CATEGORY",
    "COCO_SPLITS",
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TOPDOWN",
    "TOPDOWN_DATASETS",
    "CocoPaths",
    "DatasetEntry",
    "build_dataset",
    "coco_paths",
    "dataset_mean_std",
    "detections_path",
    "is_bottomup",
    "is_topdown",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetEntry:
    """cls: dataset class. train_augment: ``transforms.registry.build_augmenter`` kind of the
    train split, ``TOPDOWN`` (``TopDownAugment``) or ``BOTTOMUP`` (``BottomUpAugment``).
    mean: ``"synthetic"`` (the animal's synthetic mean.pth.tar), ``"video"`` (TigDog's
    mean_by_video.pth.tar) or ``"imagenet"`` (``IMAGENET_MEAN`` / ``IMAGENET_STD``).
    synthetic: the class takes a vertex table."""

    cls: type[KeypointDataset]
    train_augment: str
    mean: str
    synthetic: bool


DATASETS: dict[str, DatasetEntry] = {
    "synthetic_animal": DatasetEntry(SyntheticAnimal, "classic", "synthetic", True),
    "synthetic_animal_sp": DatasetEntry(SyntheticAnimal, "strong", "synthetic", True),
    # + sample["segmentation"], the _partseg.png part map (the reference's multitask Example 4)
    "synthetic_animal_sp_multitask": DatasetEntry(
        SyntheticAnimalMultitask, "strong", "synthetic", True
    ),
    "real_animal": DatasetEntry(RealAnimal, "classic", "video", False),
    "real_animal_sp": DatasetEntry(RealAnimal, "strong", "synthetic", False),
    "real_animal_crop": DatasetEntry(RealAnimalCrop, "classic", "synthetic", False),
    # top-down people of a COCO keypoint json (real COCO 2017 or the built-in humans)
    "coco": DatasetEntry(TopDownKeypoints, "topdown", "imagenet", False),
    # bottom-up people: whole images of the same files (Associative Embedding)
    "coco_bottomup": DatasetEntry(BottomUpKeypoints, "bottomup", "imagenet", False),
}
#: ``DatasetEntry.train_augment`` of the top-down data sets (``TopDownAugment`` / ``TopDownCrop``,
#: (w, h) input sizes, person boxes).
TOPDOWN = "topdown"
#: The top-down data set names.
TOPDOWN_DATASETS: tuple[str, ...] = tuple(
    n for n, e in DATASETS.items() if e.train_augment == TOPDOWN
)
#: ``DatasetEntry.train_augment`` of the bottom-up data sets (``BottomUpAugment`` /
#: ``BottomUpResize``: whole images, every person).
BOTTOMUP = "bottomup"
#: The bottom-up data set names.
BOTTOMUP_DATASETS: tuple[str, ...] = tuple(
    n for n, e in DATASETS.items() if e.train_augment == BOTTOMUP
)
#: ImageNet's RGB mean and std in [0, 1]: SimpleBaseline and HRNet normalise their input with them
#: (torchvision's ``Normalize`` in their lib/dataset code), as their ImageNet-trained trunks expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def is_topdown(name: str) -> bool:
    """Whether data set ``name`` (a ``DATASETS`` key) is top-down (``TOPDOWN_DATASETS``)."""
    return _entry(name).train_augment == TOPDOWN


def is_bottomup(name: str) -> bool:
    """Whether data set ``name`` (a ``DATASETS`` key) is bottom-up (``BOTTOMUP_DATASETS``)."""
    return _entry(name).train_augment == BOTTOMUP


def _entry(name: str) -> DatasetEntry:
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}") from None


def _size(input_size: int | Sequence[int]) -> tuple[int, int]:
    """``input_size`` as (w, h): an int is a square side."""
    if isinstance(input_size, (int, np.integer)):
        return int(input_size), int(input_size)
    w, h = (int(v) for v in input_size)
    return w, h


@functools.lru_cache(maxsize=2)
def _texture_bank(paths: tuple[str, ...]):
    """The ``TextureBank`` of ``paths`` (read once per process), or None without paths."""
    if not paths:
        return None
    from animalpose.datasets.transforms.occlusion import TextureBank

    return TextureBank.from_files(paths)


def build_dataset(
    name: str,
    *,
    root: str | os.PathLike,
    animal: str,
    split: str,
    input_size: int | tuple[int, int],
    spec: KeypointSpec,
    seed: int,
    scale_factor: float,
    rot_factor: float,
    augment_backend: str,
    split_dir: str | os.PathLike | None = None,
    vertex_table: str | os.PathLike | Sequence[int] | None = None,
    limit: int = 0,
    augment_seed: int | None = None,
    augment: bool | None = None,
    occlusion: float = 0.0,
    occluders: int = 7,
    occluder_frames: Sequence[str | os.PathLike] = (),
    legacy: bool = False,
    heatmap_size: int = 64,
    detections: str | os.PathLike = "",
    det_score: float = 0.0,
    unbiased: bool = False,
) -> KeypointDataset:
    """Dataset ``name`` (a ``DATASETS`` key) for ``split``; the train split is augmented
    with the dataset's pipeline, every other split gets the plain ``CenterCrop(input_size)``.
    Split ``"test"`` exists only for the TigDog datasets of a benchmark (DataError otherwise).
    ``input_size``: the crop side (an int, or a square (w, h); the animal data sets crop squares).

    ``seed`` keys the split files created when absent; ``augment_seed`` (default: ``seed``) keys
    the per-sample augmentation draws, so runs with different seeds share one split.
    ``augment`` overrides the rule above (``False``: the train split with the plain crop, as
    pseudo-labelling needs it). ``occlusion`` > 0 adds occluders to augmented samples with that
    probability (1..``occluders`` each, ``transforms/occlusion.py``), textured from
    ``occluder_frames`` (image files) when given. ``legacy``: the reference's
    crop boxes and targets for ``heatmap_size`` heatmaps (``formats/legacy.py``).

    Top-down data sets (``TOPDOWN_DATASETS``: ``coco``) crop (w, h) ``input_size``
    (an int: a square) around person boxes: ``TopDownAugment`` (``scale_factor``,
    ``rot_factor``, the spec's flip pairs and body halves) when augmenting, else
    ``TopDownCrop``; ``unbiased`` selects UDP's unit-length crops. Evaluation splits crop the
    boxes of ``detections`` (a COCO detection results file, or ``AUTO_DETECTIONS``) with
    ``score >= det_score`` when given, else the ground-truth boxes; the train split always
    crops ground truth. ``limit`` keeps the first ``limit`` boxes rounded up to whole images
    (the dataset's ``annotations`` keep only those images). ``animal``, ``split_dir``,
    ``vertex_table`` and ``augment_backend`` do not apply; occlusion and ``legacy`` are
    refused (ValueError).

    Bottom-up data sets (``BOTTOMUP_DATASETS``: ``coco_bottomup``) put whole images on the square
    ``input_size`` input: ``BottomUpAugment`` (rotation up to ``rot_factor`` degrees) when
    augmenting, else ``BottomUpResize``; ``limit`` keeps the first ``limit`` images. The
    animal-only arguments do not apply; occlusion and ``legacy`` are refused (ValueError).
    """
    entry = _entry(name)
    if entry.train_augment == BOTTOMUP:
        if occlusion > 0 or legacy:
            raise ValueError(
                f"dataset {name!r}: occlusion and legacy apply to the animal data sets only"
            )
        dataset = build_bottomup_dataset(
            root=root,
            split=split,
            input_size=_square(name, input_size),
            spec=spec,
            seed=seed,
            augment=split == "train" if augment is None else augment,
            rot_factor=rot_factor,
            limit=limit,
        )
    elif entry.train_augment == TOPDOWN:
        if occlusion > 0 or legacy:
            raise ValueError(
                f"dataset {name!r}: occlusion and legacy apply to the animal data sets only"
            )
        dataset = build_topdown_dataset(
            root=root,
            split=split,
            input_size=_size(input_size),
            spec=spec,
            seed=seed,
            augment=split == "train" if augment is None else augment,
            scale_factor=scale_factor,
            rot_factor=rot_factor,
            limit=limit,
            detections=detections,
            det_score=det_score,
            unbiased=unbiased,
        )
    else:
        if detections or unbiased:
            raise ValueError(
                f"dataset {name!r}: detections and unbiased crops apply to top-down data sets "
                f"({', '.join(TOPDOWN_DATASETS)}) only"
            )
        dataset = _build_animal(
            entry,
            name,
            root=root,
            animal=animal,
            split=split,
            input_size=_square(name, input_size),
            spec=spec,
            seed=seed,
            scale_factor=scale_factor,
            rot_factor=rot_factor,
            augment_backend=augment_backend,
            split_dir=split_dir,
            vertex_table=vertex_table,
            limit=limit,
            augment=augment,
            occlusion=occlusion,
            occluders=occluders,
            occluder_frames=occluder_frames,
            legacy=legacy,
            heatmap_size=heatmap_size,
        )
    if augment_seed is not None:
        if augment_seed < 0:
            raise ValueError(f"augment_seed must be non-negative, got {augment_seed}")
        dataset.seed = int(augment_seed)
    return dataset


def _square(name: str, input_size: int | Sequence[int]) -> int:
    """The crop side of an animal data set; ValueError for a non-square (w, h)."""
    w, h = _size(input_size)
    if w != h:
        raise ValueError(
            f"dataset {name!r} crops squares; got input size {w}x{h} (w x h): non-square inputs "
            f"need a top-down data set ({', '.join(TOPDOWN_DATASETS)})"
        )
    return w


def _build_animal(
    entry: DatasetEntry,
    name: str,
    *,
    root: str | os.PathLike,
    animal: str,
    split: str,
    input_size: int,
    spec: KeypointSpec,
    seed: int,
    scale_factor: float,
    rot_factor: float,
    augment_backend: str,
    split_dir: str | os.PathLike | None,
    vertex_table: str | os.PathLike | Sequence[int] | None,
    limit: int,
    augment: bool | None,
    occlusion: float,
    occluders: int,
    occluder_frames: Sequence[str | os.PathLike],
    legacy: bool,
    heatmap_size: int,
) -> KeypointDataset:
    """An animal data set (``build_dataset``'s rules for them)."""
    if split == TEST_SPLIT and entry.synthetic:
        raise DataError(
            f"{synthetic_dir(root, animal)}: dataset {name!r} has no test split (a benchmark holds "
            "out test shots of its TigDog-layout target set); evaluate the test split with "
            "real_animal, real_animal_sp or real_animal_crop, or use split 'valid'"
        )
    if split == "train" if augment is None else augment:
        from animalpose.datasets.transforms.registry import (
            build_augmenter,  # lazy: optional heavy deps
        )

        augmenter = build_augmenter(
            entry.train_augment,
            output_size=input_size,
            flip_index=spec.flip_index,
            scale_factor=scale_factor,
            rot_factor=rot_factor,
            backend=augment_backend,
            occlusion=occlusion,
            occluders=occluders,
            occluder_textures=_texture_bank(tuple(map(str, occluder_frames)))
            if occlusion
            else None,
        )
    else:
        augmenter = CenterCrop(input_size)
    kwargs = {
        "root": root,
        "animal": animal,
        "split": split,
        "augmenter": augmenter,
        "spec": spec,
        "seed": seed,
        "split_dir": split_dir,
        "limit": limit,
        "legacy": legacy,
        "heatmap_size": heatmap_size,
    }
    if entry.synthetic:
        kwargs["vertex_table"] = vertex_table
    return entry.cls(**kwargs)


def dataset_mean_std(
    name: str,
    *,
    root: str | os.PathLike,
    animal: str,
    seed: int = 0,
    split_dir: str | os.PathLike | None = None,
    vertex_table: str | os.PathLike | Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std), float64 (3,) RGB in [0, 1], that normalise the input of dataset ``name``.

    Top-down data (``coco``): ImageNet's (``IMAGENET_MEAN``, ``IMAGENET_STD``), nothing read.

    Read from the reference's files (``split_dir`` mirror first, then beside the data) or
    computed over the training split and saved. When the synthetic data of ``animal`` is absent
    the reference's published synthetic values are used, with a warning. ``vertex_table`` is
    accepted for symmetry with ``build_dataset`` (the mean does not depend on it).
    DataError when ``split_dir`` is set but not a folder.
    """
    entry = _entry(name)
    if entry.mean == "imagenet":
        return np.array(IMAGENET_MEAN, dtype=np.float64), np.array(IMAGENET_STD, dtype=np.float64)
    check_split_dir(split_dir)
    if entry.mean == "video":
        return tigdog_mean_std(root=root, animal=animal, seed=seed, split_dir=split_dir)
    mirror = reference_synthetic_dir(split_dir, animal) / MEAN_NAME if split_dir else None
    if (mirror is not None and mirror.is_file()) or synthetic_dir(root, animal).is_dir():
        return synthetic_mean_std(root=root, animal=animal, seed=seed, split_dir=split_dir)
    if animal not in KNOWN_SYNTHETIC_MEANS:
        raise DataError(
            f"{synthetic_dir(root, animal)}: no synthetic data for {animal!r} to compute the mean "
            f"from, and no published values (known: {sorted(KNOWN_SYNTHETIC_MEANS)})"
        )
    mean, std = KNOWN_SYNTHETIC_MEANS[animal]
    log.warning(
        "%s not found: using the reference's published synthetic %s mean %s / std %s",
        synthetic_dir(root, animal),
        animal,
        mean,
        std,
    )
    return np.array(mean, dtype=np.float64), np.array(std, dtype=np.float64)
