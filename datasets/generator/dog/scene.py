"""What the 3-D dog does in a frame: pose, gait, shape, camera, keypoints and their visibility.

Pure NumPy. The MuJoCo side (model, forward kinematics, skinning, OpenGL) lives in
``dog_render.py``, which hands the arrays named here (joint ranges, body positions, skin vertices,
depth buffer) to these functions.

Model facts (dm_control 1.0.50 ``suite/dog.xml``): the standing keyframe is ``qpos0`` (every hinge
at 0) and is also the bind pose of the skin. The dog faces +x with z up, so its LEFT side is +y:
the bodies and geoms named ``*_L`` sit at +y. Units are metres and radians.

Keypoints (animalpose.datasets.keypoints.ANIMAL18, model order; the reference's name, the
anatomical point, and where its 3-D position comes from; ``*`` is ``L`` for left, ``R`` right):

| slot    | name                   | anatomy                 | 3-D source                          |
| ------- | ---------------------- | ----------------------- | ----------------------------------- |
| 0, 1    | left/right_eye         | eye                     | centre of geom ``pupil_*``          |
| 2       | chin                   | front-bottom of the jaw | one skin vertex bound to ``jaw``    |
| 3, 4    | left/right_front_hoof  | front paw               | centroid of the skin vertices bound |
|         |                        |                         | to ``finger_*``                     |
| 5, 6    | left/right_back_hoof   | hind paw                | same, bound to ``toe_*``            |
| 7       | hip                    | root of the tail        | origin of body ``Ca_1``             |
| 8, 9    | left/right_front_knee  | carpus (wrist)          | origin of body ``hand_*``           |
| 10, 11  | left/right_back_knee   | hock (tarsus)           | origin of body ``foot_*``           |
| 12, 13  | left/right_shoulder    | shoulder joint          | origin of body ``upper_arm_*``      |
| 14, 15  | left/right_front_elbow | elbow                   | origin of body ``lower_arm_*``      |
| 16, 17  | left/right_back_elbow  | stifle (knee)           | origin of body ``lower_leg_*``      |

Body origins are the joints between a body and its parent (wrist, ankle, shoulder, elbow, knee).
The chin vertex is the midline (|y| < 6 mm) vertex with jaw weight > 0.9 that lies furthest along
(x - z), the front-bottom corner of the mandible (vertex 12571 of the dm_control skin). "Bound to"
means skinning weight > 0.5. Joint keypoints lie inside the body, so visibility compares the
keypoint's depth with the depth buffer using a tolerance of about the local body radius
(``KeypointModel.tolerance``, ``visibility``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "BREEDS",
    "KEYPOINT_SOURCES",
    "Breed",
    "CameraPath",
    "CameraView",
    "FrameGeometry",
    "GirthModel",
    "JointTable",
    "KeypointModel",
    "PinholeCamera",
    "ShapeSample",
    "ShotMotion",
    "farthest_point_subsample",
    "fit_camera",
    "free_camera_frame",
    "get_breed",
    "ground_depth",
    "level_pitch",
    "sample_camera_path",
    "sample_motion",
    "sample_pose",
    "sample_shape",
    "sample_view",
    "visibility",
]

# --- keypoints ------------------------------------------------------------------------------------

#: ANIMAL18 keypoint -> (kind, model element). Kinds: "geom" (geom centre), "body" (body origin,
#: i.e. the joint there), "jaw_vertex" (the chin rule above), "paw" (centroid of the skin
#: vertices bound to that body). See the table in the module docstring.
KEYPOINT_SOURCES: dict[str, tuple[str, str]] = {
    "left_eye": ("geom", "pupil_L"),
    "right_eye": ("geom", "pupil_R"),
    "chin": ("jaw_vertex", "jaw"),
    "left_front_hoof": ("paw", "finger_L"),
    "right_front_hoof": ("paw", "finger_R"),
    "left_back_hoof": ("paw", "toe_L"),
    "right_back_hoof": ("paw", "toe_R"),
    "hip": ("body", "Ca_1"),
    "left_front_knee": ("body", "hand_L"),
    "right_front_knee": ("body", "hand_R"),
    "left_back_knee": ("body", "foot_L"),
    "right_back_knee": ("body", "foot_R"),
    "left_shoulder": ("body", "upper_arm_L"),
    "right_shoulder": ("body", "upper_arm_R"),
    "left_front_elbow": ("body", "lower_arm_L"),
    "right_front_elbow": ("body", "lower_arm_R"),
    "left_back_elbow": ("body", "lower_leg_L"),
    "right_back_elbow": ("body", "lower_leg_R"),
}
#: A skin vertex is "bound to" a bone when its skinning weight exceeds this.
BOUND_WEIGHT = 0.5
#: Chin rule: midline half-width (m) and minimum jaw weight.
CHIN_MIDLINE_M = 0.006
CHIN_JAW_WEIGHT = 0.9
#: Keypoints on the body's midline (hip, chin) lie deep under the flank when seen from the side:
#: their radius is the body's half-width there (largest |y| of the skin vertices within
#: LATERAL_WINDOW_M in x and z), not the distance to the nearest surface above them.
MIDLINE_M = 0.01
LATERAL_WINDOW_M = 0.02
#: Visibility tolerance = scale x (distance from the keypoint to the nearest skin vertex in the
#: bind pose, times the largest girth factor) + margin. The near surface of a limb lies about one
#: radius in front of a joint centre; 1.5 leaves room for elliptic cross-sections, the margin
#: covers depth quantisation and skinning bulges. Checked on overlay images (side views: near
#: limbs visible, far limbs hidden behind the trunk).
VISIBILITY_RADIUS_SCALE = 1.5
VISIBILITY_MARGIN_M = 0.01


@dataclass(frozen=True)
class KeypointModel:
    """Index tables that turn a posed model into the 18 keypoints, plus per-keypoint radii.

    body_rows / body_ids: keypoint rows read from body origins (``xpos``) and their body ids.
    geom_rows / geom_ids: rows read from geom centres (``geom_xpos``).
    vertex_rows / vertex_ids: rows read from one skin vertex.
    paw_rows / paw_vertices: rows averaged over a set of skin vertices (one index array each).
    radius: (18,) metres, the distance from each keypoint to the nearest skin vertex in the bind
        pose (midline keypoints: the body's half-width there).
    """

    body_rows: np.ndarray
    body_ids: np.ndarray
    geom_rows: np.ndarray
    geom_ids: np.ndarray
    vertex_rows: np.ndarray
    vertex_ids: np.ndarray
    paw_rows: tuple[int, ...]
    paw_vertices: tuple[np.ndarray, ...]
    radius: np.ndarray

    @classmethod
    def build(
        cls,
        *,
        keypoint_names: tuple[str, ...],
        body_names: list[str],
        geom_names: list[str],
        bone_names: list[str],
        bind_vertices: np.ndarray,
        bone_weights: np.ndarray,
        bind_xpos: np.ndarray,
        bind_geom_xpos: np.ndarray,
    ) -> KeypointModel:
        """Resolve ``KEYPOINT_SOURCES`` against a model.

        Args:
            keypoint_names: model order (ANIMAL18.keypoints).
            body_names, geom_names: names by id.
            bone_names: body name of each skin bone (B,).
            bind_vertices: (V, 3) skin vertices in the bind pose.
            bone_weights: (V, B) skinning weights.
            bind_xpos, bind_geom_xpos: body origins / geom centres in the bind pose.
        """
        rows: dict[str, list] = {"body": [], "geom": [], "vertex": [], "paw": []}
        ids: dict[str, list] = {"body": [], "geom": [], "vertex": [], "paw": []}
        bind_points = np.zeros((len(keypoint_names), 3))
        for k, name in enumerate(keypoint_names):
            kind, element = KEYPOINT_SOURCES[name]
            if kind == "body":
                rows["body"].append(k)
                ids["body"].append(body_names.index(element))
                bind_points[k] = bind_xpos[ids["body"][-1]]
            elif kind == "geom":
                rows["geom"].append(k)
                ids["geom"].append(geom_names.index(element))
                bind_points[k] = bind_geom_xpos[ids["geom"][-1]]
            elif kind == "jaw_vertex":
                w = bone_weights[:, bone_names.index(element)]
                v = bind_vertices
                cand = np.flatnonzero((w > CHIN_JAW_WEIGHT) & (np.abs(v[:, 1]) < CHIN_MIDLINE_M))
                if len(cand) == 0:
                    raise ValueError(f"no midline skin vertex bound to {element!r} for the chin")
                best = cand[np.argmax(v[cand, 0] - v[cand, 2])]
                rows["vertex"].append(k)
                ids["vertex"].append(int(best))
                bind_points[k] = v[best]
            elif kind == "paw":
                sel = np.flatnonzero(bone_weights[:, bone_names.index(element)] > BOUND_WEIGHT)
                if len(sel) == 0:
                    raise ValueError(f"no skin vertex bound to {element!r} for {name}")
                rows["paw"].append(k)
                ids["paw"].append(sel)
                bind_points[k] = bind_vertices[sel].mean(axis=0)
            else:
                raise ValueError(f"unknown keypoint source kind {kind!r} for {name}")
        d2 = ((bind_points[:, None, :] - bind_vertices[None, ::4, :]) ** 2).sum(-1)
        radius = np.sqrt(d2.min(axis=1))
        for k, p in enumerate(bind_points):
            if abs(p[1]) < MIDLINE_M:  # hip, chin: seen from the side through the flank
                near = np.all(np.abs(bind_vertices[:, [0, 2]] - p[[0, 2]]) < LATERAL_WINDOW_M, 1)
                if near.any():
                    radius[k] = max(radius[k], float(np.abs(bind_vertices[near, 1]).max()))
        return cls(
            body_rows=np.array(rows["body"], dtype=np.int64),
            body_ids=np.array(ids["body"], dtype=np.int64),
            geom_rows=np.array(rows["geom"], dtype=np.int64),
            geom_ids=np.array(ids["geom"], dtype=np.int64),
            vertex_rows=np.array(rows["vertex"], dtype=np.int64),
            vertex_ids=np.array(ids["vertex"], dtype=np.int64),
            paw_rows=tuple(rows["paw"]),
            paw_vertices=tuple(ids["paw"]),
            radius=radius,
        )

    def locate(self, xpos: np.ndarray, geom_xpos: np.ndarray, skin: np.ndarray) -> np.ndarray:
        """(18, 3) world positions from body origins, geom centres and the posed skin (V, 3)."""
        out = np.zeros((len(self.radius), 3))
        out[self.body_rows] = xpos[self.body_ids]
        out[self.geom_rows] = geom_xpos[self.geom_ids]
        out[self.vertex_rows] = skin[self.vertex_ids]
        for row, verts in zip(self.paw_rows, self.paw_vertices):
            out[row] = skin[verts].mean(axis=0)
        return out

    def tolerance(self, girth: float) -> np.ndarray:
        """(18,) depth tolerance in metres for ``visibility`` at a given largest girth factor."""
        return VISIBILITY_RADIUS_SCALE * self.radius * max(girth, 1.0) + VISIBILITY_MARGIN_M


# --- camera ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PinholeCamera:
    """The renderer's perspective camera in the 0-based pixel-centre convention.

    rotation: (3, 3) world -> camera, rows = right, up, forward (camera looks along +forward).
    position: (3,) world position. focal: pixels per unit tangent. (cx, cy): principal point in
    pixels (pixel i covers [i - 0.5, i + 0.5]). Depth is the distance along ``forward``, as in the
    OpenGL depth buffer.
    """

    position: np.ndarray
    rotation: np.ndarray
    focal: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_frustum(
        cls,
        *,
        position: np.ndarray,
        forward: np.ndarray,
        up: np.ndarray,
        near: float,
        bottom: float,
        top: float,
        center: float,
        width: int,
        height: int,
    ) -> PinholeCamera:
        """From MuJoCo's ``mjvGLCamera``: ``mjr_render`` calls glFrustum with the given vertical
        extent [bottom, top] at distance ``near`` and a horizontal half-width chosen to match the
        viewport aspect, centred on ``center``; image rows are flipped after reading."""
        fwd = np.asarray(forward, dtype=np.float64)
        upv = np.asarray(up, dtype=np.float64)
        right = np.cross(fwd, upv)
        half_h = 0.5 * (top - bottom)
        half_w = half_h * width / height
        focal = near * height / (top - bottom)
        cx = width / 2.0 - 0.5 - center / half_w * width / 2.0
        cy = height / 2.0 - 0.5 + 0.5 * (top + bottom) / half_h * height / 2.0
        return cls(
            position=np.asarray(position, dtype=np.float64),
            rotation=np.stack([right, upv, fwd]),
            focal=float(focal),
            cx=float(cx),
            cy=float(cy),
            width=width,
            height=height,
        )

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) world points -> ((N, 2) pixel x, y; (N,) depth along the view axis, metres)."""
        cam = (np.asarray(points, dtype=np.float64) - self.position) @ self.rotation.T
        z = cam[:, 2]
        safe = np.where(np.abs(z) > 1e-9, z, 1e-9)
        x = self.cx + self.focal * cam[:, 0] / safe
        y = self.cy - self.focal * cam[:, 1] / safe
        return np.stack([x, y], axis=1), z


def ground_depth(
    camera: PinholeCamera, *, ground_z: float, centre: np.ndarray, half_size: float
) -> np.ndarray:
    """(H, W) depth (m, along the view axis) of the ground plane z = ``ground_z`` at each pixel
    centre, inf where the ray misses the plane's square of half-side ``half_size`` around
    ``centre`` (x, y)."""
    xs = (np.arange(camera.width) - camera.cx) / camera.focal
    ys = -(np.arange(camera.height) - camera.cy) / camera.focal
    rays = np.stack(np.broadcast_arrays(xs[None, :], ys[:, None], 1.0), axis=-1)  # camera frame
    world = rays @ camera.rotation  # (H, W, 3) directions with unit forward component
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (ground_z - camera.position[2]) / world[..., 2]
    hit = camera.position[:2] + t[..., None] * world[..., :2]
    ok = (t > 0) & np.all(np.abs(hit - np.asarray(centre)[:2]) <= half_size, axis=-1)
    return np.where(ok, t, np.inf)


@dataclass(frozen=True)
class FrameGeometry:
    """What a rendered frame is made of, for checks and masks.

    depth: (H, W) metres along the view axis (the far plane where nothing was drawn);
    dog: (H, W) bool, pixels showing the dog (nearer than the ground and the far plane);
    camera: the projection used; points: (18, 3) world keypoints; tolerance: (18,) metres.
    """

    depth: np.ndarray
    dog: np.ndarray
    camera: PinholeCamera
    points: np.ndarray
    tolerance: np.ndarray


def free_camera_frame(azimuth_deg: float, elevation_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(forward, up) unit vectors of MuJoCo's free camera (``mjv_updateCamera`` conventions:
    azimuth about +z from +x, elevation positive looking up)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    forward = np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])
    up = np.array([-math.sin(el) * math.cos(az), -math.sin(el) * math.sin(az), math.cos(el)])
    return forward, up


