"""Finishing a render pass: the horizon row, silhouette anti-aliasing, backdrop and fog."""

from __future__ import annotations

import numpy as np

from animalpose.datasets.generator.dog.camera import PinholeCamera, free_camera_frame
from animalpose.datasets.generator.dog.composite import finish_frame, horizon_row, smooth_edges
from animalpose.datasets.generator.styles.light import CameraEffects
from animalpose.datasets.generator.styles.scenery import Backdrop


def camera(elevation_deg: float, width: int = 64, height: int = 48) -> PinholeCamera:
    """MuJoCo's free camera 1 m above the ground at azimuth 30 degrees, principal point centred."""
    forward, up = free_camera_frame(30.0, elevation_deg)
    rotation = np.stack([np.cross(forward, up), up, forward])
    centre = ((width - 1) / 2.0, (height - 1) / 2.0)
    return PinholeCamera(np.array([0.0, 0.0, 1.0]), rotation, 50.0, *centre, width, height)


def test_the_horizon_is_the_centre_row_of_a_level_camera_and_moves_against_the_tilt():
    level = camera(0.0)
    assert np.isclose(horizon_row(level), level.cy)
    # Looking up puts the horizon lower in the image (larger rows), looking down higher.
    assert horizon_row(camera(10.0)) > level.cy > horizon_row(camera(-10.0))
    # A far point straight ahead, level with the camera, projects on that row.
    forward, _ = free_camera_frame(30.0, -10.0)
    far = np.array([forward[0], forward[1], 0.0]) * 1e6 + np.array([0.0, 0.0, 1.0])
    xy, _ = camera(-10.0).project(far[None])
    assert np.isclose(xy[0, 1], horizon_row(camera(-10.0)), atol=1e-3)


def test_only_pixels_beside_a_depth_jump_are_smoothed():
    depth = np.full((8, 8), 5.0)
    depth[:, 4:] = 2.0  # a silhouette between columns 3 and 4
    image = np.zeros((8, 8, 3), np.uint8)
    image[:, 4:] = 255
    out = smooth_edges(image, depth)
    changed = np.any(out != image, axis=2)
    assert changed[:, 3:5].all() and not changed[:, :3].any() and not changed[:, 5:].any()
    flat = np.full((8, 8), 5.0)
    assert np.array_equal(smooth_edges(image, flat), image)  # no jump, no change


def test_the_backdrop_fills_empty_pixels_and_haze_tints_far_ground():
    h, w = 48, 64
    cam = camera(0.0, w, h)
    backdrop = Backdrop(
        image=np.full((200, 400, 3), 77, np.uint8),
        horizon=100.0,
        px_per_deg=1.0,
        azimuth0=0.0,
        wrap=True,
    )
    rgb = np.full((h, w, 3), 200, np.uint8)
    depth = np.full((h, w), 3.0)
    empty = np.zeros((h, w), bool)
    empty[:10] = True
    depth[:10] = 60.0
    depth[40:] = 12.0  # far ground
    common = {
        "depth": depth,
        "empty": empty,
        "camera": cam,
        "backdrop": backdrop,
        "azimuth_deg": 30.0,
        "focus": 3.0,
        "vegetation": None,
        "effects": CameraEffects(enabled=False),
        "rng": np.random.default_rng(0),
    }
    clear = finish_frame(rgb, haze=None, **common)
    assert (clear[:9] == 77).all() and (clear[12:38] == 200).all()
    hazy = finish_frame(rgb, haze=(np.zeros(3), 1.0), **common)
    assert (hazy[12:38] == 200).all()  # at the focus: before the haze starts
    assert (hazy[41:] < 200).all()  # far ground fades towards the haze colour
