"""Random body poses of the CMU humanoid: standing, walking and more active poses, every angle
inside the model's joint limits.

Angles are the model's hinge joints (``model.HumanTables.joints`` order), radians. The model's
zero pose is a T-pose with the legs spread 20 degrees; ``STANDING`` brings the legs together and
lets the arms hang. Arms are posed by direction: an upper-arm direction in the torso's frame (y
up, z forward, x the person's left) is turned into the shoulder's three hinge angles by
``arm_angles`` (closed form, one twist angle chosen), so left and right arms are sampled
symmetrically although the model's shoulder axes are not mirror images. Pure NumPy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from animalpose.datasets.generator.dog.motion import JointTable

__all__ = [
    "POSE_KINDS",
    "STANDING",
    "ArmFrames",
    "arm_angles",
    "arm_direction",
    "quat_to_matrix",
    "sample_pose",
    "standing_pose",
]

#: The standing keyframe: hinge angles that differ from 0. Femur ``rz`` undoes the model's 20
#: degree leg spread (its ``lfemur`` / ``rfemur`` body quaternions); the shoulder angles are
#: ``arm_angles`` of arms hanging 10 degrees out from the body with the keyframe twists
#: ``SHOULDER_TWIST`` (found once by least squares, reproduced by the closed form: tested).
STANDING: dict[str, float] = {
    "lfemurrz": -0.349066,
    "rfemurrz": 0.349066,
    "ltibiarx": 0.05,
    "rtibiarx": 0.05,
    "lhumerusrz": 1.202,
    "lhumerusry": 0.298,
    "lhumerusrx": -0.542,
    "rhumerusrz": -1.1,
    "rhumerusry": -0.45,
    "rhumerusrx": -0.579,
    "lradiusrx": 0.15,
    "rradiusrx": 0.15,
}
#: Shoulder ``ry`` (the hinge between the other two, mostly twisting the upper arm) of the
#: standing keyframe, per side; sampled poses vary it a little around these.
SHOULDER_TWIST = {"l": 0.298, "r": -0.45}
#: Hanging arms' abduction (radians out from the body) in ``STANDING``.
STANDING_ABDUCTION = 0.17
#: Pose kinds and their shares of sampled poses.
POSE_KINDS = {"stand": 0.4, "walk": 0.4, "active": 0.2}
#: Noise (1 sigma, radians) of the trunk, neck and head hinges (rx: bend forward, ry: twist,
#: rz: bend sideways) by body, for standing and walking; "active" poses double it.
TRUNK_NOISE = {
    "lowerback": 0.08,
    "upperback": 0.06,
    "thorax": 0.05,
    "lowerneck": 0.12,
    "upperneck": 0.12,
    "head": 0.15,
}


def quat_to_matrix(quat: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of a unit quaternion (w, x, y, z)."""
    w, x, y, z = np.asarray(quat, dtype=np.float64) / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


@dataclass(frozen=True)
class ArmFrames:
    """The fixed rotation (3, 3) of each upper arm's body relative to the torso (the model's
    ``lhumerus`` / ``rhumerus`` body quaternions; the clavicles stay at 0)."""

    left: np.ndarray
    right: np.ndarray


def arm_direction(side: str, *, abduction: float, swing: float) -> np.ndarray:
    """(3,) unit upper-arm direction in the torso frame (x the person's left, y up, z forward):
    hanging, raised ``abduction`` radians out to the side, then swung ``swing`` radians forward
    (negative: backward)."""
    out = 1.0 if side == "l" else -1.0
    d = np.array(
        [
            out * math.sin(abduction),
            -math.cos(abduction) * math.cos(swing),
            math.cos(abduction) * math.sin(swing),
        ]
    )
    return d / np.linalg.norm(d)


def arm_angles(frame: np.ndarray, direction: np.ndarray, twist: float) -> list[np.ndarray]:
    """Shoulder hinge angles (rz, ry, rx) that point the upper arm (its body's -y axis) along
    ``direction`` (torso frame), with ``ry`` = ``twist``: both closed-form solutions.

    The body rotates by frame @ Rz(rz) @ Ry(ry) @ Rx(rx) (MuJoCo applies a body's hinges in
    order, each about the axis moved by the previous ones). With u = frame^T direction, Rx(rx)
    maps -y to (0, -cos rx, -sin rx); Ry(ry) then gives z = -sin rx cos ry = u_z, and Rz(rz)
    turns the (x, y) part onto u's.
    """
    u = np.asarray(frame).T @ np.asarray(direction, dtype=np.float64)
    cb = math.cos(twist)
    s = float(np.clip(-u[2] / cb, -1.0, 1.0)) if abs(cb) > 1e-9 else 0.0
    out = []
    for rx in (math.asin(s), math.pi - math.asin(s)):
        vx, vy = -math.sin(rx) * math.sin(twist), -math.cos(rx)
        rz = math.atan2(u[1], u[0]) - math.atan2(vy, vx)
        rz = (rz + math.pi) % (2 * math.pi) - math.pi
        rx = (rx + math.pi) % (2 * math.pi) - math.pi
        out.append(np.array([rz, twist, rx]))
    return out


