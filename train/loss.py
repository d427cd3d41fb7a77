"""Heatmap regression loss with per-keypoint weights and intermediate supervision, and the
part-segmentation loss of the multitask model.

The reference's ``JointsMSELoss`` (MSRA SimpleBaseline, as used by CC-SSL ``train/train.py``)
sums ``0.5 * MSE(pred_k * w_k, target_k * w_k)`` over keypoints and divides by K, i.e. half the
mean over (B, K, h, w) of ``((pred - target) * w) ** 2``; the trainer adds it up over stacks.

The reference's multitask training (``train/train_multitask.py``) adds, per stack,
``nn.CrossEntropyLoss(ignore_index=255)`` on the part logits and trains on
``loss_kpt + 0.01 / (epoch + 1) * loss_seg`` (``segmentation_loss``, ``seg_weight_at``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from animalpose.datasets.parts import IGNORE

__all__ = ["SEG_WEIGHT", "KeypointMSELoss", "keypoint_mse", "seg_weight_at", "segmentation_loss"]

#: The reference's ``0.5 * criterion(...)`` factor (SimpleBaseline ``JointsMSELoss``).
HALF = 0.5
#: The reference's segmentation-loss weight at epoch 0 (``0.01 / (epoch + 1)``,
#: ``train/train_multitask.py``).
SEG_WEIGHT = 0.01


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


def segmentation_loss(seg_outputs: Sequence[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
    """Pixel cross-entropy of every stack's part logits, summed over stacks, in float32.

    Per stack this is the reference's ``nn.CrossEntropyLoss(ignore_index=255)``: the mean over
    the pixels whose label is not ``IGNORE`` of ``-log softmax(logits)[label]``. Unlike it, a
    batch whose pixels are all ``IGNORE`` gives 0 (with zero gradients), not NaN. The division
    by the pixel count stays on the device (no host sync).

    Args:
        seg_outputs: the model's per-stack (B, C, H, W) logits (any float dtype; computed in
            float32, also under bf16/fp16 autocast).
        labels: (B, H, W) integer class ids in ``0..C-1`` or ``IGNORE`` (uint8 or long).

    Returns:
        0-d float32 tensor.
    """
    if isinstance(seg_outputs, torch.Tensor):
        raise TypeError("seg_outputs must be a list of per-stack logits, not one tensor")
    if len(seg_outputs) == 0:
        raise ValueError("seg_outputs is empty: expected one logits tensor per stack")
    if labels.dim() != 3 or labels.is_floating_point():
        raise ValueError(
            f"segmentation labels must be (B, H, W) integer class ids, got "
            f"{tuple(labels.shape)} {labels.dtype}"
        )
    target = labels.long()
    # Count in float32 and clamp: an all-IGNORE batch divides a zero sum by 1.
    valid = (target != IGNORE).sum().float().clamp(min=1.0)
    total = None
    for logits in seg_outputs:
        if (
            logits.dim() != 4
            or logits.shape[0] != labels.shape[0]
            or logits.shape[2:] != labels.shape[1:]
        ):
            raise ValueError(
                f"segmentation logits {tuple(logits.shape)} must be (B, C, H, W) matching the "
                f"labels {tuple(labels.shape)} (B, H, W)"
            )
        with torch.autocast(device_type=logits.device.type, enabled=False):
            summed = F.cross_entropy(logits.float(), target, ignore_index=IGNORE, reduction="sum")
        term = summed / valid
        total = term if total is None else total + term
    return total


def seg_weight_at(epoch: int, weight: float) -> float:
    """The segmentation-loss weight in 0-based ``epoch``: ``weight / (epoch + 1)`` (the
    reference's ``0.01 / (epoch + 1)`` with ``weight = SEG_WEIGHT``)."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0 (0-based), got {epoch}")
    return weight / (epoch + 1)
