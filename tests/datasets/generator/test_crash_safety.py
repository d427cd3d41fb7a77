"""The generator killed (SIGKILL, ``ANIMALPOSE_CRASH_AT``) at its commit points and run again:
every file byte-identical to an uninterrupted run's, no temporary file and no process left; the
render workers die with a killed parent (issue 10, item 10)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from animalpose.datasets.fileio import CRASH_ENV
from animalpose.datasets.formats.split_fingerprint import FINGERPRINT_NAME
from animalpose.datasets.formats.splits import SPLIT_NAMES, VIDEO_SPLIT_NAMES, VIDEO_TEST_NAME
from animalpose.datasets.generator.benchmark_splits import generate_benchmark
from animalpose.datasets.generator.dogshift import BenchmarkSpec
from animalpose.datasets.generator.run import generate
from animalpose.datasets.generator.writers import (
    BENCHMARK_FILE,
    GENERATOR_VERSION,
    MANIFEST_NAME,
    SyntheticLayout,
    TigDogLayout,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds processes through /proc"
)

REPO = Path(__file__).resolve().parents[3]
#: Seconds the workers of a killed generator may take to end.
WORKERS_END_S = 5.0
#: Seconds a generator subprocess may take.
TIMEOUT = 120
#: Environment variable marking the processes of one test run (workers inherit it).
TOKEN_ENV = "ANIMALPOSE_TEST_RUN"

#: ``generate(settings, processes=2)`` in a subprocess (argv: the settings as JSON, a file for
#: the worker pids) that records its workers and SIGKILLs itself after the first finished job.
KILL_AFTER_FIRST_JOB = textwrap.dedent(
    """
    import json, multiprocessing, os, signal, sys
    from pathlib import Path
    from animalpose.datasets.generator.run import generate
    from animalpose.datasets.generator.settings import GeneratorSettings

    values = json.loads(sys.argv[1])
    values.update(root=Path(values["root"]), size=tuple(values["size"]))

    def record_and_die(job):
        pids = " ".join(str(p.pid) for p in multiprocessing.active_children())
        Path(sys.argv[2]).write_text(pids)
        os.kill(os.getpid(), signal.SIGKILL)  # as kill -9 or the OOM killer

    generate(GeneratorSettings(**values), processes=2, progress=False, on_job_done=record_and_die)
    """
)

#: ``generate_benchmark(spec, root, processes=2)`` in a subprocess (argv: the spec as JSON, the
#: root): the command the fault-injection cases kill and run again.
BENCHMARK = textwrap.dedent(
    """
    import json, sys
    from animalpose.datasets.generator.benchmark_splits import generate_benchmark
    from animalpose.datasets.generator.dogshift import BenchmarkSpec

    values = json.loads(sys.argv[1])
    values.update(size=tuple(values["size"]), split_fractions=tuple(values["split_fractions"]))
    generate_benchmark(BenchmarkSpec(**values), sys.argv[2], processes=2, progress=False)
    """
)


def _live(pids) -> list[int]:
    """The processes of ``pids`` still running (a zombie has ended)."""
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(pid)
    return alive


def _marked(token: str) -> list[int]:
    """Running processes whose environment holds ``TOKEN_ENV=token``."""
    marker = f"{TOKEN_ENV}={token}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue
    return _live(pids)


def _wait_ended(find, seconds: float = WORKERS_END_S) -> list[int]:
    """Poll ``find()`` (live pids) until it is empty or ``seconds`` pass; the last answer."""
    deadline = time.monotonic() + seconds
    while (left := find()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _kill(pids) -> None:
    """Clean up after a failed check: SIGKILL the processes this test started."""
    for pid in _live(pids):
        os.kill(pid, signal.SIGKILL)


def _run(*argv: str, log: Path, token: str, point: str | None = None) -> tuple[int, str]:
    """Python with ``argv`` in a subprocess marked with ``token`` (killed at crash ``point``):
    its exit status and output. The output goes through the file ``log``: orphaned
    workers would hold a pipe open."""
    env = {**os.environ, TOKEN_ENV: token}
    env.pop(CRASH_ENV, None)
    if point is not None:
        env[CRASH_ENV] = point
    with open(log, "w") as out:
        done = subprocess.run(
            [sys.executable, *argv],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=TIMEOUT,
            check=False,
        )
    return done.returncode, log.read_text()


def test_workers_die_with_a_killed_parent(gen, reference_run, tmp_path):
    """Item 10: kill -9 of the generator (after its first finished job, the workers busy) ends
    its workers within seconds; the same run again completes the data."""
    root, pid_file, token = tmp_path / "data", tmp_path / "workers", uuid.uuid4().hex
    settings = gen.settings(root)
    values = json.dumps({**dataclasses.asdict(settings), "root": str(root)})
    status, output = _run(
        "-c", KILL_AFTER_FIRST_JOB, values, str(pid_file), log=tmp_path / "log", token=token
    )
    assert status == -signal.SIGKILL, output[-3000:]
    workers = [int(pid) for pid in pid_file.read_text().split()]
    assert len(workers) == 2
    try:
        left = _wait_ended(lambda: _live(workers))
        assert not left, f"worker processes {left} outlived their killed parent"
        assert not _wait_ended(lambda: _marked(token)), "processes of the killed run are left"
    finally:
        _kill([*workers, *_marked(token)])
    report = generate(settings, processes=2, progress=False)
    assert report.skipped >= 1 and report.written >= 1
    assert gen.tree(root) == reference_run.files
    assert not sorted(root.rglob(".*.tmp"))


#: A process (argv: a file) that starts one running ``run._watch_parent`` (the portable
#: fallback of the parent-death signal) on it, checks that it runs, and SIGKILLs itself.
WATCHED_CHILD = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    from pathlib import Path

    watch = "from animalpose.datasets.generator.run import _watch_parent; _watch_parent({})"
    child = subprocess.Popen([sys.executable, "-c", watch.format(os.getpid())])
    time.sleep(1.0)
    Path(sys.argv[1]).write_text(f"{child.pid} {child.poll()}")
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def test_the_watchdog_fallback_ends_a_process_whose_parent_died(tmp_path):
    token = uuid.uuid4().hex
    status, output = _run(
        "-c", WATCHED_CHILD, str(tmp_path / "child"), log=tmp_path / "log", token=token
    )
    assert status == -signal.SIGKILL, output[-3000:]
    pid, poll = (tmp_path / "child").read_text().split()
    assert poll == "None"  # it ran while its parent lived
    try:
        assert not _wait_ended(lambda: _live([int(pid)])), "the watched process outlived its parent"
    finally:
        _kill([int(pid)])


def test_a_killed_worker_stops_the_command_with_a_clear_message(gen, tmp_path):
    """A worker killed (by the OOM killer, say) ends ``datasets/generate.py`` with one line that
    says what to do, no traceback and no process left; the same command then completes."""
    root, token = tmp_path / "data", uuid.uuid4().hex
    argv = ["--image-path", str(root), "--renderer", "flat", "--size", "96x72", "--no-progress"]
    argv += ["--source-images", "4", "--target-shots", "0", "--processes", "2"]
    script = str(REPO / "datasets" / "generate.py")
    point = "write:2_dog_source_img.png"
    status, output = _run(script, *argv, log=tmp_path / "log", token=token, point=point)
    try:
        assert not _wait_ended(lambda: _marked(token)), "processes of the killed run are left"
    finally:
        _kill(_marked(token))
    assert status == 2, output[-3000:]
    assert "error: a render worker process died" in output and "Traceback" not in output
    status, output = _run(script, *argv, log=tmp_path / "log", token=token)
    assert status == 0, output[-3000:]
    assert json.loads(output.splitlines()[-1])["jobs_skipped"] >= 1
    assert len(list(root.rglob("*_img.png"))) == 4 and not sorted(root.rglob(".*.tmp"))


# -- every commit point of a benchmark's generation ----------------------------------------------


#: The smallest benchmark: 5 stills (a 4 / 1 source split), 3 shots of 2 frames (1 / 1 / 1).
SPEC = BenchmarkSpec(
    name="tiny-crash",
    version=1,
    description="crash-test benchmark",
    renderer="flat",
    animal="dog",
    size=(96, 72),
    source_images=5,
    target_shots=3,
    frames_per_shot=2,
    seed=5,
    generator_version=GENERATOR_VERSION,
    split_fractions=(0.6, 0.2, 0.2),
    split_seed=11,
    target_breed="mixed",
    target_cover="none",
)


def commit_points(spec: BenchmarkSpec) -> list[str]:
    """The crash points of generating ``spec``, in order (``name@n``: its n-th time in one
    process; files are written by the worker processes, the rest by the main one): every kind,
    the first and last of each kind of sample file."""
    source = SyntheticLayout(root=Path("."), animal=spec.animal, style="source")
    target = TigDogLayout(root=Path("."), animal=spec.animal, frames_per_shot=spec.frames_per_shot)
    points = [f"{MANIFEST_NAME}@1", f"{MANIFEST_NAME}@2"]  # the source, then the target folder
    for i in (0, spec.source_images - 1):
        image, keypoints = source.paths(i)
        points += [keypoints.name, source.partseg_path(i).name, image.name]
    for i in (0, spec.target_shots - 1):
        shot, start, end = target.shot_range(i)
        points += [target.frame_path(start).name, target.landmarks_path(shot).name]
    points.append(target.ranges_path.name)
    # The target split folder's fingerprint and files, then the source folder's, the record.
    points += [f"{FINGERPRINT_NAME}@1", VIDEO_TEST_NAME, *VIDEO_SPLIT_NAMES]
    points += [f"{FINGERPRINT_NAME}@2", *SPLIT_NAMES, BENCHMARK_FILE]
    return ["generate:job_done@1", "generate:job_done@4"] + [f"write:{p}" for p in points]


def kind(point: str) -> str:
    """A crash point's kind: its name without the @count, numbers as ``#``."""
    return re.sub(r"\d+", "#", point.split("@")[0])


