"""Coat atlas and coats of both styles, without OpenGL."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from animalpose.datasets.generator.styles.coats import (
    PARTS,
    CoatAtlas,
    build_coat_atlas,
    paint_coat,
)

GRID = 24  # vertices per side of the toy skin


@pytest.fixture(scope="module")
def toy_atlas() -> CoatAtlas:
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
    parts = (vv.ravel() * len(PARTS) * 0.999).astype(int)
    texture = np.full((64, 64, 3), 180, np.uint8)
    return build_coat_atlas(
        texcoords=texcoords,
        vertices=vertices,
        faces=faces,
        part_weights=np.eye(len(PARTS))[parts],
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
        unnatural_fraction(paint_coat(np.random.default_rng(i), "target", toy_atlas))
        for i in range(20)
    ]
    source = [
        unnatural_fraction(paint_coat(np.random.default_rng(i), "source", toy_atlas))
        for i in range(20)
    ]
    assert max(target) < 0.01
    assert np.mean(source) > 0.3
    coat = paint_coat(np.random.default_rng(0), "target", toy_atlas)
    assert coat.shape == (64, 64, 3) and coat.dtype == np.uint8
    np.testing.assert_array_equal(coat, paint_coat(np.random.default_rng(0), "target", toy_atlas))


def test_unknown_style_is_rejected(toy_atlas):
    with pytest.raises(ValueError, match="unknown style"):
        paint_coat(np.random.default_rng(0), "cartoon", toy_atlas)
