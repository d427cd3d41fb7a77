"""The pseudo-label engine shared by CC-SSL and PPLO: generate, store, select, serve.

``generate_pseudo_labels`` predicts every frame of a TigDog-type dataset in loader order with
equivariance views (``views.py``), optionally refines the labels by optical flow within shots
(``temporal.py``) and returns :class:`PseudoLabels` with nothing selected yet;
``PseudoLabels.with_selection`` applies a keep share (``selection.py``), ``save``/``load`` store
one compact ``.npz`` (no pickles), and :class:`PseudoLabelDataset` serves the selected labels as
training samples with the dataset's own (strong) augmentation.

Keypoints are stored in frame pixels, so the labels do not depend on the crop the model saw.
"""

from __future__ import annotations

import os
import time
import zipfile
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import Dataset, Subset
from tqdm import tqdm

from animalpose.adapt.selection import select_top_share
from animalpose.adapt.temporal import TemporalConfig, temporal_refine
from animalpose.adapt.views import ViewSampler, equivariant_heatmaps, view_theta
from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.fileio import DataError, atomic_write, read_image
from animalpose.datasets.formats.tigdog import RealAnimal, RealAnimalCrop
from animalpose.datasets.geometry import crop_matrix
from animalpose.evaluation.inference import crop_to_image, eval_mode
from animalpose.evaluation.pck import PCK_ALPHA
from animalpose.train.loaders import distributed_info, make_loader

__all__ = ["FORMAT", "PseudoLabelDataset", "PseudoLabels", "generate_pseudo_labels"]

#: Format tag stored in every pseudo-label file.
FORMAT = "animalpose.pseudo_labels/1"
#: ``hits`` value of a keypoint without a visible annotation (no PCK verdict).
NO_ANNOTATION = -1
#: Array entries of the file: name -> (dtype, shape in terms of N rows and K keypoints).
_ARRAYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "indices": ("int64", ("N",)),
    "shots": ("int64", ("N",)),
    "frames": ("int64", ("N",)),
    "keypoints": ("float32", ("N", "K", "2")),
    "confidence": ("float32", ("N", "K")),
    "substituted": ("bool", ("N", "K")),
    "selected": ("bool", ("N", "K")),
    "hits": ("int8", ("N", "K")),
}
_SCALARS: dict[str, str] = {
    "round": "int64",
    "epoch": "int64",
    "keep_share": "float64",
    "threshold": "float64",
}
_DIAGNOSTICS = ("diagnostic_names", "diagnostic_values")


