"""The one writer of each reference format: the synthetic layout (stills, their keypoint
arrays and part segmentations) and the TigDog layout (shots: frames, landmark files, the
ranges file), byte-compatible with the loaders (formats: docs/reference_compat.md §1.1, §1.2;
where each file goes: animal_data/README.md).

``SyntheticLayout`` / ``TigDogLayout`` write the generator's runs (resumable, atomic, with a
``generator.json`` manifest); the cartoon fixtures write through the same functions
(``write_synthetic_sample``, ``tigdog_landmark_struct``, ``write_tigdog_landmarks``,
``write_tigdog_ranges``). What each file holds: docs/generator.md ("Layouts written").
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from animalpose.datasets.fileio import (
    DataError,
    atomic_write,
    check_complete,
    load_mat,
    read_image,
    write_image,
)
from animalpose.datasets.formats.base import check_animal
from animalpose.datasets.formats.means import MEAN_NAME, VIDEO_MEAN_NAME
from animalpose.datasets.formats.splits import SPLIT_NAMES, VIDEO_SPLIT_NAMES
from animalpose.datasets.formats.synthetic import IMAGE_SUFFIX, KEYPOINTS_SUFFIX, synthetic_dir
from animalpose.datasets.formats.synthetic_multitask import PARTSEG_SUFFIX, partseg_path
from animalpose.datasets.formats.tigdog import split_folder, tigdog_dir
from animalpose.datasets.generator.renderer import NUM_KEYPOINTS, NUM_VERTEX_ROWS, RenderedFrame
from animalpose.datasets.parts import check_partseg

__all__ = [
    "BENCHMARK_FILE",
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "SyntheticLayout",
    "TigDogLayout",
    "check_manifest",
    "image_complete",
    "manifest_differences",
    "mat_bytes",
    "read_manifest",
    "remove_stray_temp_files",
    "tigdog_landmark_struct",
    "write_manifest",
    "write_partseg",
    "write_synthetic_sample",
    "write_tigdog_landmarks",
    "write_tigdog_ranges",
]

log = logging.getLogger(__name__)

#: Version of what the generator writes; bump when the same settings would give other files.
#: Still 1 with the ``_partseg.png`` files: the images and arrays of a seed are unchanged, so a
#: folder written before them stays valid and a rerun only adds them (docs/generator.md).
GENERATOR_VERSION = 1
#: PNG compression of part segmentations (fast; label maps compress well anyway).
_PARTSEG_PNG = [cv2.IMWRITE_PNG_COMPRESSION, 1]
MANIFEST_NAME = "generator.json"
#: The benchmark record ``benchmark_splits.py`` writes beside the TigDog split files (derived
#: data: stale once new jobs change the data).
BENCHMARK_FILE = "benchmark.json"
#: Header text of the MATLAB 5 files we write (116 bytes, space padded, like MATLAB's own).
MAT_HEADER = b"MATLAB 5.0 MAT-file, Platform: posix, Created by: animalpose generator"
_MAT_HEADER_BYTES = 116
#: Bytes read from each end of an image file to check that it is complete.
_CHECK_BYTES = 1024
#: Endings of the files derived from a layout's data beside it (split files, their fingerprint,
#: mean files, ``benchmark.json``): a rerun removes the temporary files a killed write left.
_DERIVED_SUFFIXES = (".npy", ".json", ".pth.tar")


def mat_bytes(variables: dict[str, np.ndarray]) -> bytes:
    """A MATLAB 5 file holding ``variables`` (scipy.io.savemat) with a fixed header text."""
    buffer = io.BytesIO()
    scipy.io.savemat(buffer, variables, format="5")
    data = bytearray(buffer.getvalue())
    data[:_MAT_HEADER_BYTES] = MAT_HEADER.ljust(_MAT_HEADER_BYTES, b" ")
    return bytes(data)


def _write_bytes(path: Path, data: bytes, *, atomic: bool = True) -> None:
    """Write ``data`` to ``path``, through ``atomic_write`` unless ``atomic`` is False (fixtures:
    no fsync per file; the folder must exist)."""
    if atomic:
        with atomic_write(path) as f:
            f.write(data)
    else:
        Path(path).write_bytes(data)


def image_complete(path: Path) -> bool:
    """True when ``path`` exists and its JPEG/PNG end marker is there (reads only both ends)."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(0)
            if size <= 2 * _CHECK_BYTES:
                data = f.read()
            else:
                head = f.read(_CHECK_BYTES)
                f.seek(-_CHECK_BYTES, os.SEEK_END)
                data = head + f.read()
    except OSError:
        return False
    try:
        check_complete(data, path)
    except DataError:
        return False
    return len(data) > 0


