"""Shared pieces of the pseudo-label engine tests: a small TigDog fixture and a tiny model."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.formats.tigdog import RealAnimal, RealAnimalCrop, write_real_crops
from animalpose.datasets.generator.cartoon import make_tigdog_fixture
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.transforms.crop import CenterCrop, Normalizer
from animalpose.train.models import build_model

#: Small frames and crops keep every test well under a second of model time on 2 CPU cores.
TIGDOG_FRAME = (192, 128)
SHOTS, FRAMES_PER_SHOT = 4, 6
INPUT_SIZE, HEATMAP_SIZE = 64, 16
#: Tiny hourglass: one stack, 8 channels (the reference's 4 x 256 would take seconds per batch).
STACKS, CHANNELS = 1, 8


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread while these tests run (restored afterwards): on 2 cores shared with
    other jobs, torch's spinning worker threads made the tiny forwards 10x slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tigdog(tmp_path_factory):
    """root: image path with a horse TigDog fixture (4 shots x 6 frames, 192 x 128)."""
    root = tmp_path_factory.mktemp("tigdog")
    make_tigdog_fixture(
        root,
        animal="horse",
        num_shots=SHOTS,
        frames_per_shot=FRAMES_PER_SHOT,
        seed=11,
        frame_size=TIGDOG_FRAME,
    )
    return SimpleNamespace(root=root, animal="horse")


@pytest.fixture(scope="session")
def real_dataset(tigdog):
    """Every kept frame of the fixture, CenterCrop 64 (the pseudo-labelling dataset)."""
    return RealAnimal(
        root=tigdog.root,
        animal="horse",
        split="all",
        augmenter=CenterCrop(INPUT_SIZE),
        spec=ANIMAL18,
        seed=0,
    )


@pytest.fixture(scope="session")
def crop_dataset(tigdog):
    """The same frames read from 64-px real_animal_crop files (written once), CenterCrop 64."""
    write_real_crops(tigdog.root, "horse", output_size=INPUT_SIZE, progress=False)
    return RealAnimalCrop(
        root=tigdog.root,
        animal="horse",
        split="all",
        augmenter=CenterCrop(INPUT_SIZE),
        spec=ANIMAL18,
        seed=0,
    )


@pytest.fixture(scope="session")
def codec():
    return MSRAHeatmap((INPUT_SIZE, INPUT_SIZE), (HEATMAP_SIZE, HEATMAP_SIZE), sigma=1.0)


@pytest.fixture(scope="session")
def normalizer():
    return Normalizer((0.45, 0.45, 0.45), (0.25, 0.25, 0.25))


def make_tiny_model(seed: int = 0) -> torch.nn.Module:
    """A 1-stack, 8-channel hourglass with seeded weights whose heatmaps are not flat."""
    with torch.random.fork_rng():  # leave the global generator alone
        torch.manual_seed(seed)
        model = build_model(
            "hg",
            num_stacks=STACKS,
            num_blocks=1,
            num_keypoints=ANIMAL18.num_keypoints,
            channels=CHANNELS,
        )
    return model.eval()


@pytest.fixture(scope="session")
def tiny_model():
    return make_tiny_model()


@pytest.fixture(scope="session")
def model_factory():
    """``make_tiny_model(seed)``: a fresh tiny model (for tests that change its mode)."""
    return make_tiny_model