@dataclass
class PseudoLabels:
    """One round of pseudo-labels, rows in dataset (loader) order.

    Attributes:
        round: pseudo-label round; epoch: training epoch it was generated at.
        keep_share: share selected (0 before selection); threshold: confidence threshold of the
            selection (NaN before selection).
        indices: (N,) int64 dataset indices; shots, frames: (N,) int64 TigDog shot and frame.
        keypoints: (N, K, 2) float32 frame pixels; confidence: (N, K) float32 heatmap peaks.
        substituted: (N, K) bool, replaced by the flowed previous frame's label.
        selected: (N, K) bool, trains (visible = selected).
        diagnostics: ``pck_all`` / ``pck_selected`` (fraction of labels within 0.05 x box side
            of a visible annotation, all / selected), ``kept_share``, ``substituted`` (count),
            ``predict_seconds``, ``flow_seconds``.
        hits: (N, K) int8 1 / 0 label within / beyond 0.05 x box side of the annotation,
            -1 without a visible annotation.
    """

    round: int
    epoch: int
    keep_share: float
    threshold: float
    indices: np.ndarray
    shots: np.ndarray
    frames: np.ndarray
    keypoints: np.ndarray
    confidence: np.ndarray
    substituted: np.ndarray
    selected: np.ndarray
    diagnostics: dict[str, float] = field(default_factory=dict)
    hits: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _hits(self) -> np.ndarray:
        if self.hits is None:
            return np.full(self.confidence.shape, NO_ANNOTATION, dtype=np.int8)
        return self.hits

    def with_selection(self, keep_share: float) -> PseudoLabels:
        """A copy with ``selected``/``threshold``/``keep_share`` set by ``select_top_share``."""
        selected, threshold = select_top_share(self.confidence, keep_share)
        diagnostics = {**self.diagnostics, **_diagnostics(self._hits(), selected, self.substituted)}
        return replace(
            self,
            keep_share=float(keep_share),
            threshold=threshold,
            selected=selected,
            diagnostics=diagnostics,
        )

    def save(self, path: str | os.PathLike) -> None:
        """Write one compressed ``.npz`` atomically (every entry a plain array, no pickles)."""
        names = list(self.diagnostics)
        values = {name: getattr(self, name) for name in _ARRAYS} | {"hits": self._hits()}
        arrays = {name: np.asarray(values[name], dtype=d) for name, (d, _) in _ARRAYS.items()}
        scalars = {name: np.asarray(getattr(self, name), dtype=d) for name, d in _SCALARS.items()}
        with atomic_write(path) as f:
            np.savez_compressed(
                f,
                format=np.asarray(FORMAT),
                **scalars,
                **arrays,
                diagnostic_names=np.asarray(names, dtype=np.str_).reshape(len(names)),
                diagnostic_values=np.asarray([self.diagnostics[n] for n in names], np.float64),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> PseudoLabels:
        """Read a file written by :meth:`save`; DataError naming the file and the problem."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: pseudo-label file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                content = {name: z[name] for name in z.files}
        except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as exc:
            raise DataError(
                f"{path}: not a readable pseudo-label .npz ({type(exc).__name__}: {exc})"
            ) from exc
        return cls(**_validated(path, content))


def _validated(path: Path, content: dict) -> dict:
    """Check every entry's presence, dtype and shape; return the constructor arguments."""
    expected = ["format", *_SCALARS, *_ARRAYS, *_DIAGNOSTICS]
    missing = [name for name in expected if name not in content]
    if missing:
        raise DataError(f"{path}: pseudo-label file lacks {missing} (expected {expected})")
    tag = content["format"]
    if tag.shape != () or str(tag) != FORMAT:
        raise DataError(f"{path}: format tag {tag!r} is not {FORMAT!r}")
    out = {}
    for name, dtype in _SCALARS.items():
        value = content[name]
        if value.shape != () or value.dtype != np.dtype(dtype):
            raise DataError(
                f"{path}: {name!r} must be a {dtype} scalar, got {value.dtype} {value.shape}"
            )
        out[name] = value.item()
    sizes: dict[str, int] = {"2": 2}
    if content["indices"].ndim == 1:
        sizes["N"] = len(content["indices"])
    if content["keypoints"].ndim == 3:
        sizes["K"] = content["keypoints"].shape[1]
    for name, (dtype, dims) in _ARRAYS.items():
        value = content[name]
        want = tuple(sizes.get(d, -1) for d in dims)
        if value.dtype != np.dtype(dtype) or value.shape != want:
            raise DataError(
                f"{path}: {name!r} must be {dtype} of shape {want} ({' x '.join(dims)})"
                f", got {value.dtype} {value.shape}"
            )
        out[name] = value
    names, values = content["diagnostic_names"], content["diagnostic_values"]
    if (
        names.dtype.kind != "U"
        or names.ndim != 1
        or values.dtype != np.float64
        or values.shape != names.shape
    ):
        raise DataError(
            f"{path}: diagnostics must be a str array of names and a float64 array "
            f"of values of one length, got {names.dtype} {names.shape} and "
            f"{values.dtype} {values.shape}"
        )
    out["diagnostics"] = {str(n): float(v) for n, v in zip(names, values, strict=True)}
    if len(np.unique(out["indices"])) != len(out["indices"]) or (out["indices"] < 0).any():
        raise DataError(f"{path}: 'indices' must be distinct non-negative dataset indices")
    if not np.isin(out["hits"], (NO_ANNOTATION, 0, 1)).all():
        raise DataError(f"{path}: 'hits' must hold only -1, 0 or 1")
    return out


def _fraction(mask: np.ndarray, hits: np.ndarray) -> float:
    judged = mask & (hits != NO_ANNOTATION)
    return float((hits[judged] == 1).mean()) if judged.any() else float("nan")


def _diagnostics(hits: np.ndarray, selected: np.ndarray, substituted: np.ndarray) -> dict:
    return {
        "pck_all": _fraction(np.ones(hits.shape, dtype=bool), hits),
        "pck_selected": _fraction(selected, hits),
        "kept_share": float(selected.mean()) if selected.size else float("nan"),
        "substituted": float(substituted.sum()),
    }


# --- generation ------------------------------------------------------------------------------


def _draw_views(views: ViewSampler, seed: int, round_index: int, indices: list[int]):
    """(V+1, B) scales and degrees, each sample's from ``default_rng([seed, round, index])``."""
    draws = [views.sample(np.random.default_rng([seed, round_index, i]), 1) for i in indices]
    return np.concatenate([d[0] for d in draws], axis=1), np.concatenate([d[1] for d in draws], 1)


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
    subset = Subset(dataset, range(lo, hi))
    loader = make_loader(
        subset,
        batch_size=batch_size,
        shuffle=False,
        workers=workers,
        seed=seed,
        device=device,
        shard=False,
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
        scales, degrees = _draw_views(views, seed, round_index, index.tolist())
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
    truth = np.stack([a[0] for a in annotations]) if n else np.zeros((0, *keypoints.shape[1:]))
    hits = _pck_hits(keypoints, truth, box_sizes)
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
            **_diagnostics(hits, selected, substituted),
            "predict_seconds": predict_seconds,
            "flow_seconds": flow_seconds,
        },
    )


