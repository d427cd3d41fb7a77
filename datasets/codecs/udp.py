"""UDP heatmaps (Huang et al. 2020, "The Devil is in the Details: Delving into Unbiased Data
Processing for Human Pose Estimation").

Unbiased data transformation: image sizes are measured in unit lengths (pixel centre to pixel
centre), so the input -> heatmap scale is ``(input_size - 1) / (heatmap_size - 1)`` and heatmap
``x = inp * (w - 1) / (W - 1)``. The first and last pixel centres of the input land on those of
the heatmap, so the mirror ``W - 1 - inp`` of the input is the mirror ``w - 1 - x`` of the
heatmap: the flip test needs no shift (``flip_back``). The crops must use the same unit-length
transformation (``TopDownCrop(..., unbiased=True)``).

Two targets (``target``):

- ``"gaussian"``: a Gaussian on the exact heatmap location, cut to the ``(6 sigma + 1)`` patch
  around the rounded location (mmpose ``generate_udp_gaussian_heatmaps``); decoded by the integer
  argmax refined with a Newton step on the blurred log-heatmap (UDP's stencil, ``taylor_refine``).
- ``"combined"``: per keypoint a classification map (1 on the disk of radius
  ``r = radius_factor * max(w, h)`` around the keypoint) and x / y offset maps
  ``(mu - p) / r`` inside the disk; heatmaps are (..., 3K, h, w), keypoint ``k`` in channels
  ``3k`` (classification), ``3k + 1`` (x offset), ``3k + 2`` (y offset), mmpose's layout. Decode
  (mmpose ``UDPHeatmap``, ``heatmap_type='combined'``): blur the classification map with a
  ``2 * blur_kernel + 1`` kernel and the offset maps with ``blur_kernel`` (no peak rescaling),
  take the classification argmax ``p`` and return ``p + r * offsets(p)``; the score is the
  blurred classification peak. The border (``blur_border``) defaults to zeros, as DARK's blur:
  mmpose's ``cv2.GaussianBlur`` reflects the map at its edge (``blur_border="reflect"``), which
  mirrors a disk that lies within a radius of the edge and, with the 23-pixel kernel, pulls the
  argmax to the edge: on 64x48 maps, keypoints 4.4 pixels from the edge decode 3.3 pixels off
  (zeros: under 0.35 pixel away from the edge, under 1 pixel at it).

Back to input pixels by the exact inverse ``inp = x * (W - 1) / (w - 1)`` (mmpose's decoder
multiplies by ``W / (w - 1)`` instead, a 1/w relative bias this codec does not copy).
"""

from __future__ import annotations

import numpy as np
import torch

from animalpose.datasets.codecs.dark import (
    BLUR_KERNEL,
    gaussian_blur,
    taylor_refine,
)
from animalpose.datasets.codecs.msra import PATCH_SIGMAS, flip_heatmaps, heatmap_argmax, with_sigma

__all__ = ["UDPHeatmap"]

#: UDP targets.
TARGETS = ("gaussian", "combined")
#: mmpose's default disk radius of the combined target in units of ``max(w, h)``: 3.5 heatmap
#: pixels on a 64x48 map (UDP's ``kernel`` 0.0546875 in its HRNet configs).
RADIUS_FACTOR = 0.0546875
#: UDP's decoder clips the blurred Gaussian heatmap to this range before the logarithm (mmpose
#: ``refine_keypoints_dark_udp``).
LOG_CLIP = (1e-3, 50.0)
#: Borders of the combined decoder's smoothing (``gaussian_blur``); the first is the default.
BORDERS = ("zeros", "reflect")


