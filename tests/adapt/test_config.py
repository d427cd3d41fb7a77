"""The adaptation config and flags: the reference's CCSSL.py names, defaults, method presets."""

from __future__ import annotations

import pytest

from animalpose.adapt.cli import WSCDAConfig
from animalpose.adapt.config import ADAPT_FLAGS, AdaptConfig, AdaptSection
from animalpose.adapt.run_settings import settings_changed
from animalpose.train.config import ConfigError
from animalpose.train.config_io import config_from_dict, config_to_dict, load_config
from animalpose.train.flag_parser import parse_config
from animalpose.train.flags import REFERENCE_ONLY, TRAIN_FLAGS

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
        if flag.field != REFERENCE_ONLY:
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


#: A valid non-default value for the field of every flag of our own (not a training flag).
OWN_ALTERNATES = {
    "data.dataset": "synthetic_animal",
    "adapt.target_ssl": "real_animal_crop",
    "adapt.target": "real_animal_sp",
    "data.train_batch": 8,
    "optim.lr": 1e-3,
    "optim.epochs": 5,
    "adapt.target_weight": 3.0,
    "run.pretrained": "src.pth.tar",
    "run.log_every": 10,
    "adapt.target_labels": 40,
    "adapt.labelled_weight": 2.0,
    "adapt.pseudo_labels": False,
    "adapt.round_every": 5,
    "adapt.selection": "pplo",
    "adapt.curriculum_by": "epoch",
    "adapt.pplo_shares": [0.5, 1.0],
    "adapt.views": 2,
    "adapt.temporal": False,
    "adapt.pseudo_workers": 0,
    "adapt.adversarial": True,
    "adapt.adversary": "alternating",
    "adapt.alpha": 0.5,
    "adapt.beta": 100.0,
    "adapt.w2": 2.0,
    "adapt.human_data": "people",
    "adapt.human_weight": 0.5,
    "adapt.w1": 3.0,
    "adapt.human_limit": 100,
    "adapt.da_block": 2,
    "adapt.forward": "separate",
}
OWN_FLAGS = tuple(
    flag for flag in ADAPT_FLAGS if flag not in TRAIN_FLAGS and flag.field != REFERENCE_ONLY
)


def test_other_flags_are_training_flags_minus_those_meaning_nothing_here():
    shared = {flag.names for flag in ADAPT_FLAGS if flag in TRAIN_FLAGS}
    dropped = {flag.names[-1] for flag in TRAIN_FLAGS if flag.names not in shared}
    # renamed to the reference's CCSSL.py names (in OWN_FLAGS), or meaningless in adaptation
    assert dropped == {
        "--resume",
        "--pretrained",
        "--dataset",
        "--train-batch",
        "--learning-rate",
        "--epochs",
        "--evaluate",
        "--start-epoch",
        "--eval-split",
        "--debug",
        "--log-every",  # with CCSSL.py's --print-freq
        "--year",  # train.py's, not in CCSSL.py's parser
        "--features",
        "--target-weight",
        "--seg-weight",
        "--test-scales",  # bottom-up evaluation options
        "--project-to-input",
    }
    assert sorted(flag.field for flag in OWN_FLAGS) == sorted(OWN_ALTERNATES)


def test_ccssl_flags_without_an_effect_are_accepted_with_a_note(capsys):
    argv = [
        *("--model", "hg", "--num-classes", "18", "--init-weights", "w.pth"),
        *("--data-label-folder-target", "labels/", "--resnet-layers", "50", "--print-freq", "7"),
    ]
    cfg, _ = parse_config(argv, flags=ADAPT_FLAGS, config_type=AdaptConfig)
    assert cfg.run.log_every == 7
    cfg.run.log_every = AdaptConfig().run.log_every
    assert cfg == AdaptConfig()
    notes = capsys.readouterr().out.splitlines()
    assert [n.split()[1] for n in notes] == [
        "--model",
        "--init-weights",
        "--data-label-folder-target",
        "--resnet-layers",
    ]
    with pytest.raises(SystemExit):  # the keypoint spec has 18 keypoints
        parse_config(["--num-classes", "17"], flags=ADAPT_FLAGS, config_type=AdaptConfig)
    assert "invalid choice: 17" in capsys.readouterr().err


