"""UDA-Animal and the ablations in the comparison (adapt/compare_methods.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from animalpose.adapt import compare
from animalpose.adapt.compare_methods import ADAPTATION_METHODS, METHODS
from animalpose.adapt.config import ADAPT_FLAGS, AdaptConfig
from animalpose.train.checkpoint import load_checkpoint

NEW = (
    "uda",
    "wscda_uda",
    "ccssl_epoch",
    "ccssl_separate",
    "wscda_block",
    "uda_no_teacher",
    "uda_no_mixup",
    "uda_right_kept",
    "uda_right_all",
    "finetune_labels",
    "wscda_few",
    "finetune_few",
)


def test_uda_follows_ccssl_wscda_in_the_table():
    assert ADAPTATION_METHODS == ("source", "ccssl", "wscda", "ccssl_wscda", "uda", "oracle")
    assert METHODS["wscda_uda"].start == "wscda" and METHODS["uda"].start == "source"


@pytest.mark.parametrize("method", NEW)
def test_each_new_method_is_a_valid_config_changing_one_thing(method):
    cfg = compare.adapt_config(
        AdaptConfig(), method, init=Path("src.pth.tar"), epochs=3, round_every=1, overrides=[]
    )
    a = cfg.adapt
    changed = {
        "ccssl_epoch": a.curriculum_by == "epoch" and a.forward == "joint",
        "ccssl_separate": a.forward == "separate" and a.curriculum_by == "round",
        "wscda_block": a.da_block == 2 and a.adversarial and not a.pseudo_labels,
        "uda_no_teacher": not a.teacher and a.mixup and a.small_loss,
        "uda_no_mixup": a.teacher and not a.mixup and a.small_loss,
        "uda": a.teacher and a.mixup and a.distill and not a.relabel,
        "wscda_uda": a.teacher and a.adversarial and a.pplo_shares == [0.4],
        "uda_right_kept": a.teacher and a.mixup and a.oracle_filter == "kept",
        "uda_right_all": a.teacher and a.mixup and a.oracle_filter == "all",
        "finetune_labels": not (a.pseudo_labels or a.adversarial or a.teacher)
        and a.target_labels >= 10**6,
        "wscda_few": a.adversarial and not a.pseudo_labels and a.target_labels == 60,
        "finetune_few": not (a.pseudo_labels or a.adversarial) and a.target_labels == 60,
    }
    few = {"wscda_few", "finetune_few"}
    assert (a.labelled_weight == 10.0) == (method in few)
    others = {"uda_right_kept", "uda_right_all"}
    assert (a.oracle_filter != "none") == (method in others)
    assert changed[method]


@pytest.mark.slow
def test_uda_after_wscda_end_to_end(bench, compare_argv, tmp_path):
    out = tmp_path / "table"
    methods = ("source", "wscda", "uda", "wscda_uda")
    argv = compare_argv(
        out,
        *("--methods", *methods, "--adapt-epochs", "2"),
        *("--adapt-set", "adapt.pseudo_workers=0", "adapt.pseudo_batch=4"),
    )
    assert compare.main(argv, report="adaptation", methods=ADAPTATION_METHODS) == 0
    doc = json.loads((out / "adaptation.json").read_text())
    for method in ("uda", "wscda_uda"):
        assert [r["round"] for r in doc["pseudo_label_rounds"][method]["0"]] == [0]  # once
        ckpt = load_checkpoint(out / method / "seed0" / "checkpoint.pth.tar")
        assert ckpt["adapt"]["teacher"] is not None
        start = METHODS[method].start
        assert ckpt["config"]["run"]["pretrained"] == str(
            out / start / "seed0" / "model_best.pth.tar"
        )


def test_the_preset_config_holds_the_uda_settings():
    """configs/uda_animal.yaml is ``UDA_SETTINGS`` plus the paper's other values."""
    from animalpose.adapt.uda import UDA_SETTINGS
    from animalpose.train.flag_parser import parse_config

    repo = Path(__file__).resolve().parents[2]
    cfg, _ = parse_config(
        ["--config", str(repo / "configs" / "uda_animal.yaml")],
        flags=ADAPT_FLAGS,
        config_type=AdaptConfig,
    )
    for key, value in UDA_SETTINGS:
        assert getattr(cfg.adapt, key) == value, key
    assert cfg.optim.epochs == 80 and cfg.adapt.target_weight_end == 8.0
