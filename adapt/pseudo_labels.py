"""Pseudo-label generation, shared by CC-SSL and PPLO: :func:`generate_pseudo_labels`.

Predicts every frame of a TigDog-type dataset in loader order with equivariance views
(``views.py``), optionally refines the labels by optical flow within shots (``temporal.py``) and
returns a :class:`~animalpose.adapt.pseudo_label_store.PseudoLabels` round with nothing selected
yet, scored against the annotations where they exist (diagnostics only).
"""

from __future__ import annotations

import time

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Subset
from tqdm import tqdm

from animalpose.adapt.pseudo_label_store import NO_ANNOTATION, PseudoLabels, pck_diagnostics
from animalpose.adapt.temporal import TemporalConfig, temporal_refine
from animalpose.adapt.views import ViewSampler, equivariant_heatmaps, view_theta
from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.fileio import read_image
from animalpose.datasets.formats.crops import RealAnimalCrop
from animalpose.datasets.formats.tigdog import RealAnimal
from animalpose.datasets.geometry import crop_matrix
from animalpose.evaluation.inference import crop_to_image, eval_mode
from animalpose.evaluation.pck import PCK_ALPHA, pck_hits
from animalpose.train.loaders import distributed_info, make_loader

__all__ = ["draw_views", "generate_pseudo_labels", "label_hits", "ordered_loader"]


def draw_views(views: ViewSampler, seed: int, round_index: int, indices: list[int]):
    """(V+1, B) scales and degrees, each sample's from ``default_rng([seed, round, index])``."""
    draws = [views.sample(np.random.default_rng([seed, round_index, i]), 1) for i in indices]
    return np.concatenate([d[0] for d in draws], axis=1), np.concatenate([d[1] for d in draws], 1)


def ordered_loader(dataset, *, batch_size: int, workers: int, seed: int, device: torch.device):
    """``dataset``'s samples in order, all on this process (no shuffling, no sharding)."""
    return make_loader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        workers=workers,
        seed=seed,
        device=device,
        shard=False,
    )


def _collective_device(device: torch.device) -> torch.device:
    return device if dist.get_backend() == "nccl" else torch.device("cpu")


