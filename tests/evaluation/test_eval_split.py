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
from animalpose.train.flag_parser import parse_config
from animalpose.train.trainer import Trainer


@pytest.fixture(scope="module")
def argv(tiny_dog_flags):
    """``argv(root, out, *extra)``: the tiny model on ``root``'s real_animal_sp, into ``out``."""

    def build(root: Path, out: Path, *extra: str) -> list[str]:
        data = ["--image-path", str(root), "--dataset", "real_animal_sp"]
        return [*data, *tiny_dog_flags, "-c", str(out), "--set", "run.tb_images=0", *extra]

    return build


@pytest.fixture(scope="module")
def checkpoint(bench, argv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    assert cli.train_main(argv(bench.root, out, "--epochs", "1")) == 0
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


def test_test_script_evaluates_exactly_the_test_frames(bench, argv, checkpoint, tmp_path):
    out = tmp_path / "eval_test"
    test_split = ("--resume", str(checkpoint), "--eval-split", "test")
    assert cli.test_main(argv(bench.root, out, *test_split)) == 0
    extra, preds = _evaluated(out, "test")
    test = np.load(bench.folder / "test_idxs_by_video.npy")
    assert extra["split"] == "test" and extra["images"] == len(test)
    assert extra["sample_indices"] == test.tolist()
    assert preds.shape == (len(test), 18, 2)
    assert not (out / "preds_valid.mat").exists()


def test_default_evaluation_stays_on_valid_and_train_e_follows_the_flag(
    bench, argv, checkpoint, tmp_path
):
    resume = ("--resume", str(checkpoint))
    assert cli.test_main(argv(bench.root, tmp_path / "v", *resume)) == 0
    extra, _ = _evaluated(tmp_path / "v", "valid")  # the reference's preds_valid.mat
    valid = np.load(bench.folder / "valid_idxs_by_video.npy")
    assert extra["split"] == "valid" and extra["sample_indices"] == valid.tolist()
    assert (
        cli.train_main(argv(bench.root, tmp_path / "e", *resume, "-e", "--eval-split", "test")) == 0
    )
    extra_e, preds_e = _evaluated(tmp_path / "e", "test")
    test = np.load(bench.folder / "test_idxs_by_video.npy")
    assert extra_e["sample_indices"] == test.tolist() and preds_e.shape[0] == len(test)


def test_test_split_on_data_without_one_is_a_clear_error(bench_copy, argv, checkpoint, capsys):
    (bench_copy.folder / "test_idxs_by_video.npy").unlink()
    test_split = ("--resume", str(checkpoint), "--eval-split", "test")
    assert cli.test_main(argv(bench_copy.root, bench_copy.root / "o", *test_split)) == 2
    assert "this data set has no test split" in capsys.readouterr().err


def test_training_validates_on_valid_whatever_eval_split_says(bench, argv, tmp_path):
    cfg, _ = parse_config(argv(bench.root, tmp_path, "--eval-split", "test"))
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
