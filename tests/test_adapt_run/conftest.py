"""A tiny flat-rendered benchmark with a trained-for-one-epoch source model, for adaptation runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from animalpose.datasets.generator.dogshift import BenchmarkSpec, generate_benchmark
from animalpose.train.cli import train_main

REPO = Path(__file__).resolve().parents[2]

#: 8 shots of 4 frames (a 4 / 2 / 2 split by shot) and 16 source stills: renders in about a
#: second with the flat renderer.
TINY = BenchmarkSpec(
    name="tiny-adapt",
    version=1,
    description="adaptation unit-test benchmark",
    renderer="flat",
    animal="dog",
    size=(96, 72),
    source_images=16,
    target_shots=8,
    frames_per_shot=4,
    seed=3,
    generator_version=1,
    split_fractions=(0.5, 0.25, 0.25),
    split_seed=2,
    target_breed="mixed",
    target_cover="none",
)

#: A tiny model and loop: CPU, no workers, no progress bars.
TINY_FLAGS = [
    "--animal",
    "dog",
    "--stacks",
    "1",
    "--channels",
    "16",
    "--inp-res",
    "64",
    "--out-res",
    "16",
    "--train-batch",
    "4",
    "--test-batch",
    "4",
    "-j",
    "0",
    "--device",
    "cpu",
    "--no-progress",
    "--solver",
    "adam",
    "--lr",
    "1e-3",
]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """root: the benchmark's image path; source: a 1-epoch source checkpoint trained on it."""
    root = tmp_path_factory.mktemp("adapt_bench")
    _, record = generate_benchmark(TINY, root, processes=1, progress=False)
    run = root.parent / "source_run"
    assert (
        train_main(
            [
                "--image-path",
                str(root),
                "--dataset",
                "synthetic_animal_sp",
                "--epochs",
                "1",
                "-c",
                str(run),
                *TINY_FLAGS,
            ]
        )
        == 0
    )
    return SimpleNamespace(root=root, record=record, source=run / "model_best.pth.tar")


@pytest.fixture
def adapt_argv(tiny):
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
            *TINY_FLAGS,
            "--pseudo-workers",
            "0",
            *extra,
            "--set",
            "adapt.pseudo_batch=4",
        ]

    return argv
