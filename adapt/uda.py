"""UDA-Animal-Pose's loss schedules and mixup (Li & Lee, CVPR 2021; docs/adaptation.md).

Every schedule is stated in the paper's epochs (its stage 2 runs ``PAPER_EPOCHS``); a run of
another length maps its epoch ``e`` of ``E`` to the paper's ``e * uda_paper_epochs / E``
(``paper_epoch``). Pure functions: the trainer (adapt/trainer.py) applies them to its losses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from animalpose.train.loss import keypoint_mse

__all__ = [
    "CONSISTENCY_RAMP_EPOCHS",
    "MIXUP_ALPHA",
    "PAPER_EPOCHS",
    "UDA_SETTINGS",
    "UDASchedule",
    "UDAWeights",
    "consistency_losses",
    "cosine_ramp_down",
    "describe_uda",
    "distill_mse",
    "mix_batch",
    "mixup",
    "mixup_draw",
    "paper_epoch",
    "per_keypoint_mse",
    "sigmoid_ramp_up",
    "small_loss_count",
    "small_loss_mse",
    "small_loss_weights",
]

#: ``adapt.*`` settings of UDA-Animal's stage 2 (configs/uda_animal.yaml, the ``uda`` method
#: of adapt/compare_methods.py): pseudo-labels of round 0 only (top 40 %) weighted 15 -> 8, the
#: small-loss curriculum, mean teacher, self-distillation, mixup, and WS-CDA's discriminator in
#: place of the paper's multi-scale domain classifier.
UDA_SETTINGS: tuple[tuple[str, object], ...] = (
    ("pseudo_labels", True),
    ("relabel", False),
    ("selection", "pplo"),
    ("pplo_shares", [0.4]),
    ("target_weight", 15.0),
    ("target_weight_ramp", "cosine"),
    ("small_loss", True),
    ("teacher", True),
    ("distill", True),
    ("mixup", True),
    ("adversarial", True),
)
#: Stage 2's length in the paper (80 epochs).
PAPER_EPOCHS = 80
#: Mean-teacher and self-distillation weights ramp up over the paper's first 10 epochs.
CONSISTENCY_RAMP_EPOCHS = 10.0
#: Small-loss curriculum ``k = K - max(epoch - 2, 0)`` floored at ``K / 2`` (18 -> 9 keypoints).
SMALL_LOSS_DELAY = 2.0
SMALL_LOSS_FLOOR_SHARE = 0.5
#: Mixup's Beta(0.8, 0.8), ``lam = max(lam, 1 - lam)`` (the original's ``mixup`` argument).
MIXUP_ALPHA = 0.8


def paper_epoch(epoch: float, run_epochs: int, paper_epochs: int) -> float:
    """The paper's epoch that a run's (fractional) ``epoch`` of ``run_epochs`` counts as;
    ``paper_epochs`` 0 leaves epochs unscaled."""
    if paper_epochs <= 0:
        return float(epoch)
    return float(epoch) * paper_epochs / max(run_epochs, 1)


def sigmoid_ramp_up(epoch: float, length: float = CONSISTENCY_RAMP_EPOCHS) -> float:
    """Mean teacher's ramp-up ``exp(-5 (1 - t)^2)``, ``t = clip(epoch / length, 0, 1)``:
    exp(-5) at 0, 1 from ``length`` on (Laine & Aila 2017, as the original)."""
    if length <= 0:
        return 1.0
    t = min(max(epoch / length, 0.0), 1.0)
    return float(math.exp(-5.0 * (1.0 - t) ** 2))


def cosine_ramp_down(epoch: float, start: float, end: float, length: float) -> float:
    """``end + (start - end) (1 + cos(pi t)) / 2``, ``t = clip(epoch / length, 0, 1)``: the
    pseudo-label weight 15 -> 8 over the paper's 15 epochs."""
    if length <= 0:
        return float(end)
    t = min(max(epoch / length, 0.0), 1.0)
    return float(end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t)))


def small_loss_count(epoch: float, num_keypoints: int) -> int:
    """Keypoints per image the small-loss curriculum keeps at the paper's ``epoch``:
    ``K - max(floor(epoch) - 2, 0)``, at least ``ceil(K / 2)`` (18 -> 9)."""
    drop = max(math.floor(epoch) - int(SMALL_LOSS_DELAY), 0)
    floor = math.ceil(num_keypoints * SMALL_LOSS_FLOOR_SHARE)
    return max(num_keypoints - drop, floor)


