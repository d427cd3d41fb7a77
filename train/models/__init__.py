"""Model registry: architecture name (the reference's ``-a/--arch`` value) -> model class."""

from __future__ import annotations

from torch import nn

from animalpose.train.models.hourglass import HourglassNet

__all__ = ["MODELS", "build_model"]

#: Architecture names are the reference's CLI values; every class takes the keyword arguments
#: of ``build_model`` and returns a list of per-stack (B, K, h, w) heatmaps.
MODELS: dict[str, type[nn.Module]] = {"hg": HourglassNet}


def build_model(
    arch: str, *, num_stacks: int, num_blocks: int, num_keypoints: int, channels: int
) -> nn.Module:
    """Build architecture ``arch`` from ``MODELS``.

    Args:
        arch: a key of ``MODELS`` (``"hg"``).
        num_stacks: stacks (reference ``--stacks``).
        num_blocks: bottlenecks per residual unit (reference ``--blocks``).
        num_keypoints: output heatmap channels K.
        channels: feature width (256 in the reference).

    Raises:
        KeyError: ``arch`` is unknown; the message lists the valid names.
    """
    try:
        cls = MODELS[arch]
    except KeyError:
        raise KeyError(f"unknown model arch {arch!r}; valid: {sorted(MODELS)}") from None
    return cls(
        num_stacks=num_stacks,
        num_blocks=num_blocks,
        num_keypoints=num_keypoints,
        channels=channels,
    )
