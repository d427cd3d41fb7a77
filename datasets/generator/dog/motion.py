"""How the dog moves: hinge-joint table, gaits, still poses, a shot's smooth motion, levelling.

The standing keyframe (every hinge at 0, ``qpos0``) is the skin's bind pose; the dog faces +x
with z up, its left side at +y. Angles in radians, times in seconds, distances in metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "JointTable",
    "ShotMotion",
    "level_pitch",
    "sample_motion",
    "sample_pose",
]


@dataclass(frozen=True)
class JointTable:
    """The model's hinge joints in model order: names, limits (radians)."""

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray

    def index(self, name: str) -> int:
        return self.names.index(name)

    def select(self, prefix: str, suffix: str = "") -> np.ndarray:
        """Indices of the joints whose name starts with ``prefix`` and ends with ``suffix``."""
        return np.array(
            [i for i, n in enumerate(self.names) if n.startswith(prefix) and n.endswith(suffix)],
            dtype=int,
        )

    def clip(self, angles: np.ndarray) -> np.ndarray:
        return np.clip(angles, self.lower, self.upper)


#: Per-joint pose noise around the standing keyframe, by joint-name prefix (first match wins),
#: degrees (1 sigma). Chosen by eye on rendered stills: varied but anatomically plausible.
POSE_NOISE_DEG: dict[str, float] = {
    "L_": 2.0,
    "C_": 4.0,
    "atlas": 6.0,
    "mandible": 3.0,
    "Ca_": 3.0,
    "scapula": 3.0,
    "shoulder": 5.0,
    "elbow": 5.0,
    "wrist": 6.0,
    "finger": 8.0,
    "hip": 5.0,
    "knee": 5.0,
    "ankle": 5.0,
    "toe": 8.0,
}

#: Leg channels of the gait: per leg, (swing joint, [(flexing joint, flexion gain)]). Swing
#: angle = -amplitude * sin(phase) (negative hinge angles bring the leg forward); during the
#: forward swing (cos(phase) > 0) the distal joints flex by -gain * lift * amplitude *
#: cos(phase)^1.5. Signs read off renders of each joint at its range limits.
LEG_JOINTS: dict[str, tuple[str, tuple[tuple[str, float], ...]]] = {
    "LF": ("shoulder_L_extend", (("elbow_L", 0.5), ("wrist_L", 1.6))),
    "RF": ("shoulder_R_extend", (("elbow_R", 0.5), ("wrist_R", 1.6))),
    "LH": ("hip_L_extend", (("knee_L", 1.1), ("ankle_L", 0.8))),
    "RH": ("hip_R_extend", (("knee_R", 1.1), ("ankle_R", 0.8))),
}


@dataclass(frozen=True)
class GaitSpec:
    """A symmetric gait: leg phase offsets (fraction of a cycle), stride frequency (Hz), swing
    amplitude (degrees), stride length (m, body moves this far per cycle at full amplitude)."""

    offsets: dict[str, float]
    frequency_hz: tuple[float, float]
    amplitude_deg: tuple[float, float]
    stride_m: tuple[float, float]


#: Walk = lateral sequence (LH, LF, RH, RF a quarter cycle apart); trot = diagonal pairs.
GAITS: dict[str, GaitSpec] = {
    "walk": GaitSpec(
        {"LH": 0.0, "LF": 0.25, "RH": 0.5, "RF": 0.75}, (0.8, 1.3), (14.0, 22.0), (0.5, 0.8)
    ),
    "trot": GaitSpec(
        {"LF": 0.0, "RH": 0.0, "RF": 0.5, "LH": 0.5}, (1.4, 2.0), (20.0, 30.0), (0.8, 1.2)
    ),
}


def gait_angles(
    joints: JointTable, *, offsets: dict[str, float], phase: float, amplitude: float, lift: float
) -> np.ndarray:
    """(J,) leg hinge angles (radians, other joints 0) at gait ``phase`` (radians)."""
    out = np.zeros(len(joints.names))
    for leg, (swing, flexors) in LEG_JOINTS.items():
        phi = phase + 2.0 * math.pi * offsets[leg]
        out[joints.index(swing)] = -amplitude * math.sin(phi)
        up = max(0.0, math.cos(phi)) ** 1.5
        for joint, gain in flexors:
            out[joints.index(joint)] = -gain * lift * amplitude * up
    return out


def _noise_scale(joints: JointTable) -> np.ndarray:
    scale = np.zeros(len(joints.names))
    for i, name in enumerate(joints.names):
        for prefix, deg in POSE_NOISE_DEG.items():
            if name.startswith(prefix):
                scale[i] = math.radians(deg)
                break
    return scale


def _posture(joints: JointTable, rng: np.random.Generator) -> np.ndarray:
    """Structured head/neck/spine/tail posture (radians), legs 0."""
    out = np.zeros(len(joints.names))
    deg = math.radians
    # Neck pitch: positive extends the head down; sometimes sniffing the ground.
    pitch = rng.normal(6.0, 14.0) if rng.random() > 0.12 else rng.uniform(35.0, 70.0)
    extend, bend = joints.select("C_", "extend"), joints.select("C_", "bend")
    out[extend] = deg(pitch) / len(extend)
    out[bend] = deg(rng.normal(0.0, 22.0)) / len(bend)
    out[joints.index("atlas")] = deg(rng.normal(4.0, 8.0))
    # Jaw: the model's mouth rests at -11 degrees (springref); open (panting) one time in five.
    out[joints.index("mandible")] = deg(
        rng.uniform(0.0, 15.0) if rng.random() < 0.2 else rng.uniform(-15.0, -7.0)
    )
    # Tail: a common curl per vertebra (up/down, sideways).
    out[joints.select("Ca_", "extend")] = deg(rng.normal(2.0, 6.0))
    out[joints.select("Ca_", "bend")] = deg(rng.normal(0.0, 4.0))
    # Spine: a little flexion and lateral bend spread over the lumbar vertebrae.
    out[joints.select("L_", "extend")] = deg(rng.normal(0.0, 2.5))
    out[joints.select("L_", "bend")] = deg(rng.normal(0.0, 3.0))
    return out


