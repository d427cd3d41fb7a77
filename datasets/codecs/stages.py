"""Per-output targets: the one rule the heatmap losses share for pairing a model's list of
per-stage outputs with their targets (``train/loss.py`` ``KeypointMSELoss``, G-RMI's
``offset.OffsetLoss``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["per_output_targets"]


def per_output_targets(
    outputs: Sequence[torch.Tensor],
    targets: torch.Tensor | Sequence[torch.Tensor],
    *,
    noun: str = "tensors",
) -> list[torch.Tensor]:
    """One target per output: ``targets`` itself for every output when it is one tensor, else
    the list, which must hold one per output (coarse-to-fine supervision).

    Args:
        outputs: the model's list of per-stage outputs.
        targets: one (B, C, h, w) tensor, or one per output.
        noun: what the targets are called in the length error ("heatmap tensors").

    Raises:
        TypeError: ``outputs`` is one tensor, not a list.
        ValueError: ``outputs`` is empty, or the list of targets has another length.
    """
    if isinstance(outputs, torch.Tensor):
        raise TypeError("outputs must be a list of per-stage tensors, not one tensor")
    if len(outputs) == 0:
        raise ValueError("outputs is empty: expected one tensor per stage")
    if isinstance(targets, torch.Tensor):
        return [targets] * len(outputs)
    if len(targets) != len(outputs):
        raise ValueError(
            f"{len(targets)} target {noun} for {len(outputs)} outputs: give one per output "
            "(the model's stage_sigma_scales) or a single tensor for all"
        )
    return list(targets)
