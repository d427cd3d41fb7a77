"""Normalizer: (x / 255 - mean) / std by default; the reference's min-max stretch when legacy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animalpose.datasets.transforms.normalize import Normalizer

MEAN = (0.4038, 0.3956, 0.3925)
STD = (0.2611, 0.2452, 0.2299)


def batch(seed: int = 0, lo: int = 0, hi: int = 256) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(lo, hi, (2, 3, 5, 4), dtype=np.uint8))


def test_default_subtracts_mean_and_divides_by_std():
    images = batch()
    out = Normalizer(MEAN, STD)(images)
    assert out.dtype == torch.float32 and out.shape == images.shape
    x = images.numpy().astype(np.float64) / 255.0
    expected = (x - np.reshape(MEAN, (1, 3, 1, 1))) / np.reshape(STD, (1, 3, 1, 1))
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_legacy_stretches_each_crop_and_ignores_std():
    images = batch(seed=1, lo=40, hi=200)
    out = Normalizer(MEAN, STD, legacy=True)(images)
    x = images.numpy().astype(np.float64)
    for b in range(len(x)):
        lo, hi = x[b].min(), x[b].max()
        stretched = np.floor((x[b] - lo) * 255.0 / (hi - lo))  # over all pixels of the crop
        expected = stretched / 255.0 - np.reshape(MEAN, (3, 1, 1))
        np.testing.assert_allclose(out[b].numpy(), expected, atol=1e-5)


def test_legacy_flat_crop_does_not_divide_by_zero():
    images = torch.full((1, 3, 4, 4), 77, dtype=torch.uint8)
    out = Normalizer(MEAN, STD, legacy=True)(images)
    assert torch.isfinite(out).all()
    np.testing.assert_allclose(out[0, :, 0, 0].numpy(), -np.array(MEAN), atol=1e-6)


def test_std_must_be_positive():
    with pytest.raises(ValueError, match="std must be positive"):
        Normalizer(MEAN, (0.2, 0.0, 0.2))
