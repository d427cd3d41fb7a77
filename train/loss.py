"""Heatmap regression loss with per-keypoint weights and intermediate supervision.

The reference's ``JointsMSELoss`` (MSRA SimpleBaseline, as used by CC-SSL ``train/train.py``)
sums ``0.5 * MSE(pred_k * w_k, target_k * w_k)`` over keypoints and divides by K, i.e. half the
mean over (B, K, h, w) of ``((pred - target) * w) ** 2``; the trainer adds it up over stacks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["KeypointMSELoss", "keypoint_mse"]

#: The reference's ``0.5 * criterion(...)`` factor (SimpleBaseline ``JointsMSELoss``).
HALF = 0.5


def keypoint_mse(
    heatmaps_pred: torch.Tensor, heatmaps: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Half the weighted mean squared error of one stack, computed in float32.

    Args:
        heatmaps_pred: (B, K, h, w) predicted heatmaps (any float dtype).
        heatmaps: (B, K, h, w) targets.
        weights: (B, K) or (B, K, 1) per-keypoint weights (0 drops a keypoint).

    Returns:
        0-d float32 tensor ``0.5 * mean(((pred - target) * w) ** 2)`` over (B, K, h, w).
    """
    if heatmaps_pred.shape != heatmaps.shape or heatmaps.dim() != 4:
        raise ValueError(
            f"predicted heatmaps {tuple(heatmaps_pred.shape)} and targets "
            f"{tuple(heatmaps.shape)} must both be (B, K, h, w)"
        )
    batch, num_keypoints = heatmaps.shape[:2]
    if weights.numel() != batch * num_keypoints:
        raise ValueError(
            f"weights {tuple(weights.shape)} must hold one value per (B, K) = "
            f"({batch}, {num_keypoints})"
        )
    w = weights.reshape(batch, num_keypoints, 1, 1).float()
    diff = (heatmaps_pred.float() - heatmaps.float()) * w
    return HALF * diff.square().mean()


class KeypointMSELoss(nn.Module):
    """Reference ``JointsMSELoss`` (target weights on) summed over all stacks.

    ``forward(outputs, heatmaps, weights)``: ``outputs`` is the model's list of per-stack
    (B, K, h, w) heatmaps, ``heatmaps`` the (B, K, h, w) targets and ``weights`` the (B, K)
    per-keypoint weights. Returns a 0-d float32 tensor, also for bf16/fp16 outputs.
    """

    def forward(
        self, outputs: Sequence[torch.Tensor], heatmaps: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        if isinstance(outputs, torch.Tensor):
            raise TypeError("outputs must be a list of per-stack heatmaps, not one tensor")
        if len(outputs) == 0:
            raise ValueError("outputs is empty: expected one heatmap tensor per stack")
        total = keypoint_mse(outputs[0], heatmaps, weights)
        for heatmaps_pred in outputs[1:]:
            total = total + keypoint_mse(heatmaps_pred, heatmaps, weights)
        return total
