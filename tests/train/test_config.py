"""Defaults and value checks of the config dataclasses."""

from __future__ import annotations

import pytest

from animalpose.train.config import (
    DATASET_NAMES,
    Config,
    ConfigError,
    DataConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
)
from animalpose.train.config_io import config_from_dict

# The reference's train/train.py argparse defaults (docs/reference_compat.md §3 and its source),
# written out independently of the dataclasses.
REFERENCE_DEFAULTS = {
    "data.dataset": "synthetic_animal_sp",
    "data.animal": "horse",
    "data.inp_res": 256,
    "data.out_res": 64,
    "model.arch": "hg",
    "model.stacks": 4,
    "model.blocks": 1,
    "optim.solver": "rms",
    "data.workers": 4,
    "optim.epochs": 100,
    "optim.start_epoch": 0,
    "data.train_batch": 6,
    "data.test_batch": 6,
    "optim.lr": 2.5e-4,
    "optim.momentum": 0.0,
    "optim.weight_decay": 0.0,
    "optim.schedule": [60, 90],
    "optim.gamma": 0.1,
    "run.flip": False,
    "data.sigma": 1.0,
    "data.scale_factor": 0.25,
    "data.rot_factor": 30.0,
    "data.sigma_decay": 0.0,
    "run.checkpoint": "checkpoint",
    "run.snapshot": 0,
    "run.resume": "",
    "run.pretrained": "",
    "run.evaluate": False,
    "run.debug": False,
    "model.channels": 256,  # the hourglass width, the reference's --features default
}


@pytest.mark.parametrize("dotted", sorted(REFERENCE_DEFAULTS))
def test_defaults_equal_the_reference(dotted, getp):
    value = getp(Config(), dotted)
    assert value == REFERENCE_DEFAULTS[dotted]
    assert type(value) is type(REFERENCE_DEFAULTS[dotted])


def test_dataset_names_are_the_reference_names_and_coco():
    # docs/reference_compat.md §1.4, via the dataset registry
    assert sorted(DATASET_NAMES) == sorted(
        [
            "synthetic_animal",
            "synthetic_animal_sp",
            "synthetic_animal_sp_multitask",
            "real_animal",
            "real_animal_sp",
            "real_animal_crop",
            "coco",  # top-down people (datasets/formats/registry.py), not a reference name
            "coco_bottomup",  # whole images with every person (Associative Embedding)
        ]
    )


def test_image_path_default_is_the_reference_folder():
    # The reference writes './animal_data/'; the same folder without the trailing slash.
    assert Config().data.image_path.rstrip("/") == "./animal_data"


def test_brief_defaults_of_our_own_fields():
    data, run = DataConfig(), RunConfig()
    assert (data.augment_backend, data.legacy_input, data.split_dir, data.vertex_table) == (
        "fused",
        False,
        "",
        "",
    )
    assert (data.train_limit, data.val_limit, data.seed) == (0, 0, 0)
    assert ModelConfig().keypoint_spec == "animal18"
    assert (run.seed, run.device, run.amp, run.channels_last, run.compile) == (
        0,
        "auto",
        True,
        True,
        False,
    )
    assert (run.log_every, run.tb_images, run.progress) == (50, 8, True)


def test_default_lists_are_not_shared():
    a, b = OptimConfig(), OptimConfig()
    a.schedule.append(95)
    assert b.schedule == [60, 90]


def test_construction_type_checks_and_normalises():
    assert DataConfig(sigma=2).sigma == 2.0 and isinstance(DataConfig(sigma=2).sigma, float)
    with pytest.raises(ConfigError, match=r"inp_res: expected int, got str '256'"):
        DataConfig(inp_res="256")
    with pytest.raises(ConfigError, match=r"stacks: expected int, got bool"):
        ModelConfig(stacks=True)
    with pytest.raises(ConfigError, match=r"data: expected a DataConfig"):
        Config(data={"animal": "tiger"})
    with pytest.raises(TypeError):  # keyword-only: no positional mix-ups
        ModelConfig("hg", 4)


