"""Supervised keypoint training: the reference's recipe on a fast, resumable loop.

One ``Trainer`` turns a resolved ``Config`` into datasets, loaders, model, optimiser and
schedule; ``fit()`` runs the epochs, validating, logging (tqdm, TensorBoard, the reference's
``log.txt``) and checkpointing atomically after each. The hot loop never waits on the host:
normalisation and heatmap encoding run on the device, losses and accuracies accumulate there,
and values are read back only every ``run.log_every`` iterations.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.formats.registry import build_dataset, dataset_mean_std
from animalpose.datasets.keypoints import KeypointSpec, get_spec
from animalpose.datasets.transforms.crop import Normalizer
from animalpose.evaluation.inference import EvalResult, evaluate
from animalpose.evaluation.pck import legacy_batch_accuracy
from animalpose.evaluation.report import pck_table, save_preds_mat
from animalpose.evaluation.visualize import draw_keypoints
from animalpose.train.checkpoint import (
    BEST_NAME,
    build_checkpoint,
    load_checkpoint,
    load_model_weights,
    restore_training_state,
    save_checkpoint,
)
from animalpose.train.config import CONFIG_FILE_NAME, Config, config_to_dict, save_config
from animalpose.train.loaders import distributed_info, make_loader
from animalpose.train.loss import KeypointMSELoss
from animalpose.train.models import build_model

__all__ = ["Trainer", "resolve_device", "build_codec", "build_optimizer", "EpochStats"]

#: The reference's log.txt columns (bearpaw/pytorch-pose Logger), tab separated.
LOG_COLUMNS = ("Epoch", "LR", "Train Loss", "Val Loss", "Train Acc", "Val Acc")


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> the local CUDA device when present, else CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available")
    return device


def build_codec(cfg: Config, epoch: int = 0) -> MSRAHeatmap:
    """The heatmap codec for ``epoch`` (sigma shrinks by ``sigma_decay`` per epoch when > 0)."""
    d = cfg.data
    sigma = d.sigma * (d.sigma_decay**epoch if d.sigma_decay > 0 else 1.0)
    return MSRAHeatmap((d.inp_res, d.inp_res), (d.out_res, d.out_res), sigma=sigma)


def build_optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    """The reference's optimisers: RMSprop (alpha 0.99, eps 1e-8) or Adam."""
    o = cfg.optim
    if o.solver == "rms":
        return torch.optim.RMSprop(
            params, lr=o.lr, alpha=0.99, eps=1e-8, momentum=o.momentum, weight_decay=o.weight_decay
        )
    if o.solver == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    raise ValueError(f"unknown solver {o.solver!r}; valid: ['rms', 'adam']")


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    seconds: float


