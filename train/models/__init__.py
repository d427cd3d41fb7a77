"""Model registry: architecture name (the reference's ``-a/--arch`` value) -> model class.

``build_model`` takes every model option the config has and hands each class only the ones it
takes (``MODEL_OPTIONS``). It refuses sizes whose weights alone would not fit in the memory
available (a checkpoint's saved config asking for 1,000,000 channels, say), counted before
allocating.
"""

from __future__ import annotations

import os
from itertools import chain

import torch
from torch import nn

from animalpose.datasets.fileio import DataError
from animalpose.train.models.associative import AssociativeEmbedding, HigherHRNet
from animalpose.train.models.cpn import CPN
from animalpose.train.models.hourglass import HourglassNet
from animalpose.train.models.hourglass_multitask import HourglassMultitask
from animalpose.train.models.hrnet import HRNet
from animalpose.train.models.lpn import LPN
from animalpose.train.models.mspn import MSPN
from animalpose.train.models.rsn import RSN
from animalpose.train.models.simple_baseline import SimpleBaseline

__all__ = [
    "MODELS",
    "MODEL_OPTIONS",
    "available_memory",
    "build_model",
    "describe_model",
    "model_kwargs",
    "weight_bytes",
]

#: Architecture names are the reference's CLI values (``hg``, ``hg_multitask``) and the paper
#: names of the human top-down models (``simple_baseline``: the published configs' ``pose_resnet``;
#: ``hrnet``: their ``pose_hrnet``; ``cpn``, ``mspn``, ``rsn``, ``lpn``). Every class takes
#: ``num_keypoints`` and its ``MODEL_OPTIONS`` as keyword arguments and returns a list of
#: per-stage (B, K, h, w) heatmaps (one per hourglass stack or MSPN stage; a list of one for
#: SimpleBaseline, HRNet and LPN; CPN's four GlobalNet levels then its RefineNet; RSN's stages
#: then its pose refine machine). Optional attributes the trainer reads: ``ohkm_stages``
#: ("all" | "last": the outputs ``--ohkm-topk`` applies to) and ``stage_sigma_scales`` (per
#: output, a factor on ``data.sigma``: coarse-to-fine targets). LPN and RSN keep their own
#: base width (64): ``model.width`` is HRNet's. ``associative`` (Associative Embedding on HRNet,
#: bottom-up data sets only) returns 2K channels: K heatmaps, then K tags; ``higher_hrnet``
#: (HigherHRNet) adds a second, stride-2 output of K heatmaps. Classes whose
#: ``segmentation`` attribute is True also return part-segmentation logits when called with
#: ``with_segmentation=True`` (``hg_multitask``, the reference's multitask model).
MODELS: dict[str, type[nn.Module]] = {
    "hg": HourglassNet,
    "hg_multitask": HourglassMultitask,
    "simple_baseline": SimpleBaseline,
    "hrnet": HRNet,
    "cpn": CPN,
    "mspn": MSPN,
    "rsn": RSN,
    "lpn": LPN,
    "associative": AssociativeEmbedding,
    "higher_hrnet": HigherHRNet,
}
_HOURGLASS_OPTIONS = ("num_stacks", "num_blocks", "channels")
#: The ``build_model`` options (besides ``num_keypoints``) each architecture's constructor takes;
#: it ignores the others (the config carries all of them: ``model.stacks``, ``model.blocks``,
#: ``model.channels``, ``model.depth``, ``model.width``).
MODEL_OPTIONS: dict[str, tuple[str, ...]] = {
    "hg": _HOURGLASS_OPTIONS,
    "hg_multitask": _HOURGLASS_OPTIONS,
    "simple_baseline": ("depth",),
    "hrnet": ("width",),
    "cpn": ("depth", "channels"),
    "mspn": ("num_stacks", "depth", "channels"),
    "rsn": ("num_stacks", "depth", "channels"),
    "lpn": ("depth", "attention"),
    "associative": ("width",),
    "higher_hrnet": ("width",),
}
GB = 1e9
#: How ``build_model``'s size error names each constructor argument.
_SIZE_WORDS = {
    "num_stacks": "{} stacks",
    "num_blocks": "{} blocks",
    "channels": "{} channels",
    "depth": "ResNet depth {}",
    "width": "width {}",
    "attention": "attention {}",
}


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