def _pck_hits(keypoints: np.ndarray, truth: np.ndarray, box_sizes: np.ndarray) -> np.ndarray:
    """(N, K) int8: 1 within ``PCK_ALPHA x box side`` of a visible annotation, 0 beyond, -1 none."""
    dist_px = np.linalg.norm(keypoints.astype(np.float64) - truth[..., :2], axis=-1)
    hits = (dist_px < PCK_ALPHA * box_sizes[:, None]).astype(np.int8)
    hits[~(truth[..., 2] > 0)] = NO_ANNOTATION
    return hits


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


# --- serving -----------------------------------------------------------------------------------


class PseudoLabelDataset(Dataset):
    """Training samples of ``base`` labelled by ``labels`` (visible = selected).

    ``base`` is a RealAnimal / RealAnimalCrop over the split the labels were generated on, built
    with a *training* augmenter (CC-SSL's invariance: strongly augmented targets). Row ``i``
    serves dataset index ``labels.indices[i]``: ``base``'s image, crop box, augmentation draw
    (keyed on that index) and ``_sample`` packing, with the pseudo-labels (frame pixels) in place
    of the annotation, so ``meta["keypoints_image"]`` holds the pseudo-labels too.

    Raises:
        DataError: the labels' indices, shots or frames do not match ``base``.
    """

    def __init__(self, base: RealAnimal | RealAnimalCrop, labels: PseudoLabels) -> None:
        if not isinstance(base, (RealAnimal, RealAnimalCrop)):
            raise TypeError(f"base must be a RealAnimal or RealAnimalCrop, got {type(base)}")
        self.base, self.labels = base, labels
        where = f"{base.root} ({base.animal}, split {base.split!r}, {len(base)} samples)"
        idx = np.asarray(labels.indices)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(base)):
            raise DataError(
                f"{where}: pseudo-label indices span {idx.min()}..{idx.max()}, "
                f"outside the dataset's 0..{len(base) - 1}"
            )
        if labels.keypoints.shape[1:] != (base.spec.num_keypoints, 2):
            raise DataError(
                f"{where}: pseudo-labels have {labels.keypoints.shape[1]} keypoints, "
                f"the dataset {base.spec.num_keypoints}"
            )
        for i, j in enumerate(idx):
            shot, frame = base.shot_frame(int(j))
            if (shot, frame) != (int(labels.shots[i]), int(labels.frames[i])):
                raise DataError(
                    f"{where}: pseudo-label row {i} (index {j}) is shot {labels.shots[i]} frame "
                    f"{labels.frames[i]} but the dataset has shot {shot} frame {frame}; the "
                    "labels were generated on another split, animal or split file"
                )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def epoch(self) -> int:
        return self.base.epoch

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to ``base`` (its augmentation draw of ``epoch``)."""
        self.base.set_epoch(epoch)

    def __getitem__(self, i: int) -> dict:
        j = int(self.labels.indices[i])
        path = self.base.image_path(j)
        image = read_image(path)
        _, center, size = self.base.annotation(j)
        shot, frame = self.base.shot_frame(j)
        keypoints = np.concatenate(
            [
                self.labels.keypoints[i].astype(np.float64),
                self.labels.selected[i, :, None].astype(np.float64),
            ],
            axis=1,
        )
        pre = None
        if isinstance(self.base, RealAnimalCrop):  # the file is a crop of the frame
            pre = crop_matrix(center, size, (image.shape[1], image.shape[0]))
        return self.base._sample(
            j, image, keypoints, center, size, shot, frame, pre_matrix=pre, source=str(path)
        )
