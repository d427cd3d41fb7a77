"""StrongAugment (the reference's _sp pipeline): keypoints move exactly with the image."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from animalpose.datasets.geometry import apply_affine
from animalpose.datasets.transforms.strong import (
    AffineStep,
    BlurStep,
    ContrastStep,
    NoiseStep,
    StrongAugment,
    StrongParams,
    draw_strong_params,
)

BACKENDS = ("fused", "imgaug")
GEOMETRIC_ONLY = {"noise": 0.0, "blur": 0.0, "contrast": 0.0}


def geometric_params(seed: int, **probabilities: float) -> StrongParams:
    """A drawn geometric-only augmentation whose affine fills with black."""
    p = draw_strong_params(np.random.default_rng(seed), {**GEOMETRIC_ONLY, **probabilities})
    steps = tuple(dataclasses.replace(s, fill=(0, 0, 0)) for s in p.steps)
    return dataclasses.replace(p, steps=steps)


def make(scene, backend: str) -> StrongAugment:
    return StrongAugment(output_size=scene.out, flip_index=scene.flip_index, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("affine", [0.0, 1.0])
def test_markers_land_on_returned_keypoints(scene, find_blob, backend, affine):
    aug = make(scene, backend)
    kp = scene.keypoints
    frames = [scene.blob_frame(p) for p in kp[:, :2]]
    seen = set()
    for seed in range(6):
        params = geometric_params(seed, affine=affine)
        aff = params.affine
        seen.add((params.flip, aff.order if aff else None))
        for i, frame in enumerate(frames):
            res = aug.apply(frame, kp, scene.center, scene.size, params)
            j = scene.flip_index[i] if res.flipped else i  # the channel that holds keypoint i
            assert res.keypoints[j, 2] == 1
            np.testing.assert_allclose(find_blob(res.image), res.keypoints[j, :2], atol=0.3)
    assert {f for f, _ in seen} == {False, True}  # both flip states were exercised
    if affine:
        assert {o for _, o in seen} == {0, 1}  # nearest and bilinear


@pytest.mark.parametrize("backend", BACKENDS)
def test_flip_swaps_left_and_right_channels(scene, find_blob, backend):
    aug = make(scene, backend)
    kp = scene.keypoints
    res = aug.apply(
        scene.blob_frame(kp[0, :2]), kp, scene.center, scene.size, StrongParams(steps=(), flip=True)
    )
    # Independent mirror of a pure crop: x' = (S-1)/2 - k (x - cx), y' = (S-1)/2 + k (y - cy).
    k, o = scene.out / scene.size, (scene.out - 1) / 2
    dx, dy = kp[:, 0] - scene.center[0], kp[:, 1] - scene.center[1]
    mirrored = np.stack([o - k * dx, o + k * dy], axis=1)
    np.testing.assert_allclose(res.keypoints[:, :2], mirrored[scene.flip_index], atol=1e-4)
    # The left keypoint's marker is where the right channel now points.
    np.testing.assert_allclose(find_blob(res.image), res.keypoints[1, :2], atol=0.5)
    assert res.flipped


@pytest.mark.parametrize("backend", BACKENDS)
def test_off_crop_missing_and_off_frame_keypoints_are_zeroed(scene, backend):
    aug = make(scene, backend)
    frame = scene.textured_frame()
    # Crop hanging over the left frame edge: x in [-30, 70].
    kp = np.array(
        [
            [60.0, 75.0, 1.0],  # inside everything
            [150.0, 75.0, 1.0],  # outside the crop
            [40.0, 70.0, 0.0],  # missing
            [-10.0, 75.0, 1.0],  # inside the crop, outside the frame
            [20.0, 200.0, 1.0],
        ]
    )
    res = aug.apply(frame, kp, (20.0, 75.0), 100.0, StrongParams(steps=(), flip=False))
    assert res.keypoints[0, 2] == 1
    np.testing.assert_array_equal(res.keypoints[1:], 0)
    assert (res.image[:, : int(0.3 * scene.out)] == 0).all()  # off-frame padding is black


@pytest.mark.parametrize("backend", BACKENDS)
def test_keypoint_pushed_off_the_frame_by_the_affine_is_zeroed(scene, backend):
    aug = make(scene, backend)
    # Scale 1.5 about the frame centre (99.5, 74.5): x = 195 -> 242.75 (off the 200-px frame),
    # x = 150 -> 175.25 (still inside), y = 75 -> 75.25; both inside a crop spanning
    # x in [150, 290].
    kp = np.array(
        [
            [195.0, 75.0, 1.0],
            [150.0, 75.0, 1.0],
            [150.0, 75.0, 1.0],
            [150.0, 75.0, 1.0],
            [150.0, 75.0, 1.0],
        ]
    )
    step = AffineStep((1.5, 1.5), (0.0, 0.0), 0.0, 0.0, 1, (0, 0, 0))
    res = aug.apply(
        scene.textured_frame(), kp, (220.0, 75.0), 140.0, StrongParams(steps=(step,), flip=False)
    )
    np.testing.assert_array_equal(res.keypoints[0], 0)
    k = scene.out / 140.0
    np.testing.assert_allclose(
        res.keypoints[1],
        [(scene.out - 1) / 2 + k * (175.25 - 220.0), (scene.out - 1) / 2 + k * 0.25, 1.0],
        atol=1e-3,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_same_seed_same_crop_different_seeds_differ(scene, backend):
    aug = make(scene, backend)
    frame, kp = scene.textured_frame(), scene.keypoints
    a = aug(frame, kp, scene.center, scene.size, np.random.default_rng(7))
    b = aug(frame, kp, scene.center, scene.size, np.random.default_rng(7))
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    others = [aug(frame, kp, scene.center, scene.size, np.random.default_rng(s)) for s in range(4)]
    assert len({o.image.tobytes() for o in others + [a]}) == 5
    assert len({o.matrix.tobytes() for o in others + [a]}) > 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_matrix_maps_source_keypoints_to_returned_keypoints(scene, backend):
    aug = make(scene, backend)
    frame, kp = scene.textured_frame(), scene.keypoints
    checked = 0
    for seed in range(12):
        res = aug(frame, kp, scene.center, scene.size, np.random.default_rng(seed))
        expected = apply_affine(kp[:, :2], res.matrix)
        if res.flipped:
            expected = expected[scene.flip_index]
        vis = res.keypoints[:, 2] > 0
        np.testing.assert_allclose(res.keypoints[vis, :2], expected[vis], atol=2e-3)
        checked += vis.sum()
    assert checked >= 40


def test_backends_agree_on_geometry_for_the_same_parameters(scene, find_blob):
    fused, ref = make(scene, "fused"), make(scene, "imgaug")
    kp = scene.keypoints
    blob = scene.blob_frame(kp[2, :2])
    for seed in range(10):
        params = draw_strong_params(np.random.default_rng(100 + seed), {"affine": 1.0})
        a = fused.apply(scene.textured_frame(seed), kp, scene.center, scene.size, params)
        b = ref.apply(scene.textured_frame(seed), kp, scene.center, scene.size, params)
        np.testing.assert_allclose(a.keypoints, b.keypoints, atol=2e-3)
        np.testing.assert_allclose(a.matrix, b.matrix, atol=1e-9)
        assert a.flipped == b.flipped
        geo = geometric_params(100 + seed, affine=1.0)
        ca = find_blob(fused.apply(blob, kp, scene.center, scene.size, geo).image)
        cb = find_blob(ref.apply(blob, kp, scene.center, scene.size, geo).image)
        np.testing.assert_allclose(ca, cb, atol=0.3)


PHOTOMETRIC = (
    NoiseStep(True, 3),
    BlurStep(2.0),
    ContrastStep((1.8,)),
    ContrastStep((0.6, 1.5, 2.0)),
)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("step", PHOTOMETRIC, ids=["noise", "blur", "contrast", "contrast-rgb"])
def test_photometric_steps_change_pixels_not_keypoints(scene, backend, step):
    aug = make(scene, backend)
    frame, kp = scene.textured_frame(), scene.keypoints
    affine = AffineStep((0.8, 1.1), (0.02, -0.03), 12.0, 7.0, 1, (30, 60, 90))
    plain = aug.apply(frame, kp, scene.center, scene.size, StrongParams((affine,), True))
    photo = aug.apply(frame, kp, scene.center, scene.size, StrongParams((step, affine), True))
    np.testing.assert_array_equal(plain.keypoints, photo.keypoints)
    np.testing.assert_array_equal(plain.matrix, photo.matrix)
    assert np.abs(plain.image.astype(int) - photo.image).mean() > 2.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_affine_fill_sees_only_the_steps_after_the_affine(scene, backend):
    """The reference runs steps on the full frame: the affine's fill colour is untouched by a
    step before it and changed by a step after it; off-frame crop padding stays black."""
    aug = make(scene, backend)
    frame, kp = scene.textured_frame(), scene.keypoints
    shrink = AffineStep((0.5, 0.5), (0.0, 0.0), 0.0, 0.0, 1, (10, 200, 30))
    contrast = ContrastStep((2.0,))
    # Crop over the top-left frame corner: the corner of the crop is padding, its middle fill.
    center, size = (20.0, 15.0), 80.0
    before = aug.apply(frame, kp, center, size, StrongParams((contrast, shrink), False)).image
    after = aug.apply(frame, kp, center, size, StrongParams((shrink, contrast), False)).image
    s = scene.out
    fill_pixel = (int(0.6 * s), int(0.6 * s))  # source (18, 13) in the frame, off the shrunk image
    np.testing.assert_array_equal(before[fill_pixel], [10, 200, 30])
    np.testing.assert_array_equal(after[fill_pixel], [0, 255, 0])  # 127 + 2 (v - 127), clipped
    for img in (before, after):
        np.testing.assert_array_equal(img[: s // 4, : s // 4], 0)  # padding: black


def test_draw_strong_params_matches_the_reference_distributions():
    rng = np.random.default_rng(0)
    draws = [draw_strong_params(rng) for _ in range(4000)]
    kinds = (AffineStep, NoiseStep, BlurStep, ContrastStep)
    for kind in kinds:
        assert abs(np.mean([any(isinstance(s, kind) for s in d.steps) for d in draws]) - 0.5) < 0.03
    assert abs(np.mean([d.flip for d in draws]) - 0.5) < 0.03
    # Random order: among draws with both, the affine precedes the noise half of the time.
    pos = [[type(s) for s in d.steps] for d in draws]
    both = [p for p in pos if AffineStep in p and NoiseStep in p]
    assert abs(np.mean([p.index(AffineStep) < p.index(NoiseStep) for p in both]) - 0.5) < 0.06
    steps = [s for d in draws for s in d.steps]
    aff = [s for s in steps if isinstance(s, AffineStep)]
    assert all(0.5 <= v <= 1.5 for s in aff for v in s.scale)
    assert np.std([s.scale[0] - s.scale[1] for s in aff]) > 0.3  # x and y scales independent
    assert all(abs(v) <= 0.05 for s in aff for v in s.translate)
    assert all(abs(s.rotate) <= 30 and abs(s.shear) <= 20 for s in aff)
    assert {s.order for s in aff} == {0, 1}
    assert all(0 <= v <= 254 for s in aff for v in s.fill)
    assert len({s.fill for s in aff if len(set(s.fill)) > 1}) > 100  # one fill value per channel
    assert all(1.0 <= s.sigma <= 5.0 for s in steps if isinstance(s, BlurStep))
    contrast = [s for s in steps if isinstance(s, ContrastStep)]
    assert all(0.5 <= a <= 2.0 for s in contrast for a in s.alphas)
    assert abs(np.mean([len(s.alphas) == 3 for s in contrast]) - 0.5) < 0.05
    noise = [s for s in steps if isinstance(s, NoiseStep)]
    assert abs(np.mean([s.per_channel for s in noise]) - 0.5) < 0.05


def test_probability_overrides_are_checked(scene):
    with pytest.raises(KeyError, match="valid"):
        StrongAugment(output_size=8, flip_index=scene.flip_index, probabilities={"blurr": 0})
    with pytest.raises(ValueError):
        StrongAugment(output_size=8, flip_index=scene.flip_index, probabilities={"blur": 1.5})
    never = draw_strong_params(np.random.default_rng(0), {**GEOMETRIC_ONLY, "affine": 0, "flip": 0})
    assert never == StrongParams(steps=(), flip=False)
    with pytest.raises(KeyError, match="fused"):
        StrongAugment(output_size=8, flip_index=scene.flip_index, backend="albumentations")