class Trainer:
    """Builds everything from a resolved config; ``fit()`` trains, ``evaluate()`` evaluates."""

    def __init__(self, cfg: Config, *, train: bool = True) -> None:
        self.cfg = cfg
        self.rank, self.world_size = distributed_info()
        self.is_main = self.rank == 0
        self.device = resolve_device(cfg.run.device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        torch.manual_seed(cfg.run.seed)
        self.spec: KeypointSpec = get_spec(cfg.model.keypoint_spec)
        self.out_dir = Path(cfg.run.checkpoint)
        self.amp = cfg.run.amp and self.device.type == "cuda"

        d = cfg.data
        common = dict(
            root=d.image_path,
            animal=d.animal,
            input_size=d.inp_res,
            spec=self.spec,
            seed=d.seed,
            scale_factor=d.scale_factor,
            rot_factor=d.rot_factor,
            augment_backend=d.augment_backend,
            split_dir=d.split_dir or None,
            vertex_table=d.vertex_table or None,
        )
        #: The keyword arguments every dataset of this run is built with (build_dataset).
        self.dataset_kwargs = common
        # Training validates (selects models) on "valid"; an evaluation-only Trainer reports on
        # data.eval_split ("valid" or a benchmark's held-out "test").
        self.eval_split = "valid" if train else d.eval_split
        self.val_set = build_dataset(
            self.validation_dataset, split=self.eval_split, limit=d.val_limit, **common
        )
        self.train_set = (
            build_dataset(
                d.dataset, split="train", limit=d.train_limit, augment_seed=cfg.run.seed, **common
            )
            if train
            else None
        )
        mean, std = dataset_mean_std(
            d.dataset,
            root=d.image_path,
            animal=d.animal,
            split_dir=d.split_dir or None,
            vertex_table=d.vertex_table or None,
            seed=d.seed,
        )
        self.normalizer = Normalizer(mean, std, legacy=d.legacy_input)

        self.model = build_model(
            cfg.model.arch,
            num_stacks=cfg.model.stacks,
            num_blocks=cfg.model.blocks,
            num_keypoints=self.spec.num_keypoints,
            channels=cfg.model.channels,
        ).to(self.device)
        self.memory_format = (
            torch.channels_last if cfg.run.channels_last else torch.contiguous_format
        )
        self.model = self.model.to(memory_format=self.memory_format)
        self.loss_fn = KeypointMSELoss()
        self.optimizer = build_optimizer(cfg, self.model.parameters())
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=list(cfg.optim.schedule), gamma=cfg.optim.gamma
        )
        self.start_epoch = cfg.optim.start_epoch
        self.best_acc = 0.0
        if cfg.run.resume:
            self._resume(cfg.run.resume)
        elif cfg.run.pretrained:
            load_model_weights(self.model, cfg.run.pretrained)
            if self.is_main:
                print(f"=> initial weights from {cfg.run.pretrained}")

        self.net: nn.Module = self.model
        if self.world_size > 1:
            self.net = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        if cfg.run.compile:
            self.net = torch.compile(self.net)

        self.val_loader = make_loader(
            self.val_set,
            batch_size=d.test_batch,
            shuffle=False,
            workers=d.workers,
            seed=d.seed,
            device=self.device,
            shard=False,
        )
        self.train_loader = (
            make_loader(
                self.train_set,
                batch_size=d.train_batch,
                shuffle=True,
                workers=d.workers,
                seed=cfg.run.seed,
                device=self.device,
                drop_last=len(self.train_set) > d.train_batch,
            )
            if train
            else None
        )
        self.writer = None

    # -- checkpoints --------------------------------------------------------------------------
    def _resume(self, path: str) -> None:
        ckpt = load_checkpoint(path, map_location="cpu")
        training = self.train_set is not None
        state = restore_training_state(
            ckpt,
            model=self.model,
            optimizer=self.optimizer if training else None,
            scheduler=self.scheduler if training else None,
            restore_rng=training,
        )
        self.start_epoch, self.best_acc = state.start_epoch, state.best_acc
        if training and ckpt.get("scheduler") is None:
            # A reference checkpoint has no scheduler: rebuild its position from the epoch.
            self.scheduler.last_epoch = self.start_epoch
            done = sum(m <= self.start_epoch for m in self.cfg.optim.schedule)
            for group in self.optimizer.param_groups:
                group["lr"] = self.cfg.optim.lr * self.cfg.optim.gamma**done
        if self.is_main:
            print(
                f"=> resumed {path} (next epoch {self.start_epoch}, best acc {self.best_acc:.4f})"
            )

    @property
    def validation_dataset(self) -> str:
        """The data set whose ``eval_split`` validates (selects) models: the training set's."""
        return self.cfg.data.dataset

    def checkpoint_state(self, epoch: int) -> dict:
        """The checkpoint written after 0-based ``epoch`` (the reference's keys plus ours)."""
        return build_checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            epoch=epoch + 1,
            best_acc=self.best_acc,
            keypoint_spec=self.spec.name,
            arch=self.cfg.model.arch,
            config=config_to_dict(self.cfg),
            scheduler=self.scheduler,
        )

    def _save(self, epoch: int, val: EvalResult, is_best: bool) -> None:
        state = self.checkpoint_state(epoch)
        save_checkpoint(state, self.out_dir, is_best=is_best, snapshot=self.cfg.run.snapshot)
        save_preds_mat(self.out_dir / "preds.mat", val.preds)
        if is_best:
            save_preds_mat(self.out_dir / "preds_best.mat", val.preds)

    # -- one epoch ----------------------------------------------------------------------------
    def _autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _normalize(self, images: torch.Tensor) -> torch.Tensor:
        return self.normalizer(images).contiguous(memory_format=self.memory_format)

    def prepare(self, batch: dict, codec: MSRAHeatmap):
        """Batch -> (normalised images, target heatmaps, weights), all on the device."""
        images = batch["image"].to(self.device, non_blocking=True)
        keypoints = batch["keypoints"].to(self.device, non_blocking=True)
        x = self._normalize(images)
        heatmaps, weights = codec.encode(keypoints[..., :2], keypoints[..., 2])
        return x, heatmaps, weights

    def step(self, batch: dict, codec: MSRAHeatmap):
        """One optimisation step on ``batch`` -> (loss, per-stack outputs, target heatmaps)."""
        x, heatmaps, weights = self.prepare(batch, codec)
        with self._autocast():
            outputs = self.net(x)
        loss = self.loss_fn(outputs, heatmaps, weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), outputs, heatmaps

    def train_epoch(self, epoch: int) -> EpochStats:
        codec = build_codec(self.cfg, epoch)
        self.net.train()
        self.train_loader.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        loss_sum = torch.zeros((), device=self.device)
        acc_sum = torch.zeros((), device=self.device)
        log_every = max(1, self.cfg.run.log_every)
        steps = len(self.train_loader)
        bar = tqdm(
            total=steps * self.cfg.data.train_batch * self.world_size,
            unit="img",
            desc=f"epoch {epoch + 1}/{self.cfg.optim.epochs}",
            dynamic_ncols=True,
            disable=not (self.cfg.run.progress and self.is_main),
        )
        start = _now(self.device)
        images_seen = 0
        for it, batch in enumerate(self.train_loader):
            loss, outputs, heatmaps = self.step(batch, codec)
            acc = legacy_batch_accuracy(outputs[-1].detach().float(), heatmaps)
            valid = acc >= 0
            acc_sum += torch.where(valid, acc, 0).sum() / valid.sum().clamp_min(1)
            loss_sum += loss.detach()
            n = heatmaps.shape[0]
            images_seen += n
            bar.update(n * self.world_size)
            if self.cfg.run.debug and epoch == self.start_epoch and it == 0 and self.is_main:
                self._debug_batch(batch)
            if (it + 1) % log_every == 0 or it + 1 == steps:
                mean_loss = (loss_sum / (it + 1)).item()  # the one host sync per log_every steps
                mean_acc = (acc_sum / (it + 1)).item()
                bar.set_postfix(loss=f"{mean_loss:.3e}", acc=f"{mean_acc:.3f}")
                if self.writer is not None:
                    step = epoch * steps + it + 1
                    self.writer.add_scalar("train/loss", loss.item(), step)
                    self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], step)
        bar.close()
        seconds = _now(self.device) - start
        steps = max(steps, 1)
        return EpochStats(
            (loss_sum / steps).item(),
            (acc_sum / steps).item(),
            images_seen * self.world_size,
            seconds,
        )

    def validate(self, epoch: int = 0) -> EvalResult:
        return evaluate(
            self.model,
            self.val_loader,
            codec=build_codec(self.cfg, epoch),
            normalizer=self._normalize,
            device=self.device,
            flip_index=self.spec.flip_index if self.cfg.run.flip else None,
            permutation=None,  # datasets return model order
            loss_fn=self.loss_fn,
            amp=self.amp,
            progress=self.cfg.run.progress and self.is_main,
            max_images_for_overlay=self.cfg.run.tb_images,
        )

    # -- the run ------------------------------------------------------------------------------
    #: How epoch lines name the validation split.
    val_label = "val"

    @property
    def continues_run(self) -> bool:
        """This run continues an earlier one (``log.txt`` is appended to, not restarted)."""
        return bool(self.cfg.run.resume)

    def describe(self) -> str:
        """The line printed when ``fit`` starts."""
        cfg = self.cfg
        return (
            f"=> {cfg.data.dataset} ({cfg.data.animal}): {len(self.train_set)} train / "
            f"{len(self.val_set)} valid samples; {cfg.model.arch} {cfg.model.stacks} stacks, "
            f"{sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M parameters; "
            f"device {self.device}"
        )

    def before_epoch(self, epoch: int) -> None:
        """Called at the start of each epoch of ``fit`` on every process (adaptation: rounds)."""

    def fit(self, *, on_epoch_end: Callable[[int, EvalResult], None] | None = None) -> dict:
        """Train from ``start_epoch`` to ``optim.epochs``; returns the last epoch's figures.

        ``on_epoch_end(epoch, val)``: called on the main process after each epoch's checkpoint
        is written (0-based ``epoch``, ``val`` its validation result), e.g. to evaluate the
        current weights on another split (``benchmarks/domain_gap.py``).
        """
        cfg = self.cfg
        summary: dict = {}
        if self.is_main:
            from torch.utils.tensorboard import SummaryWriter

            self.out_dir.mkdir(parents=True, exist_ok=True)
            save_config(cfg, self.out_dir / CONFIG_FILE_NAME)
            self.writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))
            log = _ReferenceLog(self.out_dir / "log.txt", resume=self.continues_run)
            print(self.describe())
        for epoch in range(self.start_epoch, cfg.optim.epochs):
            self.before_epoch(epoch)
            lr = self.optimizer.param_groups[0]["lr"]
            stats = self.train_epoch(epoch)
            self.scheduler.step()
            if self.world_size > 1:
                torch.distributed.barrier()
            if not self.is_main:
                continue
            val = self.validate(epoch)
            val_acc = float(np.nanmean(val.legacy)) if np.isfinite(val.legacy).any() else 0.0
            # The first validated epoch always writes model_best (the reference needs acc > 0).
            is_best = val_acc > self.best_acc or not (self.out_dir / BEST_NAME).exists()
            self.best_acc = max(val_acc, self.best_acc)
            self._save(epoch, val, is_best)
            log.append([epoch + 1, lr, stats.loss, val.loss or 0.0, stats.acc, val_acc])
            self._log_epoch(epoch, stats, val)
            summary = {
                "epoch": epoch + 1,
                "train_loss": stats.loss,
                "train_acc": stats.acc,
                "val_loss": val.loss,
                "val_acc_legacy": val_acc,
                "val_acc_precise": float(np.nanmean(val.precise)),
                "best_acc": self.best_acc,
                "train_img_per_s": stats.images / max(stats.seconds, 1e-9),
            }
            print(
                f"epoch {epoch + 1}: train loss {stats.loss:.3e} acc {stats.acc:.4f} | "
                f"{self.val_label} loss {(val.loss or 0):.3e} PCK@0.05 legacy {100 * val_acc:.2f} "
                f"precise {100 * summary['val_acc_precise']:.2f} | "
                f"{summary['train_img_per_s']:.1f} img/s"
            )
            if on_epoch_end is not None:
                on_epoch_end(epoch, val)
        if self.is_main and self.writer is not None:
            self.writer.close()
        return summary

    def _log_epoch(self, epoch: int, stats: EpochStats, val: EvalResult) -> None:
        w = self.writer
        e = epoch + 1
        w.add_scalar("epoch/train_loss", stats.loss, e)
        w.add_scalar("epoch/train_acc", stats.acc, e)
        w.add_scalar("epoch/train_img_per_s", stats.images / max(stats.seconds, 1e-9), e)
        if val.loss is not None:
            w.add_scalar("epoch/val_loss", val.loss, e)
        w.add_scalar("epoch/val_pck_legacy", float(np.nanmean(val.legacy)), e)
        w.add_scalar("epoch/val_pck_precise", float(np.nanmean(val.precise)), e)
        for part, idx in self.spec.part_indices.items():
            w.add_scalar(f"val_pck_precise/{part}", float(np.nanmean(val.precise[idx])), e)
        if val.overlays:
            drawn = []
            for crop, pred, gt in val.overlays:
                img = draw_keypoints(crop, gt, self.spec, color=(0, 255, 0))
                drawn.append(draw_keypoints(img, pred, self.spec, color=(255, 0, 0)))
            w.add_images(
                "val/predictions(red)_vs_gt(green)", np.stack(drawn), e, dataformats="NHWC"
            )
        w.flush()

    def _debug_batch(self, batch: dict) -> None:
        """-d/--debug: write the first training batch with its keypoints drawn to the run folder."""
        import cv2

        tiles = []
        for img, kp in zip(batch["image"][:8], batch["keypoints"][:8]):
            crop = np.ascontiguousarray(img.permute(1, 2, 0).numpy())
            k = kp.numpy().copy()
            k[k[:, 2] <= 0, :2] = np.nan
            tiles.append(draw_keypoints(crop, k, self.spec, color=(0, 255, 0)))
        grid = np.concatenate(tiles, axis=1)
        cv2.imwrite(str(self.out_dir / "debug_train_batch.png"), grid[..., ::-1])

    def evaluate_and_report(self, *, save_dir: Path | None = None) -> EvalResult:
        """Evaluate the current weights on ``eval_split`` and print both PCK tables."""
        val = self.validate(self.start_epoch)
        on = f"{self.cfg.data.dataset} {self.eval_split} split, {len(self.val_set)} images"
        print(
            pck_table(
                val.legacy,
                self.spec,
                title=f"PCK@0.05, legacy metric (reference, paper-comparable); {on}",
            )
        )
        print(
            pck_table(
                val.precise,
                self.spec,
                title=f"PCK@0.05, precise metric (annotation coordinates, sub-pixel); {on}",
            )
        )
        return val


class _ReferenceLog:
    """The reference's ``log.txt``: a tab-separated header, then one row per epoch."""

    def __init__(self, path: Path, resume: bool) -> None:
        self.path = path
        if not (resume and path.exists()):
            path.write_text("\t".join(LOG_COLUMNS) + "\n")

    def append(self, values: list[float]) -> None:
        with open(self.path, "a") as f:
            f.write("\t".join(f"{float(v):.6f}" for v in values) + "\n")


def _now(device: torch.device) -> float:
    import time

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
