"""File handling shared by every package: clear data errors, atomic writes, MATLAB files, images.

Images are RGB uint8 arrays. OpenCV decodes a truncated JPEG without complaint (the missing rows
come out grey), so before decoding we check that a JPEG still ends with its end-of-image marker
and a PNG with its IEND chunk; the file is read once and decoded from memory. Only regular files
are read (a FIFO or device is refused before anything opens it) and image reads are bounded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

__all__ = [
    "CRASH_ENV",
    "DataError",
    "atomic_write",
    "crash_point",
    "remove_temp_files",
    "check_complete",
    "check_regular_file",
    "image_size",
    "jpeg_round_trip",
    "load_mat",
    "read_file_bytes",
    "read_image",
    "write_image",
]


class DataError(ValueError):
    """Bad input data. The message always names the file and what is wrong with it."""


#: Fault injection for the crash tests: ``ANIMALPOSE_CRASH_AT=name`` (or ``name@n``) kills the
#: process like ``kill -9`` the first (n-th) time ``crash_point(name)`` runs in it.
CRASH_ENV = "ANIMALPOSE_CRASH_AT"
_crash_counts: dict[str, int] = {}  # per process; only touched when CRASH_ENV is set


def crash_point(name: str) -> None:
    """A named commit point; dies at once (SIGKILL: no cleanup, no ``finally``) when
    ``CRASH_ENV`` selects it, else does nothing. ``atomic_write`` calls
    ``crash_point(f"write:{file name}")`` after the data is on disk, before the rename."""
    target = os.environ.get(CRASH_ENV)
    if not target:
        return
    wanted, _, nth = target.partition("@")
    if wanted != name:
        return
    _crash_counts[name] = _crash_counts.get(name, 0) + 1
    if _crash_counts[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def remove_temp_files(path: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that an interrupted ``atomic_write(path)`` left beside
    ``path`` (a killed process cannot clean up); returns what was removed."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``path``; on success fsync and rename it over ``path``.

    A crash or exception leaves any previous ``path`` untouched and no partial file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file owner-only (0600); give it the mode open() would have given.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        crash_point(f"write:{path.name}")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def check_regular_file(path: str | os.PathLike, what: str) -> os.stat_result:
    """``stat`` of ``path`` (links followed); DataError "<path>: <what> not found" or "... is
    not a regular file" for FIFOs, devices and folders, which would block or never end a read,
    so they are refused before anything opens them."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path}: {what} is not a regular file ({_file_kind(info.st_mode)})")
    return info


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"))
    kinds += ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "a special file")


def read_file_bytes(path: str | os.PathLike, what: str, *, limit: int) -> bytes:
    """The whole regular file ``path`` (its size at opening); DataError when over ``limit``,
    or when it is a FIFO, device or folder (refused by ``fstat`` before any read)."""
    try:  # O_NONBLOCK: opening a FIFO cannot block; fstat below refuses it before a read
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise DataError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read {what} ({exc})") from exc
    with os.fdopen(fd, "rb", buffering=0) as f:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise DataError(f"{path}: {what} is not a regular file ({_file_kind(info.st_mode)})")
        if info.st_size > limit:
            raise DataError(f"{path}: {what} is larger than {limit} bytes")
        try:
            return f.read(info.st_size)
        except OSError as exc:
            raise DataError(f"{path}: cannot read {what} ({exc})") from exc


# --- MATLAB files -------------------------------------------------------------------------------

#: Signature of MATLAB v7.3 files (HDF5 with a 512-byte MATLAB header); scipy cannot read them.
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: MATLAB v7.3 puts the HDF5 superblock after a 512-byte user block.
_MAT73_USERBLOCK = 512


def load_mat(path: str | os.PathLike, names: tuple[str, ...] | list[str]) -> dict:
    """Read the variables ``names`` of a MATLAB file into NumPy.

    v4-v7 files go through ``scipy.io.loadmat`` (cells become object arrays, structs record
    arrays); v7.3 (HDF5) files through h5py, converted to the same shapes: numeric arrays in
    MATLAB (row-major) order, cells as object arrays, structs as 1x1 record arrays whose fields
    keep MATLAB's order (so fields can be read by position).

    Raises:
        DataError: the file is missing or unreadable, or lacks one of ``names`` (the message
            names the file and the variable).
    """
    path = Path(path)
    check_regular_file(path, "MATLAB file")
    if _is_hdf5(path):
        return _load_mat73(path, names)
    import scipy.io

    try:
        content = scipy.io.loadmat(str(path), variable_names=list(names))
    except Exception as exc:  # scipy raises ValueError/TypeError/OSError for corrupt files
        raise DataError(f"{path}: cannot read MATLAB file ({type(exc).__name__}: {exc})") from exc
    missing = [n for n in names if n not in content]
    if missing:
        raise DataError(
            f"{path}: MATLAB file has no variable {missing[0]!r} (expected {list(names)})"
        )
    return {n: content[n] for n in names}


