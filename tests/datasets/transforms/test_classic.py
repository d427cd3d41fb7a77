"""ClassicAugment (the reference's non-_sp pipeline): scale, rotation, flip, gain in one warp."""

from __future__ import annotations

import numpy as np

from animalpose.datasets.geometry import apply_affine, crop_matrix, legacy_transform_matrix
from animalpose.datasets.transforms.classic import (
    ClassicAugment,
    ClassicParams,
    draw_classic_params,
)


def make(scene) -> ClassicAugment:
    return ClassicAugment(output_size=scene.out, flip_index=scene.flip_index)


def test_draws_follow_the_reference_distributions():
    rng = np.random.default_rng(0)
    draws = [draw_classic_params(rng, 0.25, 30.0) for _ in range(5000)]
    scale = np.array([d.scale for d in draws])
    rot = np.array([d.rotation for d in draws])
    assert scale.min() >= 0.75 and scale.max() <= 1.25
    # clamp(1 + 0.25 N, 0.75, 1.25) sits on a bound when |N| > 1: P = 0.317.
    assert abs(np.mean((scale == 0.75) | (scale == 1.25)) - 0.317) < 0.025
    assert abs(np.mean(rot == 0) - 0.4) < 0.025  # rotated with p = 0.6
    turned = rot[rot != 0]
    assert np.abs(turned).max() <= 60 and abs(turned.std() - 28.5) < 1.5  # 30 N clamped at 60
    assert abs(np.mean(np.abs(turned) == 60) - 0.0455) < 0.012  # |N| > 2
    gains = np.array([d.gains for d in draws])
    assert gains.min() >= 0.8 and gains.max() <= 1.2 and np.corrcoef(gains.T)[0, 1] < 0.05
    assert abs(np.mean([d.flip for d in draws]) - 0.5) < 0.025


def test_markers_land_on_returned_keypoints(scene, find_blob):
    aug = make(scene)
    kp = scene.keypoints
    frames = [scene.blob_frame(p) for p in kp[:, :2]]
    flips = set()
    for seed in range(6):
        params = draw_classic_params(np.random.default_rng(seed), 0.25, 30.0)
        flips.add(params.flip)
        for i, frame in enumerate(frames):
            res = aug.apply(frame, kp, scene.center, scene.size, params)
            j = scene.flip_index[i] if res.flipped else i
            assert res.keypoints[j, 2] == 1
            np.testing.assert_allclose(find_blob(res.image), res.keypoints[j, :2], atol=0.3)
            expected = apply_affine(kp[:, :2], res.matrix)
            np.testing.assert_allclose(res.keypoints[j, :2], expected[i], atol=1e-4)
    assert flips == {False, True}


def test_rotation_turns_like_the_reference(scene):
    """Positive rotation turns the content counter-clockwise, as the reference's crop does."""
    params = ClassicParams(scale=1.0, rotation=40.0, flip=False, gains=(1.0, 1.0, 1.0))
    res = make(scene).apply(
        scene.textured_frame(), scene.keypoints, scene.center, scene.size, params
    )
    s = scene.out
    ref = legacy_transform_matrix(scene.center, scene.size / 200.0, (s, s), rot=40.0)
    expected = scene.keypoints[:, :2] @ ref[:2, :2].T + ref[:2, 2]  # 0-based in, 0-based out
    # The reference's crop puts the centre at S/2, ours at (S - 1)/2: half a pixel apart.
    np.testing.assert_allclose(res.keypoints[:, :2], expected, atol=0.75)
    right = scene.center + [30.0, 0.0]
    up = apply_affine(right[None], res.matrix)[0]
    assert up[1] < (s - 1) / 2 - 10  # a point right of centre moves up


def test_gain_scales_each_channel_and_clips(scene):
    frame = np.full((150, 200, 3), [100, 200, 250], np.uint8)
    params = ClassicParams(scale=1.0, rotation=0.0, flip=False, gains=(0.83, 1.1, 1.19))
    res = make(scene).apply(frame, scene.keypoints, scene.center, scene.size, params)
    np.testing.assert_array_equal(res.image[40, 40], [83, 220, 255])
    np.testing.assert_array_equal(res.matrix, crop_matrix(scene.center, scene.size, (96, 96)))


def test_deterministic_for_a_seed_and_off_crop_keypoints_zeroed(scene):
    aug = make(scene)
    frame = scene.textured_frame()
    kp = np.concatenate([scene.keypoints[:4], [[5.0, 5.0, 1.0]]])
    a = aug(frame, kp, scene.center, scene.size, np.random.default_rng(3))
    b = aug(frame, kp, scene.center, scene.size, np.random.default_rng(3))
    c = aug(frame, kp, scene.center, scene.size, np.random.default_rng(4))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    assert not np.array_equal(a.image, c.image)
    far = 3 if a.flipped else 4  # flip_index swaps channels 3 and 4
    np.testing.assert_array_equal(a.keypoints[far], 0)
