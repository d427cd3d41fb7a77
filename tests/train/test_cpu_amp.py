"""``run.cpu_amp`` (``--cpu-amp``): bfloat16 autocast of the forward on a CPU with a bfloat16 fast
path (train/device.py ``use_amp``), float32 with one warning on other CPUs, weights, losses and
checkpoints float32 throughout."""

from __future__ import annotations

import warnings

import pytest
import torch

from animalpose.datasets.generator.fixtures import make_synthetic_fixture
from animalpose.evaluation.inference import cpu_bf16_fast_path
from animalpose.train import cli
from animalpose.train import device as devices
from animalpose.train.config import Config
from animalpose.train.config_io import apply_overrides
from animalpose.train.flag_parser import parse_config
from animalpose.train.trainer import Trainer

needs_bf16_cpu = pytest.mark.skipif(
    not cpu_bf16_fast_path(), reason="this CPU has no AMX / AVX-512 BF16 fast path"
)


def test_the_flag_sets_the_key_and_is_off_by_default():
    assert Config().run.cpu_amp is False
    assert parse_config(["--cpu-amp"])[0].run.cpu_amp is True
    assert parse_config([])[0].run.cpu_amp is False


@pytest.mark.parametrize("fast", [True, False])
def test_use_amp_on_a_cpu_follows_the_key_and_the_fast_path(monkeypatch, fast):
    monkeypatch.setattr(devices, "cpu_bf16_fast_path", lambda: fast)
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning unless --cpu-amp is asked for
        assert devices.use_amp(apply_overrides(Config(), ["run.amp=true"]), cpu) is False
        # CUDA is unchanged: run.amp alone decides there.
        assert devices.use_amp(apply_overrides(Config(), ["run.cpu_amp=true"]), cuda) is True
        assert devices.use_amp(apply_overrides(Config(), ["run.amp=false"]), cuda) is False
    cfg = apply_overrides(Config(), ["run.cpu_amp=true"])
    if fast:
        assert devices.use_amp(cfg, cpu) is True
    else:
        with pytest.warns(RuntimeWarning, match=r"--cpu-amp.*amx_bf16.*float32"):
            assert devices.use_amp(cfg, cpu) is False


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("animal_data")
    make_synthetic_fixture(root, animal="horse", num_images=20, seed=0, frame_size=(160, 120))
    return root


def _argv(root, out, tiny_flags, *extra) -> list[str]:
    data = ["--dataset", "synthetic_animal_sp", "--image-path", str(root), "--animal", "horse"]
    return [*data, *tiny_flags, "--solver", "adam", "-c", str(out), *extra]


def _forward_dtypes(trainer: Trainer) -> tuple[torch.dtype, torch.dtype]:
    """(dtype of the model's output, dtype of the loss) of one training step."""
    seen = []
    hook = trainer.model.register_forward_hook(lambda m, i, out: seen.append(out[-1].dtype))
    try:
        loss, _, _ = trainer.step(next(iter(trainer.train_loader)), trainer.codec)
    finally:
        hook.remove()
    return seen[0], loss.dtype


@needs_bf16_cpu
def test_the_flag_reaches_the_training_forward(data_root, tiny_flags, tmp_path):
    cfg, _ = parse_config(_argv(data_root, tmp_path / "a", tiny_flags, "--cpu-amp"))
    trainer = Trainer(cfg)
    assert trainer.amp and trainer.evaluator.amp
    assert _forward_dtypes(trainer) == (torch.bfloat16, torch.float32)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())
    assert all(p.grad.dtype == torch.float32 for p in trainer.model.parameters())
    plain, _ = parse_config(_argv(data_root, tmp_path / "b", tiny_flags))
    assert _forward_dtypes(Trainer(plain)) == (torch.float32, torch.float32)


def test_without_a_fast_path_training_runs_in_float32(data_root, tiny_flags, tmp_path, monkeypatch):
    monkeypatch.setattr(devices, "cpu_bf16_fast_path", lambda: False)
    cfg, _ = parse_config(_argv(data_root, tmp_path / "a", tiny_flags, "--cpu-amp"))
    with pytest.warns(RuntimeWarning, match="--cpu-amp") as caught:
        trainer = Trainer(cfg)
    assert len([w for w in caught if "--cpu-amp" in str(w.message)]) == 1  # one warning
    assert not trainer.amp and not trainer.evaluator.amp
    assert _forward_dtypes(trainer) == (torch.float32, torch.float32)


def test_checkpoints_stay_float32_and_resume(data_root, tiny_flags, tmp_path):
    out = tmp_path / "run"
    assert cli.train_main(_argv(data_root, out, tiny_flags, "--cpu-amp", "--epochs", "1")) == 0
    ckpt = torch.load(out / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    floats = [t for t in ckpt["state_dict"].values() if t.is_floating_point()]
    assert floats and all(t.dtype == torch.float32 for t in floats)
    for state in ckpt["optimizer"]["state"].values():
        assert all(t.dtype == torch.float32 for t in state.values() if t.is_floating_point())
    assert ckpt["config"]["run"]["cpu_amp"] is True
    resume = ["--cpu-amp", "--epochs", "2", "--resume", str(out / "checkpoint.pth.tar")]
    assert cli.train_main(_argv(data_root, out, tiny_flags, *resume)) == 0
