"""Split fingerprints: the sample list a data set's split files were drawn for.

Split files hold positions in a sample list (sorted image names, or TigDog frames in ``ranges``
order): a new image that sorts first, or a reordered ``ranges.mat``, would silently move samples
between the splits. ``split_fingerprint.json`` beside the ``.npy`` files (which stay in the
reference's format) records that list (names, count, SHA-256) and the SHA-256 of each split
file it covers. ``write_split_files`` writes both; ``read_checked`` refuses files whose data
changed. The reference's own files carry none (animal_data/README.md).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from animalpose.datasets.fileio import DataError, atomic_write

__all__ = [
    "FINGERPRINT_NAME",
    "check_fingerprint",
    "fingerprint_record",
    "frame_ids",
    "image_ids",
    "interrupted_write",
    "read_checked",
    "read_fingerprint",
    "record_unchecked",
    "warn_once",
    "write_fingerprint",
    "write_split_files",
]

log = logging.getLogger(__name__)

#: The sidecar beside a folder's split files.
FINGERPRINT_NAME = "split_fingerprint.json"
#: Version of the sidecar's format.
FINGERPRINT_FORMAT = 1

#: A split write's temporary file older than this was left by a killed process (a live write
#: of these small files takes milliseconds; a younger one may be another DDP rank's).
STALE_TEMP_S = 60.0

T = TypeVar("T")


def frame_ids(shots: np.ndarray, frames: np.ndarray) -> list[str]:
    """Sample names of a TigDog frame list, in list order: ``"<shot>/<8-digit frame>"``."""
    return [f"{int(s)}/{int(f):08d}" for s, f in zip(np.asarray(shots), np.asarray(frames))]


def image_ids(paths: Iterable[str | Path]) -> list[str]:
    """Sample names of an image list, in list order: the file names."""
    return [Path(p).name for p in paths]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _list_digest(ids: Sequence[str]) -> str:
    return _digest("\n".join(ids).encode("utf-8"))


def fingerprint_record(files: Mapping[str, bytes], ids: Sequence[str]) -> dict:
    """The sidecar's content for split files ``{name: bytes}`` drawn over sample list ``ids``."""
    return {
        "format": FINGERPRINT_FORMAT,
        "files": {name: _digest(data) for name, data in sorted(files.items())},
        "count": len(ids),
        "sha256": _list_digest(ids),
        "samples": list(ids),
    }


def write_fingerprint(folder: Path, files: Mapping[str, bytes], ids: Sequence[str]) -> Path:
    """Write ``folder/split_fingerprint.json`` atomically (deterministic bytes); returns it."""
    path = Path(folder) / FINGERPRINT_NAME
    with atomic_write(path, "w") as f:
        f.write(json.dumps(fingerprint_record(files, ids), indent=1, sort_keys=True) + "\n")
    return path


def read_fingerprint(folder: Path) -> dict | None:
    """The sidecar of ``folder`` (None when absent); DataError naming it when unreadable."""
    path = Path(folder) / FINGERPRINT_NAME
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot read the split fingerprint ({exc}); restore it, or delete it with "
            "the split files beside it to draw a new split"
        ) from exc
    ok = (
        isinstance(record, dict)
        and isinstance(record.get("files"), dict)
        and isinstance(record.get("count"), int)
        and isinstance(record.get("sha256"), str)
    )
    if not ok:
        raise DataError(
            f"{path}: not a split fingerprint (needs 'files', 'count', 'sha256'); delete it with "
            "the split files beside it to draw a new split"
        )
    return record


def _covers(record: dict, paths: Sequence[Path]) -> bool:
    """True when ``record`` lists every file of ``paths`` with its current bytes."""
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError:
            return False  # the split reader names a missing or unreadable file
        if record["files"].get(path.name) != _digest(data):
            return False
    return True


def interrupted_write(paths: Sequence[Path]) -> bool:
    """True when the split files ``paths`` (one folder) are a killed ``write_split_files``: its
    fingerprint lists them all, some are missing, those present are as it records. Nothing can
    have used a split never completed: it may be drawn again."""
    present = [p for p in paths if p.exists()]
    if len(present) == len(paths):
        return False
    try:
        record = read_fingerprint(Path(paths[0]).parent)
    except DataError:
        return False  # the split reader reports the files
    if record is None or any(p.name not in record["files"] for p in paths):
        return False
    return _covers(record, present)


def _remove_stale_temp_files(path: Path) -> None:
    """Delete the temporary files a killed ``atomic_write(path)`` left (``STALE_TEMP_S``)."""
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        try:
            if time.time() - tmp.stat().st_mtime > STALE_TEMP_S:
                tmp.unlink()
        except FileNotFoundError:
            pass


def _describe_change(record: dict, ids: Sequence[str]) -> str:
    """What differs between the recorded sample list and ``ids``, for the error message."""
    count = f"{record['count']} samples then, {len(ids)} now"
    old = record.get("samples")
    if not isinstance(old, list):
        return count
    old_set, new_set = set(old), set(ids)
    added = [s for s in ids if s not in old_set]
    removed = [s for s in old if s not in new_set]
    first = next((i for i, (a, b) in enumerate(zip(old, ids)) if a != b), min(len(old), len(ids)))
    then = repr(old[first]) if first < len(old) else "the end of the list"
    now = repr(ids[first]) if first < len(ids) else "the end of the list"
    parts = [count]
    if added:
        parts.append(f"{len(added)} added (first: {added[0]!r})")
    if removed:
        parts.append(f"{len(removed)} removed (first: {removed[0]!r})")
    if not added and not removed:
        parts.append("the same samples in another order")
    parts.append(f"first difference at position {first}: {then} then, {now} now")
    return "; ".join(parts)


