"""DARK heatmaps (Zhang et al. 2020, "Distribution-Aware Coordinate Representation for Human
Pose Estimation", ilovepose/DarkPose).

Encoding is unbiased: the Gaussian sits on the exact sub-pixel heatmap location, no rounding.
Decoding takes the integer argmax of the raw heatmap, then one Newton step on the logarithm of the
Gaussian-smoothed heatmap, ``mu = m - H^-1 g`` with finite-difference derivatives at the argmax
(DarkPose ``gaussian_blur`` and ``taylor``). A Gaussian's log is a quadratic, so for Gaussian-like
heatmaps the step lands on the sub-pixel peak instead of MSRA's quarter-pixel guess.

DARK grew out of the SimpleBaseline / HRNet code, so its default alignment is the ``"msra"``
convention of ``MSRAHeatmap`` (``hm = inp / stride``, flip test with the one-pixel shift) that its
published checkpoints were trained with; ``convention="pixel-area"`` gives the animal side's
alignment, whose flip test is exact without a shift.

The blur and the Newton step are pure tensor functions (``gaussian_blur``, ``taylor_refine``)
that UDP's decoder shares.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from animalpose.datasets.codecs.msra import (
    PATCH_SIGMAS,
    MSRAHeatmap,
    gaussian_maps,
    heatmap_argmax,
    patch_weights,
)

__all__ = ["DarkHeatmap", "blur_sigma", "gaussian_blur", "taylor_refine"]

#: DarkPose's modulation kernel (``TEST.BLUR_KERNEL``: 11 for the sigma-2 heatmaps of 256x192).
BLUR_KERNEL = 11
#: DarkPose floors the blurred heatmap at this value before the logarithm (``np.maximum``).
LOG_FLOOR = 1e-10
#: A Newton step is taken only where the Hessian is negative definite with a determinant above
#: this (a maximum of a log-Gaussian); elsewhere (flat or saddle regions, DarkPose's singular
#: ``dxx * dyy - dxy ** 2 == 0`` case included) the integer argmax stays.
DET_EPS = 1e-10


def blur_sigma(kernel_size: int) -> float:
    """The standard deviation OpenCV's ``GaussianBlur(..., sigmaX=0)`` derives from a kernel size,
    ``0.3 * ((k - 1) / 2 - 1) + 0.8`` (DarkPose passes 0): 2.0 for 11."""
    return 0.3 * ((kernel_size - 1) * 0.5 - 1) + 0.8


def gaussian_blur(
    heatmaps: torch.Tensor, kernel_size: int, *, border: str = "zeros", keep_peak: bool = True
) -> torch.Tensor:
    """Separable Gaussian smoothing of (..., h, w) heatmaps with a ``kernel_size`` kernel of
    ``blur_sigma(kernel_size)``.

    Args:
        heatmaps: (..., h, w) float tensor.
        kernel_size: odd kernel width.
        border: ``"zeros"`` (DarkPose: the map is zero-padded by ``(k - 1) / 2`` before
            ``cv2.GaussianBlur``) or ``"reflect"`` (OpenCV's default BORDER_REFLECT_101, used by
            UDP's combined decoder; replicate where the map is narrower than the padding).
        keep_peak: rescale each map so its maximum equals the maximum before smoothing (DarkPose);
            a map whose smoothed maximum is <= 0 is left unscaled.
    """
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"blur kernel size must be odd and positive, got {kernel_size}")
    if border not in ("zeros", "reflect"):
        raise ValueError(f"unknown blur border {border!r}; valid: ['zeros', 'reflect']")
    shape = heatmaps.shape
    h, w = shape[-2:]
    x = heatmaps.reshape(-1, 1, h, w)
    pad = (kernel_size - 1) // 2
    sigma = blur_sigma(kernel_size)
    taps = torch.arange(kernel_size, device=x.device, dtype=x.dtype) - pad
    g = torch.exp(-(taps**2) / (2 * sigma**2))
    g = g / g.sum()
    if border == "zeros":
        padded = F.pad(x, (pad, pad, pad, pad))
    else:
        mode = "reflect" if pad < min(h, w) else "replicate"
        padded = F.pad(x, (pad, pad, pad, pad), mode=mode)
    out = F.conv2d(padded, g.view(1, 1, 1, -1))
    out = F.conv2d(out, g.view(1, 1, -1, 1)).reshape(shape)
    if keep_peak:
        before = heatmaps.flatten(-2).amax(-1)
        after = out.flatten(-2).amax(-1)
        ratio = torch.where(after > 0, before / after.clamp_min(torch.finfo(out.dtype).tiny), 1.0)
        out = out * ratio[..., None, None]
    return out


def taylor_refine(
    log_heatmaps: torch.Tensor, coords: torch.Tensor, *, stencil: str = "dark"
) -> torch.Tensor:
    """One Newton step ``coords - H^-1 g`` on (..., K, h, w) log-heatmaps at integer (..., K, 2)
    coordinates (x, y); returns refined heatmap coordinates.

    ``stencil="dark"`` (DarkPose ``taylor``): ``g = (f(x+1) - f(x-1)) / 2``, second derivatives on
    a two-pixel step ``(f(x+2) - 2 f(x) + f(x-2)) / 4``, mixed
    ``(f(x+1, y+1) - f(x+1, y-1) - f(x-1, y+1) + f(x-1, y-1)) / 4``, only where
    ``1 < x < w - 2`` and ``1 < y < h - 2``. ``stencil="udp"`` (UDP / mmpose
    ``refine_keypoints_dark_udp``): one-pixel second differences and the seven-point mixed
    derivative on an edge-padded map, so every pixel is refined. Both are exact for a quadratic
    (the log of a Gaussian). The step is skipped where the Hessian is not negative definite
    (``DET_EPS``).
    """
    if stencil not in ("dark", "udp"):
        raise ValueError(f"unknown Taylor stencil {stencil!r}; valid: ['dark', 'udp']")
    h, w = log_heatmaps.shape[-2:]
    flat = log_heatmaps.flatten(-2)
    x, y = coords[..., 0].long(), coords[..., 1].long()

    def at(dy: int, dx: int) -> torch.Tensor:
        index = (y + dy).clamp(0, h - 1) * w + (x + dx).clamp(0, w - 1)
        return torch.gather(flat, -1, index[..., None])[..., 0]

    c = at(0, 0)
    gx = 0.5 * (at(0, 1) - at(0, -1))
    gy = 0.5 * (at(1, 0) - at(-1, 0))
    if stencil == "dark":
        dxx = 0.25 * (at(0, 2) - 2 * c + at(0, -2))
        dyy = 0.25 * (at(2, 0) - 2 * c + at(-2, 0))
        dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
        valid = (x > 1) & (x < w - 2) & (y > 1) & (y < h - 2)
    else:
        dxx = at(0, 1) - 2 * c + at(0, -1)
        dyy = at(1, 0) - 2 * c + at(-1, 0)
        dxy = 0.5 * (at(1, 1) - at(0, 1) - at(1, 0) + 2 * c - at(0, -1) - at(-1, 0) + at(-1, -1))
        valid = torch.ones_like(x, dtype=torch.bool)
    det = dxx * dyy - dxy**2
    valid = valid & (dxx < 0) & (det > DET_EPS)
    safe = torch.where(valid, det, torch.ones_like(det))
    step_x = (dyy * gx - dxy * gy) / safe
    step_y = (dxx * gy - dxy * gx) / safe
    step = torch.stack([step_x, step_y], dim=-1)
    valid = valid & torch.isfinite(step).all(-1)
    return coords - torch.where(valid[..., None], step, torch.zeros_like(step))


class DarkHeatmap(MSRAHeatmap):
    """DARK targets and decoding (module docs).

    Encode: ``exp(-|p - mu|^2 / (2 sigma^2))`` over the whole map, ``mu`` the exact heatmap
    location; weight 0 (and an empty map) when the keypoint is missing or its ``3 sigma`` box does
    not reach the map's pixel centres ``[0, w - 1] x [0, h - 1]``.

    Decode: integer argmax of the raw heatmap (its value is the score); ``gaussian_blur`` with
    ``blur_kernel`` (zero border, peak kept), floored at ``LOG_FLOOR``, logarithm,
    ``taylor_refine`` (DarkPose stencil); then back to input pixels. In the ``"msra"`` convention a
    peak <= 0 decodes to (0, 0) as in ``get_max_preds``.

    Args:
        input_size: (w, h) of the network input in pixels.
        heatmap_size: (w, h) of the heatmaps.
        sigma: Gaussian standard deviation in heatmap pixels (2 for 64x48 heatmaps).
        blur_kernel: odd size of the smoothing kernel (DarkPose: 11 for sigma 2).
        convention: ``"msra"`` (default, DarkPose's) or ``"pixel-area"`` (``MSRAHeatmap``).
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        sigma: float = 2.0,
        *,
        blur_kernel: int = BLUR_KERNEL,
        convention: str = "msra",
    ) -> None:
        super().__init__(input_size, heatmap_size, sigma, convention=convention)
        if blur_kernel < 1 or blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd and positive, got {blur_kernel}")
        self.blur_kernel = int(blur_kernel)

    def __repr__(self) -> str:
        return (
            f"DarkHeatmap(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}, blur_kernel={self.blur_kernel}, convention={self.convention!r})"
        )

    def _encode_tensor(self, keypoints: torch.Tensor, visible: torch.Tensor):
        kp = keypoints.float()
        vis = visible.to(kp.device).float()
        mu = torch.nan_to_num(self.to_heatmap(kp), nan=0.0, posinf=0.0, neginf=0.0)
        weights = patch_weights(mu, PATCH_SIGMAS * self.sigma, self.heatmap_size, kp, vis)
        return gaussian_maps(mu, self.sigma, self.heatmap_size, weights), weights

    def decode(self, heatmaps, shift: bool = True):
        """Heatmaps -> (keypoints in input pixels (..., K, 2), scores (..., K)).

        ``shift=False`` skips the Taylor step (integer argmax). NumPy in -> NumPy out; tensor in ->
        tensor out on the same device.
        """
        if isinstance(heatmaps, np.ndarray):
            kp, sc = self.decode(torch.from_numpy(np.ascontiguousarray(heatmaps)), shift=shift)
            return kp.numpy(), sc.numpy()
        hm = heatmaps.float()
        coords, scores = heatmap_argmax(hm)
        if self.convention == "msra":
            coords = coords * (scores > 0)[..., None]
        if shift:
            smooth = gaussian_blur(hm, self.blur_kernel, border="zeros", keep_peak=True)
            coords = taylor_refine(torch.log(smooth.clamp_min(LOG_FLOOR)), coords, stencil="dark")
        return self.to_input(coords), scores
