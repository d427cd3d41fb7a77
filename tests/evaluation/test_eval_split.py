"""data.eval_split: --eval-split reaches test.py and train.py -e; training selects on valid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from animalpose.train import cli
from animalpose.train.build import build_evaluator
from animalpose.train.config import Config
from animalpose.train.flags import parse_config
from animalpose.train.trainer import Trainer


def _argv(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--image-path",
        str(root),
        "--animal",
        "dog",
        "--stacks",
        "1",
        "--channels",
        "16",
        "--inp-res",
        "64",
        "--out-res",
        "16",
        "--train-batch",
        "4",
        "--test-batch",
        "4",
        "-j",
        "0",
        "--solver",
        "adam",
        "--lr",
        "1e-3",
        "-c",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
        "--set",
        "run.tb_images=0",
        *extra,
    ]


@pytest.fixture(scope="module")
def checkpoint(bench, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    argv = _argv(bench.root, out, "--dataset", "real_animal_sp", "--epochs", "1")
    assert cli.train_main(argv) == 0
    return out / "model_best.pth.tar"


def test_config_field_and_flag():
    assert Config().data.eval_split == "valid"
    cfg, _ = parse_config(["--eval-split", "test"])
    assert cfg.data.eval_split == "test"


def test_unknown_eval_split_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        parse_config(["--set", "data.eval_split=train"])
    assert "data.eval_split: 'train' is not one of valid, test" in capsys.readouterr().err


def _evaluated(out: Path, split: str) -> tuple[dict, np.ndarray]:
    extra = json.loads((out / "pck_results.json").read_text())["extra"]
    preds = scipy.io.loadmat(out / f"preds_{split}.mat")["preds"]
    return extra, preds


def test_test_script_evaluates_exactly_the_test_frames(bench, checkpoint, tmp_path):
    out = tmp_path / "eval_test"
    argv = _argv(
        bench.root,
        out,
        "--dataset",
        "real_animal_sp",
        "--resume",
        str(checkpoint),
        "--eval-split",
        "test",
    )
    assert cli.test_main(argv) == 0
    extra, preds = _evaluated(out, "test")
    test = np.load(bench.folder / "test_idxs_by_video.npy")
    assert extra["split"] == "test" and extra["images"] == len(test)
    assert extra["sample_indices"] == test.tolist()
    assert preds.shape == (len(test), 18, 2)
    assert not (out / "preds_valid.mat").exists()


def test_default_evaluation_stays_on_valid_and_train_e_follows_the_flag(
    bench, checkpoint, tmp_path
):
    common = ("--dataset", "real_animal_sp", "--resume", str(checkpoint))
    assert cli.test_main(_argv(bench.root, tmp_path / "v", *common)) == 0
    extra, _ = _evaluated(tmp_path / "v", "valid")  # the reference's preds_valid.mat
    valid = np.load(bench.folder / "valid_idxs_by_video.npy")
    assert extra["split"] == "valid" and extra["sample_indices"] == valid.tolist()
    assert (
        cli.train_main(_argv(bench.root, tmp_path / "e", *common, "-e", "--eval-split", "test"))
        == 0
    )
    extra_e, preds_e = _evaluated(tmp_path / "e", "test")
    test = np.load(bench.folder / "test_idxs_by_video.npy")
    assert extra_e["sample_indices"] == test.tolist() and preds_e.shape[0] == len(test)


def test_test_split_on_data_without_one_is_a_clear_error(bench_copy, checkpoint, capsys):
    (bench_copy.folder / "test_idxs_by_video.npy").unlink()
    argv = _argv(
        bench_copy.root,
        bench_copy.root / "o",
        "--dataset",
        "real_animal_sp",
        "--resume",
        str(checkpoint),
        "--eval-split",
        "test",
    )
    assert cli.test_main(argv) == 2
    assert "this data set has no test split" in capsys.readouterr().err


def test_training_validates_on_valid_whatever_eval_split_says(bench, tmp_path):
    cfg, _ = parse_config(
        _argv(bench.root, tmp_path, "--dataset", "real_animal_sp", "--eval-split", "test")
    )
    trainer = Trainer(cfg)
    assert trainer.evaluator.split == "valid" and trainer.evaluator.dataset is trainer.val_set
    assert np.array_equal(
        trainer.val_set.indices, np.load(bench.folder / "valid_idxs_by_video.npy")
    )
    evaluator = build_evaluator(cfg)
    assert evaluator.split == "test"
    assert np.array_equal(
        evaluator.dataset.indices, np.load(bench.folder / "test_idxs_by_video.npy")
    )
