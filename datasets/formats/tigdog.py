"""TigDog (behaviorDiscovery2.0) frames: the ``real_animal`` datasets.

The frame list is every frame of every shot that has a landmark file, in ``ranges`` order
(video/frame order; CC-SSL's temporal step relies on it); split indices point into it. Only the
first 18 landmarks are keypoints; a frame is kept when more than 9 are visible; landmarks outside
the frame count as not visible in samples. The crop is centred on the box of the positive
coordinates with side 1.5 x its longer side. NaN landmarks and bad ``ranges`` rows are errors.
Layout and split/mean files: animal_data/README.md; reference: docs/reference_compat.md §1.2, §7.6.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animalpose.datasets.fileio import DataError, load_mat, read_image
from animalpose.datasets.formats.base import (
    SPLITS,
    TEST_SPLIT,
    Augmenter,
    KeypointDataset,
    check_animal,
)
from animalpose.datasets.formats.legacy import LegacyTargets, legacy_tigdog_targets
from animalpose.datasets.formats.means import (
    VIDEO_MEAN_NAME,
    compute_mean_std,
    load_or_compute_mean,
)
from animalpose.datasets.formats.split_fingerprint import frame_ids
from animalpose.datasets.formats.splits import (
    VIDEO_SPLIT_NAMES,
    VIDEO_TEST_NAME,
    check_split_dir,
    load_or_create_video_splits,
)
from animalpose.datasets.keypoints import TIGER_PERMUTATION, KeypointSpec
from animalpose.datasets.transforms.crop import inside_frame

__all__ = [
    "MIN_VISIBLE",
    "TIGDOG_BOX_FACTOR",
    "TIGDOG_FOLDER",
    "VIDEO_SPLITS",
    "RealAnimal",
    "TigDog",
    "TigDogBase",
    "load_tigdog",
    "split_folder",
    "tigdog_box",
    "tigdog_mean_std",
    "tigdog_split",
]

log = logging.getLogger(__name__)

TIGDOG_FOLDER = "behaviorDiscovery2.0"
#: Our split/mean files for TigDog, under behaviorDiscovery2.0/ (one folder per animal).
SPLITS_FOLDER = "splits"
#: The reference's data/ sub-folder of TigDog split and mean files.
REFERENCE_REAL_FOLDER = "real_animal"
#: Only the first 18 TigDog landmarks are keypoints (reference load_animal: landmark[:18]).
NUM_LANDMARKS = 18
#: Keep a frame when more than 18 // 2 = 9 landmarks are visible (reference dataset_filter).
MIN_VISIBLE = NUM_LANDMARKS // 2
#: Crop side = 1.5 x the longer side of the landmark box (reference real_animal.py).
TIGDOG_BOX_FACTOR = 1.5
#: Splits of the TigDog datasets: the common ones plus a benchmark's held-out test split.
VIDEO_SPLITS = (*SPLITS, TEST_SPLIT)
#: TigDog landmark slot of each model keypoint, by animal (identity when absent).
LANDMARK_ORDER: dict[str, tuple[int, ...]] = {"tiger": TIGER_PERMUTATION}

_LAYOUT = (
    "expected <image-path>/behaviorDiscovery2.0/ with ranges/<animal>/ranges.mat, "
    "landmarks/<animal>/<shot>.mat and <animal>/<8-digit frame>.jpg (see animal_data/README.md)"
)


@dataclass(frozen=True)
class TigDog:
    """The full frame list of one animal.

    Attributes:
        root: the image path. animal: animal name.
        shots, frames: (N,) int64 shot id and global frame number of every frame.
        keypoints: (N, 18, 3) float64 annotation in frame pixels, model order, visible column.
        kept: (M,) int64 indices of the frames with more than 9 visible landmarks.
        visibility: (N, 18) float64 raw visibility flags, model order (the legacy targets').
    """

    root: Path
    animal: str
    shots: np.ndarray
    frames: np.ndarray
    keypoints: np.ndarray
    kept: np.ndarray
    visibility: np.ndarray | None = None

    def frame_path(self, index: int) -> Path:
        return self.root / TIGDOG_FOLDER / self.animal / f"{int(self.frames[index]):08d}.jpg"


def tigdog_dir(root: str | os.PathLike) -> Path:
    return Path(root) / TIGDOG_FOLDER


def split_folder(root: str | os.PathLike, animal: str) -> Path:
    """Where our TigDog split and mean files live: behaviorDiscovery2.0/splits/<animal>/."""
    return tigdog_dir(root) / SPLITS_FOLDER / check_animal(animal)


def reference_real_dir(split_dir: str | os.PathLike, animal: str) -> Path:
    return Path(split_dir) / REFERENCE_REAL_FOLDER / check_animal(animal)


def _unwrap_struct(entry, path: Path, position: int) -> np.void:
    record = entry
    while isinstance(record, np.ndarray):
        if record.size != 1:
            raise DataError(f"{path}: landmarks cell {position + 1} must hold one 1x1 struct")
        record = record.reshape(-1)[0]
    if not isinstance(record, np.void) or record.dtype.names is None or len(record.dtype.names) < 2:
        raise DataError(
            f"{path}: landmarks cell {position + 1} must be a struct with (coordinates, "
            "visibility) as its first two fields"
        )
    return record


def _frame_landmarks(entry, path: Path, position: int, frame: int) -> np.ndarray:
    """(18, 3) TigDog-slot landmarks (x, y, raw visibility) of cell ``position`` (0-based),
    global frame number ``frame``. NaN is no way to write "missing": it is a DataError."""
    record = _unwrap_struct(entry, path, position)
    coords = np.asarray(record[0], dtype=np.float64)
    vis = np.asarray(record[1], dtype=np.float64).reshape(-1)
    out = np.zeros((NUM_LANDMARKS, 3))
    if coords.size == 0:  # an unannotated frame: every landmark missing
        return out
    if coords.ndim != 2 or coords.shape[1] != 2 or coords.shape[0] < NUM_LANDMARKS:
        raise DataError(
            f"{path}: frame {position + 1} coordinates must be K x 2 with K >= {NUM_LANDMARKS}, "
            f"got {coords.shape}"
        )
    if vis.shape[0] != coords.shape[0]:
        raise DataError(
            f"{path}: frame {position + 1} has {coords.shape[0]} coordinates but "
            f"{vis.shape[0]} visibility flags"
        )
    out[:, :2] = coords[:NUM_LANDMARKS]
    out[:, 2] = vis[:NUM_LANDMARKS]
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if len(bad):
        k = int(bad[0])
        raise DataError(
            f"{path}: cell {position + 1} (frame {frame}): landmark {k + 1} has a NaN or "
            f"infinite value (x, y, visibility = {out[k].tolist()}); a missing landmark has "
            "visibility 0 and coordinates 0"
        )
    return out


def load_tigdog(root: str | os.PathLike, animal: str) -> TigDog:
    """Read ranges and landmarks of ``animal``; DataError naming the file on any problem."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image path does not exist; {_LAYOUT}")
    base = tigdog_dir(root)
    if not base.is_dir():
        raise DataError(f"{base}: folder not found; {_LAYOUT}")
    ranges_path = base / "ranges" / check_animal(animal) / "ranges.mat"
    ranges = _read_ranges(ranges_path)
    order = np.asarray(LANDMARK_ORDER.get(animal, range(NUM_LANDMARKS)))
    shots, frames, landmarks = [], [], []
    for shot, start, end in ranges:
        path = base / "landmarks" / animal / f"{shot}.mat"
        if not path.is_file():
            continue  # the reference skips shots without a landmark file
        if end < start:
            raise DataError(f"{ranges_path}: shot {shot} ends ({end}) before it starts ({start})")
        cells = np.asarray(load_mat(path, ("landmarks",))["landmarks"], dtype=object).reshape(-1)
        count = end - start + 1
        if len(cells) < count:
            raise DataError(
                f"{path}: {len(cells)} landmark cells for the {count} frames {start}..{end} of "
                f"shot {shot} in {ranges_path}"
            )
        for i in range(count):
            raw = _frame_landmarks(cells[i], path, i, start + i)
            landmarks.append(raw[order])
            shots.append(shot)
            frames.append(start + i)
    if not shots:
        raise DataError(
            f"{base / 'landmarks' / animal}: no landmark file for any shot of {ranges_path}"
        )
    raw = np.stack(landmarks)
    kept = np.flatnonzero((raw[:, :, 2] > 0).sum(axis=1) > MIN_VISIBLE)
    keypoints = raw.copy()
    keypoints[:, :, 2] = (raw[:, :, 2] > 0) & (raw[:, :, 0] > 0) & (raw[:, :, 1] > 0)
    if len(kept) == 0:
        raise DataError(
            f"{base / 'landmarks' / animal}: no frame has more than {MIN_VISIBLE} visible landmarks"
        )
    return TigDog(
        root,
        animal,
        np.asarray(shots, dtype=np.int64),
        np.asarray(frames, dtype=np.int64),
        keypoints,
        kept,
        raw[:, :, 2].copy(),
    )


