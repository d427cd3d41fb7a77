"""Part-segmentation metrics: confusion matrix, per-class IoU, mIoU (standard and reference).

Standard (``mean_iou``): a (C, C) confusion matrix over the pixels whose label is not
``IGNORE`` (rows: true class, columns: predicted class), accumulated over the whole data set;
per-class IoU = TP / (TP + FP + FN); mIoU = the mean over the part classes ``1..C-1`` (background
excluded, as the reference does) whose union is non-zero; nan when no part class occurs in
labels or predictions.

Reference (``reference_mean_iou``, CC-SSL ``train/train_multitask.py`` ``inter_and_union``):
per part class, intersection and union summed over the data set, IoU = I / U, averaged over all
``C - 1`` part classes: a class absent from labels and predictions everywhere counts as 0 (its
``I / (U + 1e-10)``) and pulls the mean down, and predicted pixels at ``IGNORE`` positions count
in their class's union. The reference logs this times 100 (its log.txt ``Val IOU``); here both
are fractions in [0, 1]. (Its ``+ 1e-10`` is dropped: I / U for U > 0, 0 for U = 0.)

Pure tensor functions plus a thin accumulator (``SegmentationMeter``) as ``evaluation/pck.py``.
Shapes: B batch, C classes, H x W pixels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from animalpose.datasets.parts import IGNORE, NUM_CLASSES, PART_CLASSES

__all__ = [
    "SegmentationMeter",
    "class_iou",
    "confusion_matrix",
    "ignored_predictions",
    "mean_iou",
    "pixel_accuracy",
    "reference_mean_iou",
]


def _counts(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(C + 1, C) int64 pixel counts on ``pred``'s device: row ``t < C`` column ``p`` counts
    pixels labelled ``t`` predicted ``p``; row ``C`` counts the predictions at ``IGNORE``
    pixels. One host sync (the range check)."""
    if pred.shape != labels.shape or pred.dim() != 3:
        raise ValueError(
            f"predictions {tuple(pred.shape)} and labels {tuple(labels.shape)} must both be "
            "(B, H, W)"
        )
    if pred.is_floating_point() or labels.is_floating_point():
        raise ValueError(
            f"predictions ({pred.dtype}) and labels ({labels.dtype}) must be integer class ids"
        )
    pred = pred.long()
    labels = labels.to(device=pred.device, dtype=torch.long)
    rows = torch.where(labels == IGNORE, num_classes, labels)
    bad_pred = (pred < 0) | (pred >= num_classes)
    bad_label = (rows < 0) | (rows > num_classes)
    if bool((bad_pred | bad_label).any()):
        found = torch.cat([pred[bad_pred], labels[bad_label]]).unique()[:8].tolist()
        raise ValueError(
            f"segmentation values {found} out of range: predictions must lie in "
            f"0..{num_classes - 1}, labels in 0..{num_classes - 1} or {IGNORE} (ignore)"
        )
    flat = (rows * num_classes + pred).reshape(-1)
    return torch.bincount(flat, minlength=(num_classes + 1) * num_classes).reshape(
        num_classes + 1, num_classes
    )


def confusion_matrix(
    pred: torch.Tensor, labels: torch.Tensor, num_classes: int = NUM_CLASSES
) -> torch.Tensor:
    """(C, C) int64 confusion matrix on ``pred``'s device; ``IGNORE`` pixels are left out.

    Args:
        pred: (B, H, W) predicted class ids in ``0..C-1`` (e.g. ``logits.argmax(1)``).
        labels: (B, H, W) true class ids in ``0..C-1`` or ``IGNORE`` (uint8 or long).
        num_classes: C.

    Returns:
        ``m[t, p]`` = number of pixels labelled ``t`` and predicted ``p``.

    Raises:
        ValueError: shapes differ or a value is out of range (one host sync to check).
    """
    return _counts(pred, labels, num_classes)[:num_classes]


def ignored_predictions(
    pred: torch.Tensor, labels: torch.Tensor, num_classes: int = NUM_CLASSES
) -> torch.Tensor:
    """(C,) int64: how many ``IGNORE`` pixels were predicted as each class (the reference's
    mIoU counts them in the union; ``reference_mean_iou``). Arguments as ``confusion_matrix``."""
    return _counts(pred, labels, num_classes)[num_classes]


