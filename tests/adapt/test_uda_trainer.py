"""UDA-Animal on the shared engine (adapt/trainer.py): a tiny run with every part on, its
teacher in the checkpoint and resumed exactly, and ``adapt.forward`` joint vs separate."""

from __future__ import annotations

import copy
import signal

import pytest
import torch
from torch.utils.data import default_collate

from animalpose.adapt.cli import uda_main
from animalpose.adapt.config import ADAPT_FLAGS, AdaptConfig
from animalpose.adapt.mean_teacher import WithPlainView, teacher_to_student
from animalpose.adapt.run_settings import round_path
from animalpose.adapt.target_data import PSEUDO
from animalpose.adapt.trainer import AdaptTrainer
from animalpose.datasets.fileio import CRASH_ENV
from animalpose.train.checkpoint import load_checkpoint
from animalpose.train.flag_parser import parse_config

#: A 2-epoch UDA run's flags (after ``adapt_argv``'s): round 0 only, every part on but the
#: discriminator. Its schedules count epochs as they are (``uda_paper_epochs`` 0), so that a
#: 1-epoch run extended to 2 trains as the 2-epoch run (scaled schedules, and the DANN ramp,
#: stretch with ``--num-epochs``).
UDA = (
    *("--num-epochs", "2", "--round-every", "1", "--seed", "4", "--views", "1"),
    *("--set", "adapt.uda_paper_epochs=0", "--set", "adapt.adversarial=false"),
)


def _same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_uda_run_keeps_round_zero_and_checkpoints_the_teacher(adapt_argv, tmp_path, capsys):
    whole = tmp_path / "whole"
    assert uda_main(adapt_argv(whole, *UDA)) == 0
    out = capsys.readouterr().out
    assert "adversarial off; UDA-Animal: labels of round 0 only, pseudo weight 15 -> 8" in out
    assert "distill (skipped: 1 stack)" in out
    assert round_path(whole, 0).is_file() and not round_path(whole, 1).exists()
    ckpt = load_checkpoint(whole / "checkpoint.pth.tar")
    teacher = ckpt["adapt"]["teacher"]
    assert int(teacher["steps"]) > 0
    student = ckpt["state_dict"]
    plain = {k.removeprefix("module."): v for k, v in student.items()}  # the reference's keys
    assert any(not torch.equal(teacher[f"model.{k}"], v) for k, v in plain.items())
    # A run stopped after epoch 1 and continued ends where the uninterrupted one ends,
    # teacher included.
    part = tmp_path / "part"
    assert uda_main(adapt_argv(part, *UDA, "--num-epochs", "1")) == 0
    assert uda_main(adapt_argv(part, *UDA)) == 0
    other = load_checkpoint(part / "checkpoint.pth.tar")
    _same_state(other["state_dict"], student)
    _same_state(other["adapt"]["teacher"], teacher)
    # Continued with another setting: refused by name.
    assert uda_main(adapt_argv(part, *UDA, "--set", "adapt.mixup=false")) == 2
    assert "adapt.mixup" in capsys.readouterr().err


def _trainer(adapt_argv, out, *extra) -> AdaptTrainer:
    cfg, _ = parse_config(adapt_argv(out, *extra), flags=ADAPT_FLAGS, config_type=AdaptConfig)
    return AdaptTrainer(cfg)


@pytest.mark.parametrize("forward", ["joint", "separate"])
def test_forward_modes_give_finite_losses(adapt_argv, tmp_path, forward):
    trainer = _trainer(
        adapt_argv, tmp_path / forward, "--forward", forward, "--set", "adapt.teacher=true"
    )
    trainer.before_epoch(0)
    trainer.net.train()
    source = next(iter(trainer.train_loader))
    target = next(iter(trainer.target_loader))
    terms = trainer.joint_step(source, target, trainer.codec_at(0), 0.5, key=(0, 0))
    assert all(torch.isfinite(v).all() for k, v in terms.items() if not k.startswith("_"))
    assert terms["loss_teacher"] > 0


def test_separate_forward_normalises_each_domain_by_itself(adapt_argv, tmp_path):
    """BatchNorm running statistics after one step: two passes (one per domain) differ from
    one pass over both, and equal two explicit per-domain passes."""
    trainer = _trainer(adapt_argv, tmp_path / "bn", "--no-pseudo-labels", "--adversarial")
    model = trainer.model
    start = copy.deepcopy(model.state_dict())
    xs = torch.randn(4, 3, 64, 64)
    xt = torch.randn(4, 3, 64, 64) * 3 + 1  # another domain: other statistics

    def stats(forward: str):
        model.load_state_dict(start)
        model.train()
        trainer.cfg.adapt.forward = forward
        with torch.no_grad():
            outputs, features = trainer.forward_domains([xs, xt], True)
        assert outputs[-1].shape[0] == 8 and features.shape[0] == 8
        return {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}

    joint, separate = stats("joint"), stats("separate")
    assert any(not torch.allclose(joint[k], separate[k]) for k in joint)
    model.load_state_dict(start)
    with torch.no_grad():
        model(xs)
        model(xt)
    _same_state({k: v for k, v in model.state_dict().items() if k in separate}, separate)