def _is_hdf5(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(_MAT73_USERBLOCK + len(_HDF5_SIGNATURE))
    return head[:8] == _HDF5_SIGNATURE or head[_MAT73_USERBLOCK:] == _HDF5_SIGNATURE


def _load_mat73(path: Path, names) -> dict:
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(f"{path}: cannot read MATLAB v7.3 file ({exc})") from exc
    with f:
        missing = [n for n in names if n not in f]
        if missing:
            raise DataError(
                f"{path}: MATLAB file has no variable {missing[0]!r} (expected {list(names)})"
            )
        try:
            return {n: _h5_to_numpy(f, f[n], frozenset()) for n in names}
        except _ReferenceCycle as exc:
            raise DataError(
                f"{path}: MATLAB v7.3 variable {exc.args[0]} refers back to itself "
                "(a struct or cell that contains itself); the file is corrupt"
            ) from None
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: cannot convert MATLAB v7.3 variable ({exc})") from exc


class _ReferenceCycle(Exception):
    """A v7.3 node reached again below itself (by hard link or object reference)."""


def _h5_to_numpy(f, node, ancestors: frozenset):
    """Convert one h5py node of a MATLAB v7.3 file (MATLAB stores arrays column-major).

    ``ancestors``: ids of the nodes above this one; meeting one again is a reference cycle.
    """
    import h5py

    if node.id in ancestors:
        raise _ReferenceCycle(node.name)
    ancestors = ancestors | {node.id}
    if isinstance(node, h5py.Group):  # a struct: fields in MATLAB order when recorded
        order = node.attrs.get("MATLAB_fields")
        if order is not None:
            fields = ["".join(c.decode() for c in np.asarray(name).ravel()) for name in order]
        else:
            fields = list(node.keys())
        values = [_h5_to_numpy(f, node[name], ancestors) for name in fields]
        record = np.empty((1, 1), dtype=[(name, object) for name in fields])
        for name, value in zip(fields, values):
            record[0, 0][name] = value
        return record
    data = node[()]
    if node.dtype == h5py.ref_dtype:  # a cell array: each entry references another node
        out = np.empty(data.shape, dtype=object)
        for idx in np.ndindex(data.shape):
            out[idx] = _h5_to_numpy(f, f[data[idx]], ancestors)
        return out.T
    return np.asarray(data).T


# -- images ----------------------------------------------------------------------------------------

_JPEG_SOI = b"\xff\xd8"
#: JPEG end-of-image marker. Some writers pad after it, so it is looked for in the file's tail.
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The last PNG chunk type; a complete PNG ends with it (+ its 4-byte CRC).
_PNG_IEND = b"IEND"
#: How many trailing bytes may follow the end marker (padding some encoders append).
_TAIL_BYTES = 1024

#: Largest image file ``read_image`` reads (bytes): far above any real frame, it bounds a read.
MAX_IMAGE_BYTES = 1 << 30
#: Words of the cv2.error OpenCV raises for an image over its pixel limit (imgcodecs).
_CV_PIXEL_LIMIT = "CV_IO_MAX_IMAGE_PIXELS"

#: File suffix -> OpenCV encoder flags used by ``write_image``.
_ENCODE_PARAMS: dict[str, list[int]] = {
    ".jpg": [cv2.IMWRITE_JPEG_QUALITY, 95],
    ".jpeg": [cv2.IMWRITE_JPEG_QUALITY, 95],
    ".png": [cv2.IMWRITE_PNG_COMPRESSION, 1],
}


def check_complete(data: bytes, path: str | os.PathLike) -> None:
    """Raise DataError when the JPEG or PNG bytes ``data`` of ``path`` are cut short."""
    tail = data[-_TAIL_BYTES:]
    if data.startswith(_JPEG_SOI) and _JPEG_EOI not in tail:
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker FFD9 at the end)")
    if data.startswith(_PNG_SIGNATURE) and _PNG_IEND not in tail:
        raise DataError(f"{path}: truncated PNG (no IEND chunk at the end)")


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as (H, W, 3) uint8 RGB.

    Alpha channels are dropped (the reference keeps channels ``[:3]``), grey images are expanded
    to three channels, 16-bit images are scaled to 8 bits.

    Raises:
        DataError: the file is missing, not a regular file, empty, larger than
            ``MAX_IMAGE_BYTES``, truncated, over OpenCV's pixel limit or cannot be decoded.
    """
    path = Path(path)
    data = read_file_bytes(path, "image", limit=MAX_IMAGE_BYTES)
    if not data:
        raise DataError(f"{path}: image file is empty")
    check_complete(data, path)
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        if _CV_PIXEL_LIMIT in str(exc):
            raise DataError(
                f"{path}: image has more pixels than OpenCV's limit {_CV_PIXEL_LIMIT} "
                "(2^30 unless set); shrink it, or raise the environment variable "
                "OPENCV_IO_MAX_IMAGE_PIXELS"
            ) from None
        raise DataError(f"{path}: OpenCV cannot decode the image ({exc})") from None
    if image is None:
        raise DataError(f"{path}: cannot decode image (unknown format or corrupt data)")
    if image.dtype == np.uint16:
        image = (image.astype(np.uint32) // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise DataError(f"{path}: unsupported image sample type {image.dtype}")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[:, :, None], 3, axis=2))
    if image.shape[2] == 1:
        return np.ascontiguousarray(np.repeat(image, 3, axis=2))
    return np.ascontiguousarray(image[:, :, 2::-1])  # BGR(A) -> RGB, alpha dropped


#: JPEG start-of-frame markers (they carry the size): C0-CF except DHT C4, JPG C8 and DAC CC.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: JPEG markers without a length field: TEM, RST0-7, SOI, EOI.
_JPEG_STANDALONE = frozenset([0x01, *range(0xD0, 0xDA)])


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(w, h) of a JPEG or PNG file read from its header, without decoding the pixels.

    Raises:
        DataError: the file is missing, not a regular file, or no JPEG/PNG header gives a size.
    """
    check_regular_file(path, "image")
    with open(path, "rb") as f:
        head = f.read(24)
        if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR":
            width, height = struct.unpack(">II", head[16:24])
            return int(width), int(height)
        if head.startswith(_JPEG_SOI):
            f.seek(2)
            while (marker := f.read(2))[:1] == b"\xff" and len(marker) == 2:
                if marker[1] == 0xFF:  # fill byte before the marker
                    f.seek(-1, os.SEEK_CUR)
                    continue
                if marker[1] in _JPEG_STANDALONE:
                    continue
                segment = f.read(7)
                if len(segment) < 2:
                    break
                if marker[1] in _JPEG_SOF and len(segment) == 7:
                    height, width = struct.unpack(">HH", segment[3:7])
                    return int(width), int(height)
                f.seek(struct.unpack(">H", segment[:2])[0] - len(segment), os.SEEK_CUR)
    raise DataError(f"{path}: cannot read the image size (not a complete JPEG or PNG header)")


def write_image(path: str | os.PathLike, image: np.ndarray, *, atomic: bool = True) -> None:
    """Write an (H, W, 3) uint8 RGB image; format from the suffix (.jpg / .png).

    ``atomic`` (default) writes through a synced temporary file renamed over ``path``; generated
    fixtures skip that cost.
    """
    path = Path(path)
    params = _ENCODE_PARAMS.get(path.suffix.lower())
    if params is None:
        raise ValueError(f"{path}: unsupported image suffix; use one of {sorted(_ENCODE_PARAMS)}")
    rgb = np.asarray(image)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"{path}: expected (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    ok, encoded = cv2.imencode(path.suffix, np.ascontiguousarray(rgb[:, :, ::-1]), params)
    if not ok:
        raise DataError(f"{path}: OpenCV could not encode the image")
    if atomic:
        with atomic_write(path) as f:
            f.write(encoded.tobytes())
    else:
        path.write_bytes(encoded.tobytes())


def jpeg_round_trip(image: np.ndarray, quality: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> the same image JPEG-encoded at ``quality`` and decoded (artefacts)."""
    ok, data = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 RGB
        raise RuntimeError("OpenCV could not JPEG-encode a frame")
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1])