def model_kwargs(
    arch: str, *, num_keypoints: int, **options: int | str | None
) -> dict[str, int | str]:
    """The constructor keyword arguments of ``MODELS[arch]``: ``num_keypoints`` and those of
    ``options`` in ``MODEL_OPTIONS[arch]`` that are not None (None or absent: the class default).

    Raises:
        KeyError: ``arch`` is unknown; the message lists the valid names.
        TypeError: an option no architecture takes (a typo).
    """
    if arch not in MODELS:
        raise KeyError(f"unknown model arch {arch!r}; valid: {sorted(MODELS)}")
    known = {name for names in MODEL_OPTIONS.values() for name in names}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown model options {unknown}; valid: {sorted(known)}")
    taken = {k: v for k, v in options.items() if k in MODEL_OPTIONS[arch] and v is not None}
    return {"num_keypoints": num_keypoints, **taken}


def build_model(
    arch: str,
    *,
    num_keypoints: int,
    num_stacks: int | None = None,
    num_blocks: int | None = None,
    channels: int | None = None,
    depth: int | None = None,
    width: int | None = None,
    attention: str | None = None,
) -> nn.Module:
    """Build architecture ``arch`` from ``MODELS`` with the options it takes (``MODEL_OPTIONS``;
    the others are ignored, None means the class default).

    Args:
        arch: a key of ``MODELS`` (``"hg"``, ``"hg_multitask"`` with its default
            ``NUM_CLASSES`` segmentation classes, ``"simple_baseline"``, ``"hrnet"``).
        num_keypoints: output heatmap channels K.
        num_stacks: hourglass stacks (reference ``--stacks``).
        num_blocks: bottlenecks per hourglass residual unit (reference ``--blocks``).
        channels: hourglass feature width (256 in the reference).
        depth: SimpleBaseline's ResNet depth (50, 101, 152; 18 and 34 too).
        width: HRNet's highest-resolution width C (32: W32, 48: W48).
        attention: LPN's per-block attention (``"gc"``, ``"none"``).

    Raises:
        KeyError: ``arch`` is unknown; the message lists the valid names.
        DataError: the weights alone would need more than the memory available.
    """
    kwargs = model_kwargs(
        arch,
        num_keypoints=num_keypoints,
        num_stacks=num_stacks,
        num_blocks=num_blocks,
        channels=channels,
        depth=depth,
        width=width,
        attention=attention,
    )
    cls = MODELS[arch]
    needed, limit = weight_bytes(cls, **kwargs), available_memory()
    if limit is not None and needed > limit:
        raise DataError(
            f"model {arch!r} with {_describe(kwargs)} needs {needed / GB:,.1f} GB for its "
            f"weights alone, more than the {limit / GB:,.1f} GB of memory available: check the "
            "model sizes (-s/--stacks, -b/--blocks, --channels, --depth, --width, the model "
            "section of a --config file, or the config saved in the checkpoint being evaluated)"
        )
    return cls(**kwargs)


def describe_model(arch: str, **options: int | str | None) -> str:
    """``arch`` with the sizes its constructor takes from ``options`` (``model_kwargs``'s
    rules) in ``MODEL_OPTIONS``' order, for reports: ``describe_model("hg", num_stacks=1,
    num_blocks=1, channels=64, depth=50)`` -> "hg (1 stacks, 1 blocks, 64 channels)"; an
    architecture that takes none of them (or gets only None) is its bare name."""
    kwargs = model_kwargs(arch, num_keypoints=0, **options)
    sizes = [_SIZE_WORDS[k].format(kwargs[k]) for k in MODEL_OPTIONS[arch] if k in kwargs]
    return f"{arch} ({', '.join(sizes)})" if sizes else arch


def _describe(kwargs: dict[str, int | str]) -> str:
    """``{"num_stacks": 1, "channels": 8, "num_keypoints": 18}`` -> "1 stacks, 8 channels and
    18 keypoints"."""
    sizes = [_SIZE_WORDS[k].format(v) for k, v in kwargs.items() if k != "num_keypoints"]
    return ", ".join(sizes) + f" and {kwargs['num_keypoints']} keypoints"
