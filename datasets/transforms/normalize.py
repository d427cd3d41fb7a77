"""Batched on-device input normalisation of uint8 crops (docs/reference_compat.md §2, §7.3)."""

from __future__ import annotations

import torch

__all__ = ["Normalizer"]


class Normalizer:
    """uint8 (B, 3, H, W) batch -> float input, on the batch's device.

    Default: ``(x / 255 - mean) / std``. ``legacy=True`` reproduces the reference's input
    (docs/reference_compat.md §2): each crop min-max stretched to 0..255 over all its pixels (old
    ``scipy.misc.imresize`` behaviour), divided by 255, mean subtracted, std ignored. Reference
    checkpoints need the legacy input. ``prescaled`` (with ``legacy``): the crops are already the
    reference's byte-scaled crops (``data.legacy``, ``transforms/legacy_crop.py``), so only
    ``x / 255 - mean`` is left.
    """

    def __init__(self, mean, std, legacy: bool = False, prescaled: bool = False) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).reshape(1, 3, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).reshape(1, 3, 1, 1)
        if (self.std <= 0).any():
            raise ValueError(f"std must be positive, got {self.std.flatten().tolist()}")
        self.legacy = bool(legacy)
        self.prescaled = bool(prescaled)
        self._on_device: dict[torch.device, tuple[torch.Tensor, torch.Tensor]] = {}

    def _stats(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # One copy per device, made once: a per-batch host->device copy would stall the stream.
        if device not in self._on_device:
            self._on_device[device] = (self.mean.to(device), self.std.to(device))
        return self._on_device[device]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float()
        mean, std = self._stats(x.device)
        if self.legacy and self.prescaled:
            return x / 255.0 - mean
        if self.legacy:
            lo = x.amin(dim=(1, 2, 3), keepdim=True)
            hi = x.amax(dim=(1, 2, 3), keepdim=True)
            # imresize's bytescale: (x - lo) * 255 / (hi - lo), truncated to uint8.
            x = torch.floor((x - lo) * (255.0 / (hi - lo).clamp_min(1e-6)))
            return x / 255.0 - mean
        return (x / 255.0 - mean) / std
