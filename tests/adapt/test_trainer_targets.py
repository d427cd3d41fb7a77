"""Issue 11's adaptation fixes in whole runs: CC-SSL's curriculum by round (old folders keep
theirs), and the labelled target frames' own weight beside gamma_'s pseudo-labels."""

from __future__ import annotations

import copy

import pytest
import torch
from torch.utils.data import default_collate

from animalpose.adapt.cli import ccssl_main
from animalpose.adapt.config import ADAPT_FLAGS, AdaptConfig
from animalpose.adapt.pseudo_label_store import PseudoLabels
from animalpose.adapt.run_settings import round_path
from animalpose.adapt.selection import select_top_share
from animalpose.adapt.target_data import ANNOTATED, PSEUDO
from animalpose.train.checkpoint import CHECKPOINT_NAME, load_checkpoint
from animalpose.train.flag_parser import parse_config


def _as_before_the_keys(out) -> None:
    """Rewrite ``out``'s checkpoint and round files as a run saved before ``curriculum_by`` and
    ``labelled_weight`` existed (and with |alpha|, as configs then held)."""

    def strip(config: dict) -> None:
        for key in ("curriculum_by", "labelled_weight"):
            config["adapt"].pop(key)
        config["adapt"]["alpha"] = abs(config["adapt"]["alpha"])

    path = out / CHECKPOINT_NAME
    ckpt = dict(load_checkpoint(path))
    strip(ckpt["config"])
    torch.save(ckpt, path)
    for file in (out / "pseudo_labels").glob("round_*.npz"):
        labels = PseudoLabels.load(file)
        strip(labels.settings)
        labels.save(file)


def test_rounds_keep_the_curriculum_by_round_and_record_it(tiny, adapt_argv, tmp_path, capsys):
    out = tmp_path / "by_round"
    assert ccssl_main(adapt_argv(out, "--num-epochs", "2", "--round-every", "1")) == 0
    shares = [PseudoLabels.load(round_path(out, r)).keep_share for r in (0, 1)]
    assert shares == pytest.approx([0.2, 0.4])  # by epoch: 0.2, 0.22
    assert PseudoLabels.load(round_path(out, 1)).settings["adapt"]["curriculum_by"] == "round"
    assert "kept 40% (ccssl by round)" in capsys.readouterr().out
    by_epoch = tmp_path / "by_epoch"
    argv = adapt_argv(
        by_epoch, "--num-epochs", "2", "--round-every", "1", "--curriculum-by", "epoch"
    )
    assert ccssl_main(argv) == 0
    shares = [PseudoLabels.load(round_path(by_epoch, r)).keep_share for r in (0, 1)]
    assert shares == pytest.approx([0.2, 0.22])
    assert "(ccssl by epoch)" in capsys.readouterr().out


def test_a_folder_from_before_curriculum_by_continues_as_it_ran(tiny, adapt_argv, tmp_path, capsys):
    """An old run keyed its curriculum by epoch: with 10-epoch rounds that is the same schedule
    and the new default continues it; with other rounds only --curriculum-by epoch does."""
    ten = tmp_path / "ten"
    assert ccssl_main(adapt_argv(ten, "--num-epochs", "1", "--round-every", "10")) == 0
    _as_before_the_keys(ten)
    stamp = round_path(ten, 0).stat().st_mtime_ns
    assert ccssl_main(adapt_argv(ten, "--num-epochs", "2", "--round-every", "10")) == 0
    assert round_path(ten, 0).stat().st_mtime_ns == stamp  # its round reused, not redone
    assert load_checkpoint(ten / CHECKPOINT_NAME)["epoch"] == 2

    two = tmp_path / "two"
    assert ccssl_main(adapt_argv(two, "--num-epochs", "1", "--round-every", "2")) == 0
    _as_before_the_keys(two)
    capsys.readouterr()
    assert ccssl_main(adapt_argv(two, "--num-epochs", "2", "--round-every", "2")) == 2
    assert "adapt.curriculum_by: 'epoch' there, 'round' now" in capsys.readouterr().err
    argv = adapt_argv(two, "--num-epochs", "2", "--round-every", "2", "--curriculum-by", "epoch")
    assert ccssl_main(argv) == 0
    assert load_checkpoint(two / CHECKPOINT_NAME)["epoch"] == 2


