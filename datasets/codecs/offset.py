"""G-RMI heatmaps and offsets (Papandreou et al. 2017, "Towards Accurate Multi-person Pose
Estimation in the Wild"), decoded by heatmap-weighted Hough voting.

Targets: per keypoint a binary disk (1 at the pixels within ``R`` heatmap pixels of the
keypoint, else 0) and two offset maps, ``(keypoint - pixel) / R`` inside the disk and 0 outside;
heatmaps are (..., 3K, h, w), keypoint ``k`` in channels ``3k`` (disk), ``3k + 1`` (x offset),
``3k + 2`` (y offset). That is UDP's ``"combined"`` target with a radius in heatmap pixels, so
``OffsetHeatmap`` is a ``UDPHeatmap``: it inherits the encoding, the unit-length alignment
(``(input_size - 1) / (heatmap_size - 1)``; its crops need ``TopDownCrop(..., unbiased=True)``)
and the flip rule (keypoints swapped, width mirrored, x offsets negated, no shift).

The model predicts *logits* for the disk channels. Training (``make_loss``, ``OffsetLoss``):
``lambda_h * L_h + lambda_o * L_o`` with ``L_h`` the logistic loss of the disk logits over all
pixels and ``L_o`` the Huber loss of the offsets inside the disk (G-RMI eq. 3-4).

Decode (G-RMI Sec. 3.2): every pixel ``p`` votes for ``p + R * offset(p)`` with weight
``sigmoid(logit(p))``; the votes are splatted bilinearly into a Hough map (``vote_scale`` times
the heatmap resolution, ``hough_votes``), which is smoothed (``gaussian_blur``). Its argmax picks
the mode; the keypoint is the weighted mean of the votes within ``window`` heatmap pixels of it
(``vote_mean``), a sub-pixel estimate G-RMI's grid argmax does not have. For exact targets every
disk pixel votes for the keypoint itself, so the round trip is exact on the whole map. The score
is the largest disk probability. Votes that leave the map are dropped from the Hough map, so a
keypoint off the map decodes at most ``window`` pixels beyond its edge.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from animalpose.datasets.codecs.dark import gaussian_blur
from animalpose.datasets.codecs.msra import heatmap_argmax
from animalpose.datasets.codecs.stages import per_output_targets
from animalpose.datasets.codecs.udp import UDPHeatmap

__all__ = ["OffsetHeatmap", "OffsetLoss", "hough_votes", "vote_mean"]

#: Default disk radius in heatmap pixels. G-RMI uses R = 25 pixels of its 353 x 257 crops; on
#: 256 x 192 crops with stride-4 heatmaps that is 25 * 256 / 353 / 4 = 4.5 heatmap pixels.
RADIUS = 4.5
#: G-RMI's loss weights, ``lambda_h = 4`` (heatmap) and ``lambda_o = 1`` (offsets).
LAMBDA_HEATMAP = 4.0
LAMBDA_OFFSET = 1.0
#: Huber threshold of the offset loss in heatmap pixels: quadratic below one pixel of error,
#: linear above (G-RMI names the Huber loss but not its threshold; 1 is the common default).
HUBER_DELTA = 1.0
#: Hough map resolution in units of the heatmap's (1: the same grid; G-RMI votes at the input
#: resolution, which ``vote_mean``'s sub-pixel mean makes unnecessary).
VOTE_SCALE = 1
#: Smoothing kernel of the Hough map per unit of ``vote_scale``: ``4 s + 1`` Hough pixels
#: (a 5-tap kernel, sigma 1.1 pixels, on the heatmap grid).
BLUR_PER_SCALE = 4
#: Radius, in heatmap pixels, of the votes averaged around the Hough mode: the reach of the
#: smoothing kernel, well inside the disk.
WINDOW = 2.0


def hough_votes(points: torch.Tensor, weights: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear splatting of weighted votes into (w, h) ``size`` maps.

    Each vote at (x, y) adds ``weight * (1 - |x - i|) * (1 - |y - j|)`` to the four pixels
    (i, j) around it; pixels outside the map drop their share, non-finite votes are skipped.

    Args:
        points: (..., n, 2) vote positions (x, y) in map pixels.
        weights: (..., n) vote weights.
        size: (w, h) of the maps.

    Returns:
        (..., h, w) maps in the dtype of ``points``.
    """
    w, h = size
    lead, n = points.shape[:-2], points.shape[-2]
    pts = points.reshape(-1, n, 2)
    wts = weights.reshape(-1, n).to(pts.dtype)
    wts = torch.where(torch.isfinite(pts).all(-1) & torch.isfinite(wts), wts, 0.0)
    # Splat into a map with a border of one pixel left and top, two right and bottom. A vote at
    # or beyond -1 (or w, h) gives nothing to the map proper, so clamping there changes nothing
    # inside it and keeps every corner on the padded map: no per-corner masks.
    limit = torch.tensor([w, h], device=pts.device, dtype=pts.dtype)
    pts = torch.minimum(torch.nan_to_num(pts, nan=-1.0).clamp_min(-1.0), limit) + 1
    base = torch.floor(pts)
    fx, fy = (pts - base).unbind(-1)
    base = base.long()
    wp = w + 3
    size_p = (h + 3) * wp
    index = base[..., 1] * wp + base[..., 0]
    index = index + (torch.arange(pts.shape[0], device=pts.device) * size_p)[:, None]
    index = torch.cat([index, index + 1, index + wp, index + wp + 1], dim=-1)
    shares = torch.cat(
        [wts * (1 - fx) * (1 - fy), wts * fx * (1 - fy), wts * (1 - fx) * fy, wts * fx * fy], dim=-1
    )
    maps = torch.zeros(pts.shape[0] * size_p, device=pts.device, dtype=pts.dtype)
    maps.index_add_(0, index.reshape(-1), shares.reshape(-1))
    maps = maps.reshape(pts.shape[0], h + 3, wp)[:, 1 : h + 1, 1 : w + 1]
    return maps.reshape(*lead, h, w)


