"""Entry points behind ``train/train.py`` and ``evaluation/test.py`` (the reference's flags)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from animalpose.datasets.fileio import DataError
from animalpose.evaluation.report import plot_pck, save_preds_mat, save_results
from animalpose.evaluation.visualize import draw_keypoints
from animalpose.train.checkpoint import load_checkpoint
from animalpose.train.config import Config, ConfigError, config_from_dict, config_to_dict
from animalpose.train.flags import TRAIN_FLAGS, parse_config
from animalpose.train.trainer import Trainer

__all__ = ["run_training", "test_main", "train_main"]


def _init_distributed() -> None:
    """Join the process group when launched by ``torchrun`` with more than one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)


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


def _report(trainer: Trainer, out_dir: Path, *, overlays: int = 0) -> dict:
    """Evaluate on ``trainer.eval_split``, print both tables, write ``preds_<split>.mat``
    (the reference's ``preds_valid.mat`` for the valid split), JSON/CSV results and the chart."""
    val = trainer.evaluate_and_report()
    spec = trainer.spec
    split = trainer.eval_split
    preds_name = f"preds_{split}.mat"
    out_dir.mkdir(parents=True, exist_ok=True)
    save_preds_mat(out_dir / preds_name, val.preds)
    extra = {
        "checkpoint": str(trainer.cfg.run.resume),
        "dataset": trainer.cfg.data.dataset,
        "animal": trainer.cfg.data.animal,
        "split": split,
        "images": int(len(val.preds)),
        "flip_test": bool(trainer.cfg.run.flip),
        "legacy_input": bool(trainer.cfg.data.legacy_input),
    }
    split_indices = getattr(trainer.val_set, "indices", None)
    if split_indices is not None:  # which samples: indices into the full sample list, in order
        extra["sample_indices"] = np.asarray(split_indices)[val.indices].tolist()
    paths = save_results(out_dir, spec=spec, legacy=val.legacy, precise=val.precise, extra=extra)
    plot_pck(
        out_dir / "pck.png",
        spec=spec,
        results={"legacy (reference metric)": val.legacy, "precise": val.precise},
    )
    if overlays:
        import cv2

        over_dir = out_dir / "overlays"
        over_dir.mkdir(exist_ok=True)
        for i, (crop, pred, gt) in enumerate(val.overlays[:overlays]):
            img = draw_keypoints(
                draw_keypoints(crop, gt, spec, color=(0, 255, 0)), pred, spec, color=(255, 0, 0)
            )
            cv2.imwrite(str(over_dir / f"{i:04d}.png"), img[..., ::-1])
    print(
        f"=> {split} split results in {out_dir} ({', '.join(Path(p).name for p in paths)}, "
        f"pck.png, {preds_name})"
    )
    return {"legacy": float(np.nanmean(val.legacy)), "precise": float(np.nanmean(val.precise))}


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
        _init_distributed()
        if cfg.run.evaluate:
            if not cfg.run.resume:
                raise ConfigError("-e/--evaluate needs --resume CHECKPOINT")
            cfg = _adopt_checkpoint_model(cfg, argv)
            _report(Trainer(cfg, train=False), Path(cfg.run.checkpoint))
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
        _report(Trainer(cfg, train=False), Path(cfg.run.checkpoint), overlays=overlays)
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