@dataclass(frozen=True)
class CameraView:
    """Where a still's camera looks from. azimuth_deg: any; elevation_deg: how far the camera
    looks *down* (-10 = slightly up from below, 40 = from above); fovy_deg: vertical field of view;
    fill: the dog's half-extent as a fraction of the frame's half-extent (> 1 crops it);
    shift: (2,) where the dog's centre lands, as a fraction of the half frame (x right, y up)."""

    azimuth_deg: float
    elevation_deg: float
    fovy_deg: float
    fill: float
    shift: tuple[float, float]


#: Camera sampling ranges (brief: elevation -10..40 deg, fovy 25..50 deg).
ELEVATION_RANGE_DEG = (-10.0, 40.0)
FOVY_RANGE_DEG = (25.0, 50.0)
#: Fraction of stills whose dog is larger than the frame (partly cropped).
CROPPED_FRACTION = 0.12
#: Lowest camera height above the ground (m), so low views stay above the ground plane.
MIN_CAMERA_HEIGHT_M = 0.08


def sample_view(rng: np.random.Generator) -> CameraView:
    """A random still camera: any azimuth, elevation mostly a little above the dog (footage is
    shot from about the animal's height or above), the dog filling 45-92 % of the frame, and
    CROPPED_FRACTION of the time larger than the frame."""
    elevation = float(np.clip(rng.normal(12.0, 11.0), *ELEVATION_RANGE_DEG))
    if rng.random() < CROPPED_FRACTION:
        fill = float(rng.uniform(1.0, 1.35))
        limit = 0.35
    else:
        fill = float(rng.uniform(0.45, 0.92))
        limit = 0.9 * (1.0 - fill)
    return CameraView(
        azimuth_deg=float(rng.uniform(0.0, 360.0)),
        elevation_deg=elevation,
        fovy_deg=float(rng.uniform(*FOVY_RANGE_DEG)),
        fill=fill,
        shift=(float(rng.uniform(-limit, limit)), float(rng.uniform(-limit, limit))),
    )


