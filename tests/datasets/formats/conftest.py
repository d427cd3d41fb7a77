"""Shared data sets for the dataset tests: small fixtures in the reference's layouts."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from animalpose.datasets.formats.registry import build_dataset
from animalpose.datasets.generator.fixtures import make_synthetic_fixture, make_tigdog_fixture
from animalpose.datasets.geometry import apply_affine, crop_matrix
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.transforms.crop import CropResult, mark_outside, warp_crop

#: Frame sizes small enough to keep the tests fast, large enough for clear keypoint markers.
SYNTHETIC_FRAME = (200, 150)
TIGDOG_FRAME = (320, 192)
NUM_SYNTHETIC = 24
SHOTS, FRAMES_PER_SHOT = 6, 8


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """root: image path holding the horse synthetic fixture; num_images; frame_size (w, h)."""
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_fixture(
        root, animal="horse", num_images=NUM_SYNTHETIC, seed=3, frame_size=SYNTHETIC_FRAME
    )
    return SimpleNamespace(root=root, num_images=NUM_SYNTHETIC, frame_size=SYNTHETIC_FRAME)


@pytest.fixture(scope="session")
def tigdog(tmp_path_factory):
    """root: image path holding horse and tiger TigDog fixtures; shots; frames_per_shot."""
    root = tmp_path_factory.mktemp("tigdog")
    for animal in ("horse", "tiger"):
        make_tigdog_fixture(
            root,
            animal=animal,
            num_shots=SHOTS,
            frames_per_shot=FRAMES_PER_SHOT,
            seed=5,
            frame_size=TIGDOG_FRAME,
        )
    return SimpleNamespace(
        root=root, shots=SHOTS, frames_per_shot=FRAMES_PER_SHOT, frame_size=TIGDOG_FRAME
    )


def _registry_dataset(name: str, root, split: str, *, animal: str, input_size: int, **kwargs):
    return build_dataset(
        name,
        root=root,
        animal=animal,
        split=split,
        input_size=input_size,
        spec=ANIMAL18,
        seed=0,
        scale_factor=0.25,
        rot_factor=30,
        augment_backend="fused",
        **kwargs,
    )


@pytest.fixture(scope="session")
def registry_dataset():
    """``registry_dataset(name, root, split, *, animal, input_size, **kwargs)``: build_dataset
    with the ANIMAL18 keypoints, seed 0, the reference's jitter (scale 0.25, rotation 30
    degrees) and the fused augmentation backend."""
    return _registry_dataset


@pytest.fixture(scope="session")
def random_rotate():
    """The RandomRotate augmenter class (a random augmenter independent of transforms/)."""
    return RandomRotate


class RandomRotate:
    """A small random augmenter for tests: rotation, scale and flip drawn from ``rng``."""

    def __init__(self, output_size: int, flip_index: np.ndarray) -> None:
        self.output_size = output_size
        self.flip_index = np.asarray(flip_index)

    def __call__(self, image, keypoints, center, size, rng) -> CropResult:
        s = self.output_size
        flip = bool(rng.uniform() < 0.5)
        m = crop_matrix(center, size * rng.uniform(0.8, 1.2), (s, s), rng.uniform(-40, 40), flip)
        kp = np.asarray(keypoints, dtype=np.float64)
        moved = np.concatenate([apply_affine(kp[:, :2], m), kp[:, 2:3]], axis=1)
        if flip:
            moved = moved[self.flip_index]
        return CropResult(warp_crop(image, m, (s, s)), mark_outside(moved, s, s), m, flip)