POINTS = commit_points(SPEC)


@pytest.fixture(scope="module")
def whole(tmp_path_factory, crash_points_passed, gen):
    """An uninterrupted generation of ``SPEC`` (in this process): its files, and the names of
    the crash points it passed."""
    root = tmp_path_factory.mktemp("crash_whole")
    with crash_points_passed() as passed:
        generate_benchmark(SPEC, root, processes=1, progress=False)
    return gen.tree(root), passed


def test_the_points_cover_every_commit_of_a_generation(whole):
    _, passed = whole
    missing = sorted({kind(p) for p in passed} - {kind(p) for p in POINTS})
    assert not missing, f"commit points without a crash case: {missing}; add them to POINTS"


@pytest.mark.slow  # about 5 s a point; test_workers_die_with_a_killed_parent is the fast case
@pytest.mark.parametrize("point", POINTS)
def test_a_generation_killed_at_a_commit_point_resumes_to_the_same_files(
    point, whole, tmp_path, gen
):
    root, token = tmp_path / "data", uuid.uuid4().hex
    values = json.dumps(dataclasses.asdict(SPEC))
    status, output = _run(
        "-c", BENCHMARK, values, str(root), log=tmp_path / "log", token=token, point=point
    )
    # Killed in the main process, or a worker killed and the main process stopped by the pool.
    assert status == -signal.SIGKILL or (status != 0 and "terminated abruptly" in output), (
        f"not killed at {point} (exit {status}):\n{output[-3000:]}"
    )
    try:
        assert not _wait_ended(lambda: _marked(token)), "processes of the killed run are left"
    finally:
        _kill(_marked(token))
    # The same command again (in this process and with 1 worker process: the files do not
    # depend on the count, test_run.py::test_two_processes_write_the_same_files).
    generate_benchmark(SPEC, root, processes=1, progress=False)
    files = gen.tree(root)
    assert files.keys() == whole[0].keys()
    assert [name for name in files if files[name] != whole[0][name]] == []
    assert not sorted(root.rglob(".*.tmp"))
