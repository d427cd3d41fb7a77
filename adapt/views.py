"""Equivariance views for pseudo-labelling (CC-SSL, Mu et al. CVPR 2020).

The model sees each crop in ``V + 1`` views: the identity and ``V`` random zoom/rotations about
the crop centre. Each view's heatmaps are warped back into the identity frame and the views are
averaged (the reference's ``prediction_check``; docs/reference_compat.md §5). ``view_theta``
states the view convention. All tensor work stays on the device of its inputs; nothing syncs
with the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from animalpose.evaluation.inference import autocast

__all__ = [
    "VIEW_ROTATION_CLIP",
    "ViewSampler",
    "equivariant_heatmaps",
    "invert_theta",
    "unwarp_heatmaps",
    "view_heatmaps",
    "view_theta",
    "warp_views",
]

#: The reference clamps rotation draws to ``+- 2 x rot_factor`` degrees (``clamp(-2 rf, 2 rf)``);
#: scale draws are clamped to ``1 +- scale_factor`` (``clamp(1 - sf, 1 + sf)``).
VIEW_ROTATION_CLIP = 2.0


@dataclass(frozen=True)
class ViewSampler:
    """Random equivariance views, drawn as the reference draws them.

    Attributes:
        num_views: random views besides the identity (reference: 4, ``num_transform=5`` in all).
        scale_factor: ``scale = clip(1 + scale_factor * N(0, 1), 1 - sf, 1 + sf)`` (ref. 0.25).
        rot_factor: ``degrees = clip(rot_factor * N(0, 1), -2 rf, 2 rf)`` (reference 30).
    """

    num_views: int = 4
    scale_factor: float = 0.25
    rot_factor: float = 30.0

    def __post_init__(self) -> None:
        if self.num_views < 0:
            raise ValueError(f"num_views must be >= 0, got {self.num_views}")
        if not 0 <= self.scale_factor < 1:
            raise ValueError(f"scale_factor must be in [0, 1), got {self.scale_factor}")
        if self.rot_factor < 0:
            raise ValueError(f"rot_factor must be >= 0, got {self.rot_factor}")

    def sample(self, rng: np.random.Generator, batch: int) -> tuple[np.ndarray, np.ndarray]:
        """(scales (V+1, B), degrees (V+1, B)) float64; row 0 is the identity (1, 0 degrees).

        Scales are drawn before rotations, ``(V, B)`` normals each; no flip (as the reference).
        """
        sf, rf = self.scale_factor, self.rot_factor
        scales = np.ones((self.num_views + 1, batch), dtype=np.float64)
        degrees = np.zeros((self.num_views + 1, batch), dtype=np.float64)
        scales[1:] = np.clip(
            1.0 + sf * rng.standard_normal((self.num_views, batch)), 1.0 - sf, 1.0 + sf
        )
        degrees[1:] = np.clip(
            rf * rng.standard_normal((self.num_views, batch)),
            -VIEW_ROTATION_CLIP * rf,
            VIEW_ROTATION_CLIP * rf,
        )
        return scales, degrees


def view_theta(
    scales: np.ndarray | torch.Tensor,
    degrees: np.ndarray | torch.Tensor,
    *,
    device: torch.device | str,
    aspect: float = 1.0,
) -> torch.Tensor:
    """(V+1, B, 2, 3) float32 thetas mapping view -> identity normalised coordinates.

    ``p_identity = scale * Rot(degrees)^T p_view`` about the crop centre, in pixel units; in
    normalised units the off-diagonal terms are corrected by ``aspect`` = W / H of the images
    (1 for the square crops). Row ``v`` of the result is view ``v`` of every sample.

    View convention (the reference's, stated once):

    - ``scale`` is the side of the view's crop relative to the identity crop, as the reference's
      ``crop(img, c, s0 * scale, ...)``: a view with ``scale > 1`` covers more of the image, so the
      animal appears ``1 / scale`` times as large (zoomed out); ``scale < 1`` zooms in.
    - ``degrees`` turns the *content* counter-clockwise as seen in the view, as
      ``geometry.crop_matrix``'s ``rotation`` (and the reference's ``imrotate``).

    A view is therefore ``crop_matrix(c, scale * S, (S, S), degrees)`` applied to the identity crop
    of side ``S`` (centre ``c = (S - 1) / 2``). Thetas are for ``grid_sample(...,
    align_corners=False)``, whose normalised coordinates are pixel-area aligned (``-1`` is the outer
    edge of pixel 0), exactly the codec's convention (``hm = (inp + 0.5) / stride - 0.5``): a point
    has the same normalised coordinates in the input and in its heatmap, so one theta warps both.
    """
    device = torch.device(device)
    s = _to_device(torch.as_tensor(scales, dtype=torch.float64), device)
    t = torch.deg2rad(_to_device(torch.as_tensor(degrees, dtype=torch.float64), device))
    if s.shape != t.shape or s.dim() != 2:
        raise ValueError(
            f"scales and degrees must both be (V+1, B), got {tuple(s.shape)} and {tuple(t.shape)}"
        )
    c, n = torch.cos(t), torch.sin(t)
    zero = torch.zeros_like(s)
    theta = torch.stack(
        [
            torch.stack([s * c, -s * n / aspect, zero], dim=-1),
            torch.stack([s * n * aspect, s * c, zero], dim=-1),
        ],
        dim=-2,
    )
    return theta.to(dtype=torch.float32)


def _to_device(values: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device without stalling the stream: a pageable copy would wait for the queued
    work (the previous batch); a pinned one is asynchronous."""
    if values.device == device:
        return values
    if device.type == "cuda" and values.device.type == "cpu":
        return values.pin_memory().to(device, non_blocking=True)
    return values.to(device)


