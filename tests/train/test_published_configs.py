"""The published-recipe configs of ``configs/coco/`` (issue 14: each model trains and evaluates
from a config): every file loads, passes the checks ``train/train.py`` runs before training,
builds its model with the published size, carries the recipe values its header cites, and the
two commands in its header parse to that config; one of them drives the training entry point.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import torch

from animalpose.datasets.formats.registry import is_bottomup
from animalpose.datasets.generator.fixtures import make_coco_fixture
from animalpose.datasets.keypoints import SPECS
from animalpose.train import cli
from animalpose.train.bottomup import BottomUpTrainer
from animalpose.train.build import (
    build_codec,
    build_loss,
    build_network,
    heatmap_size,
    input_size,
)
from animalpose.train.checkpoint import BEST_NAME
from animalpose.train.config import CONFIG_FILE_NAME, Config
from animalpose.train.config_io import config_to_dict, load_config
from animalpose.train.flag_parser import parse_config
from animalpose.train.flags import TEST_FLAGS, TRAIN_FLAGS
from animalpose.train.trainer import Trainer

#: The folder under test.
COCO_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "coco"
#: Where every config's runs go: ``runs/coco/<file stem>``.
RUNS = "runs/coco"
#: Relative tolerance on a published parameter count (papers round to 0.1 M).
PARAMS_RTOL = 0.03

#: The top-down crop of every 256x192 recipe: (w, h) input and heatmap sizes.
TOPDOWN_INPUT, TOPDOWN_HEATMAP = (192, 256), (48, 64)
_TOPDOWN = {"data.dataset": "coco", "data.inp_res": 256, "data.inp_width": 192}
_TOPDOWN |= {"data.out_res": 64, "model.keypoint_spec": "coco17", "run.flip": True}
_TOPDOWN |= {"data.image_path": "./COCO", "data.train_batch": 32, "optim.solver": "adam"}
#: SimpleBaseline's schedule (microsoft/human-pose-estimation.pytorch resnet50 256x192 yaml),
#: also the fallback where a recipe's own schedule cannot be expressed (MSPN, RSN, G-RMI).
_SIMPLE_SCHEDULE = {"optim.epochs": 140, "optim.schedule": [90, 120], "optim.gamma": 0.1}
#: HigherHRNet's w32_512_adam_lr1e-3.yaml, for both bottom-up files.
_BOTTOMUP = {"data.dataset": "coco_bottomup", "data.inp_res": 512, "data.out_res": 128}
_BOTTOMUP |= {"data.sigma": 2.0, "data.rot_factor": 30.0, "data.train_batch": 12}
_BOTTOMUP |= {"model.width": 32, "model.keypoint_spec": "coco17", "optim.solver": "adam"}
_BOTTOMUP |= {"optim.lr": 1e-3, "optim.epochs": 300, "optim.schedule": [200, 260]}
_BOTTOMUP |= {"run.flip": True, "run.project_to_input": True, "run.test_scales": [1.0]}

#: file name -> the recipe values its header cites (dotted config keys).
RECIPES: dict[str, dict[str, object]] = {
    "simple_baseline_r50_256x192.yaml": {
        **_TOPDOWN,
        **_SIMPLE_SCHEDULE,
        **{"model.arch": "simple_baseline", "model.depth": 50, "data.codec": "msra"},
        **{"optim.lr": 1e-3, "optim.weight_decay": 0.0, "data.sigma": 2.0},
        **{"data.scale_factor": 0.3, "data.rot_factor": 40.0, "optim.ohkm_topk": 0},
    },
    "hrnet_w32_256x192.yaml": {
        **_TOPDOWN,
        **{"model.arch": "hrnet", "model.width": 32, "data.codec": "msra", "data.sigma": 2.0},
        **{"optim.lr": 1e-3, "optim.epochs": 210, "optim.schedule": [170, 200]},
        **{"data.scale_factor": 0.35, "data.rot_factor": 45.0, "optim.weight_decay": 0.0},
    },
    "cpn_r50_256x192.yaml": {
        **_TOPDOWN,
        **{"model.arch": "cpn", "model.depth": 50, "model.channels": 256, "data.sigma": 1.37},
        **{"optim.lr": 5e-4, "optim.weight_decay": 1e-5, "optim.ohkm_topk": 8},
        **{"optim.epochs": 32, "optim.schedule": [6, 12, 18, 24, 30], "optim.gamma": 0.5},
        **{"data.rot_factor": 45.0},
    },
    "mspn_4xr50_256x192.yaml": {
        **_TOPDOWN,
        **_SIMPLE_SCHEDULE,
        **{"model.arch": "mspn", "model.stacks": 4, "model.depth": 50, "model.channels": 256},
        **{"optim.lr": 5e-4, "optim.weight_decay": 1e-5, "optim.ohkm_topk": 8},
        **{"data.sigma": 1.37, "data.scale_factor": 0.25, "data.rot_factor": 45.0},
    },
    "rsn_18_256x192.yaml": {
        **_TOPDOWN,
        **_SIMPLE_SCHEDULE,
        **{"model.arch": "rsn", "model.stacks": 1, "model.depth": 18, "model.channels": 256},
        **{"optim.lr": 5e-4, "optim.weight_decay": 1e-5, "optim.ohkm_topk": 8},
        **{"data.sigma": 1.0, "data.scale_factor": 0.25, "data.rot_factor": 45.0},
    },
    "lpn_50_256x192.yaml": {
        **_TOPDOWN,
        **{"model.arch": "lpn", "model.depth": 50, "model.attention": "gc"},
        **{"data.codec": "soft-argmax", "data.sigma": 2.0, "optim.lr": 1e-3},
        **{"optim.epochs": 150, "optim.schedule": [90, 120], "optim.weight_decay": 0.0},
        **{"data.scale_factor": 0.3, "data.rot_factor": 40.0},
    },
    "grmi_r50_256x192.yaml": {
        **_TOPDOWN,
        **_SIMPLE_SCHEDULE,
        **{"model.arch": "simple_baseline", "model.depth": 50, "data.codec": "offset"},
        **{"optim.lr": 1e-3, "data.scale_factor": 0.3, "data.rot_factor": 40.0},
        **{"optim.ohkm_topk": 0},
    },
    "associative_hrnet_w32_512.yaml": {**_BOTTOMUP, "model.arch": "associative"},
    "higher_hrnet_w32_512.yaml": {**_BOTTOMUP, "model.arch": "higher_hrnet"},
}

#: file name -> (published parameter count, where it is published), checked within PARAMS_RTOL.
PUBLISHED_PARAMS: dict[str, tuple[float, str]] = {
    "simple_baseline_r50_256x192.yaml": (34.0e6, "SimpleBaseline paper / spec"),
    "hrnet_w32_256x192.yaml": (28.5e6, "HRNet paper / spec"),
    "lpn_50_256x192.yaml": (2.9e6, "LPN paper / spec"),
    "associative_hrnet_w32_512.yaml": (28.5e6, "HigherHRNet README, Bottom-up HRNet"),
    "higher_hrnet_w32_512.yaml": (28.6e6, "HigherHRNet README"),
}
#: file name -> our model's exact parameter count, where no published count fits our model:
#: CPN's and MSPN's papers give none; the RSN authors' 13.1 M counts their public code's
#: expansion-4 blocks and heatmap-level PRM (train/models/rsn.py), ours 9.64 M; G-RMI has no
#: published model at this size (SimpleBaseline-R50 with 3 x 17 output channels).
EXACT_PARAMS: dict[str, int] = {
    "cpn_r50_256x192.yaml": 27_009_685,
    "mspn_4xr50_256x192.yaml": 118_913_796,
    "rsn_18_256x192.yaml": 9_642_754,
    "grmi_r50_256x192.yaml": 34_008_435,
}

NAMES = sorted(RECIPES)


def get(cfg: object, dotted: str) -> object:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def meta_model(cfg: Config) -> torch.nn.Module:
    """The config's network on the ``meta`` device: shapes only, nothing allocated."""
    meta = torch.device("meta")
    with meta:
        return build_network(cfg, SPECS[cfg.model.keypoint_spec], meta)