def per_keypoint_mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) pair -> (B, K) float32 mean squared error per keypoint."""
    return (pred.float() - target.float()).square().mean(dim=(2, 3))


def small_loss_weights(losses: torch.Tensor, weights: torch.Tensor, k: int) -> torch.Tensor:
    """``weights`` (B, K) with every keypoint outside each image's ``k`` smallest ``losses``
    (B, K) among its weighted (> 0) keypoints set to 0 (ties: the lower index first)."""
    w = weights.reshape(losses.shape)
    if k >= losses.shape[1]:
        return weights
    ranked = torch.where(w > 0, losses.detach().float(), torch.full_like(losses, math.inf))
    order = ranked.argsort(dim=1, stable=True)
    keep = torch.zeros_like(w, dtype=torch.bool)
    keep.scatter_(1, order[:, :k], True)
    return (w * keep.to(w.dtype)).reshape(weights.shape)


def mixup_draw(rng: np.random.Generator, batch: int) -> tuple[float, np.ndarray]:
    """(lam, permutation): ``lam ~ Beta(0.8, 0.8)`` folded to ``>= 0.5`` and a partner per
    sample within the batch."""
    lam = float(rng.beta(MIXUP_ALPHA, MIXUP_ALPHA))
    return max(lam, 1.0 - lam), rng.permutation(batch)


def mixup(x: torch.Tensor, lam: float, perm: torch.Tensor) -> torch.Tensor:
    """``lam x + (1 - lam) x[perm]`` along the batch (images, heatmaps or weights alike)."""
    return lam * x + (1.0 - lam) * x[perm]


def mix_batch(rng: np.random.Generator, *tensors: torch.Tensor | None) -> list:
    """Mixup of the batch rows of every tensor (None passes) with one ``mixup_draw``."""
    batch = next(t for t in tensors if t is not None).shape[0]
    lam, perm = mixup_draw(rng, batch)
    out = []
    for t in tensors:
        out.append(None if t is None else mixup(t, lam, torch.as_tensor(perm, device=t.device)))
    return out


def small_loss_mse(
    outputs: list[torch.Tensor], heatmaps: torch.Tensor, weights: torch.Tensor, k: int
) -> torch.Tensor:
    """``KeypointMSELoss`` over the stacks, each image counting only its ``k`` keypoints of
    smallest loss (summed over the stacks) among those with weight > 0."""
    losses = sum(per_keypoint_mse(o, heatmaps) for o in outputs)
    w = small_loss_weights(losses, weights, k)
    return sum(keypoint_mse(o, heatmaps, w) for o in outputs)


def distill_mse(outputs: list[torch.Tensor], k: int) -> torch.Tensor:
    """Self-distillation: the last stack's detached heatmaps supervise the previous stack's,
    every keypoint weighted 1, the ``k`` smallest-loss ones per image counting."""
    refined, coarse = outputs[-1].detach(), outputs[-2]
    ones = torch.ones(coarse.shape[:2], device=coarse.device)
    w = small_loss_weights(per_keypoint_mse(coarse, refined), ones, k)
    return keypoint_mse(coarse, refined, w)


@dataclass(frozen=True)
class UDAWeights:
    """What the UDA schedules give at one point of a run (``UDASchedule.at``)."""

    pseudo: float  # weight of the pseudo-labelled target loss
    teacher: float  # mean teacher's weight (ramped up)
    distill: float  # self-distillation's weight (ramped up)
    keep: int  # keypoints per image the small-loss curriculum keeps (K when off)


@dataclass(frozen=True)
class UDASchedule:
    """The schedules of ``cfg.adapt`` for a run of ``run_epochs`` epochs and ``K`` keypoints."""

    adapt: object
    run_epochs: int
    num_keypoints: int

    def at(self, progress: float) -> UDAWeights:
        """Weights at ``progress`` in [0, 1) of the run (fractional epoch / run epochs)."""
        a = self.adapt
        e = paper_epoch(progress * self.run_epochs, self.run_epochs, a.uda_paper_epochs)
        pseudo = a.target_weight
        if a.target_weight_ramp == "cosine":
            pseudo = cosine_ramp_down(
                e, a.target_weight, a.target_weight_end, a.target_weight_ramp_epochs
            )
        ramp = sigmoid_ramp_up(e, a.consistency_ramp_epochs)
        keep = small_loss_count(e, self.num_keypoints) if a.small_loss else self.num_keypoints
        return UDAWeights(
            pseudo=pseudo,
            teacher=a.teacher_weight * ramp if a.teacher else 0.0,
            distill=a.distill_weight * ramp if a.distill else 0.0,
            keep=keep,
        )


def consistency_losses(
    outputs: list[torch.Tensor], teacher: torch.Tensor | None, weights: UDAWeights, *, distill: bool
) -> dict[str, torch.Tensor]:
    """The student's (target rows') consistency terms: ``loss_teacher`` (the warped teacher
    heatmaps supervise the last stack, every keypoint) and ``loss_distill`` (last stack ->
    previous stack; needs 2 stacks), each with its ramped weight."""
    terms = {}
    if teacher is not None:
        ones = torch.ones(teacher.shape[:2], device=teacher.device)
        terms["loss_teacher"] = weights.teacher * keypoint_mse(outputs[-1], teacher, ones)
    if distill and len(outputs) > 1:
        terms["loss_distill"] = weights.distill * distill_mse(outputs, weights.keep)
    return terms


def describe_uda(adapt, stacks: int) -> str:
    """UDA-Animal's parts of ``cfg.adapt`` that are on, and the forward mode when not joint,
    for the run's describe line."""
    a = adapt
    parts = [] if a.relabel or not a.pseudo_labels else ["labels of round 0 only"]
    if a.target_weight_ramp == "cosine":
        parts.append(f"pseudo weight {a.target_weight:g} -> {a.target_weight_end:g}")
    parts += [name for name in ("small_loss", "teacher", "mixup") if getattr(a, name)]
    if a.distill:
        parts.append("distill (skipped: 1 stack)" if stacks < 2 else "distill")
    text = f"; UDA-Animal: {', '.join(parts)}" if parts else ""
    return text + ("; forward per domain" if a.forward == "separate" else "")
