"""ImageNet trunk weights a user supplies (``--pretrained FILE``; nothing downloads at run time).

``load_trunk_weights`` fills the trunk of a top-down model from an ImageNet classification file
whose key names the model shares, as both published recipes start training:

- ``SimpleBaseline`` from a torchvision ResNet state_dict (``resnet50-19c8e357.pth``, the MSRA
  configs' ``PRETRAINED``; keys ``conv1.weight``, ``layer1.0.conv1.weight``, ..., ``fc.*``);
- ``HRNet`` from an HRNet ImageNet file (``hrnetv2_w32_imagenet_pretrained.pth`` of
  HRNet-Image-Classification, the ``hrnet_w32-36af842e.pth`` of the HRNet configs, or timm's
  ``hrnet_w32`` state_dict: the same ``conv1`` ... ``stage4`` names).

Only keys under the model's ``trunk_layers`` (the HRNet configs' ``PRETRAINED_LAYERS``; ResNet's
``conv1``, ``bn1``, ``layer1``-``4``) load; the classifier (``fc``, ``classifier``,
``incre_modules``, ``downsamp_modules``, the classification ``final_layer``, the classification
HRNet's extra fusions of its last module) and anything else is ignored and counted. A file whose
keys fit none of the trunk is refused (the wrong file for this architecture or width); so, by
default (``strict``), is one that leaves trunk keys missing or of another shape (a ResNet-50 file
for a ResNet-101, W48 weights for W32).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from animalpose.datasets.fileio import DataError
from animalpose.train.checkpoint import load_checkpoint, model_state_from_checkpoint, unwrap_model

__all__ = ["TrunkLoad", "load_trunk_weights"]

#: Key suffix of BatchNorm's batch counter: not a weight, absent from files saved before PyTorch
#: 0.4.1 (torchvision's ``resnet50-19c8e357.pth``); it is never reported as missing.
BATCH_COUNTER = "num_batches_tracked"
#: Keys listed in a refusal message.
MAX_LISTED = 5


@dataclass(frozen=True)
class TrunkLoad:
    """What ``load_trunk_weights`` did, key names in the model's state_dict order.

    Attributes:
        path: the file.
        loaded: trunk keys filled from the file.
        missing: trunk keys the file lacks (BatchNorm counters not counted); they keep their
            initialisation.
        mismatched: trunk keys the file has with another shape ("key (file) != (model)"); not
            loaded.
        ignored: file keys outside the trunk (the classifier, or a deeper ResNet's extra blocks).
    """

    path: str
    loaded: tuple[str, ...]
    missing: tuple[str, ...]
    mismatched: tuple[str, ...]
    ignored: tuple[str, ...]

    def summary(self) -> str:
        """One line for the run log."""
        return (
            f"{self.path}: loaded {len(self.loaded)} trunk tensors; skipped "
            f"{len(self.missing)} missing, {len(self.mismatched)} of another shape, "
            f"{len(self.ignored)} outside the trunk"
        )


def load_trunk_weights(
    model: nn.Module, path: str | os.PathLike, *, strict: bool = True
) -> TrunkLoad:
    """Fill ``model``'s trunk (its ``trunk_layers``) from the ImageNet weights in ``path``.

    ``path`` holds a state_dict (bare, or under ``state_dict`` as in training checkpoints;
    ``module.`` prefixes are stripped), read with ``torch.load(weights_only=True)``. Wrappers
    (DDP, ``torch.compile``) around ``model`` are looked through. With ``strict=False`` the
    tensors that fit load and the rest is only reported.

    Raises:
        DataError: the file is missing or unreadable, holds no state_dict, or fits none of the
            trunk's keys; with ``strict``, also when trunk keys are missing from it or have
            another shape (message: the file, the model and a few keys of each).
        ValueError: ``model`` has no ``trunk_layers`` (the hourglasses train from scratch).
    """
    target = unwrap_model(model)
    layers = getattr(target, "trunk_layers", None)
    if not layers:
        raise ValueError(
            f"{type(target).__name__} has no ImageNet trunk (no trunk_layers); "
            "--pretrained FILE here takes ImageNet weights for simple_baseline or hrnet"
        )
    source = str(path)
    try:
        state = model_state_from_checkpoint(load_checkpoint(path))
    except DataError as err:
        raise DataError(f"{source}: {err}" if source not in str(err) else str(err)) from None
    own = target.state_dict()
    trunk = [k for k in own if k.split(".", 1)[0] in layers]
    trunk_set = set(trunk)
    loaded, missing, mismatched = [], [], []
    for key in trunk:
        if key not in state:
            if not key.endswith(BATCH_COUNTER):
                missing.append(key)
        elif tuple(state[key].shape) != tuple(own[key].shape):
            mismatched.append(f"{key} {tuple(state[key].shape)} != {tuple(own[key].shape)}")
        else:
            loaded.append(key)
    ignored = [k for k in state if k not in trunk_set]
    weights = [k for k in loaded if not k.endswith(BATCH_COUNTER)]
    if not weights:
        raise DataError(
            f"{source}: no tensor fits the trunk of {type(target).__name__} "
            f"({len(mismatched)} of another shape, e.g. {_few(mismatched)}; file keys e.g. "
            f"{_few(list(state))}; trunk keys e.g. {_few(trunk)}): not ImageNet weights for "
            "this architecture and size"
        )
    if strict and (missing or mismatched):
        raise DataError(
            f"{source}: does not fit the trunk of {type(target).__name__}: "
            f"{len(missing)} trunk keys missing (e.g. {_few(missing)}), {len(mismatched)} of "
            f"another shape (e.g. {_few(mismatched)}); ImageNet weights of another depth or "
            "width?"
        )
    with torch.no_grad():
        target.load_state_dict({k: state[k] for k in loaded}, strict=False)
    return TrunkLoad(
        path=source,
        loaded=tuple(loaded),
        missing=tuple(missing),
        mismatched=tuple(mismatched),
        ignored=tuple(ignored),
    )


def _few(keys: list[str]) -> str:
    more = len(keys) - MAX_LISTED
    return ", ".join(keys[:MAX_LISTED]) + (f", ... ({more} more)" if more > 0 else "") or "none"
