"""train/build.py: config -> codec (and its per-epoch sigma), optimiser, device, start weights.

The assemblies (``build_training``, ``build_evaluator``) run end to end in test_trainer.py and
tests/evaluation/test_eval_split.py.
"""

from __future__ import annotations

import pytest
import torch

from animalpose.datasets.codecs.legacy import LegacyHeatmap
from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.train.build import (
    build_codec,
    build_network,
    build_optimizer,
    build_scheduler,
    codec_for_epoch,
    dataset_kwargs,
    load_start_weights,
)
from animalpose.train.checkpoint import REFERENCE_KEYS, build_checkpoint, prefixed_state_dict
from animalpose.train.config import Config, ConfigError
from animalpose.train.config_io import apply_overrides
from animalpose.train.device import resolve_device

CPU = torch.device("cpu")
TINY_MODEL = ["model.stacks=1", "model.channels=16", "data.inp_res=64", "data.out_res=16"]


def _cfg(*overrides: str) -> Config:
    return apply_overrides(Config(), [*TINY_MODEL, *overrides])


def test_codec_follows_the_data_settings():
    codec = build_codec(_cfg("data.sigma=2.0"))
    assert codec.input_size == (64, 64) and codec.heatmap_size == (16, 16)
    assert codec.sigma == 2.0


def test_sigma_decays_per_epoch_only_when_asked():
    codec = build_codec(_cfg("data.sigma=2.0"))
    assert codec_for_epoch(codec, 5, 0.0) is codec
    later = codec_for_epoch(codec, 3, 0.5)
    assert later.sigma == pytest.approx(0.25)
    assert (later.input_size, later.heatmap_size) == (codec.input_size, codec.heatmap_size)
    assert codec_for_epoch(codec, 0, 0.5).sigma == codec.sigma


def test_optimisers_are_the_reference_ones():
    params = [torch.nn.Parameter(torch.zeros(2))]
    rms = build_optimizer(_cfg("optim.solver=rms", "optim.lr=0.01"), params)
    assert isinstance(rms, torch.optim.RMSprop)
    group = rms.param_groups[0]
    assert (group["lr"], group["alpha"], group["eps"]) == (0.01, 0.99, 1e-8)
    adam = build_optimizer(_cfg("optim.solver=adam"), params)
    assert isinstance(adam, torch.optim.Adam)


def test_device_names():
    assert resolve_device("cpu") == CPU
    if not torch.cuda.is_available():
        assert resolve_device("auto") == CPU
        with pytest.raises(
            ConfigError, match="run.device: 'cuda' asks for a GPU, but this machine has no CUDA"
        ):
            resolve_device("cuda")


def test_a_gpu_index_past_the_machine_is_a_config_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(
        ConfigError, match=r"'cuda:2' asks for a GPU, but this machine has 2 \(cuda:0 to cuda:1\)"
    ):
        resolve_device("cuda:2")


def _reference_checkpoint(path, cfg: Config, *, epoch: int) -> torch.nn.Module:
    """A checkpoint with only the reference's keys (no scheduler, no RNG) of a tiny model."""
    model = build_network(cfg, ANIMAL18, CPU)
    optimizer = build_optimizer(cfg, model.parameters())
    state = {
        "epoch": epoch,
        "arch": "hg",
        "state_dict": prefixed_state_dict(model),
        "best_acc": torch.tensor(0.25),
        "optimizer": optimizer.state_dict(),
    }
    assert tuple(state) == REFERENCE_KEYS
    torch.save(state, path)
    return model


def test_resuming_a_reference_checkpoint_rebuilds_the_lr_schedule(tmp_path):
    path = tmp_path / "checkpoint.pth.tar"
    overrides = ("optim.lr=0.001", "optim.gamma=0.1", "optim.schedule=[2, 5]")
    saved = _reference_checkpoint(path, _cfg(*overrides), epoch=3)
    cfg = _cfg(*overrides, f"run.resume={path}")
    torch.manual_seed(1)
    model = build_network(cfg, ANIMAL18, CPU)
    optimizer = build_optimizer(cfg, model.parameters())
    scheduler = build_scheduler(cfg, optimizer)
    start = load_start_weights(cfg, model, optimizer=optimizer, scheduler=scheduler, verbose=False)
    assert (start.start_epoch, start.best_acc) == (3, 0.25)
    assert scheduler.last_epoch == 3
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)  # one milestone (2) passed
    for (name, ours), theirs in zip(model.state_dict().items(), saved.state_dict().values()):
        assert torch.equal(ours, theirs), name


def _save_ours(path, cfg: Config) -> dict:
    """Our checkpoint format at epoch 7, its RNG state that of seed 123."""
    model = build_network(cfg, ANIMAL18, CPU)
    with torch.random.fork_rng():
        torch.manual_seed(123)
        state = build_checkpoint(
            model=model,
            optimizer=build_optimizer(cfg, model.parameters()),
            epoch=7,
            best_acc=0.5,
            keypoint_spec="animal18",
        )
    torch.save(state, path)
    return state


