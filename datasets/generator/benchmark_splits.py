"""A benchmark's data: render a ``dogshift.BenchmarkSpec``, split its target shots into
train/valid/test, write the split files and the ``benchmark.json`` record, and find that record.

Where the files go: animal_data/README.md; the shot assignment, what the record holds and the
generator-version pin: docs/generator.md ("Benchmarks").
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np

from animalpose.datasets.fileio import DataError, atomic_write
from animalpose.datasets.formats.means import VIDEO_MEAN_NAME
from animalpose.datasets.formats.split_fingerprint import frame_ids, image_ids
from animalpose.datasets.formats.splits import (
    SPLIT_NAMES,
    VIDEO_SPLIT_NAMES,
    VIDEO_TEST_NAME,
    load_or_create_split,
    save_video_splits,
)
from animalpose.datasets.formats.synthetic import list_synthetic_images, synthetic_dir
from animalpose.datasets.formats.tigdog import load_tigdog, split_folder, tigdog_dir
from animalpose.datasets.generator.dogshift import (
    BENCHMARK_SPLITS,
    BENCHMARKS,
    BenchmarkSpec,
    benchmark_settings,
)
from animalpose.datasets.generator.renderer import RENDERERS
from animalpose.datasets.generator.run import GenerationReport, generate
from animalpose.datasets.generator.writers import (
    BENCHMARK_FILE,
    GENERATOR_VERSION,
    MANIFEST_NAME,
    TigDogLayout,
    manifest_differences,
    read_manifest,
)

__all__ = [
    "find_benchmark",
    "generate_benchmark",
    "split_counts",
    "split_shots",
    "write_benchmark_splits",
]

log = logging.getLogger(__name__)

#: Version of the ``benchmark.json`` format.
BENCHMARK_FORMAT = 1
#: Split file of each target split (the reference's pair plus our test file).
SPLIT_FILES = {
    "train": VIDEO_SPLIT_NAMES[0],
    "valid": VIDEO_SPLIT_NAMES[1],
    "test": VIDEO_TEST_NAME,
}


# --- splitting ----------------------------------------------------------------------------------


def split_counts(num_shots: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    """(train, valid, test) shot counts: valid and test ``round(N * share)`` (halves up), each
    at least 1; train the rest, at least 1. ValueError when N < 3 or train would be empty."""
    held = [max(1, math.floor(num_shots * share + 0.5)) for share in fractions[1:]]
    train = num_shots - sum(held)
    if train < 1:
        raise ValueError(
            f"cannot split {num_shots} shots into train/valid/test with shares "
            f"{tuple(fractions)} (every split needs a shot)"
        )
    return train, held[0], held[1]


def split_shots(
    shot_ids: np.ndarray, *, fractions: tuple[float, float, float], seed: int
) -> dict[str, np.ndarray]:
    """Assign shots to ``BENCHMARK_SPLITS``: the sorted unique ids permuted by
    ``default_rng(seed)``; test takes the first, valid the next, train the rest (docs/generator.md).

    Returns:
        split name -> sorted int64 shot ids.
    """
    shots = np.unique(np.asarray(shot_ids, dtype=np.int64))
    _, n_valid, n_test = split_counts(len(shots), fractions)
    order = np.random.default_rng(seed).permutation(shots)
    return {
        "train": np.sort(order[n_test + n_valid :]),
        "valid": np.sort(order[n_test : n_test + n_valid]),
        "test": np.sort(order[:n_test]),
    }


# --- generation ---------------------------------------------------------------------------------


def _check_generator_version(spec: BenchmarkSpec, found: int, where: str) -> None:
    if found != spec.generator_version:
        raise DataError(
            f"{where}: benchmark {spec.name} (version {spec.version}) is defined on generator "
            f"version {spec.generator_version}, this is version {found}: its data would differ. "
            "Add a new benchmark version to animalpose.datasets.generator.dogshift.BENCHMARKS"
        )


def generate_benchmark(
    spec: BenchmarkSpec,
    root: str | os.PathLike,
    *,
    renderer: str | None = None,
    processes: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> tuple[GenerationReport, dict]:
    """Render (or resume) ``spec``'s data under ``root``, then write its splits.

    Returns:
        (the generator's report, the ``benchmark.json`` record).
    """
    _check_generator_version(spec, GENERATOR_VERSION, "animalpose.datasets.generator.writers")
    settings = benchmark_settings(spec, root, renderer=renderer)
    report = generate(settings, processes=processes, force=force, progress=progress)
    return report, write_benchmark_splits(root, spec)


# --- split files and the record -----------------------------------------------------------------


def _check_manifests(root: Path, spec: BenchmarkSpec) -> dict[str, dict]:
    """The source and target manifests, checked against ``spec`` (any known renderer)."""
    target_layout = TigDogLayout(
        root=root, animal=spec.animal, frames_per_shot=spec.frames_per_shot
    )
    paths = {
        "source": synthetic_dir(root, spec.animal) / MANIFEST_NAME,
        "target": target_layout.manifest_path,
    }
    missing = (
        "the benchmark's data must be written by `python datasets/generate.py --benchmark NAME`"
    )
    manifests = {style: read_manifest(path, missing=missing) for style, path in paths.items()}
    renderer = manifests["target"].get("renderer")
    if renderer not in RENDERERS:
        raise DataError(f"{paths['target']}: unknown renderer {renderer!r}")
    expected_settings = benchmark_settings(spec, root, renderer=renderer)
    for style, manifest in manifests.items():
        _check_generator_version(spec, manifest.get("generator_version"), str(paths[style]))
        expected = expected_settings.manifest(style, spec.animal)
        detail = manifest_differences(manifest, expected, expected_name="in the spec")
        if detail:
            raise DataError(
                f"{paths[style]}: this data was not generated as benchmark {spec.name} ({detail})"
            )
    return manifests


def write_benchmark_splits(root: str | os.PathLike, spec: BenchmarkSpec) -> dict:
    """Write the train/valid/test split files and ``benchmark.json`` of ``spec`` under ``root``.

    Checks that the generator manifests match ``spec`` (the renderer may differ: then
    ``"official": false``). Split files are written atomically, ``benchmark.json`` last; a
    ``mean_by_video.pth.tar`` computed over another training split is removed. Rerunning gives
    the same bytes. The source set's train/valid files are drawn with ``split_seed`` when absent
    (an existing pair is kept, as the loaders would read it) and their counts recorded.

    Returns:
        The ``benchmark.json`` record.

    Raises:
        DataError: missing or mismatching manifests, unreadable data, too few annotated shots.
    """
    root = Path(root)
    manifests = _check_manifests(root, spec)
    data = load_tigdog(root, spec.animal)
    try:
        shots = split_shots(
            data.shots[data.kept], fractions=spec.split_fractions, seed=spec.split_seed
        )
    except ValueError as exc:
        raise DataError(f"{tigdog_dir(root) / 'landmarks' / spec.animal}: {exc}") from None
    frames = {
        name: np.sort(data.kept[np.isin(data.shots[data.kept], ids)]) for name, ids in shots.items()
    }
    folder = split_folder(root, spec.animal)
    try:
        unchanged = np.array_equal(np.load(folder / SPLIT_FILES["train"]), frames["train"])
    except (OSError, ValueError):
        unchanged = False
    if not unchanged:  # a supervised mean there was computed over another training split
        (folder / VIDEO_MEAN_NAME).unlink(missing_ok=True)
    save_video_splits(
        folder,
        train=frames["train"],
        valid=frames["valid"],
        test=frames["test"],
        names=VIDEO_SPLIT_NAMES,
        test_name=VIDEO_TEST_NAME,
        sample_ids=frame_ids(data.shots, data.frames),
    )
    source_images = list_synthetic_images(root, spec.animal)
    source_train, source_valid = load_or_create_split(
        synthetic_dir(root, spec.animal),
        names=SPLIT_NAMES,
        n=len(source_images),
        seed=spec.split_seed,
        sample_ids=image_ids(source_images),
    )
    all_shots = np.unique(data.shots)
    renderer = manifests["target"]["renderer"]
    record = {
        "format": BENCHMARK_FORMAT,
        "name": spec.name,
        "version": spec.version,
        "official": renderer == spec.renderer,
        "renderer": renderer,
        "spec": spec.to_dict(),
        "generator": manifests,
        "files": dict(SPLIT_FILES),
        "target": {
            "frames": len(data.shots),
            "kept_frames": len(data.kept),
            "shots": len(all_shots),
            "shots_without_kept_frames": np.setdiff1d(all_shots, data.shots[data.kept]).tolist(),
        },
        "splits": {
            name: {"shots": shots[name].tolist(), "frames": len(frames[name])}
            for name in BENCHMARK_SPLITS
        },
        "source": {
            "images": len(source_images),
            "train": len(source_train),
            "valid": len(source_valid),
            "files": list(SPLIT_NAMES),
        },
    }
    with atomic_write(folder / BENCHMARK_FILE, "w") as f:
        f.write(json.dumps(record, indent=2) + "\n")
    log.info(
        "benchmark %s: %s",
        spec.name,
        ", ".join(f"{n} {len(shots[n])} shots / {len(frames[n])} frames" for n in BENCHMARK_SPLITS),
    )
    return record


def find_benchmark(root: str | os.PathLike, name: str) -> dict:
    """The ``benchmark.json`` record named ``name`` under ``root`` (any animal's split folder).

    A registered name's record must hold the registered spec (any renderer).

    Raises:
        DataError: no such record (naming the folders searched and the names found), or a record
            whose spec differs from ``BENCHMARKS[name]``.
    """
    base = tigdog_dir(root) / "splits"
    found: dict[str, tuple[Path, dict]] = {}
    for path in sorted(base.glob(f"*/{BENCHMARK_FILE}")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(f"{path}: cannot read the benchmark record ({exc})") from exc
        found[str(record.get("name"))] = (path, record)
    if name not in found:
        raise DataError(
            f"{base}: no benchmark {name!r} here (found: {sorted(found) or 'none'}); generate it "
            f"with `python datasets/generate.py --benchmark {name} --image-path {root}`"
        )
    path, record = found[name]
    if name in BENCHMARKS and record.get("spec") != BENCHMARKS[name].to_dict():
        raise DataError(
            f"{path}: its spec differs from the registered benchmark {name}; regenerate the data"
        )
    return record