@pytest.mark.parametrize("flag", OWN_FLAGS, ids=lambda flag: flag.names[-1])
def test_every_flag_of_our_own_changes_its_field(flag):
    value = OWN_ALTERNATES[flag.field]
    assert value != _get(AdaptConfig(), flag.field)
    for name in flag.names:
        if isinstance(value, bool):
            argv = [name]
        elif isinstance(value, list):
            argv = [name, *map(str, value)]
        else:
            argv = [name, str(value)]
        if flag.field == "adapt.pseudo_labels":
            argv.append("--adversarial")  # something must adapt
        cfg, _ = parse_config(argv, flags=ADAPT_FLAGS, config_type=AdaptConfig)
        assert _get(cfg, flag.field) == value, name


@pytest.mark.parametrize(
    "argv",
    [["-d"], ["--debug"], ["--eval-split", "test"]],
)
def test_flags_that_cannot_change_an_adaptation_run_are_not_offered(argv, capsys):
    with pytest.raises(SystemExit):
        parse_config(argv, flags=ADAPT_FLAGS, config_type=AdaptConfig)
    assert "unrecognized arguments" in capsys.readouterr().err


def test_configs_saved_while_w1_was_retired_load_and_continue():
    # Before the human source, w1 weighted a head that was hard-wired off and human_data had to
    # be empty: such a config loads as it is, and its w1 is moot (no human source).
    old = config_from_dict(
        {"adapt": {"w1": 0.5, "human_data": ""}}, source="old.yaml", config_type=AdaptConfig
    )
    assert old.adapt.w1 == 0.5 and old.adapt.human_data == ""
    assert settings_changed(config_to_dict(old), config_to_dict(AdaptConfig())) == []
    people = config_from_dict(
        {"adapt": {"w1": 0.5, "human_data": "/coco"}}, source="new.yaml", config_type=AdaptConfig
    )
    changed = settings_changed(config_to_dict(people), config_to_dict(AdaptConfig()))
    assert {key for key, _, _ in changed} == {"adapt.w1", "adapt.human_data"}


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
        ({"pplo_shares": [0.5, 1.5]}, "pplo_shares"),
        ({"target": "synthetic_animal"}, "target"),
        ({"round_every": 0}, "round_every"),
        ({"curriculum_by": "batch"}, "curriculum_by"),
        ({"labelled_weight": -1.0}, "labelled_weight"),
        ({"alpha": float("nan")}, "alpha"),
        ({"beta": -500.0}, "beta"),
    ],
)
def test_bad_adapt_values_name_the_key(values, key):
    with pytest.raises(ConfigError) as info:
        AdaptSection(**values)
    assert info.value.key == key


def test_source_must_not_be_a_target_set():
    with pytest.raises(SystemExit):
        parse_config(["--source", "real_animal_sp"], flags=ADAPT_FLAGS, config_type=AdaptConfig)


def test_the_papers_alpha_sign_is_accepted_and_old_positive_alpha_still_loads(tmp_path):
    from animalpose.adapt.domain import DomainAdversary

    cfg, _ = parse_config(
        ["--alpha", "-1", "--beta", "500"], flags=ADAPT_FLAGS, config_type=WSCDAConfig
    )
    assert cfg.adapt.alpha == -1.0 and cfg.adapt.beta == 500.0
    assert AdaptConfig().adapt.alpha == -1.0  # the paper's value is the default
    # A config saved before: alpha 1.0 meant |alpha| = 1, and still trains the same.
    old = config_from_dict({"adapt": {"alpha": 1.0}}, source="old.yaml", config_type=AdaptConfig)
    coeffs = [
        DomainAdversary(in_channels=4, alpha=a, beta=500.0).coeff(0.5)
        for a in (cfg.adapt.alpha, old.adapt.alpha)
    ]
    assert coeffs[0] == coeffs[1] > 0


def test_presets_set_the_curriculum_and_the_labelled_weight():
    repo = __import__("pathlib").Path(__file__).resolve().parents[2] / "configs"
    for name in ("ccssl", "ccssl_wscda"):
        assert load_config(repo / f"{name}.yaml", config_type=AdaptConfig).adapt.curriculum_by == (
            "round"
        )
    for name in ("wscda", "wscda_pplo", "ccssl_wscda"):
        cfg = load_config(repo / f"{name}.yaml", config_type=AdaptConfig)
        assert cfg.adapt.labelled_weight == 1.0 and cfg.adapt.alpha == -1.0, name
