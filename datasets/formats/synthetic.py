"""The reference's synthetic animals: ``synthetic_animal`` / ``synthetic_animal_sp``.

Samples are the ``*img.png`` files of ``synthetic_animal/<animal>_combineds5r5_texture/`` in
lexicographic order, each with a ``_kpts.npy`` of every projected mesh vertex. The 18 keypoints
are fixed vertex rows (``keypoints.VERTEX_TABLES``, or a vertex-table JSON file for other
animals); all are visible except those outside the frame. The crop is the box of all vertices,
clipped to the frame, with side 1.25 x its longer side. Layout: animal_data/README.md;
reference: docs/reference_compat.md §1.1.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from animalpose.datasets.fileio import DataError, check_regular_file, read_image
from animalpose.datasets.formats.base import SPLITS, Augmenter, KeypointDataset, check_animal
from animalpose.datasets.formats.legacy import legacy_synthetic_targets
from animalpose.datasets.formats.means import MEAN_NAME, compute_mean_std, load_or_compute_mean
from animalpose.datasets.formats.split_fingerprint import image_ids
from animalpose.datasets.formats.splits import SPLIT_NAMES, check_split_dir, load_or_create_split
from animalpose.datasets.geometry import box_from_points
from animalpose.datasets.keypoints import VERTEX_TABLES, KeypointSpec

__all__ = [
    "NUM_VERTICES",
    "SYNTHETIC_BOX_FACTOR",
    "SyntheticAnimal",
    "list_synthetic_images",
    "load_vertex_table",
    "reference_synthetic_dir",
    "synthetic_dir",
    "synthetic_mean_std",
]

log = logging.getLogger(__name__)

#: Folder of the synthetic data under the image path and under the reference's ``data/``.
SYNTHETIC_FOLDER = "synthetic_animal"
#: Suffix of the per-animal folder of the reference's renders.
SYNTHETIC_SUFFIX = "_combineds5r5_texture"
#: Sample files: ``<base>_img.png`` and ``<base>_kpts.npy`` (the reference globs ``*img.png``
#: and replaces the trailing ``img.png`` by ``kpts.npy``).
IMAGE_SUFFIX = "img.png"
KEYPOINTS_SUFFIX = "kpts.npy"
#: Mesh vertices in every reference ``_kpts.npy`` (rows of the per-vertex array).
NUM_VERTICES = 3299
#: Crop side = 1.25 x the longer side of the vertex box (reference synthetic_animal.py).
SYNTHETIC_BOX_FACTOR = 1.25
#: Packaged vertex tables for animals outside ``keypoints.VERTEX_TABLES``.
VERTEX_TABLE_DIR = Path(__file__).parent / "vertex_tables"

_LAYOUT = (
    "expected <image-path>/synthetic_animal/<animal>_combineds5r5_texture/ holding "
    "<base>_img.png and <base>_kpts.npy files (see animal_data/README.md)"
)


def synthetic_dir(root: str | os.PathLike, animal: str) -> Path:
    """``<root>/synthetic_animal/<animal>_combineds5r5_texture``."""
    return Path(root) / SYNTHETIC_FOLDER / f"{check_animal(animal)}{SYNTHETIC_SUFFIX}"


def reference_synthetic_dir(split_dir: str | os.PathLike, animal: str) -> Path:
    """Where the reference's ``data/`` folder keeps the animal's split and mean files: the same
    sub-path as the data's own folder."""
    return synthetic_dir(split_dir, animal)


