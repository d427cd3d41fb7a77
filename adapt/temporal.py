"""Temporal consistency of pseudo-labels by pyramidal Lucas-Kanade, within shots only.

CC-SSL's ``prediction_check`` (Mu et al. CVPR 2020; docs/reference_compat.md §5): the previous
frame's refined keypoints are flowed into the current frame; where ``conf / flowed_conf <
ratio`` the flowed location replaces the prediction, with confidence ``ratio x flowed_conf``;
flows that LK loses or that move too far are rejected. Unlike the reference, flow never crosses
a shot boundary and runs on the full frames in frame pixels (docs/reference_compat.md §7.8).
Chained runs of rows refine in parallel; results depend neither on the workers nor the pool.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from animalpose.datasets.fileio import DataError, check_complete
from animalpose.datasets.geometry import apply_affine, invert_affine

__all__ = [
    "FLOW_POOLS",
    "LK_CRITERIA",
    "TemporalConfig",
    "TemporalResult",
    "chain_links",
    "flow_limits",
    "read_gray",
    "substitute",
    "temporal_refine",
    "track_points",
]

#: The reference's LK stopping rule: 10 iterations or a 0.03 px update (``lk_params``).
LK_CRITERIA = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 10, 0.03)
#: Work items per pool worker: enough to balance shots of unequal length.
_CHUNKS_PER_WORKER = 4
#: A spawned worker re-imports the main script (torch and all: seconds), so a process pool only
#: pays off with this many frames per worker (~1 s of flow at 4 ms a frame).
MIN_ROWS_PER_WORKER = 256


@dataclass(frozen=True)
class TemporalConfig:
    """Temporal refinement settings (reference values).

    Attributes:
        window: LK window side in pixels (reference ``winSize=(15, 15)``).
        levels: LK pyramid levels above the full image (reference ``maxLevel=2``).
        max_move: largest accepted flow in pixels of a ``crop_size`` crop (reference 15 of 256).
        crop_size: the crop side ``max_move`` refers to (the reference's 256 input).
        ratio: substitute when ``conf / flowed_conf < ratio``; the substitute's confidence is
            ``ratio x flowed_conf`` (reference ``lambda_decay=0.9``).
        max_frame_gap: the previous row chains only when ``0 < frame gap <= max_frame_gap``.
    """

    window: int = 15
    levels: int = 2
    max_move: float = 15.0
    crop_size: int = 256
    ratio: float = 0.9
    max_frame_gap: int = 1

    def __post_init__(self) -> None:
        if self.window < 3:
            raise ValueError(f"window must be >= 3 pixels, got {self.window}")
        if self.levels < 0:
            raise ValueError(f"levels must be >= 0, got {self.levels}")
        if not self.max_move > 0 or self.crop_size <= 0:
            raise ValueError(
                f"max_move and crop_size must be positive, got {self.max_move}, {self.crop_size}"
            )
        if not 0 < self.ratio <= 1:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.max_frame_gap < 1:
            raise ValueError(f"max_frame_gap must be >= 1, got {self.max_frame_gap}")


@dataclass
class TemporalResult:
    """keypoints (N, K, 2) float32 frame pixels, confidence (N, K) float32, substituted (N, K)
    bool (the flowed location replaced the prediction)."""

    keypoints: np.ndarray
    confidence: np.ndarray
    substituted: np.ndarray


def read_gray(path: str | os.PathLike) -> np.ndarray:
    """(H, W) uint8 grey image; DataError naming the file when missing, truncated or unreadable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read image for optical flow ({exc})") from exc
    check_complete(data, path)
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise DataError(f"{path}: cannot decode image for optical flow")
    return image


def track_points(
    prev_gray: np.ndarray, cur_gray: np.ndarray, points: np.ndarray, *, window: int, levels: int
) -> tuple[np.ndarray, np.ndarray]:
    """Carry (K, 2) pixel ``points`` of ``prev_gray`` into ``cur_gray`` (pyramidal LK).

    Returns:
        flowed (K, 2) float64 and ok (K,) bool (LK found the point; non-finite input is not ok).
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    finite = np.isfinite(pts).all(axis=1)
    start = np.where(finite[:, None], pts, 0.0).astype(np.float32).reshape(-1, 1, 2)
    if len(start) == 0:
        return np.zeros((0, 2)), np.zeros(0, dtype=bool)
    flowed, status, _ = cv2.calcOpticalFlowPyrLK(
        prev_gray,
        cur_gray,
        start,
        None,
        winSize=(window, window),
        maxLevel=levels,
        criteria=LK_CRITERIA,
    )
    flowed = flowed.reshape(-1, 2).astype(np.float64)
    ok = finite & (status.reshape(-1) == 1) & np.isfinite(flowed).all(axis=1)
    return flowed, ok


def chain_links(shots: np.ndarray, frames: np.ndarray, max_frame_gap: int) -> np.ndarray:
    """(N,) bool: row ``r`` takes its flow from row ``r - 1`` (same shot, ``0 < gap <= max``)."""
    shots, frames = np.asarray(shots), np.asarray(frames)
    links = np.zeros(len(shots), dtype=bool)
    gap = np.diff(frames)
    links[1:] = (shots[1:] == shots[:-1]) & (gap > 0) & (gap <= max_frame_gap)
    return links


def flow_limits(box_sizes: np.ndarray, config: TemporalConfig) -> np.ndarray:
    """Largest accepted flow in frame pixels: ``max_move`` crop pixels scaled by box side."""
    return config.max_move * np.asarray(box_sizes, dtype=np.float64) / config.crop_size


def substitute(
    *,
    keypoints: np.ndarray,
    confidence: np.ndarray,
    flowed: np.ndarray,
    flowed_confidence: np.ndarray,
    ratio: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's combination rule for one frame.

    Args:
        keypoints: (K, 2) prediction; confidence: (K,) its confidence.
        flowed: (K, 2) the previous frame's keypoints carried into this frame.
        flowed_confidence: (K,) the previous frame's confidences, 0 where the flow is rejected.
        ratio: substitute where ``flowed_confidence > 0`` and ``conf / flowed_conf < ratio``.

    Returns:
        keypoints (K, 2), confidence (K,) (``ratio x flowed_conf`` where substituted) and
        substituted (K,) bool.
    """
    conf = np.asarray(confidence, dtype=np.float32)
    fconf = np.asarray(flowed_confidence, dtype=np.float32)
    positive = fconf > 0
    quotient = np.divide(conf, fconf, out=np.full_like(conf, np.inf), where=positive)
    swap = positive & (quotient < ratio)
    out_kp = np.where(swap[:, None], flowed, keypoints).astype(np.float32)
    out_conf = np.where(swap, np.float32(ratio) * fconf, conf).astype(np.float32)
    return out_kp, out_conf, swap


@dataclass
class _Segment:
    """Rows ``start:stop`` of a refinement: each row after the first chains to the previous."""

    start: int
    paths: list[str]
    matrices: np.ndarray | None  # (n, 2, 3) frame -> image-file affines, None = identity
    keypoints: np.ndarray  # (n, K, 2)
    confidence: np.ndarray  # (n, K)
    limits: np.ndarray  # (n,) flow limit of each row as the *previous* row, frame pixels


def _refine_segment(segment: _Segment, config: TemporalConfig):
    """Refine one chained run of rows in order; each image is read once."""
    kp = np.array(segment.keypoints, dtype=np.float32, copy=True)
    conf = np.array(segment.confidence, dtype=np.float32, copy=True)
    swapped = np.zeros(conf.shape, dtype=bool)
    m = segment.matrices
    prev_gray = read_gray(segment.paths[0]) if len(segment.paths) > 1 else None
    for r in range(1, len(segment.paths)):
        cur_gray = read_gray(segment.paths[r])
        prev = kp[r - 1].astype(np.float64)
        start = prev if m is None else apply_affine(prev, m[r - 1])
        flowed, ok = track_points(
            prev_gray, cur_gray, start, window=config.window, levels=config.levels
        )
        if m is not None:
            flowed = apply_affine(flowed, invert_affine(m[r]))
        moved = np.linalg.norm(flowed - prev, axis=1)
        accepted = ok & (moved <= segment.limits[r - 1])
        flowed_conf = np.where(accepted, conf[r - 1], np.float32(0.0))
        kp[r], conf[r], swapped[r] = substitute(
            keypoints=kp[r],
            confidence=conf[r],
            flowed=flowed,
            flowed_confidence=flowed_conf,
            ratio=config.ratio,
        )
        prev_gray = cur_gray
    return kp, conf, swapped


def _refine_chunk(segments: list[_Segment], config: TemporalConfig) -> list:
    return [_refine_segment(s, config) for s in segments]


def _init_worker() -> None:
    cv2.setNumThreads(1)  # a process per core already (process pool only)


def _process_pool(workers: int) -> Executor:
    return ProcessPoolExecutor(
        max_workers=workers,
        initializer=_init_worker,
        mp_context=multiprocessing.get_context("spawn"),
    )


def _thread_pool(workers: int) -> Executor:
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flow")


#: ``pool`` name -> (executor factory, whether it pays a per-worker start-up). Threads are the
#: default: JPEG decoding and LK run in OpenCV, which releases the GIL, so threads scale like
#: processes without their start-up. The spawn-safe process pool is for hosts where the Python
#: share matters; each worker re-imports the main script (~0.7 GB and seconds per worker for a
#: torch script on a 2-core machine), hence ``min_rows_per_worker``.
FLOW_POOLS: dict[str, tuple] = {"thread": (_thread_pool, False), "process": (_process_pool, True)}


def _chunks(segments: list[_Segment], count: int) -> list[list[_Segment]]:
    """Split ``segments`` (in order) into at most ``count`` runs of similar row counts."""
    total = sum(len(s.paths) for s in segments)
    target = max(1, -(-total // max(count, 1)))
    chunks: list[list[_Segment]] = [[]]
    rows = 0
    for s in segments:
        if rows >= target:
            chunks.append([])
            rows = 0
        chunks[-1].append(s)
        rows += len(s.paths)
    return [c for c in chunks if c]


def temporal_refine(
    *,
    image_paths: Sequence[str | os.PathLike],
    shots: np.ndarray,
    frames: np.ndarray,
    keypoints: np.ndarray,
    confidence: np.ndarray,
    box_sizes: np.ndarray,
    config: TemporalConfig,
    workers: int = 0,
    progress: bool = False,
    image_matrices: np.ndarray | None = None,
    pool: str = "thread",
    min_rows_per_worker: int = MIN_ROWS_PER_WORKER,
) -> TemporalResult:
    """Refine pseudo-labels by flow from the previous frame of the same shot.

    Rows are in loader order (shot, then frame). Row ``r`` chains to row ``r - 1`` when both are
    the same shot and ``0 < frame gap <= config.max_frame_gap``; the previous row's *refined*
    keypoints are flowed (grey images) into this frame, a point is rejected when LK loses it or
    it moved more than ``max_move x prev_box / crop_size`` frame pixels, and the rule of
    :func:`substitute` is applied.

    Args:
        image_paths: (N,) image of each row (the full frame, or the file the dataset reads).
        shots, frames: (N,) shot id and global frame number.
        keypoints: (N, K, 2) frame pixels; confidence: (N, K).
        box_sizes: (N,) crop side of each row in frame pixels (the box the crop_size crop shows).
        config: see :class:`TemporalConfig`.
        workers: parallel workers refining whole segments (0: in this thread).
        progress: tqdm bar over rows.
        image_matrices: (N, 2, 3) frame -> image-file pixel affines when ``image_paths`` are
            crops of the frames (the real_animal_crop files); None when they are the frames.
        pool: a ``FLOW_POOLS`` key: ``"thread"`` or ``"process"`` (spawn; fewer workers are
            started when there are less than ``min_rows_per_worker`` frames for each).

    Returns:
        :class:`TemporalResult` with the refined keypoints, confidences and substitution mask.
    """
    n = len(image_paths)
    kp = np.asarray(keypoints, dtype=np.float32)
    conf = np.asarray(confidence, dtype=np.float32)
    shots, frames = np.asarray(shots, dtype=np.int64), np.asarray(frames, dtype=np.int64)
    sizes = np.asarray(box_sizes, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] != 2:
        raise ValueError(f"keypoints must be (N={n}, K, 2), got {kp.shape}")
    if conf.shape != kp.shape[:2]:
        raise ValueError(f"confidence must be {kp.shape[:2]}, got {conf.shape}")
    if shots.shape != (n,) or frames.shape != (n,) or sizes.shape != (n,):
        raise ValueError(
            f"shots, frames and box_sizes must be ({n},), got {shots.shape}, "
            f"{frames.shape}, {sizes.shape}"
        )
    mats = None if image_matrices is None else np.asarray(image_matrices, dtype=np.float64)
    if mats is not None and mats.shape != (n, 2, 3):
        raise ValueError(f"image_matrices must be ({n}, 2, 3), got {mats.shape}")
    links = chain_links(shots, frames, config.max_frame_gap)
    limits = flow_limits(sizes, config)
    starts = np.flatnonzero(~links) if n else np.zeros(0, dtype=np.int64)
    stops = np.append(starts[1:], n)
    paths = [str(p) for p in image_paths]
    segments = [
        _Segment(
            int(a), paths[a:b], None if mats is None else mats[a:b], kp[a:b], conf[a:b], limits[a:b]
        )
        for a, b in zip(starts, stops, strict=True)
        if b - a > 1
    ]
    out_kp, out_conf = kp.copy(), conf.copy()
    swapped = np.zeros(conf.shape, dtype=bool)
    if pool not in FLOW_POOLS:
        raise ValueError(f"unknown flow pool {pool!r}; valid: {sorted(FLOW_POOLS)}")
    make_pool, costly = FLOW_POOLS[pool]
    rows = sum(len(s.paths) for s in segments)
    if costly:
        workers = min(workers, rows // max(1, min_rows_per_worker))
    bar = tqdm(total=rows, desc="flow", unit="img", disable=not progress)
    chunks = _chunks(segments, max(1, workers) * _CHUNKS_PER_WORKER)
    if workers > 0 and len(chunks) > 1:
        with make_pool(min(workers, len(chunks))) as executor:
            results = executor.map(_refine_chunk, chunks, [config] * len(chunks))
            done = list(_collect(chunks, results, bar))
    else:
        done = list(_collect(chunks, (_refine_chunk(c, config) for c in chunks), bar))
    bar.close()
    for segment, (k, c, s) in done:
        part = slice(segment.start, segment.start + len(segment.paths))
        out_kp[part], out_conf[part], swapped[part] = k, c, s
    return TemporalResult(out_kp, out_conf, swapped)


def _collect(chunks, results, bar):
    for chunk, refined in zip(chunks, results, strict=True):
        for segment, result in zip(chunk, refined, strict=True):
            bar.update(len(segment.paths))
            yield segment, result