class UDPHeatmap:
    """UDP targets and decoding (module docs).

    Encode: ``heatmaps, weights``; weight 0 (and empty maps) when the keypoint is missing, not
    finite, or its target misses the map (Gaussian: the patch around the rounded location touches
    no pixel; combined: no pixel centre within ``r``).

    Args:
        input_size: (w, h) of the network input in pixels.
        heatmap_size: (w, h) of the heatmaps.
        sigma: Gaussian standard deviation in heatmap pixels (``"gaussian"`` target).
        target: ``"gaussian"`` or ``"combined"``.
        radius_factor: disk radius of the combined target in units of ``max(w, h)``.
        blur_kernel: odd smoothing kernel of the decoder (11, as DARK's).
        blur_border: ``"zeros"`` or ``"reflect"`` (mmpose's), the border of the combined
            decoder's smoothing (module docs).
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        sigma: float = 2.0,
        *,
        target: str = "gaussian",
        radius_factor: float = RADIUS_FACTOR,
        blur_kernel: int = BLUR_KERNEL,
        blur_border: str = "zeros",
    ) -> None:
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if target not in TARGETS:
            raise ValueError(f"unknown UDP target {target!r}; valid: {list(TARGETS)}")
        if radius_factor <= 0:
            raise ValueError(f"radius_factor must be positive, got {radius_factor}")
        if blur_kernel < 1 or blur_kernel % 2 == 0:
            raise ValueError(f"blur_kernel must be odd and positive, got {blur_kernel}")
        if blur_border not in BORDERS:
            raise ValueError(f"unknown blur_border {blur_border!r}; valid: {list(BORDERS)}")
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        if min(self.input_size) < 2 or min(self.heatmap_size) < 2:
            raise ValueError(
                "UDP measures sizes in unit lengths and needs at least 2 pixels per side, got "
                f"input_size={self.input_size}, heatmap_size={self.heatmap_size}"
            )
        self.sigma = float(sigma)
        self.target = target
        self.radius_factor = float(radius_factor)
        self.blur_kernel = int(blur_kernel)
        self.blur_border = blur_border
        #: Input pixels per heatmap pixel in unit lengths, (x, y): UDP's whole idea in one line.
        self.scale = (
            (self.input_size[0] - 1) / (self.heatmap_size[0] - 1),
            (self.input_size[1] - 1) / (self.heatmap_size[1] - 1),
        )
        #: Disk radius of the combined target in heatmap pixels.
        self.radius = self.radius_factor * max(self.heatmap_size)

    def __repr__(self) -> str:
        return (
            f"UDPHeatmap(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}, target={self.target!r}, radius_factor={self.radius_factor}, "
            f"blur_kernel={self.blur_kernel}, blur_border={self.blur_border!r})"
        )

    def with_sigma(self, sigma: float) -> UDPHeatmap:
        """A copy of this codec (sizes, target and decoder options kept) with Gaussians of
        ``sigma`` heatmap pixels: ``data.sigma_decay``'s codec of a later epoch."""
        return with_sigma(self, sigma)

    @property
    def channels_per_keypoint(self) -> int:
        """Heatmap channels per keypoint: 1 (Gaussian) or 3 (combined)."""
        return 3 if self.target == "combined" else 1

    # -- coordinate maps ----------------------------------------------------------------------
    def to_heatmap(self, xy):
        """Input pixels -> heatmap pixels, ``xy / scale``, (..., 2) array or tensor."""
        out = np.array(xy[..., :2], np.float64) if isinstance(xy, np.ndarray) else xy[..., :2] * 1.0
        out[..., 0] = xy[..., 0] / self.scale[0]
        out[..., 1] = xy[..., 1] / self.scale[1]
        return out

    def to_input(self, xy):
        """Heatmap pixels -> input pixels, ``xy * scale``, (..., 2) array or tensor."""
        out = np.array(xy[..., :2], np.float64) if isinstance(xy, np.ndarray) else xy[..., :2] * 1.0
        out[..., 0] = xy[..., 0] * self.scale[0]
        out[..., 1] = xy[..., 1] * self.scale[1]
        return out

    # -- encode -------------------------------------------------------------------------------
    def encode(self, keypoints, visible):
        """Keypoints in input pixels -> (heatmaps, weights).

        Args:
            keypoints: (K, 2) NumPy array or (..., K, 2) tensor, input-space (x, y).
            visible: (K,) or (..., K) visibility; > 0 means labelled.

        Returns:
            heatmaps (..., C K, h, w) float32 (C = ``channels_per_keypoint``) and weights (..., K)
            float32; NumPy in -> NumPy out, tensor in -> tensor out on the same device.
        """
        if isinstance(keypoints, np.ndarray):
            hm, w = self.encode(
                torch.from_numpy(np.asarray(keypoints, dtype=np.float32)),
                torch.from_numpy(np.asarray(visible, dtype=np.float32)),
            )
            return hm.numpy(), w.numpy()
        kp = keypoints.float()
        vis = visible.to(kp.device).float()
        labelled = (vis > 0) & torch.isfinite(kp).all(-1)
        mu = torch.nan_to_num(self.to_heatmap(kp), nan=0.0, posinf=0.0, neginf=0.0)
        xs = torch.arange(self.heatmap_size[0], device=kp.device, dtype=kp.dtype)
        ys = torch.arange(self.heatmap_size[1], device=kp.device, dtype=kp.dtype)
        dx = mu[..., 0, None] - xs  # (..., K, w)
        dy = mu[..., 1, None] - ys  # (..., K, h)
        if self.target == "gaussian":
            return self._encode_gaussian(mu, dx, dy, labelled)
        return self._encode_combined(dx, dy, labelled)

    def _encode_gaussian(self, mu, dx, dy, labelled):
        w_hm, h_hm = self.heatmap_size
        reach = PATCH_SIGMAS * self.sigma
        centre = torch.floor(mu + 0.5)
        c_x, c_y = centre[..., 0], centre[..., 1]
        inside = (c_x + reach >= 0) & (c_x - reach <= w_hm - 1)
        inside = inside & (c_y + reach >= 0) & (c_y - reach <= h_hm - 1)
        weights = (labelled & inside).float()
        xs = torch.arange(w_hm, device=mu.device, dtype=mu.dtype)
        ys = torch.arange(h_hm, device=mu.device, dtype=mu.dtype)
        patch_x = (xs - c_x[..., None]).abs() <= reach
        patch_y = (ys - c_y[..., None]).abs() <= reach
        gx = torch.exp(-(dx**2) / (2 * self.sigma**2)) * patch_x
        gy = torch.exp(-(dy**2) / (2 * self.sigma**2)) * patch_y
        heatmaps = gy[..., :, None] * gx[..., None, :] * weights[..., None, None]
        return heatmaps, weights

    def _encode_combined(self, dx, dy, labelled):
        off_x = (dx / self.radius)[..., None, :].expand(*dx.shape[:-1], dy.shape[-1], dx.shape[-1])
        off_y = (dy / self.radius)[..., :, None].expand_as(off_x)
        disk = ((off_x**2 + off_y**2) <= 1) & labelled[..., None, None]
        weights = disk.flatten(-2).any(-1).float()
        cls = disk.float()
        maps = torch.stack([cls, off_x * cls, off_y * cls], dim=-3)  # (..., K, 3, h, w)
        return maps.flatten(-4, -3), weights

    # -- flip test ----------------------------------------------------------------------------
    def flip_back(self, heatmaps, flip_index):
        """Heatmaps of the mirrored input -> heatmaps of the original: keypoints swapped by
        ``flip_index``, width mirrored, no shift; a combined target's x offsets change sign."""
        if isinstance(heatmaps, np.ndarray):
            out = self.flip_back(torch.from_numpy(np.ascontiguousarray(heatmaps)), flip_index)
            return out.numpy()
        c = self.channels_per_keypoint
        if heatmaps.shape[-3] % c:
            raise ValueError(f"{c} channels per keypoint, got {heatmaps.shape[-3]} channels")
        keypoint_index = np.asarray(flip_index, dtype=np.int64).reshape(-1)
        if keypoint_index.size * c != heatmaps.shape[-3]:
            raise ValueError(
                f"flip_index has {keypoint_index.size} keypoints, heatmaps have "
                f"{heatmaps.shape[-3]} channels ({c} per keypoint)"
            )
        channel_index = (c * keypoint_index[:, None] + np.arange(c)).reshape(-1)
        out = flip_heatmaps(heatmaps, channel_index, shift=False)
        if c == 3:
            sign = torch.tensor([1.0, -1.0, 1.0], device=out.device, dtype=out.dtype)
            out = (out.unflatten(-3, (-1, 3)) * sign[:, None, None]).flatten(-4, -3)
        return out

    # -- decode -------------------------------------------------------------------------------
    def decode(self, heatmaps):
        """Heatmaps (..., C K, h, w) -> (keypoints in input pixels (..., K, 2), scores (..., K)).

        NumPy in -> NumPy out; tensor in -> tensor out on the same device.
        """
        if isinstance(heatmaps, np.ndarray):
            kp, sc = self.decode(torch.from_numpy(np.ascontiguousarray(heatmaps)))
            return kp.numpy(), sc.numpy()
        hm = heatmaps.float()
        if self.target == "gaussian":
            coords, scores = heatmap_argmax(hm)
            smooth = gaussian_blur(hm, self.blur_kernel, border="zeros", keep_peak=True)
            log = torch.log(smooth.clamp(*LOG_CLIP))
            return self.to_input(taylor_refine(log, coords, stencil="udp")), scores
        h, w = hm.shape[-2:]
        maps = hm.reshape(*hm.shape[:-3], hm.shape[-3] // 3, 3, h, w)
        cls = gaussian_blur(
            maps[..., 0, :, :], 2 * self.blur_kernel + 1, border=self.blur_border, keep_peak=False
        )
        offsets = gaussian_blur(
            maps[..., 1:, :, :], self.blur_kernel, border=self.blur_border, keep_peak=False
        )
        coords, scores = heatmap_argmax(cls)
        index = (coords[..., 1] * w + coords[..., 0]).long()  # (..., K)
        flat = offsets.flatten(-2)  # (..., K, 2, h w)
        at = torch.gather(flat, -1, index[..., None, None].expand(*index.shape, 2, 1))[..., 0]
        return self.to_input(coords + self.radius * at), scores
