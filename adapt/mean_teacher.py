"""UDA-Animal-Pose's mean teacher (Li & Lee, CVPR 2021; Tarvainen & Valpola 2017).

The teacher is an exponential moving average of the student's weights; it sees the plain
(unaugmented) crop of a target frame and its heatmaps, warped into the student's augmented
crop (``teacher_to_student``), supervise the student. ``WithPlainView`` adds that plain crop to
each target sample, so the loader reads it on its workers.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from animalpose.adapt.views import invert_theta, sample_affine
from animalpose.evaluation.inference import autocast

__all__ = ["EMA_DECAY", "MeanTeacher", "WithPlainView", "ema_decay", "teacher_to_student"]

#: The teacher's EMA decay (the original's ``ema_decay``).
EMA_DECAY = 0.999


def ema_decay(step: int, decay: float = EMA_DECAY) -> float:
    """Mean teacher's warm-up: ``min(1 - 1 / (step + 1), decay)`` at 0-based update ``step``,
    so the first update copies the student and early ones average its recent weights."""
    return min(1.0 - 1.0 / (step + 1), decay)


class MeanTeacher(nn.Module):
    """EMA copy of ``student`` (params averaged, buffers such as BatchNorm statistics copied),
    always in eval mode, never trained by gradients. ``steps`` counts updates (checkpointed)."""

    def __init__(self, student: nn.Module, *, decay: float = EMA_DECAY) -> None:
        super().__init__()
        if not 0 <= decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {decay}")
        self.model = copy.deepcopy(student).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.decay = decay
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def train(self, mode: bool = True) -> MeanTeacher:  # the teacher stays in eval mode
        return self

    @torch.no_grad()
    def update(self, student: nn.Module) -> None:
        """``t = d t + (1 - d) s`` with ``d = ema_decay(steps)``; buffers copied."""
        d = ema_decay(int(self.steps), self.decay)
        for t, s in zip(self.model.parameters(), student.parameters(), strict=True):
            t.mul_(d).add_(s.detach().to(t.dtype), alpha=1.0 - d)
        for t, s in zip(self.model.buffers(), student.buffers(), strict=True):
            t.copy_(s)
        self.steps += 1

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Last stack's (B, K, h, w) heatmaps of normalised input ``x``."""
        out = self.model(x)
        return out[-1] if isinstance(out, (list, tuple)) else out

    def heatmaps_for(
        self,
        batch: dict,
        normalize: Callable[[torch.Tensor], torch.Tensor],
        flip_index,
        input_size: tuple[int, int],
        amp: bool,
    ) -> torch.Tensor:
        """Float32 heatmaps of ``batch``'s plain crops (``WithPlainView``; uint8 images,
        ``normalize``d on the teacher's device), warped into the batch's augmented crops."""
        meta = batch["meta"]
        device = next(self.model.parameters()).device
        plain = normalize(batch["plain_image"].to(device, non_blocking=True))
        with autocast(device, amp):
            heatmaps = self(plain)
        return teacher_to_student(
            heatmaps.float(),
            torch.as_tensor(meta["plain_matrix"]),
            torch.as_tensor(meta["matrix"]),
            torch.as_tensor(meta["flipped"], dtype=torch.bool),
            torch.as_tensor(np.asarray(flip_index), dtype=torch.long),
            input_size,
        )


def _homogeneous(m: torch.Tensor) -> torch.Tensor:
    bottom = torch.zeros(*m.shape[:-2], 1, 3, dtype=m.dtype, device=m.device)
    bottom[..., 0, 2] = 1
    return torch.cat([m, bottom], dim=-2)


def teacher_to_student(
    heatmaps: torch.Tensor,
    plain_matrix: torch.Tensor,
    student_matrix: torch.Tensor,
    flipped: torch.Tensor,
    flip_index: torch.Tensor,
    input_size: tuple[int, int],
) -> torch.Tensor:
    """Teacher heatmaps (B, K, h, w) of the plain crops -> the student's augmented crops.

    ``plain_matrix`` / ``student_matrix``: (B, 2, 3) source -> crop affines (``meta["matrix"]``)
    of the two crops, ``input_size`` their (W, H). A student pixel ``p`` shows source point
    ``M_s^-1 p``, i.e. plain-crop pixel ``A p`` with ``A = M_p M_s^-1``; in grid_sample's
    normalised coordinates (shared by crops and heatmaps, adapt/views.py) that is
    ``N A N^-1``. Flipped student crops swap channels to model order (``flip_index``) as the
    dataset did: student channel k shows teacher channel ``flip_index[k]``. Uncovered pixels: 0.
    """
    w, h = input_size
    dt, dev = torch.float64, heatmaps.device
    # Closed-form 2x3 inverses (views.invert_theta): torch.linalg.inv would wait for the device.
    a = _homogeneous(plain_matrix.to(dev, dt)) @ _homogeneous(
        invert_theta(student_matrix.to(dev, dt))
    )
    n = torch.tensor([[2.0 / w, 0.0, 1.0 / w - 1.0], [0.0, 2.0 / h, 1.0 / h - 1.0]], dtype=dt)
    theta = (_homogeneous(n.to(dev)) @ a @ _homogeneous(invert_theta(n).to(dev)))[:, :2]
    warped = sample_affine(heatmaps.float(), theta.float())
    swapped = warped[:, flip_index.to(dev)]
    return torch.where(flipped.to(dev).reshape(-1, 1, 1, 1), swapped, warped)


class WithPlainView(Dataset):
    """``dataset``'s samples plus ``plain_image`` (uint8 (3, H, W)) and
    ``meta["plain_matrix"]``: the plain crop of the same frame, ``plain[meta["index"]]``."""

    def __init__(self, dataset: Dataset, plain: Dataset) -> None:
        self.dataset, self.plain = dataset, plain

    def __len__(self) -> int:
        return len(self.dataset)

    def set_epoch(self, epoch: int) -> None:
        self.dataset.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        sample = self.dataset[index]
        plain = self.plain[int(sample["meta"]["index"])]
        sample["plain_image"] = plain["image"]
        sample["meta"]["plain_matrix"] = np.asarray(plain["meta"]["matrix"], dtype=np.float64)
        return sample
