"""Entry points behind ``train/train.py`` and ``evaluation/test.py`` (the reference's flags).

Before any work the ``-c/--checkpoint`` folder is created and test-written; training without
``--resume`` refuses a folder that already holds a run (``log.txt``, TensorBoard and checkpoints
of two runs would mix). Bad data, config and unwritable outputs end in a one-line error.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from animalpose.datasets.fileio import DataError
from animalpose.evaluation.report import OUTPUT_FLAG, check_output_folder, output_errors
from animalpose.train.build import build_evaluator
from animalpose.train.checkpoint import BEST_NAME, CHECKPOINT_NAME, load_checkpoint
from animalpose.train.config import Config, ConfigError
from animalpose.train.config_io import config_from_dict, config_to_dict
from animalpose.train.device import init_distributed
from animalpose.train.flags import TRAIN_FLAGS, parse_config
from animalpose.train.trainer import Trainer

__all__ = ["checked_output", "refuse_used_folder", "run_training", "test_main", "train_main"]

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


def _adopt_checkpoint_model(cfg: Config, argv: list[str]) -> Config:
    """Evaluation: take the architecture and input settings saved in our checkpoints, unless the
    user set them on the command line or in a config file (reference checkpoints carry none)."""
    if "--config" in argv or not cfg.run.resume or not Path(cfg.run.resume).is_file():
        return cfg
    saved = load_checkpoint(cfg.run.resume).get("config")
    if not isinstance(saved, dict):
        return cfg
    given = {a.split("=")[0] for a in argv if a.startswith("-")}
    model_flags = {"-a", "--arch", "-s", "--stacks", "-b", "--blocks", "--inp-res", "--out-res"}
    if given & model_flags:
        return cfg
    merged = config_to_dict(cfg)
    merged["model"] = saved.get("model", merged["model"])
    for key in ("inp_res", "out_res", "sigma", "legacy_input"):
        if key in saved.get("data", {}):
            merged["data"][key] = saved["data"][key]
    return config_from_dict(merged, source=f"{cfg.run.resume} (saved config)")


def _report(cfg: Config, *, overlays: int = 0) -> None:
    """Evaluate ``run.resume`` on ``data.eval_split``: both tables printed, the reference's
    ``preds_<split>.mat``, JSON/CSV results and the chart written into ``run.checkpoint``, which
    is checked for writing before anything is loaded or evaluated."""
    check_output_folder(cfg.run.checkpoint)
    build_evaluator(cfg).report(
        Path(cfg.run.checkpoint),
        checkpoint=str(cfg.run.resume),
        animal=cfg.data.animal,
        legacy_input=cfg.data.legacy_input,
        overlays=overlays,
    )


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


def train_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)

    def body() -> None:
        cfg, _ = parse_config(
            argv,
            flags=TRAIN_FLAGS,
            description="Train a keypoint model "
            "(the reference's train/train.py flags; see docs/configs.md).",
        )
        init_distributed()
        if cfg.run.evaluate:
            if not cfg.run.resume:
                raise ConfigError("-e/--evaluate needs --resume CHECKPOINT")
            _report(_adopt_checkpoint_model(cfg, argv))
            return
        refuse_used_folder(cfg)
        with checked_output(cfg):
            Trainer(cfg).fit()

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
            flags=TRAIN_FLAGS,
            extra=extra,
            description="Evaluate a "
            "checkpoint: per-joint PCK@0.05 (legacy and precise), preds.mat, chart.",
        )
        overlays = int(getattr(ns, "overlays", 0) or 0)
        if not cfg.run.resume:
            raise ConfigError("evaluation needs --resume CHECKPOINT")
        cfg = _adopt_checkpoint_model(cfg, argv)
        cfg.run.tb_images = max(cfg.run.tb_images, overlays)
        _report(cfg, overlays=overlays)
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
