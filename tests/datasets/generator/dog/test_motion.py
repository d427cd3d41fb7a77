"""Gaits, still poses, a shot's root path, levelling the paws."""

from __future__ import annotations

import math

import numpy as np
import pytest

from animalpose.datasets.generator.dog.motion import (
    GAITS,
    LEG_JOINTS,
    JointTable,
    ShotMotion,
    gait_angles,
    level_pitch,
    sample_motion,
    sample_pose,
)


def test_trot_moves_diagonal_legs_together_and_lateral_legs_in_antiphase():
    names = tuple(
        j for _, (swing, flex) in LEG_JOINTS.items() for j in (swing, *[n for n, _ in flex])
    )
    joints = JointTable(names, np.full(len(names), -3.0), np.full(len(names), 3.0))
    spec = GAITS["trot"]
    for phase in np.linspace(0, 2 * math.pi, 7):
        a = gait_angles(joints, offsets=spec.offsets, phase=phase, amplitude=0.4, lift=1.0)
        swing = {leg: a[joints.index(j)] for leg, (j, _) in LEG_JOINTS.items()}
        assert swing["LF"] == pytest.approx(swing["RH"])
        assert swing["LF"] == pytest.approx(-swing["RF"], abs=1e-12)
        # Distal joints flex (negative) only while the leg swings forward.
        for leg, (_, flexors) in LEG_JOINTS.items():
            phi = phase + 2 * math.pi * spec.offsets[leg]
            for joint, _ in flexors:
                value = a[joints.index(joint)]
                assert value <= 0.0
                if math.cos(phi) <= 0:
                    assert value == 0.0


def toy_joints() -> JointTable:
    names = tuple(
        j for _, (swing, flex) in LEG_JOINTS.items() for j in (swing, *[n for n, _ in flex])
    )
    names += (
        "L_1_extend",
        "L_1_bend",
        "Ca_1_extend",
        "Ca_2_bend",
        "C_7_extend",
        "C_7_bend",
        "C_1_extend",
        "C_1_bend",
        "atlas",
        "mandible",
    )
    return JointTable(names, np.full(len(names), -0.3), np.full(len(names), 0.2))


def test_sampled_poses_and_shot_angles_stay_inside_the_joint_ranges():
    joints = toy_joints()
    for seed in range(5):
        pose = sample_pose(joints, np.random.default_rng(seed))
        assert (pose >= joints.lower).all() and (pose <= joints.upper).all()
        motion = sample_motion(joints, np.random.default_rng(seed))
        for t in (0.0, 0.4, 1.3):
            a = motion.angles(t)
            assert (a >= joints.lower).all() and (a <= joints.upper).all()
    np.testing.assert_array_equal(
        sample_pose(joints, np.random.default_rng(7)),
        sample_pose(joints, np.random.default_rng(7)),
    )


def test_shot_root_follows_a_circle_of_radius_speed_over_turn_rate():
    motion = sample_motion(toy_joints(), np.random.default_rng(0))
    motion = ShotMotion(**{**motion.__dict__, "speed_mps": 1.2, "turn_rate": 0.5, "heading0": 0.3})
    xy0, _ = motion.root(0.0)
    np.testing.assert_allclose(xy0, [0.0, 0.0])
    centre = np.array([-math.sin(0.3), math.cos(0.3)]) * (1.2 / 0.5)  # left of the heading
    for t in (0.5, 1.0, 2.0):
        xy, h = motion.root(t)
        assert np.linalg.norm(xy - centre) == pytest.approx(1.2 / 0.5)
        assert h == pytest.approx(0.3 + 0.5 * t)
    straight = ShotMotion(**{**motion.__dict__, "turn_rate": 0.0})
    expected = 2.4 * np.array([math.cos(0.3), math.sin(0.3)])
    np.testing.assert_allclose(straight.root(2.0)[0], expected)


def test_level_pitch_tilts_the_nose_down_when_the_front_paws_are_higher():
    hind = np.array([[-0.5, 0.0, 0.00]])
    front = np.array([[0.2, 0.0, 0.07], [0.2, 0.1, 0.10]])
    pitch = level_pitch(front=front, hind=hind, heading=0.0, limit_deg=30.0)
    assert pitch == pytest.approx(math.asin(0.07 / 0.7))
    # Same scene facing -x: the run is measured along the heading.
    flipped = level_pitch(
        front=front * [-1, 1, 1], hind=hind * [-1, 1, 1], heading=math.pi, limit_deg=30.0
    )
    assert flipped == pytest.approx(pitch)
    assert level_pitch(
        front=front * [1, 1, 40], hind=hind, heading=0.0, limit_deg=20.0
    ) == pytest.approx(math.radians(20.0))
