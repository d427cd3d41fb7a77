"""The human top-down codecs: MSRA's original convention, DARK and UDP (issue 13).

Every test runs at the top-down size 192x256 -> 48x64 (non-square, stride 4 on both axes).
"""

import cv2
import numpy as np
import pytest
import torch

from animalpose.datasets.codecs.dark import (
    DarkHeatmap,
    blur_sigma,
    gaussian_blur,
    taylor_refine,
)
from animalpose.datasets.codecs.msra import MSRAHeatmap, flip_heatmaps
from animalpose.datasets.codecs.udp import UDPHeatmap

INPUT = (192, 256)
HEATMAP = (48, 64)
STRIDE = 4.0

CODECS = {
    "msra": lambda: MSRAHeatmap(INPUT, HEATMAP, 2.0, convention="msra"),
    "dark": lambda: DarkHeatmap(INPUT, HEATMAP),
    "dark-pixel-area": lambda: DarkHeatmap(INPUT, HEATMAP, convention="pixel-area"),
    "udp": lambda: UDPHeatmap(INPUT, HEATMAP),
    "udp-combined": lambda: UDPHeatmap(INPUT, HEATMAP, target="combined"),
}


def _points(n, margin, seed=0):
    """(n, 2) float32 random sub-pixel input points at least ``margin`` input pixels inside."""
    rng = np.random.default_rng(seed)
    xs = rng.uniform(margin, INPUT[0] - 1 - margin, n)
    ys = rng.uniform(margin, INPUT[1] - 1 - margin, n)
    return np.stack([xs, ys], axis=-1).astype(np.float32)


def _mirror(points, flip_index):
    """Keypoints of the mirrored input: ``x -> W - 1 - x``, keypoints swapped by pairs."""
    out = points.copy()
    out[:, 0] = INPUT[0] - 1 - out[:, 0]
    return out[flip_index]


# -- MSRA, the original convention --------------------------------------------------------------
def test_default_convention_is_unchanged():
    codec = MSRAHeatmap(INPUT, HEATMAP, 2.0)
    assert codec.convention == "pixel-area"
    assert repr(codec) == "MSRAHeatmap(input_size=(192, 256), heatmap_size=(48, 64), sigma=2.0)"
    np.testing.assert_allclose(codec.to_heatmap(np.array([[10.0, 10.0]])), [[2.125, 2.125]])
    msra = MSRAHeatmap(INPUT, HEATMAP, 2.0, convention="msra")
    np.testing.assert_allclose(msra.to_heatmap(np.array([[10.0, 10.0]])), [[2.5, 2.5]])
    with pytest.raises(ValueError, match="convention"):
        MSRAHeatmap(INPUT, HEATMAP, convention="udp")


