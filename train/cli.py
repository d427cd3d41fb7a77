"""Entry points behind ``train/train.py``, ``train/train_multitask.py`` and ``evaluation/test.py``
(the reference's flags).

Both training scripts pick their trainer by one rule (train/multitask.py ``select_trainer``):
keypoints and part segmentation when the model has a segmentation head and the data set part
masks, keypoints only otherwise; train_multitask.py refuses the latter. Evaluating such a model
on data with masks also reports its part IoU.

Before any work the ``-c/--checkpoint`` folder is created and test-written; training without
``--resume`` refuses a folder that already holds a run (``log.txt``, TensorBoard and checkpoints
of two runs would mix). A reference checkpoint given to ``--resume`` / ``--pretrained`` turns on
its input normalisation (``reference_input``). Bad data, config and unwritable outputs end in a
one-line error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import yaml

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.registry import is_bottomup
from animalpose.evaluation.report import OUTPUT_FLAG, check_output_folder, output_errors
from animalpose.train.bottomup import BottomUpTrainer, check_bottomup
from animalpose.train.build import build_evaluator
from animalpose.train.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    is_reference_checkpoint,
)
from animalpose.train.config import Config, ConfigError
from animalpose.train.config_io import apply_overrides, config_from_dict, config_to_dict
from animalpose.train.device import init_distributed
from animalpose.train.flag_parser import parse_config
from animalpose.train.flags import TEST_FLAGS, TRAIN_FLAGS
from animalpose.train.models import MODELS
from animalpose.train.multitask import (
    MultitaskConfig,
    MultitaskTrainer,
    check_multitask,
    keypoints_only_note,
    report_segmentation,
    trains_segmentation,
)
from animalpose.train.run_folder import peek_checkpoint
from animalpose.train.trainer import Trainer

__all__ = [
    "checked_output",
    "reference_input",
    "refuse_used_folder",
    "run_training",
    "select_trainer",
    "test_main",
    "train_main",
    "train_multitask_main",
]

#: The training log (train/trainer.py) whose epoch rows mark a folder as used.
LOG_NAME = "log.txt"


def _logged_epochs(path: Path) -> int:
    """Epoch rows of a ``log.txt`` (after its header); 0 when there is none."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    return sum(1 for line in lines[1:] if line.strip())


def refuse_used_folder(cfg: Config) -> None:
    """Training without ``--resume`` into a folder that holds a run would restart it and mix both
    runs in one ``log.txt`` and TensorBoard folder: refuse, naming the ways out.

    A folder is used when it holds ``checkpoint.pth.tar`` or ``model_best.pth.tar``, or a
    ``log.txt`` with an epoch row; an empty folder, a header-only log (a run stopped in its
    first epoch) or unrelated files are fine.
    """
    if cfg.run.resume:
        return
    out = Path(cfg.run.checkpoint)
    found = [name for name in (CHECKPOINT_NAME, BEST_NAME) if (out / name).is_file()]
    epochs = _logged_epochs(out / LOG_NAME)
    if epochs:
        found.append(f"{LOG_NAME} with {epochs} epoch(s)")
    if not found:
        return
    if found[0] in (CHECKPOINT_NAME, BEST_NAME):
        way_on = f"continue it with --resume {out / found[0]}"
    else:
        way_on = f"it has no checkpoint to resume, so delete its {LOG_NAME} and tensorboard/"
    raise ConfigError(
        f"{out} already holds a training run ({', '.join(found)}); training into it without "
        f"--resume would restart it and mix both runs in one {LOG_NAME} and TensorBoard folder: "
        f"{way_on}, or choose another {OUTPUT_FLAG} folder",
        key="run.checkpoint",
    )


def checked_output(cfg: Config) -> contextlib.AbstractContextManager:
    """Create and test-write ``run.checkpoint`` now (``DataError`` if it cannot take results);
    returns the context that turns a later failed write there into a one-line ``DataError``."""
    check_output_folder(cfg.run.checkpoint)
    return output_errors(cfg.run.checkpoint)


def _given(ns: argparse.Namespace, keys: tuple[str, ...]) -> set[str]:
    """The config keys among ``keys`` that the user set: by flag, ``--set`` item or the
    ``--config`` file (read once)."""
    given = {k for k in keys if hasattr(ns, k)}
    given |= {item.split("=", 1)[0].strip() for item in ns.set} & set(keys)
    if not ns.config:
        return given
    try:
        tree: object = yaml.safe_load(Path(ns.config).read_text())
    except (OSError, yaml.YAMLError):
        return given
    for dotted in keys:
        node = tree
        for part in dotted.split("."):
            node = node.get(part, _MISSING) if isinstance(node, dict) else _MISSING
        if node is not _MISSING:
            given.add(dotted)
    return given


