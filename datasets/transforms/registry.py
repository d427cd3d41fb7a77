"""Augmenters by name (``data.augment``) and the one function that builds them from options."""

from __future__ import annotations

from animalpose.datasets.transforms.classic import ClassicAugment
from animalpose.datasets.transforms.crop import CenterCrop
from animalpose.datasets.transforms.occlusion import Occluded
from animalpose.datasets.transforms.strong import StrongAugment

__all__ = ["AUGMENTERS", "build_augmenter"]

#: Augmenters by name (``data.augment``); "none" is the validation crop.
AUGMENTERS = {"strong": StrongAugment, "classic": ClassicAugment, "none": CenterCrop}
#: The options each augmenter takes.
_OPTIONS = {
    "strong": ("output_size", "flip_index", "backend"),
    "classic": ("output_size", "flip_index", "scale_factor", "rot_factor"),
    "none": ("output_size",),
}


def build_augmenter(
    name: str,
    *,
    output_size: int,
    flip_index,
    scale_factor: float = 0.25,
    rot_factor: float = 30.0,
    backend: str = "fused",
    occlusion: float = 0.0,
    occluders: int = 7,
    occluder_textures=None,
):
    """The augmenter called ``name`` (a key of ``AUGMENTERS``) built from the shared options;
    with ``occlusion`` > 0 wrapped in ``Occluded`` (that probability, 1..``occluders`` objects,
    patches from ``occluder_textures``, a ``TextureBank``, when given)."""
    if name not in AUGMENTERS:
        raise KeyError(f"unknown augmenter {name!r}; valid: {list(AUGMENTERS)}")
    options = {
        "output_size": output_size,
        "flip_index": flip_index,
        "scale_factor": scale_factor,
        "rot_factor": rot_factor,
        "backend": backend,
    }
    augmenter = AUGMENTERS[name](**{k: options[k] for k in _OPTIONS[name]})
    if occlusion > 0:
        augmenter = Occluded(
            augmenter, probability=occlusion, max_count=occluders, textures=occluder_textures
        )
    return augmenter
