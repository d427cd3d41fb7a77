"""KeypointMSELoss: hand-computed values and the reference's per-keypoint formulation."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from animalpose.train.loss import KeypointMSELoss, keypoint_mse


def _reference_joints_mse(output, target, target_weight):
    """The reference JointsMSELoss (use_target_weight=True) divided by K, re-derived."""
    batch, joints = output.shape[:2]
    pred = output.reshape(batch, joints, -1)
    gt = target.reshape(batch, joints, -1)
    criterion = nn.MSELoss(reduction="mean")
    loss = 0.0
    for k in range(joints):
        w = target_weight[:, k].reshape(batch, 1)
        loss += 0.5 * criterion(pred[:, k] * w, gt[:, k] * w)
    return loss / joints


def test_hand_computed_value():
    # B = 1, K = 2, 2 x 2 heatmaps.
    heatmaps = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[0.0, 2.0], [0.0, 0.0]]]])
    weights = torch.tensor([[1.0, 0.5]])
    stack1 = torch.zeros(1, 2, 2, 2)
    # stack 1: k0 error 1 -> 1; k1 error 2 x 0.5 -> 1; sum 2 over 8 cells = 0.25; x 0.5 = 0.125
    stack2 = heatmaps.clone()
    stack2[0, 0, 1, 1] = 3.0
    # stack 2: one cell off by 3 with weight 1 -> 9 / 8 x 0.5 = 0.5625
    loss = KeypointMSELoss()([stack1, stack2], heatmaps, weights)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert loss.item() == pytest.approx(0.125 + 0.5625)


def test_matches_reference_formulation_summed_over_stacks():
    torch.manual_seed(0)
    heatmaps = torch.rand(3, 5, 8, 8)
    weights = (torch.rand(3, 5) > 0.3).float()
    outputs = [torch.rand(3, 5, 8, 8) for _ in range(4)]
    expected = sum(_reference_joints_mse(o, heatmaps, weights) for o in outputs)
    assert KeypointMSELoss()(outputs, heatmaps, weights).item() == pytest.approx(
        float(expected), rel=1e-6
    )


def test_weights_with_trailing_singleton_are_accepted():
    torch.manual_seed(1)
    heatmaps, pred = torch.rand(2, 4, 4, 4), torch.rand(2, 4, 4, 4)
    weights = torch.rand(2, 4)
    assert torch.equal(
        keypoint_mse(pred, heatmaps, weights), keypoint_mse(pred, heatmaps, weights[..., None])
    )


def test_zero_weight_removes_keypoint_and_its_gradient():
    torch.manual_seed(2)
    heatmaps = torch.rand(1, 2, 4, 4)
    pred = torch.rand(1, 2, 4, 4, requires_grad=True)
    weights = torch.tensor([[0.0, 1.0]])
    loss = KeypointMSELoss()([pred], heatmaps, weights)
    loss.backward()
    assert torch.count_nonzero(pred.grad[0, 0]) == 0
    assert torch.count_nonzero(pred.grad[0, 1]) > 0
    only_k1 = 0.5 * ((pred[0, 1] - heatmaps[0, 1]) ** 2).sum() / pred.numel()
    assert loss.item() == pytest.approx(only_k1.item())


def test_bf16_outputs_give_float32_loss_of_their_values():
    torch.manual_seed(3)
    heatmaps = torch.rand(2, 3, 8, 8)
    weights = torch.ones(2, 3)
    pred = torch.rand(2, 3, 8, 8).bfloat16()
    loss = KeypointMSELoss()([pred], heatmaps, weights)
    assert loss.dtype == torch.float32
    expected = 0.5 * ((pred.double() - heatmaps.double()) ** 2).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_shape_errors():
    loss = KeypointMSELoss()
    heatmaps = torch.zeros(2, 3, 4, 4)
    with pytest.raises(ValueError, match="must both be"):
        loss([torch.zeros(2, 3, 8, 8)], heatmaps, torch.ones(2, 3))
    with pytest.raises(ValueError, match="weights"):
        loss([torch.zeros(2, 3, 4, 4)], heatmaps, torch.ones(2, 4))
    with pytest.raises(ValueError, match="empty"):
        loss([], heatmaps, torch.ones(2, 3))
    with pytest.raises(TypeError, match="list"):
        loss(torch.zeros(2, 3, 4, 4), heatmaps, torch.ones(2, 3))
