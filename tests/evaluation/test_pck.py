"""Legacy (reference) and precise PCK on hand-computed cases and against a loop oracle."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.keypoints import TIGER_PERMUTATION
from animalpose.evaluation.pck import (
    LegacyPCK,
    PrecisePCK,
    legacy_batch_accuracy,
    legacy_preds,
    pck_hits,
)

HM = 64  # heatmap side: legacy threshold 0.5 x 64 / 10 = 3.2 heatmap pixels


def _peaks(shape: tuple[int, int], points: dict[tuple[int, int], tuple[int, int]]) -> torch.Tensor:
    """(B, K, HM, HM) zeros with a 1 at (x, y) for each (sample, keypoint) -> (x, y)."""
    hm = torch.zeros(*shape, HM, HM)
    for (b, k), (x, y) in points.items():
        hm[b, k, y, x] = 1.0
    return hm


def _oracle(output: np.ndarray, target: np.ndarray, perm=None, thr=0.5) -> np.ndarray:
    """Loop transcription of the reference's get_preds / calc_dists / dist_acc semantics,
    result in target-slot order (as the reference printed it)."""
    b, k, h, w = output.shape

    def preds(maps):
        out = np.zeros((b, k, 2))
        for n in range(b):
            for c in range(k):
                flat = maps[n, c].reshape(-1)
                i = int(np.argmax(flat))
                if flat[i] > 0:
                    out[n, c] = (i % w + 1, i // w + 1)
        return out

    p, g = preds(output), preds(target)
    perm = list(range(k)) if perm is None else list(perm)
    p = p[:, perm]  # prediction channel perm[i] vs target slot i
    acc = np.zeros(k)
    for c in range(k):
        d = [
            np.linalg.norm(p[n, c] - g[n, c]) / (w / 10)
            for n in range(b)
            if g[n, c, 0] > 1 and g[n, c, 1] > 1
        ]
        acc[c] = sum(x < thr for x in d) / len(d) if d else -1
    return acc


def test_legacy_preds_are_one_based_and_masked():
    hm = torch.full((1, 2, HM, HM), -1.0)
    hm[0, 0, 7, 3] = 2.0
    hm[0, 1, 5, 9] = -0.5  # maximum not positive -> (0, 0)
    assert legacy_preds(hm).tolist() == [[[4.0, 8.0], [0.0, 0.0]]]


def test_legacy_hand_computed_batch():
    target = _peaks(
        (2, 4),
        {
            (0, 0): (10, 10),
            (0, 1): (20, 20),
            (0, 2): (30, 30),
            (0, 3): (2, 2),
            (1, 0): (5, 5),  # (1, 1) empty target -> skipped
            (1, 2): (0, 40),  # column 0 -> 1-based x = 1, not > 1 -> skipped
            (1, 3): (40, 0),  # row 0 -> skipped
        },
    )
    output = _peaks(
        (2, 4),
        {
            (0, 0): (13, 10),  # 3 px < 3.2: hit
            (0, 1): (22, 22),  # 2.83 px: hit
            (0, 2): (30, 34),  # 4 px: miss
            (1, 0): (5, 9),  # 4 px: miss
            (1, 1): (50, 50),
            (1, 2): (0, 40),  # exact, but its target is skipped
            (1, 3): (40, 0),
        },
    )
    # (0, 3): output channel all -1 except -0.5 exactly on the target: the non-positive
    # maximum is masked to (0, 0) -> 1-based distance from (3, 3) is 4.24 px: miss.
    output[0, 3] = -1.0
    output[0, 3, 2, 2] = -0.5
    acc = legacy_batch_accuracy(output, target)
    assert acc.tolist() == pytest.approx([0.5, 1.0, 0.0, 0.0])
    assert np.allclose(acc.numpy(), _oracle(output.numpy(), target.numpy()))


def test_legacy_column_one_is_counted():
    target = _peaks((1, 1), {(0, 0): (1, 1)})  # 1-based (2, 2) > 1
    assert legacy_batch_accuracy(target.clone(), target).tolist() == [1.0]


def test_legacy_no_valid_keypoint_gives_minus_one_and_threshold_is_strict():
    target = _peaks((1, 2), {(0, 0): (10, 10)})
    output = _peaks((1, 2), {(0, 0): (10, 10), (0, 1): (3, 3)})
    assert legacy_batch_accuracy(output, target).tolist() == [1.0, -1.0]
    # distance exactly at the threshold is a miss: heatmap width 20 -> norm 2, 1 px -> 0.5
    t20 = torch.zeros(1, 1, 20, 20)
    t20[0, 0, 10, 10] = 1
    o20 = torch.zeros(1, 1, 20, 20)
    o20[0, 0, 10, 11] = 1
    assert legacy_batch_accuracy(o20, t20).tolist() == [0.0]
    assert legacy_batch_accuracy([o20 * 0, o20], t20, threshold=0.51).tolist() == [1.0]


def test_legacy_matches_loop_oracle_on_random_maps():
    gen = torch.Generator().manual_seed(0)
    codec = MSRAHeatmap((256, 256), (HM, HM), 1.0)
    kp = torch.rand(6, 18, 2, generator=gen) * 256
    vis = (torch.rand(6, 18, generator=gen) > 0.2).float()
    target, _ = codec.encode(kp, vis)
    noisy = kp + torch.randn(6, 18, 2, generator=gen) * 10
    output, _ = codec.encode(noisy, torch.ones(6, 18))
    output = output + 0.01 * torch.rand(output.shape, generator=gen)
    ours = legacy_batch_accuracy(output, target)
    assert np.allclose(ours.numpy(), _oracle(output.numpy(), target.numpy()))
    assert 0 < ours[ours >= 0].mean() < 1  # a mix of hits and misses


def test_legacy_pck_is_mean_of_batch_fractions():
    t_a = _peaks((2, 2), {(0, 0): (10, 10), (1, 0): (20, 20)})
    o_a = _peaks((2, 2), {(0, 0): (10, 10), (1, 0): (30, 20)})  # 1 of 2
    t_b = _peaks((1, 2), {(0, 0): (10, 10)})
    o_b = _peaks((1, 2), {(0, 0): (11, 10)})  # 1 of 1
    metric = LegacyPCK()
    metric.update(o_a, t_a)
    metric.update(o_b, t_b)
    result = metric.compute()
    assert result[0] == pytest.approx(0.75)  # mean(0.5, 1.0); the pooled fraction is 2/3
    assert math.isnan(result[1])  # never valid
    metric.reset()
    metric.update(o_b, t_b)
    assert metric.compute()[0] == 1.0


def test_legacy_tiger_permutation():
    gen = torch.Generator().manual_seed(1)
    codec = MSRAHeatmap((256, 256), (HM, HM), 1.0)
    kp = 40 + torch.rand(6, 18, 2, generator=gen) * 176
    target_model, _ = codec.encode(kp, torch.ones(6, 18))
    noisy = kp + torch.randn(6, 18, 2, generator=gen) * torch.linspace(0, 25, 18)[:, None]
    output, _ = codec.encode(noisy, torch.ones(6, 18))
    perm = list(TIGER_PERMUTATION)
    target_tigdog = target_model[:, perm]  # TigDog slot i holds model keypoint perm[i]
    expected = legacy_batch_accuracy(output, target_model)
    got = legacy_batch_accuracy(output, target_tigdog, permutation=perm)
    assert torch.equal(got, expected)
    assert not torch.equal(legacy_batch_accuracy(output, target_tigdog), expected)
    # the reference printed the same numbers in TigDog slot order
    assert np.allclose(got.numpy()[perm], _oracle(output.numpy(), target_tigdog.numpy(), perm))
    # a non-involution permutation is handled as a general permutation
    cyc = list(range(1, 18)) + [0]
    assert torch.equal(
        legacy_batch_accuracy(output, target_model[:, cyc], permutation=cyc), expected
    )
    metric = LegacyPCK(permutation=perm)
    metric.update(output, target_tigdog)
    assert np.allclose(metric.compute(), expected.numpy())
    with pytest.raises(ValueError, match="permutation"):
        legacy_batch_accuracy(output, target_model, permutation=[0] * 18)
    with pytest.raises(ValueError, match="permutation"):
        LegacyPCK(permutation=[0] * 18)
    metric = LegacyPCK(permutation=cyc)  # the cached device tensor path
    metric.update(output, target_model[:, cyc])
    assert np.allclose(metric.compute(), expected.numpy())


def test_pck_hits_hand_computed():
    gt = torch.tensor(
        [
            [[100.0, 100.0, 1.0], [50.0, 50.0, 1.0], [10.0, 10.0, 0.0]],
            [[0.0, 0.0, 2.0], [20.0, 20.0, 1.0], [10.0, 10.0, 1.0]],
        ],
        dtype=torch.float64,
    )
    pred = torch.tensor(
        [[[104.9, 100.0], [50.0, 55.0], [10.0, 10.0]], [[3.0, 4.0], [20.0, 20.0], [10.0, 30.0]]]
    )
    norm = torch.tensor([100.0, 50.0])  # thresholds 5 px and 2.5 px
    hits, valid = pck_hits(pred, gt, norm)
    assert valid.tolist() == [[True, True, False], [True, True, True]]
    # 4.9 < 5 hit; 5 not < 5 miss; invisible never a hit; 5 > 2.5 miss; 0 hit; 20 miss
    assert hits.tolist() == [[True, False, False], [False, True, False]]


def test_precise_pck_pools_over_samples():
    metric = PrecisePCK(alpha=0.1)
    gt = torch.zeros(2, 2, 3, dtype=torch.float64)
    gt[..., 2] = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    pred = torch.tensor([[[0.5, 0.0], [0, 0]], [[2.0, 0.0], [0, 0]]])
    metric.update(pred, gt, torch.tensor([10.0, 10.0]))
    metric.update(torch.tensor([[[0.0, 0.0], [0, 0]]]), gt[:1], torch.tensor([10.0]))
    assert metric.compute()[0] == pytest.approx(2 / 3)  # pooled, not mean(0.5, 1)
    assert math.isnan(metric.compute()[1])
    assert metric.counts.tolist() == [3, 0]
    metric.reset()
    with pytest.raises(RuntimeError):
        metric.compute()


def test_legacy_auc_and_mean_error_are_the_reference_log_columns():
    """ "Val Auc" and "Val Mean Error" of the reference's train.py log (its calc_metrics): every
    counted distance (in heatmap width / 10 units) pooled over batches; hand-placed peaks."""
    norm = HM / 10
    target = _peaks((2, 3), {(0, 0): (10, 10), (0, 1): (20, 20), (1, 0): (30, 30), (1, 2): (0, 9)})
    # distances: 0, 3 px (0.46875), 5 px (0.78125); (1, 2) sits in column 0: skipped; (0, 2)
    # and (1, 1) have empty targets: skipped.
    output = _peaks((2, 3), {(0, 0): (10, 10), (0, 1): (23, 20), (1, 0): (30, 35), (1, 2): (0, 9)})
    metric = LegacyPCK()
    metric.update(output[:1], target[:1])
    metric.update(output[1:], target[1:])
    errors = [0.0, 3 / norm, 5 / norm]
    assert metric.mean_error() == pytest.approx(sum(errors) / 3)
    thresholds = [i / 99 for i in range(1, 81)]
    shares = [sum(e < t for e in errors) / 3 for t in thresholds]
    assert metric.auc() == round(sum(shares) / 0.8, 2)
    empty = LegacyPCK()
    empty.update(output[:, 2:], torch.zeros_like(target[:, 2:]))
    assert math.isnan(empty.auc()) and math.isnan(empty.mean_error())
