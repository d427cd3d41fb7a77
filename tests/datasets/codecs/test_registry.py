"""Codecs by name (``build_codec``) and ``with_sigma``, the copy the sigma decay uses."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets.codecs.dark import DarkHeatmap
from animalpose.datasets.codecs.legacy import LegacyHeatmap
from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.codecs.offset import OffsetHeatmap
from animalpose.datasets.codecs.registry import CODECS, DEFAULT_CODEC, build_codec
from animalpose.datasets.codecs.soft_argmax import SoftArgmaxHeatmap
from animalpose.datasets.codecs.udp import UDPHeatmap

SIZES = ((48, 64), (12, 16))


def test_names_build_their_codecs():
    assert DEFAULT_CODEC == "pixel-area"
    got = {name: build_codec(name, *SIZES, sigma=2.0) for name in CODECS}
    assert type(got["pixel-area"]) is MSRAHeatmap and got["pixel-area"].convention == "pixel-area"
    assert type(got["msra"]) is MSRAHeatmap and got["msra"].convention == "msra"
    assert type(got["dark"]) is DarkHeatmap and got["dark"].convention == "msra"
    assert type(got["udp"]) is UDPHeatmap and got["udp"].target == "gaussian"
    assert type(got["offset"]) is OffsetHeatmap and got["offset"].channels_per_keypoint == 3
    assert type(got["soft-argmax"]) is SoftArgmaxHeatmap and got["soft-argmax"].beta == 160.0
    for codec in got.values():
        assert (codec.input_size, codec.heatmap_size, codec.sigma) == (*SIZES, 2.0)


def test_legacy_only_with_the_default_codec():
    assert type(build_codec(DEFAULT_CODEC, (64, 64), (16, 16), sigma=1.0, legacy=True)) is (
        LegacyHeatmap
    )
    with pytest.raises(ValueError, match="do not combine with codec 'dark'"):
        build_codec("dark", (64, 64), (16, 16), sigma=1.0, legacy=True)
    with pytest.raises(KeyError, match="unknown codec 'gauss'; valid: \\['pixel-area'"):
        build_codec("gauss", *SIZES, sigma=1.0)


@pytest.mark.parametrize(
    "codec",
    [
        MSRAHeatmap(*SIZES, sigma=2.0, convention="msra"),
        DarkHeatmap(*SIZES, sigma=2.0, blur_kernel=7, convention="pixel-area"),
        UDPHeatmap(*SIZES, sigma=2.0, target="combined", radius_factor=0.1, blur_border="reflect"),
        LegacyHeatmap((64, 64), (16, 16), sigma=2.0),
    ],
    ids=repr,
)
def test_with_sigma_keeps_everything_but_sigma(codec):
    other = codec.with_sigma(1.5)
    assert type(other) is type(codec) and other is not codec
    assert repr(other) == repr(codec).replace("sigma=2.0", "sigma=1.5")
    assert vars(other) == {**vars(codec), "sigma": 1.5}
    assert codec.sigma == 2.0
    keypoints = np.array([[3.2, 9.9], [20.0, 40.5]])
    if isinstance(codec, UDPHeatmap) and codec.target == "combined":
        return  # the combined target has no Gaussian: nothing else to compare
    smaller = other.encode(keypoints, np.ones(2))[0]
    larger = codec.encode(keypoints, np.ones(2))[0]
    assert smaller.sum() < larger.sum()  # a narrower Gaussian
