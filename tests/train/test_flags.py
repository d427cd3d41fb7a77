"""The flag table, the parser and the precedence defaults < --config < flags < --set."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field

import pytest

from animalpose.train.config import Config, ConfigError, Section
from animalpose.train.config_io import load_config, save_config
from animalpose.train.flag_parser import build_parser, config_table_markdown, parse_config
from animalpose.train.flags import REFERENCE_ONLY, TEST_FLAGS, TRAIN_FLAGS, Flag

# Every flag of the reference's train/train.py (docs/reference_compat.md §3) -> its default there.
REFERENCE_FLAGS = {
    "--dataset": "synthetic_animal_sp",
    "--image-path": "./animal_data",
    "--animal": "horse",
    "--inp-res": 256,
    "--out-res": 64,
    "-a": "hg",
    "--arch": "hg",
    "-s": 4,
    "--stacks": 4,
    "-b": 1,
    "--blocks": 1,
    "--solver": "rms",
    "-j": 4,
    "--workers": 4,
    "--epochs": 100,
    "--start-epoch": 0,
    "--train-batch": 6,
    "--test-batch": 6,
    "--lr": 2.5e-4,
    "--learning-rate": 2.5e-4,
    "--momentum": 0.0,
    "--weight-decay": 0.0,
    "--wd": 0.0,
    "--schedule": [60, 90],
    "--gamma": 0.1,
    "-f": False,
    "--flip": False,
    "--sigma": 1.0,
    "--scale-factor": 0.25,
    "--rot-factor": 30.0,
    "--sigma-decay": 0.0,
    "--label-type": "Gaussian",
    "--year": 2014,
    "--features": 256,
    "--resnet-layers": 50,
    "--target-weight": False,
    "-c": "checkpoint",
    "--checkpoint": "checkpoint",
    "--snapshot": 0,
    "--resume": "",
    "-e": False,
    "--evaluate": False,
    "-d": False,
    "--debug": False,
}

# A valid non-default value for every leaf field (the test below checks the set is complete).
ALTERNATES = {
    "data.dataset": "real_animal",
    "data.image_path": "/srv/animals",
    "data.animal": "tiger",
    "data.inp_res": 512,
    "data.out_res": 128,
    "data.inp_width": 256,  # = inp_res: a square, valid for the default (animal) data set
    "data.sigma": 2.5,
    "data.sigma_decay": 0.95,
    "data.codec": "dark",
    "data.scale_factor": 0.3,
    "data.rot_factor": 45.0,
    "data.workers": 0,
    "data.train_batch": 12,
    "data.test_batch": 3,
    "data.augment_backend": "imgaug",
    "data.occlusion": 0.5,
    "data.occluders": 3,
    "data.occluder_source": "target",
    "data.legacy": True,
    "data.legacy_input": True,
    "data.split_dir": "ref/data",
    "data.vertex_table": "rows.json",
    "data.train_limit": 10,
    "data.val_limit": 5,
    "data.seed": 7,
    "data.eval_split": "test",
    "data.detections": "auto",
    "data.det_score": 0.5,
    "model.arch": "simple_baseline",
    "model.stacks": 8,
    "model.blocks": 2,
    "model.channels": 128,
    "model.depth": 101,
    "model.width": 48,
    "model.attention": "none",
    "model.keypoint_spec": "animal18",
    "optim.solver": "adam",
    "optim.lr": 1e-3,
    "optim.momentum": 0.9,
    "optim.weight_decay": 1e-4,
    "optim.epochs": 60,
    "optim.start_epoch": 5,
    "optim.schedule": [10, 20, 30],
    "optim.gamma": 0.5,
    "optim.seg_weight": 0.05,
    "optim.ohkm_topk": 8,
    "run.checkpoint": "runs/x",
    "run.snapshot": 10,
    "run.resume": "ckpt.pth.tar",
    "run.pretrained": "w.pth.tar",
    "run.evaluate": True,
    "run.debug": True,
    "run.flip": True,
    "run.test_scales": [0.5, 1.0, 2.0],
    "run.project_to_input": True,
    "run.seed": 42,
    "run.device": "cpu",
    "run.amp": False,
    "run.cpu_amp": True,
    "run.channels_last": False,
    "run.compile": True,
    "run.log_every": 1,
    "run.tb_images": 0,
    "run.progress": False,
}
# Fields whose only valid value is the default (one implemented choice).
SINGLE_CHOICE = {"model.keypoint_spec"}
#: Settings an alternate needs beside it (``--set`` values): detections need top-down data.
CONTEXT = {
    "data.inp_res": ["data.out_res=128"],
    "data.out_res": ["data.inp_res=512"],
    "data.detections": ["data.dataset=coco"],
}
#: Flags that set a field (all but the REFERENCE_ONLY ones).
FIELD_FLAGS = tuple(flag for flag in TRAIN_FLAGS if flag.field != REFERENCE_ONLY)


def _flag_by_name() -> dict[str, Flag]:
    return {name: flag for flag in TRAIN_FLAGS for name in flag.names}


def _yaml_text(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return f"[{', '.join(map(str, value))}]" if isinstance(value, list) else str(value)


def test_every_reference_flag_is_in_the_table_with_its_default(getp):
    flags = _flag_by_name()
    cfg, _ = parse_config([])
    for name, default in REFERENCE_FLAGS.items():
        assert name in flags, name
        if flags[name].field == REFERENCE_ONLY:  # accepted (with its default), sets nothing
            assert not flags[name].choices or default in flags[name].choices, name
            continue
        value = getp(cfg, flags[name].field)
        assert value == default or (name == "--image-path" and value == default.rstrip("/")), name


def test_every_flag_maps_to_an_existing_leaf_field(leaf_paths):
    names = [name for flag in TRAIN_FLAGS for name in flag.names]
    assert len(names) == len(set(names)), "option strings must be unique"
    for flag in TRAIN_FLAGS:
        assert flag.field in leaf_paths or flag.field == REFERENCE_ONLY, flag
        assert flag.help, flag


def test_alternates_cover_every_field(leaf_paths, getp):
    assert sorted(ALTERNATES) == sorted(leaf_paths)
    for dotted, value in ALTERNATES.items():
        if dotted not in SINGLE_CHOICE:
            assert getp(Config(), dotted) != value, dotted


@pytest.mark.parametrize("dotted", sorted(ALTERNATES))
def test_every_field_is_reachable_by_set(dotted, getp):
    value = ALTERNATES[dotted]
    extra = CONTEXT.get(dotted, [])
    cfg, _ = parse_config(["--set", f"{dotted}={_yaml_text(value)}", *extra])
    assert getp(cfg, dotted) == value
    assert type(getp(cfg, dotted)) is type(value)


@pytest.mark.parametrize("dotted", sorted(SINGLE_CHOICE))
def test_single_choice_fields_are_reached_by_set(dotted, capsys):
    # Their alternate equals the default, so show --set reaches them by a rejected value.
    with pytest.raises(SystemExit):
        parse_config(["--set", f"{dotted}=bogus"])
    assert f"command line: {dotted}: 'bogus' is not one of" in capsys.readouterr().err


@pytest.mark.parametrize("flag", FIELD_FLAGS, ids=lambda flag: flag.names[-1])
def test_every_flag_sets_its_field(flag, getp):
    value = ALTERNATES[flag.field]
    if isinstance(value, bool):
        argv = [flag.names[0]]
        expected = flag.kind != "store_false"
    elif isinstance(value, list):
        argv, expected = [flag.names[0], *map(str, value)], value
    else:
        argv, expected = [flag.names[0], str(value)], value
    if flag.field in ("data.inp_res", "data.out_res"):
        argv += ["--set", "data.inp_res=512", "data.out_res=128"]
    elif flag.field in CONTEXT:
        argv += ["--set", *CONTEXT[flag.field]]
    cfg, args = parse_config(argv)
    assert getp(cfg, flag.field) == expected
    assert hasattr(args, flag.field)


def test_reference_only_flags_are_accepted_and_set_nothing(capsys):
    only = [flag for flag in TRAIN_FLAGS if flag.field == REFERENCE_ONLY]
    assert [flag.names for flag in only] == [
        ("--label-type",),
        ("--year",),
        ("--features",),
        ("--resnet-layers",),
        ("--target-weight",),
    ]
    cfg, args = parse_config(["--label-type", "Gaussian"])
    assert cfg == Config() and args.label_type == "Gaussian"
    assert capsys.readouterr().out == ""  # Gaussian is what runs: nothing to note
    argv = ["--year", "2017", "--features", "128", "--resnet-layers", "18", "--target-weight"]
    cfg, args = parse_config(argv)
    assert cfg == Config() and (args.year, args.features, args.resnet_layers) == (2017, 128, 18)
    notes = capsys.readouterr().out.splitlines()
    assert len(notes) == 4 and all(n.startswith("note: --") for n in notes)
    assert "no effect" in notes[0] and "--channels" in notes[1]
    help_text = build_parser().format_help()
    assert "Cauchy" in help_text and "{Gaussian}" in help_text  # says what the reference had


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--resnet-layers", "51"], "argument --resnet-layers: invalid choice: 51"),
        (["--year", "last"], "argument --year: invalid int value: 'last'"),
    ],
)
def test_reference_only_flags_check_their_values_as_the_reference(argv, message, capsys):
    with pytest.raises(SystemExit):
        parse_config(argv)
    assert message in capsys.readouterr().err


def test_test_flags_take_the_reference_pair(capsys):
    cfg, args = parse_config(
        ["--dataset1", "synthetic_animal_sp", "--dataset2", "real_animal_sp"], flags=TEST_FLAGS
    )
    assert cfg.data.dataset == "real_animal_sp" and args.dataset1 == "synthetic_animal_sp"
    assert "--dataset1 names the training set" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parse_config(["--dataset1", "real_animal_crop"], flags=TEST_FLAGS)
    assert "--dataset1: invalid choice" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # train.py has no --dataset1, as the reference's
        parse_config(["--dataset1", "synthetic_animal_sp"])


def test_reference_style_command_line():
    cfg, args = parse_config(["-s", "2", "--schedule", "30", "40", "-e", "-f"])
    assert (cfg.model.stacks, cfg.optim.schedule, cfg.run.evaluate, cfg.run.flip) == (
        2,
        [30, 40],
        True,
        True,
    )
    expected = dataclasses.replace(Config(), model=dataclasses.replace(Config().model, stacks=2))
    expected.optim.schedule = [30, 40]
    expected.run.evaluate = expected.run.flip = True
    assert cfg == expected
    # only the given flags are in the namespace
    given = {k for k in vars(args) if "." in k}
    assert given == {"model.stacks", "optim.schedule", "run.evaluate", "run.flip"}
    assert args.config is None and args.set == []


def test_set_list_value():
    cfg, args = parse_config(["--set", "optim.schedule=[5,7]"])
    assert cfg.optim.schedule == [5, 7]
    assert args.set == ["optim.schedule=[5,7]"]


def test_precedence_defaults_file_flags_set(tmp_path):
    path = tmp_path / "base.yaml"
    path.write_text(
        "model:\n  stacks: 2\noptim:\n  lr: 1.0e-3\n  epochs: 10\n"
        "data:\n  train_batch: 16\nrun:\n  evaluate: true\n  amp: true\n"
    )
    argv = [
        "--config",
        str(path),
        "-s",
        "3",
        "--lr",
        "0.01",
        "--no-amp",
        "--set",
        "model.stacks=5",
        "--set",
        "data.animal=tiger",
    ]
    cfg, args = parse_config(argv)
    assert cfg.model.stacks == 5  # --set beats the flag and the file
    assert cfg.optim.lr == 0.01  # the flag beats the file
    assert cfg.optim.epochs == 10 and cfg.data.train_batch == 16  # the file beats the defaults
    assert cfg.run.evaluate is True  # an absent store_true flag does not reset the file
    assert cfg.run.amp is False  # --no-amp beats the file
    assert cfg.data.animal == "tiger" and cfg.model.blocks == 1
    assert args.config == str(path) and args.set == ["model.stacks=5", "data.animal=tiger"]


def test_saved_config_reproduces_the_run(tmp_path):
    cfg, _ = parse_config(["--animal", "tiger", "-s", "2", "--set", "optim.lr=5e-4"])
    save_config(cfg, tmp_path / "config.yaml")
    again, _ = parse_config(["--config", str(tmp_path / "config.yaml")])
    assert again == cfg == load_config(tmp_path / "config.yaml")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--dataset", "mpii"], "invalid choice: 'mpii'"),
        (["--schedule", "30", "x"], "invalid int value: 'x'"),
        (["--stack", "2"], "unrecognized arguments: --stack 2"),  # no abbreviations
        (["--label-type", "Cauchy"], "argument --label-type: invalid choice: 'Cauchy'"),
        (["--inp-res", "100"], "command line: data.inp_res: 100 is not divisible"),
        (["--set", "optim.schedule=[5,x]"], "--set: optim.schedule[1]: expected int"),
        (["--set", "model.dilation=3"], "--set: model.dilation: unknown key"),
    ],
)
def test_usage_errors_exit_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as info:
        parse_config(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_config_file_is_a_usage_error_naming_the_file(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("run:\n  devise: cpu\n")
    with pytest.raises(SystemExit):
        parse_config(["--config", str(path)])
    assert f"{path}: run.devise: unknown key; did you mean 'device'?" in capsys.readouterr().err


def test_extra_arguments_reach_the_namespace():
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--dry-run", action="store_true")

    cfg, args = parse_config(["--dry-run", "-b", "2"], extra=extra)
    assert args.dry_run is True and cfg.model.blocks == 2


def test_flag_kind_must_fit_the_field_type():
    bad = (Flag(names=("--stacks-on",), field="model.stacks", help="x", kind="store_true"),)
    with pytest.raises(ValueError, match="does not fit model.stacks's type int"):
        build_parser(flags=bad)
    with pytest.raises(ConfigError, match="model.dilation: unknown key"):
        build_parser(flags=(Flag(names=("--dilation",), field="model.dilation", help="x"),))


@dataclass(kw_only=True)
class _AdaptConfig(Section):
    target_weight: float = 10.0
    regenerate: list[int] = field(default_factory=lambda: [0, 10])

    def check(self) -> None:
        if self.target_weight < 0:
            raise ConfigError("must be >= 0", key="target_weight")


@dataclass(kw_only=True)
class _ExtendedConfig(Config):
    adapt: _AdaptConfig = field(default_factory=_AdaptConfig)


def test_parser_and_files_are_generic_over_the_root_type(tmp_path):
    flags = TRAIN_FLAGS + (
        Flag(names=("--gamma_",), field="adapt.target_weight", help="w"),
        Flag(names=("--regenerate",), field="adapt.regenerate", help="r"),
    )
    cfg, _ = parse_config(
        ["--gamma_", "5", "--regenerate", "0", "20", "-s", "1", "--set", "adapt.regenerate=[1]"],
        flags=flags,
        config_type=_ExtendedConfig,
    )
    assert isinstance(cfg, _ExtendedConfig)
    assert (cfg.adapt.target_weight, cfg.adapt.regenerate, cfg.model.stacks) == (5.0, [1], 1)
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml", config_type=_ExtendedConfig) == cfg
    with pytest.raises(ConfigError, match=r"c\.yaml: adapt: unknown key"):
        load_config(tmp_path / "c.yaml")  # the plain Config has no adapt section
    with pytest.raises(SystemExit):
        parse_config(["--set", "adapt.target_weight=-1"], flags=flags, config_type=_ExtendedConfig)


def test_markdown_table_lists_every_flag():
    text = config_table_markdown(TRAIN_FLAGS)
    lines = text.splitlines()
    assert lines[0] == "| flag | field | default | help |"
    for flag in FIELD_FLAGS:
        assert sum(f"`{flag.field}`" in line for line in lines) >= 1, flag
    assert "| `--label-type` | (none) | `Gaussian` |" in text
    assert "| `-s`, `--stacks` | `model.stacks` | `4` | number of stacked hourglasses |" in lines
    assert "| `--schedule` | `optim.schedule` | `60 90` |" in text
    assert all(line.count("|") == 5 for line in lines)