def vote_mean(
    points: torch.Tensor, weights: torch.Tensor, centre: torch.Tensor, window: float
) -> torch.Tensor:
    """Weighted mean of the votes within ``window`` of ``centre``; ``centre`` where none is.

    Args:
        points: (..., n, 2) vote positions (x, y).
        weights: (..., n) vote weights (>= 0).
        centre: (..., 2) the mode to refine.
        window: radius of the averaged votes, in the units of ``points``.

    Returns:
        (..., 2) refined positions.
    """
    near = ((points - centre[..., None, :]) ** 2).sum(-1) <= window**2
    wts = torch.where(near & torch.isfinite(points).all(-1), weights, torch.zeros_like(weights))
    total = wts.sum(-1)
    pts = torch.nan_to_num(points)
    mean = (wts[..., None] * pts).sum(-2) / total.clamp_min(torch.finfo(pts.dtype).tiny)[..., None]
    return torch.where((total > 0)[..., None], mean, centre)


class OffsetLoss(nn.Module):
    """G-RMI's loss ``lambda_h * L_h + lambda_o * L_o``, summed over the outputs list.

    ``L_h``: binary cross-entropy of the disk logits against the disk targets, times the
    keypoint weight, averaged over all (B, K, h, w) pixels (as ``KeypointMSELoss`` averages).
    ``L_o``: Huber loss (threshold ``huber_delta`` heatmap pixels) of ``R * (offset - target)``,
    summed over x and y, at the disk pixels, weighted by the keypoint weight and divided by the
    weighted number of disk pixels (at least 1): the mean per disk pixel, so the balance of the two
    terms does not depend on ``R`` or the map size.

    ``forward(outputs, heatmaps, weights)``: ``outputs`` the model's list of (B, 3K, h, w)
    predictions, ``heatmaps`` the (B, 3K, h, w) targets (or a list, one per output), ``weights``
    (B, K). Returns a 0-d float32 tensor, computed in float32 also for bf16/fp16 outputs.

    Args:
        radius: the codec's disk radius R in heatmap pixels (offsets are in units of R).
        lambda_heatmap: weight of ``L_h`` (G-RMI: 4).
        lambda_offset: weight of ``L_o`` (G-RMI: 1).
        huber_delta: Huber threshold in heatmap pixels.
    """

    def __init__(
        self,
        radius: float,
        *,
        lambda_heatmap: float = LAMBDA_HEATMAP,
        lambda_offset: float = LAMBDA_OFFSET,
        huber_delta: float = HUBER_DELTA,
    ) -> None:
        super().__init__()
        if radius <= 0 or huber_delta <= 0:
            raise ValueError(
                f"radius and huber_delta must be positive, got {radius}, {huber_delta}"
            )
        if lambda_heatmap < 0 or lambda_offset < 0:
            raise ValueError(
                f"loss weights must be >= 0, got lambda_heatmap={lambda_heatmap}, "
                f"lambda_offset={lambda_offset}"
            )
        self.radius = float(radius)
        self.lambda_heatmap = float(lambda_heatmap)
        self.lambda_offset = float(lambda_offset)
        self.huber_delta = float(huber_delta)

    def extra_repr(self) -> str:
        return (
            f"radius={self.radius}, lambda_heatmap={self.lambda_heatmap}, "
            f"lambda_offset={self.lambda_offset}, huber_delta={self.huber_delta}"
        )

    def forward(
        self,
        outputs: Sequence[torch.Tensor],
        heatmaps: torch.Tensor | Sequence[torch.Tensor],
        weights: torch.Tensor,
    ) -> torch.Tensor:
        targets = per_output_targets(outputs, heatmaps)
        total = None
        for pred, target in zip(outputs, targets):
            with torch.autocast(device_type=pred.device.type, enabled=False):
                term = self._stage(pred.float(), target.float(), weights.float())
            total = term if total is None else total + term
        return total

    def _stage(self, pred: torch.Tensor, target: torch.Tensor, weights: torch.Tensor):
        if pred.shape != target.shape or pred.dim() != 4 or pred.shape[1] % 3:
            raise ValueError(
                f"predictions {tuple(pred.shape)} and targets {tuple(target.shape)} must both be "
                "(B, 3K, h, w)"
            )
        batch, channels, h, w = pred.shape
        k = channels // 3
        if weights.numel() != batch * k:
            raise ValueError(f"weights {tuple(weights.shape)} must hold (B, K) = ({batch}, {k})")
        pred = pred.reshape(batch, k, 3, h, w)
        target = target.reshape(batch, k, 3, h, w)
        wk = weights.reshape(batch, k, 1, 1)
        disk = target[:, :, 0]
        bce = F.binary_cross_entropy_with_logits(pred[:, :, 0], disk, reduction="none")
        loss_h = (bce * wk).mean()
        inside = disk * wk  # (B, K, h, w)
        huber = F.huber_loss(
            self.radius * pred[:, :, 1:],
            self.radius * target[:, :, 1:],
            reduction="none",
            delta=self.huber_delta,
        ).sum(2)
        loss_o = (huber * inside).sum() / inside.sum().clamp_min(1.0)
        return self.lambda_heatmap * loss_h + self.lambda_offset * loss_o


