"""Equivariance views: draws, theta convention (cross-checked with geometry.crop_matrix), warp
round trips, coverage, and the averaged heatmaps of a model whose answer is known."""

import numpy as np
import pytest
import torch
from torch import nn

from animalpose.adapt.views import (
    ViewSampler,
    equivariant_heatmaps,
    unwarp_heatmaps,
    view_theta,
    warp_views,
)
from animalpose.datasets.geometry import apply_affine, crop_matrix

S = 64


def gaussian_image(size: tuple[int, int], centers, sigma: float) -> torch.Tensor:
    """(1, len(centers), h, w) float32: one Gaussian of peak 1 per channel, (x, y) pixels."""
    w, h = size
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    maps = [torch.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2)) for x, y in centers]
    return torch.stack(maps)[None].float()


def centroid(channel: torch.Tensor) -> np.ndarray:
    """Intensity-weighted (x, y) of an (h, w) map."""
    h, w = channel.shape
    ys, xs = torch.meshgrid(
        torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij"
    )
    weights = channel.double() / channel.double().sum()
    return np.array([(weights * xs).sum().item(), (weights * ys).sum().item()])


def view_matrix(scale: float, degrees: float, size: tuple[int, int]) -> np.ndarray:
    """The view as a source -> crop affine of the identity crop (the documented convention)."""
    w, h = size
    center = ((w - 1) / 2, (h - 1) / 2)
    return crop_matrix(center, (scale * w, scale * h), (w, h), degrees)


def test_sampler_row_zero_is_identity_and_rows_follow_the_reference_draws():
    sampler = ViewSampler(num_views=4, scale_factor=0.25, rot_factor=30.0)
    scales, degrees = sampler.sample(np.random.default_rng(7), 500)
    assert scales.shape == degrees.shape == (5, 500) and scales.dtype == np.float64
    assert (scales[0] == 1).all() and (degrees[0] == 0).all()
    rng = np.random.default_rng(7)  # scales drawn first, then rotations
    expected_s = np.clip(1 + 0.25 * rng.standard_normal((4, 500)), 0.75, 1.25)
    expected_d = np.clip(30 * rng.standard_normal((4, 500)), -60, 60)
    np.testing.assert_array_equal(scales[1:], expected_s)
    np.testing.assert_array_equal(degrees[1:], expected_d)
    assert scales.max() == 1.25 and scales.min() == 0.75  # 1 sigma clip: hit often in 2000
    assert degrees.max() == 60 and degrees.min() == -60
    only = ViewSampler(num_views=0).sample(np.random.default_rng(0), 3)
    assert only[0].shape == (1, 3) and (only[0] == 1).all() and (only[1] == 0).all()
    with pytest.raises(ValueError, match="num_views"):
        ViewSampler(num_views=-1)


def test_identity_theta_is_exact():
    x = torch.randn(2, 3, S, S, generator=torch.Generator().manual_seed(0))
    theta = view_theta(np.ones((1, 2)), np.zeros((1, 2)), device="cpu")
    assert theta.shape == (1, 2, 2, 3) and theta.dtype == torch.float32
    assert torch.equal(warp_views(x, theta), x)
    assert torch.equal(unwarp_heatmaps(x, theta)[0], x)


@pytest.mark.parametrize("scale,degrees", [(1.0, 90.0), (1.2, 30.0), (0.8, -45.0), (1.25, -60.0)])
def test_a_point_moves_as_the_crop_matrix_predicts(scale, degrees):
    point = np.array([40.0, 22.0])
    image = gaussian_image((S, S), [point], sigma=2.0)
    theta = view_theta(np.array([[scale]]), np.array([[degrees]]), device="cpu")
    seen = centroid(warp_views(image, theta)[0, 0])
    expected = apply_affine(point[None], view_matrix(scale, degrees, (S, S)))[0]
    np.testing.assert_allclose(seen, expected, atol=0.02)
    # scale > 1 zooms out (the reference's larger crop): the point nears the centre by 1 / scale.
    if degrees == 0:
        c = (S - 1) / 2
        np.testing.assert_allclose(
            np.linalg.norm(seen - c), np.linalg.norm(point - c) / scale, atol=0.02
        )


def test_scale_above_one_shows_the_content_smaller():
    image = gaussian_image((S, S), [(40.0, 31.5)], sigma=2.0)
    theta = view_theta(np.array([[1.25], [0.8]]), np.zeros((2, 1)), device="cpu")
    out, zin = warp_views(image, theta)[:, 0]
    c = (S - 1) / 2
    assert centroid(out)[0] - c == pytest.approx(8.5 / 1.25, abs=0.02)
    assert centroid(zin)[0] - c == pytest.approx(8.5 / 0.8, abs=0.02)


def test_rectangular_images_use_the_aspect_ratio():
    size = (96, 48)  # (w, h)
    point = np.array([60.0, 30.0])
    image = gaussian_image(size, [point], sigma=2.0)
    theta = view_theta(np.array([[1.1]]), np.array([[35.0]]), device="cpu", aspect=2.0)
    seen = centroid(warp_views(image, theta)[0, 0])
    np.testing.assert_allclose(
        seen, apply_affine(point[None], view_matrix(1.1, 35.0, size))[0], atol=0.03
    )