def remove_stray_temp_files(folders: Iterable[Path], names: Iterable[str]) -> list[Path]:
    """Delete the temporary files ``atomic_write`` leaves when its process is killed
    (``.<name>.<random>.tmp``), for target names ending in one of ``names``. Returns them."""
    suffixes = tuple(names)
    removed = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in folder.glob(".*.tmp"):
            target = path.name[1:].rsplit(".", 2)[0]
            if target.endswith(suffixes):
                path.unlink(missing_ok=True)
                removed.append(path)
    return removed


# --- manifest -----------------------------------------------------------------------------------


def read_manifest(path: Path, *, missing: str | None = None) -> dict:
    """The generator manifest at ``path`` (a JSON object).

    Raises:
        DataError: unreadable, not a JSON object, or absent (``missing`` says what to do then;
            None: report it as unreadable).
    """
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        if missing is None:
            raise DataError(f"{path}: cannot read the generator manifest ({exc})") from exc
        raise DataError(f"{path}: not found; {missing}") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the generator manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: the generator manifest must be a JSON object")
    return manifest


def manifest_differences(recorded: dict, expected: dict, *, expected_name: str) -> str:
    """``"key: <recorded> there, <expected> <expected_name>, ..."`` for every key whose values
    differ (sorted), or "" when the two agree."""
    differ = sorted(k for k in set(recorded) | set(expected) if recorded.get(k) != expected.get(k))
    return ", ".join(
        f"{k}: {recorded.get(k)!r} there, {expected.get(k)!r} {expected_name}" for k in differ
    )


def check_manifest(path: Path, settings: dict, *, has_data: bool, force: bool) -> None:
    """Refuse to write a run with ``settings`` into a folder written with other settings.

    Raises:
        DataError: ``path`` records different settings, or the folder holds data (``has_data``)
            but no manifest (not written by the generator); never when ``force``.
    """
    if force:
        return
    if not path.exists():
        if has_data:
            raise DataError(
                f"{path.parent}: holds data that the generator did not write (no {MANIFEST_NAME});"
                " choose another --image-path, or pass --force to write into it anyway"
            )
        return
    detail = manifest_differences(read_manifest(path), settings, expected_name="now")
    if detail:
        raise DataError(
            f"{path}: this folder was generated with other settings ({detail}); use another "
            "--image-path, delete the folder, or pass --force to mix the runs"
        )


def write_manifest(path: Path, settings: dict) -> None:
    """Write ``settings`` as ``generator.json`` (atomically, sorted keys)."""
    _write_bytes(path, (json.dumps(settings, indent=2, sort_keys=True) + "\n").encode())


# --- synthetic layout ---------------------------------------------------------------------------


def write_partseg(path: Path, labels: np.ndarray, *, atomic: bool = True) -> None:
    """Write an (H, W) uint8 part map (``animalpose.datasets.parts``, checked) as an 8-bit
    single-channel PNG (the multitask loader's ``synthetic_multitask.read_partseg`` reads it)."""
    labels = np.asarray(labels)
    check_partseg(labels, source=str(path))
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(labels), _PARTSEG_PNG)
    if not ok:  # pragma: no cover - OpenCV always encodes uint8 grey images
        raise DataError(f"{path}: OpenCV could not encode the part segmentation")
    _write_bytes(path, encoded.tobytes(), atomic=atomic)


