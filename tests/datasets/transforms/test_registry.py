"""build_augmenter and the augmenter contract shared by every entry of AUGMENTERS."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets.transforms.classic import ClassicAugment
from animalpose.datasets.transforms.crop import CenterCrop, CropResult
from animalpose.datasets.transforms.registry import AUGMENTERS, build_augmenter
from animalpose.datasets.transforms.strong import StrongAugment


def options(scene, **over):
    return {
        "output_size": scene.out,
        "flip_index": scene.flip_index,
        "scale_factor": 0.3,
        "rot_factor": 20.0,
        "backend": "imgaug",
        **over,
    }


def test_build_passes_each_augmenter_its_options(scene):
    strong = build_augmenter("strong", **options(scene))
    assert isinstance(strong, StrongAugment) and strong.backend == "imgaug"
    classic = build_augmenter("classic", **options(scene))
    assert isinstance(classic, ClassicAugment)
    assert (classic.scale_factor, classic.rot_factor) == (0.3, 20.0)
    none = build_augmenter("none", **options(scene))
    assert isinstance(none, CenterCrop) and none.output_size == scene.out


def test_unknown_names_list_the_valid_ones(scene):
    with pytest.raises(KeyError, match="strong.*classic.*none"):
        build_augmenter("super", **options(scene))
    with pytest.raises(KeyError, match="fused"):
        build_augmenter("strong", **options(scene, backend="torch"))


@pytest.mark.parametrize("name", list(AUGMENTERS))
def test_every_augmenter_keeps_the_contract(scene, name):
    aug = build_augmenter(name, **options(scene, backend="fused"))
    frame, kp = scene.textured_frame(), scene.keypoints
    for seed in range(3):
        res = aug(frame, kp, scene.center, scene.size, np.random.default_rng(seed))
        assert isinstance(res, CropResult)
        assert res.image.shape == (scene.out, scene.out, 3) and res.image.dtype == np.uint8
        assert res.keypoints.shape == (5, 3) and res.keypoints.dtype == np.float32
        assert res.matrix.shape == (2, 3)
        hidden = res.keypoints[:, 2] == 0
        assert (res.keypoints[hidden] == 0).all()
        shown = res.keypoints[~hidden, :2]
        assert ((shown >= -0.5) & (shown < scene.out - 0.5)).all()


def test_bad_inputs_are_rejected(scene):
    aug = StrongAugment(output_size=scene.out, flip_index=scene.flip_index)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="uint8"):
        aug(np.zeros((10, 10, 3), np.float32), scene.keypoints, scene.center, 5.0, rng)
    with pytest.raises(ValueError, match="flip_index"):
        aug(scene.textured_frame(), scene.keypoints[:3], scene.center, 5.0, rng)
