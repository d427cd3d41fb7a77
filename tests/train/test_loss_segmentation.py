"""segmentation_loss and seg_weight_at: hand-computed cross-entropy, IGNORE pixels, stacks,
autocast, and the reference's 0.01 / (epoch + 1) schedule."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from animalpose.datasets.parts import IGNORE
from animalpose.train.loss import SEG_WEIGHT, seg_weight_at, segmentation_loss


def _two_by_two() -> tuple[torch.Tensor, torch.Tensor]:
    """B = 1, C = 3, 2 x 2 pixels; logits are logs of unnormalised probabilities.

    (0, 0): [1, 1, 1], label 0 -> p = 1/3, CE = ln 3
    (0, 1): [1, 2, 1], label 1 -> p = 2/4, CE = ln 2
    (1, 0): [1, 1, 2], label 0 -> p = 1/4, CE = ln 4
    (1, 1): [9, 1, 1], IGNORE  -> not counted
    Mean over the 3 counted pixels: (ln 3 + ln 2 + ln 4) / 3 = ln(24) / 3.
    """
    probs = torch.tensor(
        [[[1.0, 1.0], [1.0, 9.0]], [[1.0, 2.0], [1.0, 1.0]], [[1.0, 1.0], [2.0, 1.0]]]
    )
    labels = torch.tensor([[[0, 1], [0, IGNORE]]], dtype=torch.uint8)
    return probs.log().unsqueeze(0), labels


def test_hand_computed_value():
    logits, labels = _two_by_two()
    loss = segmentation_loss([logits], labels)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert loss.item() == pytest.approx(math.log(24) / 3, rel=1e-6)


def test_equals_the_references_criterion_on_random_data():
    """The reference's nn.CrossEntropyLoss(ignore_index=255), per stack, summed."""
    torch.manual_seed(0)
    logits = [torch.randn(2, 10, 8, 8) for _ in range(3)]
    labels = torch.randint(0, 10, (2, 8, 8))
    labels[0, :3] = IGNORE
    criterion = torch.nn.CrossEntropyLoss(ignore_index=255)
    expected = sum(criterion(o, labels) for o in logits)
    assert torch.allclose(segmentation_loss(logits, labels), expected, rtol=1e-6)
    assert torch.equal(
        segmentation_loss(logits, labels.to(torch.uint8)), segmentation_loss(logits, labels)
    )


def test_ignore_pixels_change_nothing_and_get_no_gradient():
    logits, labels = _two_by_two()
    other = logits.clone()
    other[0, :, 1, 1] = torch.tensor([-50.0, 30.0, 7.0])  # only the IGNORE pixel differs
    assert segmentation_loss([other], labels).item() == pytest.approx(
        segmentation_loss([logits], labels).item(), rel=1e-7
    )
    logits.requires_grad_(True)
    segmentation_loss([logits], labels).backward()
    assert torch.equal(logits.grad[0, :, 1, 1], torch.zeros(3))
    assert logits.grad[0, :, 0, 0].abs().sum() > 0


def test_all_ignore_gives_zero_not_nan():
    logits = torch.randn(2, 10, 4, 4, requires_grad=True)
    labels = torch.full((2, 4, 4), IGNORE, dtype=torch.uint8)
    loss = segmentation_loss([logits, logits * 2], labels)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_summed_over_stacks():
    logits, labels = _two_by_two()
    second = torch.zeros_like(logits)  # uniform: ln 3 per pixel
    total = segmentation_loss([logits, second], labels)
    assert total.item() == pytest.approx(math.log(24) / 3 + math.log(3), rel=1e-6)


def test_float32_under_bf16_autocast():
    torch.manual_seed(1)
    model = torch.nn.Conv2d(3, 10, 1)
    x = torch.randn(2, 3, 8, 8)
    labels = torch.randint(0, 10, (2, 8, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(x)
        loss = segmentation_loss([logits], labels)
    assert logits.dtype == torch.bfloat16
    assert loss.dtype == torch.float32
    expected = F.cross_entropy(logits.float(), labels)
    assert torch.allclose(loss, expected, rtol=1e-6)


def test_rejects_bad_inputs():
    logits, labels = _two_by_two()
    with pytest.raises(TypeError, match="list"):
        segmentation_loss(logits, labels)
    with pytest.raises(ValueError, match="empty"):
        segmentation_loss([], labels)
    with pytest.raises(ValueError, match="matching"):
        segmentation_loss([logits], torch.zeros(1, 2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        segmentation_loss([logits], labels.float())


def test_weight_schedule_is_the_references():
    assert SEG_WEIGHT == 0.01
    assert seg_weight_at(0, SEG_WEIGHT) == 0.01
    assert seg_weight_at(1, SEG_WEIGHT) == pytest.approx(0.005)
    assert seg_weight_at(9, SEG_WEIGHT) == pytest.approx(0.001)
    assert seg_weight_at(3, 1.0) == 0.25
    assert seg_weight_at(4, 0.0) == 0.0
    with pytest.raises(ValueError, match="0-based"):
        seg_weight_at(-1, SEG_WEIGHT)
