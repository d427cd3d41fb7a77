"""The mean teacher (adapt/mean_teacher.py): EMA maths and the warp into the student's crop."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from animalpose.adapt.mean_teacher import MeanTeacher, ema_decay, teacher_to_student
from animalpose.datasets.geometry import crop_matrix

SIZE, HM = 64, 16


def test_ema_update_matches_a_hand_computation():
    student = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    teacher = MeanTeacher(student, decay=0.9)
    t0 = teacher.model[0].weight.clone()
    assert ema_decay(0, 0.9) == 0.0 and ema_decay(1, 0.9) == 0.5 and ema_decay(50, 0.9) == 0.9
    with torch.no_grad():
        student[0].weight.add_(1.0)
        student[1].running_mean.fill_(3.0)
    teacher.update(student)  # step 0: decay 0 -> a copy
    torch.testing.assert_close(teacher.model[0].weight, student[0].weight)
    assert torch.equal(teacher.model[1].running_mean, torch.full((2,), 3.0))  # buffers copied
    w1 = student[0].weight.clone()
    with torch.no_grad():
        student[0].weight.mul_(2.0)
    teacher.update(student)  # step 1: decay 0.5
    torch.testing.assert_close(teacher.model[0].weight, 0.5 * w1 + 0.5 * 2 * w1)
    for _ in range(10):
        teacher.update(student)  # step >= 9: decay 0.9
    assert int(teacher.steps) == 12 and not torch.equal(t0, teacher.model[0].weight)
    prev = teacher.model[0].weight.clone()
    teacher.update(student)
    torch.testing.assert_close(teacher.model[0].weight, 0.9 * prev + 0.1 * student[0].weight)
    assert not any(p.requires_grad for p in teacher.model.parameters())
    teacher.train()
    assert not teacher.model.training  # stays in eval mode


def _peak_maps(points: list[tuple[int, int]]) -> torch.Tensor:
    """(1, K, 16, 16) one-hot heatmaps at heatmap pixels ``points``."""
    hm = torch.zeros(1, len(points), HM, HM)
    for k, (x, y) in enumerate(points):
        hm[0, k, y, x] = 1.0
    return hm


def _argmax(hm: torch.Tensor) -> list[tuple[int, int]]:
    flat = hm[0].flatten(1).argmax(1)
    return [(int(i % HM), int(i // HM)) for i in flat]


def _warp(hm, plain, student, flipped, flip_index):
    return teacher_to_student(
        hm,
        torch.as_tensor(np.asarray(plain)[None]),
        torch.as_tensor(np.asarray(student)[None]),
        torch.tensor([flipped]),
        torch.as_tensor(flip_index),
        (SIZE, SIZE),
    )


def test_identity_leaves_heatmaps_unchanged():
    m = crop_matrix((100.0, 80.0), 120.0, (SIZE, SIZE))
    hm = torch.rand(1, 3, HM, HM)
    torch.testing.assert_close(_warp(hm, m, m, False, [0, 1, 2]), hm, atol=1e-6, rtol=0)


def test_a_shift_moves_the_peaks_with_the_keypoints():
    plain = crop_matrix((100.0, 80.0), 128.0, (SIZE, SIZE))  # 2 source px per crop px
    student = crop_matrix((92.0, 80.0), 128.0, (SIZE, SIZE))  # centre 8 px left: content +4 px
    got = _argmax(_warp(_peak_maps([(5, 6), (9, 3)]), plain, student, False, [0, 1]))
    assert got == [(6, 6), (10, 3)]  # 4 crop px = 1 heatmap px to the right


def test_a_flip_mirrors_the_peaks_and_swaps_the_channels():
    plain = crop_matrix((100.0, 80.0), 128.0, (SIZE, SIZE))
    student = crop_matrix((100.0, 80.0), 128.0, (SIZE, SIZE), flip=True)
    # sanity: the flip mirrors crop pixels x -> 63 - x (heatmap x -> 15 - x)
    p = np.array([[1.0], [2.0], [1.0]])
    src = np.linalg.solve(np.vstack([plain, [0, 0, 1]]), p)
    assert (student @ src)[0, 0] == pytest.approx(SIZE - 1 - 1.0)
    hm = _peak_maps([(2, 5), (12, 7), (4, 4)])
    got = _argmax(_warp(hm, plain, student, True, [1, 0, 2]))
    # keypoint 0 <-> 1 swap: the student's channel 0 is the teacher's channel 1, mirrored
    assert got == [(15 - 12, 7), (15 - 2, 5), (15 - 4, 4)]