def fit_camera(
    *, view: CameraView, points: np.ndarray, aspect: float, ground_z: float
) -> tuple[np.ndarray, float, float]:
    """Free-camera (lookat (3,), distance, MuJoCo elevation in degrees) that shows ``points``
    (N, 3) at ``view.fill`` of the frame, shifted by ``view.shift``.

    With the lookat at the points' box centre c, a point p projects inside fill x the half-frame
    when distance >= |x_p| / (fill tan(fovx/2)) - z_p (x_p, z_p: its offsets along the camera's
    right and forward axes), and likewise for y: the smallest such distance is a maximum over
    points. The elevation is raised where needed to keep the camera ``MIN_CAMERA_HEIGHT_M`` above
    ``ground_z``.
    """
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = 0.5 * (lo + hi)
    tan_y = math.tan(math.radians(view.fovy_deg) / 2.0)
    tan_x = tan_y * aspect
    elevation = -view.elevation_deg
    for _ in range(8):
        forward, up = free_camera_frame(view.azimuth_deg, elevation)
        right = np.cross(forward, up)
        rel = points - centre
        need = (
            np.maximum(
                np.abs(rel @ right) / (view.fill * tan_x), np.abs(rel @ up) / (view.fill * tan_y)
            )
            - rel @ forward
        )
        distance = float(max(need.max(), 1e-3))
        height = centre[2] - distance * forward[2] - ground_z
        if height >= MIN_CAMERA_HEIGHT_M:
            break
        # Raise the camera: look down a little more.
        elevation -= 4.0
    lookat = (
        centre - view.shift[0] * distance * tan_x * right - view.shift[1] * distance * tan_y * up
    )
    return lookat, distance, elevation