def header_commands(path: Path) -> dict[str, list[str]]:
    """The header's ``python <script> ...`` commands (backslash continuations joined) by script,
    as argument lists without ``python <script>``."""
    header = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        header.append(line.removeprefix("#").strip())
    commands = {}
    for line in "\n".join(header).replace("\\\n", " ").splitlines():
        if line.startswith("python "):
            words = shlex.split(line)
            commands[words[1]] = words[2:]
    return commands


def test_the_folder_holds_one_config_per_method():
    assert sorted(p.name for p in COCO_CONFIGS.glob("*.yaml")) == NAMES
    assert set(PUBLISHED_PARAMS) | set(EXACT_PARAMS) == set(NAMES)
    assert not set(PUBLISHED_PARAMS) & set(EXACT_PARAMS)


@pytest.mark.parametrize("name", NAMES)
def test_config_passes_the_training_entry_points_checks(name, capsys):
    cfg = load_config(COCO_CONFIGS / name)
    assert isinstance(cfg, Config)
    # train.py's choice of trainer runs check_bottomup (sizes, arch vs data set) and the
    # multitask rule; a bottom-up file must get the bottom-up trainer.
    trainer = cli.select_trainer(cfg, multitask=False)
    assert trainer is (BottomUpTrainer if is_bottomup(cfg.data.dataset) else Trainer)
    # The loss the trainer builds (refuses OHKM with a codec that brings its own loss).
    codec = build_codec(cfg)
    assert build_loss(cfg, codec, meta_model(cfg)) is not None
    assert cfg.run.checkpoint == f"{RUNS}/{Path(name).stem}"
    assert not cfg.run.pretrained and not cfg.data.detections  # given on the command line
    capsys.readouterr()


