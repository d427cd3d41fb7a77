"""Per-keypoint PCK: the reference's legacy metric and a precise image-space metric.

Legacy (docs/reference_compat.md §4): integer argmax of the last stack's heatmap against the
argmax of the *target* heatmap, 1-based, hits within heatmap width / 20, averaged per batch.
Precise (§7.5): sub-pixel predictions mapped back to source pixels against the annotation, a hit
within ``alpha x`` the crop side, visible annotations only, pooled over samples.

Both are pure tensor functions plus thin accumulators that keep their sums on the device of the
first batch (no host sync in ``update``); ``compute`` does the one transfer.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from animalpose.datasets.codecs.msra import heatmap_argmax

__all__ = [
    "LEGACY_AUC_THRESHOLDS",
    "LEGACY_THRESHOLD",
    "LEGACY_NORM_DIVISOR",
    "PCK_ALPHA",
    "inverse_permutation",
    "legacy_preds",
    "legacy_batch_accuracy",
    "legacy_distances",
    "LegacyPCK",
    "pck_hits",
    "PrecisePCK",
]

#: The reference's ``dist_acc`` threshold on normalised distances.
LEGACY_THRESHOLD = 0.5
#: The reference normalises heatmap distances by ``heatmap width / 10`` (``accuracy``'s ``norm``);
#: with the 0.5 threshold a hit is closer than 0.05 x the crop side.
LEGACY_NORM_DIVISOR = 10.0
#: The reference's 1-based coordinates must exceed this to count (``calc_dists``: ``> 1``).
LEGACY_MIN_COORD = 1.0
#: The normalised-distance thresholds of the reference's ``calc_metrics`` AUC (its log.txt
#: "Val Auc"): ``np.linspace(0, 1, 100)[1:81]``; the AUC is the mean hit fraction over them, in
#: percent, rounded to 2 decimals.
LEGACY_AUC_THRESHOLDS = np.linspace(0.0, 1.0, 100)[1:81]
#: PCK@0.05: the threshold as a fraction of the crop side (the papers' metric).
PCK_ALPHA = 0.05


def _last_stack(output: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (list, tuple)) and len(output) > 0:
        return output[-1]
    raise TypeError(f"expected a heatmap tensor or a non-empty list of stacks, got {type(output)}")


def legacy_preds(heatmaps: torch.Tensor) -> torch.Tensor:
    """The reference's ``get_preds``: (B, K, h, w) heatmaps -> (B, K, 2) 1-based (x, y).

    Integer argmax plus one; channels whose maximum is not positive become (0, 0).
    """
    if heatmaps.dim() != 4:
        raise ValueError(f"heatmaps must be (B, K, h, w), got shape {tuple(heatmaps.shape)}")
    coords, peaks = heatmap_argmax(heatmaps.float())
    return (coords + 1.0) * (peaks > 0).unsqueeze(-1).float()


def inverse_permutation(permutation: Sequence[int] | np.ndarray, num_keypoints: int) -> np.ndarray:
    """Validated inverse of a keypoint permutation, (K,) int64."""
    perm = np.asarray(permutation, dtype=np.int64)
    if perm.shape != (num_keypoints,) or not np.array_equal(
        np.sort(perm), np.arange(num_keypoints)
    ):
        raise ValueError(
            f"permutation must be a permutation of 0..{num_keypoints - 1}, got {perm.tolist()}"
        )
    return np.argsort(perm)


def legacy_batch_accuracy(
    output: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    *,
    permutation: Sequence[int] | np.ndarray | torch.Tensor | None = None,
    threshold: float = LEGACY_THRESHOLD,
) -> torch.Tensor:
    """Per-keypoint hit fraction of one batch, the reference's ``accuracy_2animal``.

    Args:
        output: (B, K, h, w) predicted heatmaps, or a list of stacks (the last is used).
        target: (B, K, h, w) target heatmaps (zero for missing keypoints).
        permutation: for targets stored in another slot order (TigDog tiger): prediction
            channel ``permutation[i]`` is compared with target slot ``i``. The reference printed
            the result in target-slot order; we return it in model (prediction channel) order,
            so targets in TigDog order with the permutation give the same vector as targets in
            model order without it. A sequence or array is validated; a tensor (already on the
            device, as :class:`LegacyPCK` caches it) is trusted, so no host sync happens.
        threshold: on distance / (w / 10).

    Returns:
        (K,) float32 on the input's device: hit fraction per keypoint, -1 where no keypoint of
        the batch is valid.
    """
    dists, valid = legacy_distances(output, target, permutation=permutation)
    hits = ((dists < threshold) & valid).sum(0).float()
    n_valid = valid.sum(0).float()
    return torch.where(n_valid > 0, hits / n_valid.clamp_min(1.0), torch.full_like(hits, -1.0))


def legacy_distances(
    output: torch.Tensor | Sequence[torch.Tensor],
    target: torch.Tensor,
    *,
    permutation: Sequence[int] | np.ndarray | torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's ``calc_dists``: (B, K) distances between the 1-based argmaxes of the last
    stack and of the target, over heatmap width / 10, and the (B, K) mask of those that count
    (both target coordinates > 1). Arguments as :func:`legacy_batch_accuracy`."""
    out = _last_stack(output)
    if out.shape != target.shape:
        raise ValueError(
            f"output {tuple(out.shape)} and target {tuple(target.shape)} shapes differ"
        )
    preds = legacy_preds(out)
    gts = legacy_preds(target.to(out.device))
    if permutation is not None:
        # Target slot i holds model keypoint perm[i]; move it to channel perm[i].
        if isinstance(permutation, torch.Tensor):
            inverse = torch.argsort(permutation.to(gts.device))
        else:
            inverse = torch.as_tensor(
                inverse_permutation(permutation, gts.shape[1]), device=gts.device
            )
        gts = gts[:, inverse]
    valid = (gts[..., 0] > LEGACY_MIN_COORD) & (gts[..., 1] > LEGACY_MIN_COORD)  # (B, K)
    norm = out.shape[-1] / LEGACY_NORM_DIVISOR
    return torch.linalg.vector_norm(preds - gts, dim=-1) / norm, valid