_MISSING = object()


#: Settings evaluation takes from the config saved in our checkpoints unless given by the user:
#: the model's shape and the input it expects (a top-down model's input width and heatmap codec
#: included; the boxes, ``data.detections``, are chosen at evaluation).
_ADOPTED = (
    "model.arch",
    "model.stacks",
    "model.blocks",
    "model.channels",
    "model.depth",
    "model.width",
    "model.keypoint_spec",
    "data.inp_res",
    "data.inp_width",
    "data.out_res",
    "data.sigma",
    "data.codec",
    "data.legacy_input",
    "data.legacy",
)


def _adopt_checkpoint_model(cfg: Config, ns: argparse.Namespace) -> Config:
    """Evaluation: take the architecture and input settings saved in our checkpoints, each unless
    the user set it (flag, ``--set`` or config file); of a reference checkpoint, which saves no
    config, its ``arch`` (``hg_multitask`` for its multitask model) unless ``-a`` is given."""
    if not cfg.run.resume or not Path(cfg.run.resume).is_file():
        return cfg
    ckpt = peek_checkpoint(cfg.run.resume)
    saved = ckpt.get("config")
    if not isinstance(saved, dict) or not saved:
        return _adopt_reference_arch(cfg, ns, ckpt.get("arch"))
    merged = config_to_dict(cfg)
    given = _given(ns, _ADOPTED)
    for dotted in _ADOPTED:
        section, key = dotted.split(".")
        if key in saved.get(section, {}) and dotted not in given:
            merged[section][key] = saved[section][key]
    return config_from_dict(merged, source=f"{cfg.run.resume} (saved config)")


def _adopt_reference_arch(cfg: Config, ns: argparse.Namespace, arch: object) -> Config:
    """``cfg`` with the reference checkpoint's ``arch`` when it names another ``MODELS`` entry
    and the user did not set one, with a one-line notice."""
    if arch not in MODELS or arch == cfg.model.arch or _given(ns, ("model.arch",)):
        return cfg
    print(f"note: {cfg.run.resume} holds an {arch} model (its 'arch'): evaluating it as {arch}")
    return apply_overrides(cfg, [f"model.arch={arch}"], source=str(cfg.run.resume))


def _get(cfg: object, dotted: str) -> object:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


#: The switches a reference checkpoint turns on unless the user set them: its input
#: normalisation (docs/reference_compat.md §7.3) and its loaders' ground truth, the legacy mode
#: of §8, so that its numbers are the reference's.
REFERENCE_SWITCHES = ("data.legacy_input", "data.legacy")


def reference_input(cfg: Config, ns: argparse.Namespace) -> Config:
    """A reference checkpoint (``is_reference_checkpoint``) as ``--resume`` or ``--pretrained``
    expects the reference's input: turn on each of ``REFERENCE_SWITCHES`` that the user did not
    set (flag, ``--set`` or config file), with a one-line notice."""
    path = cfg.run.resume or cfg.run.pretrained
    if not path or not Path(path).is_file():
        return cfg
    given = _given(ns, REFERENCE_SWITCHES)
    switches = [key for key in REFERENCE_SWITCHES if key not in given]
    switches = [key for key in switches if not _get(cfg, key)]
    if not switches:
        return cfg
    try:
        reference = is_reference_checkpoint(peek_checkpoint(path))
    except DataError:  # not a checkpoint: loading it later says so
        return cfg
    if not reference:
        return cfg
    cfg = apply_overrides(cfg, [f"{key}=true" for key in switches], source=str(path))
    shown = ", ".join(f"{key}=true" for key in switches)
    undo = " ".join(f"{key}=false" for key in switches)
    print(
        f"note: {path} is a reference checkpoint: using its input normalisation and ground "
        f"truth ({shown}; --set {undo} to override)"
    )
    return cfg


