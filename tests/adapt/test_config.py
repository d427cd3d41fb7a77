"""The adaptation config and flags: the reference's CCSSL.py names, defaults, method presets."""

from __future__ import annotations

import pytest

from animalpose.adapt.cli import WSCDAConfig
from animalpose.adapt.config import ADAPT_FLAGS, AdaptConfig, AdaptSection
from animalpose.train.config import ConfigError, load_config
from animalpose.train.flags import parse_config

#: The reference's CCSSL/options/train_options.py flags we honour, with its defaults.
REFERENCE = {
    "--animal": "horse",
    "--source": "synthetic_animal_sp",
    "--batch-size": 6,
    "--learning-rate": 2.5e-4,
    "--num-epochs": 60,
    "--gamma_": 10.0,
    "--checkpoint": "checkpoint",
    "--resume": "",
    "--image-path": "./animal_data",
    "--inp-res": 256,
    "--out-res": 64,
    "--sigma": 1.0,
    "--stacks": 4,
    "--blocks": 1,
}


def _get(cfg, dotted):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def test_reference_flags_and_defaults():
    by_name = {name: flag for flag in ADAPT_FLAGS for name in flag.names}
    cfg, _ = parse_config([], flags=ADAPT_FLAGS, config_type=AdaptConfig)
    for name, default in REFERENCE.items():
        assert name in by_name, name
        assert _get(cfg, by_name[name].field) == default, name
    assert cfg.optim.solver == "rms" and cfg.optim.schedule == []  # constant lr, as CCSSL.py
    assert cfg.adapt.pseudo_labels and not cfg.adapt.adversarial
    assert (cfg.adapt.round_every, cfg.adapt.views, cfg.adapt.selection) == (10, 4, "ccssl")


def test_option_strings_are_unique_and_fields_exist():
    names = [name for flag in ADAPT_FLAGS for name in flag.names]
    assert len(names) == len(set(names))
    cfg = AdaptConfig()
    for flag in ADAPT_FLAGS:
        _get(cfg, flag.field)  # raises AttributeError for a stale field


def test_flags_set_their_fields():
    argv = [
        "--source",
        "synthetic_animal",
        "--target-ssl",
        "real_animal_crop",
        "--target",
        "real_animal_sp",
        "--batch-size",
        "8",
        "--learning-rate",
        "1e-3",
        "--num-epochs",
        "5",
        "--gamma_",
        "3",
        "--resume",
        "src.pth.tar",
        "--adversarial",
        "--adversary",
        "alternating",
        "--target-labels",
        "40",
        "--no-temporal",
        "--views",
        "2",
    ]
    cfg, _ = parse_config(argv, flags=ADAPT_FLAGS, config_type=AdaptConfig)
    assert cfg.data.dataset == "synthetic_animal" and cfg.data.train_batch == 8
    assert cfg.adapt.target_ssl == "real_animal_crop" and cfg.adapt.target == "real_animal_sp"
    assert cfg.optim.lr == pytest.approx(1e-3) and cfg.optim.epochs == 5
    assert cfg.adapt.target_weight == 3.0 and cfg.run.pretrained == "src.pth.tar"
    assert cfg.run.resume == ""  # --resume is the initial weights here, not a training resume
    assert cfg.adapt.adversarial and cfg.adapt.adversary == "alternating"
    assert cfg.adapt.target_labels == 40 and not cfg.adapt.temporal and cfg.adapt.views == 2


def test_wscda_defaults_and_presets(tmp_path):
    cfg, _ = parse_config([], flags=ADAPT_FLAGS, config_type=WSCDAConfig)
    assert cfg.adapt.adversarial and not cfg.adapt.pseudo_labels
    repo = __import__("pathlib").Path(__file__).resolve().parents[2] / "configs"
    pplo = load_config(repo / "wscda_pplo.yaml", config_type=AdaptConfig)
    assert pplo.adapt.selection == "pplo" and pplo.adapt.views == 0 and pplo.adapt.adversarial
    both = load_config(repo / "ccssl_wscda.yaml", config_type=AdaptConfig)
    assert both.adapt.pseudo_labels and both.adapt.adversarial and both.adapt.temporal


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"pseudo_labels": False, "adversarial": False}, "pseudo_labels"),  # nothing adapts
        ({"human_data": "/coco"}, "human_data"),
        ({"pplo_shares": [0.5, 1.5]}, "pplo_shares"),
        ({"target": "synthetic_animal"}, "target"),
        ({"round_every": 0}, "round_every"),
    ],
)
def test_bad_adapt_values_name_the_key(values, key):
    with pytest.raises(ConfigError) as info:
        AdaptSection(**values)
    assert info.value.key == key


def test_source_must_not_be_a_target_set():
    with pytest.raises(SystemExit):
        parse_config(["--source", "real_animal_sp"], flags=ADAPT_FLAGS, config_type=AdaptConfig)
