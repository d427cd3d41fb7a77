"""Model registry: architecture name (the reference's ``-a/--arch`` value) -> model class.

``build_model`` refuses sizes whose weights alone would not fit in the memory available (a
checkpoint's saved config asking for 1,000,000 channels, say), counted before allocating.
"""

from __future__ import annotations

import os
from itertools import chain

import torch
from torch import nn

from animalpose.datasets.fileio import DataError
from animalpose.train.models.hourglass import HourglassNet
from animalpose.train.models.hourglass_multitask import HourglassMultitask

__all__ = ["MODELS", "available_memory", "build_model", "weight_bytes"]

#: Architecture names are the reference's CLI values; every class takes the keyword arguments
#: of ``build_model`` and returns a list of per-stack (B, K, h, w) heatmaps. Classes whose
#: ``segmentation`` attribute is True also return part-segmentation logits when called with
#: ``with_segmentation=True`` (``hg_multitask``, the reference's multitask model).
MODELS: dict[str, type[nn.Module]] = {"hg": HourglassNet, "hg_multitask": HourglassMultitask}
GB = 1e9


def weight_bytes(cls: type[nn.Module], **kwargs) -> int:
    """Bytes of the parameters and buffers of ``cls(**kwargs)``, built on the ``meta`` device:
    shapes only, nothing allocated."""
    with torch.device("meta"):
        model = cls(**kwargs)
    return sum(t.numel() * t.element_size() for t in chain(model.parameters(), model.buffers()))


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``, else the physical
    memory); None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def build_model(
    arch: str, *, num_stacks: int, num_blocks: int, num_keypoints: int, channels: int
) -> nn.Module:
    """Build architecture ``arch`` from ``MODELS``.

    Args:
        arch: a key of ``MODELS`` (``"hg"``, ``"hg_multitask"``; the latter with its default
            ``NUM_CLASSES`` segmentation classes).
        num_stacks: stacks (reference ``--stacks``).
        num_blocks: bottlenecks per residual unit (reference ``--blocks``).
        num_keypoints: output heatmap channels K.
        channels: feature width (256 in the reference).

    Raises:
        KeyError: ``arch`` is unknown; the message lists the valid names.
        DataError: the weights alone would need more than the memory available.
    """
    try:
        cls = MODELS[arch]
    except KeyError:
        raise KeyError(f"unknown model arch {arch!r}; valid: {sorted(MODELS)}") from None
    kwargs = dict(
        num_stacks=num_stacks,
        num_blocks=num_blocks,
        num_keypoints=num_keypoints,
        channels=channels,
    )
    needed, limit = weight_bytes(cls, **kwargs), available_memory()
    if limit is not None and needed > limit:
        raise DataError(
            f"model {arch!r} with {num_stacks} stacks, {num_blocks} blocks, {channels} channels "
            f"and {num_keypoints} keypoints needs {needed / GB:,.1f} GB for its weights alone, "
            f"more than the {limit / GB:,.1f} GB of memory available: check the model sizes "
            "(-s/--stacks, -b/--blocks, --channels, the model section of a --config file, or the "
            "config saved in the checkpoint being evaluated)"
        )
    return cls(**kwargs)