def write_synthetic_sample(
    image_path: Path,
    keypoints_path: Path,
    image: np.ndarray,
    rows: np.ndarray,
    *,
    partseg: np.ndarray | None = None,
    atomic: bool = True,
) -> None:
    """One synthetic-layout sample: ``rows`` ((3299, 3) x, y, visible) as a float32 ``_kpts.npy``,
    the (H, W) ``partseg`` (when given) as ``partseg_path(image_path)``, then the (H, W, 3) uint8
    RGB image as PNG, so a listed image always has its other files."""
    if partseg is not None and np.shape(partseg) != np.shape(image)[:2]:
        raise ValueError(
            f"{image_path}: part segmentation {np.shape(partseg)} does not match the image "
            f"{np.shape(image)}"
        )
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(rows).astype(np.float32))
    _write_bytes(keypoints_path, buffer.getvalue(), atomic=atomic)
    if partseg is not None:
        write_partseg(partseg_path(image_path), partseg, atomic=atomic)
    write_image(image_path, image, atomic=atomic)


class SyntheticLayout:
    """The synthetic layout of one style: stills
    ``<index>_<animal>_<style>_{img.png,kpts.npy,partseg.png}``.

    Args:
        root: the image path. animal: the renderer's animal name. style: one of
        ``renderer.STYLES``.
    """

    kind = "synthetic"

    def __init__(self, *, root: str | os.PathLike, animal: str, style: str) -> None:
        self.folder = synthetic_dir(root, animal)
        self.animal = check_animal(animal)
        self.style = style

    @property
    def manifest_path(self) -> Path:
        return self.folder / MANIFEST_NAME

    def paths(self, index: int) -> tuple[Path, Path]:
        """(image, keypoints) files of still ``index``."""
        base = f"{index}_{self.animal}_{self.style}_"
        return self.folder / f"{base}{IMAGE_SUFFIX}", self.folder / f"{base}{KEYPOINTS_SUFFIX}"

    def partseg_path(self, index: int) -> Path:
        """The part segmentation file of still ``index``."""
        return partseg_path(self.paths(index)[0])

    def has_data(self) -> bool:
        return self.folder.is_dir() and any(self.folder.glob(f"*{IMAGE_SUFFIX}"))

    def data_complete(self, index: int) -> bool:
        """The image of still ``index`` is whole and its keypoint array has its shape (what the
        split and mean files derive from; the part segmentation may be missing)."""
        image, keypoints = self.paths(index)
        if not image_complete(image):
            return False
        try:
            array = np.load(keypoints, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError):
            return False
        return array.shape == (NUM_VERTEX_ROWS, 3)

    def is_complete(self, index: int) -> bool:
        """All three files of still ``index`` exist: ``data_complete`` and a whole part
        segmentation (folders written before partseg existed re-render their stills)."""
        return self.data_complete(index) and image_complete(self.partseg_path(index))

    def write_still(self, index: int, frame: RenderedFrame) -> None:
        """Write still ``index``: keypoints, part segmentation, then image, each atomically.

        Where the image and keypoints are already there (a folder from before part
        segmentations), only the part segmentation is written when the re-render equals them
        (renders are deterministic per index); otherwise all three are replaced, with a warning,
        and the split and mean files of the folder removed (stale).

        Raises:
            ValueError: the frame has no ``partseg``.
        """
        if frame.partseg is None:
            raise ValueError(
                f"still {index}: the synthetic layout writes a part segmentation, and the "
                "renderer gave none"
            )
        image_path, keypoints_path = self.paths(index)
        rows = np.ones((NUM_VERTEX_ROWS, 3), dtype=np.float64)
        rows[:NUM_KEYPOINTS] = frame.keypoints
        rows[NUM_KEYPOINTS:, :2] = frame.vertices
        replaced = self.data_complete(index)
        if replaced and self._matches(image_path, keypoints_path, frame.image, rows):
            write_partseg(self.partseg_path(index), frame.partseg)
            return
        write_synthetic_sample(image_path, keypoints_path, frame.image, rows, partseg=frame.partseg)
        if replaced:
            log.warning(
                "%s: the re-rendered still differs from the image or keypoints that were on disk "
                "(another OpenGL driver or library version?); replaced them and removed the "
                "folder's split and mean files",
                image_path,
            )
            for path in self.derived_files():
                path.unlink(missing_ok=True)

    @staticmethod
    def _matches(image_path: Path, keypoints_path: Path, image: np.ndarray, rows) -> bool:
        """Whether the files hold exactly ``image`` and float32 ``rows``."""
        try:
            old_rows = np.load(keypoints_path, allow_pickle=False)
            old_image = read_image(image_path)
        except (OSError, ValueError, DataError):
            return False
        return np.array_equal(old_rows, np.asarray(rows).astype(np.float32)) and np.array_equal(
            old_image, image
        )

    def derived_files(self) -> list[Path]:
        """Split and mean files the loaders create from the data (stale once it changes)."""
        return [self.folder / name for name in (*SPLIT_NAMES, MEAN_NAME)]

    def temp_folders(self) -> list[Path]:
        return [self.folder]

    def output_names(self) -> tuple[str, ...]:
        return (IMAGE_SUFFIX, KEYPOINTS_SUFFIX, PARTSEG_SUFFIX, MANIFEST_NAME, *_DERIVED_SUFFIXES)


