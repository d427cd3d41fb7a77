"""Heatmap codecs by name (``data.codec``) and the one function that builds them.

One name per codec a run can train and decode with; every codec takes ``(input_size (w, h),
heatmap_size (w, h), sigma)`` and the options listed here:

- ``"pixel-area"``: ``MSRAHeatmap`` in the animal side's pixel-area alignment (the default).
- ``"msra"``: ``MSRAHeatmap(convention="msra")``, SimpleBaseline / HRNet to the letter.
- ``"dark"``: ``DarkHeatmap`` (unbiased encoding, Taylor decoding; DarkPose's ``"msra"``
  alignment).
- ``"udp"``: ``UDPHeatmap`` with the Gaussian target; its crops must use the unit-length
  transformation (``TopDownCrop(..., unbiased=True)``, ``CODECS_NEEDING_UNBIASED_CROPS``).
- ``"offset"``: ``OffsetHeatmap``, G-RMI's disk logits + offsets (3 channels per keypoint, its
  own loss ``make_loss``), Hough-voting decode; UDP's unit-length crops.
- ``"soft-argmax"``: ``SoftArgmaxHeatmap``, MSRA targets decoded by LPN's beta-soft-argmax.

The reference's targets (``data.legacy``) are ``LegacyHeatmap``, built by ``build_codec`` with
``legacy=True``; they combine with no other codec.
"""

from __future__ import annotations

from typing import Any

from animalpose.datasets.codecs.dark import DarkHeatmap
from animalpose.datasets.codecs.legacy import LegacyHeatmap
from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.codecs.offset import OffsetHeatmap
from animalpose.datasets.codecs.soft_argmax import SoftArgmaxHeatmap
from animalpose.datasets.codecs.udp import UDPHeatmap

__all__ = [
    "CODECS",
    "CODECS_NEEDING_UNBIASED_CROPS",
    "Codec",
    "DEFAULT_CODEC",
    "build_codec",
]

#: Any codec of this package (``MSRAHeatmap`` and its subclasses, ``UDPHeatmap``).
Codec = MSRAHeatmap | UDPHeatmap
#: ``data.codec`` name -> (class, options beside the sizes and sigma).
CODECS: dict[str, tuple[type, dict[str, Any]]] = {
    "pixel-area": (MSRAHeatmap, {}),
    "msra": (MSRAHeatmap, {"convention": "msra"}),
    "dark": (DarkHeatmap, {}),
    "udp": (UDPHeatmap, {"target": "gaussian"}),
    "offset": (OffsetHeatmap, {}),
    "soft-argmax": (SoftArgmaxHeatmap, {}),
}
#: The codec of a run that names none: the animal side's, unchanged since the first release.
DEFAULT_CODEC = "pixel-area"
#: Codecs whose heatmap alignment assumes UDP's unit-length crops (``unbiased=True``).
CODECS_NEEDING_UNBIASED_CROPS = frozenset({"udp", "offset"})


def build_codec(
    name: str,
    input_size: tuple[int, int],
    heatmap_size: tuple[int, int],
    *,
    sigma: float,
    legacy: bool = False,
) -> Codec:
    """The codec ``name`` (a ``CODECS`` key) for (w, h) ``input_size`` crops and (w, h)
    ``heatmap_size`` heatmaps with Gaussians of ``sigma`` heatmap pixels; ``legacy``: the
    reference's ``LegacyHeatmap`` (only with the default codec).

    Raises:
        KeyError: unknown ``name`` (the message lists the valid ones).
        ValueError: ``legacy`` with another codec than ``DEFAULT_CODEC``.
    """
    if name not in CODECS:
        raise KeyError(f"unknown codec {name!r}; valid: {list(CODECS)}")
    if legacy:
        if name != DEFAULT_CODEC:
            raise ValueError(
                f"the reference's targets (legacy) are {DEFAULT_CODEC!r} heatmaps; they do not "
                f"combine with codec {name!r}"
            )
        return LegacyHeatmap(input_size, heatmap_size, sigma=sigma)
    cls, options = CODECS[name]
    return cls(input_size, heatmap_size, sigma=sigma, **options)
