"""Inference over a data loader: flip test, both PCK metrics, predictions in image pixels.

The model is any ``nn.Module`` mapping a normalised (B, 3, H, W) batch to a list of per-stack
(B, K, h, w) heatmaps (or one tensor). Batches follow the sample contract of
``docs/architecture.md``. Everything stays on the device until the end of the pass (one host
transfer), so a GPU is never stalled by the metric code.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.fileio import DataError
from animalpose.evaluation.pck import LegacyPCK, PrecisePCK
from animalpose.evaluation.report import nanmean

__all__ = [
    "EvalResult",
    "Overlay",
    "CPU_BF16_FLAGS",
    "autocast",
    "cpu_bf16_fast_path",
    "crop_to_image",
    "eval_mode",
    "evaluate",
    "flip_back",
    "predict",
]

#: (crop uint8 (H, W, 3) RGB, prediction (K, 3) crop pixels (x, y, score),
#: ground truth (K, 3) crop pixels (x, y, visible)).
Overlay = tuple[np.ndarray, np.ndarray, np.ndarray]

#: Loss callable: (outputs list of (B, K, h, w), target heatmaps (B, K, h, w), weights (B, K)).
LossFn = Callable[[list[torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]

_META_KEYS = ("matrix", "size", "keypoints_image", "index")


@dataclass
class EvalResult:
    """Result of :func:`evaluate`; rows are sorted by dataset index.

    Attributes:
        legacy: (K,) legacy PCK fractions (reference metric), NaN for keypoints never valid.
        precise: (K,) precise PCK fractions, NaN where ``precise_counts`` is 0.
        precise_counts: (K,) number of visible annotations per keypoint.
        preds: (N, K, 2) float64 predictions in source-image pixels.
        scores: (N, K) float32 heatmap peak values.
        indices: (N,) int64 dataset index of each row.
        loss: mean loss per sample over the pass (``loss_fn`` weighted by batch size), or None.
        overlays: up to ``max_images_for_overlay`` :data:`Overlay` tuples for TensorBoard.
        legacy_auc: the reference's "Val Auc" of the legacy distances (``LegacyPCK.auc``).
        legacy_mean_error: its "Val Mean Error" (``LegacyPCK.mean_error``).
    """

    legacy: np.ndarray
    precise: np.ndarray
    precise_counts: np.ndarray
    preds: np.ndarray
    scores: np.ndarray
    indices: np.ndarray
    loss: float | None = None
    overlays: list[Overlay] = field(default_factory=list)
    legacy_auc: float = float("nan")
    legacy_mean_error: float = float("nan")

    @property
    def legacy_mean(self) -> float:
        """Mean legacy PCK over keypoints (NaN ignored), a fraction."""
        return nanmean(self.legacy)

    @property
    def precise_mean(self) -> float:
        """Mean precise PCK over keypoints (NaN ignored), a fraction."""
        return nanmean(self.precise)


def _as_stacks(outputs: torch.Tensor | Sequence[torch.Tensor]) -> list[torch.Tensor]:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    if (
        isinstance(outputs, (list, tuple))
        and outputs
        and all(isinstance(o, torch.Tensor) for o in outputs)
    ):
        return list(outputs)
    raise TypeError(
        f"model must return a heatmap tensor or a list of per-stack tensors, got {type(outputs)}"
    )


def flip_back(heatmaps: torch.Tensor, flip_index: torch.Tensor) -> torch.Tensor:
    """Heatmaps of a mirrored input -> heatmaps of the original: mirror the width, swap channels.

    The codec is pixel-area aligned, so a mirror of the input is exactly a mirror of the
    heatmap: no one-pixel shift (unlike the reference lineage's ``flip_back``).
    """
    return torch.flip(heatmaps, dims=(-1,))[..., flip_index, :, :]


#: /proc/cpuinfo flags of a CPU whose oneDNN kernels compute in bfloat16 natively: AMX tiles
#: (Xeon Sapphire Rapids on) or AVX-512 BF16 (Cooper Lake, Zen 4 on). Without one, bfloat16 on a
#: CPU is emulated and slower than float32, so CPU autocast is left off there.
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@functools.cache
def cpu_bf16_fast_path() -> bool:
    """This CPU has a bfloat16 fast path (:data:`CPU_BF16_FLAGS`): torch's own CPU feature
    checks where it has them, else the Linux ``/proc/cpuinfo`` flags."""
    checks = [
        getattr(torch.cpu, n, None) for n in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    ]
    if all(callable(check) for check in checks):
        return any(check() for check in checks)
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return False
    return not flags.isdisjoint(CPU_BF16_FLAGS)


def autocast(device: torch.device, amp: bool):
    """bfloat16 autocast on ``device`` when ``amp``, else a context that does nothing.

    ``amp`` is the run's resolved choice (``train/device.py`` ``use_amp``: ``run.amp`` on CUDA,
    ``run.cpu_amp`` on a CPU). On a CPU without :func:`cpu_bf16_fast_path` it stays float32.
    Only the forward runs under it: losses, optimiser steps and weights stay float32.
    """
    if amp and (device.type == "cuda" or (device.type == "cpu" and cpu_bf16_fast_path())):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _forward(
    model: nn.Module, inputs: torch.Tensor, flip_index: torch.Tensor | None, amp: bool
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One forward pass -> (all stacks of the plain input as float32, last stack for metrics).

    With ``flip_index`` the mirrored batch runs in the same forward call and only the last
    stack is averaged with its flipped-back heatmaps.
    """
    batch = inputs.shape[0]
    if flip_index is not None:
        inputs = torch.cat([inputs, torch.flip(inputs, dims=(-1,))], dim=0)
    with autocast(inputs.device, amp):
        stacks = [s.float() for s in _as_stacks(model(inputs))]
    if flip_index is None:
        return stacks, stacks[-1]
    plain = [s[:batch] for s in stacks]
    last = 0.5 * (plain[-1] + flip_back(stacks[-1][batch:], flip_index))
    return plain, last


