"""Shared pieces of the adaptation tests.

The pseudo-label engine's small TigDog fixture, tiny model and a generated round, and for whole
adaptation runs a tiny flat-rendered benchmark with a source model trained for one epoch.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from animalpose.adapt.pseudo_labels import generate_pseudo_labels
from animalpose.adapt.views import ViewSampler
from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.formats.crops import RealAnimalCrop, write_real_crops
from animalpose.datasets.formats.tigdog import RealAnimal
from animalpose.datasets.generator.benchmark_splits import generate_benchmark
from animalpose.datasets.generator.fixtures import make_tigdog_fixture
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.transforms.normalize import Normalizer
from animalpose.train.cli import train_main
from animalpose.train.models import build_model

#: Small frames and crops keep every test well under a second of model time on 2 CPU cores.
TIGDOG_FRAME = (192, 128)
SHOTS, FRAMES_PER_SHOT = 4, 6
INPUT_SIZE, HEATMAP_SIZE = 64, 16
#: Tiny hourglass: one stack, 8 channels (the reference's 4 x 256 would take seconds per batch).
STACKS, CHANNELS = 1, 8


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread while these tests run (restored after each module): they run many
    tiny ops, and on 2 shared cores torch's thread hand-offs made them 10-50x slower."""
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
def real_dataset(tigdog, eval_dataset):
    """Every kept frame of the fixture, CenterCrop 64 (the pseudo-labelling dataset)."""
    return eval_dataset(tigdog.root, "all", cls=RealAnimal, animal="horse", input_size=INPUT_SIZE)


@pytest.fixture(scope="session")
def crop_dataset(tigdog, eval_dataset):
    """The same frames read from 64-px real_animal_crop files (written once), CenterCrop 64."""
    write_real_crops(tigdog.root, "horse", output_size=INPUT_SIZE, progress=False)
    return eval_dataset(
        tigdog.root, "all", cls=RealAnimalCrop, animal="horse", input_size=INPUT_SIZE
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


@pytest.fixture(scope="module")
def generate(tiny_model, real_dataset, codec, normalizer):
    """``generate(**overrides)``: generate_pseudo_labels on the fixture, CPU, no workers
    (``model`` and ``dataset`` may be overridden too)."""

    def run(**overrides):
        kwargs = {
            "codec": codec,
            "normalizer": normalizer,
            "device": "cpu",
            "views": ViewSampler(),
            "seed": 1,
            "temporal": None,
            "batch_size": 4,
            "workers": 0,
            "progress": False,
        }
        kwargs.update(overrides)
        model = kwargs.pop("model", tiny_model)
        dataset = kwargs.pop("dataset", real_dataset)
        return generate_pseudo_labels(model, dataset, **kwargs)

    return run


@pytest.fixture(scope="module")
def labels(generate):
    """Round 2 (epoch 20) of the tiny model on the fixture, nothing selected."""
    return generate(round_index=2, epoch=20)


@pytest.fixture(scope="session")
def row_arrays() -> tuple[str, ...]:
    """The per-row (N, ...) arrays of a PseudoLabels round, in its file's order."""
    return (
        "indices",
        "shots",
        "frames",
        "keypoints",
        "confidence",
        "substituted",
        "selected",
        "hits",
    )


# -- whole adaptation runs ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny(tmp_path_factory, tiny_spec, tiny_dog_flags):
    """root: the image path of an 8-shot variant of the tiny benchmark; source: a 1-epoch
    source checkpoint trained on it."""
    # 8 shots of 4 frames (a 4 / 2 / 2 split by shot) and 16 source stills: renders in about a
    # second with the flat renderer.
    spec = dataclasses.replace(
        tiny_spec,
        name="tiny-adapt",
        description="adaptation unit-test benchmark",
        source_images=16,
        target_shots=8,
        frames_per_shot=4,
        seed=3,
        split_fractions=(0.5, 0.25, 0.25),
        split_seed=2,
    )
    root = tmp_path_factory.mktemp("adapt_bench")
    _, record = generate_benchmark(spec, root, processes=1, progress=False)
    run = root.parent / "source_run"
    argv = ["--image-path", str(root), "--dataset", "synthetic_animal_sp", "--epochs", "1"]
    assert train_main([*argv, "-c", str(run), *tiny_dog_flags]) == 0
    return SimpleNamespace(root=root, record=record, source=run / "model_best.pth.tar")


@pytest.fixture
def adapt_argv(tiny, tiny_dog_flags):
    """``adapt_argv(out, *extra)``: flags of a tiny adaptation run into ``out`` from the tiny
    source model (``--set`` items may follow in ``extra``)."""

    def argv(out: Path, *extra: str) -> list[str]:
        return [
            "--image-path",
            str(tiny.root),
            "--resume",
            str(tiny.source),
            "-c",
            str(out),
            *tiny_dog_flags,
            "--pseudo-workers",
            "0",
            *extra,
            "--set",
            "adapt.pseudo_batch=4",
        ]

    return argv


@pytest.fixture
def compare_argv(bench, tiny_flags):
    """``compare_argv(out, *extra, seeds=("0",))``: flags of a compare script (benchmarks/
    domain_gap.py, adaptation.py) on the tiny benchmark into ``out``, one epoch per run."""

    def argv(out: Path, *extra: str, seeds: tuple[str, ...] = ("0",)) -> list[str]:
        return [
            "--benchmark",
            bench.spec.name,
            "--image-path",
            str(bench.root),
            "--seeds",
            *seeds,
            "--out",
            str(out),
            *extra,
            "--epochs",
            "1",
            *tiny_flags,
        ]

    return argv
