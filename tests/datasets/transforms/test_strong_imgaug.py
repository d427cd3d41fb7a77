"""The installed imgaug's conventions, which the fused backend reproduces without imgaug."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from animalpose.datasets.geometry import apply_affine
from animalpose.datasets.transforms.crop import warp_crop
from animalpose.datasets.transforms.strong import (
    AffineStep,
    BlurStep,
    ContrastStep,
    NoiseStep,
    StrongAugment,
    StrongParams,
    affine_step_matrix,
    draw_strong_params,
)

iaa = pytest.importorskip("imgaug.augmenters")
iap = pytest.importorskip("imgaug.parameters")
KeypointsOnImage = pytest.importorskip("imgaug.augmentables.kps").KeypointsOnImage


def affine_steps(n: int):
    rng = np.random.default_rng(5)
    return [draw_strong_params(rng, {"affine": 1.0}).affine for _ in range(n)]


@pytest.mark.parametrize("step", affine_steps(4))
def test_affine_step_matrix_is_imgaugs_image_warp(scene, step):
    """Same pixels as imgaug's Affine, so its matrix is in our pixel-centre convention."""
    frame = scene.textured_frame()
    ours = warp_crop(
        frame,
        affine_step_matrix(step, scene.frame)[:2],
        scene.frame,
        {0: 0, 1: 1}[step.order],
        step.fill,
    )
    theirs = iaa.Affine(
        scale={"x": step.scale[0], "y": step.scale[1]},
        translate_percent={"x": step.translate[0], "y": step.translate[1]},
        rotate=step.rotate,
        shear={"x": step.shear, "y": 0.0},
        order=step.order,
        cval=iap.DeterministicList(list(step.fill)),
        mode="constant",
    )(image=frame)
    # imgaug builds its matrix in float32: allow a one-level rounding difference.
    assert np.abs(ours.astype(int) - theirs).max() <= 1
    assert (ours != theirs).mean() < 0.01


@pytest.mark.parametrize("step", affine_steps(4))
def test_imgaug_keypoints_have_pixel_centres_at_half_integers(scene, step):
    xy = scene.keypoints[:, :2]
    kps = KeypointsOnImage.from_xy_array(xy + 0.5, shape=(scene.frame[1], scene.frame[0], 3))
    moved = (
        iaa.Affine(
            scale={"x": step.scale[0], "y": step.scale[1]},
            translate_percent={"x": step.translate[0], "y": step.translate[1]},
            rotate=step.rotate,
            shear={"x": step.shear, "y": 0.0},
        )(keypoints=kps).to_xy_array()
        - 0.5
    )
    np.testing.assert_allclose(
        moved, apply_affine(xy, affine_step_matrix(step, scene.frame)[:2]), atol=1e-3
    )
    flipped = iaa.Fliplr(1.0)(keypoints=kps).to_xy_array() - 0.5
    np.testing.assert_allclose(flipped[:, 0], scene.frame[0] - 1 - xy[:, 0], atol=1e-4)


