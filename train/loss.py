"""Heatmap regression loss with per-keypoint weights and intermediate supervision, online hard
keypoint mining, and the part-segmentation loss of the multitask model.

The reference's ``JointsMSELoss`` (MSRA SimpleBaseline, as used by CC-SSL ``train/train.py``)
sums ``0.5 * MSE(pred_k * w_k, target_k * w_k)`` over keypoints and divides by K, i.e. half the
mean over (B, K, h, w) of ``((pred - target) * w) ** 2``; the trainer adds it up over stacks.

Online hard keypoint mining (OHKM; CPN, Chen et al. 2018, kept by MSPN and RSN; HRNet's
``JointsOHKMMSELoss``) ranks each sample's K per-keypoint losses ``0.5 * mean_(h, w)((pred -
target) * w) ** 2`` and keeps the ``k`` largest: a stage's loss is their sum over the batch divided
by ``B * k`` (the mean of each sample's top-k, averaged over samples). With ``k = K`` that is the
plain loss above (up to float rounding); ``k = 0`` turns OHKM off and is the plain loss exactly.
A keypoint of weight 0 has loss 0, so it is never preferred to a labelled keypoint with a
non-zero loss, and the divisor stays ``k`` when a sample has fewer than ``k`` labelled keypoints
(as CPN's). Equal losses keep the lower keypoint index (a stable sort), so which keypoints get
gradients is deterministic. A model whose outputs are supervised by different targets (MSPN's
coarse-to-fine Gaussians) hands the loss one target tensor per output.

The reference's multitask training (``train/train_multitask.py``) adds, per stack,
``nn.CrossEntropyLoss(ignore_index=255)`` on the part logits and trains on
``loss_kpt + 0.01 / (epoch + 1) * loss_seg`` (``segmentation_loss``, ``seg_weight_at``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from animalpose.datasets.codecs.stages import per_output_targets
from animalpose.datasets.parts import IGNORE

__all__ = [
    "OHKM_STAGES",
    "SEG_WEIGHT",
    "KeypointMSELoss",
    "keypoint_losses",
    "keypoint_mse",
    "ohkm_mse",
    "seg_weight_at",
    "segmentation_loss",
]

#: The reference's ``0.5 * criterion(...)`` factor (SimpleBaseline ``JointsMSELoss``).
HALF = 0.5
#: The reference's segmentation-loss weight at epoch 0 (``0.01 / (epoch + 1)``,
#: ``train/train_multitask.py``).
SEG_WEIGHT = 0.01
#: Which outputs OHKM applies to (a model's ``ohkm_stages`` attribute): every one (MSPN: "OHKM in
#: every stage") or only the last (CPN: the RefineNet output; GlobalNet keeps the plain loss).
OHKM_STAGES = ("all", "last")


def _check_pair(heatmaps_pred: torch.Tensor, heatmaps: torch.Tensor, weights: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``heatmaps_pred`` and ``heatmaps`` are the same (B, K, h, w)
    shape and ``weights`` holds B * K values."""
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
    _check_pair(heatmaps_pred, heatmaps, weights)
    batch, num_keypoints = heatmaps.shape[:2]
    w = weights.reshape(batch, num_keypoints, 1, 1).float()
    diff = (heatmaps_pred.float() - heatmaps.float()) * w
    return HALF * diff.square().mean()


