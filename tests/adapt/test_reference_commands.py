"""The reference's documented commands (its README.md and TRAINING.md), run as written in a fresh
folder with its relative paths (``./animal_data``, ``./checkpoint/...``), in the order a user runs
them: train on synthetic animals -> CCSSL/CCSSL.py's command given to adapt/ccssl.py -> test.py
on ``<checkpoint>/synthetic_animal_sp.pth.tar``; TigDog training and its ``--evaluate``; the
README's demo on a checkpoint in the reference's own format; TRAINING.md's multitask pair
(train_multitask.py, then test.py on its model_best).

Only run-length and run-environment flags are appended (``--epochs 1``, no workers, the CPU); the
quick variant also appends the tiny model's sizes, but not to test.py on our checkpoint, which
takes them from the checkpoint (``--arch hg`` given, the rest adopted)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
import scipy.io
import torch
import yaml

from animalpose.adapt.cli import ccssl_main
from animalpose.datasets.generator.fixtures import make_synthetic_fixture, make_tigdog_fixture
from animalpose.train import cli
from animalpose.train.checkpoint import REFERENCE_KEYS
from animalpose.train.run_folder import LOG_COLUMNS, MULTITASK_LOG_COLUMNS

#: The reference README's "Train" steps 1-3, then TRAINING.md's Example 1 (its `UDA_VISIBLE_...`
#: typo included) with the evaluation a user runs after it, then the README's demo evaluation.
SYNTHETIC_TO_REAL = (
    "CUDA_VISIBLE_DEVICES=0 python train/train.py --dataset synthetic_animal_sp -a hg --stacks 4 "
    "--blocks 1 --image-path ./animal_data/ --checkpoint ./checkpoint/horse/syn --animal horse",
    "CUDA_VISIBLE_DEVICES=0 python CCSSL/CCSSL.py --num-epochs 60 --checkpoint "
    "./checkpoint/horse/ssl/ --resume ./checkpoint/horse/syn/model_best.pth.tar --animal horse",
    "CUDA_VISIBLE_DEVICES=0 python ./evaluation/test.py --dataset1 synthetic_animal_sp --dataset2 "
    "real_animal_sp --arch hg --resume ./checkpoint/horse/ssl/synthetic_animal_sp.pth.tar "
    "--evaluate --animal horse",
)
TIGDOG_TRAIN = (
    "UDA_VISIBLE_DEVICES=0 python train/train.py --dataset real_animal -a hg --stacks 4 --blocks 1 "
    "--image-path ./animal_data/ --checkpoint ./checkpoint --animal horse"
)
TIGDOG = (TIGDOG_TRAIN, TIGDOG_TRAIN + " --resume ./checkpoint/model_best.pth.tar --evaluate")
DEMO = (
    "CUDA_VISIBLE_DEVICES=0 python ./evaluation/test.py --dataset1 synthetic_animal_sp --dataset2 "
    "real_animal_sp --arch hg --resume "
    "./checkpoint/synthetic_animal/horse/horse_ccssl/synthetic_animal_sp.pth.tar --evaluate "
    "--animal horse"
)
#: CCSSL.py's command from the README's downloaded (reference-format) source model.
CCSSL_FROM_REFERENCE = (
    "python CCSSL/CCSSL.py --num-epochs 60 --checkpoint ./checkpoint/horse/ssl_reference/ "
    "--resume ./checkpoint/synthetic_animal/horse/horse_ccssl/synthetic_animal_sp.pth.tar "
    "--animal horse"
)
#: TRAINING.md's Example 4 (multitask: keypoints + part segmentation), then the same pair with
#: its run-length, batch, worker and flip-test flags spelled out, test.py writing into the run.
MULTITASK = (
    "CUDA_VISIBLE_DEVICES=0 python train/train_multitask.py --dataset "
    "synthetic_animal_sp_multitask -a hg_multitask --stacks 4 --blocks 1 --image-path "
    "./animal_data/ --checkpoint ./checkpoint/synthetic_animal/horse/horse_multitask --animal "
    "horse",
    "CUDA_VISIBLE_DEVICES=0 python ./evaluation/test.py --dataset1 synthetic_animal_sp_multitask "
    "--dataset2 real_animal_sp --arch hg_multitask --resume "
    "./checkpoint/synthetic_animal/horse/horse_multitask/model_best.pth.tar --evaluate --animal "
    "horse",
)
MULTITASK_SPELLED_OUT = (
    "python train/train_multitask.py --dataset synthetic_animal_sp_multitask -a hg_multitask "
    "--animal horse --image-path ./animal_data/ --checkpoint ./checkpoint/horse/syn_multitask "
    "--epochs 100 --train-batch 6 --test-batch 6 --workers 8",
    "python evaluation/test.py --dataset1 synthetic_animal_sp_multitask --dataset2 real_animal_sp "
    "--arch hg_multitask --animal horse --image-path ./animal_data/ --checkpoint "
    "./checkpoint/horse/syn_multitask --resume "
    "./checkpoint/horse/syn_multitask/model_best.pth.tar --evaluate --flip",
)
#: The reference's script -> ours.
SCRIPTS = {
    "train/train.py": "train/train.py",
    "train/train_multitask.py": "train/train_multitask.py",
    "evaluation/test.py": "evaluation/test.py",
    "CCSSL/CCSSL.py": "adapt/ccssl.py",
    "./evaluation/test.py": "evaluation/test.py",
}
MAINS = {
    "train/train.py": cli.train_main,
    "train/train_multitask.py": cli.train_multitask_main,
    "adapt/ccssl.py": ccssl_main,
    "evaluation/test.py": cli.test_main,
}
#: Appended to every command: the CPU, no loader workers, no progress bars.
ENVIRONMENT = ("--workers", "0", "--device", "cpu", "--no-progress")
#: Appended to commands that train: one epoch (CCSSL.py's name for it).
ONE_EPOCH = {
    "train/train.py": ("--epochs", "1"),
    "train/train_multitask.py": ("--epochs", "1"),
    "adapt/ccssl.py": ("--num-epochs", "1"),
}
#: The quick variant's model: 1 stack of 16 channels on 64-px crops (tests/conftest.py).
TINY_MODEL = tuple(
    "--stacks 1 --channels 16 --inp-res 64 --out-res 16 --train-batch 4 --test-batch 4".split()
)


def split_command(command: str) -> tuple[str, list[str]]:
    """A documented command line -> (our script, its arguments as written)."""
    words = shlex.split(command)
    while "=" in words[0]:  # CUDA_VISIBLE_DEVICES=0
        words.pop(0)
    assert words[0] == "python", command
    return SCRIPTS[words[1]], words[2:]


def extras(script: str, args: list[str], *, sized: bool) -> list[str]:
    """What a test appends to a documented command: one epoch, the environment, with ``sized``
    the tiny model's sizes."""
    return [
        *([] if "--evaluate" in args else ONE_EPOCH[script]),
        *ENVIRONMENT,
        *(TINY_MODEL if sized else ()),
        *(("--pseudo-workers", "0", "--set", "adapt.pseudo_batch=4") if "ccssl" in script else ()),
    ]


