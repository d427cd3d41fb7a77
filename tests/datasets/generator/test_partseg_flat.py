"""Part segmentations of the cartoon animal (``cartoon.draw_part_labels``, the flat renderer,
the fixtures) and the overlay helper: labels where the shapes are painted, legs by side and
front / back, keypoint disks ignored."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from animalpose.datasets.generator.cartoon import (
    CartoonAnimal,
    draw_animal,
    draw_part_labels,
    fixture_palette,
)
from animalpose.datasets.generator.flat import FlatRenderer
from animalpose.datasets.generator.part_overlay import (
    IGNORE_COLOUR,
    PART_COLOURS,
    partseg_overlay,
)
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.parts import IGNORE, PART_CLASSES, check_partseg

ID = {name: i for i, name in enumerate(PART_CLASSES)}
SIZE = (320, 240)
#: Keypoint -> part of the shape it ends or sits on (the eyes and chin lie on the head stroke).
KEYPOINT_PARTS = {
    **{f"{s}_{e}_{j}": f"{s}_{e}" for s in ("left", "right") for e in ("front", "back")
       for j in ("hoof", "knee")},
    "left_eye": "head",
    "right_eye": "head",
    "chin": "head",
}  # fmt: skip


def _animal(seed: int) -> tuple[CartoonAnimal, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    beast = CartoonAnimal.random(rng, SIZE)
    points = beast.posed(float(rng.uniform(0, 2 * np.pi)))
    shift = np.array(SIZE) / 2
    return beast, {n: p + shift for n, p in points.items()}


def _interior(mask: np.ndarray, radius: int = 2) -> np.ndarray:
    kernel = np.ones((2 * radius + 1,) * 2, np.uint8)
    return cv2.erode(mask.astype(np.uint8), kernel, borderValue=0).astype(bool)


@pytest.mark.parametrize("seed", range(6))
def test_labels_match_the_painted_colours(seed):
    """Drawn on black with the fixture palette (left red, right blue, head yellow, body brown):
    inside each labelled region the image shows that part's colour, and every pixel painted
    exactly a part colour is labelled or within a pixel of a label (anti-aliasing)."""
    beast, points = _animal(seed)
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    draw_animal(image, beast, points, markers=False)
    labels = draw_part_labels(beast, points, SIZE, markers=False)
    check_partseg(labels, source="cartoon", size=SIZE)
    palette = fixture_palette(beast)
    colour_of = {
        "head": palette.head,
        "torso": palette.body,
        "tail": palette.body,
        "left_front": palette.left,
        "left_back": palette.left,
        "right_front": palette.right,
        "right_back": palette.right,
    }
    for part, colour in colour_of.items():
        # Two pixels in from any other label: the anti-aliased fringes of the image are blends.
        inside = _interior(labels == ID[part])
        assert inside.any() or part == "tail", part  # the tail stroke is 3-5 px wide
        assert (labels == ID[part]).any() and (image[inside] == colour).all(), part
    painted = {tuple(c) for c in colour_of.values()}
    exact = np.array([tuple(p) in painted for p in image.reshape(-1, 3)]).reshape(labels.shape)
    # Anti-aliased strokes reach up to a pixel past the labels' (pixel-centre) strokes.
    near_labels = cv2.dilate((labels > 0).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    assert near_labels[exact].all() and (labels[exact] > 0).mean() > 0.995
    assert not (labels[_interior(image.sum(axis=2) == 0)]).any()  # black stays background
    assert set(np.unique(labels)) <= {0, *(ID[p] for p in colour_of)}  # no eye, ear, ignore


@pytest.mark.parametrize("seed", range(6))
def test_keypoints_sit_on_their_parts(seed):
    """Near-side legs are drawn last: their hoofs and knees show their own leg; far-side ones
    their leg, the trunk, or a near leg in front; eyes and chin are on the head."""
    beast, points = _animal(seed)
    labels = draw_part_labels(beast, points, SIZE, markers=False)
    far = "left_" if beast.near == "right" else "right_"
    for name, part in KEYPOINT_PARTS.items():
        x, y = np.rint(points[name]).astype(int)
        label = PART_CLASSES[labels[y, x]]
        if name.startswith(far):
            near_legs = {n.replace(far, "", 1) for n in PART_CLASSES if n.startswith(far)}
            ok = {part, "torso"} | {f"{beast.near}_{e}" for e in near_legs}
            assert label in ok, (name, label)
        else:
            assert label == part, (name, label)


def test_keypoint_disks_are_ignored():
    beast, points = _animal(0)
    plain = draw_part_labels(beast, points, SIZE, markers=False)
    marked = draw_part_labels(beast, points, SIZE, markers=True)
    for name in ANIMAL18.keypoints:
        x, y = np.rint(points[name]).astype(int)
        assert marked[y, x] == IGNORE
    assert np.array_equal(marked[marked != IGNORE], plain[marked != IGNORE])


def test_flat_frames_carry_the_labels_of_what_they_paint():
    renderer = FlatRenderer(width=SIZE[0], height=SIZE[1])
    frame = renderer.render_still(np.random.default_rng(3), "source")
    check_partseg(frame.partseg, source="flat", size=SIZE)
    assert {ID["head"], ID["torso"], ID["tail"]} <= set(np.unique(frame.partseg))
    for part in ("head", "torso"):  # source style: flat colours, no camera effects
        inside = _interior(frame.partseg == ID[part])
        colours = np.unique(frame.image[inside], axis=0)
        assert len(colours) == 1, part
    shot = list(renderer.render_shot(np.random.default_rng(4), "target", 3))
    assert all(f.partseg is not None and f.partseg.shape == SIZE[::-1] for f in shot)
    assert not np.array_equal(shot[0].partseg, shot[2].partseg)  # the animal trots


def test_overlay_colours_parts_greys_ignore_and_keeps_background():
    image = np.full((2, 3, 3), 100, np.uint8)
    labels = np.array([[0, ID["head"], IGNORE], [ID["left_front"], ID["right_back"], 0]], np.uint8)
    out = partseg_overlay(image, labels, alpha=0.5)
    assert (out[0, 0] == 100).all() and (out[1, 2] == 100).all()
    np.testing.assert_array_equal(out[0, 1], np.rint(50 + 0.5 * np.array(PART_COLOURS["head"])))
    np.testing.assert_array_equal(out[0, 2], np.rint(50 + 0.5 * np.array(IGNORE_COLOUR)))
    assert not np.array_equal(out[1, 0], out[1, 1])  # left and right legs differ
    with pytest.raises(ValueError, match="like the labels"):
        partseg_overlay(image[:1], labels)
