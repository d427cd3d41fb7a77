"""Appearance domains without OpenGL: coat atlas, coats, ground, backdrops, light, effects."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from animalpose.datasets.generator.styles import paint as styles

GRID = 24  # vertices per side of the toy skin


@pytest.fixture(scope="module")
def toy_atlas() -> styles.CoatAtlas:
    """A flat skin spanning the dog's bind-pose box, laid out over the whole texture square:
    vertex (u, v) sits at x = -0.7 + 1.15 u, z = 0.8 v; parts in bands of v."""
    u = np.linspace(0.02, 0.98, GRID)
    uu, vv = np.meshgrid(u, u)
    texcoords = np.stack([uu.ravel(), vv.ravel()], 1)
    u, v = uu.ravel(), vv.ravel()
    vertices = np.stack([-0.7 + 1.15 * u, 0.1 * np.cos(6 * v), 0.8 * v], 1)
    idx = np.arange(GRID * GRID).reshape(GRID, GRID)
    faces = np.concatenate(
        [
            np.stack([idx[:-1, :-1].ravel(), idx[1:, :-1].ravel(), idx[:-1, 1:].ravel()], 1),
            np.stack([idx[1:, 1:].ravel(), idx[:-1, 1:].ravel(), idx[1:, :-1].ravel()], 1),
        ]
    )
    parts = (vv.ravel() * len(styles.PARTS) * 0.999).astype(int)
    texture = np.full((64, 64, 3), 180, np.uint8)
    return styles.build_coat_atlas(
        texcoords=texcoords,
        vertices=vertices,
        faces=faces,
        part_weights=np.eye(len(styles.PARTS))[parts],
        texture=texture,
        grid=64,
    )


def test_atlas_interpolates_positions_at_texel_centres(toy_atlas):
    centres = (np.arange(64) + 0.5) / 64
    inside = (centres >= 0.02) & (centres <= 0.98)
    rows, cols = np.nonzero(inside[:, None] & inside[None, :])
    # Positions are linear in (u, v) over each triangle, so interpolation is exact.
    np.testing.assert_allclose(
        toy_atlas.position[rows, cols, 0], -0.7 + 1.15 * centres[cols], atol=1e-5
    )
    np.testing.assert_allclose(toy_atlas.position[rows, cols, 2], 0.8 * centres[rows], atol=1e-5)
    # Texels outside the mesh copy their nearest covered texel (row 0 -> the first covered row).
    first = np.argmax(inside)
    np.testing.assert_allclose(toy_atlas.position[0], toy_atlas.position[first])
    assert np.allclose(np.linalg.norm(toy_atlas.normal, axis=-1), 1.0, atol=1e-5)


def unnatural_fraction(texture: np.ndarray) -> float:
    """Fraction of saturated, non-brown texels (no dog coat has them)."""
    hsv = cv2.cvtColor(texture, cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3).astype(float)
    hue, sat, val = hsv[:, 0] * 360 / 256, hsv[:, 1] / 255, hsv[:, 2] / 255
    return float(((sat > 0.45) & (val > 0.2) & (hue > 50) & (hue < 345)).mean())


def test_target_coats_are_natural_and_source_coats_often_are_not(toy_atlas):
    target = [
        unnatural_fraction(styles.paint_coat(np.random.default_rng(i), "target", toy_atlas))
        for i in range(20)
    ]
    source = [
        unnatural_fraction(styles.paint_coat(np.random.default_rng(i), "source", toy_atlas))
        for i in range(20)
    ]
    assert max(target) < 0.01
    assert np.mean(source) > 0.3
    coat = styles.paint_coat(np.random.default_rng(0), "target", toy_atlas)
    assert coat.shape == (64, 64, 3) and coat.dtype == np.uint8
    np.testing.assert_array_equal(
        coat, styles.paint_coat(np.random.default_rng(0), "target", toy_atlas)
    )


def test_unknown_style_is_rejected(toy_atlas):
    with pytest.raises(ValueError, match="unknown style"):
        styles.paint_coat(np.random.default_rng(0), "cartoon", toy_atlas)


@pytest.fixture(scope="module")
def photos() -> styles.PhotoLibrary:
    return styles.PhotoLibrary()


def test_ground_textures_and_tile_sizes(photos):
    for style in styles.STYLES:
        for seed in range(4):
            image, tile = styles.paint_ground(np.random.default_rng(seed), style, photos)
            assert image.shape == (512, 512, 3) and image.dtype == np.uint8
            assert 0.5 <= tile <= 4.0
    assert "meadow" in photos.ground  # dm_control's outdoor grass ships with dm_control


def test_backdrop_view_pans_with_the_camera_azimuth(photos):
    ppd = 4.0
    backdrop = styles.paint_backdrop(
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


def test_effects_degrade_target_frames_only(photos):
    rng = np.random.default_rng(0)
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    depth = np.full((60, 80), 3.0)
    source = styles.sample_effects(np.random.default_rng(1), "source")
    out = styles.apply_effects(image, depth=depth, focus=3.0, effects=source, rng=rng)
    np.testing.assert_array_equal(out, image)
    target = styles.sample_effects(np.random.default_rng(1), "target")
    a = styles.apply_effects(
        image, depth=depth, focus=3.0, effects=target, rng=np.random.default_rng(5)
    )
    b = styles.apply_effects(
        image, depth=depth, focus=3.0, effects=target, rng=np.random.default_rng(5)
    )
    assert a.shape == image.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - image).mean() > 2.0


def test_fog_fades_distant_pixels_to_its_colour():
    image = np.full((4, 3, 3), 100, np.uint8)
    depth = np.array([[1.0] * 3, [10.0] * 3, [15.0] * 3, [60.0] * 3])
    fog = (np.array([1.0, 0.0, 0.0]), 10.0, 20.0)
    out = styles.apply_fog(image, depth=depth, fog=fog)
    np.testing.assert_array_equal(out[0], image[0])
    np.testing.assert_array_equal(out[1], image[1])
    np.testing.assert_allclose(out[2, 0], [178, 50, 50], atol=1)  # half way
    np.testing.assert_array_equal(out[3, 0], [255, 0, 0])
    assert styles.apply_fog(image, depth=depth, fog=None) is image


def test_target_light_is_warm_with_haze_and_source_light_is_grey():
    horizon = np.array([0.3, 0.4, 0.2])
    for seed in range(5):
        target = styles.sample_lighting(np.random.default_rng(seed), "target", horizon)
        assert target.sun_diffuse[0] > target.sun_diffuse[2]
        assert target.haze is not None and np.allclose(target.haze[0], horizon)
        assert target.sun_dir[2] < 0  # sunlight travels downwards
        source = styles.sample_lighting(np.random.default_rng(seed), "source", horizon)
        assert source.haze is None
        assert np.ptp(source.sun_diffuse) == 0.0
