"""Entry points behind ``train/train.py`` and ``evaluation/test.py`` (the reference's flags)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch

from animalpose.datasets.fileio import DataError
from animalpose.train.build import build_evaluator, init_distributed
from animalpose.train.checkpoint import load_checkpoint
from animalpose.train.config import Config, ConfigError
from animalpose.train.config_io import config_from_dict, config_to_dict
from animalpose.train.flags import TRAIN_FLAGS, parse_config
from animalpose.train.trainer import Trainer

__all__ = ["run_training", "test_main", "train_main"]


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
    ``preds_<split>.mat``, JSON/CSV results and the chart written into ``run.checkpoint``."""
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
