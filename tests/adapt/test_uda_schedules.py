"""UDA-Animal's schedules and losses (adapt/uda.py) against hand computations."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from animalpose.adapt.uda import (
    UDASchedule,
    cosine_ramp_down,
    distill_mse,
    mixup,
    mixup_draw,
    paper_epoch,
    sigmoid_ramp_up,
    small_loss_count,
    small_loss_mse,
    small_loss_weights,
)


def test_ramps_known_values():
    assert sigmoid_ramp_up(0, 10) == pytest.approx(math.exp(-5))
    assert sigmoid_ramp_up(5, 10) == pytest.approx(math.exp(-1.25))
    assert sigmoid_ramp_up(10, 10) == 1.0 and sigmoid_ramp_up(50, 10) == 1.0
    assert cosine_ramp_down(0, 15, 8, 15) == pytest.approx(15)
    assert cosine_ramp_down(7.5, 15, 8, 15) == pytest.approx(11.5)
    assert cosine_ramp_down(15, 15, 8, 15) == pytest.approx(8)
    assert cosine_ramp_down(40, 15, 8, 15) == pytest.approx(8)


def test_small_loss_count_follows_the_paper_and_its_floor():
    # k = 18 - max(epoch - 2, 0), floored at 9
    assert [small_loss_count(e, 18) for e in (0, 2, 3, 5.9, 10, 11, 12, 80)] == [
        18,
        18,
        17,
        15,
        10,
        9,
        9,
        9,
    ]


def test_paper_epochs_scale_to_the_run():
    assert paper_epoch(3, 12, 80) == pytest.approx(20)
    assert paper_epoch(3, 12, 0) == 3


def _adapt(**kw):
    base = dict(
        target_weight=15.0,
        target_weight_ramp="cosine",
        target_weight_end=8.0,
        target_weight_ramp_epochs=15.0,
        consistency_ramp_epochs=10.0,
        teacher_weight=90.0,
        distill_weight=90.0,
        teacher=True,
        distill=True,
        small_loss=True,
        uda_paper_epochs=80,
    )
    return SimpleNamespace(**{**base, **kw})


def test_schedule_at_maps_run_progress_onto_paper_epochs():
    s = UDASchedule(_adapt(), run_epochs=16, num_keypoints=18)
    w = s.at(0.0)
    assert (w.pseudo, w.keep) == (15.0, 18) and w.teacher == pytest.approx(90 * math.exp(-5))
    w = s.at(1 / 16)  # run epoch 1 = paper epoch 5
    assert w.pseudo == pytest.approx(8 + 7 * 0.5 * (1 + math.cos(math.pi / 3)))
    assert w.keep == 15 and w.distill == pytest.approx(90 * math.exp(-1.25))
    off = UDASchedule(
        _adapt(teacher=False, distill=False, small_loss=False, target_weight_ramp="constant"),
        run_epochs=16,
        num_keypoints=18,
    ).at(0.5)
    assert (off.pseudo, off.teacher, off.distill, off.keep) == (15.0, 0.0, 0.0, 18)


def test_small_loss_weights_keep_the_k_smallest_weighted_keypoints():
    losses = torch.tensor([[0.5, 0.1, 0.3, 0.2], [0.4, 0.3, 0.2, 0.1]])
    weights = torch.tensor([[1.0, 0.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    got = small_loss_weights(losses, weights, 2)
    # row 0: keypoint 1 has no weight, so 3 (0.2) and 2 (0.3); row 1: 3 and 2
    assert got.tolist() == [[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]
    assert small_loss_weights(losses, weights, 4) is weights


def test_small_loss_mse_equals_a_hand_computation():
    g = torch.Generator().manual_seed(0)
    pred = [torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)]
    target = torch.rand(2, 3, 4, 4, generator=g)
    weights = torch.ones(2, 3)
    got = small_loss_mse(pred, target, weights, 1)
    expected = 0.0
    per = sum(((p - target) ** 2).mean(dim=(2, 3)) for p in pred)  # (B, K) summed over stacks
    for b in range(2):
        k = int(per[b].argmin())
        for p in pred:  # 0.5 * mean over (B, K, h, w), the kept keypoint only
            expected += 0.5 * ((p[b, k] - target[b, k]) ** 2).sum() / (2 * 3 * 16)
    assert got.item() == pytest.approx(float(expected), rel=1e-6)


def test_distill_mse_trains_the_coarse_stack_only():
    coarse = torch.rand(2, 3, 4, 4, requires_grad=True)
    refined = torch.rand(2, 3, 4, 4, requires_grad=True)
    loss = distill_mse([coarse, refined], 3)
    assert loss.item() == pytest.approx(0.5 * ((coarse - refined) ** 2).mean().item(), rel=1e-6)
    loss.backward()
    assert coarse.grad is not None and refined.grad is None


def test_mixup_draw_and_mix():
    lam, perm = mixup_draw(np.random.default_rng(0), 5)
    assert 0.5 <= lam <= 1 and sorted(perm.tolist()) == list(range(5))
    x = torch.arange(5.0)
    perm_t = torch.as_tensor(perm)
    torch.testing.assert_close(mixup(x, lam, perm_t), lam * x + (1 - lam) * x[perm_t])
    assert mixup_draw(np.random.default_rng(0), 5)[0] == lam  # seeded: the same draw
