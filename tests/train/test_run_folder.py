"""The run folder's files: log rows, the epoch record, the repair a continued run makes after a
kill, temporary files of killed writes, and which settings a continued run may change. The
end-to-end kills are in test_crash_safety.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from animalpose.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, build_checkpoint
from animalpose.train.checkpoint import save_checkpoint as commit
from animalpose.train.config import Config, ConfigError
from animalpose.train.config_io import apply_overrides, config_to_dict
from animalpose.train.models.hourglass import HourglassNet
from animalpose.train.run_folder import (
    LOG_COLUMNS,
    RECORD_KEY,
    ReferenceLog,
    apply_optim_settings,
    changed_settings,
    epoch_record,
    finish_epoch,
    remove_interrupted_writes,
    repair_run_folder,
    resume_changes,
)

HEADER = "\t".join(LOG_COLUMNS)


def _row(epoch: int) -> list[float]:
    return [epoch, 1e-3, 0.5, 0.25, 0.125, epoch / 10, 50.0, 0.75]


def test_log_rows_replace_their_epoch_and_drop_later_ones(tmp_path):
    log = ReferenceLog(tmp_path / "log.txt", resume=False)
    assert (tmp_path / "log.txt").read_text() == HEADER + "\n"
    for epoch in (1, 2, 3):
        assert log.set_row(_row(epoch))
    assert not log.set_row(_row(3))  # already there: the file is not rewritten
    assert log.set_row(_row(2))  # a run continued from epoch 1's checkpoint
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[0] == HEADER and [float(r.split("\t")[0]) for r in lines[1:]] == [1.0, 2.0]
    assert lines[2] == "\t".join(f"{v:.6f}" for v in _row(2))
    ReferenceLog(tmp_path / "log.txt", resume=True)  # a continued run keeps the rows
    assert len((tmp_path / "log.txt").read_text().splitlines()) == 3


def test_log_has_the_reference_train_py_columns_and_widens_an_older_log(tmp_path):
    assert LOG_COLUMNS == (
        *("Epoch", "LR", "Train Loss", "Val Loss"),
        *("Train Acc", "Val Acc", "Val Auc", "Val Mean Error"),
    )
    # A run started before Val Auc / Val Mean Error were logged, continued now.
    old_header = "\t".join(LOG_COLUMNS[:6])
    (tmp_path / "log.txt").write_text(old_header + "\n" + "\t".join(["1.000000"] * 6) + "\n")
    assert ReferenceLog(tmp_path / "log.txt", resume=True).set_row(_row(2)[:6])
    lines = [r.split("\t") for r in (tmp_path / "log.txt").read_text().splitlines()]
    assert lines[0] == list(LOG_COLUMNS) and all(len(r) == 8 for r in lines)
    assert lines[1][6:] == lines[2][6:] == ["nan", "nan"]


def _state(epoch: int, *, is_best: bool) -> dict:
    torch.manual_seed(epoch)
    model = HourglassNet(num_stacks=1, num_blocks=1, num_keypoints=3, channels=16)
    state = build_checkpoint(
        model=model,
        optimizer=torch.optim.Adam(model.parameters()),
        epoch=epoch,
        best_acc=epoch / 10,
        keypoint_spec="animal18",
    )
    preds = np.full((4, 3, 2), epoch, dtype=np.float32)
    state[RECORD_KEY] = epoch_record(_row(epoch), preds, is_best)
    return state


def _complete_epoch(directory: Path, epoch: int, *, is_best: bool) -> None:
    state = _state(epoch, is_best=is_best)
    commit(state, directory, is_best=is_best, snapshot=2)
    finish_epoch(directory, state[RECORD_KEY])


def test_a_continued_run_rewrites_what_a_kill_left_stale(tmp_path):
    """Killed right after epoch 2's checkpoint was committed (a new best, a snapshot epoch):
    model_best, the snapshot, both preds and the log row are rewritten from it."""
    ReferenceLog(tmp_path / "log.txt", resume=False)
    _complete_epoch(tmp_path, 1, is_best=True)
    commit(_state(2, is_best=True), tmp_path, is_best=False)  # the kill: only the main file
    assert sorted(repair_run_folder(tmp_path, snapshot=2)) == sorted(
        ["checkpoint_2.pth.tar", BEST_NAME, "preds.mat", "preds_best.mat", "log.txt"]
    )
    main = (tmp_path / CHECKPOINT_NAME).read_bytes()
    assert (tmp_path / BEST_NAME).read_bytes() == main
    assert (tmp_path / "checkpoint_2.pth.tar").read_bytes() == main
    for name in ("preds.mat", "preds_best.mat"):
        assert (scipy.io.loadmat(tmp_path / name)["preds"] == 2).all()
    assert (tmp_path / "log.txt").read_text().splitlines()[-1].startswith("2.000000\t")
    assert repair_run_folder(tmp_path, snapshot=2) == []  # nothing left to do


def test_a_folder_in_order_is_left_alone(tmp_path):
    ReferenceLog(tmp_path / "log.txt", resume=False)
    _complete_epoch(tmp_path, 1, is_best=True)
    _complete_epoch(tmp_path, 2, is_best=False)
    best = (tmp_path / BEST_NAME).read_bytes()
    assert repair_run_folder(tmp_path, snapshot=0) == []
    assert (tmp_path / BEST_NAME).read_bytes() == best  # epoch 1 stays the best


def test_checkpoints_without_a_record_are_not_repaired(tmp_path):
    state = _state(1, is_best=True)
    del state[RECORD_KEY]
    commit(state, tmp_path, is_best=False)
    assert repair_run_folder(tmp_path, snapshot=1) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT_NAME]


def test_temporary_files_of_killed_writes_are_removed(tmp_path):
    run_files = [
        ".checkpoint.pth.tar.ab12cd.tmp",
        ".checkpoint_4.pth.tar.x_y.tmp",
        ".model_best.pth.tar.q.tmp",
        ".log.txt.7.tmp",
        ".config.yaml.z.tmp",
        ".preds_best.mat.k.tmp",
    ]
    others = [".notes.txt.a.tmp", "mine.tmp", "checkpoint.pth.tar"]
    for name in run_files + others:
        (tmp_path / name).write_text("x")
    removed = remove_interrupted_writes(tmp_path)
    assert sorted(p.name for p in removed) == sorted(run_files)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(others)


def _cfg(*overrides: str) -> Config:
    return apply_overrides(Config(), list(overrides))


def test_settings_missing_from_an_older_checkpoint_count_as_defaults():
    saved = config_to_dict(_cfg("optim.lr=0.001"))
    del saved["data"]["val_limit"]
    defaults = config_to_dict(Config())
    assert changed_settings(saved, config_to_dict(_cfg("optim.lr=0.001")), defaults=defaults) == []
    current = config_to_dict(_cfg("optim.lr=0.001", "data.val_limit=5"))
    assert changed_settings(saved, current, defaults=defaults) == [("data.val_limit", 0, 5)]


def test_resume_applies_optimisation_settings_and_refuses_the_rest():
    ckpt = {"config": config_to_dict(_cfg("optim.lr=0.001", "data.train_batch=8"))}
    same = _cfg("optim.lr=0.001", "data.train_batch=8", "optim.epochs=300", "run.device=cpu")
    assert resume_changes(same, ckpt) == []
    new_lr = _cfg("optim.lr=0.0001", "data.train_batch=8")
    assert resume_changes(new_lr, ckpt) == [("optim.lr", 0.001, 0.0001)]
    with pytest.raises(ConfigError, match=r"data.train_batch: 8 there, 4 now.*--pretrained"):
        resume_changes(_cfg("optim.lr=0.0001", "data.train_batch=4"), ckpt)
    assert resume_changes(new_lr, {"config": {}}) == []  # the reference's: nothing to compare


def test_applied_settings_give_the_lr_of_the_resumed_epoch():
    cfg = _cfg("optim.lr=0.01", "optim.schedule=[2, 4]", "optim.gamma=0.5")
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[1], gamma=0.1)
    for _ in range(3):
        optimizer.step()  # no gradients: only the step count (PyTorch's order check)
        scheduler.step()
    apply_optim_settings(cfg, optimizer, scheduler, start_epoch=3)
    lrs = []
    for _ in range(3):  # epochs 3, 4, 5 (0-based)
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs == pytest.approx([0.005, 0.0025, 0.0025])
