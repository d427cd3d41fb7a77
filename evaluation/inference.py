"""Inference over a data loader: flip test, both PCK metrics, predictions in image pixels.

The model is any ``nn.Module`` mapping a normalised (B, 3, H, W) batch to a list of per-stack
(B, K, h, w) heatmaps (or one tensor). Batches follow the sample contract of
``docs/architecture.md``; crops may be rectangular (top-down: (w, h) = ``meta["size"]``). The flip
test un-mirrors heatmaps by the codec's own rule (``flip_rule``: MSRA's original convention shifts
one pixel, pixel-area and UDP alignments do not, UDP's combined target negates its x offsets).
Everything stays on the device until the end of the pass (one host transfer), so a GPU is never
stalled by the metric code.
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
from animalpose.datasets.codecs.udp import UDPHeatmap
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
    "flip_rule",
    "predict",
]

#: (crop uint8 (H, W, 3) RGB, prediction (K, 3) crop pixels (x, y, score),
#: ground truth (K, 3) crop pixels (x, y, visible)).
Overlay = tuple[np.ndarray, np.ndarray, np.ndarray]

#: Loss callable: (outputs list of (B, K, h, w), target heatmaps (B, K, h, w), weights (B, K)).
LossFn = Callable[[list[torch.Tensor], torch.Tensor, torch.Tensor], torch.Tensor]

#: Un-mirrors the heatmaps of a mirrored batch: (B, C, h, w) -> (B, C, h, w) (``flip_rule``).
FlipRule = Callable[[torch.Tensor], torch.Tensor]

_META_KEYS = ("matrix", "size", "keypoints_image", "index")
#: Top-down meta (``datasets/formats/topdown.py``) that ``evaluate`` keeps for OKS AP.
_BOX_KEYS = ("image_id", "score")


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
        image_ids: (N,) int64 COCO image id of each row (top-down samples' ``meta["image_id"]``),
            else None.
        box_scores: (N,) float64 score of each row's box (1 for ground truth, the detector's
            otherwise; ``meta["score"]``), else None.
        areas: (N,) float64 area of each row's padded crop box in image pixels^2,
            ``meta["size"]`` w x h (HRNet's ``all_boxes[:, 4]``, the OKS-NMS area), else None.
        oks: the ten COCOeval statistics by name (``evaluation/oks.py`` ``STAT_NAMES``) when the
            evaluator computed OKS AP (``Evaluator.evaluate`` on top-down data), else None.
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
    image_ids: np.ndarray | None = None
    box_scores: np.ndarray | None = None
    areas: np.ndarray | None = None
    oks: dict[str, float] | None = None

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

    The rule of the pixel-area aligned codec (the default ``MSRAHeatmap``): a mirror of the input
    is exactly a mirror of the heatmap, no one-pixel shift (unlike the reference lineage's
    ``flip_back``). Other codecs bring their own (``flip_rule``).
    """
    return torch.flip(heatmaps, dims=(-1,))[..., flip_index, :, :]


def _compile_codec_rule(rule, flip_index: np.ndarray, channels: int, width: int) -> tuple:
    """(source (C, w) int64 flat ``channel * w + column`` index, sign (C, w)) of ``rule``.

    Every codec's flip rule moves whole heatmap columns of whole channels and may negate them (a
    mirror, a channel swap, MSRA's one-pixel shift whose column 0 keeps its value, UDP's negated x
    offsets). One call on a probe whose entries are their own 1-based flat index gives, for each
    output (channel, column), its source and sign; ValueError when the rule does something else.
    """
    probe = torch.arange(1, channels * width + 1, dtype=torch.float64).reshape(channels, 1, width)
    out = torch.as_tensor(rule(probe, flip_index)).reshape(channels, width)
    source = out.abs().round()
    if not (torch.equal(source, out.abs()) and bool((source <= channels * width).all())):
        raise ValueError(
            "the codec's flip_back is not a move of heatmap columns (with signs); the flip test "
            "cannot apply it"
        )
    return (source - 1).clamp_min(0).long(), torch.sign(out)