def test_msra_target_by_hand():
    codec = CODECS["msra"]()
    heatmaps, weights = codec.encode(np.array([[37.0, 90.0]], np.float32), np.ones(1))
    # hm = (9.25, 22.5); mu = int(hm + 0.5) = (9, 23); a 13x13 patch (sigma 2) around it.
    ys, xs = np.nonzero(heatmaps[0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (3, 15, 17, 29)
    assert len(xs) == 169 and weights[0] == 1
    assert heatmaps[0, 23, 9] == 1.0
    assert heatmaps[0, 23, 10] == pytest.approx(np.exp(-1 / 8))
    assert heatmaps[0, 21, 12] == pytest.approx(np.exp(-(4 + 9) / 8))


def test_msra_rounds_toward_zero_and_keeps_the_corner_test():
    codec = CODECS["msra"]()
    kp = np.array([[-2.8, 40.0], [-31.0, 40.0], [-35.0, 40.0], [100.0, 300.0]], np.float32)
    heatmaps, weights = codec.encode(kp, np.ones(4))
    # -2.8 -> hm -0.7 -> int(-0.2) = 0: the peak sits on column 0 (floor would give -1).
    assert heatmaps[0, 10, 0] == 1.0
    # -31 -> hm -7.75 -> mu -7, br = int(-7 + 7) = 0 is not < 0: weight 1, nothing drawn.
    assert weights[1] == 1 and heatmaps[1].max() == 0
    # -35 -> mu -8, br = -1 < 0: weight 0. y 300 -> mu 75, ul = 69 >= 64: weight 0.
    np.testing.assert_array_equal(weights[2:], [0, 0])


def test_msra_decode_by_hand():
    codec = CODECS["msra"]()
    hm = np.zeros((3, 64, 48), np.float32)
    hm[0, 10, 20], hm[0, 10, 21], hm[0, 9, 20] = 1.0, 0.5, 0.3  # interior: both axes shift
    hm[1, 10, 1], hm[1, 10, 2] = 1.0, 0.5  # x = 1 is not interior (1 < x): no shift at all
    hm[2] = -1.0
    hm[2, 5, 5] = -0.1  # a non-positive peak decodes to (0, 0)
    decoded, scores = codec.decode(hm)
    np.testing.assert_allclose(decoded, [[81.0, 39.0], [4.0, 40.0], [0.0, 0.0]], atol=1e-5)
    np.testing.assert_allclose(scores, [1.0, 1.0, -0.1])
    # The pixel-area convention shifts at x = 1 and keeps a negative peak's position.
    pixel_area = MSRAHeatmap(INPUT, HEATMAP, 2.0)
    decoded_pa, _ = pixel_area.decode(hm)
    np.testing.assert_allclose(decoded_pa[1], [(1.25 + 0.5) * 4 - 0.5, 41.5], atol=1e-5)
    np.testing.assert_allclose(decoded_pa[2], [21.5, 21.5], atol=1e-5)


def test_msra_round_trip_within_rounding():
    codec = CODECS["msra"]()
    on_grid = np.array([[0, 0], [40, 60], [188, 252], [100, 4]], np.float32)
    decoded, scores = codec.decode(codec.encode(on_grid, np.ones(4))[0])
    np.testing.assert_array_equal(decoded, on_grid)
    np.testing.assert_array_equal(scores, 1.0)
    kp = _points(500, margin=8)
    decoded, _ = codec.decode(codec.encode(kp, np.ones(500))[0])
    # The target sits on the rounded location and its neighbours are symmetric (no quarter
    # shift): the error is the rounding, at most half a heatmap pixel.
    assert np.abs(decoded - kp).max() <= 0.5 * STRIDE + 1e-4


def test_msra_flip_test_shift():
    codec = CODECS["msra"]()
    flip_index = [1, 0]
    on_grid = np.array([[40.0, 60.0], [100.0, 200.0]], np.float32)
    heatmaps, _ = codec.encode(on_grid, np.ones(2))
    mirrored, _ = codec.encode(_mirror(on_grid, flip_index), np.ones(2))
    back = codec.flip_back(mirrored, flip_index)
    np.testing.assert_array_equal(back, heatmaps)
    # Without the shift the peak lands one column left: the mirror of x is w - 1/stride - hm.
    unshifted = flip_heatmaps(mirrored, flip_index, shift=False)
    np.testing.assert_array_equal(codec.decode(unshifted)[0], on_grid - [STRIDE, 0])
    # Off the grid the shift over-corrects by 1/stride: hm 10.4 has its target on column 10,
    # the mirror (149.4 -> 37.35) on 37, which flips back to 10 and shifts to 11.
    kp = np.array([[41.6, 60.0], [41.6, 60.0]], np.float32)
    heatmaps, _ = codec.encode(kp, np.ones(2))
    back = codec.flip_back(codec.encode(_mirror(kp, flip_index), np.ones(2))[0], flip_index)
    assert np.argmax(heatmaps[0, 15]) == 10 and np.argmax(back[0, 15]) == 11


def test_flip_heatmaps_by_hand():
    maps = np.array([[[1, 2, 3, 4]], [[5, 6, 7, 8]], [[9, 10, 11, 12]]], np.float32)
    plain = flip_heatmaps(maps, [1, 0, 2], shift=False)
    np.testing.assert_array_equal(plain[:, 0], [[8, 7, 6, 5], [4, 3, 2, 1], [12, 11, 10, 9]])
    shifted = flip_heatmaps(torch.from_numpy(maps)[None], [1, 0, 2], shift=True)
    assert isinstance(shifted, torch.Tensor) and shifted.shape == (1, 3, 1, 4)
    np.testing.assert_array_equal(shifted[0, :, 0], [[8, 8, 7, 6], [4, 4, 3, 2], [12, 12, 11, 10]])
    with pytest.raises(ValueError, match="permutation"):
        flip_heatmaps(maps, [0, 0, 2], shift=False)
    with pytest.raises(ValueError, match="permutation"):
        flip_heatmaps(maps, [1, 0], shift=False)


# -- DARK ----------------------------------------------------------------------------------------
def test_dark_target_is_unbiased():
    codec = CODECS["dark"]()
    heatmaps, weights = codec.encode(np.array([[37.0, 90.0]], np.float32), np.ones(1))
    # hm = (9.25, 22.5), no rounding: the Gaussian is evaluated at the exact location.
    for x, y in [(9, 22), (9, 23), (12, 20), (30, 40)]:
        expected = np.exp(-((x - 9.25) ** 2 + (y - 22.5) ** 2) / 8)
        assert heatmaps[0, y, x] == pytest.approx(expected, rel=1e-5, abs=1e-30)
    assert weights[0] == 1


def test_blur_matches_darkpose_and_opencv():
    assert blur_sigma(11) == pytest.approx(2.0)
    rng = np.random.default_rng(3)
    hm = rng.uniform(0, 1, (2, 64, 48))
    # DarkPose's gaussian_blur: zero-pad by (k - 1) / 2, cv2.GaussianBlur(k, 0), crop, rescale to
    # the original peak.
    expected = np.empty_like(hm)
    for k in range(2):
        padded = np.zeros((64 + 10, 48 + 10))
        padded[5:-5, 5:-5] = hm[k]
        blurred = cv2.GaussianBlur(padded, (11, 11), 0)[5:-5, 5:-5]
        expected[k] = blurred * hm[k].max() / blurred.max()
    ours = gaussian_blur(torch.from_numpy(hm), 11).numpy()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-9)
    # The combined UDP decoder's reflected border is OpenCV's default (BORDER_REFLECT_101).
    reflected = gaussian_blur(torch.from_numpy(hm), 23, border="reflect", keep_peak=False)
    for k in range(2):
        np.testing.assert_allclose(
            reflected[k].numpy(), cv2.GaussianBlur(hm[k], (23, 23), 0), rtol=0, atol=1e-9
        )


@pytest.mark.parametrize("stencil", ["dark", "udp"])
def test_taylor_step_is_exact_on_a_log_gaussian(stencil):
    # log of a correlated Gaussian is a quadratic: one Newton step lands on its peak.
    ys, xs = np.mgrid[0:64, 0:48].astype(np.float64)
    precision = np.array([[0.30, 0.08], [0.08, 0.18]])
    peak = np.array([21.3, 30.8])
    d = np.stack([xs - peak[0], ys - peak[1]], -1)
    log_map = -0.5 * np.einsum("...i,ij,...j->...", d, precision, d)
    coords = torch.tensor([[[21.0, 31.0], [22.0, 30.0]]], dtype=torch.float64)
    refined = taylor_refine(
        torch.from_numpy(log_map)[None, None].expand(1, 2, 64, 48), coords, stencil=stencil
    )
    np.testing.assert_allclose(refined[0].numpy(), [peak, peak], atol=1e-9)


def test_taylor_step_skips_singular_and_non_maximum_hessians():
    xs = torch.arange(48, dtype=torch.float64)
    ridge = (-((xs - 20.4) ** 2) / 8).expand(64, 48)  # constant along y: det = 0
    bowl = ((xs - 20.4) ** 2)[None, :] + ((torch.arange(64.0) - 30.0) ** 2)[:, None]  # a minimum
    flat = torch.zeros(64, 48, dtype=torch.float64)
    maps = torch.stack([ridge, bowl.double(), flat])
    coords = torch.tensor([[20.0, 30.0], [20.0, 30.0], [5.0, 5.0]], dtype=torch.float64)
    for stencil in ("dark", "udp"):
        refined = taylor_refine(maps, coords, stencil=stencil)
        np.testing.assert_array_equal(refined.numpy(), coords.numpy())


def test_dark_beats_msra_on_random_subpixel_points():
    kp = _points(400, margin=24, seed=4)
    visible = np.ones(len(kp))
    errors = {}
    for name in ("msra", "dark", "dark-pixel-area"):
        codec = CODECS[name]()
        decoded, _ = codec.decode(codec.encode(kp, visible)[0])
        errors[name] = np.linalg.norm(decoded - kp, axis=-1)
    # MSRA: the rounding, uniform on a stride-4 grid: mean about 0.38 * 4 = 1.5 px. DARK: a blurred
    # untruncated Gaussian is a Gaussian, its log a quadratic, the Newton step exact up to float32
    # and the zero border (6 heatmap pixels away here).
    assert 1.2 < errors["msra"].mean() < 1.9
    assert errors["dark"].mean() < errors["msra"].mean() / 100
    assert errors["dark"].max() < 0.01 and errors["dark-pixel-area"].max() < 0.01
    # shift=False keeps the integer argmax: the rounding error again.
    codec = CODECS["dark"]()
    plain, _ = codec.decode(codec.encode(kp, visible)[0], shift=False)
    assert np.abs(plain - kp).max() <= 0.5 * STRIDE + 1e-4


def test_dark_flip_test():
    flip_index = [0, 2, 1]
    kp = _points(3, margin=24, seed=5)
    # Pixel-area alignment: the mirror is exact, no shift, flipped-back targets equal the targets.
    codec = CODECS["dark-pixel-area"]()
    heatmaps, _ = codec.encode(kp, np.ones(3))
    back = codec.flip_back(codec.encode(_mirror(kp, flip_index), np.ones(3))[0], flip_index)
    np.testing.assert_allclose(back, heatmaps, atol=1e-6)
    np.testing.assert_allclose(codec.decode(back)[0], kp, atol=0.01)
    # DarkPose's (MSRA) alignment with its one-pixel shift: exactly one input pixel to the right.
    codec = CODECS["dark"]()
    back = codec.flip_back(codec.encode(_mirror(kp, flip_index), np.ones(3))[0], flip_index)
    np.testing.assert_allclose(codec.decode(back)[0], kp + [1.0, 0.0], atol=0.01)


# -- UDP -----------------------------------------------------------------------------------------
def test_udp_unit_length_mapping():
    codec = CODECS["udp"]()
    assert codec.scale == pytest.approx((191 / 47, 255 / 63))
    inp = np.array([[0.0, 0.0], [191.0, 255.0], [95.5, 127.5]])
    hm = codec.to_heatmap(inp)
    np.testing.assert_allclose(hm, [[0, 0], [47, 63], [23.5, 31.5]], atol=1e-12)
    np.testing.assert_allclose(codec.to_input(torch.from_numpy(hm)).numpy(), inp, atol=1e-9)


def test_udp_gaussian_target_and_round_trip():
    codec = CODECS["udp"]()
    hm_xy = np.array([[9.3, 22.6]])
    heatmaps, _ = codec.encode(codec.to_input(hm_xy).astype(np.float32), np.ones(1))
    # Cut to the 13x13 patch around the rounded location (9, 23), centred on the exact one.
    ys, xs = np.nonzero(heatmaps[0])
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (3, 15, 17, 29)
    expected = np.exp(-((12 - 9.3) ** 2 + (20 - 22.6) ** 2) / 8)
    assert heatmaps[0, 20, 12] == pytest.approx(expected, rel=1e-4)
    kp = _points(400, margin=24, seed=6)
    decoded, scores = codec.decode(codec.encode(kp, np.ones(400))[0])
    assert np.abs(decoded - kp).max() < 0.01
    assert (scores > np.exp(-0.25)).all()  # the raw peak, at most half a pixel per axis away


def test_udp_combined_target_by_hand():
    codec = CODECS["udp-combined"]()
    assert codec.radius == pytest.approx(3.5)  # 0.0546875 * 64
    hm_xy = np.array([[20.0, 30.0]])
    heatmaps, weights = codec.encode(codec.to_input(hm_xy).astype(np.float32), np.ones(1))
    assert heatmaps.shape == (3, 64, 48) and weights[0] == 1
    cls, off_x, off_y = heatmaps
    ys, xs = np.mgrid[0:64, 0:48]
    disk = (xs - 20) ** 2 + (ys - 30) ** 2 <= 3.5**2
    np.testing.assert_array_equal(cls, disk)
    np.testing.assert_allclose(off_x, np.where(disk, (20 - xs) / 3.5, 0), atol=1e-5)
    np.testing.assert_allclose(off_y, np.where(disk, (30 - ys) / 3.5, 0), atol=1e-5)


def test_udp_combined_round_trip():
    kp = _points(400, margin=20, seed=7)
    encoded, _ = CODECS["udp-combined"]().encode(kp, np.ones(400))
    # Unsmoothed offsets (kernel 1) are exact at any pixel of the disk.
    exact = UDPHeatmap(INPUT, HEATMAP, target="combined", blur_kernel=1)
    np.testing.assert_allclose(exact.decode(encoded)[0], kp, atol=1e-3)
    # Smoothed (the default): the argmax lies inside the disk and the blurred offsets pull it
    # most of the way back; well within half a heatmap pixel, much better than MSRA's rounding.
    codec = CODECS["udp-combined"]()
    decoded, scores = codec.decode(encoded)
    error = np.abs(decoded - kp) / np.array(codec.scale)
    assert error.max() < 0.5
    assert error.mean() < 0.25 / 2  # MSRA's rounding: 0.25 on average per axis
    # The score is the blurred disk's peak: the mass of the 23-pixel kernel (sigma 3.8) within
    # the disk, 1 - exp(-3.5^2 / (2 3.8^2)) = 0.35 for a continuous disk centred on the pixel.
    assert (scores > 0.28).all() and (scores < 0.40).all()


def test_udp_combined_border_modes():
    # A keypoint 4.4 heatmap pixels from the left edge: mmpose's reflected border mirrors the
    # disk and the 23-pixel classification blur moves the argmax to the edge.
    hm_xy = np.array([[4.4, 30.2]])
    mmpose = UDPHeatmap(INPUT, HEATMAP, target="combined", blur_border="reflect")
    encoded, _ = mmpose.encode(mmpose.to_input(hm_xy).astype(np.float32), np.ones(1))
    assert abs(mmpose.to_heatmap(mmpose.decode(encoded)[0])[0, 0] - 4.4) > 2.0
    zeros = CODECS["udp-combined"]()
    assert abs(zeros.to_heatmap(zeros.decode(encoded)[0])[0, 0] - 4.4) < 0.5


@pytest.mark.parametrize("name", ["udp", "udp-combined"])
def test_udp_flip_test_needs_no_shift(name):
    codec = CODECS[name]()
    flip_index = [0, 2, 1]
    kp = _points(3, margin=24, seed=8)
    heatmaps, _ = codec.encode(kp, np.ones(3))
    back = codec.flip_back(codec.encode(_mirror(kp, flip_index), np.ones(3))[0], flip_index)
    # The mirror is exact: the flipped-back targets are the targets (x offsets change sign).
    np.testing.assert_allclose(back, heatmaps, atol=1e-5)
    np.testing.assert_allclose(codec.decode(back)[0], codec.decode(heatmaps)[0], atol=1e-3)


def test_udp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="target"):
        UDPHeatmap(INPUT, HEATMAP, target="offset")
    with pytest.raises(ValueError, match="blur_kernel"):
        UDPHeatmap(INPUT, HEATMAP, blur_kernel=4)
    with pytest.raises(ValueError, match="unit lengths"):
        UDPHeatmap(INPUT, (1, 64))
    with pytest.raises(ValueError, match="3 per keypoint"):
        CODECS["udp-combined"]().flip_back(np.zeros((6, 64, 48), np.float32), [0, 2, 1])