def check_fingerprint(paths: Sequence[Path], ids: Sequence[str], *, remedy: str = "") -> bool:
    """Check split files ``paths`` (one folder) against the sample list ``ids`` they index.
    ``remedy``: what to do when the data changed (default: delete the files, or restore).

    Returns:
        True when the folder's fingerprint covers the files as they are and matches ``ids``;
        False when there is no fingerprint for them (none, or the files changed since).

    Raises:
        DataError: naming the fingerprint file and what changed, when the data changed since
            the split was drawn (or the fingerprint is unreadable).
    """
    folder = Path(paths[0]).parent
    record = read_fingerprint(folder)
    if record is None or not _covers(record, paths):
        return False
    if record["count"] == len(ids) and record["sha256"] == _list_digest(ids):
        return True
    names = ", ".join(p.name for p in paths)
    remedy = remedy or (
        f"Delete {names} and {FINGERPRINT_NAME} in {folder} to draw a new split (and a mean "
        "file computed over the old training split), or restore the data"
    )
    raise DataError(
        f"{folder / FINGERPRINT_NAME}: the data changed since the split files {names} were "
        f"drawn ({_describe_change(record, ids)}). Split files hold positions in the sample "
        "list (sorted image names, or TigDog frames in ranges.mat order), so they would now "
        f"move samples between the splits. {remedy}"
    )


@functools.cache
def warn_once(message: str) -> None:
    """Log ``message`` as a warning the first time only (a run builds several data sets)."""
    log.warning(message)


def record_unchecked(paths: Sequence[Path], ids: Sequence[str], *, writable: bool) -> None:
    """Split files without a fingerprint (the reference's, an older version's, or edited by
    hand): warn that they cannot be checked; in our own folder (``writable``) record the current
    data's fingerprint so that later changes are refused, and say so."""
    paths = [Path(p) for p in paths]
    folder = paths[0].parent
    names = ", ".join(str(p) for p in paths)
    if not writable:
        warn_once(
            f"{names}: split files without a fingerprint (the reference's own, or an older "
            "version's): only their index range can be checked. They hold positions in the "
            "sample list and are right only for exactly the data they were drawn for (same "
            "files, same order)"
        )
        return
    stale = (folder / FINGERPRINT_NAME).exists()
    why = (
        f"changed since {FINGERPRINT_NAME} was written (edited by hand?)"
        if stale
        else "without a fingerprint (the reference's own, or from an older animalpose)"
    )
    try:
        write_fingerprint(folder, {p.name: p.read_bytes() for p in paths}, ids)
    except OSError as exc:
        warn_once(
            f"{names}: split files {why}: they cannot be checked against the data they were "
            f"drawn for, and no fingerprint could be recorded ({exc})"
        )
        return
    warn_once(
        f"{names}: split files {why}: they cannot be checked against the data they were drawn "
        f"for. Recorded the current data's fingerprint in {folder / FINGERPRINT_NAME}: a later "
        "change of the data is refused. If the data changed since these files were drawn, "
        "delete them to draw a new split"
    )


def _npy_bytes(arr: np.ndarray) -> bytes:
    """The ``.npy`` file of ``arr`` as int64 (the bytes ``np.save`` writes)."""
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(arr, dtype=np.int64))
    return buffer.getvalue()


def write_split_files(
    directory: str | os.PathLike,
    arrays: Mapping[str, np.ndarray],
    *,
    sample_ids: Sequence[str] | None,
) -> list[Path]:
    """Write split files ``{name: indices}`` (int64 ``.npy``, each atomically, in the given
    order) and, given ``sample_ids`` (the names of the samples the indices point into, or None),
    their fingerprint first: a kill before the ``.npy`` files leaves no unchecked split. The
    temporary files of an earlier killed write are removed (``STALE_TEMP_S``). Commit points
    (``fileio.crash_point``): ``write:split_fingerprint.json``, then ``write:<name>`` of each.

    Returns:
        The paths of the split files.
    """
    directory = Path(directory)
    files = {name: _npy_bytes(arr) for name, arr in arrays.items()}
    for name in [*files, FINGERPRINT_NAME]:
        _remove_stale_temp_files(directory / name)
    if sample_ids is not None:
        write_fingerprint(directory, files, sample_ids)
    paths = []
    for name, data in files.items():
        with atomic_write(directory / name) as f:
            f.write(data)
        paths.append(directory / name)
    return paths


def read_checked(
    paths: Sequence[Path],
    directory: Path,
    sample_ids: Sequence[str] | None,
    read: Callable[[], T],
    *,
    remedy: str = "",
) -> T:
    """``read()`` (validate) the split files ``paths``, after checking their fingerprint against
    ``sample_ids`` (None: no check; ``remedy`` as ``check_fingerprint``). Files without one are
    then fingerprinted if they lie in our folder ``directory``, or warned about (a reference
    mirror): ``record_unchecked``."""
    checked = sample_ids is None or check_fingerprint(paths, sample_ids, remedy=remedy)
    result = read()
    if not checked:
        record_unchecked(paths, sample_ids, writable=Path(paths[0]).parent == Path(directory))
    return result
