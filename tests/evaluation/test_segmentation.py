"""Segmentation metrics on hand-made maps: confusion matrix, IoU, mIoU (standard and the
reference's variant), pixel accuracy, and the accumulating meter."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from animalpose.datasets.parts import IGNORE, NUM_CLASSES, PART_CLASSES
from animalpose.evaluation.segmentation import (
    SegmentationMeter,
    class_iou,
    confusion_matrix,
    ignored_predictions,
    mean_iou,
    pixel_accuracy,
    reference_mean_iou,
)

I = IGNORE  # noqa: E741  (short name keeps the hand-made maps readable)

#: C = 3. Pixels (true -> predicted): 0->0, 1->1, 1->2, 2->2, 2->1, IGNORE->1.
LABELS = torch.tensor([[[0, 1, 1], [2, 2, I]]], dtype=torch.uint8)
PRED = torch.tensor([[[0, 1, 2], [2, 1, 1]]])
CONFUSION = [[1, 0, 0], [0, 1, 1], [0, 1, 1]]


def test_confusion_matrix_by_hand():
    m = confusion_matrix(PRED, LABELS, 3)
    assert m.dtype == torch.int64 and m.device == PRED.device
    assert m.tolist() == CONFUSION
    assert ignored_predictions(PRED, LABELS, 3).tolist() == [0, 1, 0]


def test_iou_miou_accuracy_by_hand():
    # class 0: TP 1, union 1 -> 1; classes 1 and 2: TP 1, union 2 + 2 - 1 = 3 -> 1/3.
    assert np.allclose(class_iou(np.array(CONFUSION)), [1.0, 1 / 3, 1 / 3])
    assert mean_iou(torch.tensor(CONFUSION)) == pytest.approx(1 / 3)  # background left out
    assert pixel_accuracy(CONFUSION) == pytest.approx(3 / 5)


def test_reference_variant_counts_predictions_at_ignore_pixels():
    # Class 1's reference union adds the IGNORE pixel predicted 1: 2 + 1 + 2 - 1 = 4 -> 1/4.
    ignored = ignored_predictions(PRED, LABELS, 3)
    assert reference_mean_iou(CONFUSION, ignored) == pytest.approx((1 / 4 + 1 / 3) / 2)
    assert reference_mean_iou(CONFUSION) == pytest.approx(1 / 3)  # no ignore pixels given


def test_absent_class_is_nan_in_standard_and_zero_in_reference():
    labels = torch.tensor([[[0, 1], [1, 2]]])
    pred = torch.tensor([[[0, 1], [2, 2]]])
    m = confusion_matrix(pred, labels, 4)  # class 3 appears nowhere
    iou = class_iou(m)
    assert np.allclose(iou[:3], [1.0, 1 / 2, 1 / 2]) and math.isnan(iou[3])
    assert mean_iou(m) == pytest.approx(1 / 2)  # mean over classes 1 and 2
    assert reference_mean_iou(m) == pytest.approx((1 / 2 + 1 / 2 + 0) / 3)


def test_nan_when_no_part_class_occurs():
    labels = torch.zeros(1, 2, 2, dtype=torch.long)
    m = confusion_matrix(torch.zeros_like(labels), labels, 3)
    assert class_iou(m)[0] == 1.0 and np.isnan(class_iou(m)[1:]).all()
    assert math.isnan(mean_iou(m))
    assert reference_mean_iou(m) == 0.0
    everything_ignored = torch.full((1, 2, 2), IGNORE)
    empty = confusion_matrix(torch.zeros_like(labels), everything_ignored, 3)
    assert empty.sum() == 0 and math.isnan(pixel_accuracy(empty)) and math.isnan(mean_iou(empty))


def test_confusion_matrix_against_a_pixel_loop():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, NUM_CLASSES, (3, 9, 7))
    labels[rng.random(labels.shape) < 0.2] = IGNORE
    pred = rng.integers(0, NUM_CLASSES, labels.shape)
    expected = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=np.int64)
    for t, p in zip(labels.ravel(), pred.ravel()):
        if t != IGNORE:
            expected[t, p] += 1
    m = confusion_matrix(torch.from_numpy(pred), torch.from_numpy(labels.astype(np.uint8)))
    assert np.array_equal(m.numpy(), expected)
    assert m.sum() == (labels != IGNORE).sum()


def test_reference_variant_equals_the_references_histogram_formula():
    """Re-derived from the reference's ``inter_and_union``: per part class, I = pixels where
    pred == label == c, U = (pred == c anywhere) + (label == c) - I, summed over batches,
    IoU = I / (U + 1e-10), mean over classes 1..9."""
    rng = np.random.default_rng(1)
    inter, union = np.zeros(NUM_CLASSES - 1), np.zeros(NUM_CLASSES - 1)
    meter = SegmentationMeter()
    for _ in range(3):
        labels = rng.integers(0, NUM_CLASSES - 1, (2, 6, 6))  # class 9 never labelled
        labels[rng.random(labels.shape) < 0.3] = IGNORE
        pred = rng.integers(0, NUM_CLASSES, labels.shape)
        for c in range(1, NUM_CLASSES):
            i = ((pred == c) & (labels == c)).sum()
            inter[c - 1] += i
            union[c - 1] += (pred == c).sum() + (labels == c).sum() - i
        meter.update(torch.from_numpy(pred), torch.from_numpy(labels.astype(np.uint8)))
    expected = float((inter / (union + 1e-10)).mean())
    assert meter.result()["reference_miou"] == pytest.approx(expected, rel=1e-8)
    assert meter.result()["miou"] != pytest.approx(expected)  # ignore pixels make them differ


def test_rejects_out_of_range_values_and_shapes():
    labels = torch.tensor([[[0, 5]]])
    with pytest.raises(ValueError, match=r"\[5\] out of range"):
        confusion_matrix(torch.zeros_like(labels), labels, 3)
    with pytest.raises(ValueError, match="out of range"):
        confusion_matrix(torch.tensor([[[0, 3]]]), torch.zeros(1, 1, 2, dtype=torch.long), 3)
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        confusion_matrix(torch.zeros(1, 2, 2, dtype=torch.long), torch.zeros(1, 2, 3), 3)
    with pytest.raises(ValueError, match="one count per class"):
        reference_mean_iou(CONFUSION, [0, 1])


def test_meter_accumulates_logits_batches_and_reports_by_name():
    torch.manual_seed(0)
    logits = [torch.randn(2, NUM_CLASSES, 5, 5) for _ in range(2)]
    labels = torch.randint(0, NUM_CLASSES, (2, 2, 5, 5), dtype=torch.uint8)
    labels[0, 0, 0, 0] = IGNORE
    meter = SegmentationMeter()
    for batch in range(2):
        meter.update(logits[batch], labels[batch])
    whole = confusion_matrix(torch.cat(logits).argmax(1), labels.reshape(4, 5, 5))
    assert np.array_equal(meter.confusion, whole.numpy())
    result = meter.result()
    assert set(result) == {"miou", "reference_miou", "pixel_accuracy", "class_iou", "pixels"}
    assert list(result["class_iou"]) == list(PART_CLASSES)
    assert np.allclose(list(result["class_iou"].values()), class_iou(whole), equal_nan=True)
    assert result["miou"] == pytest.approx(mean_iou(whole))
    assert result["pixel_accuracy"] == pytest.approx(pixel_accuracy(whole))
    assert result["pixels"] == 4 * 25 - 1
    meter.reset()
    assert meter.result()["pixels"] == 0 and math.isnan(meter.result()["miou"])


def test_meter_uses_the_last_stack_of_a_list():
    labels = torch.tensor([[[1, 2]]])
    wrong = torch.zeros(1, 3, 1, 2)
    right = torch.zeros(1, 3, 1, 2)
    right[0, 1, 0, 0] = right[0, 2, 0, 1] = 5.0
    meter = SegmentationMeter(num_classes=3, class_names=("background", "a", "b"))
    meter.update([wrong, right], labels)
    assert meter.result()["miou"] == 1.0 and meter.result()["pixel_accuracy"] == 1.0
    with pytest.raises(ValueError, match="channels"):
        meter.update(torch.zeros(1, 4, 1, 2), labels)