def _report(cfg: Config, *, overlays: int = 0) -> None:
    """Evaluate ``run.resume`` on ``data.eval_split``: both tables printed, the reference's
    ``preds_<split>.mat``, JSON/CSV results and the chart written into ``run.checkpoint``, which
    is checked for writing before anything is loaded or evaluated. Top-down data also gets its
    OKS AP row (naming the boxes), ``oks_results.json`` and ``keypoints_<split>_results.json``
    (``Evaluator.report``). A segmentation model on data
    with part masks (``trains_segmentation``) also gets its part IoU table and
    ``segmentation_results.json``. A bottom-up data set (``coco_bottomup``) gets the OKS AP of
    the grouped people and those two json files only (``evaluation/bottomup.py``)."""
    check_bottomup(cfg)
    check_output_folder(cfg.run.checkpoint)
    evaluator = build_evaluator(cfg)
    evaluator.report(
        Path(cfg.run.checkpoint),
        checkpoint=str(cfg.run.resume),
        animal=cfg.data.animal,
        legacy_input=cfg.data.legacy_input,
        legacy=cfg.data.legacy,
        overlays=overlays,
    )
    if trains_segmentation(cfg):
        report_segmentation(evaluator, Path(cfg.run.checkpoint), checkpoint=str(cfg.run.resume))


def run_training(body: Callable[[], None]) -> int:
    """Run a training entry point's ``body``: 0 on success, 2 (the message on stderr) for bad
    data or config; the process group that ``torchrun`` runs join is left in every case."""
    try:
        body()
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


def select_trainer(cfg: Config, *, multitask: bool) -> type[Trainer]:
    """The trainer class of ``cfg``, by one rule: ``MultitaskTrainer`` when the model has a
    segmentation head and the data set part masks (``trains_segmentation``), else ``Trainer``.
    ``multitask`` (train_multitask.py) refuses the latter (``check_multitask``); train.py trains
    a segmentation model on data without masks on its keypoints, with a printed note. A
    bottom-up data set trains with ``BottomUpTrainer`` (``check_bottomup``)."""
    check_bottomup(cfg)
    if is_bottomup(cfg.data.dataset) and not multitask:
        return BottomUpTrainer
    if multitask:
        check_multitask(cfg)
    if trains_segmentation(cfg):
        return MultitaskTrainer
    note = keypoints_only_note(cfg)
    if note:
        print(note)
    return Trainer


def _train(cfg: Config, ns: argparse.Namespace, *, multitask: bool) -> None:
    """Train ``cfg`` (or evaluate it with ``-e``) with the trainer ``select_trainer`` picks;
    ``multitask``: train_multitask.py, which needs a segmentation model and part masks."""
    init_distributed()
    cfg = reference_input(cfg, ns)
    if cfg.run.evaluate:
        if not cfg.run.resume:
            raise ConfigError("-e/--evaluate needs --resume CHECKPOINT")
        cfg = _adopt_checkpoint_model(cfg, ns)
        if multitask:
            check_multitask(cfg)
        _report(cfg)
        return
    trainer = select_trainer(cfg, multitask=multitask)
    refuse_used_folder(cfg)
    with checked_output(cfg):
        trainer(cfg).fit()


def train_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> None:
        cfg, ns = parse_config(
            argv,
            flags=TRAIN_FLAGS,
            description="Train a keypoint model "
            "(the reference's train/train.py flags; see docs/configs.md).",
        )
        _train(cfg, ns, multitask=False)

    return run_training(body)


def train_multitask_main(argv: list[str] | None = None) -> int:
    """``python train/train_multitask.py ...``: keypoints and part segmentation (the reference's
    train/train_multitask.py; its defaults: ``MultitaskConfig``)."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> None:
        cfg, ns = parse_config(
            argv,
            flags=TRAIN_FLAGS,
            config_type=MultitaskConfig,
            description="Train keypoints and part segmentation (the reference's "
            "train/train_multitask.py flags; loss = keypoints + seg_weight / (epoch + 1) * "
            "segmentation; see docs/configs.md).",
        )
        _train(cfg, ns, multitask=True)

    return run_training(body)


def test_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    overlays = 0

    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--overlays",
            type=int,
            default=0,
            metavar="N",
            help="also save N validation crops with predictions (red) and ground truth (green)",
        )

    try:
        cfg, ns = parse_config(
            argv,
            flags=TEST_FLAGS,
            extra=extra,
            description="Evaluate a "
            "checkpoint: per-joint PCK@0.05 (legacy and precise), preds.mat, chart.",
        )
        overlays = int(getattr(ns, "overlays", 0) or 0)
        if not cfg.run.resume:
            raise ConfigError("evaluation needs --resume CHECKPOINT")
        cfg = _adopt_checkpoint_model(reference_input(cfg, ns), ns)
        cfg.run.tb_images = max(cfg.run.tb_images, overlays)
        _report(cfg, overlays=overlays)
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
