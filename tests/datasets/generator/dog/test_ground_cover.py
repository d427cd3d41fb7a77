"""Ground cover (grass blades): sampling and occlusion-aware drawing, checked with a known camera
(pure NumPy / OpenCV, no OpenGL)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from animalpose.datasets.generator.dog.camera import PinholeCamera
from animalpose.datasets.generator.dog.ground_cover import (
    COVERS,
    Cover,
    Vegetation,
    get_cover,
    sample_vegetation,
)

GRASS = COVERS["grass"]


def side_camera(width: int = 160, height: int = 120) -> PinholeCamera:
    """At (-4, 0, 0.3) looking along +x, +z up, 90 degrees vertical field of view."""
    return PinholeCamera(
        position=np.array([-4.0, 0.0, 0.3]),
        rotation=np.array([[0.0, -1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]),
        focal=height / 2.0,
        cx=(width - 1) / 2.0,
        cy=(height - 1) / 2.0,
        width=width,
        height=height,
    )


def one_blade(x: float, *, height: float = 0.5, width: float = 0.02) -> Vegetation:
    base = np.array([[x, 0.0, 0.0]])
    return Vegetation(
        base=base,
        bend=base + [0, 0, height / 2],
        tip=base + [0, 0, height],
        width=np.array([width]),
        colour=np.array([[0.0, 200.0, 0.0]]),
    )


def test_sampling_is_seeded_and_stays_on_the_disk_and_in_range():
    a = sample_vegetation(
        np.random.default_rng(3), GRASS, centre=np.array([1.0, -2.0]), path_half_length=0.5
    )
    b = sample_vegetation(
        np.random.default_rng(3), GRASS, centre=np.array([1.0, -2.0]), path_half_length=0.5
    )
    np.testing.assert_array_equal(a.tip, b.tip)
    assert len(a) > 50
    radius = 0.5 + GRASS.reach_m + GRASS.tuft_radius_m
    assert (np.hypot(a.base[:, 0] - 1.0, a.base[:, 1] + 2.0) <= radius + 1e-9).all()
    assert (a.base[:, 2] == 0).all() and (a.tip[:, 2] > 0).all()
    assert (a.tip[:, 2] <= GRASS.height_m[1] + 1e-9).all() and (a.bend[:, 2] > 0).all()
    assert ((a.width >= GRASS.width_m[0]) & (a.width <= GRASS.width_m[1])).all()
    assert ((a.colour >= 0) & (a.colour <= 255)).all()


def test_blade_count_follows_the_density():
    """Mean blades = mean density x disk area x mean blades per tuft (Poisson tufts)."""
    counts = [
        len(sample_vegetation(np.random.default_rng(s), GRASS, centre=np.zeros(2)))
        for s in range(200)
    ]
    expected = (
        np.mean(GRASS.tufts_per_m2) * math.pi * GRASS.reach_m**2 * np.mean(GRASS.blades_per_tuft)
    )
    assert abs(np.mean(counts) / expected - 1) < 0.06


def test_a_blade_is_drawn_where_it_projects_unless_something_is_nearer():
    camera = side_camera()
    image = np.full((120, 160, 3), 50, np.uint8)
    far = np.full((120, 160), 100.0)
    blade = one_blade(0.0)  # 4 m in front of the camera
    out = blade.draw(image, far, camera, focus=4.0)
    changed = np.any(out != image, axis=2)
    (bx, by), (tx, ty) = camera.project(np.concatenate([blade.base, blade.tip]))[0]
    ys, xs = np.nonzero(changed)
    assert abs(xs.mean() - bx) < 1.0 and abs(bx - tx) < 1e-9  # a vertical stroke at x = 79.5
    assert ys.min() <= ty + 1.5 and ys.max() >= by - 1.5
    assert (out[changed] == [0, 200, 0]).all()
    # A wall 2 m in front of the camera hides it; a wall behind it (6 m) does not.
    assert np.array_equal(blade.draw(image, np.full((120, 160), 2.0), camera, focus=4.0), image)
    assert np.array_equal(blade.draw(image, np.full((120, 160), 6.0), camera, focus=4.0), out)


def test_nearer_blades_cover_farther_ones_and_blades_at_the_camera_are_skipped():
    camera = side_camera()
    image = np.zeros((120, 160, 3), np.uint8)
    depth = np.full((120, 160), 100.0)
    near, far = one_blade(0.0, width=0.05), one_blade(1.0, width=0.05)
    both = Vegetation(
        base=np.concatenate([near.base, far.base]),
        bend=np.concatenate([near.bend, far.bend]),
        tip=np.concatenate([near.tip, far.tip]),
        width=np.array([0.05, 0.05]),
        colour=np.array([[255.0, 0, 0], [0, 0, 255.0]]),
    )
    out = both.draw(image, depth, camera, focus=4.0)
    x, y = camera.project(np.array([[0.0, 0.0, 0.1]]))[0][0]
    assert tuple(out[int(round(y)), int(round(x))]) == (255, 0, 0)  # the near (red) one in front
    # Closer than MIN_DEPTH_SHARE of the focus distance: not drawn.
    assert np.array_equal(one_blade(-3.0).draw(image, depth, camera, focus=4.0), image)
    # Behind the camera (projection through z <= 0): skipped, without NaN casts.
    with np.errstate(all="raise"):
        assert np.array_equal(one_blade(-6.0).draw(image, depth, camera, focus=4.0), image)


def test_cover_names_and_validation():
    assert get_cover("none") is None and get_cover("grass") is GRASS
    with pytest.raises(ValueError, match="unknown ground cover 'snow'"):
        get_cover("snow")
    with pytest.raises(ValueError, match="tufts_per_m2"):
        Cover(
            tufts_per_m2=(5.0, 1.0),
            blades_per_tuft=(1, 2),
            tuft_radius_m=0.1,
            height_m=(0.1, 0.2),
            width_m=(0.01, 0.01),
            lean_deg=10.0,
            reach_m=1.0,
        )
