"""MSRA targets decoded by LPN's beta-soft-argmax (issue 14), at 192x256 -> 48x64."""

import numpy as np
import pytest
import torch

from animalpose.datasets.codecs.msra import MSRAHeatmap, heatmap_argmax
from animalpose.datasets.codecs.soft_argmax import BETA, SoftArgmaxHeatmap, soft_argmax

INPUT = (192, 256)
HEATMAP = (48, 64)
STRIDE = 4.0


def _gaussian(centre, sigma, size=HEATMAP):
    """(h, w) unrounded Gaussian of peak 1 at heatmap ``centre`` (x, y)."""
    ys, xs = torch.meshgrid(
        torch.arange(size[1], dtype=torch.float32),
        torch.arange(size[0], dtype=torch.float32),
        indexing="ij",
    )
    return torch.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2 * sigma**2))


def test_defaults_repr_and_with_sigma():
    codec = SoftArgmaxHeatmap(INPUT, HEATMAP)
    assert BETA == 160.0 and codec.beta == 160.0 and codec.convention == "msra"
    assert repr(codec) == (
        "SoftArgmaxHeatmap(input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0, beta=160.0, "
        "convention='msra')"
    )
    other = codec.with_sigma(1.5)
    assert type(other) is SoftArgmaxHeatmap and vars(other) == {**vars(codec), "sigma": 1.5}
    with pytest.raises(ValueError, match="beta"):
        SoftArgmaxHeatmap(INPUT, HEATMAP, beta=0.0)


def test_large_beta_is_the_argmax():
    rng = np.random.default_rng(0)
    maps = torch.from_numpy(rng.uniform(0.0, 0.5, (20, 64, 48)).astype(np.float32))
    rows, cols = rng.integers(0, 64, 20), rng.integers(0, 48, 20)
    maps[torch.arange(20), rows, cols] = 1.0
    coords, peaks = heatmap_argmax(maps)
    # The runner-up is at least 0.5 below the peak: weight exp(-80) against 1 at beta 160.
    torch.testing.assert_close(soft_argmax(maps, BETA), coords, atol=1e-5, rtol=0)
    codec = SoftArgmaxHeatmap(INPUT, HEATMAP)
    decoded, scores = codec.decode(maps)
    torch.testing.assert_close(decoded, codec.to_input(coords), atol=1e-4, rtol=0)
    torch.testing.assert_close(scores, peaks)
    torch.testing.assert_close(codec.decode(maps, shift=False)[0], codec.to_input(coords))


def test_point_symmetric_map_decodes_to_its_centre():
    # Any beta: a map symmetric under (x, y) -> (w - 1 - x, h - 1 - y) has its expectation at
    # the map centre (23.5, 31.5), background included.
    rng = np.random.default_rng(1)
    half = torch.from_numpy(rng.uniform(0.0, 1.0, (3, 64, 48)).astype(np.float32))
    maps = half + torch.flip(half, dims=(-2, -1))
    for beta in (0.5, 5.0, BETA):
        torch.testing.assert_close(
            soft_argmax(maps, beta), torch.tensor([[23.5, 31.5]] * 3), atol=1e-4, rtol=0
        )
    # Two equal maxima: the soft-argmax takes their midpoint, the argmax one of them.
    two = torch.zeros(64, 48)
    two[10, 5] = two[10, 8] = 1.0
    torch.testing.assert_close(soft_argmax(two, BETA), torch.tensor([6.5, 10.0]))


def test_sub_pixel_gaussian_decodes_to_its_location():
    # softmax(beta * g) of a Gaussian g of sigma s is a bump symmetric about the centre, of
    # variance ~ s^2 / beta. At s = 4, beta = 20 (variance 0.8) sampling it on the pixel grid
    # moves its centre of mass by ~4 pi var exp(-2 pi^2 var) = 1.4e-6 pixel, and the background
    # (weight exp(-20) per pixel, 3072 pixels, against a bump mass ~5) by under 1e-4.
    centres = [(10.3, 20.7), (30.55, 40.1), (24.9, 12.45)]
    maps = torch.stack([_gaussian(c, 4.0) for c in centres])
    torch.testing.assert_close(soft_argmax(maps, 20.0), torch.tensor(centres), atol=1e-3, rtol=0)
    # At LPN's beta 160 the same maps decode within the rounding of the argmax (half a pixel).
    error = (soft_argmax(maps, BETA) - torch.tensor(centres)).abs()
    assert error.max() <= 0.5


@pytest.mark.parametrize("convention", ["msra", "pixel-area"])
def test_msra_targets_round_trip_within_rounding(convention):
    codec = SoftArgmaxHeatmap(INPUT, HEATMAP, convention=convention)
    parent = MSRAHeatmap(INPUT, HEATMAP, 2.0, convention=convention)
    rng = np.random.default_rng(2)
    keypoints = rng.uniform(12, [INPUT[0] - 13, INPUT[1] - 13], (300, 2)).astype(np.float32)
    heatmaps, weights = codec.encode(keypoints, np.ones(300))
    np.testing.assert_array_equal(heatmaps, parent.encode(keypoints, np.ones(300))[0])
    decoded, scores = codec.decode(heatmaps)
    assert isinstance(decoded, np.ndarray) and decoded.shape == (300, 2)
    # The target sits on the rounded location and is symmetric about it: the soft-argmax lands
    # on it, at most half a heatmap pixel from the keypoint.
    assert np.abs(decoded - keypoints).max() <= 0.5 * STRIDE + 1e-3
    np.testing.assert_allclose(scores, 1.0)
    # On-grid keypoints come back exactly, through the parent's mapping to input pixels.
    grid = parent.to_input(np.array([[10.0, 20.0], [30.0, 5.0]])).astype(np.float32)
    np.testing.assert_allclose(codec.decode(codec.encode(grid, np.ones(2))[0])[0], grid, atol=1e-3)


def test_soft_argmax_is_differentiable_towards_the_mass():
    maps = _gaussian((20.0, 30.0), 2.0)[None].requires_grad_(True)
    soft_argmax(maps, 20.0)[0, 0].backward()
    grad = maps.grad[0, 30]
    # d x / d h_p = beta * prob_p * (x_p - E[x]): raising a pixel right of the expectation moves
    # x right, left of it moves x left, at it (almost: the background is not symmetric) nothing.
    assert grad[22] > 0 and grad[18] < 0 and abs(grad[20]) < 0.05 * grad[22]
    torch.testing.assert_close(grad[22], -grad[18], rtol=1e-2, atol=0)
