"""TigDog (behaviorDiscovery2.0) frames and the reference's pre-cropped copies
(reference-compat spec 1.2).

Layout under the image path::

    behaviorDiscovery2.0/
        ranges/<animal>/ranges.mat          `ranges`: N x 3 ints [shot_id, start_frame, end_frame]
        landmarks/<animal>/<shot_id>.mat    `landmarks`: F x 1 cell of 1x1 structs; field 1 the
                                            K x 2 coordinates, field 2 the K x 1 visibility
        <animal>/<8-digit frame>.jpg        global frame numbers, start..end inclusive
        splits/<animal>/                    OUR created split / mean files (see below)
    real_animal_crop/real_<animal>_crop/crop_<8-digit frame>.jpg
                                            256 x 256 crops of the annotation box (crop_real.py)

The frame list is every frame of every shot that has a landmark file, in ``ranges`` order
(video/frame order; CC-SSL's temporal step relies on it). Split indices point into it. Only the
first 18 landmarks are used; a frame is kept when more than 9 of them are visible. Annotations
are read as 0-based pixels, as the reference does; missing landmarks have non-positive
coordinates and get visible = 0. The tiger's TigDog slots are permuted into model order
(``keypoints.TIGER_PERMUTATION``). The crop is centred on the box of the positive coordinates
(visible or not) with side 1.5 x its longer side.

Split and mean files: the reference's own (``train_idxs_by_video.npy``,
``valid_idxs_by_video.npy``, ``mean_by_video.pth.tar``) are looked for in
``<split_dir>/real_animal/<animal>/`` (a mirror of its ``data/`` folder), then in
``behaviorDiscovery2.0/splits/<animal>/``, where files we create (seeded, by whole shots) go.
A benchmark (``datasets/generator/dogshift.py``) also writes ``test_idxs_by_video.npy`` and
``benchmark.json`` there: split ``"test"`` reads the held-out test file, which must not share a
frame or a shot with the other two; data without one has no test split.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from animalpose.datasets.fileio import DataError, load_mat, read_image, write_image
from animalpose.datasets.formats.base import SPLITS, TEST_SPLIT, Augmenter, KeypointDataset
from animalpose.datasets.formats.splits import (
    VIDEO_MEAN_NAME,
    VIDEO_SPLIT_NAMES,
    VIDEO_TEST_NAME,
    compute_mean_std,
    load_or_compute_mean,
    load_or_create_video_splits,
)
from animalpose.datasets.geometry import crop_matrix
from animalpose.datasets.keypoints import TIGER_PERMUTATION, KeypointSpec
from animalpose.datasets.transforms.crop import CenterCrop

__all__ = [
    "CROP_SIZE",
    "MIN_VISIBLE",
    "TIGDOG_BOX_FACTOR",
    "TIGDOG_FOLDER",
    "VIDEO_SPLITS",
    "RealAnimal",
    "RealAnimalCrop",
    "TigDog",
    "crop_path",
    "crop_real_main",
    "load_tigdog",
    "split_folder",
    "tigdog_box",
    "tigdog_mean_std",
    "tigdog_split",
    "write_real_crops",
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
#: Side of the reference's pre-cropped frames (get_cropped_TigDog.py).
CROP_SIZE = 256
CROP_FOLDER = "real_animal_crop"
#: Splits of the TigDog datasets: the common ones plus a benchmark's held-out test split.
VIDEO_SPLITS = (*SPLITS, TEST_SPLIT)
#: TigDog landmark slot of each model keypoint, by animal (identity when absent).
LANDMARK_ORDER: dict[str, tuple[int, ...]] = {"tiger": TIGER_PERMUTATION}

_LAYOUT = (
    "expected <image-path>/behaviorDiscovery2.0/ with ranges/<animal>/ranges.mat, "
    "landmarks/<animal>/<shot>.mat and <animal>/<8-digit frame>.jpg (reference-compat spec 1.2)"
)


@dataclass(frozen=True)
class TigDog:
    """The full frame list of one animal.

    Attributes:
        root: the image path. animal: animal name.
        shots, frames: (N,) int64 shot id and global frame number of every frame.
        keypoints: (N, 18, 3) float64 annotation in frame pixels, model order, visible column.
        kept: (M,) int64 indices of the frames with more than 9 visible landmarks.
    """

    root: Path
    animal: str
    shots: np.ndarray
    frames: np.ndarray
    keypoints: np.ndarray
    kept: np.ndarray

    def frame_path(self, index: int) -> Path:
        return self.root / TIGDOG_FOLDER / self.animal / f"{int(self.frames[index]):08d}.jpg"


def tigdog_dir(root: str | os.PathLike) -> Path:
    return Path(root) / TIGDOG_FOLDER


def split_folder(root: str | os.PathLike, animal: str) -> Path:
    """Where our TigDog split and mean files live: behaviorDiscovery2.0/splits/<animal>/."""
    return tigdog_dir(root) / SPLITS_FOLDER / animal


def reference_real_dir(split_dir: str | os.PathLike, animal: str) -> Path:
    return Path(split_dir) / REFERENCE_REAL_FOLDER / animal


def crop_path(root: str | os.PathLike, animal: str, frame: int) -> Path:
    """real_animal_crop/real_<animal>_crop/crop_<8-digit frame>.jpg under the image path."""
    return Path(root) / CROP_FOLDER / f"real_{animal}_crop" / f"crop_{int(frame):08d}.jpg"


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


def _frame_landmarks(entry, path: Path, position: int) -> np.ndarray:
    """(18, 3) TigDog-slot landmarks (x, y, raw visibility) of one cell."""
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
    return out


def load_tigdog(root: str | os.PathLike, animal: str) -> TigDog:
    """Read ranges and landmarks of ``animal``; DataError naming the file on any problem."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image path does not exist; {_LAYOUT}")
    base = tigdog_dir(root)
    if not base.is_dir():
        raise DataError(f"{base}: folder not found; {_LAYOUT}")
    ranges_path = base / "ranges" / animal / "ranges.mat"
    ranges = np.asarray(load_mat(ranges_path, ("ranges",))["ranges"])
    if ranges.ndim != 2 or ranges.shape[1] != 3 or not np.isfinite(ranges.astype(float)).all():
        raise DataError(
            f"{ranges_path}: `ranges` must be N x 3 [shot, start, end], got {ranges.shape}"
        )
    ranges = ranges.astype(np.int64)
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
            raw = _frame_landmarks(cells[i], path, i)
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
    )


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
    if split == "all":
        return data.kept
    search = [reference_real_dir(split_dir, data.animal)] if split_dir else []
    splits = load_or_create_video_splits(
        split_folder(data.root, data.animal),
        names=VIDEO_SPLIT_NAMES,
        test_name=VIDEO_TEST_NAME,
        shots=data.shots,
        kept=data.kept,
        seed=seed,
        search_dirs=search,
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


class _TigDogBase(KeypointDataset):
    """Shared construction of the two TigDog datasets."""

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
    ) -> None:
        super().__init__(augmenter=augmenter, spec=spec, seed=seed)
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

    def annotation(self, index: int) -> tuple[np.ndarray, np.ndarray, float]:
        """(keypoints_image (18, 3), center (2,), side) of sample ``index`` in frame pixels."""
        keypoints = self.data.keypoints[self.indices[index]]
        try:
            center, size = tigdog_box(keypoints)
        except ValueError:
            raise DataError(
                f"{self.data.frame_path(self.indices[index])}: no landmark with "
                "positive coordinates"
            ) from None
        return keypoints.copy(), center, size

    def shot_frame(self, index: int) -> tuple[int, int]:
        j = self.indices[index]
        return int(self.data.shots[j]), int(self.data.frames[j])