def test_training_resumes_the_rng_evaluation_keeps_its_own(tmp_path):
    path = tmp_path / "ours.pth.tar"
    saved = _save_ours(path, _cfg())
    cfg = _cfg(f"run.resume={path}")
    model = build_network(cfg, ANIMAL18, CPU)
    rng = torch.get_rng_state()
    assert load_start_weights(cfg, model, verbose=False).start_epoch == 7
    assert torch.equal(torch.get_rng_state(), rng)
    optimizer = build_optimizer(cfg, model.parameters())
    scheduler = build_scheduler(cfg, optimizer)
    load_start_weights(cfg, model, optimizer=optimizer, scheduler=scheduler, verbose=False)
    assert torch.equal(torch.get_rng_state(), saved["rng"]["torch"])


def test_pretrained_weights_load_without_the_training_state(tmp_path, capsys):
    path = tmp_path / "weights.pth.tar"
    saved = _reference_checkpoint(path, _cfg(), epoch=9)
    cfg = _cfg(f"run.pretrained={path}", "optim.start_epoch=2")
    model = build_network(cfg, ANIMAL18, CPU)
    optimizer = build_optimizer(cfg, model.parameters())
    start = load_start_weights(cfg, model, optimizer=optimizer, verbose=True)
    assert (start.start_epoch, start.best_acc) == (2, 0.0)  # a fresh run from these weights
    assert not optimizer.state
    assert f"=> initial weights from {path}" in capsys.readouterr().out
    for (name, ours), theirs in zip(model.state_dict().items(), saved.state_dict().values()):
        assert torch.equal(ours, theirs), name


def test_occlusion_settings_reach_every_dataset_of_the_run():
    cfg = apply_overrides(Config(), ["data.occlusion=0.5", "data.occluders=3"], source="test")
    kw = dataset_kwargs(cfg, ANIMAL18)
    assert (kw["occlusion"], kw["occluders"]) == (0.5, 3)
    assert dataset_kwargs(Config(), ANIMAL18)["occlusion"] == 0.0  # off by default
    with pytest.raises(ConfigError, match="data.occlusion"):
        apply_overrides(Config(), ["data.occlusion=1.5"], source="test")


def test_legacy_switch_reaches_codec_and_datasets():
    """data.legacy: the reference's targets (LegacyHeatmap, kept across the sigma decay) and
    datasets built for them at the run's heatmap size; off by default."""
    assert type(build_codec(_cfg())) is MSRAHeatmap
    assert dataset_kwargs(Config(), ANIMAL18)["legacy"] is False
    cfg = _cfg("data.legacy=true")
    codec = build_codec(cfg)
    assert isinstance(codec, LegacyHeatmap) and codec.heatmap_size == (16, 16)
    assert isinstance(codec_for_epoch(codec, 2, 0.5), LegacyHeatmap)
    kw = dataset_kwargs(cfg, ANIMAL18)
    assert (kw["legacy"], kw["heatmap_size"]) == (True, 16)


def test_target_occluders_take_train_frames_only(bench):
    from animalpose.datasets.formats.registry import build_dataset
    from animalpose.datasets.transforms.occlusion import Occluded, TextureBank
    from animalpose.train.build import OCCLUDER_FRAMES, occluder_frames

    overrides = [
        f"data.image_path={bench.root}",
        f"data.animal={bench.spec.animal}",
        f"data.seed={bench.spec.split_seed}",
        "data.inp_res=64",
        "data.out_res=16",
        "data.occlusion=1.0",
    ]
    cfg = apply_overrides(Config(), overrides, source="test")
    assert dataset_kwargs(cfg, ANIMAL18)["occluder_frames"] == ()  # crop textures: none read
    cfg = apply_overrides(cfg, ["data.occluder_source=target"], source="test")
    kw = dataset_kwargs(cfg, ANIMAL18)
    frames = kw["occluder_frames"]
    assert frames and frames == occluder_frames(
        cfg, {k: v for k, v in kw.items() if "occlu" not in k}
    )
    train_paths = set()
    for split in ("train", "valid", "test"):
        ds = build_dataset("real_animal", split=split, augment=False, **{**kw, "occlusion": 0})
        paths = {str(ds.image_path(i)) for i in range(len(ds))}
        if split == "train":
            train_paths = paths
            assert len(frames) == min(OCCLUDER_FRAMES, len(ds))
        assert set(frames) <= train_paths and (split == "train" or not set(frames) & paths)
    source = build_dataset("synthetic_animal_sp", split="train", **kw)
    assert isinstance(source.augmenter, Occluded)
    assert isinstance(source.augmenter.textures, TextureBank)
    assert len(source.augmenter.textures.images) == len(frames)
