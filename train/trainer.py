"""Supervised keypoint training: the reference's recipe on a fast, resumable loop.

``Trainer`` trains the objects ``build.build_training`` makes from a resolved ``Config``;
``fit()`` runs the epochs, validating, logging (tqdm, TensorBoard, the reference's ``log.txt``)
and checkpointing atomically after each. The hot loop never waits on the host: normalisation
and heatmap encoding run on the device, losses and accuracies accumulate there, and values are
read back only every ``run.log_every`` iterations. A non-finite loss or weight stops the run
(``TrainingDiverged``) before anything of the epoch is saved; the run folder's files and what a
resumed run may change: train/run_folder.py.

``model_best`` follows ``selection_score``: the mean legacy PCK (the reference's "Val Acc"), or on
top-down data, whose validation computes OKS AP (evaluation/evaluator.py), the AP; the
checkpoint's ``best_acc`` holds that figure. ``log.txt`` keeps the reference's columns (its Val
Acc stays the legacy PCK); the AP statistics go to the epoch line, the figures ``fit`` returns and
TensorBoard (``epoch/val_ap``, ``epoch/val_ap50``, ...).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.formats.topdown import TopDownKeypoints
from animalpose.evaluation.inference import EvalResult, autocast
from animalpose.evaluation.oks import STAT_NAMES
from animalpose.evaluation.pck import legacy_batch_accuracy
from animalpose.evaluation.report import nanmean
from animalpose.evaluation.visualize import GT_COLOR, draw_keypoints, draw_overlay
from animalpose.train.build import build_training, codec_for_epoch
from animalpose.train.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    build_checkpoint,
    non_finite_weights,
    save_checkpoint,
    unwrap_model,
)
from animalpose.train.config import CONFIG_FILE_NAME, Config, ConfigError
from animalpose.train.config_io import config_to_dict, save_config
from animalpose.train.loaders import distributed_info
from animalpose.train.run_folder import (
    LOG_COLUMNS,
    RECORD_KEY,
    ReferenceLog,
    apply_optim_settings,
    epoch_record,
    finish_epoch,
    peek_checkpoint,
    remove_interrupted_writes,
    repair_run_folder,
    resume_changes,
)

__all__ = [
    "LOG_COLUMNS",
    "EpochStats",
    "Trainer",
    "TrainingDiverged",
    "device_clock",
    "mean_batch_accuracy",
    "selection_score",
    "stage_targets",
]
#: How many tensor names a divergence error lists.
MAX_LISTED = 4


class TrainingDiverged(ConfigError):
    """The training loss or the weights became NaN or inf (usually: the learning rate is too
    high). A ``ConfigError``, so the entry points print it as a one-line error."""


@dataclass
class EpochStats:
    loss: float
    acc: float
    images: int
    seconds: float


def device_clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the work queued on ``device`` has finished."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def mean_batch_accuracy(
    heatmaps_pred: torch.Tensor, heatmaps: torch.Tensor | Sequence[torch.Tensor]
) -> torch.Tensor:
    """The reference's training accuracy of one batch: legacy PCK of the last stack's (B, K, h,
    w) heatmaps against the (B, K, h, w) targets (of a list of per-stage targets, the last),
    averaged over the keypoints valid in the batch (0-d, on the device)."""
    if not isinstance(heatmaps, torch.Tensor):
        heatmaps = heatmaps[-1]
    acc = legacy_batch_accuracy(heatmaps_pred.detach().float(), heatmaps)
    valid = acc >= 0
    return torch.where(valid, acc, 0).sum() / valid.sum().clamp_min(1)


def stage_targets(
    codec: MSRAHeatmap,
    scales: Sequence[float],
    keypoints: torch.Tensor,
    visible: torch.Tensor,
    heatmaps: torch.Tensor | None = None,
) -> list[torch.Tensor]:
    """Coarse-to-fine supervision (MSPN): one target per model output, output i's Gaussians of
    sigma ``codec.sigma * scales[i]`` (``codec.with_sigma``; same class, sizes and options).

    Args:
        codec: the epoch's codec (``data.sigma``, decayed by ``data.sigma_decay``).
        scales: the model's ``stage_sigma_scales``, one positive factor per output.
        keypoints: (B, K, 2) input pixels; visible: (B, K), as ``codec.encode`` takes them.
        heatmaps: ``codec.encode``'s own targets, reused for a scale of 1 (else encoded again).

    Returns:
        ``len(scales)`` (B, K, h, w) targets. The keypoint weights stay those of ``codec``
        itself: which keypoints count does not depend on a stage's Gaussian.
    """
    if not scales or not all(s > 0 for s in scales):
        raise ValueError(f"stage_sigma_scales must be positive factors, one per output: {scales}")
    if not callable(getattr(codec, "with_sigma", None)):
        raise ConfigError(
            f"the model's stage_sigma_scales {tuple(scales)} scale the target Gaussians, but "
            f"codec {type(codec).__name__} has no sigma to scale (with_sigma); use a Gaussian "
            "heatmap codec (data.codec)"
        )
    targets = []
    for scale in scales:
        if scale == 1 and heatmaps is not None:
            targets.append(heatmaps)
        else:
            targets.append(codec.with_sigma(codec.sigma * scale).encode(keypoints, visible)[0])
    return targets


def selection_score(val: EvalResult) -> float:
    """The figure ``model_best`` follows: OKS AP when the validation computed it (top-down data),
    else the mean legacy PCK (0 when no keypoint was valid), as the reference."""
    if val.oks is not None:
        return float(val.oks["AP"])
    return val.legacy_mean if np.isfinite(val.legacy).any() else 0.0


class Trainer:
    """Trains what ``build_training`` makes of ``cfg``: ``fit()`` runs the epochs."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rank, self.world_size = distributed_info()
        self.is_main = self.rank == 0
        self.out_dir = Path(cfg.run.checkpoint)
        # Refuse a resume with other settings before building anything (run_folder.py).
        changes = resume_changes(cfg, peek_checkpoint(cfg.run.resume)) if cfg.run.resume else []
        parts = build_training(cfg, validation_dataset=self.validation_dataset)
        self.device, self.spec, self.amp = parts.device, parts.spec, parts.amp
        #: The keyword arguments every dataset of this run is built with (build_dataset).
        self.dataset_kwargs = parts.dataset_kwargs
        self.train_set, self.val_set = parts.train_set, parts.val_set
        self.train_loader = parts.train_loader
        self.normalizer, self.memory_format = parts.normalizer, parts.memory_format
        #: uint8 (B, 3, H, W) on the device -> normalised model input (``build.model_input``).
        self._normalize = parts.normalize
        #: The run's codec; ``codec_at(epoch)`` applies ``data.sigma_decay``.
        self.codec: MSRAHeatmap = parts.codec
        self.model, self.net, self.loss_fn = parts.model, parts.net, parts.loss_fn
        self.optimizer, self.scheduler = parts.optimizer, parts.scheduler
        self.start_epoch, self.best_acc = parts.start
        #: Validates on ``val_set`` with ``model`` (evaluation/evaluator.py).
        self.evaluator = parts.evaluator
        self.writer = None
        if changes:
            apply_optim_settings(cfg, self.optimizer, self.scheduler, self.start_epoch)
            if self.is_main:
                print(
                    f"=> from epoch {self.start_epoch + 1} on: "
                    + ", ".join(f"{k} {a!r} -> {b!r}" for k, a, b in changes)
                )

    @property
    def validation_dataset(self) -> str:
        """The data set whose valid split validates (selects) models: the training set's."""
        return self.cfg.data.dataset

    @property
    def stage_sigma_scales(self) -> tuple[float, ...]:
        """The model's ``stage_sigma_scales`` (per-output target sigma factors, MSPN's
        coarse-to-fine supervision), () when it has none: every output gets ``data.sigma``."""
        return tuple(getattr(unwrap_model(self.model), "stage_sigma_scales", None) or ())

    def codec_at(self, epoch: int) -> MSRAHeatmap:
        """The codec of 0-based ``epoch`` (``build.codec_for_epoch``)."""
        return codec_for_epoch(self.codec, epoch, self.cfg.data.sigma_decay)

    # -- checkpoints --------------------------------------------------------------------------
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

    def epoch_record(self, row: list[float], val: EvalResult, is_best: bool) -> dict:
        """The checkpoint's ``RECORD_KEY`` entry of an epoch (run_folder.py ``epoch_record``):
        its log ``row`` under ``log_columns``, validation predictions, best or not."""
        return epoch_record(row, val.preds, is_best, columns=self.log_columns)

    def _save(self, epoch: int, val: EvalResult, is_best: bool, row: list[float]) -> None:
        """Commit the epoch's checkpoint, holding its log ``row`` and predictions, then write the
        files that follow from it (run_folder.py: a resumed run repairs them after a kill)."""
        state = self.checkpoint_state(epoch)
        state[RECORD_KEY] = record = self.epoch_record(row, val, is_best)
        save_checkpoint(state, self.out_dir, is_best=is_best, snapshot=self.cfg.run.snapshot)
        finish_epoch(self.out_dir, record)

    # -- divergence guard ---------------------------------------------------------------------
    def check_finite(self, epoch: int, loss: float) -> None:
        """Raise ``TrainingDiverged`` when ``loss`` or any weight of the model is NaN or inf
        (decided together by all processes)."""
        bad = non_finite_weights(unwrap_model(self.model).state_dict())
        diverged = torch.tensor(float(bool(bad) or not math.isfinite(loss)), device=self.device)
        if self.world_size > 1:
            torch.distributed.all_reduce(diverged, op=torch.distributed.ReduceOp.MAX)
        if diverged.item() == 0:
            return
        last = self.out_dir / CHECKPOINT_NAME
        kept = f"{last} is kept" if last.is_file() else "no checkpoint was written"
        tensors = ", ".join(bad[:MAX_LISTED]) + (", ..." if len(bad) > MAX_LISTED else "")
        raise TrainingDiverged(
            f"training diverged in epoch {epoch + 1}: the training loss is {loss:.4g}"
            + (f" and {len(bad)} weight tensors hold NaN or inf ({tensors})" if bad else "")
            + f". Nothing of this epoch was saved; {kept}. Lower the learning rate (--lr, "
            f"{self.cfg.optim.lr:g} now) or check the data, then resume or start over"
        )

    # -- one epoch ----------------------------------------------------------------------------
    def prepare(self, batch: dict, codec: MSRAHeatmap):
        """Batch -> (normalised images, targets, (B, K) weights), all on the device. The
        targets are ``codec``'s (B, K, h, w) heatmaps, or for a model with
        ``stage_sigma_scales`` a list of one per output (``stage_targets``)."""
        images = batch["image"].to(self.device, non_blocking=True)
        keypoints = batch["keypoints"].to(self.device, non_blocking=True)
        x = self._normalize(images)
        xy, visible = keypoints[..., :2], keypoints[..., 2]
        heatmaps, weights = codec.encode(xy, visible)
        scales = self.stage_sigma_scales
        if scales:
            heatmaps = stage_targets(codec, scales, xy, visible, heatmaps)
        return x, heatmaps, weights

    def step(self, batch: dict, codec: MSRAHeatmap):
        """One optimisation step on ``batch`` -> (loss, per-stack outputs, targets as
        ``prepare`` makes them)."""
        x, heatmaps, weights = self.prepare(batch, codec)
        with autocast(self.device, self.amp):
            outputs = self.net(x)
        loss = self.loss_fn(outputs, heatmaps, weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach(), outputs, heatmaps

    def progress_bar(self, images: int, epoch: int) -> tqdm:
        """The epoch's progress bar over ``images`` (all ranks), on the main process only."""
        return tqdm(
            total=images,
            unit="img",
            desc=f"epoch {epoch + 1}/{self.cfg.optim.epochs}",
            dynamic_ncols=True,
            disable=not (self.cfg.run.progress and self.is_main),
        )

    def train_epoch(self, epoch: int) -> EpochStats:
        codec = self.codec_at(epoch)
        self.net.train()
        self.train_loader.sampler.set_epoch(epoch)
        self.train_set.set_epoch(epoch)
        loss_sum = torch.zeros((), device=self.device)
        acc_sum = torch.zeros((), device=self.device)
        log_every = max(1, self.cfg.run.log_every)
        steps = len(self.train_loader)
        bar = self.progress_bar(steps * self.cfg.data.train_batch * self.world_size, epoch)
        start = device_clock(self.device)
        images_seen = 0
        for it, batch in enumerate(self.train_loader):
            loss, outputs, heatmaps = self.step(batch, codec)
            acc_sum += mean_batch_accuracy(outputs[-1], heatmaps)
            loss_sum += loss.detach()
            n = outputs[-1].shape[0]
            images_seen += n
            bar.update(n * self.world_size)
            if self.cfg.run.debug and epoch == self.start_epoch and it == 0 and self.is_main:
                self._debug_batch(batch)
            if (it + 1) % log_every == 0 or it + 1 == steps:
                mean_loss = (loss_sum / (it + 1)).item()  # the one host sync per log_every steps
                mean_acc = (acc_sum / (it + 1)).item()
                if not math.isfinite(mean_loss) and self.world_size == 1:
                    self.check_finite(epoch, mean_loss)  # stop now, not at the end of the epoch
                bar.set_postfix(loss=f"{mean_loss:.3e}", acc=f"{mean_acc:.3f}")
                if self.writer is not None:
                    step = epoch * steps + it + 1
                    self.writer.add_scalar("train/loss", loss.item(), step)
                    self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], step)
                    self.log_step(step)
        bar.close()
        seconds = device_clock(self.device) - start
        steps = max(steps, 1)
        return EpochStats(
            (loss_sum / steps).item(),
            (acc_sum / steps).item(),
            images_seen * self.world_size,
            seconds,
        )

    def log_step(self, step: int) -> None:
        """Called with the global ``step`` where the training scalars go to TensorBoard (every
        ``run.log_every`` iterations, main process): a subclass adds its own."""

    def validate(self, epoch: int = 0) -> EvalResult:
        """Both metrics of the current weights on ``val_set`` with the codec of ``epoch``."""
        return self.evaluator.evaluate(self.codec_at(epoch))

    # -- the run ------------------------------------------------------------------------------
    #: How epoch lines name the validation split.
    val_label = "val"
    #: The columns of the run's ``log.txt`` (and of ``log_row``): the reference's train.py's.
    log_columns: tuple[str, ...] = LOG_COLUMNS

    @property
    def continues_run(self) -> bool:
        """This run continues an earlier one (``log.txt`` is appended to, not restarted)."""
        return bool(self.cfg.run.resume)

    def describe(self) -> str:
        """The line printed when ``fit`` starts (top-down data: boxes, no animal or stacks)."""
        cfg = self.cfg
        params = f"{sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M parameters"
        if isinstance(self.val_set, TopDownKeypoints):
            return (
                f"=> {cfg.data.dataset} (top-down): {len(self.train_set)} train / "
                f"{len(self.val_set)} valid boxes; {cfg.model.arch}, {params}; device {self.device}"
            )
        return (
            f"=> {cfg.data.dataset} ({cfg.data.animal}): {len(self.train_set)} train / "
            f"{len(self.val_set)} valid samples; {cfg.model.arch} {cfg.model.stacks} stacks, "
            f"{params}; device {self.device}"
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
            removed = remove_interrupted_writes(self.out_dir)
            if removed:
                print(f"=> removed {len(removed)} temporary file(s) of an interrupted run")
            save_config(cfg, self.out_dir / CONFIG_FILE_NAME)
            self.writer = SummaryWriter(log_dir=str(self.out_dir / "tensorboard"))
            ReferenceLog(
                self.out_dir / "log.txt", resume=self.continues_run, columns=self.log_columns
            )
            print(self.describe())
            self._continue_folder()
        try:
            for epoch in range(self.start_epoch, cfg.optim.epochs):
                summary = self._fit_epoch(epoch, on_epoch_end) or summary
        finally:
            if self.is_main and self.writer is not None:
                self.writer.close()
        return summary

    def _continue_folder(self) -> None:
        """A continued run: rewrite what a kill left stale in the folder; say when nothing is
        left to train."""
        cfg = self.cfg
        own = self.out_dir / CHECKPOINT_NAME
        resumed = Path(cfg.run.resume) if cfg.run.resume else own
        if self.continues_run and own.is_file() and resumed.resolve() == own.resolve():
            repaired = repair_run_folder(self.out_dir, snapshot=cfg.run.snapshot)
            if repaired:
                print(
                    f"=> the run was stopped after {own} was written: rewrote "
                    + ", ".join(repaired)
                )
        if self.start_epoch >= cfg.optim.epochs:
            done = (
                f"{resumed} has finished epoch {self.start_epoch}"
                if self.continues_run
                else (f"it starts at epoch {self.start_epoch + 1}")
            )
            print(
                f"warning: nothing to train: {done} and --epochs is {cfg.optim.epochs}; pass "
                f"--epochs N with N > {self.start_epoch} to train on",
                file=sys.stderr,
            )

    def _fit_epoch(self, epoch: int, on_epoch_end) -> dict | None:
        """One epoch of ``fit``: train, check, validate, save, log; the main process's figures."""
        self.before_epoch(epoch)
        lr = self.optimizer.param_groups[0]["lr"]
        stats = self.train_epoch(epoch)
        self.check_finite(epoch, stats.loss)
        self.scheduler.step()
        if self.world_size > 1:
            torch.distributed.barrier()
        if not self.is_main:
            return None
        val = self.validate(epoch)
        val_acc = val.legacy_mean if np.isfinite(val.legacy).any() else 0.0
        score = selection_score(val)  # val_acc, or the AP of top-down data
        # The first validated epoch always writes model_best (the reference needs acc > 0).
        is_best = score > self.best_acc or not (self.out_dir / BEST_NAME).exists()
        self.best_acc = max(score, self.best_acc)
        self._save(epoch, val, is_best, self.log_row(epoch, lr, stats, val, val_acc))
        self._log_epoch(epoch, stats, val)
        summary = self.epoch_summary(epoch, stats, val, val_acc)
        print(self.epoch_line(summary))
        if on_epoch_end is not None:
            on_epoch_end(epoch, val)
        return summary

    def log_row(
        self, epoch: int, lr: float, stats: EpochStats, val: EvalResult, val_acc: float
    ) -> list[float]:
        """The epoch's ``log.txt`` row, one value per ``log_columns`` entry."""
        row = [epoch + 1, lr, stats.loss, val.loss or 0.0, stats.acc, val_acc]
        return [*row, val.legacy_auc, val.legacy_mean_error]

    def epoch_summary(self, epoch: int, stats: EpochStats, val: EvalResult, val_acc: float) -> dict:
        """The figures ``fit`` returns for the epoch (and ``epoch_line`` prints); with OKS AP
        also ``val_ap``, ``val_ap50``, ... and ``val_boxes``, the boxes it used (``best_acc`` is
        then the best AP)."""
        summary = {
            "epoch": epoch + 1,
            "train_loss": stats.loss,
            "train_acc": stats.acc,
            "val_loss": val.loss,
            "val_acc_legacy": val_acc,
            "val_acc_precise": val.precise_mean,
            "best_acc": self.best_acc,
            "train_img_per_s": stats.images / max(stats.seconds, 1e-9),
        }
        if val.oks is not None:
            summary.update({f"val_{name.lower()}": val.oks[name] for name in STAT_NAMES})
            summary["val_boxes"] = self.evaluator.box_source()
        return summary

    @staticmethod
    def ap_text(summary: dict) -> str:
        """`` AP .. AP50 .. (boxes)`` of an epoch summary with OKS figures (percent), else ""."""
        if "val_ap" not in summary:
            return ""
        return (
            f" AP {100 * summary['val_ap']:.2f} AP50 {100 * summary['val_ap50']:.2f} "
            f"({summary['val_boxes']})"
        )

    def epoch_line(self, summary: dict) -> str:
        """The line printed after each epoch, from ``epoch_summary``'s figures (OKS AP and AP50
        when present, in percent)."""
        ap = self.ap_text(summary)
        return (
            f"epoch {summary['epoch']}: train loss {summary['train_loss']:.3e} "
            f"acc {summary['train_acc']:.4f} | {self.val_label} loss "
            f"{(summary['val_loss'] or 0):.3e}{ap} PCK@0.05 legacy "
            f"{100 * summary['val_acc_legacy']:.2f} precise "
            f"{100 * summary['val_acc_precise']:.2f} | {summary['train_img_per_s']:.1f} img/s"
        )

    def _log_epoch(self, epoch: int, stats: EpochStats, val: EvalResult) -> None:
        w = self.writer
        e = epoch + 1
        w.add_scalar("epoch/train_loss", stats.loss, e)
        w.add_scalar("epoch/train_acc", stats.acc, e)
        w.add_scalar("epoch/train_img_per_s", stats.images / max(stats.seconds, 1e-9), e)
        if val.loss is not None:
            w.add_scalar("epoch/val_loss", val.loss, e)
        w.add_scalar("epoch/val_pck_legacy", val.legacy_mean, e)
        w.add_scalar("epoch/val_pck_precise", val.precise_mean, e)
        for name, value in (val.oks or {}).items():
            w.add_scalar(f"epoch/val_{name.lower()}", value, e)
        for part, idx in self.spec.part_indices.items():
            w.add_scalar(f"val_pck_precise/{part}", nanmean(val.precise[idx]), e)
        if val.overlays:
            drawn = [draw_overlay(crop, pred, gt, self.spec) for crop, pred, gt in val.overlays]
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
            tiles.append(draw_keypoints(crop, k, self.spec, color=GT_COLOR))
        grid = np.concatenate(tiles, axis=1)
        cv2.imwrite(str(self.out_dir / "debug_train_batch.png"), grid[..., ::-1])