# --- TigDog layout ------------------------------------------------------------------------------


def tigdog_landmark_struct(
    coordinates: np.ndarray, visibility: np.ndarray, occluded: np.ndarray | None = None
) -> np.ndarray:
    """The 1x1 MATLAB struct of one TigDog frame: ``coordinates`` (K x 2 pixels) and
    ``visibility`` (K x 1) first, as the loaders read them by position, then ``occluded``
    (K x 1) when given (an extra field the loaders ignore). All float64."""
    fields = [("coordinates", object), ("visibility", object)]
    if occluded is not None:
        fields.append(("occluded", object))
    record = np.empty((1, 1), dtype=fields)
    record[0, 0]["coordinates"] = np.asarray(coordinates, dtype=np.float64)
    record[0, 0]["visibility"] = np.asarray(visibility, dtype=np.float64).reshape(-1, 1)
    if occluded is not None:
        record[0, 0]["occluded"] = np.asarray(occluded, dtype=np.float64).reshape(-1, 1)
    return record


def write_tigdog_landmarks(path: Path, cells: np.ndarray, *, atomic: bool = True) -> None:
    """A shot's ``landmarks/<shot>.mat``: ``cells`` is the F x 1 object array of
    ``tigdog_landmark_struct`` records."""
    _write_bytes(path, mat_bytes({"landmarks": cells}), atomic=atomic)


def write_tigdog_ranges(path: Path, rows: Iterable, *, atomic: bool = True) -> None:
    """``ranges.mat``: int32 N x 3 rows [shot, first frame, last frame]."""
    _write_bytes(path, mat_bytes({"ranges": np.asarray(rows, dtype=np.int32)}), atomic=atomic)


def _frame_struct(frame: RenderedFrame, frame_size: tuple[int, int]) -> np.ndarray:
    """The landmark struct of a rendered frame: out-of-frame points unannotated ((0, 0) and
    visibility 0, as TigDog); points hidden by the body stay visible and are flagged occluded."""
    w, h = frame_size
    coords = np.asarray(frame.keypoints[:, :2], dtype=np.float64).copy()
    x, y = coords[:, 0], coords[:, 1]
    inside = (x > 0) & (x < w - 0.5) & (y > 0) & (y < h - 0.5)
    coords[~inside] = 0.0
    occluded = inside & (frame.keypoints[:, 2] <= 0)
    return tigdog_landmark_struct(coords, inside, occluded)


