"""Fixtures shared across the test tree: the tiny flat-rendered benchmark, the tiny model's
command-line flags, loaders as evaluated, the benchmark scripts as modules, and a runner for
repository scripts."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from animalpose.datasets import fileio
from animalpose.datasets.formats.tigdog import split_folder
from animalpose.datasets.generator.benchmark_splits import generate_benchmark
from animalpose.datasets.generator.dogshift import BenchmarkSpec
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.transforms.crop import CenterCrop

REPO = Path(__file__).resolve().parents[1]

#: 10 shots of 3 frames (a 6 / 2 / 2 split by shot), 12 source stills (10 / 2), small frames:
#: renders in well under a second with the flat renderer.
TINY = BenchmarkSpec(
    name="tiny-flat",
    version=1,
    description="unit-test benchmark",
    renderer="flat",
    animal="dog",
    size=(96, 72),
    source_images=12,
    target_shots=10,
    frames_per_shot=3,
    seed=5,
    generator_version=1,
    split_fractions=(0.6, 0.2, 0.2),
    split_seed=11,
    target_breed="mixed",
    target_cover="none",
)

#: A 1-stack, 16-channel hourglass on 64-px crops (16-px heatmaps), batches of 4, on the CPU
#: without workers or progress bars. Every entry point takes these flags: train.py, test.py,
#: ccssl.py, wscda.py and the benchmarks' compare scripts.
TINY_FLAGS = tuple(
    (
        "--stacks 1 --channels 16 --inp-res 64 --out-res 16 --train-batch 4 --test-batch 4 "
        "--workers 0 --device cpu --no-progress"
    ).split()
)

#: Environment variables of a launcher (torchrun, a cluster): a test's subprocess must not
#: inherit them, or it would join the outer job.
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_", "MASTER_")


@pytest.fixture(scope="session")
def tiny_spec() -> BenchmarkSpec:
    return TINY


@pytest.fixture(scope="session")
def tiny_flags() -> tuple[str, ...]:
    """The tiny model's flags (``TINY_FLAGS``); later flags on a command line override them."""
    return TINY_FLAGS


@pytest.fixture(scope="session")
def tiny_dog_flags(tiny_flags) -> tuple[str, ...]:
    """``tiny_flags`` for a run on the dog benchmarks, trained with Adam at 1e-3."""
    return ("--animal", "dog", "--solver", "adam", "--lr", "1e-3", *tiny_flags)


@pytest.fixture(scope="session")
def bench(tmp_path_factory):
    """root: image path of the generated tiny benchmark; record: its benchmark.json; folder: the
    TigDog split folder. Tests that modify files use ``bench_copy``."""
    root = tmp_path_factory.mktemp("bench")
    _, record = generate_benchmark(TINY, root, processes=1, progress=False)
    return SimpleNamespace(
        root=root, record=record, spec=TINY, folder=split_folder(root, TINY.animal)
    )


@pytest.fixture
def bench_copy(bench, tmp_path):
    """A private copy of the tiny benchmark: (root, split folder)."""
    root = tmp_path / "data"
    shutil.copytree(bench.root, root)
    return SimpleNamespace(root=root, folder=split_folder(root, TINY.animal), spec=TINY)


def _eval_dataset(root, split="valid", *, cls, animal: str, input_size: int, **kwargs):
    return cls(
        root=root,
        animal=animal,
        split=split,
        augmenter=CenterCrop(input_size),
        spec=ANIMAL18,
        seed=0,
        **kwargs,
    )


@pytest.fixture(scope="session")
def eval_dataset():
    """``eval_dataset(root, split="valid", *, cls, animal, input_size, **kwargs)``: the loader
    class ``cls`` as evaluated: CenterCrop(input_size), the ANIMAL18 keypoints, seed 0. Test
    modules bind their defaults with ``functools.partial``."""
    return _eval_dataset


def _benchmark_script(name: str):
    """benchmarks/<name>.py loaded as a module (scripts are not a package)."""
    path = REPO / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"animalpose_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="session")
def domain_gap():
    """benchmarks/domain_gap.py loaded as a module."""
    yield from _benchmark_script("domain_gap")


@pytest.fixture(scope="session")
def adaptation():
    """benchmarks/adaptation.py loaded as a module."""
    yield from _benchmark_script("adaptation")


@pytest.fixture(scope="session")
def pseudo_label_scores():
    """benchmarks/pseudo_label_scores.py loaded as a module."""
    yield from _benchmark_script("pseudo_label_scores")


@pytest.fixture(scope="session")
def human_topdown():
    """benchmarks/human_topdown.py loaded as a module."""
    yield from _benchmark_script("human_topdown")


def _run_script(
    script: str | Path, *args: str, processes: int = 1, cwd: Path | None = None, timeout: int
) -> subprocess.CompletedProcess:
    path = REPO / script  # an absolute ``script`` stays as it is
    if processes == 1:
        launcher = [sys.executable]
    else:
        torchrun = Path(sys.executable).with_name("torchrun")
        launcher = [str(torchrun), "--standalone", "--nproc_per_node", str(processes)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHER_VARIABLES)}
    return subprocess.run(
        [*launcher, str(path), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def run_script():
    """``run_script(script, *args, processes=1, cwd=None, timeout=...)``: a repository script
    (path relative to the repository root, or absolute) in a fresh interpreter, or under
    ``torchrun --standalone`` with ``processes`` > 1, without the launcher variables of the
    environment; the CompletedProcess, output captured as text."""
    return _run_script


@pytest.fixture(scope="session")
def crash_points_passed():
    """``with crash_points_passed() as passed:`` runs its body with every module's
    ``fileio.crash_point`` replaced by ``passed.append``: the names of the commit points an
    uninterrupted run passes, in order (the crash suites check they cover each one)."""

    @contextlib.contextmanager
    def record():
        passed: list[str] = []
        original = fileio.crash_point
        with pytest.MonkeyPatch.context() as m:
            for name, module in list(sys.modules.items()):
                if (
                    name.startswith("animalpose")
                    and getattr(module, "crash_point", None) is original
                ):
                    m.setattr(module, "crash_point", passed.append)
            yield passed

    return record
