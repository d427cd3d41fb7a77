"""draw_keypoints draws points and skeleton limbs only where asked, on a copy."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets.keypoints import ANIMAL18
from animalpose.evaluation.visualize import draw_keypoints

RED = (255, 0, 0)


def _keypoints() -> np.ndarray:
    kp = np.zeros((18, 3))
    kp[:, 0] = np.linspace(20, 230, 18)
    kp[:, 1] = 128
    kp[:, 2] = 1
    kp[ANIMAL18.index("left_eye")] = (40, 40, 1)
    kp[ANIMAL18.index("right_eye")] = (100, 40, 1)
    kp[ANIMAL18.index("chin")] = (70, 200, 0)  # not visible
    return kp


def test_draws_points_and_limbs_on_a_copy():
    image = np.zeros((256, 256, 3), np.uint8)
    out = draw_keypoints(image, _keypoints(), ANIMAL18, color=RED)
    assert image.max() == 0  # input untouched
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert tuple(out[40, 40]) == RED and tuple(out[40, 100]) == RED
    assert out[40, 70, 0] > 128 and out[40, 70, 1:].max() == 0  # eye-eye limb (anti-aliased)
    assert out[200, 70].max() == 0  # invisible chin not drawn
    assert out[120, 55].max() == 0  # no limb eye -> chin


def test_scores_threshold_and_two_columns():
    kp = _keypoints()[:, :2]
    scores = np.ones(18)
    scores[ANIMAL18.index("right_eye")] = 0.1
    out = draw_keypoints(
        np.zeros((256, 256, 3), np.uint8), kp, ANIMAL18, color=RED, scores=scores, threshold=0.5
    )
    assert tuple(out[40, 40]) == RED and out[40, 100].max() == 0 and out[40, 70].max() == 0
    assert out[128, 20:231].max() == 255  # the other keypoints and limbs are drawn
    assert tuple(out[200, 70]) == RED  # (K, 2): no visibility column, chin drawn


def test_rejects_bad_shapes():
    with pytest.raises(ValueError, match="keypoints"):
        draw_keypoints(np.zeros((8, 8, 3), np.uint8), np.zeros((17, 2)), ANIMAL18)
    with pytest.raises(ValueError, match="image"):
        draw_keypoints(np.zeros((8, 8), np.uint8), np.zeros((18, 2)), ANIMAL18)
