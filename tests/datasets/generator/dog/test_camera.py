"""Camera model: projection, the free-camera frame, framing a still, ground depth."""

from __future__ import annotations

import math

import numpy as np
import pytest

from animalpose.datasets.generator.dog.camera import (
    MIN_CAMERA_HEIGHT_M,
    CameraView,
    PinholeCamera,
    fit_camera,
    free_camera_frame,
    ground_depth,
)


def camera_looking_along_x(width: int = 200, height: int = 100) -> PinholeCamera:
    # At the origin, looking along +x with +z up; the frustum is 0.1 high at distance 0.1.
    return PinholeCamera.from_frustum(
        position=np.zeros(3),
        forward=np.array([1.0, 0, 0]),
        up=np.array([0, 0, 1.0]),
        near=0.1,
        bottom=-0.05,
        top=0.05,
        center=0.0,
        width=width,
        height=height,
    )


def test_projection_follows_the_pixel_centre_convention():
    cam = camera_looking_along_x()
    assert cam.focal == pytest.approx(100.0)  # near * height / (top - bottom)
    points = np.array(
        [
            [10.0, 0.0, 0.0],  # on the axis: the frame centre
            [1.0, 0.0, 0.5],  # top frustum edge: the top edge of row 0
            [1.0, -1.0, 0.0],  # right edge (half-width 0.5 * w / h at unit distance; right = -y)
            [2.0, 0.5, -0.25],  # left of centre and below
        ]
    )
    xy, depth = cam.project(points)
    np.testing.assert_allclose(xy[0], [99.5, 49.5])
    np.testing.assert_allclose(xy[1], [99.5, -0.5])
    np.testing.assert_allclose(xy[2], [199.5, 49.5])
    np.testing.assert_allclose(xy[3], [99.5 - 25.0, 49.5 + 12.5])
    np.testing.assert_allclose(depth, [10.0, 1.0, 1.0, 2.0])


def test_free_camera_frame_is_orthonormal_and_looks_down_for_negative_elevation():
    forward, up = free_camera_frame(30.0, -25.0)
    assert np.linalg.norm(forward) == pytest.approx(1.0)
    assert np.linalg.norm(up) == pytest.approx(1.0)
    assert forward @ up == pytest.approx(0.0, abs=1e-12)
    assert forward[2] == pytest.approx(-math.sin(math.radians(25.0)))
    assert math.degrees(math.atan2(forward[1], forward[0])) == pytest.approx(30.0)


def pinhole_for(lookat, distance, azimuth, elevation, fovy, width, height):
    forward, up = free_camera_frame(azimuth, elevation)
    top = math.tan(math.radians(fovy) / 2.0)
    return PinholeCamera.from_frustum(
        position=lookat - distance * forward,
        forward=forward,
        up=up,
        near=1.0,
        bottom=-top,
        top=top,
        center=0.0,
        width=width,
        height=height,
    )


@pytest.mark.parametrize("azimuth,elevation_down", [(0.0, 10.0), (75.0, 35.0), (200.0, -5.0)])
def test_fit_camera_shows_the_points_at_the_requested_fill(azimuth, elevation_down):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(400, 3)) * [0.5, 0.15, 0.25] + [0.0, 0.0, 0.4]
    view = CameraView(azimuth, elevation_down, 40.0, 0.7, (0.0, 0.0))
    lookat, distance, elevation = fit_camera(view=view, points=points, aspect=4 / 3, ground_z=-10.0)
    assert elevation == pytest.approx(-elevation_down)
    cam = pinhole_for(lookat, distance, azimuth, elevation, 40.0, 160, 120)
    xy, depth = cam.project(points)
    assert (depth > 0).all()
    reach = np.maximum(np.abs(xy[:, 0] - cam.cx) / 80.0, np.abs(xy[:, 1] - cam.cy) / 60.0)
    assert reach.max() == pytest.approx(0.7, abs=1e-6)  # the tightest point touches the fill


def test_fit_camera_shift_moves_the_points_and_keeps_the_camera_above_ground():
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.3, 0.3, size=(200, 3)) + [0.0, 0.0, 0.4]
    centred = CameraView(90.0, 5.0, 40.0, 0.5, (0.0, 0.0))
    shifted = CameraView(90.0, 5.0, 40.0, 0.5, (0.4, 0.0))
    centre = 0.5 * (points.min(0) + points.max(0))
    xs = []
    for view in (centred, shifted):
        lookat, distance, elevation = fit_camera(
            view=view, points=points, aspect=1.0, ground_z=-10.0
        )
        xy, _ = pinhole_for(lookat, distance, 90.0, elevation, 40.0, 100, 100).project(centre[None])
        xs.append(xy[0, 0])
    assert xs[0] == pytest.approx(49.5)
    assert xs[1] - xs[0] == pytest.approx(0.4 * 50.0)  # the box centre moves 0.4 half-frames
    low = CameraView(0.0, -10.0, 40.0, 0.5, (0.0, 0.0))
    lookat, distance, elevation = fit_camera(view=low, points=points, aspect=1.0, ground_z=0.0)
    forward, _ = free_camera_frame(0.0, elevation)
    assert (lookat - distance * forward)[2] >= MIN_CAMERA_HEIGHT_M


def test_ground_depth_matches_the_plane_under_a_tilted_camera():
    cam = pinhole_for(np.array([0.0, 0, 0.3]), 2.0, 30.0, -20.0, 40.0, 40, 30)
    depth = ground_depth(cam, ground_z=0.0, centre=np.array([1.0, -2.0]), half_size=50.0)
    # Re-project the ground points: they must lie on z = 0 and project to their own pixels.
    rows, cols = np.nonzero(np.isfinite(depth))
    assert len(rows) > 100
    rays = np.stack(
        [(cols - cam.cx) / cam.focal, -(rows - cam.cy) / cam.focal, np.ones(len(rows))], 1
    )
    points = cam.position + (rays * depth[rows, cols, None]) @ cam.rotation
    np.testing.assert_allclose(points[:, 2], 0.0, atol=1e-9)
    xy, _ = cam.project(points)
    np.testing.assert_allclose(xy, np.stack([cols, rows], 1), atol=1e-6)
    assert not np.isfinite(depth[0]).any()  # the top row looks above the horizon


def test_ground_depth_is_infinite_off_the_square():
    cam = pinhole_for(np.array([0.0, 0, 0.3]), 2.0, 30.0, -30.0, 40.0, 40, 30)
    wide = ground_depth(cam, ground_z=0.0, centre=np.zeros(2), half_size=50.0)
    small = ground_depth(cam, ground_z=0.0, centre=np.array([0.0, 0.0]), half_size=0.3)
    moved = ground_depth(cam, ground_z=0.0, centre=np.array([5.0, 5.0]), half_size=0.3)
    finite = np.isfinite(small)
    assert 0 < finite.sum() < np.isfinite(wide).sum()
    np.testing.assert_array_equal(small[finite], wide[finite])
    assert not np.isfinite(moved).any()  # that square is out of view