def standing_pose(joints: JointTable) -> np.ndarray:
    """(J,) the standing keyframe."""
    angles = np.zeros(len(joints.names))
    for name, value in STANDING.items():
        angles[joints.index(name)] = value
    return joints.clip(angles)


def _set_arm(
    angles: np.ndarray,
    joints: JointTable,
    frames: ArmFrames,
    side: str,
    direction: np.ndarray,
    twist: float,
) -> None:
    """Write the shoulder angles of the in-limit solution nearest the keyframe (else keep)."""
    names = [f"{side}humerus{a}" for a in ("rz", "ry", "rx")]
    idx = [joints.index(n) for n in names]
    frame = frames.left if side == "l" else frames.right
    lo, hi = joints.lower[idx], joints.upper[idx]
    key = np.array([STANDING[n] for n in names])
    best = None
    for sol in arm_angles(frame, direction, twist):
        if np.all(sol >= lo - 1e-9) and np.all(sol <= hi + 1e-9):
            cost = float(np.abs(sol - key).sum())
            if best is None or cost < best[0]:
                best = (cost, sol)
    if best is not None:
        angles[idx] = best[1]


def sample_pose(
    joints: JointTable, frames: ArmFrames, rng: np.random.Generator
) -> tuple[np.ndarray, str]:
    """(J,) random hinge angles inside the limits and the pose kind (``POSE_KINDS``).

    stand: weight on both legs, small hip and knee bends, arms hanging or a little raised,
    elbows bent up to 60 degrees. walk: a gait phase: thighs swing in opposition (up to 30
    degrees), the swinging leg's knee bends, arms swing opposite to the legs. active: wider
    ranges (arms raised up to horizontal and beyond, deep hip and knee bends, a bent trunk).
    """
    kinds = list(POSE_KINDS)
    kind = kinds[int(rng.choice(len(kinds), p=list(POSE_KINDS.values())))]
    angles = standing_pose(joints)
    scale = 2.0 if kind == "active" else 1.0
    for body, sigma in TRUNK_NOISE.items():
        for axis in ("rx", "ry", "rz"):
            angles[joints.index(body + axis)] = rng.normal(0.0, sigma * scale)
    for side in "lr":
        angles[joints.index(f"{side}femurry")] = rng.normal(0.0, 0.1 * scale)
        angles[joints.index(f"{side}femurrz")] += rng.normal(0.0, 0.05 * scale)
        angles[joints.index(f"{side}footrx")] = rng.normal(0.0, 0.1)
        angles[joints.index(f"{side}footrz")] = rng.normal(0.0, 0.1)
        angles[joints.index(f"{side}wristry")] = rng.uniform(
            *joints_range(joints, f"{side}wristry")
        )
        angles[joints.index(f"{side}handrx")] = rng.normal(0.0, 0.3)
        angles[joints.index(f"{side}fingersrx")] = rng.uniform(0.0, 1.2)
    if kind == "stand":
        legs = {side: (rng.normal(0.0, 0.12), abs(rng.normal(0.0, 0.15))) for side in "lr"}
        arms = {
            side: (rng.uniform(0.05, 0.5), rng.normal(0.0, 0.3), rng.uniform(0.0, 1.0))
            for side in "lr"
        }
    elif kind == "walk":
        phase, amp = rng.uniform(0.0, 2 * math.pi), rng.uniform(0.15, 0.5)
        legs, arms = {}, {}
        for side, shift in (("l", 0.0), ("r", math.pi)):
            swing = amp * math.sin(phase + shift)  # > 0: thigh forward
            knee = 0.05 + 1.6 * amp * max(0.0, math.cos(phase + shift)) + abs(rng.normal(0, 0.05))
            legs[side] = (-swing, knee)
            arms[side] = (rng.uniform(0.05, 0.25), -0.8 * swing, rng.uniform(0.1, 0.8))
    else:
        legs = {side: (rng.uniform(-1.3, 0.3), rng.uniform(0.0, 1.6)) for side in "lr"}
        arms = {
            side: (rng.uniform(0.0, 1.7), rng.uniform(-0.6, 1.7), rng.uniform(0.0, 2.3))
            for side in "lr"
        }
        angles[joints.index("lowerbackrx")] = rng.uniform(-0.1, 0.6)
    for side in "lr":
        hip, knee = legs[side]
        angles[joints.index(f"{side}femurrx")] = hip  # negative: thigh forward
        angles[joints.index(f"{side}tibiarx")] = knee  # positive: knee bent
        abduction, swing, elbow = arms[side]
        direction = arm_direction(side, abduction=abduction, swing=swing)
        twist = SHOULDER_TWIST[side] + rng.normal(0.0, 0.15)
        _set_arm(angles, joints, frames, side, direction, twist)
        angles[joints.index(f"{side}radiusrx")] = elbow
    return joints.clip(angles), kind


def joints_range(joints: JointTable, name: str) -> tuple[float, float]:
    """(lower, upper) limits of joint ``name``."""
    i = joints.index(name)
    return float(joints.lower[i]), float(joints.upper[i])