def identity_scene(scene):
    """A square frame cropped whole into itself: the crop warp is an exact copy."""
    s = scene.out
    frame = np.kron(
        np.random.default_rng(1).integers(30, 226, (s // 8, s // 8, 3)), np.ones((8, 8, 1))
    ).astype(np.uint8)
    center = np.array([(s - 1) / 2.0, (s - 1) / 2.0])
    kp = np.concatenate([center + np.zeros((5, 2)), np.ones((5, 1))], axis=1)
    return frame, kp, center, float(s)


@pytest.mark.parametrize(
    "step",
    [BlurStep(1.7), BlurStep(4.2), ContrastStep((1.6,)), ContrastStep((0.55, 1.2, 1.95))],
    ids=str,
)
def test_fused_blur_and_contrast_equal_imgaug_on_an_identity_crop(scene, step):
    frame, kp, center, size = identity_scene(scene)
    copy = StrongAugment(output_size=scene.out, flip_index=scene.flip_index)
    unchanged = copy.apply(frame, kp, center, size, StrongParams((), False)).image
    np.testing.assert_array_equal(unchanged, frame)
    outs = [
        StrongAugment(output_size=scene.out, flip_index=scene.flip_index, backend=b)
        .apply(frame, kp, center, size, StrongParams((step,), False))
        .image
        for b in ("fused", "imgaug")
    ]
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.array_equal(outs[0], frame)


@pytest.mark.parametrize("per_channel", [False, True])
def test_fused_noise_has_imgaugs_statistics(scene, per_channel):
    s = scene.out
    frame = np.full((s, s, 3), 128, np.uint8)
    center, kp = np.array([(s - 1) / 2.0] * 2), np.ones((5, 3))
    deltas = []
    for backend in ("fused", "imgaug"):
        aug = StrongAugment(output_size=s, flip_index=scene.flip_index, backend=backend)
        params = StrongParams((NoiseStep(per_channel, 9),), False)
        img = aug.apply(frame, kp, center, float(s), params).image
        deltas.append(img.astype(float) - 128)
    # rint(127.5 N) clipped to [-128, 127] has std 91.6 (Monte Carlo, 2e6 samples).
    for d in deltas:
        assert 88 < d.std() < 95
        assert np.allclose(d[..., 0], d[..., 1]) != per_channel
    assert abs(deltas[0].std() - deltas[1].std()) < 4


def edge_sigma(image: np.ndarray) -> float:
    """Blur width (std of the derivative, px) of the vertical edge in the crop's middle."""
    s = image.shape[0]
    row = image[s // 2, s // 2 - 16 : s // 2 + 16, 0].astype(float)
    d = np.diff(row)
    x = np.arange(len(d))
    mu = (d * x).sum() / d.sum()
    return float(np.sqrt((d * (x - mu) ** 2).sum() / d.sum()))


def kernel_std(ksize: int, sigma: float) -> float:
    k = cv2.getGaussianKernel(ksize, sigma)[:, 0]
    x = np.arange(ksize) - ksize // 2
    return float(np.sqrt((k * x**2).sum()))


SHRINK = AffineStep((0.5, 0.5), (0.0, 0.0), 0.0, 0.0, 1, (0, 0, 0))


@pytest.mark.parametrize(
    "steps, crop_sigma, ksize",
    [
        ((BlurStep(4.0),), 2.0, 7),  # frame px -> crop px at k = 0.5
        ((BlurStep(4.0), SHRINK), 1.0, 5),  # blurred before the 0.5x affine: 4 x 0.5 x 0.5
        ((SHRINK, BlurStep(4.0)), 2.0, 7),
    ],  # blurred after it, in the affine's output pixels
    ids=["crop", "before-affine", "after-affine"],
)
def test_fused_blur_sigma_is_converted_to_crop_pixels(steps, crop_sigma, ksize):
    """A sharp edge at a crop pixel boundary, blurred: the derivative is the blur kernel.

    ksize is imgaug's kernel size for the crop sigma (3.3 sigma, at least 5, odd); the kernel is
    truncated, so its std is below sigma."""
    s, w = 96, 192
    frame = np.zeros((w, w, 3), np.uint8)
    frame[:, w // 2 :] = 255
    center, kp = np.array([(w - 1) / 2.0] * 2), np.ones((5, 3))
    widths = {}
    for backend in ("fused", "imgaug"):
        aug = StrongAugment(output_size=s, flip_index=np.arange(5), backend=backend)
        widths[backend] = edge_sigma(
            aug.apply(frame, kp, center, float(w), StrongParams(steps, False)).image
        )
    assert abs(widths["fused"] - kernel_std(ksize, crop_sigma)) < 0.05
    # imgaug blurs at frame resolution (its kernel truncated differently), then resamples.
    assert 0.8 < widths["fused"] / widths["imgaug"] < 1.3
