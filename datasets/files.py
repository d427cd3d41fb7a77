"""File handling shared by every package: clear data errors, atomic writes, MATLAB files."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["DataError", "atomic_write", "load_mat"]


class DataError(ValueError):
    """Bad input data. The message always names the file and what is wrong with it."""


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
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


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
    if not path.is_file():
        raise DataError(f"{path}: MATLAB file not found")
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
            return {n: _h5_to_numpy(f, f[n]) for n in names}
        except (KeyError, ValueError, TypeError) as exc:
            raise DataError(f"{path}: cannot convert MATLAB v7.3 variable ({exc})") from exc


def _h5_to_numpy(f, node):
    """Convert one h5py node of a MATLAB v7.3 file (MATLAB stores arrays column-major)."""
    import h5py
    import numpy as np

    if isinstance(node, h5py.Group):  # a struct: fields in MATLAB order when recorded
        order = node.attrs.get("MATLAB_fields")
        if order is not None:
            fields = ["".join(c.decode() for c in np.asarray(name).ravel()) for name in order]
        else:
            fields = list(node.keys())
        values = [_h5_to_numpy(f, node[name]) for name in fields]
        record = np.empty((1, 1), dtype=[(name, object) for name in fields])
        for name, value in zip(fields, values):
            record[0, 0][name] = value
        return record
    data = node[()]
    if node.dtype == h5py.ref_dtype:  # a cell array: each entry references another node
        out = np.empty(data.shape, dtype=object)
        for idx in np.ndindex(data.shape):
            out[idx] = _h5_to_numpy(f, f[data[idx]])
        return out.T
    return np.asarray(data).T