class RealAnimal(_TigDogBase):
    """TigDog frames (``real_animal`` / ``real_animal_sp``), loader order = video/frame order.

    Args: as ``SyntheticAnimal`` (no vertex table); ``split_dir`` is the reference ``data/``
    mirror searched for ``real_animal/<animal>/{train,valid}_idxs_by_video.npy``.
    """

    def image_path(self, index: int) -> Path:
        return self.data.frame_path(self.indices[index])

    def __getitem__(self, index: int) -> dict:
        path = self.image_path(index)
        keypoints, center, size = self.annotation(index)
        shot, frame = self.shot_frame(index)
        return self._sample(
            index, read_image(path), keypoints, center, size, shot, frame, source=str(path)
        )


class RealAnimalCrop(_TigDogBase):
    """The pre-cropped TigDog frames (``real_animal_crop``) with the same annotations.

    Each file ``crop_<frame>.jpg`` is the annotation box crop of its frame (written by
    ``datasets/crop_real.py`` or the reference's get_cropped_TigDog.py). The augmenter works on
    the whole file; ``meta`` still refers to the original frame (``matrix`` maps frame pixels
    to the output crop, ``center``/``size`` are the frame's box), so predictions map back to
    frame pixels as for ``real_animal``. Files are found by frame number (the reference relied on
    the sorted file list matching the frame list).
    """

    _missing_hint = "; write the crops with `python datasets/crop_real.py`"

    def image_path(self, index: int) -> Path:
        return crop_path(self.root, self.animal, self.data.frames[self.indices[index]])

    def __getitem__(self, index: int) -> dict:
        path = self.image_path(index)
        image = read_image(path)
        keypoints, center, size = self.annotation(index)
        shot, frame = self.shot_frame(index)
        to_file = crop_matrix(center, size, (image.shape[1], image.shape[0]))
        return self._sample(
            index, image, keypoints, center, size, shot, frame, pre_matrix=to_file, source=str(path)
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


def write_real_crops(
    root: str | os.PathLike, animal: str, *, output_size: int = CROP_SIZE, progress: bool = True
) -> int:
    """Write the annotation-box crop of every kept frame to the real_animal_crop layout.

    Crops are ``transforms.CenterCrop(output_size)`` of the frame (the validation crop), written
    atomically as JPEG; files already present are skipped. Returns the number written.
    """
    data = load_tigdog(root, animal)
    crop = CenterCrop(output_size)
    written = 0
    for j in tqdm(data.kept, desc=f"cropping {animal}", unit="img", disable=not progress):
        target = crop_path(root, animal, data.frames[j])
        if target.exists():
            continue
        center, size = tigdog_box(data.keypoints[j])
        result = crop(read_image(data.frame_path(j)), data.keypoints[j], center, size)
        write_image(target, result.image)
        written += 1
    log.info("wrote %d crops of %d kept %s frames", written, len(data.kept), animal)
    return written


def crop_real_main(argv: list[str] | None = None) -> int:
    """``python datasets/crop_real.py --image-path animal_data --animal horse``."""
    parser = argparse.ArgumentParser(
        description="Write the 256x256 annotation-box crops of TigDog frames "
        "(real_animal_crop/real_<animal>_crop/crop_<frame>.jpg)."
    )
    parser.add_argument("--image-path", default="./animal_data", help="data root")
    parser.add_argument("--animal", nargs="+", default=["horse"], help="animal(s) to crop")
    parser.add_argument("--size", type=int, default=CROP_SIZE, help="crop side in pixels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for animal in args.animal:
        count = write_real_crops(args.image_path, animal, output_size=args.size)
        print(f"{animal}: wrote {count} crops under {Path(args.image_path) / CROP_FOLDER}")
    return 0
