"""The heatmap codec: one object owns keypoints -> heatmaps (encode) and heatmaps -> keypoints
(decode), for single NumPy samples and for batched torch tensors on any device.

Two conventions (``MSRAHeatmap(..., convention=...)``; the default is the animal side's and
never changes):

- ``"pixel-area"`` (default): heatmap pixel ``j`` covers input pixels
  ``[j * stride - 0.5, (j + 1) * stride - 0.5]``, so ``hm = (inp + 0.5) / stride - 0.5``.
  Because the mapping is exact and symmetric, a horizontal flip in input space is a flip in
  heatmap space (no one-pixel flip-test shift is needed).
- ``"msra"``: the original convention of SimpleBaseline / HRNet
  (microsoft/human-pose-estimation.pytorch, ``JointsDataset.generate_target``,
  ``core/inference.get_final_preds``, ``utils/transforms.flip_back``): ``hm = inp / stride``;
  targets centred on ``int(hm + 0.5)`` (truncated toward zero, as Python's ``int``); decoding
  zeroes the coordinates of a non-positive peak and shifts a quarter pixel only at argmaxes with
  ``1 < x < w - 1`` and ``1 < y < h - 1``; the flip test mirrors the flipped heatmaps and then
  shifts them one pixel right (``SHIFT_HEATMAP``). The mirror of input ``x`` is ``W - 1 - x``,
  which is ``w - 1/stride - hm`` on the heatmap, while a heatmap mirror gives ``w - 1 - hm``:
  the shift over-corrects by ``1/stride`` heatmap pixels (one input pixel), the bias UDP removes.

``flip_heatmaps`` is the flip-test rule of every codec in this package (``shift`` on for the
``"msra"`` convention only); ``MSRAHeatmap.flip_back`` applies its convention's rule.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "CONVENTIONS",
    "MSRAHeatmap",
    "flip_heatmaps",
    "gaussian_maps",
    "heatmap_argmax",
    "patch_weights",
    "with_sigma",
]

#: Half-width of the Gaussian patch in units of sigma (MSRA / pytorch-pose: a 6 sigma + 1 patch,
#: 7x7 for sigma 1).
PATCH_SIGMAS = 3
#: Decoding shifts the integer argmax a quarter heatmap pixel towards the higher neighbour
#: (Newell et al. 2016; MSRA SimpleBaseline's ``get_final_preds``).
QUARTER_SHIFT = 0.25
#: Input <-> heatmap alignments of ``MSRAHeatmap`` (module docs); the first is the default.
CONVENTIONS = ("pixel-area", "msra")

_Codec = TypeVar("_Codec")
_MSRA = TypeVar("_MSRA", bound="MSRAHeatmap")


def _float_xy(xy):
    """A float copy of ``xy[..., :2]``: float64 for an array, float32 for a tensor."""
    if isinstance(xy, np.ndarray):
        return np.array(xy[..., :2], dtype=np.float64)
    return xy[..., :2].float().clone()


def patch_weights(
    mu: torch.Tensor,
    reach: float,
    heatmap_size: tuple[int, int],
    keypoints: torch.Tensor,
    visible: torch.Tensor,
) -> torch.Tensor:
    """(..., K) float weights: 1 where the keypoint is visible, finite, and its patch of
    half-width ``reach`` around the heatmap location ``mu`` (..., K, 2) touches the (w, h) map."""
    w_hm, h_hm = heatmap_size
    mu_x, mu_y = mu[..., 0], mu[..., 1]
    inside = (
        (mu_x + reach >= 0)
        & (mu_x - reach <= w_hm - 1)
        & (mu_y + reach >= 0)
        & (mu_y - reach <= h_hm - 1)
    )
    return ((visible > 0) & inside & torch.isfinite(keypoints).all(-1)).float()


def gaussian_maps(
    mu: torch.Tensor,
    sigma: float,
    heatmap_size: tuple[int, int],
    weights: torch.Tensor,
    *,
    cut: float | None = None,
) -> torch.Tensor:
    """(..., K, h, w) Gaussians of ``sigma`` (peak 1) centred on ``mu`` (..., K, 2) heatmap
    pixels, times ``weights``; with ``cut``, zero farther than ``cut`` pixels along x or y."""
    w_hm, h_hm = heatmap_size
    xs = torch.arange(w_hm, device=mu.device, dtype=mu.dtype)
    ys = torch.arange(h_hm, device=mu.device, dtype=mu.dtype)
    dx = xs - torch.nan_to_num(mu[..., 0], nan=0.0, posinf=0.0, neginf=0.0)[..., None]
    dy = ys - torch.nan_to_num(mu[..., 1], nan=0.0, posinf=0.0, neginf=0.0)[..., None]
    gx = torch.exp(-(dx**2) / (2 * sigma**2))
    gy = torch.exp(-(dy**2) / (2 * sigma**2))
    if cut is not None:
        gx, gy = gx * (dx.abs() <= cut), gy * (dy.abs() <= cut)
    return gy[..., :, None] * gx[..., None, :] * weights[..., None, None]


class MSRAHeatmap:
    """MSRA Gaussian heatmaps (SimpleBaseline / pytorch-pose targets).

    Encode: a Gaussian of ``sigma`` heatmap pixels, peak 1, centred on the keypoint's *rounded*
    heatmap location and cut to a ``(6 sigma + 1)`` square patch. A keypoint's weight is 0 when it
    is missing (visibility <= 0) or its patch lies wholly outside the map.

    Decode: integer argmax plus a quarter-pixel shift towards the higher neighbour; returns
    input-space coordinates and the peak values as scores.

    ``convention="msra"`` follows SimpleBaseline / HRNet to the letter (module docs): rounding by
    truncation, weight 0 only when the patch corner test of ``generate_target`` fails
    (``ul >= size`` or ``br < 0`` with ``ul = int(mu - 3 sigma)``, ``br = int(mu + 3 sigma + 1)``),
    the quarter shift only in the interior, coordinates (0, 0) for a peak <= 0, and the flip test's
    one-pixel shift (``flip_back``).

    Args:
        input_size: (w, h) of the network input in pixels.
        heatmap_size: (w, h) of the heatmaps.
        sigma: Gaussian standard deviation in heatmap pixels.
        convention: ``"pixel-area"`` (default, the animal side's) or ``"msra"``.
    """

    def __init__(
        self,
        input_size: tuple[int, int],
        heatmap_size: tuple[int, int],
        sigma: float = 1.0,
        *,
        convention: str = "pixel-area",
    ) -> None:
        if sigma <= 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        if convention not in CONVENTIONS:
            raise ValueError(f"unknown codec convention {convention!r}; valid: {list(CONVENTIONS)}")
        self.convention = convention
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.sigma = float(sigma)
        self._set_heatmap_size(heatmap_size)

    def _set_heatmap_size(self, heatmap_size: tuple[int, int]) -> None:
        """``heatmap_size`` (w, h) and the ``stride`` it implies: the only size-derived state."""
        self.heatmap_size = (int(heatmap_size[0]), int(heatmap_size[1]))
        self.stride = (
            self.input_size[0] / self.heatmap_size[0],
            self.input_size[1] / self.heatmap_size[1],
        )

    def __repr__(self) -> str:
        extra = "" if self.convention == CONVENTIONS[0] else f", convention={self.convention!r}"
        return (
            f"MSRAHeatmap(input_size={self.input_size}, heatmap_size={self.heatmap_size}, "
            f"sigma={self.sigma}{extra})"
        )

    def with_sigma(self: _MSRA, sigma: float) -> _MSRA:
        """A copy of this codec (same class, sizes and options) with Gaussians of ``sigma``
        heatmap pixels: ``data.sigma_decay``'s codec of a later epoch."""
        return with_sigma(self, sigma)

    def with_heatmap_size(self: _MSRA, heatmap_size: tuple[int, int]) -> _MSRA:
        """A copy of this codec (same class, input size, sigma in its own heatmap pixels and
        options) for (w, h) ``heatmap_size`` heatmaps: a HigherHRNet head's finer output."""
        out = copy.copy(self)
        out._set_heatmap_size(heatmap_size)
        return out

    # -- coordinate maps ----------------------------------------------------------------------
    def to_heatmap(self, xy):
        """Input pixels -> heatmap pixels, (..., 2) array or tensor."""
        sx, sy = self.stride
        out = _float_xy(xy)
        if self.convention == "msra":
            out[..., 0] = xy[..., 0] / sx
            out[..., 1] = xy[..., 1] / sy
            return out
        out[..., 0] = (xy[..., 0] + 0.5) / sx - 0.5
        out[..., 1] = (xy[..., 1] + 0.5) / sy - 0.5
        return out

    def to_input(self, xy):
        """Heatmap pixels -> input pixels, (..., 2) array or tensor."""
        sx, sy = self.stride
        out = _float_xy(xy)
        if self.convention == "msra":
            out[..., 0] = xy[..., 0] * sx
            out[..., 1] = xy[..., 1] * sy
            return out
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
        if self.convention == "msra":
            return self._encode_msra(keypoints, visible)
        kp = keypoints.float()
        vis = visible.to(kp.device).float()
        w_hm, h_hm = self.heatmap_size
        radius = PATCH_SIGMAS * self.sigma
        # Rounded centres (MSRA: int(x + 0.5)); floor keeps negative coordinates consistent.
        mu = torch.floor(self.to_heatmap(kp) + 0.5)
        weights = patch_weights(mu, radius, self.heatmap_size, kp, vis)
        return gaussian_maps(mu, self.sigma, self.heatmap_size, weights, cut=radius), weights

    def _encode_msra(self, keypoints: torch.Tensor, visible: torch.Tensor):
        """``generate_target`` of SimpleBaseline / HRNet: ``mu = int(hm + 0.5)`` (toward zero), the
        ``len(arange(0, 6 sigma + 1))`` patch with its centre at ``(6 sigma + 1) // 2`` placed at
        ``ul = int(mu - 3 sigma)`` and cut at ``br = int(mu + 3 sigma + 1)`` and the map border."""
        kp = keypoints.float()
        vis = visible.to(kp.device).float()
        w_hm, h_hm = self.heatmap_size
        reach = PATCH_SIGMAS * self.sigma
        finite = torch.isfinite(kp).all(-1)
        mu = torch.trunc(torch.nan_to_num(self.to_heatmap(kp), nan=0.0) + 0.5)
        ul, br = torch.trunc(mu - reach), torch.trunc(mu + reach + 1)
        missed = (ul[..., 0] >= w_hm) | (ul[..., 1] >= h_hm) | (br[..., 0] < 0) | (br[..., 1] < 0)
        weights = ((vis > 0) & finite & ~missed).float()
        size = 2 * reach + 1
        n = int(np.ceil(size))  # len(np.arange(0, size, 1))
        centre = float(size // 2)

        def axis(length: int, i: int) -> torch.Tensor:  # (..., K, length) patch values on a line
            pos = torch.arange(length, device=kp.device, dtype=kp.dtype)
            j = pos - ul[..., i, None]  # patch index of every map pixel
            keep = (j >= 0) & (j < n) & (pos < br[..., i, None])
            return torch.exp(-((j - centre) ** 2) / (2 * self.sigma**2)) * keep

        heatmaps = axis(h_hm, 1)[..., :, None] * axis(w_hm, 0)[..., None, :]
        return heatmaps * weights[..., None, None], weights

    # -- flip test ----------------------------------------------------------------------------
    def flip_back(self, heatmaps, flip_index):
        """Heatmaps of the mirrored input -> heatmaps of the original (``flip_heatmaps``, with the
        one-pixel shift in the ``"msra"`` convention)."""
        return flip_heatmaps(heatmaps, flip_index, shift=self.convention == "msra")

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
        if self.convention == "msra":
            return self.to_input(_msra_refine(hm, coords, scores, shift)), scores
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


def with_sigma(codec: _Codec, sigma: float) -> _Codec:
    """A shallow copy of ``codec`` whose ``sigma`` is ``sigma`` (> 0); every other attribute (class,
    sizes, convention, target options) is kept. Codecs hold no state derived from ``sigma``, so
    the copy encodes exactly as a codec built with that sigma."""
    sigma = float(sigma)
    if not sigma > 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    out = copy.copy(codec)
    out.sigma = sigma
    return out


def _msra_refine(heatmaps: torch.Tensor, coords: torch.Tensor, peaks: torch.Tensor, shift: bool):
    """``get_max_preds`` + ``get_final_preds`` of SimpleBaseline / HRNet on heatmap coordinates:
    (0, 0) where the peak is <= 0; the quarter shift on both axes where ``1 < x < w - 1`` and
    ``1 < y < h - 1``, by the sign of each axis's neighbour difference."""
    coords = coords * (peaks > 0)[..., None]
    if not shift:
        return coords
    h, w = heatmaps.shape[-2:]
    x, y = coords[..., 0].long(), coords[..., 1].long()
    interior = (x > 1) & (x < w - 1) & (y > 1) & (y < h - 1)
    flat = heatmaps.flatten(-2)

    def at(yy, xx):
        index = yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)
        return torch.gather(flat, -1, index[..., None])[..., 0]

    diff = torch.stack([at(y, x + 1) - at(y, x - 1), at(y + 1, x) - at(y - 1, x)], dim=-1)
    return coords + QUARTER_SHIFT * torch.sign(diff) * interior[..., None]


def _flip_permutation(flip_index, channels: int, device: torch.device) -> torch.Tensor:
    """``flip_index`` as a (channels,) int64 tensor; ValueError unless it permutes 0..C-1."""
    index = torch.as_tensor(np.asarray(flip_index, dtype=np.int64).reshape(-1), device=device)
    if index.numel() != channels or not torch.equal(
        torch.sort(index).values, torch.arange(channels, device=device)
    ):
        raise ValueError(
            f"flip_index must be a permutation of 0..{channels - 1}, got {index.tolist()}"
        )
    return index


def flip_heatmaps(heatmaps, flip_index, *, shift: bool):
    """Heatmaps of a mirrored input -> heatmaps of the original input (the flip test).

    Channels are swapped by ``flip_index`` (the spec's pairs: channel ``k`` of the result is
    channel ``flip_index[k]`` of the input) and the width is mirrored. With ``shift`` the result
    then moves one pixel right, column 0 keeping its value (SimpleBaseline / HRNet
    ``output_flipped[:, :, :, 1:] = output_flipped.clone()[:, :, :, 0:-1]``), the rule of the
    ``"msra"`` convention; pixel-area and UDP alignments need no shift.

    Args:
        heatmaps: (..., K, h, w) NumPy array or tensor (NumPy in -> NumPy out).
        flip_index: (K,) permutation of the keypoints under a horizontal flip.
        shift: apply the one-pixel shift.
    """
    if isinstance(heatmaps, np.ndarray):
        out = flip_heatmaps(
            torch.from_numpy(np.ascontiguousarray(heatmaps)), flip_index, shift=shift
        )
        return out.numpy()
    index = _flip_permutation(flip_index, heatmaps.shape[-3], heatmaps.device)
    out = torch.flip(heatmaps.index_select(-3, index), dims=(-1,))
    if shift and out.shape[-1] > 1:
        out = torch.cat([out[..., :1], out[..., :-1]], dim=-1)
    return out


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