def invert_theta(theta: torch.Tensor) -> torch.Tensor:
    """Inverse of (..., 2, 3) affine thetas, closed-form 2x2 inverse (no host sync)."""
    a, b, tx = theta[..., 0, 0], theta[..., 0, 1], theta[..., 0, 2]
    c, d, ty = theta[..., 1, 0], theta[..., 1, 1], theta[..., 1, 2]
    det = a * d - b * c
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    return torch.stack(
        [
            torch.stack([ia, ib, -(ia * tx + ib * ty)], dim=-1),
            torch.stack([ic, id_, -(ic * tx + id_ * ty)], dim=-1),
        ],
        dim=-2,
    )


def _grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(N, H, W, 2) sampling grid of (N, 2, 3) thetas at the output pixel centres.

    Built directly rather than with ``F.affine_grid`` so that the pixel centres
    ``(2 i + 1) / W - 1`` are exact for power-of-two sizes and an identity theta samples every
    pixel exactly (affine_grid's rescaled linspace is off by ~1e-7).
    """
    dev, dt = theta.device, theta.dtype
    xs = (2.0 * torch.arange(width, device=dev, dtype=dt) + 1.0) / width - 1.0
    ys = (2.0 * torch.arange(height, device=dev, dtype=dt) + 1.0) / height - 1.0
    th = theta[:, :, :, None, None]  # (N, 2, 3, 1, 1)
    gx = th[:, 0, 0] * xs + th[:, 0, 1] * ys[:, None] + th[:, 0, 2]
    gy = th[:, 1, 0] * xs + th[:, 1, 1] * ys[:, None] + th[:, 1, 2]
    return torch.stack([gx, gy], dim=-1)


def sample_affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) ``images`` sampled bilinearly at (N, 2, 3) ``theta`` (output -> input
    normalised coordinates); pixels outside are 0."""
    grid = _grid(theta.to(images.dtype), images.shape[-2], images.shape[-1])
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def warp_views(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images -> ((V+1) * B, C, H, W) views, view-major (row ``v * B + b``).

    One bilinear ``grid_sample``; pixels outside the image are 0 (the dataset mean for
    normalised input).
    """
    views, batch = theta.shape[:2]
    if images.dim() != 4 or images.shape[0] != batch:
        raise ValueError(
            f"images must be (B, C, H, W) with B = {batch} (theta "
            f"{tuple(theta.shape)}), got {tuple(images.shape)}"
        )
    stacked = images.unsqueeze(0).expand(views, *images.shape).reshape(-1, *images.shape[1:])
    return sample_affine(stacked, theta.reshape(-1, 2, 3))


def unwarp_heatmaps(heatmaps: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """((V+1) * B, K, h, w) view heatmaps -> (V+1, B, K, h, w) in the identity frame.

    Identity-frame pixels a view does not cover are 0.
    """
    views, batch = theta.shape[:2]
    if heatmaps.dim() != 4 or heatmaps.shape[0] != views * batch:
        raise ValueError(
            f"heatmaps must be ((V+1) * B, K, h, w) with (V+1) * B = "
            f"{views * batch}, got {tuple(heatmaps.shape)}"
        )
    back = sample_affine(heatmaps, invert_theta(theta.reshape(-1, 2, 3)))
    return back.reshape(views, batch, *heatmaps.shape[1:])


def view_heatmaps(
    model: nn.Module, x: torch.Tensor, theta: torch.Tensor, *, amp: bool = False
) -> torch.Tensor:
    """Each view's heatmaps (V+1, B, K, h, w) float32 of a normalised (B, 3, H, W) batch, in
    the identity frame: one forward pass over all ``(V+1) * B`` views (last stack of a
    per-stack list), each view's heatmaps warped back (uncovered pixels 0). Runs under
    ``torch.no_grad``; the caller sets the model's mode. ``amp``: bfloat16 autocast."""
    with torch.no_grad():
        warped = warp_views(x, theta.to(x.device))
        with autocast(x.device, amp):
            out = model(warped)
        last = out[-1] if isinstance(out, (list, tuple)) else out
        return unwarp_heatmaps(last.float(), theta.to(x.device))


def equivariant_heatmaps(
    model: nn.Module, x: torch.Tensor, theta: torch.Tensor, *, amp: bool = False
) -> torch.Tensor:
    """Average heatmaps (B, K, h, w) float32 of a normalised (B, 3, H, W) batch over the views:
    ``view_heatmaps``, then a plain mean over the ``V + 1`` views in which uncovered pixels
    count as 0 (as the reference)."""
    return view_heatmaps(model, x, theta, amp=amp).mean(dim=0)