def _read_ranges(path: Path) -> np.ndarray:
    """(N, 3) int64 ``ranges`` rows [shot, first frame, last frame]; DataError naming the row
    for NaN or infinite values, fractional values and shots listed twice."""
    ranges = np.asarray(load_mat(path, ("ranges",))["ranges"])
    if ranges.ndim != 2 or ranges.shape[1] != 3 or ranges.dtype.kind not in "biuf":
        raise DataError(
            f"{path}: `ranges` must be a numeric N x 3 [shot, start, end], got {ranges.shape} "
            f"{ranges.dtype}"
        )
    values = ranges.astype(np.float64)
    seen: dict[int, int] = {}
    for row, (shot, start, end) in enumerate(values, 1):
        text = ", ".join(f"{v:g}" for v in (shot, start, end))
        if not np.isfinite([shot, start, end]).all():
            problem = "holds NaN or infinity"
        elif not all(float(v).is_integer() for v in (shot, start, end)):
            problem = "holds a fractional value"
        elif int(shot) in seen:
            problem = f"repeats shot {int(shot)} of row {seen[int(shot)]}"
        else:
            seen[int(shot)] = row
            continue
        raise DataError(
            f"{path}: `ranges` row {row} ({text}) {problem}; every row must be three integers "
            "[shot, first frame, last frame], one row per shot"
        )
    return values.astype(np.int64)