def _flip_tensor(
    flip_index: Sequence[int] | np.ndarray | torch.Tensor | None, device: torch.device
) -> torch.Tensor | None:
    if flip_index is None:
        return None
    index = np.asarray(flip_index, dtype=np.int64)
    if index.ndim != 1 or not np.array_equal(np.sort(index), np.arange(len(index))):
        raise ValueError(f"flip_index must be a permutation of 0..K-1, got {index.tolist()}")
    return torch.as_tensor(index, device=device)


@contextlib.contextmanager
def eval_mode(model: nn.Module):
    """Run the block with ``model`` in eval mode, then restore its training flag."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    flip_index: Sequence[int] | np.ndarray | None = None,
    amp: bool = False,
) -> torch.Tensor:
    """Last-stack heatmaps (B, K, h, w) float32 of a normalised (B, 3, H, W) batch, eval mode.

    With ``flip_index`` (the spec's channel permutation) the mirrored batch is also run and its
    flipped-back heatmaps are averaged in. The model's train/eval mode is restored afterwards.
    """
    index = _flip_tensor(flip_index, images.device)
    with eval_mode(model), torch.inference_mode():
        return _forward(model, images, index, amp)[1]


def crop_to_image(points: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """(B, K, 2) crop pixels -> source-image pixels by inverting the (B, 2, 3) source->crop affine.

    Batched on the points' device in float64 (``linalg.inv_ex``: no host sync for error checks).
    """
    m = matrix.to(device=points.device, dtype=torch.float64)
    inverse, _ = torch.linalg.inv_ex(m[..., :2])
    return (points.double() - m[:, None, :, 2]) @ inverse.transpose(-1, -2)


def _check_batch(batch: dict, number: int) -> None:
    for key in ("image", "keypoints", "meta"):
        if key not in batch:
            raise DataError(
                f"batch {number} has no {key!r} (sample contract, docs/architecture.md)"
            )
    missing = [k for k in _META_KEYS if k not in batch["meta"]]
    if missing:
        raise DataError(
            f"batch {number}: meta lacks {missing} (sample contract, docs/architecture.md)"
        )


def evaluate(
    model: nn.Module,
    loader: Iterable[dict],
    *,
    codec: MSRAHeatmap,
    normalizer: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device | str,
    flip_index: Sequence[int] | np.ndarray | None = None,
    permutation: Sequence[int] | np.ndarray | None = None,
    loss_fn: LossFn | None = None,
    amp: bool = False,
    progress: bool = True,
    max_images_for_overlay: int = 0,
) -> EvalResult:
    """Run ``model`` (already on ``device``) over ``loader`` and compute both PCK metrics.

    Per batch, on device: normalise the uint8 images, encode the crop keypoints into target
    heatmaps, forward (optionally with the flip test on the last stack), update the legacy PCK
    (last stack vs encoded target), decode to crop pixels, map to image pixels through the
    inverse of ``meta["matrix"]`` and update the precise PCK against ``meta["keypoints_image"]``
    with the normaliser ``meta["size"].max()``.

    Args:
        loader: iterable of collated batches (sample contract, docs/architecture.md).
        codec: the heatmap codec used for training (targets and decoding).
        normalizer: uint8 (B, 3, H, W) -> float model input
            (``datasets.transforms.normalize.Normalizer``).
        flip_index: (K,) channel permutation of a horizontal flip; enables the flip test.
        permutation: forwarded to :class:`LegacyPCK` for targets in another slot order.
        loss_fn: ``loss_fn(outputs, heatmaps, weights)`` on the plain (un-flipped) stacks.
        amp: bfloat16 autocast (:func:`autocast`).
        max_images_for_overlay: keep this many crops with predictions for visualisation.
    """
    device = torch.device(device)
    index = _flip_tensor(flip_index, device)
    legacy, precise = LegacyPCK(permutation=permutation), PrecisePCK()
    preds, scores, indices = [], [], []
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    samples = 0
    overlays: list[Overlay] = []
    with eval_mode(model), torch.inference_mode():
        for number, batch in enumerate(tqdm(loader, desc="eval", disable=not progress)):
            _check_batch(batch, number)
            meta = batch["meta"]
            images = batch["image"].to(device, non_blocking=True)
            keypoints = batch["keypoints"].to(device, non_blocking=True).float()
            heatmaps, weights = codec.encode(keypoints[..., :2], keypoints[..., 2])
            stacks, last = _forward(model, normalizer(images), index, amp)
            if loss_fn is not None:
                loss_sum += loss_fn(stacks, heatmaps, weights).detach().double() * images.shape[0]
            samples += images.shape[0]
            legacy.update(last, heatmaps)
            crop_xy, peak = codec.decode(last)
            image_xy = crop_to_image(crop_xy, meta["matrix"].to(device, non_blocking=True))
            precise.update(
                image_xy,
                meta["keypoints_image"].to(device, non_blocking=True),
                meta["size"].to(device, non_blocking=True).max(dim=-1).values,
            )
            preds.append(image_xy)
            scores.append(peak)
            indices.append(torch.as_tensor(meta["index"]).to(device, non_blocking=True))
            if len(overlays) < max_images_for_overlay:
                take = min(max_images_for_overlay - len(overlays), images.shape[0])
                overlays.extend(
                    _overlays(images[:take], crop_xy[:take], peak[:take], keypoints[:take])
                )
    if samples == 0:
        raise ValueError("evaluate(): the loader yielded no batches")
    all_indices = torch.cat(indices).long()
    order = torch.argsort(all_indices, stable=True)
    return EvalResult(
        legacy=legacy.compute(),
        precise=precise.compute(),
        precise_counts=precise.counts,
        preds=torch.cat(preds)[order].cpu().numpy(),
        scores=torch.cat(scores)[order].cpu().numpy(),
        indices=all_indices[order].cpu().numpy(),
        loss=None if loss_fn is None else float(loss_sum.item()) / samples,
        overlays=overlays,
        legacy_auc=legacy.auc(),
        legacy_mean_error=legacy.mean_error(),
    )


def _overlays(
    images: torch.Tensor, crop_xy: torch.Tensor, peak: torch.Tensor, keypoints: torch.Tensor
) -> list[Overlay]:
    pred = torch.cat([crop_xy, peak[..., None]], dim=-1).cpu().numpy()
    gt = keypoints.cpu().numpy()
    crops = images.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return [(crops[i], pred[i], gt[i]) for i in range(len(crops))]
