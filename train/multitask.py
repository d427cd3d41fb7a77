"""Multitask training: keypoints and part segmentation, the reference's train/train_multitask.py.

A model with a segmentation head (``hg_multitask``, ``MODELS[arch].segmentation``) trained on a
data set whose samples carry part masks (``synthetic_animal_sp_multitask``) minimises

    loss = L_keypoints + seg_weight / (epoch + 1) * L_segmentation

(``optim.seg_weight``, the reference's 0.01; ``train.loss.seg_weight_at``), where
``L_segmentation`` is the pixel cross-entropy (ignore 255) summed over stacks.
``trains_segmentation`` is the one rule that picks this trainer (train/cli.py
``select_trainer``), for ``train/train.py`` and ``train/train_multitask.py`` alike.

Validation adds a second forward pass over the validation loader for the part logits (plain
crops, no flip test; about the cost of one keypoint validation without flip), giving the
per-class IoU and mIoU (evaluation/segmentation.py). As in the reference, ``log.txt``'s Train
Loss and Val Loss are the keypoint losses and model_best is chosen by keypoint Val Acc; its Val
IOU column is the reference's mean part IoU in percent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from animalpose.datasets.fileio import DataError, atomic_write
from animalpose.datasets.formats.registry import DATASETS
from animalpose.datasets.formats.synthetic_multitask import SyntheticAnimalMultitask
from animalpose.evaluation.evaluator import Evaluator
from animalpose.evaluation.inference import EvalResult, autocast, eval_mode
from animalpose.evaluation.report import output_errors
from animalpose.evaluation.segmentation import SegmentationMeter
from animalpose.train.config import Config, ConfigError, DataConfig, ModelConfig
from animalpose.train.loss import seg_weight_at, segmentation_loss
from animalpose.train.models import MODELS
from animalpose.train.run_folder import MULTITASK_LOG_COLUMNS, RECORD_KEY, peek_checkpoint
from animalpose.train.trainer import EpochStats, Trainer

__all__ = [
    "MULTITASK_ARCH",
    "MULTITASK_DATASET",
    "SEGMENTATION_RESULTS",
    "MultitaskConfig",
    "MultitaskTrainer",
    "SegmentationResult",
    "check_multitask",
    "evaluate_segmentation",
    "has_segmentation_head",
    "report_segmentation",
    "keypoints_only_note",
    "segmentation_table",
    "trains_segmentation",
    "yields_masks",
]

#: train_multitask.py's defaults where the reference's parser differs from train.py's: its data
#: set, and 8 stacks. Its default arch ``hg`` cannot train part masks (its loop unpacks two
#: outputs), so ours is the multitask model its documented command names.
MULTITASK_DATASET = "synthetic_animal_sp_multitask"
MULTITASK_ARCH = "hg_multitask"
MULTITASK_STACKS = 8
#: File the segmentation results of an evaluation go to, beside ``pck_results.json``.
SEGMENTATION_RESULTS = "segmentation_results.json"
#: Entry of an epoch record (``RECORD_KEY``) holding the epoch's segmentation figures.
SEGMENTATION_RECORD = "segmentation"


# -- the rule ----------------------------------------------------------------------------------
def has_segmentation_head(arch: str) -> bool:
    """Whether model ``arch`` (a ``MODELS`` key) predicts part segmentation."""
    return bool(getattr(MODELS[arch], "segmentation", False))


def yields_masks(dataset: str) -> bool:
    """Whether data set ``dataset`` (a ``DATASETS`` key) gives each sample a part mask
    (``sample["segmentation"]``)."""
    return issubclass(DATASETS[dataset].cls, SyntheticAnimalMultitask)


def trains_segmentation(cfg: Config) -> bool:
    """The one rule: a run trains (and evaluates) part segmentation when its model has a
    segmentation head and its data set has part masks."""
    return has_segmentation_head(cfg.model.arch) and yields_masks(cfg.data.dataset)


def check_multitask(cfg: Config) -> None:
    """Raise ``ConfigError`` (one line naming the model, the data set and the fix) unless
    ``trains_segmentation(cfg)``."""
    if trains_segmentation(cfg):
        return
    arch, dataset = cfg.model.arch, cfg.data.dataset
    problems = []
    if not has_segmentation_head(arch):
        problems.append(f"-a/--arch {arch} has no part-segmentation head")
    if not yields_masks(dataset):
        problems.append(f"--dataset {dataset} has no part masks")
    raise ConfigError(
        "multitask training needs a part-segmentation model and part masks: "
        f"{' and '.join(problems)}; "
        f"use -a {MULTITASK_ARCH} --dataset {MULTITASK_DATASET}, or train keypoints only with "
        "train/train.py"
    )


def keypoints_only_note(cfg: Config) -> str:
    """The note printed when a segmentation model trains on a data set without masks; "" when
    that is not the case."""
    if not has_segmentation_head(cfg.model.arch) or yields_masks(cfg.data.dataset):
        return ""
    return (
        f"note: {cfg.data.dataset} has no part masks: training the keypoints of "
        f"{cfg.model.arch} only, its segmentation head stays untrained (--dataset "
        f"{MULTITASK_DATASET} trains both)"
    )


# -- configuration -----------------------------------------------------------------------------
def _multitask_data() -> DataConfig:
    return DataConfig(dataset=MULTITASK_DATASET)


def _multitask_model() -> ModelConfig:
    return ModelConfig(arch=MULTITASK_ARCH, stacks=MULTITASK_STACKS)


@dataclass(kw_only=True)
class MultitaskConfig(Config):
    """train/train_multitask.py's defaults (``MULTITASK_DATASET``, ``MULTITASK_ARCH``,
    ``MULTITASK_STACKS``); the same keys as ``Config``."""

    data: DataConfig = field(default_factory=_multitask_data)
    model: ModelConfig = field(default_factory=_multitask_model)


# -- the segmentation pass ---------------------------------------------------------------------
@dataclass
class SegmentationResult:
    """Part segmentation of one pass over a data set (evaluation/segmentation.py).

    Attributes:
        loss: mean segmentation loss per image (cross-entropy summed over stacks).
        miou: mean IoU over the part classes present (background excluded), nan when none.
        reference_miou: the reference's mean over all 9 part classes (its log's Val IOU / 100).
        pixel_accuracy: fraction of non-ignored pixels classified right.
        class_iou: IoU per class name (background included), nan where undefined.
        pixels: non-ignored pixels counted. images: images seen.
    """

    loss: float
    miou: float
    reference_miou: float
    pixel_accuracy: float
    class_iou: dict[str, float]
    pixels: int
    images: int


def evaluate_segmentation(
    model: nn.Module,
    loader: Iterable[dict],
    *,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    amp: bool = False,
    progress: bool = False,
) -> SegmentationResult:
    """Part segmentation of ``model`` over ``loader`` in eval mode (restored afterwards).

    Args:
        model: returns ``(heatmaps, seg_logits)`` for ``model(x, with_segmentation=True)``,
            ``seg_logits`` per-stack (B, C, H, W) at the input resolution.
        loader: batches of the sample contract plus ``segmentation`` (B, H, W) uint8 labels.
        normalize: uint8 (B, 3, H, W) on the device -> model input (the evaluator's).
        device: where ``model`` lives. amp: bfloat16 autocast of the forward.
    """
    meter = SegmentationMeter()
    loss_sum = torch.zeros((), device=device)
    images = 0
    with eval_mode(model), torch.inference_mode():
        for batch in tqdm(loader, desc="segmentation", unit="batch", disable=not progress):
            if "segmentation" not in batch:
                raise DataError(
                    "the evaluated data set has no part masks (samples without 'segmentation')"
                )
            x = normalize(batch["image"].to(device, non_blocking=True))
            labels = batch["segmentation"].to(device, non_blocking=True)
            with autocast(device, amp):
                _, seg_outputs = model(x, with_segmentation=True)
            n = labels.shape[0]
            loss_sum += segmentation_loss(seg_outputs, labels) * n
            meter.update(seg_outputs[-1], labels)
            images += n
    r = meter.result()
    return SegmentationResult(
        loss=loss_sum.item() / max(images, 1),
        miou=r["miou"],
        reference_miou=r["reference_miou"],
        pixel_accuracy=r["pixel_accuracy"],
        class_iou=dict(r["class_iou"]),
        pixels=r["pixels"],
        images=images,
    )


def _percent(value: float) -> str:
    return f"{100 * value:.2f}" if math.isfinite(value) else "-"


def segmentation_table(result: SegmentationResult, *, title: str) -> str:
    """A text table: IoU per class, then mIoU, the reference's mIoU and pixel accuracy, in
    percent ("-" where undefined)."""
    width = max(len(n) for n in (*result.class_iou, "reference mIoU"))
    rule = "-" * (width + 12)
    lines = [title, rule, f"{'class':<{width}}  {'IoU (%)':>8}", rule]
    lines += [f"{n:<{width}}  {_percent(v):>8}" for n, v in result.class_iou.items()]
    lines += [
        rule,
        f"{'mIoU':<{width}}  {_percent(result.miou):>8}",
        f"{'reference mIoU':<{width}}  {_percent(result.reference_miou):>8}",
        f"{'pixel accuracy':<{width}}  {_percent(result.pixel_accuracy):>8}",
        rule,
    ]
    return "\n".join(lines)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    return value


def report_segmentation(
    evaluator: Evaluator, out_dir: Path, *, checkpoint: str
) -> SegmentationResult:
    """Part segmentation of the evaluator's model on its data: print the table, write
    ``SEGMENTATION_RESULTS`` (fractions, null for undefined) into ``out_dir``."""
    result = evaluate_segmentation(
        evaluator.model,
        evaluator.loader,
        normalize=evaluator.normalizer,
        device=evaluator.device,
        amp=evaluator.amp,
        progress=evaluator.progress,
    )
    on = f"{evaluator.name} {evaluator.split} split, {result.images} images"
    print(segmentation_table(result, title=f"Part segmentation IoU; {on}"))
    doc = {
        **_json_safe(asdict(result)),
        "unit": "fraction",
        "extra": {"checkpoint": checkpoint, "dataset": evaluator.name, "split": evaluator.split},
    }
    path = Path(out_dir) / SEGMENTATION_RESULTS
    with output_errors(out_dir), atomic_write(path, "w") as f:
        f.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    print(f"=> part segmentation results in {path}")
    return result


# -- the trainer -------------------------------------------------------------------------------
class MultitaskTrainer(Trainer):
    """``Trainer`` of keypoints and part segmentation (module docs); ``fit()`` runs it."""

    log_columns = MULTITASK_LOG_COLUMNS

    def __init__(self, cfg: Config) -> None:
        check_multitask(cfg)
        super().__init__(cfg)
        #: The segmentation-loss weight of the current epoch (set by ``train_epoch``).
        self.seg_weight = seg_weight_at(self.start_epoch, cfg.optim.seg_weight)
        #: Detached device tensors of the last step: keypoints, segmentation, total loss.
        self.step_losses: dict[str, torch.Tensor] = {}
        self._seg_loss_sum = torch.zeros((), device=self.device)
        self.train_seg_loss = float("nan")
        #: The last validation's segmentation figures, and the best mIoU so far.
        self.val_segmentation: SegmentationResult | None = None
        self.best_miou = self._resumed_best_miou()

    def _resumed_best_miou(self) -> float:
        if not self.cfg.run.resume:
            return float("nan")
        record = peek_checkpoint(self.cfg.run.resume).get(RECORD_KEY)
        seg = record.get(SEGMENTATION_RECORD) if isinstance(record, dict) else None
        return float(seg["best_miou"]) if isinstance(seg, dict) else float("nan")

    def describe(self) -> str:
        return (
            f"{super().describe()}; part segmentation weighted "
            f"{self.cfg.optim.seg_weight:g} / (epoch + 1)"
        )

    # -- one epoch ----------------------------------------------------------------------------
    def step(self, batch: dict, codec):
        """One step on ``loss_kpt + seg_weight * loss_seg`` -> (keypoint loss, per-stack
        heatmaps, target heatmaps), as ``Trainer.step``; all losses in ``step_losses``."""
        x, heatmaps, weights = self.prepare(batch, codec)
        labels = batch["segmentation"].to(self.device, non_blocking=True)
        with autocast(self.device, self.amp):
            outputs, seg_outputs = self.net(x, with_segmentation=True)
        loss_kpt = self.loss_fn(outputs, heatmaps, weights)
        loss_seg = segmentation_loss(seg_outputs, labels)
        loss = loss_kpt + self.seg_weight * loss_seg
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step_losses = {
            "keypoints": loss_kpt.detach(),
            "segmentation": loss_seg.detach(),
            "total": loss.detach(),
        }
        self._seg_loss_sum += loss_seg.detach()
        return loss_kpt.detach(), outputs, heatmaps

    def train_epoch(self, epoch: int) -> EpochStats:
        """``Trainer.train_epoch`` with the segmentation weight of 0-based ``epoch``; the
        epoch's mean segmentation loss goes to ``train_seg_loss``."""
        self.seg_weight = seg_weight_at(epoch, self.cfg.optim.seg_weight)
        self._seg_loss_sum = torch.zeros((), device=self.device)
        stats = super().train_epoch(epoch)
        self.train_seg_loss = (self._seg_loss_sum / max(len(self.train_loader), 1)).item()
        return stats

    def log_step(self, step: int) -> None:
        w = self.writer
        w.add_scalar("train/seg_loss", self.step_losses["segmentation"].item(), step)
        w.add_scalar("train/total_loss", self.step_losses["total"].item(), step)
        w.add_scalar("train/seg_weight", self.seg_weight, step)

    def validate(self, epoch: int = 0) -> EvalResult:
        """Keypoints as ``Trainer.validate``, then a segmentation pass over the same loader
        (``val_segmentation``; ``best_miou`` follows it)."""
        val = super().validate(epoch)
        ev = self.evaluator
        self.val_segmentation = seg = evaluate_segmentation(
            ev.model,
            ev.loader,
            normalize=ev.normalizer,
            device=ev.device,
            amp=ev.amp,
            progress=ev.progress,
        )
        if math.isnan(self.best_miou) or seg.miou > self.best_miou:  # nan: none yet
            self.best_miou = seg.miou
        return val

    # -- epoch outputs ------------------------------------------------------------------------
    def log_row(
        self, epoch: int, lr: float, stats: EpochStats, val: EvalResult, val_acc: float
    ) -> list[float]:
        """``MULTITASK_LOG_COLUMNS``: keypoint losses and accuracies, then the reference's
        mean part IoU in percent (its Val IOU)."""
        row = [epoch + 1, lr, stats.loss, val.loss or 0.0, stats.acc, val_acc]
        return [*row, 100 * self.val_segmentation.reference_miou]

    def epoch_record(self, row: list[float], val: EvalResult, is_best: bool) -> dict:
        record = super().epoch_record(row, val, is_best)
        seg = self.val_segmentation
        record[SEGMENTATION_RECORD] = {
            "miou": seg.miou,
            "reference_miou": seg.reference_miou,
            "pixel_accuracy": seg.pixel_accuracy,
            "class_iou": dict(seg.class_iou),
            "loss": seg.loss,
            "train_loss": self.train_seg_loss,
            "best_miou": self.best_miou,
        }
        return record

    def epoch_summary(self, epoch: int, stats: EpochStats, val: EvalResult, val_acc: float) -> dict:
        seg = self.val_segmentation
        return {
            **super().epoch_summary(epoch, stats, val, val_acc),
            "train_seg_loss": self.train_seg_loss,
            "seg_weight": self.seg_weight,
            "val_seg_loss": seg.loss,
            "val_miou": seg.miou,
            "val_miou_reference": seg.reference_miou,
            "val_pixel_accuracy": seg.pixel_accuracy,
            "best_miou": self.best_miou,
        }

    def epoch_line(self, summary: dict) -> str:
        return f"{super().epoch_line(summary)} | mIoU {_percent(summary['val_miou'])}"

    def _log_epoch(self, epoch: int, stats: EpochStats, val: EvalResult) -> None:
        super()._log_epoch(epoch, stats, val)
        w, e, seg = self.writer, epoch + 1, self.val_segmentation
        w.add_scalar("epoch/train_seg_loss", self.train_seg_loss, e)
        w.add_scalar("epoch/seg_weight", self.seg_weight, e)
        w.add_scalar("epoch/val_seg_loss", seg.loss, e)
        w.add_scalar("epoch/val_miou", seg.miou, e)
        w.add_scalar("epoch/val_miou_reference", seg.reference_miou, e)
        w.add_scalar("epoch/val_pixel_accuracy", seg.pixel_accuracy, e)
        for name, iou in seg.class_iou.items():
            w.add_scalar(f"val_iou/{name}", iou, e)
        w.flush()
