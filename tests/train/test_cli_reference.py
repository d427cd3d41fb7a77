"""train/cli.py with the reference's checkpoints and flags: a reference checkpoint on --resume /
--pretrained turns on its input normalisation with a notice (an explicit setting wins), and
evaluation adopts each saved setting the user did not give."""

from __future__ import annotations

import pytest
import torch

from animalpose.adapt import cli as adapt_cli
from animalpose.train import cli
from animalpose.train.checkpoint import is_reference_checkpoint
from animalpose.train.config_io import config_to_dict
from animalpose.train.flag_parser import parse_config
from animalpose.train.flags import TEST_FLAGS
from animalpose.train.models import build_model

NOTICE = "is a reference checkpoint: using its input normalisation"


def _weights() -> dict[str, torch.Tensor]:
    model = build_model("hg", num_stacks=1, num_blocks=1, num_keypoints=18, channels=8)
    return {f"module.{k}": v for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def reference_ckpt(tmp_path_factory):
    """A checkpoint with exactly the reference's keys (no config)."""
    path = tmp_path_factory.mktemp("ref") / "synthetic_animal_sp.pth.tar"
    torch.save({"epoch": 3, "arch": "hg", "state_dict": _weights(), "best_acc": 0.5}, path)
    return path


@pytest.fixture(scope="module")
def our_ckpt(tmp_path_factory):
    """One of ours: the same weights with a saved config (channels 8, 1 stack, inp_res 128)."""
    cfg, _ = parse_config(["--stacks", "1", "--channels", "8", "--inp-res", "128"])
    path = tmp_path_factory.mktemp("ours") / "model_best.pth.tar"
    state = {"epoch": 3, "arch": "hg", "state_dict": _weights(), "best_acc": 0.5}
    torch.save({**state, "config": config_to_dict(cfg)}, path)
    return path


def test_reference_checkpoints_are_told_from_ours(reference_ckpt, our_ckpt):
    assert is_reference_checkpoint(torch.load(reference_ckpt, weights_only=True))
    assert not is_reference_checkpoint(torch.load(our_ckpt, weights_only=True))
    bare = {k.removeprefix("module."): v for k, v in _weights().items()}
    assert not is_reference_checkpoint({"state_dict": bare})


@pytest.fixture
def captured(monkeypatch):
    """The configs the entry points would train (Trainer, AdaptTrainer) or evaluate with."""
    seen = []

    class Stub:
        def __init__(self, cfg) -> None:
            seen.append(cfg)

        def fit(self) -> dict:
            return {}

        def report(self, *args, **kwargs) -> None:
            pass

    monkeypatch.setattr(cli, "Trainer", Stub)
    monkeypatch.setattr(cli, "build_evaluator", lambda cfg: seen.append(cfg) or Stub(cfg))
    monkeypatch.setattr("animalpose.adapt.trainer.AdaptTrainer", Stub)
    return seen


@pytest.mark.parametrize(
    ("main", "flag"),
    [
        (cli.train_main, "--resume"),
        (cli.train_main, "--pretrained"),
        (cli.test_main, "--resume"),
        (adapt_cli.ccssl_main, "--resume"),  # CCSSL.py's --resume: the source weights
    ],
)
def test_reference_checkpoint_gets_its_input_normalisation(
    main, flag, reference_ckpt, tmp_path, captured, capsys
):
    argv = [flag, str(reference_ckpt), "-c", str(tmp_path / "out"), "--device", "cpu"]
    assert main(argv) == 0
    assert captured[-1].data.legacy_input and captured[-1].data.legacy
    notices = [line for line in capsys.readouterr().out.splitlines() if NOTICE in line]
    assert len(notices) == 1 and str(reference_ckpt) in notices[0]


@pytest.mark.parametrize(
    "setting",
    [["--set", "data.legacy_input=false"], ["--config", "CONFIG"]],
    ids=["set", "config-file"],
)
def test_an_explicit_setting_wins(setting, reference_ckpt, tmp_path, captured, capsys):
    if setting[0] == "--config":
        (tmp_path / "c.yaml").write_text("data:\n  legacy_input: false\n")
        setting = ["--config", str(tmp_path / "c.yaml")]
    argv = ["--resume", str(reference_ckpt), "-c", str(tmp_path / "out"), *setting]
    assert cli.test_main(argv) == 0
    # The user's legacy_input stays off; the switch not given (legacy mode) still turns on.
    assert not captured[-1].data.legacy_input and captured[-1].data.legacy
    notices = [line for line in capsys.readouterr().out.splitlines() if NOTICE in line]
    assert len(notices) == 1
    assert "data.legacy=true" in notices[0] and "legacy_input=true" not in notices[0]


@pytest.mark.parametrize(
    "setting",
    [
        ["--set", "data.legacy_input=false", "data.legacy=false"],
        ["--legacy-input", "--set", "data.legacy=false"],
    ],
    ids=["both-off", "flag-and-set"],
)
def test_no_notice_when_the_user_set_every_switch(
    setting, reference_ckpt, tmp_path, captured, capsys
):
    argv = ["--resume", str(reference_ckpt), "-c", str(tmp_path / "out"), *setting]
    assert cli.test_main(argv) == 0
    assert captured[-1].data.legacy_input == ("--legacy-input" in setting)
    assert not captured[-1].data.legacy
    assert NOTICE not in capsys.readouterr().out


def test_our_checkpoints_keep_their_saved_setting(our_ckpt, tmp_path, captured, capsys):
    assert cli.test_main(["--resume", str(our_ckpt), "-c", str(tmp_path / "out")]) == 0
    assert not captured[-1].data.legacy_input and not captured[-1].data.legacy
    assert NOTICE not in capsys.readouterr().out


def test_evaluation_adopts_each_saved_setting_not_given(our_ckpt, tmp_path, captured):
    # test.py's documented command gives --arch: the other saved sizes are still adopted.
    argv = ["--dataset1", "synthetic_animal_sp", "--dataset2", "real_animal_sp", "--arch", "hg"]
    argv += ["--resume", str(our_ckpt), "--evaluate", "-c", str(tmp_path / "out")]
    assert cli.test_main(argv) == 0
    cfg = captured[-1]
    assert (cfg.model.stacks, cfg.model.channels, cfg.data.inp_res) == (1, 8, 128)
    assert cfg.data.dataset == "real_animal_sp"
    assert cli.test_main([*argv, "--inp-res", "256"]) == 0  # a given value wins
    assert (captured[-1].model.channels, captured[-1].data.inp_res) == (8, 256)


def test_dataset1_is_the_training_set_and_checked(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_config(["--dataset1", "tigdog"], flags=TEST_FLAGS)
    assert "invalid choice: 'tigdog'" in capsys.readouterr().err
