"""Pose sampling of the CMU humanoid: the closed-form shoulder angles, limits, determinism."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from animalpose.datasets.generator.dog.motion import JointTable
from animalpose.datasets.generator.human.model import model_path
from animalpose.datasets.generator.human.pose import (
    POSE_KINDS,
    SHOULDER_TWIST,
    STANDING,
    STANDING_ABDUCTION,
    ArmFrames,
    arm_angles,
    arm_direction,
    quat_to_matrix,
    sample_pose,
    standing_pose,
)


def _model():
    """(JointTable of one person's hinges, ArmFrames) read from the XML (no MuJoCo needed)."""
    root = ET.fromstring(model_path().read_bytes())
    bodies = {b.get("name"): b for b in root.iter("body")}
    names, lower, upper = [], [], []
    for joint in root.find("worldbody").iter("joint"):
        names.append(joint.get("name"))
        lo, hi = map(float, joint.get("range").split())
        lower.append(lo)
        upper.append(hi)
    joints = JointTable(tuple(names), np.array(lower), np.array(upper))

    def frame(name):
        return quat_to_matrix(np.array(bodies[name].get("quat").split(), float))

    return joints, ArmFrames(left=frame("lhumerus"), right=frame("rhumerus"))


def _rot(axis: str, a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def test_arm_angles_point_the_arm_where_asked():
    """Forward kinematics of the returned angles (frame Rz Ry Rx applied to the arm's -y axis)
    gives the asked direction, for both closed-form solutions."""
    _, frames = _model()
    rng = np.random.default_rng(0)
    for _ in range(20):
        side = "l" if rng.random() < 0.5 else "r"
        d = arm_direction(side, abduction=rng.uniform(0, 1.5), swing=rng.uniform(-0.6, 1.5))
        frame = frames.left if side == "l" else frames.right
        for rz, ry, rx in arm_angles(frame, d, twist=rng.uniform(-0.5, 0.5)):
            got = frame @ _rot("z", rz) @ _rot("y", ry) @ _rot("x", rx) @ np.array([0, -1.0, 0])
            np.testing.assert_allclose(got, d, atol=1e-9)


@pytest.mark.parametrize("side", ["l", "r"])
def test_standing_shoulders_are_the_closed_form_of_hanging_arms(side):
    """STANDING's shoulder angles (found by least squares) = arm_angles of arms hanging
    STANDING_ABDUCTION out, to the printed precision."""
    _, frames = _model()
    d = arm_direction(side, abduction=STANDING_ABDUCTION, swing=0.0)
    frame = frames.left if side == "l" else frames.right
    key = np.array([STANDING[f"{side}humerus{a}"] for a in ("rz", "ry", "rx")])
    sols = arm_angles(frame, d, SHOULDER_TWIST[side])
    assert min(np.abs(s - key).max() for s in sols) < 2e-3


def test_hanging_arms_point_down_and_out_to_each_side():
    d_left = arm_direction("l", abduction=0.2, swing=0.0)
    d_right = arm_direction("r", abduction=0.2, swing=0.0)
    assert d_left[1] < -0.9 and d_left[0] > 0 and d_right[0] < 0  # x is the person's left
    assert arm_direction("l", abduction=0.0, swing=0.5)[2] > 0  # swing forward: +z


def test_sampled_poses_stay_in_limits_and_repeat_per_seed():
    joints, frames = _model()
    kinds = set()
    for seed in range(60):
        angles, kind = sample_pose(joints, frames, np.random.default_rng(seed))
        assert angles.shape == (len(joints.names),)
        assert np.all(angles >= joints.lower - 1e-12) and np.all(angles <= joints.upper + 1e-12)
        kinds.add(kind)
        again, _ = sample_pose(joints, frames, np.random.default_rng(seed))
        np.testing.assert_array_equal(angles, again)
    assert kinds == set(POSE_KINDS)


def test_standing_pose_brings_the_legs_together():
    joints, _ = _model()
    pose = standing_pose(joints)
    assert pose[joints.index("lfemurrz")] == pytest.approx(-0.349066)
    assert pose[joints.index("rfemurrz")] == pytest.approx(0.349066)