def sample_pose(joints: JointTable, rng: np.random.Generator) -> np.ndarray:
    """(J,) hinge angles for a still: a random gait phase (or standing) plus head/neck/spine/tail
    posture and per-joint noise, clipped to the joint ranges."""
    name = "walk" if rng.random() < 0.55 else "trot"
    spec = GAITS[name]
    amplitude = math.radians(rng.uniform(*spec.amplitude_deg)) * rng.uniform(0.0, 1.2)
    legs = gait_angles(
        joints,
        offsets=spec.offsets,
        phase=rng.uniform(0.0, 2.0 * math.pi),
        amplitude=amplitude,
        lift=rng.uniform(0.6, 1.2),
    )
    noise = rng.normal(size=len(joints.names)) * _noise_scale(joints)
    return joints.clip(legs + _posture(joints, rng) + noise)


@dataclass(frozen=True)
class ShotMotion:
    """Smooth motion of a shot. ``angles(t)`` (J,) radians and ``root(t)`` ((x, y), heading)."""

    joints: JointTable
    base: np.ndarray  # (J,) static posture
    offsets: dict[str, float]
    frequency_hz: float
    amplitude: float  # swing amplitude, radians (0 = standing still)
    lift: float
    phase0: float
    speed_mps: float
    heading0: float
    turn_rate: float  # rad/s
    head_yaw: tuple[float, float, float]  # amplitude (rad), frequency (Hz), phase
    head_pitch: tuple[float, float, float]
    tail_wag: tuple[float, float, float]

    def angles(self, t: float) -> np.ndarray:
        j = self.joints
        phase = self.phase0 + 2.0 * math.pi * self.frequency_hz * t
        out = self.base + gait_angles(
            j, offsets=self.offsets, phase=phase, amplitude=self.amplitude, lift=self.lift
        )
        bend, extend = j.select("C_", "bend"), j.select("C_", "extend")
        a, f, p = self.head_yaw
        out[bend] += a * math.sin(2.0 * math.pi * f * t + p) / len(bend)
        a, f, p = self.head_pitch
        out[extend] += a * math.sin(2.0 * math.pi * f * t + p) / len(extend)
        a, f, p = self.tail_wag
        out[j.select("Ca_", "bend")] += a * math.sin(2.0 * math.pi * f * t + p)
        # The back bobs with the stride: a small lumbar extension at twice the stride frequency.
        out[j.select("L_", "extend")] += 0.08 * self.amplitude * math.sin(2.0 * phase)
        return j.clip(out)

    def root(self, t: float) -> tuple[np.ndarray, float]:
        """((x, y) position in metres, heading in radians) at time ``t`` seconds."""
        h = self.heading0 + self.turn_rate * t
        if abs(self.turn_rate) < 1e-6:
            xy = self.speed_mps * t * np.array([math.cos(h), math.sin(h)])
        else:
            r = self.speed_mps / self.turn_rate
            xy = r * np.array(
                [math.sin(h) - math.sin(self.heading0), math.cos(self.heading0) - math.cos(h)]
            )
        return xy, h


def sample_motion(joints: JointTable, rng: np.random.Generator) -> ShotMotion:
    """A shot's motion: walk or trot at a random speed, sometimes standing (head/tail only)."""
    r = rng.random()
    name = "walk" if r < 0.5 else "trot"
    spec = GAITS[name]
    idle = r > 0.88
    scale = 0.0 if idle else rng.uniform(0.7, 1.1)
    freq = rng.uniform(*spec.frequency_hz)
    amplitude = math.radians(rng.uniform(*spec.amplitude_deg)) * scale
    noise = rng.normal(size=len(joints.names)) * _noise_scale(joints) * 0.5
    rad = math.radians
    return ShotMotion(
        joints=joints,
        base=_posture(joints, rng) + noise,
        offsets=spec.offsets,
        frequency_hz=freq,
        amplitude=amplitude,
        lift=rng.uniform(0.7, 1.1),
        phase0=rng.uniform(0.0, 2.0 * math.pi),
        speed_mps=rng.uniform(*spec.stride_m) * freq * scale,
        heading0=rng.uniform(-math.pi, math.pi),
        turn_rate=rad(rng.normal(0.0, 8.0)),
        head_yaw=(rad(rng.uniform(0.0, 25.0)), rng.uniform(0.1, 0.5), rng.uniform(0, 2 * math.pi)),
        head_pitch=(rad(rng.uniform(0.0, 10.0)), rng.uniform(0.1, 0.4), rng.uniform(0, 6.3)),
        tail_wag=(rad(rng.uniform(0.0, 4.0)), rng.uniform(1.0, 2.5), rng.uniform(0, 6.3)),
    )


def level_pitch(*, front: np.ndarray, hind: np.ndarray, heading: float, limit_deg: float) -> float:
    """Pitch (radians, positive = nose down about the dog's left axis) that brings the lowest
    front and hind paw points (each (N, 3)) to the same height."""
    fwd = np.array([math.cos(heading), math.sin(heading)])
    f = front[np.argmin(front[:, 2])]
    h = hind[np.argmin(hind[:, 2])]
    run = float((f[:2] - h[:2]) @ fwd)
    if run < 1e-3:
        return 0.0
    s = np.clip((f[2] - h[2]) / run, -1.0, 1.0)
    return float(np.clip(math.asin(s), -math.radians(limit_deg), math.radians(limit_deg)))
