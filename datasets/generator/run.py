"""Generate the built-in synthetic animal data in the reference's layouts (docs/generator.md).

``generate(settings)`` (a ``settings.GeneratorSettings``) runs one job per still or shot; job
``i`` of a style draws everything from ``np.random.default_rng([seed, style_id, i])``, so the
files are the same for a seed whatever the process count or the order jobs finish in. Jobs run in
worker processes started with "spawn" (each builds and closes its own renderer: GL contexts must
not cross a fork) that die with this process, even when it is killed (``die_with_parent``). A
rerun skips complete jobs, so an interrupted run resumes; files are written atomically; a layout
folder's ``generator.json`` refuses a run with other settings unless forced. Crash point (tests):
``generate:job_done`` after each finished job, in this process. The command line is ``cli.py``.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import logging
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from animalpose.datasets.fileio import crash_point
from animalpose.datasets.formats.splits import VIDEO_TEST_NAME
from animalpose.datasets.formats.tigdog import split_folder
from animalpose.datasets.generator.renderer import RENDERERS, STYLES, AnimalRenderer
from animalpose.datasets.generator.settings import GeneratorSettings
from animalpose.datasets.generator.writers import (
    BENCHMARK_FILE,
    SyntheticLayout,
    TigDogLayout,
    check_manifest,
    remove_stray_temp_files,
    write_manifest,
)

__all__ = [
    "GenerationReport",
    "Job",
    "default_processes",
    "die_with_parent",
    "generate",
    "job_rng",
    "plan_jobs",
    "run_pool",
]

log = logging.getLogger(__name__)

#: Default process count: about 1 GB of RAM per rendering process (860 MB RSS measured for the
#: dog renderer, docs/generator.md) and 8 GB machines -> at most 6 beside the main process.
MAX_DEFAULT_PROCESSES = 6
#: Seconds between rewrites of ranges.mat while shots complete (and once at the end).
RANGES_REWRITE_S = 2.0
#: Jobs queued per worker process (keeps the pool busy, interruption prompt).
QUEUED_PER_PROCESS = 4
#: ``prctl`` option that sends a signal to this process when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: Seconds between a worker's checks that its parent lives, where PR_SET_PDEATHSIG is missing.
PARENT_POLL_S = 0.5


def default_processes() -> int:
    """min(usable CPUs, MAX_DEFAULT_PROCESSES)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, MAX_DEFAULT_PROCESSES))


@dataclass(frozen=True)
class Job:
    """One unit of work: still ``index`` (synthetic layout) or shot ``index`` (TigDog)."""

    style: str
    layout: str
    index: int
    frames: int  # images this job writes


@dataclass(frozen=True)
class GenerationReport:
    """written: jobs run now; skipped: jobs already complete; images: images written now;
    seconds: wall time of the jobs; removed_temp: stray temporary files deleted."""

    written: int
    skipped: int
    images: int
    seconds: float
    removed_temp: int


def job_rng(seed: int, job: Job) -> np.random.Generator:
    """The generator of ``job``: ``default_rng([seed, style_id, index])``."""
    return np.random.default_rng([seed, STYLES.index(job.style), job.index])


def _stale_files(layout) -> list[Path]:
    """Files derived from a layout's data (splits, means, a benchmark's test split and record):
    removed when new jobs change the data."""
    paths = list(layout.derived_files())
    if layout.kind == "tigdog":
        folder = split_folder(layout.root, layout.animal)
        paths += [folder / VIDEO_TEST_NAME, folder / BENCHMARK_FILE]
    return paths


def _layouts(settings: GeneratorSettings, animal: str) -> dict:
    out = {}
    for style in STYLES:
        if settings.num_jobs(style) == 0:
            continue
        if settings.layout_name(style) == "synthetic":
            out[style] = SyntheticLayout(root=settings.root, animal=animal, style=style)
        else:
            out[style] = TigDogLayout(
                root=settings.root, animal=animal, frames_per_shot=settings.frames_per_shot
            )
    return out


def plan_jobs(settings: GeneratorSettings) -> list[Job]:
    """Every job of the run, source jobs first, in index order."""
    jobs = []
    for style in STYLES:
        layout = settings.layout_name(style)
        frames = settings.frames_per_shot if layout == "tigdog" else 1
        jobs += [Job(style, layout, i, frames) for i in range(settings.num_jobs(style))]
    return jobs