class LegacyPCK:
    """Accumulates :func:`legacy_batch_accuracy` over batches: mean of per-batch fractions.

    ``compute`` returns (K,) fractions in [0, 1], NaN for keypoints never valid. Results depend
    on the batch size and order, as the reference's do (it used batch 6, unshuffled).
    """

    def __init__(
        self,
        *,
        permutation: Sequence[int] | np.ndarray | None = None,
        threshold: float = LEGACY_THRESHOLD,
    ) -> None:
        self.permutation = None if permutation is None else np.asarray(permutation, np.int64)
        if self.permutation is not None:
            inverse_permutation(self.permutation, len(self.permutation))  # validate once
        self._device_permutation: torch.Tensor | None = None
        self.threshold = float(threshold)
        self.reset()

    def reset(self) -> None:
        self._sum: torch.Tensor | None = None  # (K,) sum of per-batch fractions
        self._batches: torch.Tensor | None = None  # (K,) batches where the keypoint was valid
        # Over all counted distances: their sum, their number, how many fall below each
        # LEGACY_AUC_THRESHOLDS entry (the reference's "Val Mean Error" and "Val Auc").
        self._dist_sum: torch.Tensor | None = None
        self._dist_count: torch.Tensor | None = None
        self._below: torch.Tensor | None = None

    def update(self, output: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> None:
        """Add one batch; ``output`` (B, K, h, w) or a list of stacks, ``target`` (B, K, h, w)."""
        out = _last_stack(output)
        perm = None
        if self.permutation is not None:
            if self._device_permutation is None or self._device_permutation.device != out.device:
                self._device_permutation = torch.as_tensor(self.permutation, device=out.device)
            perm = self._device_permutation
        dists, valid = legacy_distances(out, target, permutation=perm)
        hits = ((dists < self.threshold) & valid).sum(0).float()
        n_valid = valid.sum(0).float()
        acc = torch.where(n_valid > 0, hits / n_valid.clamp_min(1.0), torch.full_like(hits, -1.0))
        seen = acc >= 0
        if self._sum is None:
            self._sum = torch.zeros_like(acc, dtype=torch.float64)
            self._batches = torch.zeros_like(acc, dtype=torch.int64)
            self._dist_sum = torch.zeros((), dtype=torch.float64, device=acc.device)
            self._dist_count = torch.zeros((), dtype=torch.int64, device=acc.device)
            self._below = torch.zeros(len(LEGACY_AUC_THRESHOLDS), dtype=torch.int64)
            self._below = self._below.to(acc.device)
            # float32 on both sides, as the reference compared its float32 distances
            self._thresholds = torch.as_tensor(
                LEGACY_AUC_THRESHOLDS, dtype=torch.float32, device=acc.device
            )
        elif acc.shape != self._sum.shape:
            raise ValueError(
                f"batch has {acc.shape[0]} keypoints, earlier ones {self._sum.shape[0]}"
            )
        self._sum += torch.where(seen, acc, torch.zeros_like(acc)).double()
        self._batches += seen.long()
        counted = dists[valid].float()
        self._dist_sum += counted.double().sum()
        self._dist_count += counted.numel()
        self._below += (counted.unsqueeze(1) < self._thresholds).sum(0)

    def compute(self) -> np.ndarray:
        """(K,) float64 mean per-batch fraction; NaN where the keypoint was never valid."""
        if self._sum is None:
            raise RuntimeError("LegacyPCK.compute() called before any update()")
        return _ratio(self._sum, self._batches)

    def mean_error(self) -> float:
        """Mean counted distance (heatmap width / 10 units): the reference's "Val Mean Error";
        NaN when none counted."""
        if self._dist_sum is None or int(self._dist_count) == 0:
            return float("nan")
        return float(self._dist_sum) / int(self._dist_count)

    def auc(self) -> float:
        """The reference's ``calc_metrics`` AUC ("Val Auc"): the mean over
        ``LEGACY_AUC_THRESHOLDS`` of the share of counted distances below each, in percent,
        rounded to 2 decimals; NaN when none counted."""
        if self._below is None or int(self._dist_count) == 0:
            return float("nan")
        shares = self._below.cpu().numpy() / int(self._dist_count)
        return round(float(np.sum(shares)) / (len(LEGACY_AUC_THRESHOLDS) / 100), 2)


def pck_hits(
    pred: torch.Tensor,
    gt: torch.Tensor,
    normaliser: torch.Tensor,
    alpha: float = PCK_ALPHA,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Precise PCK hits of one batch.

    Args:
        pred: (N, K, 2) predicted (x, y), same pixel frame as ``gt``.
        gt: (N, K, 3) annotation (x, y, visible); only visible > 0 counts.
        normaliser: (N,) per-sample normaliser in the same pixels (the crop side).
        alpha: threshold as a fraction of the normaliser.

    Returns:
        hits (N, K) bool (distance < alpha x normaliser and valid) and valid (N, K) bool.
    """
    if pred.dim() != 3 or pred.shape[-1] != 2:
        raise ValueError(f"pred must be (N, K, 2), got {tuple(pred.shape)}")
    if gt.shape[:2] != pred.shape[:2] or gt.shape[-1] < 3:
        raise ValueError(
            f"gt must be (N, K, 3) matching pred {tuple(pred.shape)}, got {tuple(gt.shape)}"
        )
    gt = gt.to(pred.device)
    valid = gt[..., 2] > 0
    dist = torch.linalg.vector_norm(pred.to(gt.dtype) - gt[..., :2], dim=-1)
    limit = alpha * normaliser.to(device=pred.device, dtype=dist.dtype).reshape(-1, 1)
    return (dist < limit) & valid, valid


class PrecisePCK:
    """Accumulates :func:`pck_hits`: per-keypoint hits / counts pooled over all samples."""

    def __init__(self, *, alpha: float = PCK_ALPHA) -> None:
        self.alpha = float(alpha)
        self.reset()

    def reset(self) -> None:
        self._hits: torch.Tensor | None = None  # (K,) int64
        self._counts: torch.Tensor | None = None  # (K,) int64

    def update(self, pred: torch.Tensor, gt: torch.Tensor, normaliser: torch.Tensor) -> None:
        """Add (N, K, 2) predictions, (N, K, 3) annotations and (N,) normalisers."""
        hits, valid = pck_hits(pred, gt, normaliser, self.alpha)
        if self._hits is None:
            self._hits = torch.zeros(hits.shape[1], dtype=torch.int64, device=hits.device)
            self._counts = torch.zeros_like(self._hits)
        elif hits.shape[1] != self._hits.shape[0]:
            raise ValueError(
                f"batch has {hits.shape[1]} keypoints, earlier ones {self._hits.shape[0]}"
            )
        self._hits += hits.sum(0)
        self._counts += valid.sum(0)

    @property
    def counts(self) -> np.ndarray:
        """(K,) int64 number of valid annotations per keypoint."""
        if self._counts is None:
            raise RuntimeError("PrecisePCK.counts read before any update()")
        return self._counts.cpu().numpy()

    def compute(self) -> np.ndarray:
        """(K,) float64 hits / counts; NaN where the count is 0."""
        if self._hits is None:
            raise RuntimeError("PrecisePCK.compute() called before any update()")
        return _ratio(self._hits, self._counts)


def _ratio(numerator: torch.Tensor, denominator: torch.Tensor) -> np.ndarray:
    """``numerator / denominator`` as float64 NumPy (one transfer), NaN where the count is 0."""
    num, den = numerator.cpu().numpy(), denominator.cpu().numpy()
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out