def test_mixup_and_small_loss_steps_are_seeded(adapt_argv, tmp_path):
    trainer = _trainer(
        adapt_argv,
        tmp_path / "mix",
        *("--set", "adapt.mixup=true", "--set", "adapt.small_loss=true"),
        *("--set", "adapt.uda_paper_epochs=0"),
    )
    trainer.before_epoch(0)
    source = next(iter(trainer.train_loader))
    samples = [trainer.target_set[i] for i in range(4)]
    for s in samples:
        s["meta"]["labelled"] = PSEUDO
    target = default_collate(samples)
    start = copy.deepcopy(trainer.model.state_dict())

    def step(progress, key):
        trainer.model.load_state_dict(start)
        trainer.net.train()
        return trainer.joint_step(source, target, trainer.codec_at(0), progress, key=key)

    a, b = step(0.0, (0, 1)), step(0.0, (0, 1))
    assert a["loss_target_pseudo"] == b["loss_target_pseudo"] > 0
    # Late in a 60-epoch run (uda_paper_epochs 0: epochs unscaled) only 9 of 18 keypoints count.
    late = step(0.9, (0, 1))
    assert 0 < late["loss_target_pseudo"] < a["loss_target_pseudo"]


def test_da_block_reaches_the_discriminator(adapt_argv, tmp_path):
    """``--da-block N``: WS-CDA's domain-adaptation block of N layers before the discriminator."""
    trainer = _trainer(adapt_argv, tmp_path / "da", "--adversarial", "--da-block", "2")
    with_block = trainer.adversary.discriminator.state_dict()
    plain = _trainer(adapt_argv, tmp_path / "plain", "--adversarial").adversary
    assert any(k.startswith("block.") for k in with_block)
    assert not any(k.startswith("block.") for k in plain.discriminator.state_dict())


def test_teacher_warp_maps_plain_crop_keypoints_onto_the_augmented_crop(adapt_argv, tmp_path):
    """On the real target samples: heatmaps of the plain crop's annotations, warped into the
    augmented crop (its scale, rotation, flip and channel swap), decode to the augmented
    sample's keypoints."""
    trainer = _trainer(adapt_argv, tmp_path / "warp", "--set", "adapt.teacher=true")
    codec = trainer.codec
    mix = WithPlainView(trainer.target_set, trainer.label_set)
    batch = default_collate([mix[i] for i in range(len(mix))])
    plain = default_collate([trainer.label_set[i] for i in range(len(mix))])
    assert batch["meta"]["flipped"].any()  # the flip path is exercised
    heatmaps, _ = codec.encode(plain["keypoints"][..., :2], plain["keypoints"][..., 2])
    warped = teacher_to_student(
        heatmaps,
        batch["meta"]["plain_matrix"],
        batch["meta"]["matrix"],
        batch["meta"]["flipped"],
        torch.as_tensor(trainer.spec.flip_index),
        codec.input_size,
    )
    got, _ = codec.decode(warped)
    kp = batch["keypoints"]
    inside = (kp[..., 0] > 8) & (kp[..., 0] < 56) & (kp[..., 1] > 8) & (kp[..., 1] < 56)
    both = (kp[..., 2] > 0) & inside & (warped.flatten(2).amax(2) > 0.5)
    assert both.sum() > 20
    err = (got[..., :2] - kp[..., :2]).norm(dim=-1)[both]
    assert err.median() < 2.0 and err.max() < 6.0  # crop pixels (stride 4 heatmaps)


@pytest.mark.slow
def test_a_uda_run_killed_after_its_first_checkpoint_resumes_to_the_same_result(
    adapt_argv, run_script, tmp_path, monkeypatch
):
    """SIGKILL right after epoch 1's checkpoint commit, then the same command again: the
    weights, the teacher's EMA weights and the discriminator equal an uninterrupted run's
    (the scaled schedules and the DANN ramp on: the command does not change)."""
    flags = (*UDA[:-4], "--set", "adapt.adversarial=true")
    whole, out = tmp_path / "whole", tmp_path / "killed"
    assert uda_main(adapt_argv(whole, *flags)) == 0
    with monkeypatch.context() as m:
        m.setenv(CRASH_ENV, "checkpoint:committed@1")
        m.setenv("OMP_NUM_THREADS", "1")
        m.setenv("MKL_NUM_THREADS", "1")
        done = run_script("adapt/uda_animal.py", *adapt_argv(out, *flags), timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert load_checkpoint(out / "checkpoint.pth.tar")["epoch"] == 1
    assert uda_main(adapt_argv(out, *flags)) == 0
    a, b = (
        load_checkpoint(whole / "checkpoint.pth.tar"),
        load_checkpoint(out / "checkpoint.pth.tar"),
    )
    _same_state(a["state_dict"], b["state_dict"])
    _same_state(a["adapt"]["teacher"], b["adapt"]["teacher"])
    disc = [
        {k: v for k, v in c["adapt"]["adversary"].items() if "discriminator" in k} for c in (a, b)
    ]
    _same_state(*disc)


@pytest.mark.slow
def test_torchrun_two_processes_run_uda_with_a_forward_per_domain(adapt_argv, run_script, tmp_path):
    """DDP (gloo): two forward passes before one backward, the teacher updated on each rank."""
    out = tmp_path / "ddp"
    argv = adapt_argv(out, "--num-epochs", "1", "--forward", "separate", "--views", "1")
    result = run_script("adapt/uda_animal.py", *argv, processes=2, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = load_checkpoint(out / "checkpoint.pth.tar")
    assert ckpt["epoch"] == 1 and int(ckpt["adapt"]["teacher"]["steps"]) > 0
