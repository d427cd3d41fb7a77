"""Train, resume and evaluate through the real entry points on a tiny reference-layout data set."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import yaml
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from animalpose.datasets.generator.fixtures import make_synthetic_fixture, make_tigdog_fixture
from animalpose.train import cli
from animalpose.train.checkpoint import REFERENCE_KEYS
from animalpose.train.trainer import LOG_COLUMNS


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("animal_data")
    make_synthetic_fixture(root, animal="horse", num_images=40, seed=0, frame_size=(160, 120))
    make_tigdog_fixture(
        root, animal="horse", num_shots=4, frames_per_shot=6, seed=0, frame_size=(160, 120)
    )
    return root


@pytest.fixture(scope="module")
def train_argv(tiny_flags):
    """``train_argv(root, out, *extra)``: the tiny model on the horse fixture, batches of 8,
    Adam with the learning rate dropping after epoch 1, logging every step."""

    def argv(root: Path, out: Path, *extra: str) -> list[str]:
        data = ["--dataset", "synthetic_animal_sp", "--image-path", str(root), "--animal", "horse"]
        model = ["--blocks", "1", *tiny_flags, "--train-batch", "8", "--test-batch", "8"]
        optim = ["--solver", "adam", "--lr", "1e-3", "--schedule", "1"]
        run = ["-c", str(out), "--set", "run.log_every=1", "--set", "run.tb_images=2"]
        return [*data, *model, *optim, *run, *extra]

    return argv


@pytest.fixture(scope="module")
def full_run(data_root, train_argv, tmp_path_factory):
    out = tmp_path_factory.mktemp("run_full")
    assert cli.train_main(train_argv(data_root, out, "--epochs", "2")) == 0
    return out


def test_training_writes_every_artefact(full_run):
    ckpt = torch.load(full_run / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    assert set(REFERENCE_KEYS) <= set(ckpt)
    assert ckpt["epoch"] == 2 and ckpt["arch"] == "hg" and ckpt["keypoint_spec"] == "animal18"
    assert all(k.startswith("module.") for k in ckpt["state_dict"])
    assert ckpt["config"]["model"]["channels"] == 16
    assert (full_run / "model_best.pth.tar").is_file() and (full_run / "config.yaml").is_file()
    rows = (full_run / "log.txt").read_text().splitlines()
    assert rows[0].split("\t") == list(LOG_COLUMNS) and len(rows) == 3
    assert [float(r.split("\t")[0]) for r in rows[1:]] == [1.0, 2.0]
    assert float(rows[2].split("\t")[1]) == pytest.approx(1e-4)  # lr x 0.1 after epoch 1
    preds = scipy.io.loadmat(full_run / "preds.mat")["preds"]
    assert preds.shape == (8, 18, 2)  # 20 % of 40 images validate
    events = EventAccumulator(str(full_run / "tensorboard")).Reload()
    tags = events.Tags()
    assert {"train/loss", "train/lr", "epoch/val_pck_legacy", "epoch/val_pck_precise"} <= set(
        tags["scalars"]
    )
    assert len(events.Scalars("epoch/val_pck_legacy")) == 2
    assert tags["images"], "validation crops with predictions are logged"


def test_resume_continues_as_if_never_stopped(data_root, full_run, train_argv, tmp_path):
    out = tmp_path / "run_resumed"
    assert cli.train_main(train_argv(data_root, out, "--epochs", "1")) == 0
    assert (
        cli.train_main(
            train_argv(data_root, out, "--epochs", "2", "--resume", str(out / "checkpoint.pth.tar"))
        )
        == 0
    )
    a = torch.load(full_run / "checkpoint.pth.tar", weights_only=True)
    b = torch.load(out / "checkpoint.pth.tar", weights_only=True)
    assert b["epoch"] == 2
    for key, value in a["state_dict"].items():
        torch.testing.assert_close(b["state_dict"][key], value, rtol=0, atol=1e-6, msg=key)
    log_a = (full_run / "log.txt").read_text().splitlines()
    log_b = (out / "log.txt").read_text().splitlines()
    assert len(log_b) == 3 and log_b[0] == log_a[0]
    np.testing.assert_allclose(
        [float(v) for v in log_b[2].split("\t")],
        [float(v) for v in log_a[2].split("\t")],
        rtol=1e-5,
    )


def test_evaluation_script_reports_both_metrics(data_root, full_run, train_argv, tmp_path):
    out = tmp_path / "eval"
    argv = train_argv(
        data_root,
        out,
        "--evaluate",
        "--resume",
        str(full_run / "model_best.pth.tar"),
        "--dataset",
        "real_animal_sp",
        "-f",
    )
    assert cli.test_main(argv + ["--overlays", "2"]) == 0
    results = json.loads((out / "pck_results.json").read_text())
    text = json.dumps(results)
    assert "legacy" in text and "precise" in text
    preds = scipy.io.loadmat(out / "preds_valid.mat")["preds"]
    assert preds.ndim == 3 and preds.shape[1:] == (18, 2)
    assert (out / "pck.png").stat().st_size > 1000
    assert len(list((out / "overlays").glob("*.png"))) == 2


def test_reference_checkpoint_evaluates_in_legacy_mode(data_root, full_run, train_argv, tmp_path):
    ours = torch.load(full_run / "model_best.pth.tar", weights_only=True)
    reference = {  # exactly the reference's keys, nothing of ours
        "epoch": 2,
        "arch": "hg",
        "state_dict": ours["state_dict"],
        "best_acc": torch.tensor(0.1),
        "optimizer": ours["optimizer"],
    }
    path = tmp_path / "reference.pth.tar"
    torch.save(reference, path)
    out = tmp_path / "eval_ref"
    argv = train_argv(data_root, out, "-e", "--resume", str(path))
    assert cli.train_main(argv) == 0  # the reference's own `train.py -e` path
    # The same weights in our format, evaluated with both legacy switches given by hand, give
    # the same predictions: the reference checkpoint turned them on by itself.
    same = tmp_path / "eval_ours"
    argv = train_argv(data_root, same, "-e", "--resume", str(full_run / "model_best.pth.tar"))
    assert cli.train_main([*argv, "--legacy-input", "--legacy"]) == 0
    np.testing.assert_array_equal(
        scipy.io.loadmat(out / "preds_valid.mat")["preds"],
        scipy.io.loadmat(same / "preds_valid.mat")["preds"],
    )
    results = json.loads((out / "pck_results.json").read_text())
    assert results["metrics"] == json.loads((same / "pck_results.json").read_text())["metrics"]
    assert results["extra"]["checkpoint"] == str(path)
    assert results["extra"]["legacy_input"] and results["extra"]["legacy"]


def test_bad_data_root_is_a_clear_error(train_argv, tmp_path, capsys):
    assert cli.train_main(train_argv(tmp_path / "nowhere", tmp_path / "o", "--epochs", "1")) == 2
    err = capsys.readouterr().err
    assert "nowhere" in err


# -- continuing a run: what may change, what is refused (issue 10) ------------------------------
@pytest.fixture
def one_epoch(data_root, train_argv, tmp_path):
    """``(out, argv)``: the first epoch of ``full_run``'s run in ``out``, and ``argv(*extra)``
    resuming it."""
    out = tmp_path / "one_epoch"
    assert cli.train_main(train_argv(data_root, out, "--epochs", "1")) == 0

    def argv(*extra: str) -> list[str]:
        return train_argv(data_root, out, "--resume", str(out / "checkpoint.pth.tar"), *extra)

    return out, argv


def _log_rows(out: Path) -> list[list[float]]:
    return [
        [float(v) for v in r.split("\t")] for r in (out / "log.txt").read_text().splitlines()[1:]
    ]


def test_resume_applies_a_new_lr_and_schedule_everywhere(one_epoch):
    """The run was Adam at 1e-3 dropping x0.1 after epoch 1; resumed with --lr 2e-3 and the
    drop moved to epoch 5, epoch 2 trains at 2e-3, and config.yaml, the checkpoint and log.txt
    all say so."""
    out, argv = one_epoch
    assert cli.train_main(argv("--epochs", "2", "--lr", "2e-3", "--schedule", "5")) == 0
    assert _log_rows(out)[1][1] == pytest.approx(2e-3)
    ckpt = torch.load(out / "checkpoint.pth.tar", weights_only=True)
    assert ckpt["config"]["optim"]["lr"] == 2e-3 and ckpt["config"]["optim"]["schedule"] == [5]
    assert [g["lr"] for g in ckpt["optimizer"]["param_groups"]] == [pytest.approx(2e-3)]
    assert ckpt["scheduler"]["base_lrs"] == [2e-3] and dict(ckpt["scheduler"]["milestones"]) == {
        5: 1
    }
    saved = yaml.safe_load((out / "config.yaml").read_text())["optim"]
    assert (saved["lr"], saved["schedule"]) == (2e-3, [5])


@pytest.mark.parametrize(
    "extra, named",
    [
        (("--train-batch", "4"), "data.train_batch: 8 there, 4 now"),
        (("--solver", "rms"), "optim.solver: 'adam' there, 'rms' now"),  # was KeyError square_avg
    ],
    ids=["batch", "solver"],
)
def test_resume_refuses_other_settings_naming_them(one_epoch, capsys, extra, named):
    out, argv = one_epoch
    before = (out / "checkpoint.pth.tar").read_bytes()
    assert cli.train_main(argv("--epochs", "2", *extra)) == 2
    err = capsys.readouterr().err
    assert named in err and str(out / "checkpoint.pth.tar") in err and "--pretrained" in err
    assert (out / "checkpoint.pth.tar").read_bytes() == before and len(_log_rows(out)) == 1


def test_resume_past_the_last_epoch_says_so(one_epoch, capsys):
    out, argv = one_epoch
    assert cli.train_main(argv("--epochs", "1")) == 0
    err = capsys.readouterr().err
    assert "nothing to train" in err and "finished epoch 1" in err and "--epochs" in err


def test_divergence_stops_and_keeps_the_last_good_checkpoint(one_epoch, capsys):
    out, argv = one_epoch
    before = (out / "checkpoint.pth.tar").read_bytes()
    assert cli.train_main(argv("--epochs", "3", "--lr", "1e6")) == 2
    err = capsys.readouterr().err
    assert "diverged in epoch 2" in err and "--lr" in err and "is kept" in err
    assert (out / "checkpoint.pth.tar").read_bytes() == before and len(_log_rows(out)) == 1
    assert not any(out.glob("checkpoint_*")) and not any(out.rglob(".*.tmp"))


def test_a_diverging_new_run_writes_no_checkpoint(data_root, train_argv, tmp_path, capsys):
    out = tmp_path / "diverged"
    assert cli.train_main(train_argv(data_root, out, "--epochs", "1", "--lr", "1e6")) == 2
    assert "diverged in epoch 1" in capsys.readouterr().err
    assert not (out / "checkpoint.pth.tar").exists() and not (out / "model_best.pth.tar").exists()


def test_resume_refuses_non_finite_weights(one_epoch, capsys):
    out, argv = one_epoch
    path = out / "checkpoint.pth.tar"
    ckpt = torch.load(path, weights_only=True)
    key = next(k for k in ckpt["state_dict"] if k.endswith("conv1.weight"))
    ckpt["state_dict"][key][0] = float("nan")
    torch.save(ckpt, path)
    assert cli.train_main(argv("--epochs", "2")) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "NaN or inf" in err and key.removeprefix("module.") in err
    assert len(_log_rows(out)) == 1


def test_a_checkpoint_asking_for_an_absurd_model_is_refused(data_root, full_run, tmp_path, capsys):
    """Evaluation adopts the model section of a checkpoint's saved config: 1,000,000 channels
    (500 GB for one layer) is refused before anything is allocated."""
    ckpt = torch.load(full_run / "model_best.pth.tar", weights_only=True)
    ckpt["config"]["model"]["channels"] = 1_000_000
    path = tmp_path / "huge.pth.tar"
    torch.save(ckpt, path)
    data = ["--dataset", "synthetic_animal_sp", "--image-path", str(data_root), "--animal", "horse"]
    run = ["--workers", "0", "--device", "cpu", "--no-progress", "-c", str(tmp_path / "eval")]
    assert cli.test_main([*data, *run, "--resume", str(path)]) == 2  # no model flags: adopted
    err = capsys.readouterr().err
    assert "1000000 channels" in err and "GB" in err and "memory available" in err