# --- running jobs -------------------------------------------------------------------------------


@dataclass
class _Runner:
    """A renderer and the layout writers; one per worker process (or the main process)."""

    renderer: AnimalRenderer
    layouts: dict
    seed: int
    size: tuple[int, int]
    scenes: dict[str, dict[str, str]]  # style -> the renderer's breed and cover arguments

    def run(self, job: Job) -> Job:
        rng = job_rng(self.seed, job)
        layout = self.layouts[job.style]
        scene = self.scenes[job.style]
        if job.layout == "synthetic":
            layout.write_still(job.index, self.renderer.render_still(rng, job.style, **scene))
        else:
            frames = self.renderer.render_shot(rng, job.style, job.frames, **scene)
            layout.write_shot(job.index, frames, self.size)
        return job


def _build_runner(settings: GeneratorSettings, animal: str) -> _Runner:
    cls = RENDERERS[settings.renderer](False)
    renderer = cls(width=settings.size[0], height=settings.size[1])
    if renderer.name != animal:
        raise RuntimeError(
            f"renderer {settings.renderer!r} draws {renderer.name!r}, its class says {animal!r}"
        )
    return _Runner(
        renderer,
        _layouts(settings, animal),
        settings.seed,
        settings.size,
        {
            style: {"breed": settings.breed(style), "cover": settings.cover(style)}
            for style in STYLES
        },
    )


#: The worker process's runner, set by ``_init_worker`` (process-local; never in the main one).
_WORKER_RUNNER: _Runner | None = None


def _watch_parent(parent: int) -> None:
    """Exit this process once ``parent`` is no longer its parent (it died)."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_S)
    os._exit(1)


def die_with_parent(parent: int) -> None:
    """End this worker when process ``parent`` dies, also by SIGKILL or the OOM killer (each
    worker holds a renderer of about 1 GB): Linux's parent-death signal, else a watchdog thread
    that exits when this process is handed to another parent. (The signal comes when the thread
    that started the worker ends: ``submit`` starts them, in the thread running ``generate``.)"""
    if sys.platform.startswith("linux"):
        try:
            armed = ctypes.CDLL(None, use_errno=True).prctl(
                PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0
            )
        except (OSError, AttributeError):
            armed = -1
        if armed == 0:
            if os.getppid() != parent:  # it died before the signal was armed
                os._exit(1)
            return
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch", daemon=True).start()


def _init_worker(settings: GeneratorSettings, animal: str, parent: int) -> None:
    global _WORKER_RUNNER
    die_with_parent(parent)
    import cv2

    cv2.setNumThreads(1)  # the processes are the parallelism
    _WORKER_RUNNER = _build_runner(settings, animal)
    # Run at the worker's normal exit (multiprocessing's exit hook), releasing the GL context.
    multiprocessing.util.Finalize(None, _WORKER_RUNNER.renderer.close, exitpriority=10)


def _run_in_worker(job: Job) -> Job:
    assert _WORKER_RUNNER is not None, "worker not initialised"
    return _WORKER_RUNNER.run(job)


class _Progress:
    """Bookkeeping in the main process: progress bar, ranges.mat rewrites, the caller's hook."""

    def __init__(self, layouts: dict, complete: dict, bar: tqdm, on_job_done) -> None:
        self.layouts, self.complete, self.bar = layouts, complete, bar
        self.on_job_done = on_job_done
        self.dirty: set[str] = set()
        self.last_write = time.monotonic()
        self.written = self.images = 0

    def done(self, job: Job) -> None:
        self.complete[job.style].add(job.index)
        self.written += 1
        self.images += job.frames
        self.bar.update(job.frames)
        if job.layout == "tigdog":
            self.dirty.add(job.style)
            if time.monotonic() - self.last_write > RANGES_REWRITE_S:
                self.flush()
        if self.on_job_done is not None:
            self.on_job_done(job)
        crash_point("generate:job_done")

    def flush(self) -> None:
        for style in sorted(self.dirty):
            self.layouts[style].write_ranges(self.complete[style])
        self.dirty.clear()
        self.last_write = time.monotonic()


