"""The humanoid's keypoint table and the COCO visibility rule (hand-made maps)."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets.generator.human.keypoints import (
    COCO_KEYPOINTS,
    FACE_POINTS,
    FACE_RADIUS_M,
    JOINT_BODIES,
    coco_visibility,
    keypoint_radius,
)

#: The model's head capsule in the head body's frame (humanoid_CMU_V2020.xml, geom "head":
#: size 0.095 0.024, pos 0.000341465 0.048184 0.025, axis along y).
HEAD_CENTRE = np.array([0.000341465, 0.048184, 0.025])
HEAD_RADIUS, HEAD_HALF = 0.095, 0.024104


def test_every_keypoint_has_exactly_one_source():
    # each COCO keypoint is a joint centre or a point on the head, never both
    assert set(JOINT_BODIES) | set(FACE_POINTS) == set(COCO_KEYPOINTS)
    assert not set(JOINT_BODIES) & set(FACE_POINTS)


def test_left_keypoints_come_from_left_bodies():
    """The model's l* bodies are the person's left: left names map to l* bodies, and left face
    points sit at +x (the model's left) in the head frame."""
    for name, body in JOINT_BODIES.items():
        assert body[0] == ("l" if name.startswith("left_") else "r")
    for name, (x, _, _) in FACE_POINTS.items():
        if name != "nose":
            assert (x > 0) == name.startswith("left_")


@pytest.mark.parametrize("name", sorted(FACE_POINTS))
def test_face_points_lie_on_the_head_capsule_surface(name):
    p = np.array(FACE_POINTS[name])
    y = np.clip(p[1], HEAD_CENTRE[1] - HEAD_HALF, HEAD_CENTRE[1] + HEAD_HALF)
    axis_point = np.array([HEAD_CENTRE[0], y, HEAD_CENTRE[2]])
    assert np.linalg.norm(p - axis_point) == pytest.approx(HEAD_RADIUS, abs=1.5e-3)
    if name in ("nose", "left_eye", "right_eye"):
        assert p[2] > HEAD_CENTRE[2] + 0.08  # on the front (the person faces +z)


def test_radius_is_smallest_on_the_face():
    r = keypoint_radius()
    face = [k for k, name in enumerate(COCO_KEYPOINTS) if name in FACE_POINTS]
    limbs = [k for k in range(17) if k not in face]
    assert np.all(r[face] == FACE_RADIUS_M) and r[limbs].min() > FACE_RADIUS_M


def test_visibility_flags_by_hand():
    """A 4x3 frame: person 0 on the left half at 2 m, person 1 on the right half at 1 m."""
    depth = np.full((3, 4), 60.0)
    owner = np.full((3, 4), -1, np.int8)
    depth[:, :2], owner[:, :2] = 2.0, 0
    depth[:, 2:], owner[:, 2:] = 1.0, 1
    xy = np.array(
        [
            [0.0, 1.0],  # on its own surface, 5 cm behind it: visible
            [0.4, 1.0],  # own surface, 50 cm behind it (tolerance 10 cm): hidden by its body
            [3.0, 1.0],  # behind person 1: hidden
            [-0.6, 1.0],  # outside the frame
            [3.2, 2.4],  # inside (rounds to the last pixel), behind person 1
            [1.0, 3.0],  # y = 3 > h - 0.5: outside
        ]
    )
    z = np.array([2.05, 2.5, 2.05, 2.0, 2.0, 2.0])
    flags = coco_visibility(
        xy=xy, depth=z, depth_map=depth, owner=owner, person=0, tolerance=np.full(6, 0.1)
    )
    np.testing.assert_array_equal(flags, [2, 1, 1, 0, 1, 0])
    # Person 1's own point in front of its surface is visible; a point behind the camera is not.
    flags = coco_visibility(
        xy=np.array([[2.0, 0.0], [2.0, 0.0]]),
        depth=np.array([0.95, -1.0]),
        depth_map=depth,
        owner=owner,
        person=1,
        tolerance=np.zeros(2),
    )
    np.testing.assert_array_equal(flags, [2, 0])
