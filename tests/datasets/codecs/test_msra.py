import numpy as np
import pytest
import torch

from animalpose.datasets.codecs.msra import MSRAHeatmap, heatmap_argmax


@pytest.fixture
def codec():
    return MSRAHeatmap((256, 256), (64, 64), sigma=1.0)


def test_on_grid_round_trip_is_exact(codec):
    hm_xy = np.array([[10, 20], [0, 0], [63, 63], [31, 5]], dtype=np.float64)
    inp = codec.to_input(hm_xy)
    heatmaps, weights = codec.encode(inp.astype(np.float32), np.ones(4))
    decoded, scores = codec.decode(heatmaps)
    np.testing.assert_allclose(decoded, inp, atol=1e-5)
    np.testing.assert_allclose(scores, 1.0)
    np.testing.assert_array_equal(weights, 1.0)


def test_subpixel_error_bounded_by_resolution(codec):
    rng = np.random.default_rng(0)
    kp = rng.uniform(8, 248, (500, 2)).astype(np.float32)
    heatmaps, _ = codec.encode(kp, np.ones(500))
    decoded, _ = codec.decode(heatmaps)
    # Rounding to the heatmap grid moves a point at most half a heatmap pixel per axis.
    assert np.abs(decoded - kp).max() <= 0.5 * codec.stride[0] + 1e-4


def test_reference_patch_sigma_one_is_7x7(codec):
    heatmaps, _ = codec.encode(np.array([[129.5, 129.5]], np.float32), np.ones(1))
    support = heatmaps[0] > 0
    assert support.sum() == 49
    ys, xs = np.nonzero(support)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (29, 35, 29, 35)
    assert heatmaps[0, 32, 33] == pytest.approx(np.exp(-0.5))


def test_weights_zero_for_missing_and_outside(codec):
    kp = np.array(
        [[100, 100], [100, 100], [-20, 50], [-10, 50], [300, 300], [np.nan, 5]], np.float32
    )
    vis = np.array([1, 0, 1, 1, 1, 1])
    heatmaps, weights = codec.encode(kp, vis)
    # -20 px -> heatmap x = -5.4 -> centre -5: patch [-8, -2] lies outside; -10 -> -3: touches x=0.
    np.testing.assert_array_equal(weights, [1, 0, 0, 1, 0, 0])
    assert heatmaps[1].max() == 0 and heatmaps[2].max() == 0 and heatmaps[3].max() > 0


def test_batched_torch_matches_numpy(codec):
    rng = np.random.default_rng(1)
    kp = rng.uniform(-10, 266, (3, 18, 2)).astype(np.float32)
    vis = (rng.uniform(size=(3, 18)) > 0.2).astype(np.float32)
    hm_t, w_t = codec.encode(torch.from_numpy(kp), torch.from_numpy(vis))
    for b in range(3):
        hm, w = codec.encode(kp[b], vis[b])
        np.testing.assert_allclose(hm_t[b].numpy(), hm, atol=1e-7)
        np.testing.assert_array_equal(w_t[b].numpy(), w)
    dec_t, sc_t = codec.decode(hm_t)
    assert dec_t.shape == (3, 18, 2) and sc_t.shape == (3, 18)
    # Decoding is float32 arithmetic on input-pixel coordinates no larger than the input size,
    # and the scores are heatmap peaks in [0, 1]: the batched and the per-sample NumPy paths may
    # differ by float32 rounding at those magnitudes only.
    eps = float(np.finfo(np.float32).eps)
    coord_tol = eps * max(codec.input_size)
    for b in range(3):
        dec, sc = codec.decode(hm_t[b].numpy())
        assert isinstance(dec, np.ndarray) and isinstance(sc, np.ndarray)
        np.testing.assert_allclose(dec_t[b].numpy(), dec, rtol=0, atol=coord_tol)
        np.testing.assert_allclose(sc_t[b].numpy(), sc, rtol=0, atol=eps)
    # A weighted keypoint's patch overlaps the map, so it scores > 0; an unweighted one's map is
    # empty and scores 0.
    assert (sc_t[w_t > 0] > 0).all() and (sc_t[w_t == 0] == 0).all()


def test_quarter_shift_towards_higher_neighbour(codec):
    hm = np.zeros((1, 64, 64), np.float32)
    hm[0, 10, 20] = 1.0
    hm[0, 10, 21] = 0.5  # right neighbour higher than left
    hm[0, 9, 20] = 0.3  # upper neighbour higher than lower
    (xy,), _ = codec.decode(hm)
    np.testing.assert_allclose(codec.to_heatmap(xy[None])[0], [20.25, 9.75], atol=1e-6)
    (xy_ns,), _ = codec.decode(hm, shift=False)
    np.testing.assert_allclose(codec.to_heatmap(xy_ns[None])[0], [20, 10], atol=1e-6)


def test_flip_is_exact_in_heatmap_space(codec):
    kp = np.array([[37.0, 90.0]], np.float32)
    hm, _ = codec.encode(kp, np.ones(1))
    flipped, _ = codec.encode(np.array([[255 - 37.0, 90.0]], np.float32), np.ones(1))
    np.testing.assert_array_equal(hm[:, :, ::-1], flipped)


def test_argmax_independent_check():
    rng = np.random.default_rng(2)
    hm = rng.normal(size=(2, 5, 7, 9)).astype(np.float32)
    coords, peaks = heatmap_argmax(hm)
    for b in range(2):
        for k in range(5):
            y, x = np.unravel_index(np.argmax(hm[b, k]), (7, 9))
            assert tuple(coords[b, k]) == (x, y) and peaks[b, k] == hm[b, k].max()


def test_rejects_bad_sigma():
    with pytest.raises(ValueError):
        MSRAHeatmap((256, 256), (64, 64), sigma=0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_encode_decode_on_gpu(codec):
    kp = torch.rand(4, 18, 2, device="cuda") * 255
    hm, w = codec.encode(kp, torch.ones(4, 18, device="cuda"))
    assert hm.device.type == "cuda"
    dec, _ = codec.decode(hm)
    assert (dec - kp).abs().max() <= 2.0 + 1e-4
