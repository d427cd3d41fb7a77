"""Training killed at each commit point (``fileio.crash_point``: SIGKILL, no cleanup) and run
again as the user would (``--resume`` once a checkpoint exists) ends as an uninterrupted run:
the same weights, ``model_best``, ``best_acc``, ``log.txt``, ``preds*.mat`` and snapshot, and no
temporary files left. The crash points are the atomic writes (``write:<file>``) and
``checkpoint:committed`` (train/checkpoint.py), right after ``checkpoint.pth.tar`` is renamed.
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from animalpose.datasets.fileio import CRASH_ENV
from animalpose.datasets.generator.fixtures import make_synthetic_fixture
from animalpose.train import cli

#: The tiny run: 3 epochs, legacy validation PCK 0, 0, 0.69 %: model_best is written after
#: epochs 1 (the first validated) and 3, not after epoch 2; a snapshot after epoch 2.
EPOCHS = 3
#: Files that must agree with the uninterrupted run.
WEIGHT_FILES = ("checkpoint.pth.tar", "model_best.pth.tar", "checkpoint_2.pth.tar")
PREDS_FILES = ("preds.mat", "preds_best.mat")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("animal_data")
    make_synthetic_fixture(root, animal="horse", num_images=40, seed=0, frame_size=(160, 120))
    return root


@pytest.fixture(scope="module")
def argv(data_root, tiny_flags):
    """``argv(out, *extra)``: the tiny model on the horse fixture, batches of 8, Adam at 1e-3
    dropping after epoch 1, a snapshot every 2 epochs, ``EPOCHS`` epochs."""

    def make(out: Path, *extra: str) -> list[str]:
        data = ["--dataset", "synthetic_animal_sp", "--image-path", str(data_root)]
        model = ["--animal", "horse", "--blocks", "1", *tiny_flags, "--train-batch", "8"]
        optim = ["--solver", "adam", "--lr", "1e-3", "--schedule", "1", "--epochs", str(EPOCHS)]
        run = ["--test-batch", "8", "--snapshot", "2", "--tb-images", "0", "-c", str(out)]
        return [*data, *model, *optim, *run, *extra]

    return make


@pytest.fixture(scope="module")
def whole(argv, tmp_path_factory, crash_points_passed):
    """An uninterrupted run in this process: its folder, and the crash points it passed."""
    out = tmp_path_factory.mktemp("uninterrupted")
    with crash_points_passed() as passed:
        assert cli.train_main(argv(out)) == 0
    return out, passed


@pytest.fixture(scope="module")
def uninterrupted(whole):
    return whole[0]


@pytest.fixture
def killed(run_script, argv, monkeypatch):
    """``killed(out, point)``: ``train/train.py`` with ``argv(out)`` in a fresh interpreter,
    killed at crash point ``point`` (``name`` or ``name@n``); asserts it was killed there."""

    def run(out: Path, point: str) -> None:
        with monkeypatch.context() as m:
            m.setenv(CRASH_ENV, point)
            done = run_script("train/train.py", *argv(out), timeout=300)
        assert done.returncode == -signal.SIGKILL, (
            f"not killed at {point} (exit {done.returncode}): {done.stderr[-2000:]}"
        )

    return run


def run_again(argv, out: Path) -> int:
    """What the user does after a kill: the same command, with ``--resume`` once the folder has
    a checkpoint (a run killed before its first checkpoint simply starts over)."""
    checkpoint = out / "checkpoint.pth.tar"
    extra = ["--resume", str(checkpoint)] if checkpoint.is_file() else []
    return cli.train_main(argv(out, *extra))


def assert_same_run(out: Path, reference: Path) -> None:
    for name in WEIGHT_FILES:
        a = torch.load(reference / name, map_location="cpu", weights_only=True)
        b = torch.load(out / name, map_location="cpu", weights_only=True)
        assert (b["epoch"], float(b["best_acc"])) == (a["epoch"], float(a["best_acc"])), name
        for key, value in a["state_dict"].items():
            assert torch.equal(b["state_dict"][key], value), f"{name}: {key}"
    assert (out / "log.txt").read_text() == (reference / "log.txt").read_text()
    for name in PREDS_FILES:
        np.testing.assert_array_equal(
            scipy.io.loadmat(out / name)["preds"], scipy.io.loadmat(reference / name)["preds"]
        )
    left = sorted(p.name for p in out.rglob(".*.tmp"))
    assert left == [], f"temporary files left: {left}"


def test_kill_after_the_last_commit_leaves_nothing_stale(argv, killed, uninterrupted, tmp_path):
    """The issue's case: killed after the last epoch's checkpoint (with its new best accuracy)
    was committed, before ``model_best.pth.tar`` and the epoch's log row were written."""
    out = tmp_path / "run"
    killed(out, "write:model_best.pth.tar@2")
    assert run_again(argv, out) == 0
    assert_same_run(out, uninterrupted)


#: Every commit point of a training run, in the order the run meets them. ``write:log.txt@1``
#: is the header of a new run; ``@n+1`` the row of epoch n.
CRASH_POINTS = (
    "write:config.yaml",
    "write:log.txt@1",
    "write:checkpoint.pth.tar@1",
    "checkpoint:committed@1",
    "write:model_best.pth.tar@1",
    "write:preds.mat@1",
    "write:preds_best.mat@1",
    "write:log.txt@2",
    "write:checkpoint.pth.tar@2",
    "write:checkpoint_2.pth.tar",
    "write:preds.mat@2",
    "write:log.txt@3",
    "write:checkpoint.pth.tar@3",
    "checkpoint:committed@3",
    "write:preds_best.mat@2",
    "write:log.txt@4",
)


def test_the_points_cover_every_commit_of_a_run(whole):
    """Every crash point the run passes in its folder has a case in ``CRASH_POINTS`` (writes
    into the data folder, split and mean files, are not the run's)."""
    out, passed = whole
    names = {p.name for p in out.rglob("*")}
    own = {n for n in passed if not n.startswith("write:") or n.removeprefix("write:") in names}
    missing = sorted(own - {p.split("@")[0] for p in CRASH_POINTS})
    assert not missing, f"commit points without a crash case: {missing}; add them to CRASH_POINTS"
    assert passed.count("checkpoint:committed") == EPOCHS


@pytest.mark.slow
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_at_every_commit_point_then_rerun_equals_the_uninterrupted_run(
    argv, killed, uninterrupted, tmp_path, point
):
    out = tmp_path / "run"
    killed(out, point)
    assert run_again(argv, out) == 0
    assert_same_run(out, uninterrupted)
