"""Tiny end-to-end adaptation runs on CPU: every artefact, resume inside a round, WS-CDA, PPLO."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from animalpose.adapt.cli import ccssl_main, wscda_main
from animalpose.adapt.pseudo_label_store import PseudoLabels
from animalpose.adapt.run_settings import round_path
from animalpose.adapt.selection import CCSSL_ROUND_EPOCHS, ccssl_keep_share
from animalpose.datasets.formats.tigdog import load_tigdog, tigdog_split
from animalpose.train.checkpoint import load_checkpoint
from animalpose.train.cli import train_main


def _weights(path):
    return load_checkpoint(path)["state_dict"]


def _scalars(folder) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return set(acc.Tags()["scalars"])


def test_ccssl_end_to_end_writes_every_artefact(tiny, adapt_argv, tmp_path):
    out = tmp_path / "ccssl"
    assert ccssl_main(adapt_argv(out, "--num-epochs", "2", "--round-every", "1")) == 0
    names = {p.name for p in out.iterdir()}
    assert names >= {
        "checkpoint.pth.tar",
        "model_best.pth.tar",
        "config.yaml",
        "log.txt",
        "preds.mat",
        "pseudo_labels",
        "tensorboard",
    }
    assert len((out / "log.txt").read_text().splitlines()) == 1 + 2
    train = tigdog_split(
        load_tigdog(tiny.root, "dog"), "train", seed=tiny.record["spec"]["split_seed"]
    )
    for epoch in (0, 1):  # round_every 1: one round per epoch, the curriculum's share by round
        labels = PseudoLabels.load(round_path(out, epoch))
        assert labels.round == epoch and labels.epoch == epoch
        assert labels.keep_share == pytest.approx(ccssl_keep_share(CCSSL_ROUND_EPOCHS * epoch))
        assert labels.keypoints.shape == (len(train), 18, 2)
        assert np.array_equal(labels.frames, load_tigdog(tiny.root, "dog").frames[train])
        share = labels.selected.sum() / np.isfinite(labels.confidence).sum()
        assert share <= labels.keep_share + 1e-6
        assert np.all(labels.confidence[labels.selected] > labels.threshold)
    ckpt = load_checkpoint(out / "checkpoint.pth.tar")
    assert ckpt["epoch"] == 2 and ckpt["adapt"]["round"] == 1
    assert ckpt["config"]["adapt"]["pseudo_labels"] is True
    tags = _scalars(out / "tensorboard")
    assert {
        "train/loss_source",
        "train/loss_target",
        "pseudo/threshold",
        "epoch/val_pck_legacy",
    } <= tags
    # The adapted weights moved away from the source model's.
    src, adapted = _weights(tiny.source), _weights(out / "checkpoint.pth.tar")
    assert any(not torch.equal(src[k], adapted[k]) for k in src if k.endswith("weight"))


def test_a_killed_run_resumes_inside_its_round(tiny, adapt_argv, tmp_path):
    """Stopping after epoch 1 of a 2-epoch round and running again ends where an uninterrupted
    run ends, with the round's stored labels reused, not regenerated."""
    flags = ("--round-every", "2", "--seed", "4")
    whole = tmp_path / "whole"
    assert ccssl_main(adapt_argv(whole, "--num-epochs", "2", *flags)) == 0
    part = tmp_path / "part"
    assert ccssl_main(adapt_argv(part, "--num-epochs", "1", *flags)) == 0
    first = round_path(part, 0)
    stamp = first.stat().st_mtime_ns
    assert ccssl_main(adapt_argv(part, "--num-epochs", "2", *flags)) == 0
    assert first.stat().st_mtime_ns == stamp  # reused, not regenerated
    assert not round_path(part, 1).exists()
    assert load_checkpoint(part / "checkpoint.pth.tar")["epoch"] == 2
    assert len((part / "log.txt").read_text().splitlines()) == 1 + 2  # appended, not restarted
    a, b = _weights(whole / "checkpoint.pth.tar"), _weights(part / "checkpoint.pth.tar")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)


def test_a_continued_round_whose_file_was_replaced_is_refused(tiny, adapt_argv, tmp_path, capsys):
    """Inside a round the weights that made it are gone, so a round file another run replaced
    cannot be made again: the run stops naming the file instead of training on it."""
    flags = ("--round-every", "2", "--seed", "4")
    out = tmp_path / "part"
    assert ccssl_main(adapt_argv(out, "--num-epochs", "1", *flags)) == 0
    path = round_path(out, 0)
    labels = PseudoLabels.load(path)
    assert labels.settings["run"]["seed"] == 4 and len(labels.weights) == 64
    assert load_checkpoint(out / "checkpoint.pth.tar")["adapt"]["round_weights"] == labels.weights
    dataclasses.replace(labels, weights="0" * 64).save(path)
    before = (out / "checkpoint.pth.tar").read_bytes()
    assert ccssl_main(adapt_argv(out, "--num-epochs", "2", *flags)) == 2
    err = capsys.readouterr().err
    assert f"{path}: not the pseudo-labels this run trained on (made from other weights" in err
    assert (out / "checkpoint.pth.tar").read_bytes() == before