def _numpy(counts: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(counts, torch.Tensor):
        counts = counts.detach().cpu().numpy()
    return np.asarray(counts, dtype=np.float64)


def _square(confusion: torch.Tensor | np.ndarray) -> np.ndarray:
    m = _numpy(confusion)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 2:
        raise ValueError(f"a confusion matrix must be (C, C) with C >= 2, got {m.shape}")
    return m


def class_iou(confusion: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C,) float64 IoU per class, TP / (TP + FP + FN) from a (C, C) confusion matrix
    (rows true, columns predicted); nan where the class is neither labelled nor predicted."""
    m = _square(confusion)
    tp = np.diag(m)
    union = m.sum(0) + m.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(confusion: torch.Tensor | np.ndarray) -> float:
    """Mean IoU over the part classes ``1..C-1`` (background excluded) whose union is
    non-zero; nan when there is none."""
    iou = class_iou(confusion)[1:]
    present = ~np.isnan(iou)
    return float(iou[present].mean()) if present.any() else float("nan")


def pixel_accuracy(confusion: torch.Tensor | np.ndarray) -> float:
    """Fraction of the counted (non-``IGNORE``) pixels predicted right; nan when none."""
    m = _square(confusion)
    total = m.sum()
    return float(np.trace(m) / total) if total > 0 else float("nan")


def reference_mean_iou(
    confusion: torch.Tensor | np.ndarray,
    ignored: torch.Tensor | np.ndarray | None = None,
) -> float:
    """The reference's mIoU (a fraction; the reference logs it x 100).

    Per part class ``c`` in ``1..C-1``: I = ``confusion[c, c]``, U = labelled ``c`` + predicted
    ``c`` (including the ``ignored[c]`` predictions at ``IGNORE`` pixels) - I; IoU = I / U, 0
    when U = 0; the mean is over all ``C - 1`` part classes.

    Args:
        confusion: (C, C) from ``confusion_matrix`` summed over the data set.
        ignored: (C,) from ``ignored_predictions`` summed over the same data; None counts no
            predictions at ignored pixels (a data set without ``IGNORE`` labels).
    """
    m = _square(confusion)
    extra = np.zeros(m.shape[0]) if ignored is None else _numpy(ignored)
    if extra.shape != (m.shape[0],):
        raise ValueError(
            f"ignored predictions {extra.shape} must hold one count per class ({m.shape[0]},)"
        )
    tp = np.diag(m)
    union = m.sum(0) + extra + m.sum(1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, tp / union, 0.0)
    return float(iou[1:].mean())


class SegmentationMeter:
    """Accumulates pixel counts over batches; ``result`` gives every metric above.

    ``update(output, labels)``: ``output`` is (B, C, H, W) logits (argmax over C), or (B, H, W)
    predicted ids, or the model's per-stack list of logits (the last stack is used); ``labels``
    (B, H, W) ids with ``IGNORE``. Counts stay on the device of the first batch; each update
    syncs once (the range check of ``confusion_matrix``).
    """

    def __init__(
        self, *, num_classes: int = NUM_CLASSES, class_names: Sequence[str] = PART_CLASSES
    ) -> None:
        if len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names for {num_classes} classes")
        self.num_classes = num_classes
        self.class_names = tuple(class_names)
        self.reset()

    def reset(self) -> None:
        self._counts: torch.Tensor | None = None  # (C + 1, C) int64, last row: IGNORE pixels

    def update(self, output: torch.Tensor | Sequence[torch.Tensor], labels: torch.Tensor) -> None:
        if isinstance(output, (list, tuple)):
            if not output:
                raise ValueError("output is an empty list: expected per-stack logits")
            output = output[-1]
        if output.dim() == 4:
            if output.shape[1] != self.num_classes:
                raise ValueError(
                    f"logits have {output.shape[1]} channels, the meter {self.num_classes} classes"
                )
            output = output.argmax(1)
        counts = _counts(output, labels, self.num_classes)
        if self._counts is None:
            self._counts = counts
        else:
            self._counts += counts.to(self._counts.device)

    @property
    def confusion(self) -> np.ndarray:
        """(C, C) int64 confusion matrix so far (zeros before any update)."""
        if self._counts is None:
            return np.zeros((self.num_classes, self.num_classes), dtype=np.int64)
        return self._counts[: self.num_classes].cpu().numpy()

    def result(self) -> dict:
        """``{"miou", "reference_miou", "pixel_accuracy": float, "class_iou": {name: float},
        "pixels": int}``; IoUs and accuracy are fractions, nan where undefined (see
        ``class_iou``, ``mean_iou``); ``pixels`` is the number of non-``IGNORE`` pixels
        counted."""
        if self._counts is None:
            counts = np.zeros((self.num_classes + 1, self.num_classes), dtype=np.int64)
        else:
            counts = self._counts.cpu().numpy()
        confusion, ignored = counts[: self.num_classes], counts[self.num_classes]
        iou = class_iou(confusion)
        return {
            "miou": mean_iou(confusion),
            "reference_miou": reference_mean_iou(confusion, ignored),
            "pixel_accuracy": pixel_accuracy(confusion),
            "class_iou": {name: float(v) for name, v in zip(self.class_names, iou)},
            "pixels": int(confusion.sum()),
        }