def _all_gather_rows(local: torch.Tensor, counts: list[int], device: torch.device) -> torch.Tensor:
    """Every rank's ``(counts[rank], ...)`` rows concatenated in rank order, on every rank."""
    width = max(1, max(counts))
    padded = torch.zeros((width, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[: len(local)] = local.to(device)
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([p[:c] for p, c in zip(parts, counts, strict=True)]).cpu()


def _shot_bounds(shots: np.ndarray, world: int) -> np.ndarray:
    """(world + 1,) row bounds splitting ``shots`` into near-equal runs at shot changes."""
    n = len(shots)
    cuts = np.concatenate([[0], np.flatnonzero(shots[1:] != shots[:-1]) + 1, [n]])
    wanted = np.arange(world + 1) * n / world
    bounds = cuts[np.minimum(np.searchsorted(cuts, wanted), len(cuts) - 1)]
    bounds[0], bounds[-1] = 0, n
    return np.maximum.accumulate(bounds)


def _predict(
    model,
    dataset,
    *,
    codec,
    normalizer,
    device,
    views,
    seed,
    round_index,
    lo,
    hi,
    batch_size,
    workers,
    amp,
    progress,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(hi - lo, K, 3) [x, y, confidence] frame-pixel labels of rows lo..hi-1 and their indices."""
    loader = ordered_loader(
        Subset(dataset, range(lo, hi)),
        batch_size=batch_size,
        workers=workers,
        seed=seed,
        device=device,
    )
    rows, indices = [], []
    for batch in tqdm(loader, desc="pseudo-labels", disable=not progress):  # under no_grad
        images = batch["image"].to(device, non_blocking=True)
        if (images.shape[-1], images.shape[-2]) != codec.input_size:
            raise ValueError(
                f"crops are {images.shape[-1]}x{images.shape[-2]} but the codec "
                f"expects {codec.input_size}"
            )
        index = batch["meta"]["index"]
        scales, degrees = draw_views(views, seed, round_index, index.tolist())
        theta = view_theta(
            scales, degrees, device=device, aspect=images.shape[-1] / images.shape[-2]
        )
        heatmaps = equivariant_heatmaps(model, normalizer(images), theta, amp=amp)
        crop_xy, peak = codec.decode(heatmaps)
        frame_xy = crop_to_image(crop_xy, batch["meta"]["matrix"].to(device, non_blocking=True))
        rows.append(torch.cat([frame_xy.float(), peak.float()[..., None]], dim=-1))
        indices.append(index)
    return torch.cat(rows).cpu(), torch.cat(indices)


def generate_pseudo_labels(
    model: nn.Module,
    dataset: RealAnimal | RealAnimalCrop,
    *,
    codec: MSRAHeatmap,
    normalizer,
    device: torch.device | str,
    views: ViewSampler,
    seed: int,
    temporal: TemporalConfig | None,
    batch_size: int = 32,
    workers: int = 2,
    amp: bool = False,
    progress: bool = True,
    round_index: int = 0,
    epoch: int = 0,
    flow_workers: int | None = None,
    flow_pool: str = "thread",
) -> PseudoLabels:
    """Pseudo-label every sample of ``dataset`` (nothing selected yet).

    Per batch, on the device: draw each sample's views from
    ``np.random.default_rng([seed, round_index, index])`` (independent of batch size and of the
    number of ranks), one forward pass over all views, average in the identity frame, decode with
    the codec (confidence = the averaged map's peak), map crop -> frame pixels by the inverse of
    ``meta["matrix"]``. The model (a DDP wrapper is looked through) is put in eval mode and
    restored. With ``temporal`` the labels are then refined by flow within shots
    (``temporal.temporal_refine`` with ``flow_workers`` workers, default ``workers``, of a
    ``flow_pool`` pool: ``temporal.FLOW_POOLS``).

    Distributed (torch.distributed initialised): each rank predicts a contiguous shard of the
    indices, shards are all-gathered; each rank then refines a shot-aligned share of the rows and
    those are all-gathered, so every rank returns the full, ordered set.

    Args:
        dataset: a RealAnimal / RealAnimalCrop built with ``CenterCrop`` (loader order).
        codec: the training codec; normalizer: uint8 batch -> model input.
        views: the equivariance views (``ViewSampler(num_views=0)``: identity only).
        seed: non-negative seed of the view draws.
        batch_size, workers: loader batch size and worker processes.
        amp: bfloat16 autocast on CUDA. progress: tqdm bars.
        round_index, epoch: stored in the result (``round_index`` also keys the views).
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    device = torch.device(device)
    n = len(dataset)
    rank, world = distributed_info()
    bounds = [n * r // world for r in range(world + 1)]
    lo, hi = bounds[rank], bounds[rank + 1]
    # Ranks may run different numbers of batches: never forward through DDP's collectives.
    net = model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model
    start = time.perf_counter()
    with eval_mode(model), torch.no_grad():
        if hi > lo:
            rows, got = _predict(
                net,
                dataset,
                codec=codec,
                normalizer=normalizer,
                device=device,
                views=views,
                seed=seed,
                round_index=round_index,
                lo=lo,
                hi=hi,
                batch_size=batch_size,
                workers=workers,
                amp=amp,
                progress=progress and rank == 0,
            )
            if not torch.equal(got, torch.arange(lo, hi)):
                raise RuntimeError("the loader did not yield the samples in dataset order")
        else:
            k = int(dataset.spec.num_keypoints)
            rows = torch.zeros((0, k, 3))
    if world > 1:
        rows = _all_gather_rows(rows, np.diff(bounds).tolist(), _collective_device(device))
    predict_seconds = time.perf_counter() - start
    labels = rows.numpy()
    keypoints = np.ascontiguousarray(labels[..., :2], dtype=np.float32)
    confidence = np.ascontiguousarray(labels[..., 2], dtype=np.float32)
    shot_frame = np.array([dataset.shot_frame(i) for i in range(n)], dtype=np.int64).reshape(n, 2)
    shots, frames = shot_frame[:, 0].copy(), shot_frame[:, 1].copy()
    annotations = [dataset.annotation(i) for i in range(n)]
    box_sizes = np.array([a[2] for a in annotations], dtype=np.float64)
    substituted = np.zeros(confidence.shape, dtype=bool)
    start = time.perf_counter()
    if temporal is not None:
        keypoints, confidence, substituted = _refine(
            dataset,
            annotations,
            shots=shots,
            frames=frames,
            keypoints=keypoints,
            confidence=confidence,
            box_sizes=box_sizes,
            config=temporal,
            device=device,
            workers=workers if flow_workers is None else flow_workers,
            pool=flow_pool,
            progress=progress,
        )
    flow_seconds = time.perf_counter() - start
    truth = np.stack([a[0] for a in annotations]) if n else np.zeros((0, keypoints.shape[1], 3))
    hits = label_hits(keypoints, truth, box_sizes)
    selected = np.zeros(confidence.shape, dtype=bool)
    return PseudoLabels(
        round=int(round_index),
        epoch=int(epoch),
        keep_share=0.0,
        threshold=float("nan"),
        indices=np.arange(n, dtype=np.int64),
        shots=shots,
        frames=frames,
        keypoints=keypoints,
        confidence=confidence,
        substituted=substituted,
        selected=selected,
        hits=hits,
        diagnostics={
            **pck_diagnostics(hits, selected, substituted),
            "predict_seconds": predict_seconds,
            "flow_seconds": flow_seconds,
        },
    )


def label_hits(keypoints: np.ndarray, truth: np.ndarray, box_sizes: np.ndarray) -> np.ndarray:
    """(N, K) int8: 1 within ``PCK_ALPHA x box side`` of a visible annotation (the evaluation's
    ``pck_hits``, in float64), 0 beyond, ``NO_ANNOTATION`` without a visible annotation."""
    hits, valid = pck_hits(
        torch.from_numpy(keypoints.astype(np.float64)),
        torch.from_numpy(truth.astype(np.float64)),
        torch.from_numpy(box_sizes.astype(np.float64)),
        PCK_ALPHA,
    )
    out = hits.numpy().astype(np.int8)
    out[~valid.numpy()] = NO_ANNOTATION
    return out


def _image_matrices(dataset, annotations) -> np.ndarray | None:
    """Frame -> file affines when the dataset reads crops of the frames (real_animal_crop)."""
    if not isinstance(dataset, RealAnimalCrop) or len(dataset) == 0:
        return None
    h, w = read_image(dataset.image_path(0)).shape[:2]  # crop files share one size
    return np.stack([crop_matrix(a[1], a[2], (w, h)) for a in annotations])


def _refine(
    dataset,
    annotations,
    *,
    shots,
    frames,
    keypoints,
    confidence,
    box_sizes,
    config,
    device,
    workers,
    pool,
    progress,
):
    """Temporal refinement; distributed: each rank a shot-aligned share, then all-gathered."""
    n = len(shots)
    rank, world = distributed_info()
    bounds = _shot_bounds(shots, world) if world > 1 else np.array([0, n])
    a, b = int(bounds[rank]), int(bounds[rank + 1])
    mats = _image_matrices(dataset, annotations)
    result = temporal_refine(
        image_paths=[dataset.image_path(i) for i in range(a, b)],
        shots=shots[a:b],
        frames=frames[a:b],
        keypoints=keypoints[a:b],
        confidence=confidence[a:b],
        box_sizes=box_sizes[a:b],
        config=config,
        workers=workers,
        pool=pool,
        progress=progress and rank == 0,
        image_matrices=None if mats is None else mats[a:b],
    )
    if world == 1:
        return result.keypoints, result.confidence, result.substituted
    local = np.concatenate(
        [
            result.keypoints,
            result.confidence[..., None],
            result.substituted[..., None].astype(np.float32),
        ],
        axis=-1,
    )
    rows = _all_gather_rows(
        torch.from_numpy(local), np.diff(bounds).tolist(), _collective_device(device)
    ).numpy()
    return (
        np.ascontiguousarray(rows[..., :2]),
        np.ascontiguousarray(rows[..., 2]),
        rows[..., 3] > 0.5,
    )
