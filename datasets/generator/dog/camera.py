"""The renderer's camera: pinhole projection, ground depth, and how stills and shots frame the dog.

Units are metres and degrees (MuJoCo free-camera conventions: azimuth about +z from +x,
elevation positive looking up); pixels are 0-based with centres at integers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = [
    "CameraPath",
    "CameraView",
    "FrameGeometry",
    "PinholeCamera",
    "fit_camera",
    "free_camera_frame",
    "ground_depth",
    "sample_camera_path",
    "sample_view",
]


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