@pytest.mark.parametrize("scale,degrees", [(1.2, 25.0), (0.8, -40.0), (1.0, 60.0)])
def test_warp_and_back_returns_to_itself_in_the_interior(scale, degrees):
    smooth = gaussian_image((S, S), [(30.0, 28.0), (22.0, 40.0), (36.0, 33.0)], sigma=5.0)
    image = torch.cat([smooth, 0.5 * smooth.flip(-1)], dim=1)  # heatmaps and a 6-channel image
    theta = view_theta(np.full((2, 1), scale), np.full((2, 1), degrees), device="cpu")
    back = unwarp_heatmaps(warp_views(image, theta), theta)
    assert back.shape == (2, 1, 6, S, S)
    ys, xs = np.mgrid[0:S, 0:S]
    grid = np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64)
    in_view = apply_affine(grid, view_matrix(scale, degrees, (S, S)))
    interior = ((in_view >= 2) & (in_view <= S - 3)).all(axis=1).reshape(S, S)
    assert interior.sum() > 0.3 * S * S
    error = (back[1, 0] - image[0]).abs()[:, torch.from_numpy(interior)]
    assert error.max() < 0.02  # two bilinear resamplings of a sigma-5 bump


def test_pixels_a_view_does_not_cover_are_zero():
    ones = torch.ones(1, 1, S, S)
    theta = view_theta(np.array([[0.5]]), np.array([[0.0]]), device="cpu")  # zoom in x2
    back = unwarp_heatmaps(warp_views(ones, theta), theta)[0, 0, 0]
    assert back[:12, :].abs().max() == 0 and back[:, -12:].abs().max() == 0
    assert torch.allclose(back[20:44, 20:44], torch.ones(24, 24))


class BlobLocator(nn.Module):
    """Equivariant by construction: finds the bright blob of channel 0 (its intensity centroid)
    and renders a Gaussian there in heatmap pixels; an input without a blob gives zeros."""

    def __init__(self, stride: int, sigma: float) -> None:
        super().__init__()
        self.stride, self.sigma = stride, sigma
        self.batches: list[int] = []

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        self.batches.append(x.shape[0])
        h, w = x.shape[-2:]
        weights = torch.relu(x[:, 0] - 0.5)
        mass = weights.sum(dim=(1, 2))
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij"
        )
        cx = (weights * xs).sum(dim=(1, 2)) / mass.clamp_min(1e-6)
        cy = (weights * ys).sum(dim=(1, 2)) / mass.clamp_min(1e-6)
        hx, hy = (cx + 0.5) / self.stride - 0.5, (cy + 0.5) / self.stride - 0.5  # codec mapping
        gy, gx = torch.meshgrid(
            torch.arange(h // self.stride, dtype=x.dtype),
            torch.arange(w // self.stride, dtype=x.dtype),
            indexing="ij",
        )
        d2 = (gx - hx[:, None, None]) ** 2 + (gy - hy[:, None, None]) ** 2
        maps = torch.exp(-d2 / (2 * self.sigma**2)) * (mass > 1e-3)[:, None, None]
        return [torch.zeros_like(maps[:, None]), maps[:, None]]  # stacks: the last one counts


def test_equivariant_heatmaps_average_a_known_answer_in_one_pass():
    blob = (36.0, 28.0)
    x = gaussian_image((S, S), [blob], sigma=2.5).expand(1, 3, S, S).repeat(2, 1, 1, 1)
    model = BlobLocator(stride=2, sigma=3.0)
    scales, degrees = ViewSampler(num_views=4).sample(np.random.default_rng(3), 2)
    theta = view_theta(scales, degrees, device="cpu")
    avg = equivariant_heatmaps(model, x, theta)
    assert model.batches == [10]  # one forward over (V + 1) x B views
    assert avg.shape == (2, 1, 32, 32) and avg.dtype == torch.float32 and not avg.requires_grad
    target = np.array([(blob[0] + 0.5) / 2 - 0.5, (blob[1] + 0.5) / 2 - 0.5])  # (17.75, 13.75)
    for b in range(2):
        # Independently: view v's Gaussian (sigma 3 view pixels) is sigma 3 x scale in the
        # identity frame, centred on the blob; the mean of those (bilinear warps blur ~0.02).
        expected = torch.stack(
            [gaussian_image((32, 32), [target], sigma=3.0 * s)[0, 0] for s in scales[:, b]]
        ).mean(0)
        assert (avg[b, 0] - expected).abs().max() < 0.03
        flat = int(avg[b, 0].argmax())
        assert (flat % 32, flat // 32) == (18, 14)
        np.testing.assert_allclose(centroid(avg[b, 0]), target, atol=0.05)


def test_uncovered_views_count_as_zero_in_the_mean():
    x = gaussian_image((S, S), [(6.0, 6.0)], sigma=2.5).expand(1, 3, S, S)
    model = BlobLocator(stride=4, sigma=1.5)
    theta = view_theta(np.array([[1.0], [0.5]]), np.zeros((2, 1)), device="cpu")  # 2nd: no blob
    avg = equivariant_heatmaps(model, x, theta)
    alone = equivariant_heatmaps(model, x, theta[:1])
    assert float(alone.max()) > 0.9
    assert float(avg.max()) == pytest.approx(float(alone.max()) / 2, rel=1e-6)