def tigdog_box(keypoints: np.ndarray) -> tuple[np.ndarray, float]:
    """(center (2,), side) of the crop: box of the positive x and positive y values (any
    visibility), side 1.5 x the longer box side. Raises ValueError when nothing is positive."""
    x, y = keypoints[:, 0], keypoints[:, 1]
    xs, ys = x[x > 0], y[y > 0]
    if xs.size == 0 or ys.size == 0:
        raise ValueError("no landmark has positive coordinates")
    center = np.array([(xs.min() + xs.max()) / 2.0, (ys.min() + ys.max()) / 2.0])
    return center, TIGDOG_BOX_FACTOR * max(xs.max() - xs.min(), ys.max() - ys.min())


def tigdog_split(
    data: TigDog, split: str, *, seed: int, split_dir: str | os.PathLike | None = None
) -> np.ndarray:
    """Sorted indices into the frame list of ``split``: "train", "valid", "test" (a benchmark's
    held-out split) or "all" kept frames.

    Raises:
        DataError: split "test" on data without ``test_idxs_by_video.npy`` (naming the folder),
            or split files that fail validation (``splits.load_or_create_video_splits``).
    """
    if split not in VIDEO_SPLITS:
        raise ValueError(f"split must be one of {VIDEO_SPLITS}, got {split!r}")
    search = [reference_real_dir(split_dir, data.animal)] if check_split_dir(split_dir) else []
    if split == "all":
        return data.kept
    splits = load_or_create_video_splits(
        split_folder(data.root, data.animal),
        names=VIDEO_SPLIT_NAMES,
        test_name=VIDEO_TEST_NAME,
        shots=data.shots,
        kept=data.kept,
        seed=seed,
        search_dirs=search,
        sample_ids=frame_ids(data.shots, data.frames),
    )
    if split == TEST_SPLIT:
        if splits.test is None:
            raise DataError(
                f"{splits.folder}: this data set has no test split ({VIDEO_TEST_NAME} not found); "
                "generate a benchmark with `python datasets/generate.py --benchmark NAME` (names: "
                "animalpose.datasets.generator.dogshift.BENCHMARKS), or evaluate on split 'valid'"
            )
        return splits.test
    return splits.train if split == "train" else splits.valid


