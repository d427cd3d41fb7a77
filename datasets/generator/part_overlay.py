"""Overlay images of part segmentations, for checking a renderer's ``partseg`` by eye
(docs/generator_partseg.jpg) and for figures.

``partseg_overlay`` blends one colour per ``animalpose.datasets.parts`` class over the image;
background stays as it is, ``IGNORE`` pixels turn grey. Left legs are warm and right legs cool
colours (front lighter than back), so a side swap shows at a glance.
"""

from __future__ import annotations

import numpy as np

from animalpose.datasets.parts import IGNORE, NUM_CLASSES, PART_CLASSES, check_partseg

__all__ = ["IGNORE_COLOUR", "PART_COLOURS", "partseg_overlay"]

#: RGB colour of each class, by name (background is never painted).
PART_COLOURS: dict[str, tuple[int, int, int]] = {
    "background": (0, 0, 0),
    "head": (255, 230, 0),  # yellow
    "eye": (255, 0, 255),  # magenta
    "ear": (0, 255, 255),  # cyan
    "torso": (40, 200, 40),  # green
    "left_front": (255, 140, 0),  # orange
    "right_front": (60, 170, 255),  # light blue
    "left_back": (200, 0, 0),  # red
    "right_back": (0, 40, 200),  # dark blue
    "tail": (150, 60, 220),  # purple
}
#: RGB colour of ``IGNORE`` pixels.
IGNORE_COLOUR = (128, 128, 128)
#: Default share of the class colour in a painted pixel.
ALPHA = 0.6

if tuple(PART_COLOURS) != PART_CLASSES:
    raise ValueError("PART_COLOURS must name every PART_CLASSES entry, in order")


def partseg_overlay(image: np.ndarray, labels: np.ndarray, *, alpha: float = ALPHA) -> np.ndarray:
    """(H, W, 3) uint8 ``image`` with the class colour of each labelled pixel blended in.

    image: (H, W, 3) uint8 RGB; labels: (H, W) uint8 part map (``check_partseg``); alpha: share
    of the colour in part and ignore pixels (background pixels are left unchanged).
    """
    h, w = labels.shape[:2]
    if image.shape != (h, w, 3) or image.dtype != np.uint8:
        raise ValueError(
            f"image must be ({h}, {w}, 3) uint8 like the labels, got {image.shape} {image.dtype}"
        )
    check_partseg(labels, source="partseg_overlay labels")
    table = np.zeros((256, 3), np.float32)
    table[:NUM_CLASSES] = list(PART_COLOURS.values())
    table[IGNORE] = IGNORE_COLOUR
    share = np.where(labels > 0, np.float32(alpha), np.float32(0.0))[..., None]
    out = image.astype(np.float32) * (1 - share) + table[labels] * share
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
