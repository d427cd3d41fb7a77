"""The heatmap codec: one object owns keypoints -> heatmaps (encode) and heatmaps -> keypoints
(decode), for single NumPy samples and for batched torch tensors on any device.

Input-to-heatmap mapping is pixel-area aligned: heatmap pixel ``j`` covers input pixels
``[j * stride - 0.5, (j + 1) * stride - 0.5]``, so ``hm = (inp + 0.5) / stride - 0.5``.
Because the mapping is exact and symmetric, a horizontal flip in input space is a flip in
heatmap space (no one-pixel flip-test shift is needed).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["MSRAHeatmap", "heatmap_argmax"]

#: Half-width of the Gaussian patch in units of sigma (MSRA / pytorch-pose: a 6 sigma + 1 patch,
#: 7x7 for sigma 1).
PATCH_SIGMAS = 3
#: Decoding shifts the integer argmax a quarter heatmap pixel towards the higher neighbour
#: (Newell et al. 2016; MSRA SimpleBaseline's ``get_final_preds``).
QUARTER_SHIFT = 0.25


def _float_xy(xy):
    """A float copy of ``xy[..., :2]``: float64 for an array, float32 for a tensor."""
    if isinstance(xy, np.ndarray):
        return np.array(xy[..., :2], dtype=np.float64)
    return xy[..., :2].float().clone()


class MSRAHeatmap:
    """MSRA Gaussian heatmaps (SimpleBaseline / pytorch-pose targets).

    Encode: a Gaussian of ``sigma`` heatmap pixels, peak 1, centred on the keypoint's *rounded*
    heatmap location and cut to a ``(6 sigma + 1)`` square patch. A keypoint's weight is 0 when it
    is missing (visibility <= 0) or its patch lies wholly outside the map.

    Decode: integer argmax plus a quarter-pixel shift towards the higher neighbour; returns
    input-space coordinates and the peak values as scores.

    Args:
        input_size: (w, h) of the network input in pixels.
        heatmap_size: (w, h) of the heatmaps.
        sigma: Gaussian standard deviation in heatmap pixels.
    """

    def __init__(
        self, input_size: tuple[int, int], heatmap_size: tuple[int, int], sigma: float = 1.0
    ) -> None:
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.sigma = float(sigma)
        self.stride = (
            self.input_size[0] / self.heatmap_size[0],
            self.input_size[1] / self.heatmap_size[1],
        )

    def __repr__(self) -> str:
        return (
            f"MSRAHeatmap(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma})"
        )

    # -- coordinate maps ----------------------------------------------------------------------
    def to_heatmap(self, xy):
        """Input pixels -> heatmap pixels, (..., 2) array or tensor."""
        sx, sy = self.stride
        out = _float_xy(xy)
        out[..., 0] = (xy[..., 0] + 0.5) / sx - 0.5
        out[..., 1] = (xy[..., 1] + 0.5) / sy - 0.5
        return out

    def to_input(self, xy):
        """Heatmap pixels -> input pixels, (..., 2) array or tensor."""
        sx, sy = self.stride
        out = _float_xy(xy)
        out[..., 0] = (xy[..., 0] + 0.5) * sx - 0.5
        out[..., 1] = (xy[..., 1] + 0.5) * sy - 0.5
        return out

    # -- encode -------------------------------------------------------------------------------
    def encode(self, keypoints, visible):
        """Keypoints in input pixels -> (heatmaps, weights).

        Args:
            keypoints: (K, 2) NumPy array or (..., K, 2) tensor, input-space (x, y).
            visible: (K,) or (..., K) visibility; > 0 means labelled.

        Returns:
            heatmaps (..., K, h, w) float32 and weights (..., K) float32, NumPy in -> NumPy out,
            tensor in -> tensor out on the same device.
        """
        if isinstance(keypoints, np.ndarray):
            hm, w = self._encode_tensor(
                torch.from_numpy(np.asarray(keypoints, dtype=np.float32)),
                torch.from_numpy(np.asarray(visible, dtype=np.float32)),
            )
            return hm.numpy(), w.numpy()
        return self._encode_tensor(keypoints, visible)

    def _encode_tensor(self, keypoints: torch.Tensor, visible: torch.Tensor):
        """``encode`` on tensors (a subclass with other targets overrides this)."""
        kp = keypoints.float()
        vis = visible.to(kp.device).float()
        w_hm, h_hm = self.heatmap_size
        radius = PATCH_SIGMAS * self.sigma
        # Rounded centres (MSRA: int(x + 0.5)); floor keeps negative coordinates consistent.
        mu = torch.floor(self.to_heatmap(kp) + 0.5)
        mu_x, mu_y = mu[..., 0], mu[..., 1]
        inside = (
            (mu_x + radius >= 0)
            & (mu_x - radius <= w_hm - 1)
            & (mu_y + radius >= 0)
            & (mu_y - radius <= h_hm - 1)
        )
        weights = ((vis > 0) & inside & torch.isfinite(kp).all(-1)).float()
        xs = torch.arange(w_hm, device=kp.device, dtype=kp.dtype)
        ys = torch.arange(h_hm, device=kp.device, dtype=kp.dtype)
        dx = xs - torch.nan_to_num(mu_x)[..., None]  # (..., K, w)
        dy = ys - torch.nan_to_num(mu_y)[..., None]  # (..., K, h)
        gx = torch.exp(-(dx**2) / (2 * self.sigma**2)) * (dx.abs() <= radius)
        gy = torch.exp(-(dy**2) / (2 * self.sigma**2)) * (dy.abs() <= radius)
        heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
        return heatmaps, weights

    # -- decode -------------------------------------------------------------------------------
    def decode(self, heatmaps, shift: bool = True):
        """Heatmaps -> (keypoints in input pixels (..., K, 2), scores (..., K)).

        NumPy in -> NumPy out; tensor in -> tensor out on the same device (no host sync).
        """
        if isinstance(heatmaps, np.ndarray):
            kp, sc = self.decode(torch.from_numpy(np.ascontiguousarray(heatmaps)), shift=shift)
            return kp.numpy(), sc.numpy()
        hm = heatmaps.float()
        coords, scores = heatmap_argmax(hm)
        if shift:
            h, w = hm.shape[-2:]
            x = coords[..., 0].long()
            y = coords[..., 1].long()
            flat = hm.flatten(-2)
            xl, xr = (x - 1).clamp(0, w - 1), (x + 1).clamp(0, w - 1)
            yu, yd = (y - 1).clamp(0, h - 1), (y + 1).clamp(0, h - 1)

            def at(yy, xx):
                return torch.gather(flat, -1, (yy * w + xx)[..., None])[..., 0]

            interior_x = (x > 0) & (x < w - 1)
            interior_y = (y > 0) & (y < h - 1)
            ddx = torch.sign(at(y, xr) - at(y, xl)) * interior_x
            ddy = torch.sign(at(yd, x) - at(yu, x)) * interior_y
            coords = coords + QUARTER_SHIFT * torch.stack([ddx, ddy], dim=-1)
        return self.to_input(coords), scores


def heatmap_argmax(heatmaps):
    """Integer argmax of (..., K, h, w) heatmaps.

    Returns coords (..., K, 2) float (x, y) and peaks (..., K).
    """
    if isinstance(heatmaps, np.ndarray):
        c, p = heatmap_argmax(torch.from_numpy(np.ascontiguousarray(heatmaps)))
        return c.numpy(), p.numpy()
    w = heatmaps.shape[-1]
    peaks, idx = heatmaps.flatten(-2).max(dim=-1)
    coords = torch.stack([idx % w, torch.div(idx, w, rounding_mode="floor")], dim=-1)
    return coords.to(heatmaps.dtype if heatmaps.is_floating_point() else torch.float32), peaks
