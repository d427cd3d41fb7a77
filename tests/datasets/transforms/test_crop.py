"""The plain crop and the crop helpers every augmenter shares."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets.geometry import apply_affine
from animalpose.datasets.transforms.crop import (
    CenterCrop,
    check_inputs,
    finish_keypoints,
    inside_frame,
    mark_outside,
)


def test_pixel_area_bounds_are_half_open():
    xy = np.array([[-0.5, 0.0], [-0.51, 0.0], [9.49, 4.49], [9.5, 0.0], [0.0, 4.5]])
    np.testing.assert_array_equal(inside_frame(xy, (10, 5)), [True, False, True, False, False])


def test_mark_outside_zeroes_missing_outside_and_non_finite_keypoints():
    kp = np.array(
        [[3.0, 4.0, 1.0], [3.0, 4.0, 0.0], [10.0, 4.0, 1.0], [np.nan, 1.0, 1.0], [-0.5, 9.4, 2.0]]
    )
    out = mark_outside(kp, 10, 10)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[[1, 2, 3]], 0)
    np.testing.assert_array_equal(out[[0, 4]], kp[[0, 4]].astype(np.float32))


def test_finish_keypoints_drops_then_swaps_channels_on_a_flip():
    crop_xy = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]])
    keypoints = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    keep = np.array([True, False, True])
    out = finish_keypoints(crop_xy, keypoints, keep, True, np.array([1, 0, 2]), 8)
    np.testing.assert_array_equal(out, [[0, 0, 0], [1, 1, 1], [3, 3, 1]])


def test_check_inputs_rejects_non_uint8_images_and_bad_keypoints():
    image = np.zeros((4, 4, 3), np.uint8)
    assert check_inputs(image, [[1, 2, 1]]).dtype == np.float64
    with pytest.raises(ValueError, match="uint8"):
        check_inputs(image.astype(np.float32), [[1, 2, 1]])
    with pytest.raises(ValueError, match=r"\(K, 3\)"):
        check_inputs(image, [[1, 2]])


def test_center_crop_moves_keypoints_with_its_matrix():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    kp = np.array([[30.0, 20.0, 1.0], [20.0, 25.0, 1.0], [59.0, 1.0, 0.0]])
    res = CenterCrop(16)(image, kp, np.array([30.0, 20.0]), 32.0)
    assert res.image.shape == (16, 16, 3) and not res.flipped
    np.testing.assert_allclose(res.keypoints[:2, :2], apply_affine(kp[:2, :2], res.matrix))
    np.testing.assert_allclose(res.keypoints[0, :2], [7.5, 7.5])  # the centre maps to (S - 1) / 2
    np.testing.assert_array_equal(res.keypoints[2], 0)  # missing
