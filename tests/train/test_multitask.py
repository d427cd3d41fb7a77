"""Multitask training (train/multitask.py) through its entry points: the loss and its weight
schedule, the reference's multitask log, mIoU, checkpoints, resume, and test.py on the result."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from animalpose.datasets.fileio import CRASH_ENV
from animalpose.datasets.generator.fixtures import make_synthetic_fixture, make_tigdog_fixture
from animalpose.datasets.parts import IGNORE
from animalpose.train import cli
from animalpose.train.checkpoint import REFERENCE_KEYS, load_model_weights, unwrap_model
from animalpose.train.config import ConfigError
from animalpose.train.config_io import config_from_dict
from animalpose.train.flag_parser import parse_config
from animalpose.train.flags import TRAIN_FLAGS
from animalpose.train.loss import KeypointMSELoss
from animalpose.train.models import build_model
from animalpose.train.multitask import (
    SEGMENTATION_RESULTS,
    MultitaskConfig,
    MultitaskTrainer,
)
from animalpose.train.run_folder import (
    LOG_COLUMNS,
    MULTITASK_LOG_COLUMNS,
    RECORD_KEY,
    ReferenceLog,
    epoch_record,
    finish_epoch,
)
from animalpose.train.trainer import Trainer


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("animal_data")
    folder = make_synthetic_fixture(
        root, animal="horse", num_images=16, seed=3, frame_size=(160, 120)
    )
    assert len(list(folder.glob("*_partseg.png"))) == 16  # the fixture's part masks
    make_tigdog_fixture(
        root, animal="horse", num_shots=4, frames_per_shot=4, seed=0, frame_size=(160, 120)
    )
    return root


@pytest.fixture(scope="module")
def mt_argv(tiny_flags):
    """``mt_argv(root, out, *extra)``: train_multitask.py's flags for the tiny model on the
    horse fixture with masks, Adam, logging every step."""

    def argv(root: Path, out: Path, *extra: str) -> list[str]:
        data = ["--image-path", str(root), "--animal", "horse"]
        optim = ["--solver", "adam", "--lr", "1e-3"]
        run = ["-c", str(out), "--set", "run.log_every=1", "--set", "run.tb_images=0"]
        return [*data, *tiny_flags, *optim, *run, *extra]

    return argv


@pytest.fixture(scope="module")
def mt_run(data_root, mt_argv, tmp_path_factory):
    """One epoch of train_multitask.py, then resumed for a second; the folder and outputs."""
    out = tmp_path_factory.mktemp("mt_run")
    outputs = []
    resume = ("--resume", str(out / "checkpoint.pth.tar"))
    for extra in (("--epochs", "1"), ("--epochs", "2", *resume)):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert cli.train_multitask_main(mt_argv(data_root, out, *extra)) == 0
        outputs.append(buffer.getvalue())
    return out, outputs


def _ckpt(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _cfg(root: Path, out: Path, *extra: str, tiny_flags) -> MultitaskConfig:
    argv = ["--image-path", str(root), *tiny_flags, "-c", str(out), *extra]
    cfg, _ = parse_config(argv, flags=TRAIN_FLAGS, config_type=MultitaskConfig)
    return cfg


# -- the run ----------------------------------------------------------------------------------
def test_run_writes_the_reference_multitask_log_and_miou(mt_run):
    out, outputs = mt_run
    rows = [r.split("\t") for r in (out / "log.txt").read_text().splitlines()]
    assert rows[0] == list(MULTITASK_LOG_COLUMNS)
    assert rows[0] == ["Epoch", "LR", "Train Loss", "Val Loss", "Train Acc", "Val Acc", "Val IOU"]
    assert [r[0] for r in rows[1:]] == ["1.000000", "2.000000"] and all(len(r) == 7 for r in rows)
    for epoch, row in enumerate(rows[1:], start=1):
        record = _ckpt(out / "checkpoint.pth.tar")[RECORD_KEY] if epoch == 2 else None
        values = [float(v) for v in row]
        assert all(math.isfinite(v) for v in values)
        assert 0 <= values[6] <= 100  # the reference's Val IOU: percent
        if record is not None:
            seg = record["segmentation"]
            assert values[6] == pytest.approx(100 * seg["reference_miou"], abs=1e-6)
            assert 0 <= seg["miou"] <= 1 and 0 <= seg["pixel_accuracy"] <= 1
            assert set(seg["class_iou"]) >= {"background", "head", "tail"}
            assert record["log_columns"] == list(MULTITASK_LOG_COLUMNS)
    # The epoch line gains mIoU; Train Loss is the keypoint loss (finite, positive).
    assert "mIoU" in outputs[0] and "mIoU" in outputs[1]
    assert float(rows[1][2]) > 0


def test_checkpoint_is_hg_multitask_and_reloads_strictly(mt_run, tiny_flags):
    out, _ = mt_run
    ckpt = _ckpt(out / "model_best.pth.tar")
    assert set(REFERENCE_KEYS) <= set(ckpt) and ckpt["arch"] == "hg_multitask"
    assert ckpt["config"]["model"]["arch"] == "hg_multitask"
    assert ckpt["config"]["optim"]["seg_weight"] == 0.01
    assert any(k.startswith("module.score_seg") for k in ckpt["state_dict"])
    model = build_model("hg_multitask", num_stacks=1, num_blocks=1, num_keypoints=18, channels=16)
    load_model_weights(model, ckpt, strict=True)  # raises on any missing or unexpected key


def test_resume_continues_and_keeps_the_best_miou(mt_run):
    out, outputs = mt_run
    first = _ckpt(out / "checkpoint.pth.tar")
    assert first["epoch"] == 2
    assert "epoch 2" in outputs[1] and "epoch 1:" not in outputs[1]
    seg = first[RECORD_KEY]["segmentation"]
    assert len((out / "log.txt").read_text().splitlines()) == 3
    # best_miou is the larger of both epochs' mIoU (TensorBoard holds both)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    miou = [e.value for e in events.Scalars("epoch/val_miou")]
    assert len(miou) == 2 and seg["miou"] == pytest.approx(miou[1], rel=1e-6)
    assert seg["best_miou"] == pytest.approx(max(miou), rel=1e-6)


def test_a_resumed_run_keeps_the_best_miou_of_its_checkpoint(mt_run, tmp_path, tiny_flags):
    out, _ = mt_run
    ckpt = _ckpt(out / "checkpoint.pth.tar")
    ckpt[RECORD_KEY]["segmentation"]["best_miou"] = 0.987  # higher than any epoch here
    resume = tmp_path / "checkpoint.pth.tar"
    torch.save(ckpt, resume)
    cfg = MultitaskConfig(**vars(config_from_dict(ckpt["config"], source="checkpoint")))
    cfg.run.resume, cfg.run.checkpoint, cfg.optim.epochs = str(resume), str(tmp_path), 3
    trainer = MultitaskTrainer(cfg)
    assert trainer.best_miou == pytest.approx(0.987) and trainer.start_epoch == 2
    trainer.validate(2)
    assert trainer.best_miou == pytest.approx(0.987)
    assert 0 <= trainer.val_segmentation.miou < 0.987


def test_tensorboard_total_loss_is_keypoints_plus_weighted_segmentation(mt_run):
    out, _ = mt_run
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/seg_loss", "epoch/val_miou", "val_iou/head", "epoch/train_seg_loss"} <= set(
        scalars
    )

    def series(tag):
        return {e.step: e.value for e in events.Scalars(tag)}

    kpt, seg, total = series("train/loss"), series("train/seg_loss"), series("train/total_loss")
    weight = series("train/seg_weight")
    steps = sorted(total)
    assert len(steps) >= 2
    per_epoch = len(steps) // 2
    for step in steps:
        epoch = (step - 1) // per_epoch  # 0-based
        assert weight[step] == pytest.approx(0.01 / (epoch + 1))  # the reference's schedule
        assert total[step] == pytest.approx(kpt[step] + weight[step] * seg[step], rel=1e-5)
    miou = series("epoch/val_miou")
    assert sorted(miou) == [1, 2] and all(0 <= v <= 1 for v in miou.values())


def test_a_killed_run_repairs_its_multitask_log(tmp_path):
    """The log's columns travel in the epoch record, so the repair of a killed run rewrites
    the multitask header and row, not the keypoint ones."""
    row = [3.0, 1e-3, 0.5, 0.6, 0.2, 0.3, 42.0]
    record = epoch_record(row, np.zeros((2, 18, 2)), False, columns=MULTITASK_LOG_COLUMNS)
    ReferenceLog(tmp_path / "log.txt", resume=False, columns=MULTITASK_LOG_COLUMNS)
    assert finish_epoch(tmp_path, record, only_stale=True) == ["preds.mat", "log.txt"]
    lines = (tmp_path / "log.txt").read_text().splitlines()
    assert lines[0].split("\t") == list(MULTITASK_LOG_COLUMNS)
    assert lines[1].split("\t") == [f"{v:.6f}" for v in row]
    # A record of before the columns were stored is a keypoint run's.
    old = epoch_record(row[:6], np.zeros((2, 18, 2)), False)
    del old["log_columns"]
    (tmp_path / "log.txt").unlink()
    finish_epoch(tmp_path, old)
    assert (tmp_path / "log.txt").read_text().splitlines()[0].split("\t") == list(LOG_COLUMNS)
    with pytest.raises(ValueError, match="8 values for 7 columns"):
        epoch_record([*row, 1.0], np.zeros((2, 18, 2)), False, columns=MULTITASK_LOG_COLUMNS)


@pytest.mark.slow  # a fresh interpreter
def test_a_run_killed_before_its_log_row_repairs_it_on_resume(
    data_root, mt_argv, tmp_path, run_script, monkeypatch
):
    """train_multitask.py killed right after epoch 1's checkpoint (before log.txt's row), then
    resumed: the row is rewritten from the checkpoint, under the multitask columns."""
    out = tmp_path / "run"
    argv = mt_argv(data_root, out, "--epochs", "1")
    with monkeypatch.context() as m:
        m.setenv(CRASH_ENV, "checkpoint:committed")
        done = run_script("train/train_multitask.py", *argv, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert (out / "log.txt").read_text().splitlines() == ["\t".join(MULTITASK_LOG_COLUMNS)]
    resume = ["--resume", str(out / "checkpoint.pth.tar")]
    assert cli.train_multitask_main([*argv, *resume]) == 0
    record = _ckpt(out / "checkpoint.pth.tar")[RECORD_KEY]
    rows = [r.split("\t") for r in (out / "log.txt").read_text().splitlines()]
    assert rows[0] == list(MULTITASK_LOG_COLUMNS)
    assert rows[1:] == [[f"{v:.6f}" for v in record["log_row"]]] and len(rows[1]) == 7


# -- the step -----------------------------------------------------------------------------------
def _reference_step_losses(model, x, heatmaps, weights, labels, seg_weight):
    """loss_kpt + seg_weight * loss_seg of ``model`` recomputed here: MSE loss, and per-stack
    ``F.cross_entropy(ignore_index=255)`` summed over stacks."""
    outputs, seg_outputs = model(x, with_segmentation=True)
    kpt = KeypointMSELoss()(outputs, heatmaps, weights)
    seg = sum(F.cross_entropy(s.float(), labels.long(), ignore_index=IGNORE) for s in seg_outputs)
    return kpt, seg, kpt + seg_weight * seg


def test_step_minimises_keypoints_plus_weighted_segmentation(data_root, tmp_path, tiny_flags):
    cfg = _cfg(data_root, tmp_path, "--seg-weight", "0.3", tiny_flags=tiny_flags)
    trainer = MultitaskTrainer(cfg)
    trainer.train_epoch(2)  # three epochs in: weight 0.3 / 3
    assert trainer.seg_weight == pytest.approx(0.1)
    assert math.isfinite(trainer.train_seg_loss) and trainer.train_seg_loss > 0
    batch = next(iter(trainer.train_loader))
    x, heatmaps, weights = trainer.prepare(batch, trainer.codec)
    twin = copy.deepcopy(unwrap_model(trainer.model))
    with torch.no_grad():
        kpt, seg, total = _reference_step_losses(
            twin, x, heatmaps, weights, batch["segmentation"], 0.1
        )
    loss, outputs, _ = trainer.step(batch, trainer.codec)
    assert loss.item() == pytest.approx(kpt.item(), rel=1e-5)  # Train Loss: keypoints only
    assert trainer.step_losses["segmentation"].item() == pytest.approx(seg.item(), rel=1e-5)
    assert trainer.step_losses["total"].item() == pytest.approx(total.item(), rel=1e-5)


@pytest.mark.parametrize("seg_weight", [0.0, 0.5])
def test_the_segmentation_head_learns_only_with_a_weight(
    data_root, tmp_path, tiny_flags, seg_weight
):
    cfg = _cfg(data_root, tmp_path, "--seg-weight", str(seg_weight), tiny_flags=tiny_flags)
    trainer = MultitaskTrainer(cfg)
    head = unwrap_model(trainer.model).score_seg
    before = [p.detach().clone() for p in head.parameters()]
    trainer.step(next(iter(trainer.train_loader)), trainer.codec)
    moved = any(not torch.equal(a, b) for a, b in zip(before, head.parameters()))
    assert moved == (seg_weight > 0)


def test_overfitting_one_batch_lowers_both_losses(data_root, tmp_path, tiny_flags):
    optim = ("--solver", "adam", "--lr", "3e-3", "--seg-weight", "1")
    trainer = MultitaskTrainer(_cfg(data_root, tmp_path, *optim, tiny_flags=tiny_flags))
    batch = next(iter(trainer.train_loader))
    losses = []
    for _ in range(20):
        trainer.step(batch, trainer.codec)
        losses.append({k: v.item() for k, v in trainer.step_losses.items()})
    assert all(math.isfinite(v) for step in losses for v in step.values())
    for key in ("keypoints", "segmentation", "total"):
        assert losses[-1][key] < 0.75 * losses[0][key], key


# -- the rule and the entry points --------------------------------------------------------------
def test_one_rule_picks_the_trainer(capsys):
    def cfg(arch, dataset):
        return parse_config(["-a", arch, "--dataset", dataset], flags=TRAIN_FLAGS)[0]

    mt = "synthetic_animal_sp_multitask"
    assert cli.select_trainer(cfg("hg_multitask", mt), multitask=False) is MultitaskTrainer
    assert cli.select_trainer(cfg("hg_multitask", mt), multitask=True) is MultitaskTrainer
    assert cli.select_trainer(cfg("hg", mt), multitask=False) is Trainer
    assert capsys.readouterr().out == ""
    assert (
        cli.select_trainer(cfg("hg_multitask", "synthetic_animal_sp"), multitask=False) is Trainer
    )
    assert "training the keypoints of hg_multitask only" in capsys.readouterr().out
    with pytest.raises(ConfigError, match=r"-a/--arch hg has no part-segmentation head;"):
        cli.select_trainer(cfg("hg", mt), multitask=True)
    with pytest.raises(ConfigError, match=r"--dataset real_animal has no part masks"):
        cli.select_trainer(cfg("hg_multitask", "real_animal"), multitask=True)


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["-a", "hg"], "-a/--arch hg has no part-segmentation head"),
        (["--dataset", "synthetic_animal_sp"], "--dataset synthetic_animal_sp has no part masks"),
    ],
)
def test_train_multitask_refuses_a_keypoint_only_setup(
    data_root, tmp_path, mt_argv, extra, named, capsys
):
    assert cli.train_multitask_main(mt_argv(data_root, tmp_path / "out", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err
    assert "use -a hg_multitask --dataset synthetic_animal_sp_multitask" in err
    assert not (tmp_path / "out").exists()  # refused before anything was written


def test_multitask_defaults_and_the_seg_weight_flag(capsys):
    cfg, _ = parse_config([], flags=TRAIN_FLAGS, config_type=MultitaskConfig)
    assert (cfg.data.dataset, cfg.model.arch, cfg.model.stacks) == (
        "synthetic_animal_sp_multitask",
        "hg_multitask",
        8,  # the reference's train_multitask.py default
    )
    assert cfg.optim.seg_weight == 0.01
    cfg, _ = parse_config(["--seg-weight", "0.25"], flags=TRAIN_FLAGS)
    assert cfg.optim.seg_weight == 0.25
    with pytest.raises(SystemExit):
        parse_config(["--seg-weight", "-1"], flags=TRAIN_FLAGS)
    assert "optim.seg_weight" in capsys.readouterr().err


# -- evaluation ---------------------------------------------------------------------------------
def test_test_py_reports_miou_on_data_with_masks(mt_run, data_root, tmp_path, capsys):
    out, _ = mt_run
    env = ["--workers", "0", "--device", "cpu", "--no-progress", "--image-path", str(data_root)]
    env += ["--test-batch", "4"]  # the validation's batches: the same sums, to the last bit
    argv = [
        *("--dataset1", "synthetic_animal_sp_multitask", "--arch", "hg_multitask"),
        *("--resume", str(out / "model_best.pth.tar"), "--evaluate", "--flip", *env),
    ]
    masks = tmp_path / "masks"
    assert (
        cli.test_main([*argv, "--dataset2", "synthetic_animal_sp_multitask", "-c", str(masks)]) == 0
    )
    printed = capsys.readouterr().out
    assert "Part segmentation IoU" in printed and "PCK@0.05, legacy metric" in printed
    doc = json.loads((masks / SEGMENTATION_RESULTS).read_text())
    assert 0 <= doc["miou"] <= 1 and doc["extra"]["dataset"] == "synthetic_animal_sp_multitask"
    # The same weights give the validation's figures (same crops, no flip for segmentation).
    record = _ckpt(out / "model_best.pth.tar")[RECORD_KEY]["segmentation"]
    assert doc["miou"] == pytest.approx(record["miou"], abs=1e-9)

    keypoints_only = tmp_path / "real"
    assert cli.test_main([*argv, "--dataset2", "real_animal_sp", "-c", str(keypoints_only)]) == 0
    assert "Part segmentation" not in capsys.readouterr().out
    assert (keypoints_only / "pck_results.json").is_file()
    assert not (keypoints_only / SEGMENTATION_RESULTS).exists()


def test_a_reference_multitask_checkpoint_is_built_from_its_arch(
    mt_run, data_root, tmp_path, capsys, tiny_flags
):
    out, _ = mt_run
    ckpt = _ckpt(out / "model_best.pth.tar")
    reference = tmp_path / "syn_multitask" / "model_best.pth.tar"
    reference.parent.mkdir()
    torch.save({k: ckpt[k] for k in REFERENCE_KEYS}, reference)  # no config: the reference's
    argv = [
        *("--dataset1", "synthetic_animal_sp_multitask", "--dataset2", "real_animal_sp"),
        *("--resume", str(reference), "--evaluate", "--image-path", str(data_root)),
        *tiny_flags,
        "-c",
        str(tmp_path / "eval"),
    ]
    assert cli.test_main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "holds an hg_multitask model" in printed
    assert "is a reference checkpoint: using its input normalisation" in printed
    assert cli.test_main([*argv, "--arch", "hg"]) == 2  # told otherwise: the weights do not fit
    assert "unexpected keys" in capsys.readouterr().err
