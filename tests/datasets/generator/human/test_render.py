"""The MuJoCo human renderer (skipped with the reason where there is no headless OpenGL)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from animalpose.datasets.generator.dog.camera import CameraView
from animalpose.datasets.generator.human.keypoints import COCO_KEYPOINTS
from animalpose.datasets.generator.human.pose import standing_pose
from animalpose.datasets.generator.human.render import PersonPlacement

K = {name: k for k, name in enumerate(COCO_KEYPOINTS)}


def _standing(humans, xy=(0.0, 0.0), heading=0.0) -> PersonPlacement:
    return PersonPlacement(standing_pose(humans._tables.joints), xy, heading)


def _scene(humans, people, azimuth=0.0, elevation=5.0, fill=0.9):
    """The camera of azimuth 0 looks along +x; a person with heading pi faces it."""
    view = CameraView(azimuth, elevation, 35.0, fill, (0.0, 0.0))
    return humans.render_scene(
        np.random.default_rng(0), "target", people=people, view=view, effects=False
    )


def test_same_seed_same_image(humans):
    a = humans.render_image(np.random.default_rng(11))
    humans.render_image(np.random.default_rng(12))  # state left behind must not leak
    b = humans.render_image(np.random.default_rng(11))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.owner, b.owner)
    assert a.image.shape == (humans.height, humans.width, 3) and a.image.std() > 5


def test_visible_keypoints_sit_on_their_person(humans):
    """Over random images: a visible keypoint's pixel shows its person at the keypoint's depth
    (within the body radius); every visible keypoint lies in its person's box; boxes and areas
    are pycocotools' of the person masks."""
    mask_api = pytest.importorskip("pycocotools.mask")
    checked = 0
    for seed in range(8):
        f = humans.render_image(np.random.default_rng(seed))
        for p in range(len(f.keypoints)):
            mask = f.owner == p
            assert f.areas[p] == mask.sum()
            if mask.any():
                rle = mask_api.encode(np.asfortranarray(mask.astype(np.uint8)))
                np.testing.assert_allclose(f.boxes[p], mask_api.toBbox(rle))
            _, z = f.camera.project(f.points[p])
            for k in np.flatnonzero(f.keypoints[p, :, 2] == 2):
                x, y = f.keypoints[p, k, :2]
                col, row = int(round(x)), int(round(y))
                assert mask[row, col]
                assert z[k] - f.depth[row, col] < 0.15  # at most 1.5 x the hip radius + margin
                bx, by, bw, bh = f.boxes[p]
                assert bx - 0.5 <= x <= bx + bw - 0.5 and by - 0.5 <= y <= by + bh - 0.5
                checked += 1
    assert checked > 50


def test_left_is_the_persons_own_left(humans):
    """Facing the camera, the person's left shoulder, hip and eye appear on the image's right;
    with the back to the camera, on its left (COCO: left = the person's own left)."""
    front = _scene(humans, [_standing(humans, heading=math.pi)]).keypoints[0]
    back = _scene(humans, [_standing(humans, heading=0.0)]).keypoints[0]
    for part in ("shoulder", "hip", "knee", "ankle"):
        left, right = K[f"left_{part}"], K[f"right_{part}"]
        assert front[left, 0] > front[right, 0] and back[left, 0] < back[right, 0]
        assert front[left, 2] == front[right, 2] == 2
    assert front[K["left_eye"], 0] > front[K["right_eye"], 0]
    assert front[K["nose"], 2] == 2 and back[K["nose"], 2] == 1  # the head hides the face
    assert front[K["nose"], 1] > front[K["left_eye"], 1]  # nose below the eyes


def test_side_view_hides_the_far_side(humans):
    """Heading +y with the camera looking along +x: the person's left side faces the camera.
    (The hips are left out: the hanging left hand covers the left hip in this view.)"""
    kp = _scene(humans, [_standing(humans, heading=math.pi / 2)]).keypoints[0]
    for part in ("shoulder", "elbow", "knee", "ankle", "eye", "ear"):
        assert kp[K[f"left_{part}"], 2] == 2 and kp[K[f"right_{part}"], 2] == 1
    assert kp[K["nose"], 2] == 2  # the nose in profile


def test_a_person_behind_another_is_occluded(humans):
    """Person 1 stands 1.5 m straight behind person 0 on the camera's axis: its torso keypoints
    are labelled but hidden (v = 1); person 0's are visible; its visible area is smaller."""
    people = [_standing(humans, (0.0, 0.0), math.pi), _standing(humans, (1.5, 0.0), math.pi)]
    f = _scene(humans, people, elevation=0.0, fill=0.7)
    torso = [K[n] for n in ("left_shoulder", "right_shoulder", "left_hip", "right_hip")]
    assert np.all(f.keypoints[0, torso, 2] == 2)
    assert np.all(f.keypoints[1, torso, 2] == 1)
    assert f.areas[1] < 0.5 * f.areas[0]
    alone = _scene(humans, [people[1]], elevation=0.0, fill=0.7)
    assert np.all(alone.keypoints[0, torso, 2] == 2)  # the same person, not hidden when alone
