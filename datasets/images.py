"""Reading and writing images: RGB uint8 arrays, clear errors for missing or truncated files.

OpenCV decodes a truncated JPEG without complaint (the missing rows come out grey), so before
decoding we check that a JPEG still ends with its end-of-image marker and a PNG with its IEND
chunk. The check costs nothing: the whole file is read once and decoded from memory.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from animalpose.datasets.files import DataError, atomic_write

__all__ = ["check_complete", "jpeg_round_trip", "read_image", "write_image"]

_JPEG_SOI = b"\xff\xd8"
#: JPEG end-of-image marker. Some writers pad after it, so it is looked for in the file's tail.
_JPEG_EOI = b"\xff\xd9"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The last PNG chunk type; a complete PNG ends with it (+ its 4-byte CRC).
_PNG_IEND = b"IEND"
#: How many trailing bytes may follow the end marker (padding some encoders append).
_TAIL_BYTES = 1024

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
        DataError: the file is missing, empty, truncated or cannot be decoded.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: image file not found") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read image file ({exc})") from exc
    if not data:
        raise DataError(f"{path}: image file is empty")
    check_complete(data, path)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
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