# -- every codec ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CODECS))
def test_weights_zero_for_missing_and_outside(name):
    codec = CODECS[name]()
    kp = np.array(
        [[100, 100], [100, 100], [-200, 50], [50, 600], [np.nan, 5], [190, 2]], np.float32
    )
    visible = np.array([2, 0, 1, 1, 1, 1])
    heatmaps, weights = codec.encode(kp, visible)
    np.testing.assert_array_equal(weights, [1, 0, 0, 0, 0, 1])
    c = heatmaps.shape[0] // len(kp)
    per_keypoint = heatmaps.reshape(len(kp), c, 64, 48)
    assert (per_keypoint[weights == 0] == 0).all()
    assert (per_keypoint[weights == 1, 0].max(axis=(-2, -1)) > 0.5).all()


@pytest.mark.parametrize("name", list(CODECS))
def test_batched_torch_matches_numpy(name):
    codec = CODECS[name]()
    rng = np.random.default_rng(9)
    kp = np.stack([rng.uniform(-10, 200, (3, 17)), rng.uniform(-10, 266, (3, 17))], axis=-1).astype(
        np.float32
    )
    visible = (rng.uniform(size=(3, 17)) > 0.2).astype(np.float32)
    hm_t, w_t = codec.encode(torch.from_numpy(kp), torch.from_numpy(visible))
    dec_t, sc_t = codec.decode(hm_t)
    assert dec_t.shape == (3, 17, 2) and sc_t.shape == (3, 17)
    for b in range(3):
        hm, w = codec.encode(kp[b], visible[b])
        np.testing.assert_allclose(hm_t[b].numpy(), hm, atol=1e-7)
        np.testing.assert_array_equal(w_t[b].numpy(), w)
        dec, sc = codec.decode(hm)
        assert isinstance(dec, np.ndarray) and isinstance(sc, np.ndarray)
        # float32 arithmetic on coordinates up to 256 px; a Newton step may amplify the blur's
        # rounding by the inverse Hessian (sigma^2 = 8 for DARK's blurred targets).
        np.testing.assert_allclose(dec_t[b].numpy(), dec, rtol=0, atol=1e-3)
        np.testing.assert_allclose(sc_t[b].numpy(), sc, rtol=0, atol=1e-6)
        # Targets of keypoints well inside the map are not cut by the border: every codec gets
        # them back within the rounding bound.
        inside = (w > 0) & (kp[b] > 24).all(-1) & (kp[b] < np.array(INPUT) - 25).all(-1)
        assert inside.sum() >= 5
        assert np.abs(dec[inside] - kp[b][inside]).max() <= 0.5 * STRIDE + 1e-3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list(CODECS))
def test_codecs_on_gpu_match_cpu(name):
    codec = CODECS[name]()
    kp = torch.from_numpy(_points(4 * 17, margin=0, seed=10).reshape(4, 17, 2))
    visible = torch.ones(4, 17)
    hm_cpu, w_cpu = codec.encode(kp, visible)
    hm_gpu, w_gpu = codec.encode(kp.cuda(), visible.cuda())
    assert hm_gpu.device.type == "cuda"
    torch.testing.assert_close(hm_gpu.cpu(), hm_cpu, rtol=0, atol=1e-6)
    torch.testing.assert_close(w_gpu.cpu(), w_cpu)
    dec_cpu, sc_cpu = codec.decode(hm_cpu)
    dec_gpu, sc_gpu = codec.decode(hm_gpu)
    assert dec_gpu.device.type == "cuda"
    torch.testing.assert_close(dec_gpu.cpu(), dec_cpu, rtol=0, atol=1e-2)
    torch.testing.assert_close(sc_gpu.cpu(), sc_cpu, rtol=0, atol=1e-5)