class OffsetHeatmap(UDPHeatmap):
    """G-RMI disk + offset targets, decoded by Hough voting (module docs).

    Encode (``UDPHeatmap``'s combined target): ``heatmaps, weights``; weight 0 and empty maps
    when the keypoint is missing, not finite, or no pixel centre lies within ``radius``.

    Args:
        input_size: (w, h) of the network input in pixels.
        heatmap_size: (w, h) of the heatmaps.
        sigma: accepted for the common codec interface (``with_sigma`` included); unused.
        radius: disk radius R in heatmap pixels.
        vote_scale: Hough map resolution in units of the heatmap's (integer >= 1).
        blur_kernel: odd smoothing kernel of the Hough map in Hough pixels
            (default ``4 * vote_scale + 1``).
        window: radius in heatmap pixels of the votes averaged around the Hough mode.
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        *,
        sigma: float = 2.0,
        radius: float = RADIUS,
        vote_scale: int = VOTE_SCALE,
        blur_kernel: int | None = None,
        window: float = WINDOW,
    ) -> None:
        if radius <= 0:
            raise ValueError(f"radius must be positive, got {radius}")
        if int(vote_scale) != vote_scale or vote_scale < 1:
            raise ValueError(f"vote_scale must be an integer >= 1, got {vote_scale}")
        if window <= 0:
            raise ValueError(f"window must be positive, got {window}")
        kernel = BLUR_PER_SCALE * int(vote_scale) + 1 if blur_kernel is None else blur_kernel
        super().__init__(
            input_size,
            heatmap_size,
            sigma,
            target="combined",
            radius_factor=radius / max(heatmap_size),
            blur_kernel=kernel,
        )
        #: Disk radius in heatmap pixels (exact, not via ``radius_factor``).
        self.radius = float(radius)
        self.vote_scale = int(vote_scale)
        self.window = float(window)

    def __repr__(self) -> str:
        return (
            f"OffsetHeatmap(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}, radius={self.radius}, vote_scale={self.vote_scale}, "
            f"blur_kernel={self.blur_kernel}, window={self.window})"
        )

    def make_loss(
        self,
        *,
        lambda_heatmap: float = LAMBDA_HEATMAP,
        lambda_offset: float = LAMBDA_OFFSET,
        huber_delta: float = HUBER_DELTA,
    ) -> OffsetLoss:
        """The training loss of these targets (``OffsetLoss`` with this codec's radius)."""
        return OffsetLoss(
            self.radius,
            lambda_heatmap=lambda_heatmap,
            lambda_offset=lambda_offset,
            huber_delta=huber_delta,
        )

    def decode(self, heatmaps):
        """Predictions (..., 3K, h, w), disk channels as logits -> (keypoints in input pixels
        (..., K, 2), scores (..., K) = the largest disk probability).

        NumPy in -> NumPy out; tensor in -> tensor out on the same device (no host sync).
        """
        if isinstance(heatmaps, np.ndarray):
            kp, sc = self.decode(torch.from_numpy(np.ascontiguousarray(heatmaps)))
            return kp.numpy(), sc.numpy()
        hm = heatmaps.float()
        *lead, channels, h, w = hm.shape
        if channels % 3:
            raise ValueError(f"3 channels per keypoint, got {channels} channels")
        maps = hm.reshape(*lead, channels // 3, 3, h, w)
        prob = torch.sigmoid(maps[..., 0, :, :]).flatten(-2)  # (..., K, h w)
        scores = prob.amax(-1)
        ys, xs = torch.meshgrid(
            torch.arange(h, device=hm.device, dtype=hm.dtype),
            torch.arange(w, device=hm.device, dtype=hm.dtype),
            indexing="ij",
        )
        grid = torch.stack([xs, ys], dim=-1).reshape(h * w, 2)
        votes = grid + self.radius * maps[..., 1:, :, :].flatten(-2).transpose(-1, -2)
        s = self.vote_scale
        hough = hough_votes((votes + 0.5) * s - 0.5, prob, (w * s, h * s))
        smooth = gaussian_blur(hough, self.blur_kernel, border="zeros", keep_peak=False)
        mode = (heatmap_argmax(smooth)[0] + 0.5) / s - 0.5  # heatmap pixels
        coords = vote_mean(votes, prob, mode, self.window)
        return self.to_input(coords), scores