BAD_VALUES = [
    ({"data": {"dataset": "mpii"}}, "data.dataset", "not one of synthetic_animal"),
    ({"data": {"inp_res": 250}}, "data.inp_res", "250 is not divisible by data.out_res 64"),
    ({"data": {"out_res": 0}}, "data.out_res", "must be > 0"),
    ({"data": {"sigma": -1.0}}, "data.sigma", "must be > 0"),
    ({"data": {"sigma": float("nan")}}, "data.sigma", "must be > 0, got nan"),
    # The reference's --label-type is a flag without a field (Gaussian targets only); a retired
    # key with another value than its inert one is unknown.
    ({"data": {"label_type": "Cauchy"}}, "data.label_type", "unknown key"),
    ({"data": {"augment_backend": "albumentations"}}, "data.augment_backend", "not one of"),
    ({"data": {"workers": -1}}, "data.workers", "must be >= 0"),
    ({"data": {"train_batch": 0}}, "data.train_batch", "must be > 0"),
    ({"data": {"image_path": ""}}, "data.image_path", "must not be empty"),
    ({"data": {"animal": ""}}, "data.animal", "must be a plain name"),
    ({"data": {"animal": "../../x"}}, "data.animal", "must be a plain name"),
    ({"data": {"animal": "dog/../.."}}, "data.animal", "must be a plain name"),
    ({"model": {"channels": 129}}, "model.channels", "must be even"),
    ({"model": {"arch": "resnet"}}, "model.arch", "'resnet' is not one of hg"),
    ({"model": {"stacks": 0}}, "model.stacks", "must be > 0"),
    ({"model": {"depth": 51}}, "model.depth", "51 is not one of 18, 34, 50, 101, 152"),
    ({"model": {"width": 0}}, "model.width", "must be > 0"),
    ({"model": {"keypoint_spec": "bogus"}}, "model.keypoint_spec", "animal18"),
    ({"optim": {"solver": "sgd"}}, "optim.solver", "not one of rms, adam"),
    ({"optim": {"lr": 0.0}}, "optim.lr", "must be > 0"),
    ({"optim": {"schedule": [90, 60]}}, "optim.schedule", "strictly ascending"),
    ({"optim": {"schedule": [60, 60]}}, "optim.schedule", "strictly ascending"),
    ({"optim": {"schedule": [0, 60]}}, "optim.schedule", "positive"),
    ({"optim": {"start_epoch": 101}}, "optim.start_epoch", "past optim.epochs 100"),
    ({"run": {"device": "gpu"}}, "run.device", "not auto, cpu, cuda or cuda:N"),
    ({"run": {"log_every": 0}}, "run.log_every", "must be > 0"),
    ({"run": {"checkpoint": ""}}, "run.checkpoint", "must not be empty"),
]


@pytest.mark.parametrize(("d", "key", "message"), BAD_VALUES)
def test_value_checks_name_source_key_and_problem(d, key, message):
    with pytest.raises(ConfigError) as info:
        config_from_dict(d, source="bad.yaml")
    assert (info.value.source, info.value.key) == ("bad.yaml", key)
    assert message in info.value.message
    assert str(info.value).startswith(f"bad.yaml: {key}: ")


GOOD_EDGES = [
    {"data": {"animal": "elephant", "vertex_table": "elephant.json"}},  # the loader reads it
    {"data": {"inp_res": 96, "out_res": 24}},
    {"optim": {"schedule": []}},  # constant learning rate
    {"optim": {"start_epoch": 100}},  # resuming a finished run
    {"run": {"device": "cuda:1"}},
]


@pytest.mark.parametrize("d", GOOD_EDGES)
def test_valid_edge_cases_are_accepted(d):
    cfg = config_from_dict(d, source="edge.yaml")
    for section, values in d.items():
        for key, value in values.items():
            assert getattr(getattr(cfg, section), key) == value


def test_retired_keys_with_their_inert_value_load_and_are_dropped():
    """Configs and checkpoints saved before a key was retired still load, unchanged."""
    from animalpose.adapt.config import AdaptConfig
    from animalpose.train.config_io import RETIRED_KEYS, config_to_dict, drop_retired

    saved = config_to_dict(AdaptConfig())
    saved["data"]["label_type"] = "Gaussian"
    assert drop_retired(saved) == config_to_dict(AdaptConfig())
    assert config_from_dict(saved, source="old.yaml", config_type=AdaptConfig) == AdaptConfig()
    # adapt.w1 and adapt.human_data were retired while no human source existed; they are keys
    # again (WS-CDA's human source), and what those configs saved loads as it is.
    assert set(RETIRED_KEYS) == {"data.label_type"}
    saved["data"]["label_type"] = "Cauchy"
    with pytest.raises(ConfigError, match="data.label_type.*unknown key"):
        config_from_dict(saved, source="old.yaml", config_type=AdaptConfig)
