"""A tiny flat-rendered benchmark shared by the benchmark tests, and the domain-gap script."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from animalpose.datasets.formats.tigdog import split_folder
from animalpose.datasets.generator.dogshift import BenchmarkSpec, generate_benchmark

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


@pytest.fixture(scope="session")
def tiny_spec() -> BenchmarkSpec:
    return TINY


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


@pytest.fixture(scope="session")
def domain_gap():
    """benchmarks/domain_gap.py loaded as a module (scripts are not a package)."""
    path = REPO / "benchmarks" / "domain_gap.py"
    spec = importlib.util.spec_from_file_location("animalpose_bench_domain_gap", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)
