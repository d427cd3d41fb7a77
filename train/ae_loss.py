"""Associative Embedding loss (Newell, Huang & Deng, "Associative Embedding: End-to-End Learning
for Joint Detection and Grouping", NeurIPS 2017), as HigherHRNet trains it
(HRNet/HigherHRNet-Human-Pose-Estimation ``lib/core/loss.py``: ``HeatmapLoss``, ``AELoss``,
``MultiLossFactory`` and the loop of ``lib/core/trainer.py``).

A bottom-up model predicts, per keypoint type, a detection heatmap and a tag map (a T-dimensional
embedding per pixel, T = 1 in the paper). For every person the reference embedding is the mean of
the tags read at the person's labelled keypoints:

- pull (per image) = mean over persons of the mean squared distance of the person's keypoint tags
  to its reference (the mean runs over the person's keypoints and the T tag dimensions);
- push (per image) = mean over ordered pairs of distinct persons of ``exp(-|r_n - r_n'|^2)``
  ("exp") or ``max(0, 1 - |r_n - r_n'|)`` ("max"), halved: ``sum / (N (N - 1)) / 2``;
  0 with fewer than two persons (pull 0 without any).

``ae_tag_loss`` computes both for a batch at once (no loop over images or persons). ``AELoss``
adds the heatmap term, ``mean((pred - target)^2 * weights)`` per image (no 0.5 factor: the
reference's ``HeatmapLoss``, not ``JointsMSELoss``), summed over the model's list of outputs
(HigherHRNet: strides 4 and 2, each against its own targets). The weights may be HigherHRNet's
loss masks (``transforms.bottomup.bottomup_targets(..., masks=)``): 0 over crowds and people
without labelled keypoints, whose pixels then add nothing (the mean still runs over all
pixels, as the reference's); the tags are never masked.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "AELoss",
    "HEATMAP_WEIGHT",
    "LOSS_TYPES",
    "PULL_WEIGHT",
    "PUSH_WEIGHT",
    "ae_tag_loss",
    "heatmap_loss",
]

#: Push terms of the reference's ``AELoss``: ``exp(-d^2)`` or ``max(0, 1 - |d|)``.
LOSS_TYPES = ("exp", "max")
#: HigherHRNet's ``LOSS.HEATMAPS_LOSS_FACTOR`` (``experiments/coco/higher_hrnet/*.yaml``).
HEATMAP_WEIGHT = 1.0
#: HigherHRNet's ``LOSS.PUSH_LOSS_FACTOR``: the tag terms are a thousandth of the heatmap term.
PUSH_WEIGHT = 1e-3
#: HigherHRNet's ``LOSS.PULL_LOSS_FACTOR``.
PULL_WEIGHT = 1e-3
#: Floor of a squared tag distance before its square root ("max" push): keeps the gradient
#: finite when two persons' reference tags coincide (the distance is then 1e-6, not 0).
_MIN_SQUARED_DISTANCE = 1e-12


def _tags_5d(tags: torch.Tensor, num_keypoints: int) -> torch.Tensor:
    """(B, K, h, w), (B, K * T, h, w) (keypoint k in channels T k .. T k + T - 1) or
    (B, K, T, h, w) tag maps -> (B, K, T, h, w)."""
    if tags.dim() == 5:
        if tags.shape[1] != num_keypoints:
            raise ValueError(
                f"tags {tuple(tags.shape)} must be (B, K, T, h, w) with K = {num_keypoints}"
            )
        return tags
    if tags.dim() != 4 or tags.shape[1] % num_keypoints:
        raise ValueError(
            f"tags {tuple(tags.shape)} must be (B, K * T, h, w) or (B, K, T, h, w) with "
            f"K = {num_keypoints} (the keypoints' K)"
        )
    batch, channels, height, width = tags.shape
    return tags.reshape(batch, num_keypoints, channels // num_keypoints, height, width)


def ae_tag_loss(
    tags: torch.Tensor,
    keypoints: torch.Tensor,
    visible: torch.Tensor,
    *,
    loss_type: str = "exp",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Push and pull tag losses of every image of a batch (the reference's ``singleTagLoss``).

    Args:
        tags: (B, K, h, w) tag maps (T = 1), (B, K * T, h, w) with keypoint k in channels
            ``T k .. T k + T - 1``, or (B, K, T, h, w).
        keypoints: (B, M, K, 2) integer (x, y) heatmap pixels of up to M persons per image.
        visible: (B, M, K); > 0 marks a labelled keypoint. Unlabelled entries (and persons
            without any, the padding up to M) are ignored, whatever their coordinates.
        loss_type: ``"exp"`` or ``"max"`` push (``LOSS_TYPES``).

    Returns:
        ``(push, pull)``, each (B,) float32: per-image values as in the module docs.

    Raises:
        ValueError: shapes disagree, ``loss_type`` is unknown, or a labelled keypoint lies
            outside the tag maps.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"unknown AE loss type {loss_type!r}; valid: {list(LOSS_TYPES)}")
    if keypoints.dim() != 4 or keypoints.shape[-1] != 2 or keypoints.shape[:3] != visible.shape:
        raise ValueError(
            f"keypoints {tuple(keypoints.shape)} must be (B, M, K, 2) and visible "
            f"{tuple(visible.shape)} (B, M, K)"
        )
    batch, num_people, num_keypoints = visible.shape
    tags = _tags_5d(tags, num_keypoints)
    if tags.shape[0] != batch:
        raise ValueError(f"tags batch {tags.shape[0]} != keypoints batch {batch}")
    tag_dim, height, width = tags.shape[2:]
    labelled = visible > 0
    x, y = keypoints[..., 0].long(), keypoints[..., 1].long()
    outside = labelled & ((x < 0) | (x >= width) | (y < 0) | (y >= height))
    if outside.any():
        b, m, k = (int(i) for i in outside.nonzero()[0])
        raise ValueError(
            f"labelled keypoint {k} of person {m} in image {b} at ({int(x[b, m, k])}, "
            f"{int(y[b, m, k])}) lies outside the {width} x {height} tag maps"
        )
    # Read every (person, keypoint) tag in one gather: (B, K, T, h*w) at (B, K, T, M) indices.
    index = torch.where(labelled, y * width + x, torch.zeros_like(x)).permute(0, 2, 1)
    index = index[:, :, None, :].expand(batch, num_keypoints, tag_dim, num_people)
    read = torch.gather(tags.flatten(3).float(), 3, index)  # (B, K, T, M)
    person_tags = read.permute(0, 3, 1, 2)  # (B, M, K, T)

    w = labelled.float()
    count = w.sum(-1)  # (B, M) labelled keypoints per person
    present = count > 0
    reference = (person_tags * w[..., None]).sum(2) / count.clamp(min=1)[..., None]  # (B, M, T)
    squared = (person_tags - reference[:, :, None]).square().sum(-1)  # (B, M, K)
    person_pull = (squared * w).sum(-1) / (count.clamp(min=1) * tag_dim)
    num_present = present.sum(-1)  # (B,)
    pull = (person_pull * present).sum(-1) / num_present.clamp(min=1)

    squared_distance = (reference[:, :, None] - reference[:, None]).square().sum(-1)  # (B, M, M)
    if loss_type == "exp":
        term = torch.exp(-squared_distance)
    else:
        term = (1 - squared_distance.clamp(min=_MIN_SQUARED_DISTANCE).sqrt()).clamp(min=0)
    distinct = ~torch.eye(num_people, dtype=torch.bool, device=term.device)
    pairs = present[:, :, None] & present[:, None] & distinct
    num_pairs = (num_present * (num_present - 1)).clamp(min=1)
    push = 0.5 * (term * pairs).sum((1, 2)) / num_pairs
    return push, pull


def heatmap_loss(
    heatmaps_pred: torch.Tensor, heatmaps: torch.Tensor, weights: torch.Tensor
) -> torch.Tensor:
    """Per-image weighted heatmap MSE (the reference's ``HeatmapLoss``), in float32.

    Args:
        heatmaps_pred: (B, K, h, w) predicted heatmaps.
        heatmaps: (B, K, h, w) targets.
        weights: (B, K) per-keypoint weights, (B, h, w) a per-pixel mask (the reference's
            ``masks``, 0 over crowds and unlabelled people) or (B, K, h, w).

    Returns:
        (B,) ``mean over (K, h, w) of (pred - target)^2 * weights``.
    """
    if heatmaps_pred.shape != heatmaps.shape or heatmaps.dim() != 4:
        raise ValueError(
            f"predicted heatmaps {tuple(heatmaps_pred.shape)} and targets "
            f"{tuple(heatmaps.shape)} must both be (B, K, h, w)"
        )
    batch, num_keypoints, height, width = heatmaps.shape
    # weights' own shape -> its broadcast view against (B, K, h, w).
    layouts = {
        (batch, num_keypoints): (batch, num_keypoints, 1, 1),
        (batch, height, width): (batch, 1, height, width),
        (batch, num_keypoints, height, width): (batch, num_keypoints, height, width),
    }
    view = layouts.get(tuple(weights.shape))
    if view is None:
        raise ValueError(
            f"weights {tuple(weights.shape)} must be (B, K) = ({batch}, {num_keypoints}), "
            f"(B, h, w) = ({batch}, {height}, {width}) or (B, K, h, w)"
        )
    w = weights.reshape(view).float()
    return ((heatmaps_pred.float() - heatmaps.float()).square() * w).mean((1, 2, 3))


class AELoss(nn.Module):
    """Heatmap loss over every output plus the tag loss of the first (HigherHRNet's
    ``MultiLossFactory`` with ``WITH_AE_LOSS: [True, False]``, averaged over the batch as its
    trainer does).

    Args:
        heatmap_weight: factor of the heatmap term (``HEATMAP_WEIGHT``).
        push_weight: factor of the push term (``PUSH_WEIGHT``).
        pull_weight: factor of the pull term (``PULL_WEIGHT``).
        loss_type: ``"exp"`` or ``"max"`` push (``LOSS_TYPES``).

    ``forward(outputs, heatmaps, weights, keypoints, visible)``:

    - ``outputs``: the model's list; ``outputs[0]`` is (B, K + K * T, h, w), K heatmaps then
      the tags (``ae_tag_loss``'s layout); later outputs (HigherHRNet's higher-resolution
      heads) are (B, K, h_i, w_i) heatmaps only.
    - ``heatmaps``: (B, K, h, w) targets, or a list of one per output (needed when the
      resolutions differ).
    - ``weights``: ``heatmap_loss``'s weights ((B, K), a (B, h, w) loss mask, (B, K, h, w)),
      or a list of one per output (``BottomUpTargets.weights_per_output``).
    - ``keypoints`` (B, M, K, 2) integer heatmap pixels of ``outputs[0]`` and ``visible``
      (B, M, K): ``ae_tag_loss``'s persons.

    Returns ``(total, terms)``: ``total`` a 0-d float32 tensor, ``terms`` the weighted parts
    ``{"heatmap", "push", "pull"}`` (0-d tensors, ``total`` is their sum).
    """

    def __init__(
        self,
        heatmap_weight: float = HEATMAP_WEIGHT,
        push_weight: float = PUSH_WEIGHT,
        pull_weight: float = PULL_WEIGHT,
        loss_type: str = "exp",
    ) -> None:
        super().__init__()
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"unknown AE loss type {loss_type!r}; valid: {list(LOSS_TYPES)}")
        self.heatmap_weight = float(heatmap_weight)
        self.push_weight = float(push_weight)
        self.pull_weight = float(pull_weight)
        self.loss_type = loss_type

    def forward(
        self,
        outputs: Sequence[torch.Tensor],
        heatmaps: torch.Tensor | Sequence[torch.Tensor],
        weights: torch.Tensor | Sequence[torch.Tensor],
        keypoints: torch.Tensor,
        visible: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if isinstance(outputs, torch.Tensor):
            raise TypeError("outputs must be the model's list of outputs, not one tensor")
        if len(outputs) == 0:
            raise ValueError("outputs is empty: expected at least the heatmaps-and-tags output")
        targets = _per_output(heatmaps, len(outputs), "heatmaps")
        masks = _per_output(weights, len(outputs), "weights")
        num_keypoints = targets[0].shape[1]
        first = outputs[0]
        if first.shape[1] <= num_keypoints:
            raise ValueError(
                f"outputs[0] has {first.shape[1]} channels: expected K = {num_keypoints} "
                "heatmaps followed by the tags"
            )
        heatmap = first.new_zeros((), dtype=torch.float32)
        for i, (output, target, mask) in enumerate(zip(outputs, targets, masks)):
            if i > 0 and output.shape[1] != num_keypoints:
                raise ValueError(
                    f"outputs[{i}] has {output.shape[1]} channels: only outputs[0] carries "
                    f"tags, later outputs hold K = {num_keypoints} heatmaps"
                )
            heatmap = heatmap + heatmap_loss(output[:, :num_keypoints], target, mask).mean()
        push, pull = ae_tag_loss(
            first[:, num_keypoints:], keypoints, visible, loss_type=self.loss_type
        )
        terms = {
            "heatmap": self.heatmap_weight * heatmap,
            "push": self.push_weight * push.mean(),
            "pull": self.pull_weight * pull.mean(),
        }
        return terms["heatmap"] + terms["push"] + terms["pull"], terms


def _per_output(
    value: torch.Tensor | Sequence[torch.Tensor], count: int, name: str
) -> list[torch.Tensor]:
    """One tensor per output: a tensor repeated, or a list of ``count``."""
    if isinstance(value, torch.Tensor):
        return [value] * count
    values = list(value)
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} entries for {count} outputs")
    return values