class TigDogLayout:
    """The TigDog layout of one style: shots of ``frames_per_shot`` frames.

    Args:
        root: the image path. animal: the renderer's animal name.
        frames_per_shot: F, frames of every shot.
    """

    kind = "tigdog"

    def __init__(self, *, root: str | os.PathLike, animal: str, frames_per_shot: int) -> None:
        if frames_per_shot < 1:
            raise ValueError(f"frames_per_shot must be positive, got {frames_per_shot}")
        self.base = tigdog_dir(root)
        self.root = Path(root)
        self.animal = check_animal(animal)
        self.frames_per_shot = int(frames_per_shot)

    @property
    def manifest_path(self) -> Path:
        return self.base / "ranges" / self.animal / MANIFEST_NAME

    @property
    def ranges_path(self) -> Path:
        return self.base / "ranges" / self.animal / "ranges.mat"

    def shot_range(self, index: int) -> tuple[int, int, int]:
        """(shot id, first frame, last frame) of job ``index``; frames are numbered from 1."""
        start = index * self.frames_per_shot + 1
        return index + 1, start, start + self.frames_per_shot - 1

    def frame_path(self, frame: int) -> Path:
        return self.base / self.animal / f"{frame:08d}.jpg"

    def landmarks_path(self, shot: int) -> Path:
        return self.base / "landmarks" / self.animal / f"{shot}.mat"

    def has_data(self) -> bool:
        landmarks = self.base / "landmarks" / self.animal
        return self.ranges_path.exists() or (landmarks.is_dir() and any(landmarks.glob("*.mat")))

    def is_complete(self, index: int) -> bool:
        """The shot's landmark file holds F cells and all F frames are whole images."""
        shot, start, end = self.shot_range(index)
        path = self.landmarks_path(shot)
        if not path.exists():
            return False
        try:
            cells = np.asarray(load_mat(path, ("landmarks",))["landmarks"], dtype=object)
        except DataError:
            return False
        if cells.size != self.frames_per_shot:
            return False
        return all(image_complete(self.frame_path(f)) for f in range(start, end + 1))

    def data_complete(self, index: int) -> bool:
        """``is_complete``: every file of a shot is data its split and mean files derive from."""
        return self.is_complete(index)

    def write_shot(
        self, index: int, frames: Iterable[RenderedFrame], frame_size: tuple[int, int]
    ) -> tuple[int, int, int]:
        """Write the frames of shot ``index`` (each atomically), then its landmark file.
        Returns its ranges row (shot, start, end)."""
        shot, start, end = self.shot_range(index)
        cells = np.empty((self.frames_per_shot, 1), dtype=object)
        count = 0
        for t, frame in enumerate(frames):
            if t >= self.frames_per_shot:
                raise ValueError(
                    f"shot {shot}: the renderer gave more than {self.frames_per_shot} frames"
                )
            write_image(self.frame_path(start + t), frame.image)
            cells[t, 0] = _frame_struct(frame, frame_size)
            count += 1
        if count != self.frames_per_shot:
            raise ValueError(
                f"shot {shot}: the renderer gave {count} of {self.frames_per_shot} frames"
            )
        write_tigdog_landmarks(self.landmarks_path(shot), cells)
        return shot, start, end

    def write_ranges(self, indices: Iterable[int]) -> None:
        """Rewrite ``ranges.mat`` listing the shots of job ``indices`` (sorted); remove it when
        there are none."""
        rows = sorted(self.shot_range(i) for i in indices)
        if not rows:
            self.ranges_path.unlink(missing_ok=True)
            return
        write_tigdog_ranges(self.ranges_path, rows)

    def derived_files(self) -> list[Path]:
        """Split and mean files the loader creates from the data (stale once it changes)."""
        folder = split_folder(self.root, self.animal)
        return [folder / name for name in (*VIDEO_SPLIT_NAMES, VIDEO_MEAN_NAME)]

    def temp_folders(self) -> list[Path]:
        return [
            self.base / self.animal,
            self.base / "landmarks" / self.animal,
            self.base / "ranges" / self.animal,
            split_folder(self.root, self.animal),
        ]

    def output_names(self) -> tuple[str, ...]:
        return (".jpg", ".mat", MANIFEST_NAME, *_DERIVED_SUFFIXES)
