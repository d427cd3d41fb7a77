"""Lighting and camera effects of both styles."""

from __future__ import annotations

import numpy as np

from animalpose.datasets.generator.styles.light import (
    apply_effects,
    sample_effects,
    sample_lighting,
)


def test_effects_degrade_target_frames_only():
    rng = np.random.default_rng(0)
    image = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
    depth = np.full((60, 80), 3.0)
    source = sample_effects(np.random.default_rng(1), "source")
    out = apply_effects(image, depth=depth, focus=3.0, effects=source, rng=rng)
    np.testing.assert_array_equal(out, image)
    target = sample_effects(np.random.default_rng(1), "target")
    a = apply_effects(image, depth=depth, focus=3.0, effects=target, rng=np.random.default_rng(5))
    b = apply_effects(image, depth=depth, focus=3.0, effects=target, rng=np.random.default_rng(5))
    assert a.shape == image.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - image).mean() > 2.0


def test_target_light_is_warm_with_haze_and_source_light_is_grey():
    horizon = np.array([0.3, 0.4, 0.2])
    for seed in range(5):
        target = sample_lighting(np.random.default_rng(seed), "target", horizon)
        assert target.sun_diffuse[0] > target.sun_diffuse[2]
        assert target.haze is not None and np.allclose(target.haze[0], horizon)
        assert target.sun_dir[2] < 0  # sunlight travels downwards
        source = sample_lighting(np.random.default_rng(seed), "source", horizon)
        assert source.haze is None
        assert np.ptp(source.sun_diffuse) == 0.0
