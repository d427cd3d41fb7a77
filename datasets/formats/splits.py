"""Train/valid/test split files in the reference's formats (docs/reference_compat.md §7.6).

Split files are ``.npy`` arrays of indices into a dataset's full, sorted sample list. Existing
files are read first from ``search_dirs`` (a mirror of the reference's ``data/`` folder), then
from the data directory; only when none exist is a new split drawn, *seeded*, and saved
atomically beside the data. A benchmark adds ``test_idxs_by_video.npy``, a held-out split
disjoint by whole shots. Given the sample names (``sample_ids``), files are written with and
checked against a fingerprint (``split_fingerprint``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.split_fingerprint import (
    interrupted_write,
    read_checked,
    warn_once,
    write_split_files,
)

__all__ = [
    "SPLIT_NAMES",
    "VIDEO_SPLIT_NAMES",
    "VIDEO_TEST_NAME",
    "VideoSplits",
    "check_split_dir",
    "load_or_create_split",
    "load_or_create_video_split",
    "load_or_create_video_splits",
    "read_split",
    "save_video_splits",
    "write_split_files",
]

log = logging.getLogger(__name__)

#: Reference split file names of the synthetic datasets (data/synthetic_animal/<animal>_.../).
SPLIT_NAMES = ("train_idxs.npy", "valid_idxs.npy")
#: Reference split file names of TigDog, split by video (data/real_animal/<animal>/).
VIDEO_SPLIT_NAMES = ("train_idxs_by_video.npy", "valid_idxs_by_video.npy")
#: Our held-out test split of TigDog-layout data, beside the pair (written only by a benchmark,
#: ``datasets/generator/dogshift.py``; the reference has no test file and reports on its valid
#: split).
VIDEO_TEST_NAME = "test_idxs_by_video.npy"
#: The reference holds out a fifth of the images (``len // 5``) or of the shots.
REFERENCE_TRAIN_FRACTION = 0.8
#: Seconds to wait for the second file of a pair that another process is still writing.
PARTNER_WAIT_S = 2.0


def _held_out(n: int, train_fraction: float) -> int:
    """Validation count: ``floor(n * (1 - train_fraction))`` (the reference's ``n // 5``)."""
    return int(np.floor(n * (1.0 - train_fraction) + 1e-9))


def _read_index_file(path: Path, n: int, *, partner: bool = True) -> np.ndarray:
    """One split file: a non-empty 1-D integer array of distinct indices into ``range(n)``.

    Raises:
        DataError: naming ``path`` (missing, unreadable, wrong shape or dtype, empty, out of
            range, duplicates). ``partner``: the message of a missing file says its partner exists.
    """
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        hint = " (its partner exists)" if partner else ""
        raise DataError(f"{path}: split file not found{hint}") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read split file ({exc})") from exc
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise DataError(
            f"{path}: split file must be a 1-D integer array, got shape {arr.shape} "
            f"dtype {arr.dtype}"
        )
    if arr.size == 0:
        raise DataError(f"{path}: split file is empty")
    if arr.min() < 0 or arr.max() >= n:
        raise DataError(
            f"{path}: split indices must lie in [0, {n}) for this data set, found "
            f"[{arr.min()}, {arr.max()}]; the split file does not match the data"
        )
    if np.unique(arr).size != arr.size:
        raise DataError(f"{path}: split file lists an index twice")
    return arr.astype(np.int64)


def read_split(train_path: Path, valid_path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Read and validate a pair of split files holding indices into ``range(n)``.

    The order stored in the files is kept (the reference's validation files are in draw order).

    Raises:
        DataError: a file is unreadable, not a 1-D integer array, empty, out of range, has
            duplicates, or the two files share an index (naming the file).
    """
    arrays = [_read_index_file(path, n) for path in (train_path, valid_path)]
    shared = np.intersect1d(arrays[0], arrays[1])
    if shared.size:
        raise DataError(
            f"{train_path} and {valid_path}: {shared.size} indices are in both splits "
            f"(first {int(shared[0])})"
        )
    return arrays[0], arrays[1]


def check_split_dir(split_dir: str | os.PathLike | None) -> Path | None:
    """``split_dir`` (``--split-dir`` / ``data.split_dir``) as a Path, None when unset;
    DataError when it is set but not an existing folder (it would be silently ignored)."""
    if split_dir is None or str(split_dir) == "":
        return None
    path = Path(split_dir)
    if not path.is_dir():
        what = "is not a folder" if path.exists() else "does not exist"
        raise DataError(
            f"{path}: the split folder (--split-dir / data.split_dir) {what}; point it at a copy "
            "of the reference's data/ folder (holding synthetic_animal/ and real_animal/), or "
            "leave it empty to use the split files beside the data"
        )
    return path


def _find_split(
    directory: Path, names: Sequence[str], search_dirs: Iterable[str | os.PathLike]
) -> tuple[Path, Path] | None:
    search_dirs = list(map(Path, search_dirs))
    for folder in [*search_dirs, Path(directory)]:
        train_path, valid_path = folder / names[0], folder / names[1]
        if train_path.exists() or valid_path.exists():
            # Another process (a DDP rank) may be between writing the two files.
            deadline = time.monotonic() + PARTNER_WAIT_S
            while not (train_path.exists() and valid_path.exists()):
                if time.monotonic() > deadline:
                    break  # read_split names the missing file
                time.sleep(0.05)
            break
    else:
        train_path = None
    if search_dirs and (train_path is None or folder == Path(directory)):
        warn_once(
            f"no split files {', '.join(names)} in {', '.join(map(str, search_dirs))} "
            f"(--split-dir); using the split beside the data in {directory}"
        )
    if train_path is None:
        return None
    if folder == Path(directory) and interrupted_write((train_path, valid_path)):
        log.warning("%s: a killed write left half a split: drawing it again", directory)
        return None
    return train_path, valid_path


def load_or_create_split(
    directory: str | os.PathLike,
    *,
    names: Sequence[str] = SPLIT_NAMES,
    n: int,
    train_fraction: float = REFERENCE_TRAIN_FRACTION,
    seed: int,
    search_dirs: Iterable[str | os.PathLike] = (),
    sample_ids: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Image-level split of ``n`` samples: read the split files, or draw and save a seeded one.

    Args:
        directory: where our split files live (beside the data); created files go here.
        names: (train file, valid file) names.
        n: number of samples (indices are into ``range(n)``).
        train_fraction: share of samples in the training split of a new split.
        seed: seed of a new split.
        search_dirs: folders searched first for existing files (a reference ``data/`` mirror).
        sample_ids: the names of the samples, in the order the indices point into (for
            ``split_fingerprint``); None: no fingerprint is written or checked.

    Returns:
        (train, valid) int64 index arrays; a new split is sorted.

    Raises:
        DataError: invalid split files, or (given ``sample_ids``) files whose data changed.
    """
    if sample_ids is not None and len(sample_ids) != n:
        raise ValueError(f"{len(sample_ids)} sample_ids for n={n} samples")
    found = _find_split(Path(directory), names, search_dirs)
    if found is not None:
        log.info("reading split files %s, %s", *found)
        return read_checked(found, Path(directory), sample_ids, lambda: read_split(*found, n))
    n_valid = _held_out(n, train_fraction)
    if n < 2 or n_valid < 1 or n_valid >= n:
        raise DataError(
            f"{directory}: cannot split {n} samples with train fraction {train_fraction} "
            "(both splits must be non-empty)"
        )
    rng = np.random.default_rng(seed)
    valid = np.sort(rng.choice(n, size=n_valid, replace=False))
    train = np.setdiff1d(np.arange(n), valid)
    write_split_files(directory, {names[0]: train, names[1]: valid}, sample_ids=sample_ids)
    log.info("saved a new split (%d train / %d valid) in %s", len(train), len(valid), directory)
    return train, valid


def _check_kept(path: Path, indices: np.ndarray, kept: np.ndarray) -> None:
    """DataError when the split file ``path`` lists frames outside ``kept`` (the annotated ones)."""
    dropped = np.setdiff1d(indices, kept)
    if dropped.size:
        raise DataError(
            f"{path}: lists {dropped.size} frames that the annotation filter drops "
            f"(first: index {int(dropped[0])}); the split file does not match this copy "
            "of the data"
        )


def _read_video_pair(
    found: tuple[Path, Path], shots: np.ndarray, kept: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    log.info("reading split files %s, %s", *found)
    train, valid = read_split(found[0], found[1], len(shots))
    for path, arr in zip(found, (train, valid)):
        _check_kept(path, arr, kept)
    mixed = np.intersect1d(shots[train], shots[valid])
    if mixed.size:
        log.warning("%s: shots %s have frames on both sides of the split", found[0], mixed[:5])
    return train, valid


def _draw_video_pair(
    directory: Path,
    names: Sequence[str],
    shots: np.ndarray,
    kept: np.ndarray,
    train_fraction: float,
    seed: int,
    sample_ids: Sequence[str] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """A new seeded split by shot of the ``kept`` frames, saved in ``directory``."""
    kept_shots = np.unique(shots[kept])
    if kept_shots.size < 2:
        raise DataError(
            f"{directory}: a split by video needs at least 2 annotated shots, found "
            f"{kept_shots.size}"
        )
    n_valid = min(max(1, _held_out(kept_shots.size, train_fraction)), kept_shots.size - 1)
    rng = np.random.default_rng(seed)
    valid_shots = rng.choice(kept_shots, size=n_valid, replace=False)
    in_valid = np.isin(shots[kept], valid_shots)
    train, valid = np.sort(kept[~in_valid]), np.sort(kept[in_valid])
    write_split_files(directory, {names[0]: train, names[1]: valid}, sample_ids=sample_ids)
    log.info("saved a new split (%d train / %d valid) in %s", len(train), len(valid), directory)
    return train, valid


def load_or_create_video_split(
    directory: str | os.PathLike,
    *,
    names: Sequence[str] = VIDEO_SPLIT_NAMES,
    shots: np.ndarray,
    kept: np.ndarray,
    train_fraction: float = REFERENCE_TRAIN_FRACTION,
    seed: int,
    search_dirs: Iterable[str | os.PathLike] = (),
    sample_ids: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Split by video: every kept frame of a shot goes to the same side.

    Args:
        shots: (N,) shot id of every frame of the full frame list.
        kept: indices of the frames that pass the annotation filter; only these are split.
        train_fraction: share of shots for training (the reference holds out ``shots // 5``,
            at least one here).
        sample_ids: (N,) names of the frames (``split_fingerprint.frame_ids``) for the
            fingerprint; None: none written or checked.

    Returns:
        (train, valid) sorted int64 indices into the full frame list (video/frame order).

    Raises:
        DataError: existing files that are invalid, list frames outside ``kept``, or (given
            ``sample_ids``) were drawn for other data.
    """
    directory, shots = Path(directory), np.asarray(shots)
    kept = np.asarray(kept, dtype=np.int64)
    found = _find_split(directory, names, search_dirs)
    if found is not None:
        return read_checked(
            found, directory, sample_ids, lambda: _read_video_pair(found, shots, kept)
        )
    return _draw_video_pair(directory, names, shots, kept, train_fraction, seed, sample_ids)


@dataclass(frozen=True)
class VideoSplits:
    """The split files of a TigDog-layout data set.

    Attributes:
        train, valid: int64 indices into the full frame list (as stored).
        test: the held-out split of a benchmark, or None when the folder has no test file (the
            reference's two-file layout).
        folder: the folder the files were read from (or a new train/valid pair written to).
    """

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray | None
    folder: Path


def _read_test(
    test_path: Path, names: Sequence[str], train, valid, shots: np.ndarray, kept: np.ndarray
) -> np.ndarray:
    """The test file, checked: kept frames, no frame and no shot shared with train or valid."""
    folder = test_path.parent
    test = _read_index_file(test_path, len(shots), partner=False)
    _check_kept(test_path, test, kept)
    for name, other in zip(names, (train, valid)):
        shared = np.intersect1d(test, other)
        if shared.size:
            raise DataError(
                f"{test_path} and {folder / name}: {shared.size} frames are in both "
                f"splits (first: index {int(shared[0])})"
            )
        mixed = np.intersect1d(shots[test], shots[other])
        if mixed.size:
            raise DataError(
                f"{test_path} and {folder / name}: shots {mixed[:5].tolist()} have "
                "frames in both splits; a test split holds out whole shots"
            )
    return test


def load_or_create_video_splits(
    directory: str | os.PathLike,
    *,
    names: Sequence[str] = VIDEO_SPLIT_NAMES,
    test_name: str = VIDEO_TEST_NAME,
    shots: np.ndarray,
    kept: np.ndarray,
    train_fraction: float = REFERENCE_TRAIN_FRACTION,
    seed: int,
    search_dirs: Iterable[str | os.PathLike] = (),
    sample_ids: Sequence[str] | None = None,
) -> VideoSplits:
    """``load_or_create_video_split`` plus the optional test file beside the pair.

    Without a test file this is exactly the two-file behaviour (read the pair, or draw and save
    a seeded one). With one (``test_name`` in the folder the pair is read from), the test
    indices must be kept frames, and no frame and no shot of the test split may be in the train
    or valid split. The fingerprint (given ``sample_ids``) covers the files read.

    Raises:
        DataError: naming the file: an invalid test file, a test split that shares frames or
            shots with train/valid, a test file in ``directory`` without its train/valid pair
            (a new two-way split would overlap it), or files drawn for other data.
    """
    directory, shots = Path(directory), np.asarray(shots)
    kept = np.asarray(kept, dtype=np.int64)
    found = _find_split(directory, names, list(search_dirs))
    if found is None:
        if (directory / test_name).exists():
            raise DataError(
                f"{directory / test_name}: a test split without its train/valid files "
                f"({', '.join(names)}); write the three together (datasets/generator/dogshift.py)"
            )
        pair = _draw_video_pair(directory, names, shots, kept, train_fraction, seed, sample_ids)
        return VideoSplits(*pair, None, directory)
    folder = found[0].parent
    test_path = folder / test_name
    has_test = test_path.exists()

    def read() -> VideoSplits:
        train, valid = _read_video_pair(found, shots, kept)
        test = _read_test(test_path, names, train, valid, shots, kept) if has_test else None
        return VideoSplits(train, valid, test, folder)

    if not has_test:
        return read_checked(list(found), directory, sample_ids, read)
    remedy = (  # a benchmark's splits are defined by it, not drawn anew
        f"{test_name} makes this a benchmark's data: restore the data, or regenerate the "
        "benchmark with `python datasets/generate.py --benchmark NAME`"
    )
    return read_checked([*found, test_path], directory, sample_ids, read, remedy=remedy)


def save_video_splits(
    directory: str | os.PathLike,
    *,
    train: np.ndarray,
    valid: np.ndarray,
    test: np.ndarray,
    names: Sequence[str] = VIDEO_SPLIT_NAMES,
    test_name: str = VIDEO_TEST_NAME,
    sample_ids: Sequence[str] | None = None,
) -> list[Path]:
    """Write the three split files (int64 ``.npy``), each atomically; returns their paths.

    Given ``sample_ids`` (``split_fingerprint.frame_ids`` of the frame list) their fingerprint
    is written first. The test file is written before the pair: should the run be killed between
    files, the loaders' fingerprint and disjointness checks refuse the mix of a new test file
    and an old pair.
    """
    paths = write_split_files(
        directory, {test_name: test, names[0]: train, names[1]: valid}, sample_ids=sample_ids
    )
    counts = " / ".join(str(len(a)) for a in (train, valid, test))
    log.info("saved train/valid/test splits (%s frames) in %s", counts, directory)
    return paths
