"""Shared runs of the generator with the flat renderer (small frames, few jobs)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from animalpose.datasets.generator.run import generate
from animalpose.datasets.generator.settings import GeneratorSettings

#: Small frames and counts: 6 stills (a 5 / 1 split needs >= 5), 3 shots (a split by video
#: needs >= 2) of 4 frames.
SIZE = (96, 72)
SOURCE_IMAGES, TARGET_SHOTS, FRAMES_PER_SHOT = 6, 3, 4
SEED = 7


def make_settings(root: Path, **overrides) -> GeneratorSettings:
    """The test settings (flat renderer) writing under ``root``."""
    values = {
        "root": Path(root),
        "renderer": "flat",
        "source_images": SOURCE_IMAGES,
        "target_shots": TARGET_SHOTS,
        "frames_per_shot": FRAMES_PER_SHOT,
        "size": SIZE,
        "seed": SEED,
    }
    values.update(overrides)
    return GeneratorSettings(**values)


def tree(root: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under ``root``."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(Path(root).rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="session")
def gen():
    """The test constants and helpers (conftest cannot be imported under importlib mode)."""
    return SimpleNamespace(
        size=SIZE,
        source_images=SOURCE_IMAGES,
        target_shots=TARGET_SHOTS,
        frames_per_shot=FRAMES_PER_SHOT,
        seed=SEED,
        settings=make_settings,
        tree=tree,
    )


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory):
    """An uninterrupted in-process run with the default layouts: root, report, files."""
    root = tmp_path_factory.mktemp("reference")
    report = generate(make_settings(root), processes=1, progress=False)
    return SimpleNamespace(root=root, report=report, files=tree(root))


@pytest.fixture
def reference_copy(reference_run, tmp_path):
    """A private copy of the reference run (tests that load or modify it)."""
    root = tmp_path / "data"
    shutil.copytree(reference_run.root, root)
    return root