def list_synthetic_images(root: str | os.PathLike, animal: str) -> list[Path]:
    """The sorted ``*img.png`` files of the animal; DataError when the layout is wrong."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image path does not exist; {_LAYOUT}")
    directory = synthetic_dir(root, animal)
    if not directory.is_dir():
        raise DataError(f"{directory}: folder not found; {_LAYOUT}")
    images = sorted(directory.glob(f"*{IMAGE_SUFFIX}"), key=lambda p: p.name)
    if not images:
        raise DataError(f"{directory}: no *{IMAGE_SUFFIX} images; {_LAYOUT}")
    return images


def keypoints_path(image_path: Path) -> Path:
    """The ``_kpts.npy`` file of an ``_img.png`` image."""
    return image_path.with_name(image_path.name[: -len(IMAGE_SUFFIX)] + KEYPOINTS_SUFFIX)


def load_vertex_table(
    animal: str,
    vertex_table: str | os.PathLike | Sequence[int] | None = None,
    *,
    num_keypoints: int,
) -> np.ndarray:
    """(K,) int64 vertex rows of the keypoints, model order.

    ``vertex_table``: a JSON file ``{"animal": ..., "rows": [K ints]}`` or a sequence of rows;
    when None, ``keypoints.VERTEX_TABLES[animal]`` then ``vertex_tables/<animal>.json``.
    """
    source: str
    check_animal(animal)
    if vertex_table is None:
        if animal in VERTEX_TABLES:
            rows, source = list(VERTEX_TABLES[animal]), f"VERTEX_TABLES[{animal!r}]"
        elif (VERTEX_TABLE_DIR / f"{animal}.json").is_file():
            rows, source = _read_table_file(VERTEX_TABLE_DIR / f"{animal}.json", animal)
        else:
            packaged = sorted(p.stem for p in VERTEX_TABLE_DIR.glob("*.json"))
            raise DataError(
                f"no vertex table for animal {animal!r}: known {sorted(VERTEX_TABLES) + packaged};"
                ' pass a JSON file {"animal": ..., "rows": [one vertex row per keypoint]}'
            )
    elif isinstance(vertex_table, (str, os.PathLike)):
        rows, source = _read_table_file(Path(vertex_table), animal)
    else:
        rows, source = list(vertex_table), "vertex_table argument"
    if len(rows) != num_keypoints or not all(isinstance(r, (int, np.integer)) for r in rows):
        raise DataError(
            f"{source}: vertex table must list {num_keypoints} integer rows, got {rows}"
        )
    table = np.asarray(rows, dtype=np.int64)
    if len(np.unique(table)) != len(table) or table.min() < 0 or table.max() >= NUM_VERTICES:
        raise DataError(f"{source}: vertex rows must be distinct and in [0, {NUM_VERTICES})")
    return table


def _read_table_file(path: Path, animal: str) -> tuple[list, str]:
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: vertex table file not found") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read vertex table JSON ({exc})") from exc
    if not isinstance(content, dict) or not isinstance(content.get("rows"), list):
        raise DataError(f'{path}: vertex table must be {{"animal": ..., "rows": [ints]}}')
    if content.get("animal", animal) != animal:
        log.warning("%s: vertex table of %r used for %r", path, content["animal"], animal)
    return content["rows"], str(path)


def _check_keypoints_file(path: Path) -> None:
    """Cheap header-only check that ``path`` holds a (NUM_VERTICES, 3) array."""
    if not path.exists():
        raise DataError(f"{path}: keypoint file not found (every _img.png needs one)")
    check_regular_file(path, "keypoint file")  # no FIFO or device: np.load would block
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # EOFError: an empty or cut file
        raise DataError(f"{path}: cannot read keypoint file ({exc})") from exc
    if arr.shape != (NUM_VERTICES, 3):
        raise DataError(
            f"{path}: keypoint array must have shape ({NUM_VERTICES}, 3) (projected mesh "
            f"vertices x, y, visible), got {arr.shape}"
        )


def _split_indices(
    root: Path, animal: str, split: str, images: Sequence[Path], seed: int, split_dir
) -> np.ndarray:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    search = [reference_synthetic_dir(split_dir, animal)] if check_split_dir(split_dir) else []
    if split == "all":
        return np.arange(len(images))
    train, valid = load_or_create_split(
        synthetic_dir(root, animal),
        names=SPLIT_NAMES,
        n=len(images),
        seed=seed,
        search_dirs=search,
        sample_ids=image_ids(images),
    )
    return train if split == "train" else valid


class SyntheticAnimal(KeypointDataset):
    """The reference's rendered animals (``synthetic_animal`` / ``synthetic_animal_sp``).

    Args:
        root: the image path (``--image-path``).
        animal: animal name (``horse``, ``tiger``, or one with a vertex table).
        split: ``"train"``, ``"valid"`` or ``"all"``.
        augmenter, spec, seed: see ``KeypointDataset``.
        split_dir: a mirror of the reference's ``data/`` folder searched first for split files.
        vertex_table: JSON file or rows for animals outside ``keypoints.VERTEX_TABLES``.
        limit: keep only the first ``limit`` samples of the split (0: all).
        legacy, heatmap_size: see ``KeypointDataset`` (``formats.legacy.legacy_synthetic_targets``).
    """

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
        vertex_table: str | os.PathLike | Sequence[int] | None = None,
        limit: int = 0,
        legacy: bool = False,
        heatmap_size: int = 64,
    ) -> None:
        super().__init__(
            augmenter=augmenter, spec=spec, seed=seed, legacy=legacy, heatmap_size=heatmap_size
        )
        self.root = Path(root)
        self.animal = animal
        self.split = split
        self.rows = load_vertex_table(animal, vertex_table, num_keypoints=spec.num_keypoints)
        self.images = list_synthetic_images(self.root, animal)
        indices = _split_indices(self.root, animal, split, self.images, seed, split_dir)
        if limit > 0:
            indices = indices[:limit]
        if len(indices) == 0:
            raise DataError(f"{synthetic_dir(self.root, animal)}: the {split!r} split is empty")
        self.indices = np.asarray(indices, dtype=np.int64)
        for i in self.indices:
            _check_keypoints_file(keypoints_path(self.images[i]))

    def __len__(self) -> int:
        return len(self.indices)

    def image_path(self, index: int) -> Path:
        return self.images[self.indices[index]]

    def vertices(self, index: int) -> np.ndarray:
        """The (NUM_VERTICES, 3) ``_kpts.npy`` array of sample ``index``, as stored."""
        path = keypoints_path(self.image_path(index))
        check_regular_file(path, "keypoint file")
        try:
            vertices = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # EOFError: an empty or cut file
            raise DataError(f"{path}: cannot read keypoint file ({exc})") from exc
        if vertices.shape != (NUM_VERTICES, 3) or vertices.dtype.kind not in "biuf":
            raise DataError(
                f"{path}: keypoint array must be numeric ({NUM_VERTICES}, 3), got "
                f"{vertices.shape} {vertices.dtype}"
            )
        return vertices

    def annotation(
        self, index: int, frame_size: tuple[int, int], vertices: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """(keypoints_image (K, 3), center (2,), size) of sample ``index`` in a (w, h) frame
        (``vertices``: its ``_kpts.npy`` array when already read)."""
        path = keypoints_path(self.image_path(index))
        if vertices is None:
            vertices = self.vertices(index)
        vertices = np.asarray(vertices).astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(vertices[:, :2]).all(axis=1))
        if len(bad):
            raise DataError(
                f"{path}: vertex rows {bad[:5].tolist()}{' ...' if len(bad) > 5 else ''} have "
                "non-finite coordinates (NaN or inf); re-export the projected vertices"
            )
        w, h = frame_size
        keypoints = vertices[self.rows].copy()
        x, y = keypoints[:, 0], keypoints[:, 1]
        inside = (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)
        keypoints[:, 2] = inside.astype(np.float64)  # the reference forces visible = 1
        x0, y0, x1, y1 = box_from_points(vertices[:, :2], frame_size=(w, h))
        center = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0])
        return keypoints, center, SYNTHETIC_BOX_FACTOR * max(x1 - x0, y1 - y0)

    def __getitem__(self, index: int) -> dict:
        path = self.image_path(index)
        image = read_image(path)
        vertices = self.vertices(index)
        keypoints, center, size = self.annotation(index, (image.shape[1], image.shape[0]), vertices)
        legacy = None
        if self.legacy:
            legacy = legacy_synthetic_targets(vertices, self.rows, SYNTHETIC_BOX_FACTOR)
            center, size = legacy.center.astype(np.float64), legacy.size
        return self._sample(index, image, keypoints, center, size, source=str(path), legacy=legacy)


def synthetic_mean_std(
    *, root: str | os.PathLike, animal: str, seed: int, split_dir: str | os.PathLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The animal's synthetic ``mean.pth.tar``: read (reference mirror first, then beside the
    data) or computed over the training split and saved beside the data."""
    directory = synthetic_dir(root, animal)
    search = [reference_synthetic_dir(split_dir, animal) / MEAN_NAME] if split_dir else []

    def compute() -> tuple[np.ndarray, np.ndarray]:
        images = list_synthetic_images(root, animal)
        train = _split_indices(Path(root), animal, "train", images, seed, split_dir)
        return compute_mean_std(lambda i: read_image(images[train[i]]), len(train))

    return load_or_compute_mean(directory / MEAN_NAME, compute, search_paths=search)