def run_pool(
    todo: Iterable,
    *,
    worker: Callable,
    initializer: Callable,
    initargs: tuple,
    processes: int,
    done: Callable,
) -> None:
    """Run ``worker(job)`` for every job of ``todo`` in ``processes`` spawned processes (each set
    up by ``initializer(*initargs)``), calling ``done(result)`` in this process as jobs finish.
    At most ``QUEUED_PER_PROCESS`` jobs per process are queued, so a kill loses little; on any
    error (or Ctrl-C) the queued jobs are cancelled and the error re-raised."""
    context = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(
        max_workers=processes, mp_context=context, initializer=initializer, initargs=initargs
    ) as pool:
        pending: set[cf.Future] = set()
        queue = iter(todo)
        try:
            while True:
                for job in queue:
                    pending.add(pool.submit(worker, job))
                    if len(pending) >= QUEUED_PER_PROCESS * processes:
                        break
                if not pending:
                    return
                finished, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    done(future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise


# --- the run ------------------------------------------------------------------------------------


def generate(
    settings: GeneratorSettings,
    *,
    processes: int | None = None,
    force: bool = False,
    progress: bool = True,
    on_job_done: Callable[[Job], None] | None = None,
) -> GenerationReport:
    """Run (or resume) the generation described by ``settings``.

    Args:
        processes: worker processes (None: ``default_processes()``); 1 runs in this process.
        force: write even where a manifest records other settings (the runs are mixed).
        progress: show a tqdm bar (images, with ETA).
        on_job_done: called in this process after each job completes (e.g. for a GUI).

    Raises:
        DataError: a folder holds another run (see ``writers.check_manifest``).
        RuntimeError: the renderer cannot run here (e.g. no OpenGL for ``dog``).
        TypeError: the renderer class does not name its animal (class attribute ``name``).
    """
    processes = default_processes() if processes is None else int(processes)
    if processes < 1:
        raise ValueError(f"processes must be positive, got {processes}")
    cls = RENDERERS[settings.renderer](True)
    animal = getattr(cls, "name", None)
    if not isinstance(animal, str):
        raise TypeError(
            f"renderer class {cls.__name__} must name its animal in a class attribute `name`"
        )
    layouts = _layouts(settings, animal)
    for style, layout in layouts.items():
        check_manifest(
            layout.manifest_path,
            settings.manifest(style, animal),
            has_data=layout.has_data(),
            force=force,
        )
    removed = []
    for layout in layouts.values():
        removed += remove_stray_temp_files(layout.temp_folders(), layout.output_names())
    jobs = plan_jobs(settings)
    complete = {
        s: {j.index for j in jobs if j.style == s and layouts[s].is_complete(j.index)}
        for s in layouts
    }
    todo = [j for j in jobs if j.index not in complete[j.style]]
    for style, layout in layouts.items():
        write_manifest(layout.manifest_path, settings.manifest(style, animal))
        # Splits / means of the old data are stale once a job writes new data (a job that only
        # adds a still's part segmentation leaves them valid: writers.SyntheticLayout).
        if any(j.style == style and not layout.data_complete(j.index) for j in todo):
            for path in _stale_files(layout):
                path.unlink(missing_ok=True)
    total = sum(j.frames for j in todo)
    bar = tqdm(
        total=total,
        unit="img",
        desc=f"generating ({processes} proc)",
        disable=not progress,
        dynamic_ncols=True,
    )
    tracker = _Progress(layouts, complete, bar, on_job_done)
    tracker.dirty = {s for s, layout in layouts.items() if layout.kind == "tigdog"}
    start = time.monotonic()
    try:
        if todo and processes == 1:
            runner = _build_runner(settings, animal)
            try:
                for job in todo:
                    tracker.done(runner.run(job))
            finally:
                runner.renderer.close()
        elif todo:
            run_pool(
                todo,
                worker=_run_in_worker,
                initializer=_init_worker,
                initargs=(settings, animal, os.getpid()),
                processes=min(processes, len(todo)),
                done=tracker.done,
            )
    finally:
        tracker.flush()
        bar.close()
    return GenerationReport(
        written=tracker.written,
        skipped=len(jobs) - len(todo),
        images=tracker.images,
        seconds=time.monotonic() - start,
        removed_temp=len(removed),
    )
