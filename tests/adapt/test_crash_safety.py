"""Adaptation killed at its commit points (``ANIMALPOSE_CRASH_AT``: SIGKILL in a subprocess) and
run again with the same command: the result equals an uninterrupted run's (weights,
``model_best``, ``log.txt``, pseudo-labels) and no temporary file is left; a round file left by
another run is never trained on (issue 10, item 5)."""

from __future__ import annotations

import signal

import numpy as np
import pytest
import torch

from animalpose.adapt.cli import ccssl_main
from animalpose.adapt.pseudo_label_store import PseudoLabels
from animalpose.adapt.run_settings import PSEUDO_FOLDER, round_path
from animalpose.datasets.fileio import CRASH_ENV
from animalpose.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint

#: Two epochs of a round each (the flags of ``adapt_argv`` before them): every commit of an
#: epoch happens twice.
RUN = ("--num-epochs", "2", "--round-every", "1", "--seed", "4")
ROUNDS = (0, 1)
#: Every commit point of ``RUN`` in the order it is reached (``name@n``: its n-th time);
#: ``test_the_points_cover_every_commit_of_a_run`` checks that none is missing.
POINTS = (
    "write:config.yaml",
    "write:log.txt@1",  # its header
    "write:round_00.npz",
    f"write:{CHECKPOINT_NAME}@1",
    "checkpoint:committed@1",
    f"write:{BEST_NAME}@1",
    "write:preds.mat@1",
    "write:preds_best.mat@1",
    "write:log.txt@2",
    "write:synthetic_animal_sp.pth.tar@1",  # the reference's copy of model_best
    "write:round_01.npz",
    f"write:{CHECKPOINT_NAME}@2",
    "checkpoint:committed@2",
    "write:preds.mat@2",
    "write:log.txt@3",
)
#: Where the reference's next command looks for the adapted model (the tiny source data set).
SOURCE_COPY = "synthetic_animal_sp.pth.tar"
#: The case that runs without ``-m slow``: killed at the second round's file (its temporary
#: file left in pseudo_labels/), resumed after the first epoch's checkpoint.
FAST_POINT = "write:round_01.npz"
#: Seconds a killed run may take (imports included).
TIMEOUT = 300


def _argv(tiny, flags, out, *extra: str) -> list[str]:
    """``adapt_argv`` (tests/adapt/conftest.py) for module-scoped fixtures."""
    return [
        *("--image-path", str(tiny.root), "--resume", str(tiny.source), "-c", str(out)),
        *flags,
        *("--pseudo-workers", "0", *extra, "--set", "adapt.pseudo_batch=4"),
    ]


@pytest.fixture(scope="module")
def whole(tiny, tiny_dog_flags, tmp_path_factory, crash_points_passed):
    """An uninterrupted run of ``RUN`` (in this process, one torch thread): its folder, and the
    names of the commit points it passed, in order."""
    out = tmp_path_factory.mktemp("adapt_whole") / "run"
    with crash_points_passed() as passed:
        assert ccssl_main(_argv(tiny, tiny_dog_flags, out, *RUN)) == 0
    return out, passed


@pytest.fixture
def killed(run_script, adapt_argv, monkeypatch):
    """``killed(out, point, *extra)``: ``adapt/ccssl.py`` with ``RUN`` (then ``extra``) into
    ``out`` in a subprocess killed at crash point ``point``; asserts it was killed there."""

    def run(out, point: str, *extra: str) -> None:
        with monkeypatch.context() as m:
            m.setenv(CRASH_ENV, point)
            m.setenv("OMP_NUM_THREADS", "1")  # as the in-process runs (tests/adapt/conftest.py)
            m.setenv("MKL_NUM_THREADS", "1")
            done = run_script("adapt/ccssl.py", *adapt_argv(out, *RUN, *extra), timeout=TIMEOUT)
        assert done.returncode == -signal.SIGKILL, (
            f"not killed at {point} (exit {done.returncode}):\n{done.stderr[-3000:]}"
        )

    return run


def _labels_equal(a: PseudoLabels, b: PseudoLabels) -> None:
    """The same labels (the timing diagnostics differ between runs)."""
    for name in ("indices", "keypoints", "confidence", "selected", "substituted", "hits"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("round", "epoch", "keep_share", "threshold", "weights"):
        assert getattr(a, name, None) == getattr(b, name, None), name


def _same_weights(a, b) -> None:
    ca, cb = load_checkpoint(a), load_checkpoint(b)
    assert (ca["epoch"], float(ca["best_acc"])) == (cb["epoch"], float(cb["best_acc"])), a.name
    wa, wb = ca["state_dict"], cb["state_dict"]
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=0, msg=f"{a.name} {key}")


def _same_run(out, whole_out, *, temp_folder=None) -> None:
    """``out`` holds what the uninterrupted run wrote, and no temporary file (in
    ``out / temp_folder`` when given)."""
    for name in (CHECKPOINT_NAME, BEST_NAME):
        _same_weights(out / name, whole_out / name)
    assert (out / SOURCE_COPY).read_bytes() == (out / BEST_NAME).read_bytes()
    assert (out / "log.txt").read_text() == (whole_out / "log.txt").read_text()
    for r in ROUNDS:
        _labels_equal(
            PseudoLabels.load(round_path(out, r)), PseudoLabels.load(round_path(whole_out, r))
        )
    assert not sorted((out / (temp_folder or "")).rglob(".*.tmp"))


def test_the_points_cover_every_commit_of_a_run(whole):
    """Every crash point an uninterrupted run passes has a case in ``POINTS`` (writes into the
    data folder, e.g. split files the loaders create, are not the run's)."""
    out, passed = whole
    names = {p.name for p in out.rglob("*")}
    own = {n for n in passed if not n.startswith("write:") or n.removeprefix("write:") in names}
    missing = sorted(own - {p.split("@")[0] for p in POINTS})
    assert not missing, (
        f"commit points without a crash case: {missing}; add them to POINTS (a run passes {passed})"
    )


@pytest.mark.parametrize(
    "point",
    [p if p == FAST_POINT else pytest.param(p, marks=pytest.mark.slow) for p in POINTS],
)
def test_a_run_killed_at_a_commit_point_resumes_to_the_same_result(
    point, whole, killed, adapt_argv, tmp_path
):
    out = tmp_path / "run"
    killed(out, point)
    assert ccssl_main(adapt_argv(out, *RUN)) == 0  # the same command again
    _same_run(out, whole[0])


def test_a_round_left_by_another_killed_run_is_made_again(whole, killed, adapt_argv, tmp_path):
    """Item 5: a run killed after writing ``round_00.npz``, before its first checkpoint, leaves
    the file; another run in that folder (another seed) makes its own round instead."""
    out = tmp_path / "run"
    killed(out, f"write:{CHECKPOINT_NAME}", "--seed", "9")
    stale = PseudoLabels.load(round_path(out, 0))
    assert not (out / CHECKPOINT_NAME).exists()
    assert ccssl_main(adapt_argv(out, *RUN)) == 0  # seed 4
    assert not np.array_equal(PseudoLabels.load(round_path(out, 0)).keypoints, stale.keypoints)
    _same_run(out, whole[0], temp_folder=PSEUDO_FOLDER)
