"""Strict loading from dicts and YAML files, saving, overrides and the configs/ folder."""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from animalpose.train.config import CONFIG_FILE_NAME, Config, ConfigError
from animalpose.train.config_io import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    save_config,
)


def _write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_keys_keep_defaults():
    cfg = config_from_dict({"model": {"stacks": 2}}, source="x.yaml")
    assert cfg.model.stacks == 2
    assert dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, stacks=4)) == Config()


def test_unknown_key_names_file_key_and_valid_keys(tmp_path):
    path = _write(tmp_path / "typo.yaml", "data:\n  animl: tiger\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    text = str(info.value)
    assert text.startswith(f"{path}: data.animl: unknown key")
    assert "did you mean 'animal'?" in text
    assert "image_path" in text and "train_batch" in text  # the valid keys are listed


def test_unknown_section_names_file_and_lists_sections(tmp_path):
    path = _write(tmp_path / "typo.yaml", "optimizer:\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match=r"typo\.yaml: optimizer: unknown key") as info:
        load_config(path)
    assert "data, model, optim, run" in str(info.value)


@pytest.mark.parametrize(
    ("text", "key", "message"),
    [
        ("model:\n  stacks: '4'\n", "model.stacks", "expected int, got str '4'"),
        ("model:\n  stacks: 4.0\n", "model.stacks", "expected int, got float"),
        ("model:\n  stacks: true\n", "model.stacks", "expected int, got bool"),
        ("run:\n  amp: 1\n", "run.amp", "expected bool, got int"),
        ("run:\n  resume: 12\n", "run.resume", "expected str, got int"),
        ("optim:\n  lr: fast\n", "optim.lr", "expected float, got str 'fast'"),
        ("optim:\n  schedule: 60\n", "optim.schedule", "expected a list of int, got 60"),
        ("optim:\n  schedule: [60, x]\n", "optim.schedule[1]", "expected int, got str 'x'"),
        ("data: horse\n", "data", "expected a mapping of keys"),
    ],
)
def test_type_errors_name_file_and_key(tmp_path, text, key, message):
    path = _write(tmp_path / "types.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert (info.value.source, info.value.key) == (str(path), key)
    assert message in info.value.message


def test_float_fields_accept_ints_and_yaml11_exponent_strings(tmp_path):
    # PyYAML (YAML 1.1) reads 1e-3 and 1.0e3 as strings; float fields take them as numbers.
    assert yaml.safe_load("1e-3") == "1e-3"
    text = "optim:\n  lr: 1e-3\n  gamma: 1\ndata:\n  rot_factor: 1.5e1\n"
    path = _write(tmp_path / "f.yaml", text)
    cfg = load_config(path)
    assert cfg.optim.lr == 0.001 and cfg.optim.gamma == 1.0 and cfg.data.rot_factor == 15.0
    assert all(type(v) is float for v in (cfg.optim.lr, cfg.optim.gamma, cfg.data.rot_factor))


@pytest.mark.parametrize("text", ["", "# only a comment\n"])
def test_empty_file_is_the_defaults(tmp_path, text):
    assert load_config(_write(tmp_path / "empty.yaml", text)) == Config()


def test_unreadable_and_invalid_files_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match=r"broken\.yaml: invalid YAML"):
        load_config(_write(tmp_path / "broken.yaml", "data: [unclosed\n"))
    with pytest.raises(ConfigError, match=r"list\.yaml: expected a mapping"):
        load_config(_write(tmp_path / "list.yaml", "- data\n"))


def _non_default() -> Config:
    return config_from_dict(
        {
            "data": {
                "dataset": "real_animal",
                "animal": "tiger",
                "sigma": 1.75,
                "seed": 3,
                "split_dir": "/data/ref data",
                "legacy_input": True,
                "inp_res": 192,
                "out_res": 48,
            },
            "model": {"stacks": 2, "channels": 128},
            "optim": {"lr": 1.2345678901234567e-5, "schedule": [], "solver": "adam"},
            "run": {"resume": "runs/a: b.pth.tar", "amp": False, "device": "cuda:0"},
        },
        source="test",
    )


def test_save_load_round_trips_exactly(tmp_path):
    cfg = _non_default()
    path = tmp_path / "run" / CONFIG_FILE_NAME  # the parent folder is created
    save_config(cfg, path)
    loaded = load_config(path)
    assert loaded == cfg
    assert loaded.optim.lr == 1.2345678901234567e-5  # bit-exact float
    assert yaml.safe_load(path.read_text())["model"]["stacks"] == 2  # plain YAML
    save_config(Config(), path)  # overwrites atomically, no temporary files left behind
    assert load_config(path) == Config()
    assert sorted(p.name for p in path.parent.iterdir()) == [CONFIG_FILE_NAME]


def test_config_to_dict_is_a_copy():
    cfg = Config()
    d = config_to_dict(cfg)
    d["optim"]["schedule"].append(95)
    d["model"]["stacks"] = 1
    assert cfg.optim.schedule == [60, 90] and cfg.model.stacks == 4
    assert config_from_dict(config_to_dict(cfg), source="copy") == cfg


def test_apply_overrides_parses_yaml_and_returns_a_new_config():
    cfg = Config()
    new = apply_overrides(
        cfg,
        [
            "data.animal=tiger",
            "optim.schedule=[5, 7]",
            "optim.lr=1e-3",
            "run.amp=false",
            "model.stacks=2",
        ],
    )
    assert (new.data.animal, new.optim.schedule, new.optim.lr) == ("tiger", [5, 7], 1e-3)
    assert (new.run.amp, new.model.stacks) == (False, 2)
    assert cfg == Config()  # unchanged


def test_apply_overrides_validates_after_all_keys():
    # 96 / 64 alone would fail; the pair is valid.
    new = apply_overrides(Config(), ["data.inp_res=96", "data.out_res=24"])
    assert (new.data.inp_res, new.data.out_res) == (96, 24)
    with pytest.raises(ConfigError, match=r"--set: data.inp_res: 96 is not divisible"):
        apply_overrides(Config(), ["data.inp_res=96"])


def test_apply_overrides_string_fields_take_text_verbatim():
    new = apply_overrides(
        Config(),
        [
            "run.resume=no",
            "data.split_dir=123",
            "run.checkpoint=a=b",
            "data.vertex_table='quoted.json'",
        ],
    )
    assert (new.run.resume, new.data.split_dir) == ("no", "123")
    assert (new.run.checkpoint, new.data.vertex_table) == ("a=b", "quoted.json")
    assert apply_overrides(new, ["run.resume="]).run.resume == ""


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("data.animal", "expected KEY=VALUE"),
        ("=3", "expected KEY=VALUE"),
        ("data.animl=tiger", "data.animl: unknown key; did you mean 'animal'?"),
        ("data=1", "data: is a section"),
        ("data.animal.x=1", "data.animal.x: data.animal is a str, not a section"),
        ("model.stacks=two", "model.stacks: expected int, got str 'two'"),
        ("optim.schedule=[5, x]", "optim.schedule[1]: expected int"),
        ("optim.schedule=[5", "optim.schedule: invalid YAML value"),
    ],
)
def test_apply_overrides_errors(item, message):
    with pytest.raises(ConfigError, match="^--set: ") as info:
        apply_overrides(Config(), [item])
    assert message in str(info.value)


