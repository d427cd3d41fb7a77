"""G-RMI disk + offset targets, their loss, and the Hough-voting decoder (issue 14).

The round trips run at the top-down size 192x256 -> 48x64 (non-square, UDP's unit-length
alignment: 191/47 input pixels per heatmap pixel along x, 255/63 along y).
"""

import math

import numpy as np
import pytest
import torch

from animalpose.datasets.codecs.offset import (
    OffsetHeatmap,
    OffsetLoss,
    hough_votes,
    vote_mean,
)
from animalpose.datasets.codecs.udp import UDPHeatmap
from animalpose.evaluation.inference import flip_rule

INPUT = (192, 256)
HEATMAP = (48, 64)
#: Logit magnitude standing in for the target's 0/1 disk (sigmoid(12) = 1 - 6e-6).
LOGIT = 12.0


def _points(n, margin, seed=0):
    """(n, 2) float32 random sub-pixel input points at least ``margin`` input pixels inside."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(margin, INPUT[0] - 1 - margin, n)
    ys = rng.uniform(margin, INPUT[1] - 1 - margin, n)
    return np.stack([xs, ys], axis=-1).astype(np.float32)


def _logits(targets, magnitude=LOGIT):
    """Targets (..., 3K, h, w) -> predictions: disk channels as +-``magnitude`` logits."""
    out = np.array(targets, dtype=np.float32, copy=True)
    out[..., 0::3, :, :] = np.where(out[..., 0::3, :, :] > 0.5, magnitude, -magnitude)
    return out


def _heatmap_error(codec, decoded, keypoints):
    """(n,) Euclidean error in heatmap pixels."""
    return np.linalg.norm(codec.to_heatmap(decoded) - codec.to_heatmap(keypoints), axis=-1)


# -- targets ---------------------------------------------------------------------------------------
def test_targets_by_hand():
    codec = OffsetHeatmap(INPUT, HEATMAP, radius=2.0)
    assert isinstance(codec, UDPHeatmap) and codec.channels_per_keypoint == 3
    hm = np.array([[10.25, 20.5], [-30.0, 5.0], [3.0, 3.0]])
    keypoints = codec.to_input(hm).astype(np.float32)
    targets, weights = codec.encode(keypoints, np.array([1.0, 1.0, 0.0]))
    assert targets.shape == (9, 64, 48) and targets.dtype == np.float32
    # Keypoint 0: pixel (10, 20) is 0.56 pixels away, offsets (0.25, 0.5) / R.
    np.testing.assert_allclose(targets[0:3, 20, 10], [1.0, 0.125, 0.25], atol=1e-5)
    # (12, 20): distance^2 = 1.75^2 + 0.5^2 = 3.3 <= 4, in the disk.
    np.testing.assert_allclose(targets[0:3, 20, 12], [1.0, -0.875, 0.25], atol=1e-5)
    # (13, 20): distance^2 = 7.6 > 4, all channels zero.
    np.testing.assert_array_equal(targets[0:3, 20, 13], 0.0)
    # The disk is every pixel centre within R, counted independently.
    ys, xs = np.mgrid[0:64, 0:48]
    inside = (xs - 10.25) ** 2 + (ys - 20.5) ** 2 <= 4.0 + 1e-6
    np.testing.assert_array_equal(targets[0] > 0.5, inside)
    np.testing.assert_array_equal(targets[1][~inside], 0.0)
    # Keypoint 1 misses the map, keypoint 2 is not labelled: weight 0, empty maps.
    np.testing.assert_array_equal(weights, [1.0, 0.0, 0.0])
    assert np.abs(targets[3:]).max() == 0.0


def test_constructor_errors_repr_and_with_sigma():
    codec = OffsetHeatmap(INPUT, HEATMAP, sigma=2.0)
    assert repr(codec) == (
        "OffsetHeatmap(input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0, radius=4.5, "
        "vote_scale=1, blur_kernel=5, window=2.0)"
    )
    other = codec.with_sigma(1.5)
    assert type(other) is OffsetHeatmap and vars(other) == {**vars(codec), "sigma": 1.5}
    assert OffsetHeatmap(INPUT, HEATMAP, vote_scale=2).blur_kernel == 9
    for bad in ({"radius": 0.0}, {"vote_scale": 0}, {"vote_scale": 1.5}, {"window": -1.0}):
        with pytest.raises(ValueError):
            OffsetHeatmap(INPUT, HEATMAP, **bad)
    with pytest.raises(ValueError, match="blur_kernel"):
        OffsetHeatmap(INPUT, HEATMAP, blur_kernel=4)


# -- Hough voting ----------------------------------------------------------------------------------
def test_hough_votes_by_hand():
    points = torch.tensor(
        [[1.25, 2.5], [-0.5, 0.0], [3.0, 4.0], [3.5, 0.0], [-1.5, 1.0], [10.0, 1.0], [math.nan, 1]]
    )
    weights = torch.tensor([2.0, 1.0, 1.0, 4.0, 5.0, 5.0, 5.0])
    maps = hough_votes(points, weights, (4, 5))
    expected = torch.zeros(5, 4)
    expected[2, 1], expected[2, 2], expected[3, 1], expected[3, 2] = 0.75, 0.25, 0.75, 0.25
    expected[0, 0] += 0.5  # half of the vote at x = -0.5; the other half is off the map
    expected[4, 3] += 1.0  # on a pixel centre, the last one
    expected[0, 3] += 2.0  # half of the vote at x = 3.5
    torch.testing.assert_close(maps, expected)
    # Batched: every leading index gets its own map.
    batch = hough_votes(torch.stack([points, points + 1]), torch.stack([weights, weights]), (4, 5))
    torch.testing.assert_close(batch[0], expected)
    assert batch[1, 1, 1] == pytest.approx(0.5)  # the x = -0.5 vote moved to 0.5


def test_vote_mean_by_hand():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    weights = torch.tensor([1.0, 3.0, 10.0])
    torch.testing.assert_close(
        vote_mean(points, weights, torch.tensor([0.5, 0.0]), 2.0), torch.tensor([0.75, 0.0])
    )
    # No vote within the window: the centre stays.
    torch.testing.assert_close(
        vote_mean(points, weights, torch.tensor([20.0, 20.0]), 2.0), torch.tensor([20.0, 20.0])
    )


# -- decode ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("vote_scale", [1, 2])
def test_round_trip_is_subpixel_on_the_whole_map(vote_scale):
    codec = OffsetHeatmap(INPUT, HEATMAP, vote_scale=vote_scale)
    keypoints = _points(300, margin=0.0, seed=vote_scale)
    keypoints[:4] = [[0, 0], [191, 255], [0, 255], [191, 0]]  # the map's corner pixel centres
    targets, weights = codec.encode(keypoints, np.ones(300))
    assert weights.min() == 1.0
    decoded, scores = codec.decode(_logits(targets))
    assert isinstance(decoded, np.ndarray) and decoded.shape == (300, 2)
    # Every disk pixel votes for the keypoint itself: exact up to float32 rounding, well
    # within the sub-pixel bound of 0.1 heatmap pixel.
    assert _heatmap_error(codec, decoded, keypoints).max() < 1e-3
    np.testing.assert_allclose(scores, 1 / (1 + np.exp(-LOGIT)), rtol=1e-6)


def test_round_trip_with_noisy_offsets_and_soft_logits():
    codec = OffsetHeatmap(INPUT, HEATMAP)
    n = 200
    keypoints = _points(n, margin=4.0, seed=3)
    targets, _ = codec.encode(keypoints, np.ones(n))
    rng = np.random.default_rng(4)
    outputs = _logits(targets, magnitude=3.0).reshape(n, 3, 64, 48)
    # Offset noise of 0.05 R = 0.225 heatmap pixels per axis on every pixel.
    outputs[:, 1:] += rng.normal(0.0, 0.05, outputs[:, 1:].shape).astype(np.float32)
    decoded, _ = codec.decode(outputs.reshape(3 * n, 64, 48))
    error = _heatmap_error(codec, decoded, keypoints)
    # The mean of ~60 disk votes (std 0.225 per axis) has a standard error near 0.03 pixel.
    assert error.mean() < 0.06 and error.max() < 0.2


def test_decode_follows_the_votes_not_the_peak():
    codec = OffsetHeatmap(INPUT, HEATMAP, radius=4.0)
    outputs = torch.zeros(3, 64, 48)
    outputs[0] = -10.0
    ys, xs = torch.meshgrid(torch.arange(64.0), torch.arange(48.0), indexing="ij")
    # Cluster A: a 7x7 block of logit 2 whose votes meet at (10.3, 10.6).
    block = ((xs - 10).abs() <= 3) & ((ys - 10).abs() <= 3)
    outputs[0][block] = 2.0
    outputs[1][block] = ((10.3 - xs) / 4.0)[block]
    outputs[2][block] = ((10.6 - ys) / 4.0)[block]
    # Cluster B: two pixels of logit 4 (the highest probability) voting for themselves.
    outputs[0, 40, 30] = outputs[0, 40, 31] = 4.0
    decoded, scores = codec.decode(outputs)
    torch.testing.assert_close(codec.to_heatmap(decoded), torch.tensor([[10.3, 10.6]]))
    torch.testing.assert_close(scores, torch.sigmoid(torch.tensor([4.0])))


def test_decode_batched_tensor_on_leading_dims():
    codec = OffsetHeatmap(INPUT, HEATMAP)
    keypoints = torch.from_numpy(_points(6, margin=2.0, seed=5)).reshape(2, 3, 2)
    targets, weights = codec.encode(keypoints, torch.ones(2, 3))
    assert targets.shape == (2, 9, 64, 48) and weights.shape == (2, 3)
    decoded, scores = codec.decode(torch.from_numpy(_logits(targets.numpy())))
    assert decoded.shape == (2, 3, 2) and scores.shape == (2, 3)
    torch.testing.assert_close(decoded, keypoints, atol=2e-3, rtol=0)
    with pytest.raises(ValueError, match="3 channels per keypoint"):
        codec.decode(torch.zeros(1, 4, 64, 48))


# -- flip test -------------------------------------------------------------------------------------
def test_flip_back_of_the_mirrored_targets_is_the_original():
    codec = OffsetHeatmap(INPUT, HEATMAP)
    flip_index = np.array([1, 0, 2, 4, 3])
    keypoints = _points(5, margin=1.0, seed=6)
    mirrored = keypoints.copy()
    mirrored[:, 0] = INPUT[0] - 1 - mirrored[:, 0]
    mirrored = mirrored[flip_index]
    targets, _ = codec.encode(keypoints, np.ones(5))
    mirrored_targets, _ = codec.encode(mirrored, np.ones(5))
    back = codec.flip_back(mirrored_targets, flip_index)
    np.testing.assert_allclose(back, targets, atol=1e-5)
    decoded, _ = codec.decode(_logits(back))
    assert _heatmap_error(codec, decoded, keypoints).max() < 1e-3
    # The flip test compiles the rule into column moves with signs and gets the same values.
    unflip = flip_rule(codec, flip_index)
    torch.testing.assert_close(
        unflip(torch.from_numpy(mirrored_targets)[None])[0], torch.from_numpy(back)
    )


# -- loss ------------------------------------------------------------------------------------------
def _small_target():
    """One keypoint on a 4x4 map, R = 2: two disk pixels with offsets (0.25, -1) and (0, 0.5)."""
    target = torch.zeros(1, 3, 4, 4)
    target[0, :, 1, 1] = torch.tensor([1.0, 0.25, -1.0])
    target[0, :, 1, 2] = torch.tensor([1.0, 0.0, 0.5])
    return target


def test_loss_by_hand():
    loss = OffsetHeatmap(INPUT, HEATMAP, radius=2.0).make_loss()
    assert isinstance(loss, OffsetLoss) and loss.radius == 2.0
    assert (loss.lambda_heatmap, loss.lambda_offset, loss.huber_delta) == (4.0, 1.0, 1.0)
    target = _small_target()
    weights = torch.tensor([[0.5]])
    pred = torch.zeros_like(target)
    # L_h: logits 0 give log 2 at every pixel, times the weight 0.5.
    # L_o in pixels: R * target = (0.5, -2) -> 0.125 + 1.5; (0, 1) -> 0 + 0.5; mean per pixel.
    expected = 4.0 * 0.5 * math.log(2.0) + 1.0 * (1.625 + 0.5) / 2
    value = loss([pred], target, weights)
    assert value.dtype == torch.float32 and value.dim() == 0
    assert value.item() == pytest.approx(expected, rel=1e-6)
    # Summed over outputs; per-output targets are accepted.
    assert loss([pred, pred], [target, target], weights).item() == pytest.approx(2 * expected)
    assert loss([pred.bfloat16()], target, weights).dtype == torch.float32


def test_loss_vanishes_at_the_target_limit_and_grows_away_from_it():
    codec = OffsetHeatmap(INPUT, HEATMAP)
    loss = codec.make_loss()
    keypoints = torch.from_numpy(_points(6, margin=2.0, seed=7)).reshape(2, 3, 2)
    targets, weights = codec.encode(keypoints, torch.ones(2, 3))
    values = [
        loss([torch.from_numpy(_logits(targets.numpy(), m))], targets, weights) for m in (4, 8, 30)
    ]
    assert values[0] > values[1] > values[2] and values[2] < 1e-9
    off = torch.from_numpy(_logits(targets.numpy(), 30.0))
    off[:, 1::3] += 0.1
    assert loss([off], targets, weights) > 1e-3
    # Weight 0 everywhere: nothing to learn, no NaN.
    assert loss([off], targets, torch.zeros(2, 3)).item() == 0.0


def test_loss_gradient_signs():
    loss = OffsetLoss(2.0)
    target = torch.cat([_small_target(), _small_target()], dim=1)  # two keypoints
    pred = torch.zeros_like(target)
    pred[0, 1::3] = 0.3  # x offsets above the targets 0.25 and 0 (and the 0 outside)
    pred.requires_grad_(True)
    loss([pred], target, torch.tensor([[1.0, 0.0]])).backward()
    grad = pred.grad[0]
    disk = target[0, 0] > 0
    assert (grad[0][disk] < 0).all() and (grad[0][~disk] > 0).all()  # raise inside, lower outside
    assert (grad[1][disk] > 0).all() and (grad[1][~disk] == 0).all()  # offsets: only the disk
    assert (grad[2][1, 1] > 0) and (grad[2][1, 2] < 0)  # y: -1 and 0.5 targets from 0
    assert (grad[3:] == 0).all()  # the weight-0 keypoint


def test_loss_errors():
    loss = OffsetLoss(2.0)
    target = _small_target()
    with pytest.raises(TypeError, match="list"):
        loss(target, target, torch.ones(1, 1))
    with pytest.raises(ValueError, match="empty"):
        loss([], target, torch.ones(1, 1))
    with pytest.raises(ValueError, match=r"\(B, 3K, h, w\)"):
        loss([target[:, :2]], target[:, :2], torch.ones(1, 1))
    with pytest.raises(ValueError, match="weights"):
        loss([target], target, torch.ones(1, 2))
    with pytest.raises(ValueError, match="2 target tensors for 1 outputs"):
        loss([target], [target, target], torch.ones(1, 1))
    with pytest.raises(ValueError):
        OffsetLoss(0.0)