@pytest.mark.parametrize("name", NAMES)
def test_config_holds_the_recipe_values_its_header_cites(name):
    cfg = load_config(COCO_CONFIGS / name)
    expected = RECIPES[name]
    actual = {key: get(cfg, key) for key in expected}
    assert actual == expected


@pytest.mark.parametrize("name", [n for n in NAMES if "512" not in n])
def test_topdown_configs_crop_256x192_with_64x48_heatmaps(name):
    cfg = load_config(COCO_CONFIGS / name)
    assert input_size(cfg) == TOPDOWN_INPUT
    assert heatmap_size(cfg) == TOPDOWN_HEATMAP
    assert tuple(build_codec(cfg).heatmap_size) == TOPDOWN_HEATMAP


@pytest.mark.parametrize("name", NAMES)
def test_model_has_the_published_parameter_count(name):
    model = meta_model(load_config(COCO_CONFIGS / name))
    count = sum(p.numel() for p in model.parameters())
    if name in PUBLISHED_PARAMS:
        published, where = PUBLISHED_PARAMS[name]
        assert abs(count - published) <= PARAMS_RTOL * published, (count, where)
    else:
        assert count == EXACT_PARAMS[name]


@pytest.mark.parametrize("name", NAMES)
def test_header_names_its_source_and_published_numbers(name):
    header = (COCO_CONFIGS / name).read_text().split("\ndata:")[0]
    assert all(line.startswith("#") for line in header.splitlines())
    text = " ".join(line.removeprefix("#").strip() for line in header.splitlines())
    for part in ("Source:", "Published:"):
        assert part in text
    if name in PUBLISHED_PARAMS:  # the count the header states is the one checked
        published, _ = PUBLISHED_PARAMS[name]
        assert f"{published / 1e6:.1f} M parameters" in text


@pytest.mark.parametrize("name", NAMES)
def test_header_commands_parse_to_this_config(name, capsys):
    path = COCO_CONFIGS / name
    cfg = load_config(path)
    commands = header_commands(path)
    assert set(commands) == {"train/train.py", "evaluation/test.py"}

    trained, _ = parse_config(commands["train/train.py"], flags=TRAIN_FLAGS)
    if getattr(meta_model(cfg), "trunk_layers", None):  # ImageNet trunk: the header names a file
        assert trained.run.pretrained.endswith(".pth")
    else:  # trained from scratch, as published (RSN, LPN)
        assert not trained.run.pretrained
    # Besides --pretrained the command is the file.
    as_trained = config_to_dict(trained)
    as_trained["run"]["pretrained"] = ""
    assert as_trained == config_to_dict(cfg)

    evaluated, _ = parse_config(commands["evaluation/test.py"], flags=TEST_FLAGS)
    assert evaluated.run.evaluate
    assert evaluated.run.resume == f"{cfg.run.checkpoint}/{BEST_NAME}"
    assert evaluated.run.checkpoint == f"{cfg.run.checkpoint}/eval"
    # Top-down AP is published with detector boxes; bottom-up needs none.
    assert evaluated.data.detections == ("" if is_bottomup(cfg.data.dataset) else "auto")
    assert config_to_dict(evaluated)["model"] == config_to_dict(cfg)["model"]
    capsys.readouterr()


def test_simple_baseline_config_drives_the_training_entry_point(tmp_path, capsys):
    people = tmp_path / "people"
    make_coco_fixture(people, images=2)
    run = tmp_path / "run"
    argv = [
        *("--config", str(COCO_CONFIGS / "simple_baseline_r50_256x192.yaml")),
        *("--image-path", str(people), "--depth", "18", "--inp-res", "64", "--inp-width", "64"),
        *("--out-res", "16", "--epochs", "1", "--workers", "0", "--train-batch", "2"),
        *("--test-batch", "4", "--device", "cpu", "--no-progress", "-c", str(run)),
    ]
    assert cli.train_main(argv) == 0
    assert (run / BEST_NAME).is_file()
    saved = load_config(run / CONFIG_FILE_NAME)
    # The file's recipe reached the run; only the overridden sizes differ.
    assert (saved.model.arch, saved.data.codec, saved.optim.solver) == (
        "simple_baseline",
        "msra",
        "adam",
    )
    assert (saved.optim.lr, saved.data.rot_factor, saved.data.scale_factor) == (1e-3, 40.0, 0.3)
    assert (saved.run.flip, saved.optim.schedule, saved.model.depth) == (True, [90, 120], 18)
    capsys.readouterr()