def test_every_file_in_configs_loads(configs_dir):
    from animalpose.adapt.config import AdaptConfig

    paths = sorted(configs_dir.glob("*.yaml"))
    assert len(paths) >= 2
    adaptation = [p for p in paths if "adapt" in yaml.safe_load(p.read_text())]
    assert {p.name for p in adaptation} >= {"ccssl.yaml", "wscda.yaml", "ccssl_wscda.yaml"}
    for path in paths:
        config_type = AdaptConfig if path in adaptation else Config
        assert isinstance(load_config(path, config_type=config_type), config_type), path


def test_reference_config_spells_out_the_defaults(configs_dir, leaf_paths):
    path = configs_dir / "hg_synthetic_sp.yaml"
    assert load_config(path) == Config()
    raw = yaml.safe_load(path.read_text())
    listed = [f"{section}.{key}" for section, keys in raw.items() for key in keys]
    assert sorted(listed) == sorted(leaf_paths)


def test_quickstart_config(configs_dir):
    cfg = load_config(configs_dir / "quickstart_cpu.yaml")
    expected = {
        "data": {
            "dataset": "synthetic_animal_sp",
            "image_path": "./animal_data",
            "animal": "dog",
            "inp_res": 128,
            "out_res": 32,
            "sigma": 2.0,
            "train_batch": 16,
            "test_batch": 32,
            "workers": 2,
        },
        "model": {"stacks": 1, "blocks": 1, "channels": 64},
        "optim": {"epochs": 20, "lr": 2e-3, "solver": "adam", "schedule": [16]},
        "run": {"amp": False, "log_every": 10, "checkpoint": "runs/quickstart"},
    }
    assert cfg == config_from_dict(expected, source="expected")