def test_each_target_weight_scales_only_its_frames(tiny, adapt_argv, tmp_path):
    from animalpose.adapt.trainer import AdaptTrainer

    argv = adapt_argv(tmp_path / "w", "--num-epochs", "1", "--target-labels", "2")
    cfg, _ = parse_config([*argv, "--no-pseudo-labels"], flags=ADAPT_FLAGS, config_type=AdaptConfig)
    trainer = AdaptTrainer(cfg)
    trainer.net.train()
    source = next(iter(trainer.train_loader))
    samples = [trainer.target_set[i] for i in range(4)]  # all annotated: every loss term > 0
    for sample, kind in zip(samples, (ANNOTATED, ANNOTATED, PSEUDO, PSEUDO), strict=True):
        sample["meta"]["labelled"] = kind
    target = default_collate(samples)
    weights = copy.deepcopy(trainer.model.state_dict())

    def terms(gamma: float, labelled: float) -> tuple[float, float]:
        trainer.model.load_state_dict(weights)
        trainer.cfg.adapt.target_weight, trainer.cfg.adapt.labelled_weight = gamma, labelled
        t = trainer.joint_step(source, target, trainer.codec_at(0), 0.0)
        total = t["loss_target"].item()
        pseudo, annotated = t["loss_target_pseudo"].item(), t["loss_target_labelled"].item()
        assert total == pytest.approx(pseudo + annotated)
        return pseudo, annotated

    pseudo, annotated = terms(10.0, 1.0)
    assert pseudo > 0 and annotated > 0
    assert terms(20.0, 1.0) == pytest.approx((2 * pseudo, annotated))
    assert terms(10.0, 3.0) == pytest.approx((pseudo, 3 * annotated))
    # The same weight for both is the old rule: gamma_ x the whole batch's loss.
    both = terms(10.0, 10.0)
    assert both == pytest.approx((pseudo, 10 * annotated))


@pytest.mark.parametrize("mode", ["kept", "all"])
def test_the_oracle_filter_trains_only_on_right_labels(tiny, adapt_argv, tmp_path, capsys, mode):
    out = tmp_path / mode
    argv = adapt_argv(out, "--num-epochs", "1", "--set", f"adapt.oracle_filter={mode}")
    assert ccssl_main(argv) == 0
    labels = PseudoLabels.load(round_path(out, 0))
    assert labels.settings["adapt"]["oracle_filter"] == mode
    right = labels.hits == 1
    assert right.any()
    if mode == "all":  # every right label, whatever its confidence
        assert (labels.selected == right).all()
    else:  # the curriculum's top 20 % first, then only the right ones of them
        top, _ = select_top_share(labels.confidence, 0.2)
        assert (labels.selected == (top & right)).all()
    assert f"right ones only ({mode})" in capsys.readouterr().out


def test_the_oracle_filter_needs_pseudo_labels(tiny, adapt_argv, tmp_path, capsys):
    argv = adapt_argv(
        tmp_path / "x", "--no-pseudo-labels", "--adversarial", "--set", "adapt.oracle_filter=all"
    )
    with pytest.raises(SystemExit):
        ccssl_main(argv)
    err = capsys.readouterr().err
    assert "adapt.oracle_filter: 'all' filters pseudo-labels: turn on adapt.pseudo_labels" in err


def test_finetune_labels_trains_every_target_frame_with_its_annotations(tiny, adapt_argv, tmp_path):
    """The ``finetune_labels`` bound: ``ALL_FRAMES`` labels the whole split, nothing else adapts."""
    from animalpose.adapt import compare
    from animalpose.adapt.trainer import AdaptTrainer

    cfg, _ = parse_config(adapt_argv(tmp_path / "f"), flags=ADAPT_FLAGS, config_type=AdaptConfig)
    bound = compare.adapt_config(
        cfg, "finetune_labels", init=tiny.source, epochs=1, round_every=1, overrides=[]
    )
    trainer = AdaptTrainer(bound)
    assert trainer.labelled.all() and trainer.labels is None
    kinds = [int(k) for batch in trainer._target_loader() for k in batch["meta"]["labelled"]]
    assert kinds == [ANNOTATED] * len(trainer.target_set)
    before = copy.deepcopy(trainer.model.state_dict())
    trainer.fit()
    after = trainer.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert not (tmp_path / "f" / "pseudo_labels").exists()  # no pseudo-label round ran
