"""Body-part segmentation classes: the reference's multitask labels, validated at import.

A synthetic still's ``<base>_partseg.png`` (the reference's ``data_generation/
generate_partseg.py`` layout) is an 8-bit single-channel image of the frame's size holding one
class id per pixel: ``0`` background, ``1..9`` the parts below, ``IGNORE`` (255) pixels no loss
or metric counts. The ids are the reference's, so its files and checkpoints keep their meaning;
the ``hg_multitask`` model predicts ``NUM_CLASSES`` (background + 9 parts) channels.

A horizontal flip swaps the left and right legs (``FLIP_LABELS``); the reference mirrors the
label image without swapping (kept only in legacy mode, docs/reference_compat.md).
"""

from __future__ import annotations

import numpy as np

from animalpose.datasets.fileio import DataError

__all__ = [
    "FLIP_LABELS",
    "IGNORE",
    "NUM_CLASSES",
    "PART_CLASSES",
    "PART_FLIP_PAIRS",
    "check_partseg",
    "flip_labels",
]

#: Class names by id (the reference's ``class_mapping``, background first).
PART_CLASSES: tuple[str, ...] = (
    "background",
    "head",
    "eye",
    "ear",
    "torso",
    "left_front",
    "right_front",
    "left_back",
    "right_back",
    "tail",
)
#: Label of pixels that count for nothing (outside the animal's labelled area, unknown part).
IGNORE = 255
#: Output channels of a part-segmentation head.
NUM_CLASSES = len(PART_CLASSES)
#: Classes a horizontal flip exchanges, by name.
PART_FLIP_PAIRS: tuple[tuple[str, str], ...] = (
    ("left_front", "right_front"),
    ("left_back", "right_back"),
)


def _flip_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint8)
    index = {name: i for i, name in enumerate(PART_CLASSES)}
    for a, b in PART_FLIP_PAIRS:
        if a not in index or b not in index or a == b:
            raise ValueError(f"part flip pair ({a!r}, {b!r}) names unknown or equal classes")
        table[index[a]], table[index[b]] = index[b], index[a]
    return table


if len(set(PART_CLASSES)) != NUM_CLASSES or PART_CLASSES[0] != "background":
    raise ValueError("PART_CLASSES must be unique names with 'background' first")
if not NUM_CLASSES <= IGNORE:
    raise ValueError("IGNORE must lie above every class id")
#: (256,) uint8 look-up table: label -> label after a horizontal flip (identity elsewhere).
FLIP_LABELS = _flip_table()
FLIP_LABELS.flags.writeable = False


def flip_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` (uint8, any shape) with left and right classes exchanged (pixels not moved)."""
    return FLIP_LABELS[np.asarray(labels, dtype=np.uint8)]


def check_partseg(labels: np.ndarray, *, source: str, size: tuple[int, int] | None = None) -> None:
    """DataError naming ``source`` unless ``labels`` is an (H, W) uint8 map of class ids in
    ``0..NUM_CLASSES - 1`` or ``IGNORE``, of ``size`` (w, h) when given."""
    if labels.ndim != 2 or labels.dtype != np.uint8:
        raise DataError(
            f"{source}: a part segmentation must be a single-channel 8-bit image, got shape "
            f"{labels.shape} dtype {labels.dtype}"
        )
    if size is not None and (labels.shape[1], labels.shape[0]) != tuple(size):
        raise DataError(
            f"{source}: part segmentation is {labels.shape[1]}x{labels.shape[0]}, the image "
            f"{size[0]}x{size[1]}"
        )
    bad = np.setdiff1d(np.unique(labels), [*range(NUM_CLASSES), IGNORE])
    if bad.size:
        raise DataError(
            f"{source}: part segmentation holds labels {bad.tolist()[:8]}; valid: "
            f"0..{NUM_CLASSES - 1} ({', '.join(PART_CLASSES)}) and {IGNORE} (ignore)"
        )
