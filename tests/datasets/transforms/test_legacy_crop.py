"""The reference's crop image (datasets/transforms/legacy_crop.py); values worked by hand."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from animalpose.datasets.geometry import apply_affine
from animalpose.datasets.transforms.legacy_crop import legacy_bytescale, legacy_crop
from animalpose.datasets.transforms.normalize import Normalizer


def test_bytescale_rounds_and_passes_uint8_through():
    # (v - 0.5) * 255 / 1.0: 0.5 -> 0, 0.89 -> 99.45 -> 99, 0.891 -> 99.7 -> 100 (floor: 99)
    out = legacy_bytescale(np.array([0.5, 0.89, 0.891, 1.5]))
    assert out.tolist() == [0, 99, 100, 255]
    assert legacy_bytescale(np.full((2, 2), 0.3)).tolist() == [[0, 0], [0, 0]]
    raw = np.array([3, 7], dtype=np.uint8)
    assert legacy_bytescale(raw) is raw


def _frame() -> np.ndarray:
    img = np.full((8, 8, 3), 50, np.uint8)
    img[1, 1], img[2, 2] = 99, 150
    return img


def test_inside_the_frame_the_box_is_copied_and_stretched():
    """centre (4, 4), scale 0.04 (8 px), output 8: the transform is the identity, corners (0, 0)
    and (8, 8); 50 -> 0, 99 -> (49 / 100) * 255 = 124.95 -> 125 (floored: 124), 150 -> 255."""
    crop, matrix = legacy_crop(_frame(), np.array([4, 4], np.float32), 0.04, 8)
    expected = np.zeros((8, 8), np.uint8)
    expected[1, 1], expected[2, 2] = 125, 255
    for ch in range(3):
        np.testing.assert_array_equal(crop[..., ch], expected)
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 1, 0]])


def test_a_box_hugging_the_frame_edge_pads_with_zeros_before_the_stretch():
    """centre (2, 4): corners (-2, 0) and (6, 8); two zero columns join the min-max, so
    50 -> 50 * 255 / 150 = 85, 99 -> 168.3 -> 168, 150 -> 255, and x -> x + 2."""
    crop, matrix = legacy_crop(_frame(), np.array([2, 4], np.float32), 0.04, 8)
    expected = np.full((8, 8), 85, np.uint8)
    expected[:, :2] = 0
    expected[1, 3], expected[2, 4] = 168, 255
    np.testing.assert_array_equal(crop[..., 1], expected)
    np.testing.assert_array_equal(apply_affine(np.array([[1.0, 2.0]]), matrix), [[3.0, 2.0]])


def test_800x600_frames_take_the_downscale_branch():
    """Box 600 px (scale 3) into 256: sf = 600 / 256 = 2.34375 >= 2, so the frame is first
    byte-scaled and PIL-resized to floor(800 / sf) x floor(600 / sf) = 341 x 256; the centre
    (400, 300) becomes (170.67, 128) and the scale 1.28, i.e. a 256-px box with corners
    (int(-1 + 42.67) + 1, 0) = (42, 0) and (298, 256): the crop is that window, stretched again."""
    rng = np.random.default_rng(0)
    frame = rng.integers(30, 220, (600, 800, 3), dtype=np.uint8)
    crop, matrix = legacy_crop(frame, np.array([400, 300], np.float32), 3.0, 256)
    scaled = frame.astype(np.float32) / np.float32(255)
    lo, hi = scaled.min(), scaled.max()
    step1 = ((scaled - lo) * np.float32(255.0 / float(hi - lo)) + np.float32(0.5)).astype(np.uint8)
    small = np.asarray(Image.fromarray(step1).resize((341, 256), Image.BILINEAR))
    window = small[0:256, 42:298].astype(np.float64)
    lo, hi = window.min(), window.max()
    expected = ((window - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(crop, expected)
    kx = 341 / 800
    np.testing.assert_allclose(
        matrix, [[kx, 0, 0.5 * kx - 0.5 - 42], [0, 256 / 600, 0.5 * 256 / 600 - 0.5]]
    )


def test_prescaled_legacy_input_only_subtracts_the_mean():
    images = torch.tensor([[[[0, 255]], [[51, 102]], [[3, 4]]]], dtype=torch.uint8)
    mean = (0.1, 0.2, 0.3)
    out = Normalizer(mean, (1.0, 1.0, 1.0), legacy=True, prescaled=True)(images)
    expected = images.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    np.testing.assert_allclose(out.numpy(), expected.numpy(), atol=1e-6)
