"""Ground textures, backdrops and fog, without OpenGL."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets.generator.renderer import STYLES
from animalpose.datasets.generator.styles.scenery import (
    PhotoLibrary,
    apply_fog,
    paint_backdrop,
    paint_ground,
)


@pytest.fixture(scope="module")
def photos() -> PhotoLibrary:
    return PhotoLibrary()


def test_ground_textures_and_tile_sizes(photos):
    for style in STYLES:
        for seed in range(4):
            image, tile = paint_ground(np.random.default_rng(seed), style, photos)
            assert image.shape == (512, 512, 3) and image.dtype == np.uint8
            assert 0.5 <= tile <= 4.0
    assert "meadow" in photos.ground  # dm_control's outdoor grass ships with dm_control


def test_backdrop_view_pans_with_the_camera_azimuth(photos):
    ppd = 4.0
    backdrop = paint_backdrop(
        np.random.default_rng(3),
        "target",
        photos,
        azimuth_deg=0.0,
        span_deg=360.0,
        top_deg=30.0,
        bottom_deg=-20.0,
        px_per_deg=ppd,
    )
    a = backdrop.view(azimuth_deg=10.0, horizon_row=40.0, size=(80, 60), px_per_deg=ppd)
    b = backdrop.view(azimuth_deg=5.0, horizon_row=40.0, size=(80, 60), px_per_deg=ppd)
    # Turning right (azimuth decreases) by 5 degrees moves the scenery left by 20 pixels.
    assert np.abs(a[:, 20:].astype(int) - b[:, :-20]).max() <= 1  # bilinear rounding
    # Sky above the horizon is brighter and bluer than the vegetation below it.
    sky, ground = a[:30].reshape(-1, 3).mean(0), a[45:].reshape(-1, 3).mean(0)
    assert sky.sum() > ground.sum() and sky[2] > ground[2]
    # A full circle wraps around.
    turned = backdrop.view(azimuth_deg=370.0, horizon_row=40.0, size=(80, 60), px_per_deg=ppd)
    assert np.abs(turned.astype(int) - a).max() <= 1


def test_fog_fades_distant_pixels_to_its_colour():
    image = np.full((4, 3, 3), 100, np.uint8)
    depth = np.array([[1.0] * 3, [10.0] * 3, [15.0] * 3, [60.0] * 3])
    fog = (np.array([1.0, 0.0, 0.0]), 10.0, 20.0)
    out = apply_fog(image, depth=depth, fog=fog)
    np.testing.assert_array_equal(out[0], image[0])
    np.testing.assert_array_equal(out[1], image[1])
    np.testing.assert_allclose(out[2, 0], [178, 50, 50], atol=1)  # half way
    np.testing.assert_array_equal(out[3, 0], [255, 0, 0])
    assert apply_fog(image, depth=depth, fog=None) is image
