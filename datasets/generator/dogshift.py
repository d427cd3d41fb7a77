"""Named, versioned domain-gap benchmarks of the built-in generator: what to render, how to split.

A benchmark is a source set (source style, synthetic layout: the training data of "source only")
and a target set (target style, TigDog layout) split by whole shots into train (used without
labels by adaptation, with labels by the oracle), valid (model selection) and test (reporting,
held out from every choice). ``generate_benchmark`` renders a spec, then writes the split files
and ``benchmark.json`` into ``behaviorDiscovery2.0/splits/<animal>/``. The files, the shot
assignment and the generator-version pin: docs/generator.md ("Benchmarks").
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animalpose.datasets.fileio import DataError, atomic_write
from animalpose.datasets.formats.means import VIDEO_MEAN_NAME
from animalpose.datasets.formats.splits import (
    SPLIT_NAMES,
    VIDEO_SPLIT_NAMES,
    VIDEO_TEST_NAME,
    load_or_create_split,
    save_video_splits,
)
from animalpose.datasets.formats.synthetic import list_synthetic_images, synthetic_dir
from animalpose.datasets.formats.tigdog import load_tigdog, split_folder, tigdog_dir
from animalpose.datasets.generator.dog.ground_cover import COVERS
from animalpose.datasets.generator.dog.shape import BREEDS
from animalpose.datasets.generator.run import (
    RENDERERS,
    GenerationReport,
    GeneratorSettings,
    generate,
)
from animalpose.datasets.generator.writers import (
    BENCHMARK_FILE,
    GENERATOR_VERSION,
    MANIFEST_NAME,
    TigDogLayout,
)

__all__ = [
    "BENCHMARKS",
    "BENCHMARK_SPLITS",
    "BenchmarkSpec",
    "benchmark_settings",
    "find_benchmark",
    "generate_benchmark",
    "get_benchmark",
    "split_counts",
    "split_shots",
    "write_benchmark_splits",
]

log = logging.getLogger(__name__)

#: Version of the ``benchmark.json`` format.
BENCHMARK_FORMAT = 1
#: Target splits, in the order of ``BenchmarkSpec.split_fractions``.
BENCHMARK_SPLITS = ("train", "valid", "test")
#: Split file of each target split (the reference's pair plus our test file).
SPLIT_FILES = {
    "train": VIDEO_SPLIT_NAMES[0],
    "valid": VIDEO_SPLIT_NAMES[1],
    "test": VIDEO_TEST_NAME,
}


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark: generator settings and the split by shots.

    Attributes:
        name, version: the benchmark's identity (a new version for any change of the data).
        description: one line for tables.
        renderer: the renderer of the official data (``run.RENDERERS`` key).
        animal: the renderer's animal (the layouts' folder names).
        size: frame (w, h) in pixels.
        source_images: source-style stills (synthetic layout).
        target_shots, frames_per_shot: target-style shots of F frames (TigDog layout).
        seed: generator seed.
        generator_version: ``writers.GENERATOR_VERSION`` the data was defined with.
        split_fractions: (train, valid, test) shares of the target shots; sum 1.
        split_seed: seed of the shot assignment and of the source train/valid split.
        target_breed: shape of the target dogs (``shape.BREEDS``; the source's is "mixed").
        target_cover: ground cover of the target scenes (``ground_cover.COVERS``; the source
            has none).
    """

    name: str
    version: int
    description: str
    renderer: str
    animal: str
    size: tuple[int, int]
    source_images: int
    target_shots: int
    frames_per_shot: int
    seed: int
    generator_version: int
    split_fractions: tuple[float, float, float]
    split_seed: int
    target_breed: str
    target_cover: str

    def __post_init__(self) -> None:
        if self.renderer not in RENDERERS:
            raise ValueError(
                f"{self.name}: unknown renderer {self.renderer!r}; known: {sorted(RENDERERS)}"
            )
        if min(self.source_images, self.target_shots, self.frames_per_shot) < 1:
            raise ValueError(
                f"{self.name}: source_images, target_shots and frames_per_shot must be positive"
            )
        fractions = self.split_fractions
        if len(fractions) != 3 or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0):
            raise ValueError(
                f"{self.name}: split_fractions (train, valid, test) must be 3 "
                f"positive shares summing to 1, got {fractions}"
            )
        if self.target_breed not in BREEDS:
            raise ValueError(
                f"{self.name}: unknown target_breed {self.target_breed!r}; known: {sorted(BREEDS)}"
            )
        if self.target_cover not in COVERS:
            raise ValueError(
                f"{self.name}: unknown target_cover {self.target_cover!r}; known: {sorted(COVERS)}"
            )
        if self.target_shots < len(BENCHMARK_SPLITS):
            raise ValueError(f"{self.name}: needs at least {len(BENCHMARK_SPLITS)} target shots")

    def to_dict(self) -> dict:
        """JSON-ready values (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict) -> BenchmarkSpec:
        """The spec of a ``to_dict`` dict (e.g. a ``benchmark.json`` record's ``"spec"``)."""
        names = [f.name for f in dataclasses.fields(cls)]
        if not isinstance(values, dict) or sorted(values) != sorted(names):
            raise ValueError(f"a benchmark spec needs exactly the keys {names}, got {values!r}")
        return cls(
            **{
                **values,
                "size": tuple(values["size"]),
                "split_fractions": tuple(values["split_fractions"]),
            }
        )


#: The benchmarks, by name. Counts: the full one mirrors the reference's data (10,000 synthetic
#: stills at 640x480; TigDog has ~10,000 annotated frames per animal); the CPU one renders in
#: about two minutes on 2 cores (16.4 img/s at 320x240 with 2 processes on the 2-core CI
#: machine, 2026-11-23: 2,000 images) and trains with configs/quickstart_cpu.yaml.
BENCHMARKS: dict[str, BenchmarkSpec] = {
    "dogshift-v1": BenchmarkSpec(
        name="dogshift-v1",
        version=1,
        description="3-D dog, CAD-like source stills -> footage-like target shots, 640x480",
        renderer="dog",
        animal="dog",
        size=(640, 480),
        source_images=10000,
        target_shots=200,
        frames_per_shot=50,
        seed=0,
        generator_version=1,
        split_fractions=(0.6, 0.2, 0.2),
        split_seed=0,
        target_breed="mixed",
        target_cover="none",
    ),
    # Version 2: 60 target shots (was 20). With 12 training shots (240 frames) the oracle could
    # not learn the dog at all (8 % PCK against 36 % for source only on 640 stills, 2026-11-23),
    # so the "gap" measured nothing; 36 training shots give it as many frames as the source.
    "dogshift-v1-cpu": BenchmarkSpec(
        name="dogshift-v1-cpu",
        version=2,
        description="REDUCED CPU variant of dogshift-v1 (fewer, smaller frames; not comparable)",
        renderer="dog",
        animal="dog",
        size=(320, 240),
        source_images=800,
        target_shots=60,
        frames_per_shot=20,
        seed=0,
        generator_version=1,
        split_fractions=(0.6, 0.2, 0.2),
        split_seed=0,
        target_breed="mixed",
        target_cover="none",
    ),
}


def _bassets_in_grass(spec: BenchmarkSpec, name: str, description: str) -> BenchmarkSpec:
    """``spec`` with basset-shaped target dogs in grass, every other setting equal."""
    return dataclasses.replace(
        spec,
        name=name,
        version=1,
        description=description,
        target_breed="basset",
        target_cover="grass",
    )


# dogshift-v2: dogshift-v1's target shots with basset-shaped dogs (short legs, long heavy
# body) in knee-high grass that hides legs and hooves. On v1 the footage look alone cost
# source-only models nothing measurable (+1.5 points for the oracle over 3 seeds, inside the
# noise, docs/benchmarks.md): the source's random textures and strong augmentation cover it.
# The source data is v1's, byte for byte, and every target scene is v1's but for the dog's
# shape and the grass (breeds make the same random draws; grass is drawn after the rest).
BENCHMARKS["dogshift-v2"] = _bassets_in_grass(
    BENCHMARKS["dogshift-v1"],
    "dogshift-v2",
    "3-D dog, CAD-like mixed-breed source stills -> footage-like shots of bassets in grass, "
    "640x480",
)
BENCHMARKS["dogshift-v2-cpu"] = _bassets_in_grass(
    BENCHMARKS["dogshift-v1-cpu"],
    "dogshift-v2-cpu",
    "REDUCED CPU variant of dogshift-v2 (fewer, smaller frames; not comparable)",
)


def get_benchmark(name: str) -> BenchmarkSpec:
    """``BENCHMARKS[name]``; KeyError listing the names otherwise."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {sorted(BENCHMARKS)}") from None


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


def benchmark_settings(
    spec: BenchmarkSpec, root: str | os.PathLike, *, renderer: str | None = None
) -> GeneratorSettings:
    """The generator settings of ``spec`` writing under ``root`` (``renderer`` overrides the
    spec's, e.g. ``"flat"`` where there is no OpenGL)."""
    return GeneratorSettings(
        root=Path(root),
        renderer=renderer or spec.renderer,
        source_images=spec.source_images,
        target_shots=spec.target_shots,
        frames_per_shot=spec.frames_per_shot,
        size=tuple(spec.size),
        seed=spec.seed,
        target_breed=spec.target_breed,
        target_cover=spec.target_cover,
    )


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


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(
            f"{path}: not found; the benchmark's data must be written by "
            "`python datasets/generate.py --benchmark NAME`"
        ) from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the generator manifest ({exc})") from exc
    if not isinstance(manifest, dict):
        raise DataError(f"{path}: the generator manifest must be a JSON object")
    return manifest


def _check_manifests(root: Path, spec: BenchmarkSpec) -> dict[str, dict]:
    """The source and target manifests, checked against ``spec`` (any known renderer)."""
    target_layout = TigDogLayout(
        root=root, animal=spec.animal, frames_per_shot=spec.frames_per_shot
    )
    paths = {
        "source": synthetic_dir(root, spec.animal) / MANIFEST_NAME,
        "target": target_layout.manifest_path,
    }
    manifests = {style: _read_manifest(path) for style, path in paths.items()}
    renderer = manifests["target"].get("renderer")
    if renderer not in RENDERERS:
        raise DataError(f"{paths['target']}: unknown renderer {renderer!r}")
    expected_settings = benchmark_settings(spec, root, renderer=renderer)
    for style, manifest in manifests.items():
        _check_generator_version(spec, manifest.get("generator_version"), str(paths[style]))
        expected = expected_settings.manifest(style, spec.animal)
        keys = set(expected) | set(manifest)
        differ = sorted(k for k in keys if expected.get(k) != manifest.get(k))
        if differ:
            detail = ", ".join(
                f"{k}: {manifest.get(k)!r} there, {expected.get(k)!r} in the spec" for k in differ
            )
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
    )
    n_source = len(list_synthetic_images(root, spec.animal))
    source_train, source_valid = load_or_create_split(
        synthetic_dir(root, spec.animal), names=SPLIT_NAMES, n=n_source, seed=spec.split_seed
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
            "images": n_source,
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
