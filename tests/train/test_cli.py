"""The checks of train/cli.py before and while a run writes into -c/--checkpoint: a folder that
holds a run, a folder that cannot be written (under a file, read-only, full), --device cuda
without CUDA; each a one-line error, found before any work is done where it can be."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import torch

from animalpose.train import cli
from animalpose.train.trainer import LOG_COLUMNS

HEADER = "\t".join(LOG_COLUMNS) + "\n"
ROW = "\t".join(["1.000000"] * len(LOG_COLUMNS)) + "\n"


class StubTrainer:
    """Stands in for ``Trainer``: records that a run started, trains nothing."""

    started: list[str] = []

    def __init__(self, cfg) -> None:
        self.cfg = cfg

    def fit(self) -> dict:
        StubTrainer.started.append(self.cfg.run.checkpoint)
        return {}


@pytest.fixture
def stub_trainer(monkeypatch):
    StubTrainer.started = []
    monkeypatch.setattr(cli, "Trainer", StubTrainer)
    return StubTrainer


@pytest.fixture
def no_evaluation(monkeypatch):
    """Evaluation entry points must fail before building (loading, evaluating) anything."""

    def build(cfg):
        pytest.fail("the evaluator was built before the output folder was checked")

    monkeypatch.setattr(cli, "build_evaluator", build)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


def _fail_fsync_of(monkeypatch, marker: str) -> None:
    """A full disk for files whose name contains ``marker`` (all files with ""): ``os.fsync``
    on them raises ENOSPC, as a full file system reports delayed allocation failures."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to name an open file")
    real = os.fsync

    def fsync(fd: int) -> None:
        if marker in os.path.basename(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


# -- a used folder (issue 10 item 7) --------------------------------------------------------------
@pytest.mark.parametrize(
    "files",
    [
        {"checkpoint.pth.tar": "weights", "log.txt": HEADER + ROW},
        {"model_best.pth.tar": "weights"},
        {"log.txt": HEADER + ROW + ROW},
    ],
    ids=["checkpoint", "model_best", "log_rows"],
)
def test_training_refuses_a_folder_that_holds_a_run(
    tmp_path, tiny_flags, stub_trainer, capsys, files
):
    out = tmp_path / "run"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    assert cli.train_main(["-c", str(out), *tiny_flags]) == 2
    err = _one_line_error(capsys)
    assert f"{out} already holds a training run" in err
    assert "another -c/--checkpoint folder" in err
    if "checkpoint.pth.tar" in files:
        assert f"--resume {out / 'checkpoint.pth.tar'}" in err
    elif "model_best.pth.tar" in files:
        assert f"--resume {out / 'model_best.pth.tar'}" in err
    else:
        assert "2 epoch(s)" in err and "no checkpoint to resume" in err
    assert stub_trainer.started == []
    assert {p.name: p.read_text() for p in out.iterdir()} == files, "nothing was touched"


@pytest.mark.parametrize(
    "files",
    [{}, {"notes.txt": "mine"}, {"log.txt": HEADER}],
    ids=["empty", "unrelated_files", "log_header_only"],
)
def test_training_starts_in_a_fresh_folder(tmp_path, tiny_flags, stub_trainer, files):
    out = tmp_path / "run"
    out.mkdir()
    for name, text in files.items():
        (out / name).write_text(text)
    assert cli.train_main(["-c", str(out), *tiny_flags]) == 0
    assert cli.train_main(["-c", str(tmp_path / "new" / "run"), *tiny_flags]) == 0
    assert stub_trainer.started == [str(out), str(tmp_path / "new" / "run")]
    assert sorted(p.name for p in out.iterdir()) == sorted(files), "no probe file is left"


def test_resume_and_evaluation_may_use_a_run_folder(
    tmp_path, tiny_flags, stub_trainer, monkeypatch
):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.pth.tar").write_text("weights")
    (out / "log.txt").write_text(HEADER + ROW)
    resume = ["--resume", str(out / "checkpoint.pth.tar")]
    assert cli.train_main(["-c", str(out), *tiny_flags, *resume]) == 0
    assert stub_trainer.started == [str(out)]
    reported = []

    class Evaluator:
        def report(self, out_dir, **kwargs):
            reported.append(out_dir)

    monkeypatch.setattr(cli, "_adopt_checkpoint_model", lambda cfg, argv: cfg)
    monkeypatch.setattr(cli, "build_evaluator", lambda cfg: Evaluator())
    assert cli.train_main(["-c", str(out), *tiny_flags, "-e", *resume]) == 0
    assert reported == [out]


# -- an output folder that cannot be written (items 11 and 12) ----------------------------------
def test_output_under_a_regular_file_is_a_clear_error(
    tmp_path, tiny_flags, stub_trainer, no_evaluation, capsys
):
    (tmp_path / "somefile").write_text("not a folder")
    out = tmp_path / "somefile" / "run"
    resume = ["--resume", str(tmp_path / "ckpt.pth.tar")]
    for main, extra in (
        (cli.train_main, []),
        (cli.train_main, ["-e", *resume]),
        (cli.test_main, resume),
    ):
        assert main(["-c", str(out), *tiny_flags, *extra]) == 2
        err = _one_line_error(capsys)
        assert f"-c/--checkpoint {out}: {tmp_path / 'somefile'} is a file, not a folder" in err
    assert stub_trainer.started == []


def test_a_full_disk_is_found_before_the_run(
    tmp_path, tiny_flags, stub_trainer, no_evaluation, monkeypatch, capsys
):
    _fail_fsync_of(monkeypatch, "")
    out = tmp_path / "run"
    for main, extra in ((cli.train_main, []), (cli.test_main, ["--resume", "ckpt.pth.tar"])):
        assert main(["-c", str(out), *tiny_flags, *extra]) == 2
        err = _one_line_error(capsys)
        assert f"-c/--checkpoint {out}: cannot write this folder" in err
        assert "No space left on device (ENOSPC)" in err
    assert stub_trainer.started == [] and list(out.iterdir()) == [], "the probe is removed"


@pytest.mark.skipif(not Path("/sys/kernel").is_dir(), reason="needs a Linux /sys")
def test_a_system_folder_is_refused_before_the_run(tiny_flags, stub_trainer, no_evaluation, capsys):
    # /sys refuses new folders even to root (EPERM, or EROFS where it is mounted read-only).
    out = "/sys/animalpose_test_run"
    for main, extra in ((cli.train_main, []), (cli.test_main, ["--resume", "ckpt.pth.tar"])):
        assert main(["-c", out, *tiny_flags, *extra]) == 2
        assert f"-c/--checkpoint {out}: cannot write this folder" in _one_line_error(capsys)
    assert stub_trainer.started == []


def test_a_disk_filling_up_during_training_is_a_one_line_error(
    bench, tiny_dog_flags, tmp_path, monkeypatch, capsys
):
    _fail_fsync_of(monkeypatch, "checkpoint.pth.tar")
    out = tmp_path / "run"
    argv = ["--image-path", str(bench.root), *tiny_dog_flags, "--epochs", "1"]
    small = ["--set", "run.tb_images=0", "--set", "data.train_limit=4", "--set", "data.val_limit=4"]
    assert cli.train_main([*argv, "-c", str(out), *small]) == 2
    err = _one_line_error(capsys)
    assert f"writing into {out}: No space left on device (ENOSPC)" in err
    assert not list(out.glob(".*.tmp")), "no temporary checkpoint is left"


# -- devices (item 12) ---------------------------------------------------------------------------
def test_cuda_without_cuda_is_a_clear_error(tmp_path, tiny_flags, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    data = ["--image-path", str(tmp_path / "no_data_needed")]
    for main, extra in ((cli.train_main, []), (cli.test_main, ["--resume", "ckpt.pth.tar"])):
        argv = ["-c", str(tmp_path / "run"), *tiny_flags, *data, *extra, "--device", "cuda"]
        assert main(argv) == 2
        err = _one_line_error(capsys)
        assert "run.device: 'cuda' asks for a GPU, but this machine has no CUDA" in err
        assert "--device cpu" in err
