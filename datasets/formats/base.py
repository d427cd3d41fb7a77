"""The dataset base class: the sample contract, per-sample seeded randomness, epochs.

Every dataset returns the dict of docs/architecture.md ("The sample contract"). Randomness is a
pure function of ``(seed, epoch, index)`` (``np.random.default_rng([seed, epoch, index])``), so a
sample is the same whichever DataLoader worker builds it, and ``set_epoch`` changes it. The epoch
lives in a shared-memory tensor so that persistent workers see ``set_epoch`` calls made in the
main process.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.legacy import LegacyTargets, legacy_sample_keypoints
from animalpose.datasets.geometry import apply_affine
from animalpose.datasets.keypoints import KeypointSpec
from animalpose.datasets.transforms.crop import CenterCrop, CropResult
from animalpose.datasets.transforms.legacy_crop import legacy_bytescale, legacy_crop

__all__ = [
    "ANIMAL_NAME",
    "EVAL_SPLITS",
    "SPLITS",
    "TEST_SPLIT",
    "Augmenter",
    "KeypointDataset",
    "check_animal",
    "compose_affine",
]

#: ``aug(image (H, W, 3) uint8, keypoints (K, 3) source pixels, center (2,), size, rng)``.
Augmenter = Callable[..., CropResult]

#: Split names every dataset accepts: the training split, the validation split, and every
#: sample (in loader order; used to preprocess or pseudo-label a whole data set).
SPLITS = ("train", "valid", "all")
#: The held-out split of a benchmark: only TigDog-layout data written by
#: ``python datasets/generate.py --benchmark NAME`` has one (``datasets/generator/dogshift.py``).
TEST_SPLIT = "test"
#: Splits an evaluation may report on: "valid" (the split that selects models) or "test".
EVAL_SPLITS = ("valid", TEST_SPLIT)


#: An animal name becomes part of file and folder names, so it must be one plain name.
ANIMAL_NAME = re.compile(r"[A-Za-z0-9_-]+")


def check_animal(animal: str) -> str:
    """``animal`` unchanged when it is a plain name (letters, digits, _ and -); DataError
    otherwise, so that no name like ``../../x`` reads or writes outside the image path."""
    if not isinstance(animal, str) or not ANIMAL_NAME.fullmatch(animal):
        raise DataError(
            f"animal name {animal!r} is not a plain name (letters, digits, _ and -); it names "
            "folders and files under --image-path, e.g. --animal horse"
        )
    return animal


def compose_affine(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """The 2x3 affine ``outer o inner`` (apply ``inner`` first)."""
    o = np.vstack([np.asarray(outer, dtype=np.float64), [0.0, 0.0, 1.0]])
    i = np.vstack([np.asarray(inner, dtype=np.float64), [0.0, 0.0, 1.0]])
    return (o @ i)[:2]


class KeypointDataset(Dataset):
    """Base of every keypoint dataset.

    Args:
        augmenter: crop/augment callable (``transforms.crop.CenterCrop`` or a
            ``transforms.registry.AUGMENTERS`` entry).
        spec: the keypoint spec of the model (K keypoints).
        seed: non-negative seed of every per-sample random draw.
        legacy: the reference's crop boxes and targets (``formats/legacy.py``): the samples'
            keypoints are for ``codecs.legacy.LegacyHeatmap`` of ``heatmap_size`` heatmaps.
    """

    def __init__(
        self,
        *,
        augmenter: Augmenter,
        spec: KeypointSpec,
        seed: int,
        legacy: bool = False,
        heatmap_size: int = 64,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if heatmap_size <= 0:
            raise ValueError(f"heatmap_size must be positive, got {heatmap_size}")
        self.augmenter = augmenter
        self.spec = spec
        self.seed = int(seed)
        self.legacy = bool(legacy)
        self.heatmap_size = int(heatmap_size)
        # Shared memory so persistent DataLoader workers see the main process's set_epoch.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        return int(self._epoch[0])

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draw of ``epoch`` (visible to running workers)."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self._epoch[0] = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """The generator of sample ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def __len__(self) -> int:  # pragma: no cover - subclasses implement it
        raise NotImplementedError

    def _sample(
        self,
        index: int,
        image: np.ndarray,
        keypoints_image: np.ndarray,
        center: np.ndarray,
        size: float,
        shot: int = -1,
        frame: int = -1,
        *,
        pre_matrix: np.ndarray | None = None,
        source: str = "",
        legacy: LegacyTargets | None = None,
    ) -> dict:
        """Augment one sample and pack it in the contract dict.

        Args:
            index: position in the dataset.
            image: (H, W, 3) uint8 RGB.
            keypoints_image: (K, 3) annotation in source pixels, model order, visible column.
            center: (2,) crop centre in source pixels; size: crop side in source pixels.
            shot, frame: TigDog shot id and global frame number (-1 when not video data).
            pre_matrix: when ``image`` is already a crop of the source by this 2x3 affine (the
                real_animal_crop files), the augmenter works on the whole ``image`` and the
                returned ``meta["matrix"]`` still maps *source* pixels to the output crop.
            source: file name used in error messages.
            legacy: the reference's targets of a ``legacy`` data set: the sample's keypoints
                come from them (``formats.legacy.legacy_sample_keypoints``).
        """
        keypoints_image = np.asarray(keypoints_image, dtype=np.float64)
        center = np.asarray(center, dtype=np.float64).reshape(2)
        if not (np.isfinite(size) and size > 0) or not np.isfinite(center).all():
            raise DataError(
                f"{source or f'sample {index}'}: degenerate crop (center {center.tolist()}, "
                f"size {size}); the annotation has no extent"
            )
        rng = self.rng(index)
        if pre_matrix is None:
            result = self.augmenter(image, keypoints_image, center, float(size), rng)
            matrix = np.asarray(result.matrix, dtype=np.float64)
        else:
            h, w = image.shape[:2]
            moved = np.concatenate(
                [apply_affine(keypoints_image[:, :2], pre_matrix), keypoints_image[:, 2:3]], axis=1
            )
            whole = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
            result = self.augmenter(image, moved, whole, float(max(w, h)), rng)
            matrix = compose_affine(result.matrix, pre_matrix)
        image_out, keypoints = result.image, result.keypoints
        if legacy is not None:
            image_out, matrix, keypoints = self._legacy_crop(
                legacy, image, result, matrix, exact=pre_matrix is None
            )
        crop = np.ascontiguousarray(np.asarray(image_out, dtype=np.uint8).transpose(2, 0, 1))
        meta = {
            "index": int(index),
            "matrix": matrix,
            "center": center.copy(),
            "size": np.array([size, size], dtype=np.float64),
            "keypoints_image": keypoints_image.copy(),
            "flipped": bool(result.flipped),
            "shot": int(shot),
            "frame": int(frame),
        }
        return {
            "image": torch.from_numpy(crop),
            "keypoints": torch.from_numpy(np.asarray(keypoints, dtype=np.float32)),
            "meta": meta,
        }

    def _legacy_crop(
        self,
        legacy: LegacyTargets,
        image: np.ndarray,
        result: CropResult,
        matrix: np.ndarray,
        *,
        exact: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(crop, source -> crop matrix, keypoints) of a legacy sample: the un-augmented crop of
        a frame is the reference's own (``legacy_crop``); an augmented one is ours, byte-scaled
        as the reference's last resize did."""
        size = int(np.asarray(result.image).shape[1])
        exact = exact and isinstance(self.augmenter, CenterCrop)
        if exact:
            crop, legacy_matrix = legacy_crop(image, legacy.center, legacy.scale, size)
            matrix = matrix if legacy_matrix is None else legacy_matrix
        else:
            crop = legacy_bytescale(np.asarray(result.image, dtype=np.float64))
        keypoints = legacy_sample_keypoints(
            legacy,
            matrix=matrix,
            flipped=bool(result.flipped),
            flip_index=self.spec.flip_index,
            exact=exact,
            input_size=size,
            heatmap_size=self.heatmap_size,
        )
        return crop, matrix, keypoints