class TigDogBase(KeypointDataset):
    """Shared construction of the TigDog datasets (``RealAnimal``, ``crops.RealAnimalCrop``)."""

    def __init__(
        self,
        *,
        root: str | os.PathLike,
        animal: str,
        split: str,
        augmenter: Augmenter,
        spec: KeypointSpec,
        seed: int,
        split_dir: str | os.PathLike | None = None,
        limit: int = 0,
        legacy: bool = False,
        heatmap_size: int = 64,
    ) -> None:
        super().__init__(
            augmenter=augmenter, spec=spec, seed=seed, legacy=legacy, heatmap_size=heatmap_size
        )
        if spec.num_keypoints != NUM_LANDMARKS:
            raise ValueError(
                f"TigDog has {NUM_LANDMARKS} keypoints; spec {spec.name!r} has {spec.num_keypoints}"
            )
        self.root = Path(root)
        self.animal = animal
        self.split = split
        self.data = load_tigdog(self.root, animal)
        indices = tigdog_split(self.data, split, seed=seed, split_dir=split_dir)
        if limit > 0:
            indices = indices[:limit]
        if len(indices) == 0:
            raise DataError(f"{tigdog_dir(self.root)}: the {split!r} split of {animal} is empty")
        self.indices = np.asarray(indices, dtype=np.int64)
        missing = [p for p in map(self.image_path, range(len(self.indices))) if not p.is_file()]
        if missing:
            raise DataError(
                f"{missing[0]}: image not found ({len(missing)} of the {split!r} "
                f"split missing){self._missing_hint}"
            )

    _missing_hint = ""

    def __len__(self) -> int:
        return len(self.indices)

    def image_path(self, index: int) -> Path:  # pragma: no cover - overridden
        raise NotImplementedError

    def annotation(
        self, index: int, frame_size: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """(keypoints_image (18, 3), center (2,), side) of sample ``index`` in frame pixels.

        With the (w, h) ``frame_size``, landmarks outside the frame are not visible, as missing
        ones are (coordinates kept); the crop box and the frame filter stay the reference's.
        """
        keypoints = self.data.keypoints[self.indices[index]].copy()
        try:
            center, size = tigdog_box(keypoints)
        except ValueError:
            raise DataError(
                f"{self.data.frame_path(self.indices[index])}: no landmark with "
                "positive coordinates"
            ) from None
        if frame_size is not None:
            keypoints[~inside_frame(keypoints[:, :2], frame_size), 2] = 0.0
        return keypoints, center, size

    def legacy_targets(self, index: int) -> LegacyTargets:
        """The reference's box and targets of sample ``index`` (``legacy_tigdog_targets``; its
        box rule is ``tigdog_box``'s, which ``annotation`` checks first)."""
        j = self.indices[index]
        raw = self.data.keypoints[j].copy()
        raw[:, 2] = self.data.visibility[j]
        return legacy_tigdog_targets(raw, TIGDOG_BOX_FACTOR)

    def shot_frame(self, index: int) -> tuple[int, int]:
        j = self.indices[index]
        return int(self.data.shots[j]), int(self.data.frames[j])


class RealAnimal(TigDogBase):
    """TigDog frames (``real_animal`` / ``real_animal_sp``), loader order = video/frame order.

    Args: as ``SyntheticAnimal`` (no vertex table); ``split_dir`` is the reference ``data/``
    mirror searched for ``real_animal/<animal>/{train,valid}_idxs_by_video.npy``.
    """

    def image_path(self, index: int) -> Path:
        return self.data.frame_path(self.indices[index])

    def __getitem__(self, index: int) -> dict:
        path = self.image_path(index)
        image = read_image(path)
        keypoints, center, size = self.annotation(index, (image.shape[1], image.shape[0]))
        shot, frame = self.shot_frame(index)
        legacy = None
        if self.legacy:
            legacy = self.legacy_targets(index)
            center, size = legacy.center.astype(np.float64), legacy.size
        return self._sample(
            index, image, keypoints, center, size, shot, frame, source=str(path), legacy=legacy
        )


def tigdog_mean_std(
    *, root: str | os.PathLike, animal: str, seed: int, split_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``mean_by_video.pth.tar``: read (reference mirror first, then our splits folder) or
    computed over the training frames and saved in ``behaviorDiscovery2.0/splits/<animal>/``."""
    search = [reference_real_dir(split_dir, animal) / VIDEO_MEAN_NAME] if split_dir else []

    def compute() -> tuple[np.ndarray, np.ndarray]:
        data = load_tigdog(root, animal)
        train = tigdog_split(data, "train", seed=seed, split_dir=split_dir)
        return compute_mean_std(lambda i: read_image(data.frame_path(train[i])), len(train))

    return load_or_compute_mean(
        split_folder(root, animal) / VIDEO_MEAN_NAME, compute, search_paths=search
    )
