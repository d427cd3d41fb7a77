"""The built-in human benchmarks and the run that renders them into the COCO layout.

``HUMAN_BENCHMARKS`` names versioned specs (frame size, images per split, seed, style);
``generate_humans`` renders one (or any ``HumanBenchmarkSpec``) into ``coco_layout.HumanLayout``:
one job per image, image ``i`` of split ``s`` drawing everything from
``default_rng([seed, HUMAN_STREAM, split_id, i])`` (its detections from one more stream), so the
files are the same whatever the process count. Workers are spawned processes that build their own
renderer and die with this process (``run.py``'s parent-death handling); complete images are
skipped on a rerun, so a killed run resumes; the split files are assembled at the end. A folder's
``generator.json`` refuses a run with other settings unless forced. Crash point (tests):
``humans:job_done`` after each finished image, in this process.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import multiprocessing.util
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from animalpose.datasets.fileio import crash_point
from animalpose.datasets.generator.human.coco_layout import HUMAN_SPLITS, HumanLayout
from animalpose.datasets.generator.renderer import MIN_FRAME_SIDE, STYLES
from animalpose.datasets.generator.run import (
    GenerationReport,
    default_processes,
    die_with_parent,
    run_pool,
)
from animalpose.datasets.generator.writers import (
    check_manifest,
    remove_stray_temp_files,
    write_manifest,
)

__all__ = [
    "HUMAN_BENCHMARKS",
    "HUMAN_GENERATOR_VERSION",
    "HUMAN_STREAM",
    "HumanBenchmarkSpec",
    "generate_humans",
    "get_human_benchmark",
    "image_rngs",
]

#: Version of what the human generator writes; bump when equal settings would give other files.
HUMAN_GENERATOR_VERSION = 1
#: First entry of every human job's seed sequence after the seed, keeping its random streams
#: apart from the dog generator's ``[seed, style_id, index]``.
HUMAN_STREAM = 1000


@dataclass(frozen=True)
class HumanBenchmarkSpec:
    """One human data set: name and version (a new version for any change of the data), a line
    of description, frame ``size`` (w, h), images per split (``HUMAN_SPLITS``), ``seed``, the
    appearance ``style`` (``renderer.STYLES``), and the generator version it was defined with."""

    name: str
    version: int
    description: str
    size: tuple[int, int]
    train: int
    val: int
    test: int
    seed: int = 0
    style: str = "target"
    generator_version: int = HUMAN_GENERATOR_VERSION

    def __post_init__(self) -> None:
        if min(self.train, self.val, self.test) < 0:
            raise ValueError(f"{self.name}: image counts must be non-negative")
        if min(self.size) < MIN_FRAME_SIDE:
            raise ValueError(f"{self.name}: frames must be at least {MIN_FRAME_SIDE} pixels")
        if self.style not in STYLES:
            raise ValueError(f"{self.name}: unknown style {self.style!r}; known: {list(STYLES)}")

    @property
    def counts(self) -> dict[str, int]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def manifest(self) -> dict:
        """The ``generator.json`` content: every setting that changes the files."""
        values = json.loads(json.dumps(dataclasses.asdict(self)))
        return {**values, "renderer": "human", "layout": "coco"}


#: The human benchmarks. ``humans-v1`` is sized like a small COCO subset at COCO's typical frame
#: size; ``humans-v1-cpu`` renders in a few minutes on 2 cores and trains on a CPU. ``test`` is
#: held out: report on it, select models on ``val``.
HUMAN_BENCHMARKS: dict[str, HumanBenchmarkSpec] = {
    "humans-v1": HumanBenchmarkSpec(
        name="humans-v1",
        version=1,
        description="1-4 CMU humanoids per image, photo ground and sky, 640x480",
        size=(640, 480),
        train=5000,
        val=500,
        test=500,
    ),
    "humans-v1-cpu": HumanBenchmarkSpec(
        name="humans-v1-cpu",
        version=1,
        description="REDUCED CPU variant of humans-v1 (fewer, smaller images; not comparable)",
        size=(320, 240),
        train=600,
        val=100,
        test=100,
    ),
}


def get_human_benchmark(name: str) -> HumanBenchmarkSpec:
    """``HUMAN_BENCHMARKS[name]``; KeyError listing the names otherwise."""
    try:
        return HUMAN_BENCHMARKS[name]
    except KeyError:
        raise KeyError(
            f"unknown human benchmark {name!r}; known: {sorted(HUMAN_BENCHMARKS)}"
        ) from None


def image_rngs(
    seed: int, split: str, index: int
) -> tuple[np.random.Generator, np.random.Generator]:
    """(scene rng, detections rng) of image ``index`` of ``split``."""
    key = [seed, HUMAN_STREAM, HUMAN_SPLITS.index(split), index]
    return np.random.default_rng(key), np.random.default_rng([*key, 1])


# --- workers ------------------------------------------------------------------------------------


class _Runner:
    """A renderer and the layout; one per worker process (or the main process)."""

    def __init__(self, spec: HumanBenchmarkSpec, root: Path) -> None:
        from animalpose.datasets.generator.human.render import HumanRenderer

        self.spec = spec
        self.layout = HumanLayout(root=root, counts=spec.counts)
        self.renderer = HumanRenderer(width=spec.size[0], height=spec.size[1])

    def run(self, job: tuple[str, int]) -> tuple[str, int]:
        split, index = job
        scene, detections = image_rngs(self.spec.seed, split, index)
        frame = self.renderer.render_image(scene, self.spec.style)
        self.layout.write_image(split, index, frame, detections)
        return job


_WORKER: _Runner | None = None


def _init_worker(spec: HumanBenchmarkSpec, root: Path, parent: int) -> None:
    global _WORKER
    die_with_parent(parent)
    import cv2

    cv2.setNumThreads(1)  # the processes are the parallelism
    _WORKER = _Runner(spec, root)
    multiprocessing.util.Finalize(None, _WORKER.renderer.close, exitpriority=10)


def _run_in_worker(job: tuple[str, int]) -> tuple[str, int]:
    assert _WORKER is not None, "worker not initialised"
    return _WORKER.run(job)


def generate_humans(
    spec: HumanBenchmarkSpec,
    root: str | os.PathLike,
    *,
    processes: int | None = None,
    force: bool = False,
    progress: bool = True,
) -> tuple[GenerationReport, dict]:
    """Render (or resume) ``spec`` into the COCO layout under ``root``.

    Returns:
        the run's report and a summary: name, version, per-split image, annotation and
        detection counts, and the annotation files written.
    Raises:
        DataError: ``root`` holds another run or foreign data (``writers.check_manifest``).
        RuntimeError: no headless OpenGL here.
    """
    from animalpose.datasets.generator.dog.gl import gl_available

    processes = default_processes() if processes is None else int(processes)
    if processes < 1:
        raise ValueError(f"processes must be positive, got {processes}")
    ok, reason = gl_available()
    if not ok:
        raise RuntimeError(f"the human renderer needs headless OpenGL ({reason})")
    if reason.startswith("MUJOCO_GL="):  # spawned workers inherit it
        os.environ.setdefault("MUJOCO_GL", reason.split("=", 1)[1])
    root = Path(root)
    layout = HumanLayout(root=root, counts=spec.counts)
    check_manifest(layout.manifest_path, spec.manifest(), has_data=layout.has_data(), force=force)
    removed = remove_stray_temp_files(layout.temp_folders(), (".jpg", ".json"))
    jobs = [(s, i) for s in HUMAN_SPLITS for i in range(spec.counts[s])]
    todo = [job for job in jobs if not layout.is_complete(*job)]
    write_manifest(layout.manifest_path, spec.manifest())
    if todo:  # the split files of the old data are stale
        for split in {s for s, _ in todo}:
            layout.annotation_path(split).unlink(missing_ok=True)
            layout.detections_path(split).unlink(missing_ok=True)
    bar = tqdm(total=len(todo), unit="img", desc=f"humans ({processes} proc)", disable=not progress)
    written = 0

    def done(job: tuple[str, int]) -> None:
        nonlocal written
        written += 1
        bar.update(1)
        crash_point("humans:job_done")

    start = time.monotonic()
    try:
        if todo and processes == 1:
            runner = _Runner(spec, root)
            try:
                for job in todo:
                    done(runner.run(job))
            finally:
                runner.renderer.close()
        elif todo:
            run_pool(
                todo,
                worker=_run_in_worker,
                initializer=_init_worker,
                initargs=(spec, root, os.getpid()),
                processes=min(processes, len(todo)),
                done=done,
            )
    finally:
        bar.close()
    seconds = time.monotonic() - start
    splits = {s: layout.assemble(s) for s in HUMAN_SPLITS if spec.counts[s] > 0}
    report = GenerationReport(
        written=written,
        skipped=len(jobs) - len(todo),
        images=written,
        seconds=seconds,
        removed_temp=len(removed),
    )
    summary = {
        "benchmark": spec.name,
        "version": spec.version,
        "splits": splits,
        "annotations": {s: str(layout.annotation_path(s)) for s in splits},
    }
    return report, summary