def flip_rule(
    codec: object | None,
    flip_index: Sequence[int] | np.ndarray,
    *,
    device: torch.device | str = "cpu",
) -> FlipRule:
    """The flip test's un-mirroring of ``codec``, as a function of (B, C, h, w) heatmaps.

    A codec with ``flip_back(heatmaps, flip_index)`` (``datasets/codecs``) defines the rule; it is
    worked out once per heatmap shape (``_compile_codec_rule``) and applied as device gathers, so
    the pass has no per-batch host sync (``flip_back`` checks its permutation on every call) and
    the values are the codec's exactly. A codec without one (None, ``LegacyHeatmap``) gets this
    module's ``flip_back``, the pixel-area rule.

    Args:
        codec: the run's heatmap codec, or None.
        flip_index: (K,) keypoint permutation of a horizontal flip (the spec's ``flip_index``).
        device: where the heatmaps live.
    """
    index = _flip_tensor(flip_index, torch.device(device))
    rule = getattr(codec, "flip_back", None)
    if not callable(rule):
        return functools.partial(flip_back, flip_index=index)
    keypoints = np.asarray(flip_index, dtype=np.int64)
    compiled: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def apply(heatmaps: torch.Tensor) -> torch.Tensor:
        *lead, channels, h, w = heatmaps.shape
        key = (channels, w)
        if key not in compiled:
            source, sign = _compile_codec_rule(rule, keypoints, channels, w)
            compiled[key] = (source.to(heatmaps.device), sign.to(heatmaps.device))
        source, sign = compiled[key]
        rows = heatmaps.transpose(-3, -2).reshape(*lead, h, channels * w)
        out = rows.index_select(-1, source.reshape(-1)).reshape(*lead, h, channels, w)
        return (out * sign.to(out.dtype)).transpose(-3, -2)

    return apply


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
    model: nn.Module, inputs: torch.Tensor, unflip: FlipRule | None, amp: bool
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """One forward pass -> (all stacks of the plain input as float32, last stack for metrics).

    With ``unflip`` (``flip_rule``) the mirrored batch runs in the same forward call and only the
    last stack is averaged with its flipped-back heatmaps.
    """
    batch = inputs.shape[0]
    if unflip is not None:
        inputs = torch.cat([inputs, torch.flip(inputs, dims=(-1,))], dim=0)
    with autocast(inputs.device, amp):
        stacks = [s.float() for s in _as_stacks(model(inputs))]
    if unflip is None:
        return stacks, stacks[-1]
    plain = [s[:batch] for s in stacks]
    last = 0.5 * (plain[-1] + unflip(stacks[-1][batch:]))
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
    codec: object | None = None,
) -> torch.Tensor:
    """Last-stack heatmaps (B, K, h, w) float32 of a normalised (B, 3, H, W) batch, eval mode.

    With ``flip_index`` (the spec's channel permutation) the mirrored batch is also run and its
    heatmaps, un-mirrored by ``codec``'s rule (``flip_rule``; None: the pixel-area rule), are
    averaged in. The model's train/eval mode is restored afterwards.
    """
    unflip = None if flip_index is None else flip_rule(codec, flip_index, device=images.device)
    with eval_mode(model), torch.inference_mode():
        return _forward(model, images, unflip, amp)[1]


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
    codec: MSRAHeatmap | UDPHeatmap,
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
    with the normaliser ``meta["size"].max()`` (the longer side of a rectangular top-down crop).
    Batches with top-down meta (``image_id``, ``score``) also give the rows' image ids, box
    scores and padded box areas (``EvalResult``), what OKS AP needs.

    Rectangular heatmaps: the legacy PCK normalises by the heatmap *width* (the reference's
    ``accuracy``, made for square maps), so on a 48 x 64 (w x h) map its threshold is 0.05 x 48
    heatmap pixels, stricter than the precise metric's 0.05 x the longer crop side; a codec with
    several channels per keypoint (UDP's combined target) is scored on its classification maps.

    Args:
        loader: iterable of collated batches (sample contract, docs/architecture.md).
        codec: the heatmap codec used for training (targets, decoding and the flip rule).
        normalizer: uint8 (B, 3, H, W) -> float model input
            (``datasets.transforms.normalize.Normalizer``).
        flip_index: (K,) keypoint permutation of a horizontal flip; enables the flip test with
            the codec's rule (``flip_rule``).
        permutation: forwarded to :class:`LegacyPCK` for targets in another slot order.
        loss_fn: ``loss_fn(outputs, heatmaps, weights)`` on the plain (un-flipped) stacks.
        amp: bfloat16 autocast (:func:`autocast`).
        max_images_for_overlay: keep this many crops with predictions for visualisation.
    """
    device = torch.device(device)
    unflip = None if flip_index is None else flip_rule(codec, flip_index, device=device)
    per_keypoint = int(getattr(codec, "channels_per_keypoint", 1))
    legacy, precise = LegacyPCK(permutation=permutation), PrecisePCK()
    preds, scores, indices = [], [], []
    boxes: dict[str, list[torch.Tensor]] = {"image_id": [], "score": [], "area": []}
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
            stacks, last = _forward(model, normalizer(images), unflip, amp)
            if loss_fn is not None:
                loss_sum += loss_fn(stacks, heatmaps, weights).detach().double() * images.shape[0]
            samples += images.shape[0]
            if per_keypoint > 1:
                legacy.update(last[:, ::per_keypoint], heatmaps[:, ::per_keypoint])
            else:
                legacy.update(last, heatmaps)
            crop_xy, peak = codec.decode(last)
            image_xy = crop_to_image(crop_xy, meta["matrix"].to(device, non_blocking=True))
            size = meta["size"].to(device, non_blocking=True)
            precise.update(
                image_xy,
                meta["keypoints_image"].to(device, non_blocking=True),
                size.max(dim=-1).values,
            )
            if all(key in meta for key in _BOX_KEYS):
                boxes["image_id"].append(
                    torch.as_tensor(meta["image_id"]).to(device, non_blocking=True)
                )
                boxes["score"].append(
                    torch.as_tensor(meta["score"]).to(device, non_blocking=True).double()
                )
                boxes["area"].append(size.double().prod(dim=-1))
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
    kept = {}
    if len(boxes["image_id"]) == len(indices):  # every batch had them
        kept = {key: torch.cat(values)[order].cpu().numpy() for key, values in boxes.items()}
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
        image_ids=kept["image_id"].astype(np.int64) if kept else None,
        box_scores=kept["score"] if kept else None,
        areas=kept["area"] if kept else None,
    )


def _overlays(
    images: torch.Tensor, crop_xy: torch.Tensor, peak: torch.Tensor, keypoints: torch.Tensor
) -> list[Overlay]:
    pred = torch.cat([crop_xy, peak[..., None]], dim=-1).cpu().numpy()
    gt = keypoints.cpu().numpy()
    crops = images.permute(0, 2, 3, 1).contiguous().cpu().numpy()
    return [(crops[i], pred[i], gt[i]) for i in range(len(crops))]
