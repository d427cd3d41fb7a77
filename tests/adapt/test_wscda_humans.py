"""WS-CDA's human source (adapt/human_source.py): people train the shared keypoints (L_H), the
species head trains beside the domain head, ``--w1`` changes the run, runs resume exactly, and
bad human data is refused by name."""

from __future__ import annotations

import signal

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from animalpose.adapt.cli import wscda_main
from animalpose.adapt.config import ADAPT_FLAGS, AdaptConfig
from animalpose.adapt.human_source import HumanBatches, build_human_source
from animalpose.adapt.trainer import AdaptTrainer
from animalpose.datasets.fileio import CRASH_ENV
from animalpose.datasets.generator.fixtures import make_coco_fixture
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.train.checkpoint import load_checkpoint
from animalpose.train.flag_parser import parse_config

#: WS-CDA alone (no pseudo-labels), seeded.
WSCDA = ("--no-pseudo-labels", "--adversarial", "--seed", "3")


@pytest.fixture(scope="module")
def humans(tmp_path_factory):
    root = tmp_path_factory.mktemp("humans")
    make_coco_fixture(root, people=2, images=3)
    return root


def _weights(out) -> dict[str, torch.Tensor]:
    return load_checkpoint(out / "checkpoint.pth.tar")["state_dict"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_wscda_with_people_trains_both_heads(adapt_argv, humans, tmp_path, capsys):
    out = tmp_path / "run"
    argv = adapt_argv(out, *WSCDA, "--num-epochs", "1", "--human-data", str(humans))
    assert wscda_main(argv) == 0
    text = capsys.readouterr().out
    assert f"human source {humans}: 6 human boxes train 12 of 18 keypoints" in text
    assert "left_wrist->left_front_knee" in text and "species head w1 1" in text
    events = EventAccumulator(str(out / "tensorboard")).Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss_human", "train/species_acc", "train/ddl_species"} <= tags
    assert {"train/domain_acc", "train/ddl"} <= tags
    for tag in ("train/species_acc", "train/domain_acc"):
        assert all(0.0 <= e.value <= 1.0 for e in events.Scalars(tag))
    assert load_checkpoint(out / "checkpoint.pth.tar")["config"]["adapt"]["human_data"] == str(
        humans
    )


def test_w1_changes_the_run_and_a_run_repeats_exactly(adapt_argv, humans, tmp_path):
    def run(name: str, w1: str) -> dict:
        argv = adapt_argv(tmp_path / name, *WSCDA, "--num-epochs", "1")
        assert wscda_main([*argv, "--human-data", str(humans), "--w1", w1]) == 0
        return _weights(tmp_path / name)

    base, again, other = run("w1", "1"), run("w1_again", "1"), run("w1_big", "50")
    assert _same(base, again)  # deterministic: the difference below is w1's
    assert not _same(base, other)


def test_the_human_stream_of_an_epoch_does_not_depend_on_earlier_epochs(humans, tmp_path):
    """What a resumed run needs: epoch e's human batches are the same whether or not the
    stream drew epochs before it (here 3 batches of 4 from 6 boxes: a restart inside)."""
    cfg = AdaptConfig()
    cfg.adapt.human_data = str(humans)
    cfg.data.inp_res, cfg.data.train_batch, cfg.data.workers = 64, 4, 0
    device = torch.device("cpu")

    def draws(stream: HumanBatches, epoch: int) -> list[torch.Tensor]:
        stream.start(epoch)
        return [next(stream)["keypoints"] for _ in range(3)]

    def stream() -> HumanBatches:
        return HumanBatches(build_human_source(cfg, ANIMAL18, seed=5), cfg, device, seed=5)

    first = stream()
    epoch0, epoch1 = draws(first, 0), draws(first, 1)
    fresh = draws(stream(), 1)
    assert all(torch.equal(a, b) for a, b in zip(epoch1, fresh, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(epoch0, epoch1, strict=True))


@pytest.mark.slow
def test_a_run_with_people_killed_after_epoch_1_resumes_exactly(
    adapt_argv, humans, run_script, tmp_path, monkeypatch
):
    flags = (*WSCDA, "--human-data", str(humans), "--num-epochs", "2")
    whole, out = tmp_path / "whole", tmp_path / "killed"
    assert wscda_main(adapt_argv(whole, *flags)) == 0
    with monkeypatch.context() as m:
        m.setenv(CRASH_ENV, "checkpoint:committed@1")
        m.setenv("OMP_NUM_THREADS", "1")
        done = run_script("adapt/wscda.py", *adapt_argv(out, *flags), timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr[-3000:]
    assert load_checkpoint(out / "checkpoint.pth.tar")["epoch"] == 1
    assert wscda_main(adapt_argv(out, *flags)) == 0
    assert _same(_weights(whole), _weights(out))


def test_people_are_not_animals_and_not_target(adapt_argv, humans, tmp_path, monkeypatch):
    cfg, _ = parse_config(
        adapt_argv(tmp_path / "step", *WSCDA, "--human-data", str(humans)),
        flags=ADAPT_FLAGS,
        config_type=AdaptConfig,
    )
    trainer = AdaptTrainer(cfg)
    assert isinstance(trainer.humans, HumanBatches)
    assert trainer.adversary.species_weight == 1.0
    seen = {}
    real = trainer.adversary.trunk_loss

    def spy(features, *, is_animal, is_target, progress):
        seen.update(animal=is_animal.tolist(), target=is_target.tolist(), rows=len(features))
        return real(features, is_animal=is_animal, is_target=is_target, progress=progress)

    monkeypatch.setattr(trainer.adversary, "trunk_loss", spy)
    trainer.before_epoch(0)
    trainer.net.train()
    trainer.humans.start(0)
    source, target = next(iter(trainer.train_loader)), next(iter(trainer.target_loader))
    human = next(trainer.humans)
    ns, nt, nh = (len(b["image"]) for b in (source, target, human))
    assert human["keypoints"].shape[1:] == (ANIMAL18.num_keypoints, 3)
    terms = trainer.joint_step(source, target, trainer.codec_at(0), 0.5, human=human)
    assert seen["rows"] == ns + nt + nh
    assert seen["animal"] == [1.0] * (ns + nt) + [0.0] * nh
    assert seen["target"] == [0.0] * ns + [1.0] * nt + [0.0] * nh
    assert {"loss_human", "species_acc", "ddl_species"} <= set(terms)
    assert torch.isfinite(terms["loss_human"]) and terms["loss_human"] > 0


def test_missing_human_data_is_refused_by_name(adapt_argv, tmp_path, capsys):
    missing = tmp_path / "no_people"
    argv = adapt_argv(tmp_path / "run", *WSCDA, "--human-data", str(missing))
    assert wscda_main(argv) == 2
    assert str(missing) in capsys.readouterr().err


def test_without_people_the_species_term_is_off(adapt_argv, tmp_path):
    cfg, _ = parse_config(
        adapt_argv(tmp_path / "none", *WSCDA, "--w1", "7"),
        flags=ADAPT_FLAGS,
        config_type=AdaptConfig,
    )
    trainer = AdaptTrainer(cfg)
    assert trainer.humans is None and trainer.adversary.species_weight == 0.0


def test_the_comparison_gives_wscda_humans_the_human_folder():
    from pathlib import Path

    from animalpose.adapt import compare

    kw = dict(init=Path("src.pth.tar"), epochs=3, round_every=1, overrides=[])
    with_people = compare.adapt_config(AdaptConfig(), "wscda_humans", human_data="H", **kw)
    plain = compare.adapt_config(AdaptConfig(), "wscda", human_data="H", **kw)
    assert with_people.adapt.human_data == "H" and plain.adapt.human_data == ""
    assert with_people.adapt.adversarial and not with_people.adapt.pseudo_labels
    args = compare._parser(report="adaptation", methods=("wscda",)).parse_args(
        ["--benchmark", "b", "--human-data", "people"]
    )
    assert args.human_data == "people"