@pytest.fixture(scope="module")
def user_folder(tmp_path_factory):
    """A fresh working folder holding ``./animal_data`` with horse synthetic and TigDog data."""
    folder = tmp_path_factory.mktemp("user")
    data = folder / "animal_data"
    make_synthetic_fixture(data, animal="horse", num_images=12, seed=1, frame_size=(160, 120))
    make_tigdog_fixture(
        data, animal="horse", num_shots=4, frames_per_shot=4, seed=2, frame_size=(160, 120)
    )
    return folder


def _log_rows(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text().splitlines()]


def _as_reference_checkpoint(ours: Path, path: Path) -> None:
    """``ours`` saved as the reference saves checkpoints: its five keys and nothing else."""
    ckpt = torch.load(ours, map_location="cpu", weights_only=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: ckpt[k] for k in REFERENCE_KEYS}, path)


def run_documented(folder: Path, run, *, tiny: bool) -> dict[str, str]:
    """Every documented command in order through ``run(script, argv) -> stdout``; checks what
    each leaves where the next looks. Returns the stdout of each step."""
    out: dict[str, str] = {}

    def step(name: str, command: str, *, sized: bool = tiny) -> None:
        script, args = split_command(command)
        out[name] = run(script, [*args, *extras(script, args, sized=sized)])

    ckpt = folder / "checkpoint"
    step("train", SYNTHETIC_TO_REAL[0])
    rows = _log_rows(ckpt / "horse/syn/log.txt")
    assert rows[0] == list(LOG_COLUMNS) and len(LOG_COLUMNS) == 8
    assert len(rows) == 2 and len(rows[1]) == 8 and rows[1][0] == "1.000000"
    step("ccssl", SYNTHETIC_TO_REAL[1])
    ssl = ckpt / "horse/ssl"
    copy = ssl / "synthetic_animal_sp.pth.tar"
    assert copy.read_bytes() == (ssl / "model_best.pth.tar").read_bytes()
    step("test", SYNTHETIC_TO_REAL[2], sized=False)  # the sizes come from the checkpoint
    assert "--dataset1 names the training set" in out["test"]
    results = json.loads((ckpt / "pck_results.json").read_text())
    assert results["extra"]["checkpoint"] == "./checkpoint/horse/ssl/synthetic_animal_sp.pth.tar"
    assert scipy.io.loadmat(ckpt / "preds_valid.mat")["preds"].shape[1:] == (18, 2)

    step("tigdog", TIGDOG[0])
    assert len(_log_rows(ckpt / "log.txt")) == 2 and (ckpt / "model_best.pth.tar").is_file()
    (ckpt / "preds_valid.mat").unlink()
    step("tigdog_eval", TIGDOG[1])
    assert (ckpt / "preds_valid.mat").is_file()

    # The README's demo on a downloaded reference checkpoint: here the adapted model in the
    # reference's format, where the download puts it.
    _as_reference_checkpoint(copy, ckpt / "synthetic_animal/horse/horse_ccssl" / copy.name)
    step("demo", DEMO)
    assert "is a reference checkpoint: using its input normalisation" in out["demo"]
    extra = json.loads((ckpt / "pck_results.json").read_text())["extra"]
    assert extra["legacy_input"] is True and extra["legacy"] is True
    # CC-SSL from a downloaded reference source model adapts in the reference's legacy mode.
    step("ccssl_reference", CCSSL_FROM_REFERENCE)
    assert "is a reference checkpoint: using its input normalisation" in out["ccssl_reference"]
    saved = yaml.safe_load((ckpt / "horse/ssl_reference/config.yaml").read_text())
    assert saved["data"]["legacy"] is True and saved["data"]["legacy_input"] is True
    assert (ckpt / "horse/ssl_reference/synthetic_animal_sp.pth.tar").is_file()

    step("multitask", MULTITASK[0])
    mt_dir = ckpt / "synthetic_animal/horse/horse_multitask"
    rows = _log_rows(mt_dir / "log.txt")
    assert rows[0] == list(MULTITASK_LOG_COLUMNS) and len(rows) == 2 and len(rows[1]) == 7
    assert "mIoU" in out["multitask"]
    best = torch.load(mt_dir / "model_best.pth.tar", map_location="cpu", weights_only=True)
    assert best["arch"] == "hg_multitask"
    step("multitask_test", MULTITASK[1], sized=False)  # the sizes come from the checkpoint
    results = json.loads((ckpt / "pck_results.json").read_text())
    assert results["extra"]["checkpoint"] == f"./{mt_dir.relative_to(folder)}/model_best.pth.tar"
    assert results["extra"]["dataset"] == "real_animal_sp"

    step("multitask_spelled_out", MULTITASK_SPELLED_OUT[0])
    mt_dir = ckpt / "horse/syn_multitask"
    assert _log_rows(mt_dir / "log.txt")[0] == list(MULTITASK_LOG_COLUMNS)
    (mt_dir / "pck_results.json").unlink(missing_ok=True)
    step("multitask_spelled_out_test", MULTITASK_SPELLED_OUT[1], sized=False)
    results = json.loads((mt_dir / "pck_results.json").read_text())
    assert results["extra"]["flip_test"] is True
    return out


def test_documented_commands_run_as_written(user_folder, monkeypatch, capsys):
    """The quick variant: in this process, the tiny model."""
    monkeypatch.chdir(user_folder)

    def run(script: str, argv: list[str]) -> str:
        code = MAINS[script](argv)
        captured = capsys.readouterr()
        assert code == 0, f"{script} {argv}: {captured.err[-2000:]}"
        return captured.out

    run_documented(user_folder, run, tiny=True)


@pytest.mark.slow
def test_documented_commands_run_as_written_as_scripts(user_folder, run_script, tmp_path):
    """The commands as a user types them: the scripts in fresh interpreters, the reference's
    model size (4 stacks of 256 channels, 256-px crops)."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / "animal_data").symlink_to(user_folder / "animal_data")

    def run(script: str, argv: list[str]) -> str:
        done = run_script(script, *argv, cwd=folder, timeout=1800)
        assert done.returncode == 0, f"{script} {argv}: {done.stderr[-2000:]}"
        return done.stdout

    run_documented(folder, run, tiny=False)