# --- joints, poses, gaits -------------------------------------------------------------------------


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


@dataclass(frozen=True)
class CameraPath:
    """A shot's smooth camera: a start view, orbit/tilt/zoom rates and how closely the lookat
    follows the dog (1 = tracks it, 0 = fixed camera)."""

    view: CameraView
    azimuth_rate: float  # deg/s
    elevation_rate: float  # deg/s
    zoom_rate: float  # log distance per second
    follow: float


def sample_camera_path(rng: np.random.Generator) -> CameraPath:
    view = sample_view(rng)
    if view.fill > 1.0:  # shots keep the whole dog in view at the start
        view = CameraView(
            view.azimuth_deg,
            view.elevation_deg,
            view.fovy_deg,
            float(rng.uniform(0.55, 0.8)),
            (0.0, 0.0),
        )
    return CameraPath(
        view=view,
        azimuth_rate=float(rng.normal(0.0, 12.0)),
        elevation_rate=float(rng.normal(0.0, 2.0)),
        zoom_rate=float(rng.uniform(-0.12, 0.12)),
        follow=float(rng.uniform(0.7, 1.0)),
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


# --- shape ----------------------------------------------------------------------------------------

#: Body chains whose ``body_pos`` (offset from the parent) is scaled, by shape factor.
SHAPE_CHAINS: dict[str, tuple[str, ...]] = {
    "front_leg": (
        "lower_arm_L",
        "hand_anchor_L",
        "finger_L",
        "lower_arm_R",
        "hand_anchor_R",
        "finger_R",
    ),
    "hind_leg": (
        "lower_leg_L",
        "foot_L",
        "foot_anchor_L",
        "lower_leg_R",
        "foot_R",
        "foot_anchor_R",
    ),
    "neck": ("C_6", "C_5", "C_4", "C_3", "C_2", "C_1", "skull"),
    "lumbar": ("L_2", "L_3", "L_4", "L_5", "L_6", "L_7", "pelvis"),
    "tail": tuple(f"Ca_{i}" for i in range(2, 22)),
}
#: Girth groups: skin bone name prefix -> girth factor name (first match; others keep 1).
GIRTH_GROUPS: dict[str, str] = {
    "torso": "trunk",
    "L_": "trunk",
    "pelvis": "trunk",
    "scapula": "trunk",
    "C_": "neck",
    "Ca_": "tail",
    "upper_": "leg",
    "lower_": "leg",
}


@dataclass(frozen=True)
class ShapeSample:
    """Length factors per ``SHAPE_CHAINS`` entry and girth factors per ``GIRTH_GROUPS`` value."""

    lengths: dict[str, float]
    girths: dict[str, float]


@dataclass(frozen=True)
class Breed:
    """Uniform ranges (low, high) of one kind of dog's shape factors: ``leg`` scales both leg
    chains (each then jittered by +-4 %), ``neck``/``lumbar``/``tail`` the other
    ``SHAPE_CHAINS``, the ``*_girth`` ranges the ``GIRTH_GROUPS`` factors. 1 is the model's own
    proportion."""

    leg: tuple[float, float]
    neck: tuple[float, float]
    lumbar: tuple[float, float]
    tail: tuple[float, float]
    trunk_girth: tuple[float, float]
    neck_girth: tuple[float, float]
    leg_girth: tuple[float, float]
    tail_girth: tuple[float, float]

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            low, high = getattr(self, f.name)
            if not 0.2 <= low <= high <= 3.0:
                raise ValueError(
                    f"Breed.{f.name} must be a range inside [0.2, 3], got {(low, high)}"
                )

    def mean_leg(self) -> float:
        return 0.5 * (self.leg[0] + self.leg[1])


#: Kinds of dog, by name. "mixed" (every source style, and the target of dogshift-v1) draws each
#: dog from wide ranges around the model's proportions. "basset" is a breed outside them: legs
#: half as long, a long back, a heavy trunk; the target dogs of dogshift-v2, a shift of shape that
#: no image augmentation of the source undoes (docs/generator.md).
BREEDS: dict[str, Breed] = {
    "mixed": Breed(
        leg=(0.85, 1.35),
        neck=(0.8, 1.3),
        lumbar=(0.85, 1.2),
        tail=(0.6, 1.3),
        trunk_girth=(0.88, 1.2),
        neck_girth=(0.9, 1.2),
        leg_girth=(0.85, 1.2),
        tail_girth=(0.8, 1.8),
    ),
    "basset": Breed(
        leg=(0.5, 0.62),
        neck=(0.75, 0.95),
        lumbar=(1.3, 1.5),
        tail=(0.6, 0.9),
        trunk_girth=(1.25, 1.4),
        neck_girth=(1.2, 1.35),
        leg_girth=(1.25, 1.45),
        tail_girth=(1.2, 1.6),
    ),
}


def get_breed(name: str) -> Breed:
    """``BREEDS[name]``; ValueError listing the names otherwise."""
    try:
        return BREEDS[name]
    except KeyError:
        raise ValueError(f"unknown breed {name!r}; known: {sorted(BREEDS)}") from None


def sample_shape(rng: np.random.Generator, breed: str = "mixed") -> ShapeSample:
    """One dog of ``breed`` (``BREEDS``). Every breed makes the same draws from ``rng``, so
    scenes of equal seeds differ only in shape."""
    b = get_breed(breed)
    leg = rng.uniform(*b.leg)
    return ShapeSample(
        lengths={
            "front_leg": leg * rng.uniform(0.96, 1.04),
            "hind_leg": leg * rng.uniform(0.96, 1.04),
            "neck": rng.uniform(*b.neck),
            "lumbar": rng.uniform(*b.lumbar),
            "tail": rng.uniform(*b.tail),
        },
        girths={
            "trunk": rng.uniform(*b.trunk_girth),
            "neck": rng.uniform(*b.neck_girth),
            "leg": rng.uniform(*b.leg_girth),
            "tail": rng.uniform(*b.tail_girth),
        },
    )


def scaled_body_pos(
    body_pos: np.ndarray, body_names: list[str], lengths: dict[str, float]
) -> np.ndarray:
    """(nbody, 3) copy of ``body_pos`` with the ``SHAPE_CHAINS`` offsets scaled."""
    out = body_pos.copy()
    for chain, factor in lengths.items():
        for name in SHAPE_CHAINS[chain]:
            out[body_names.index(name)] *= factor
    return out


@dataclass(frozen=True)
class GirthModel:
    """Thicken or thin the bind-pose skin around its bones, per girth group.

    Each vertex v moves radially about its blended bone axis: c(v) = sum_b w_vb (p_b + ((v - p_b)
    . a_b) a_b) and v' = c + g(v) (v - c) with g(v) = 1 + sum_groups w_vg (g_group - 1), w_vg the
    vertex's total skinning weight on the group's bones. c and w_vg are fixed per model.
    """

    vertices: np.ndarray  # (V, 3) bind pose
    centre: np.ndarray  # (V, 3) c(v)
    group_weight: np.ndarray  # (V, G) w_vg
    groups: tuple[str, ...]

    @classmethod
    def build(
        cls,
        *,
        vertices: np.ndarray,
        pair_vertex: np.ndarray,
        pair_bone: np.ndarray,
        pair_weight: np.ndarray,
        bone_pos: np.ndarray,
        bone_axis: np.ndarray,
        bone_group: list[str],
    ) -> GirthModel:
        """From the skinning pairs (vertex index, bone index, weight), bone bind positions (B, 3),
        unit axes (B, 3) and each bone's GIRTH_GROUPS value ("" for none)."""
        rel = vertices[pair_vertex] - bone_pos[pair_bone]
        axis = bone_axis[pair_bone]
        centre = bone_pos[pair_bone] + (rel * axis).sum(1, keepdims=True) * axis
        n = len(vertices)
        wsum = np.maximum(np.bincount(pair_vertex, pair_weight, minlength=n), 1e-9)
        c = (
            np.stack(
                [
                    np.bincount(pair_vertex, pair_weight * centre[:, i], minlength=n)
                    for i in range(3)
                ],
                1,
            )
            / wsum[:, None]
        )
        groups = tuple(sorted(set(GIRTH_GROUPS.values())))
        bone_g = np.array([groups.index(g) if g else -1 for g in bone_group])
        gw = np.zeros((n, len(groups)))
        for k in range(len(groups)):
            sel = bone_g[pair_bone] == k
            gw[:, k] = np.bincount(pair_vertex[sel], pair_weight[sel], minlength=n) / wsum
        return cls(vertices=vertices, centre=c, group_weight=gw, groups=groups)

    def apply(self, girths: dict[str, float]) -> np.ndarray:
        """(V, 3) bind-pose vertices for the girth factors of ``ShapeSample.girths``."""
        factors = np.array([girths.get(g, 1.0) for g in self.groups]) - 1.0
        g = 1.0 + self.group_weight @ factors
        return self.centre + g[:, None] * (self.vertices - self.centre)


# --- visibility and vertex subsample --------------------------------------------------------------


def visibility(
    *, xy: np.ndarray, depth: np.ndarray, depth_map: np.ndarray, tolerance: np.ndarray
) -> np.ndarray:
    """(K,) 1.0 where a keypoint is in the frame and not hidden, else 0.0.

    xy: (K, 2) pixels; depth: (K,) metres along the view axis; depth_map: (H, W) metres (empty
    pixels hold the far plane); tolerance: (K,) metres. A keypoint is hidden when the surface seen
    at its pixel is more than ``tolerance`` in front of it.
    """
    h, w = depth_map.shape
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)
    inside &= depth > 0
    col = np.clip(np.rint(xy[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.rint(xy[:, 1]).astype(int), 0, h - 1)
    seen = depth_map[row, col]
    return (inside & (depth - tolerance <= seen)).astype(np.float64)


def farthest_point_subsample(points: np.ndarray, count: int) -> np.ndarray:
    """(count,) sorted indices of a farthest-point subsample of (N, 3) ``points``, starting at the
    point with the largest x (deterministic; extremities such as the nose, tail tip and paws come
    first, so the subsample's box matches the full mesh's)."""
    pts = np.asarray(points, dtype=np.float32)
    if count > len(pts):
        raise ValueError(f"cannot pick {count} of {len(pts)} points")
    chosen = np.empty(count, dtype=np.int64)
    chosen[0] = int(np.argmax(pts[:, 0]))
    dist = ((pts - pts[chosen[0]]) ** 2).sum(1)
    for i in range(1, count):
        chosen[i] = int(np.argmax(dist))
        np.minimum(dist, ((pts - pts[chosen[i]]) ** 2).sum(1), out=dist)
    return np.sort(chosen)