def keypoint_losses(
    heatmaps_pred: torch.Tensor, heatmaps: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Each keypoint's half weighted mean squared error, in float32.

    Args:
        heatmaps_pred: (B, K, h, w) predicted heatmaps (any float dtype).
        heatmaps: (B, K, h, w) targets.
        weights: (B, K) or (B, K, 1) per-keypoint weights (0 gives a keypoint loss 0).

    Returns:
        (B, K) float32 ``0.5 * mean(((pred - target) * w) ** 2)`` over (h, w); their mean is
        ``keypoint_mse``.
    """
    _check_pair(heatmaps_pred, heatmaps, weights)
    batch, num_keypoints = heatmaps.shape[:2]
    w = weights.reshape(batch, num_keypoints, 1, 1).float()
    diff = (heatmaps_pred.float() - heatmaps.float()) * w
    return HALF * diff.square().mean(dim=(2, 3))


def ohkm_mse(
    heatmaps_pred: torch.Tensor, heatmaps: torch.Tensor, weights: torch.Tensor, topk: int
) -> torch.Tensor:
    """Online hard keypoint mining (CPN): per sample the ``topk`` largest ``keypoint_losses``.

    Ties keep the lower keypoint index (stable sort); a weight-0 keypoint has loss 0 and ranks
    below every labelled keypoint with a non-zero loss. ``topk = K`` equals ``keypoint_mse`` up to
    float rounding.

    Args:
        heatmaps_pred: (B, K, h, w) predicted heatmaps (any float dtype).
        heatmaps: (B, K, h, w) targets.
        weights: (B, K) or (B, K, 1) per-keypoint weights.
        topk: keypoints kept per sample, ``1 <= topk <= K`` (CPN / MSPN: 8).

    Returns:
        0-d float32 tensor: the kept losses summed over the batch, divided by ``B * topk``.
    """
    losses = keypoint_losses(heatmaps_pred, heatmaps, weights)
    batch, num_keypoints = losses.shape
    if not 1 <= topk <= num_keypoints:
        raise ValueError(
            f"OHKM keeps the top {topk} keypoint losses per sample, but the heatmaps hold "
            f"{num_keypoints} keypoints: optim.ohkm_topk (--ohkm-topk) must be 1..{num_keypoints}, "
            "or 0 for the plain loss"
        )
    # Rank on detached values: stable, so equal losses keep the lower keypoint index.
    order = losses.detach().argsort(dim=1, descending=True, stable=True)
    kept = losses.gather(1, order[:, :topk])
    return kept.sum() / (batch * topk)


class KeypointMSELoss(nn.Module):
    """Reference ``JointsMSELoss`` (target weights on) summed over all stacks, optionally with
    online hard keypoint mining.

    ``forward(outputs, heatmaps, weights)``: ``outputs`` is the model's list of per-stack
    (B, K, h, w) heatmaps, ``heatmaps`` the (B, K, h, w) targets of every stack or a list of
    one target per stack (coarse-to-fine supervision), and ``weights`` the (B, K) per-keypoint
    weights. Returns a 0-d float32 tensor, also for bf16/fp16 outputs.

    Args:
        ohkm_topk: 0 (default): every stack's ``keypoint_mse``, the reference's loss exactly;
            k > 0: ``ohkm_mse`` with the top ``k`` keypoints per sample on the stacks
            ``ohkm_stages`` names (``optim.ohkm_topk``; CPN / MSPN: 8).
        ohkm_stages: "all" stacks or only the "last" (``OHKM_STAGES``; a model's
            ``ohkm_stages`` attribute); the others keep ``keypoint_mse``.
    """

    def __init__(self, ohkm_topk: int = 0, ohkm_stages: str = "all") -> None:
        super().__init__()
        if isinstance(ohkm_topk, bool) or not isinstance(ohkm_topk, int) or ohkm_topk < 0:
            raise ValueError(f"ohkm_topk must be an int >= 0 (0 = no OHKM), got {ohkm_topk!r}")
        if ohkm_stages not in OHKM_STAGES:
            raise ValueError(f"ohkm_stages {ohkm_stages!r} is not one of {list(OHKM_STAGES)}")
        self.ohkm_topk = ohkm_topk
        self.ohkm_stages = ohkm_stages

    def extra_repr(self) -> str:
        return f"ohkm_topk={self.ohkm_topk}, ohkm_stages={self.ohkm_stages!r}"

    def forward(
        self,
        outputs: Sequence[torch.Tensor],
        heatmaps: torch.Tensor | Sequence[torch.Tensor],
        weights: torch.Tensor,
    ) -> torch.Tensor:
        targets = per_output_targets(outputs, heatmaps, noun="heatmap tensors")
        last = len(outputs) - 1
        total = None
        for i, (heatmaps_pred, target) in enumerate(zip(outputs, targets, strict=True)):
            if self.ohkm_topk > 0 and (self.ohkm_stages == "all" or i == last):
                term = ohkm_mse(heatmaps_pred, target, weights, self.ohkm_topk)
            else:
                term = keypoint_mse(heatmaps_pred, target, weights)
            total = term if total is None else total + term
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