@pytest.mark.parametrize("mode", ["grl", "alternating"])
def test_wscda_logs_the_discriminator_and_saves_its_state(tiny, adapt_argv, tmp_path, mode):
    out = tmp_path / mode
    assert wscda_main(adapt_argv(out, "--num-epochs", "1", "--adversary", mode)) == 0
    assert not (out / "pseudo_labels").exists()  # WS-CDA alone: no rounds
    ckpt = load_checkpoint(out / "checkpoint.pth.tar")
    assert ckpt["adapt"]["adversary"] is not None
    assert {"train/ddl", "train/domain_acc", "train/loss_adversarial"} <= _scalars(
        out / "tensorboard"
    )
    # The run continues: a second call with more epochs restores the discriminator too.
    assert wscda_main(adapt_argv(out, "--num-epochs", "2", "--adversary", mode)) == 0
    assert load_checkpoint(out / "checkpoint.pth.tar")["epoch"] == 2


def test_wscda_from_an_lpn_source_sizes_the_discriminator_by_its_features(
    tiny, tiny_dog_flags, tmp_path
):
    """WS-CDA from a model whose features are not ``model.channels`` wide (LPN: 256, the
    hourglass width here 16) trains, and its discriminator reads 256 channels."""
    common = ["--image-path", str(tiny.root), *tiny_dog_flags, "-a", "lpn", "--depth", "50"]
    source = tmp_path / "lpn_source"
    train = ["--dataset", "synthetic_animal_sp", "--epochs", "1", "-c", str(source)]
    assert train_main([*common, *train]) == 0
    out = tmp_path / "wscda"
    resume = ["--resume", str(source / "model_best.pth.tar"), "-c", str(out)]
    flags = ["--pseudo-workers", "0", "--num-epochs", "1", "--set", "adapt.pseudo_batch=4"]
    assert wscda_main([*common, *resume, *flags]) == 0
    adversary = load_checkpoint(out / "checkpoint.pth.tar")["adapt"]["adversary"]
    assert adversary["discriminator.conv1.weight"].shape[1] == 256


def test_wscda_pplo_and_few_labels(tiny, adapt_argv, tmp_path):
    out = tmp_path / "pplo"
    argv = adapt_argv(
        out,
        "--num-epochs",
        "2",
        "--round-every",
        "1",
        "--target-labels",
        "4",
        "--set",
        "adapt.pseudo_labels=true",
        "adapt.selection=pplo",
        "adapt.pplo_shares=[0.3,0.6]",
        "adapt.views=0",
        "adapt.temporal=false",
    )
    assert wscda_main(argv) == 0
    shares = [PseudoLabels.load(round_path(out, r)).keep_share for r in (0, 1)]
    assert shares == pytest.approx([0.3, 0.6])
    assert not PseudoLabels.load(round_path(out, 1)).substituted.any()  # no temporal step


def test_a_checkpoint_folder_of_another_kind_is_refused(tiny, adapt_argv, tmp_path, capsys):
    out = tmp_path / "source_copy"
    out.mkdir()
    (out / "checkpoint.pth.tar").write_bytes(tiny.source.read_bytes())
    assert ccssl_main(adapt_argv(out, "--num-epochs", "1")) == 2
    assert "not an adaptation checkpoint" in capsys.readouterr().err


def test_ccssl_r_starts_from_the_adapted_weights_with_a_fresh_optimiser(tiny, tiny_flags, tmp_path):
    """CC-SSL-R (docs/adaptation.md): train/train.py --pretrained loads weights only."""
    from animalpose.train.flag_parser import parse_config
    from animalpose.train.trainer import Trainer

    argv = ["--image-path", str(tiny.root), "--animal", "dog", "--dataset", "real_animal_sp"]
    argv += ["--pretrained", str(tiny.source), "-c", str(tmp_path / "r"), *tiny_flags]
    cfg, _ = parse_config(argv)
    trainer = Trainer(cfg)
    assert trainer.start_epoch == 0 and not trainer.optimizer.state
    source = _weights(tiny.source)
    for key, value in trainer.model.state_dict().items():
        torch.testing.assert_close(value, source["module." + key], rtol=0, atol=0)


def test_a_folder_of_a_run_with_other_settings_is_refused(tiny, adapt_argv, tmp_path, capsys):
    """Continuing is for the same run: more epochs or another device are fine, another learning
    rate is another run and must not be stitched onto this one."""
    out = tmp_path / "run"
    assert wscda_main(adapt_argv(out, "--num-epochs", "1")) == 0
    before = (out / "checkpoint.pth.tar").read_bytes()
    assert wscda_main(adapt_argv(out, "--num-epochs", "1", "--learning-rate", "5e-4")) == 2
    err = capsys.readouterr().err
    assert "holds an adaptation run with other settings (optim.lr: 0.001 there, 0.0005 now)" in err
    assert (out / "checkpoint.pth.tar").read_bytes() == before  # nothing overwritten
