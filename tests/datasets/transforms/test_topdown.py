"""Top-down crops: box -> centre/size, the validation crop in both matrix modes, HRNet's
augmentation (scale, rotation, flip, half-body) as one affine that the keypoints follow."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy.stats import norm

from animalpose.datasets.geometry import apply_affine, crop_matrix, flip_matrix
from animalpose.datasets.transforms.topdown import (
    TopDownAugment,
    TopDownCrop,
    TopDownParams,
    box_to_center_size,
    draw_topdown_params,
    half_body_box,
    topdown_matrix,
)

#: A (W, H) = (48, 64) input: the 192 x 256 aspect ratio at a quarter of the cost.
INPUT = (48, 64)
FRAME = (200, 160)  # source (W, H)
#: Ten keypoints: upper 0-5 (pairs 0/1, 2/3, 4/5), lower 6-9 (pairs 6/7, 8/9).
FLIP_INDEX = np.array([1, 0, 3, 2, 5, 4, 7, 6, 9, 8])
UPPER, LOWER = (0, 1, 2, 3, 4, 5), (6, 7, 8, 9)
BLOB_SIGMA = 3.0


def person() -> np.ndarray:
    """(10, 3) source keypoints of an upright figure around (100, 80), all labelled (v = 2)."""
    xy = [
        [92, 40], [108, 42], [85, 60], [114, 58], [82, 78],
        [117, 80], [93, 95], [107, 96], [90, 120], [110, 118],
    ]  # fmt: skip
    return np.concatenate([np.array(xy, dtype=np.float64), np.full((10, 1), 2.0)], axis=1)


def blob_frame(xy) -> np.ndarray:
    """Dark (H, W, 3) uint8 frame with one bright Gaussian blob centred on ``xy``."""
    w, h = FRAME
    ys, xs = np.mgrid[0:h, 0:w]
    g = np.exp(-((xs - xy[0]) ** 2 + (ys - xy[1]) ** 2) / (2 * BLOB_SIGMA**2))
    return np.repeat(np.round(255 * g).astype(np.uint8)[..., None], 3, axis=2)


def textured_frame(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (FRAME[1] // 8, FRAME[0] // 8, 3)).astype(np.uint8)
    return cv2.resize(small, FRAME, interpolation=cv2.INTER_CUBIC)


def centroid(image: np.ndarray) -> np.ndarray:
    v = image.astype(np.float64).mean(axis=2)
    ys, xs = np.mgrid[0 : v.shape[0], 0 : v.shape[1]]
    return np.array([(v * xs).sum(), (v * ys).sum()]) / v.sum()


def augment(**kwargs) -> TopDownAugment:
    options = dict(upper_body=UPPER, lower_body=LOWER)
    options.update(kwargs)
    return TopDownAugment(INPUT, FLIP_INDEX, **options)


# --- box -> centre and size ----------------------------------------------------------------------
def test_box_to_center_size_widens_tall_boxes_and_heightens_wide_ones():
    # Tall: 30 x 80 -> w = 0.75 * 80 = 60; then x 1.25.
    center, size = box_to_center_size([10, 20, 30, 80], aspect_ratio=0.75)
    np.testing.assert_allclose(center, [25.0, 60.0])
    np.testing.assert_allclose(size, [75.0, 100.0])
    # Wide: 120 x 40 -> h = 120 / 0.75 = 160; padding 1.0 keeps it.
    center, size = box_to_center_size([0, 0, 120, 40], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(center, [60.0, 20.0])
    np.testing.assert_allclose(size, [120.0, 160.0])
    # Already at the ratio: only the padding.
    _, size = box_to_center_size([5, 5, 48, 64], aspect_ratio=0.75, padding=1.5)
    np.testing.assert_allclose(size, [72.0, 96.0])


def test_box_to_center_size_takes_one_zero_side_from_the_ratio():
    """A box clipped to one pixel column has w = 0 (HRNet keeps it): the ratio sizes it."""
    center, size = box_to_center_size([4, 10, 0, 20], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(center, [4.0, 20.0])
    np.testing.assert_allclose(size, [15.0, 20.0])


@pytest.mark.parametrize("box", [[0, 0, 0, 0], [0, 0, 10, -1], [0, np.nan, 4, 4], [1, 2, 3]])
def test_box_to_center_size_refuses_boxes_without_extent(box):
    with pytest.raises(ValueError, match="box"):
        box_to_center_size(box, aspect_ratio=0.75)


# --- the validation crop -------------------------------------------------------------------------
def test_pixel_area_matrix_maps_box_edges_to_input_edges():
    m = topdown_matrix([50.0, 60.0], [24.0, 32.0], INPUT)
    # Scale 48 / 24 = 2 = 64 / 32; centre (50, 60) -> (23.5, 31.5): by hand.
    np.testing.assert_allclose(m, [[2.0, 0.0, 23.5 - 100.0], [0.0, 2.0, 31.5 - 120.0]])
    np.testing.assert_allclose(m, crop_matrix([50.0, 60.0], (24.0, 32.0), INPUT))
    corners = np.array([[38.0, 44.0], [62.0, 76.0]])  # centre -+ size / 2
    np.testing.assert_allclose(apply_affine(corners, m), [[-0.5, -0.5], [47.5, 63.5]])


def test_unit_length_matrix_maps_box_edges_to_corner_pixel_centres():
    m = topdown_matrix([50.0, 60.0], [24.0, 32.0], INPUT, unbiased=True)
    kx, ky = 47.0 / 24.0, 63.0 / 32.0  # (input - 1) / size
    np.testing.assert_allclose(m, [[kx, 0, 23.5 - 50 * kx], [0, ky, 31.5 - 60 * ky]])
    corners = np.array([[38.0, 44.0], [62.0, 76.0]])
    np.testing.assert_allclose(apply_affine(corners, m), [[0.0, 0.0], [47.0, 63.0]], atol=1e-12)


@pytest.mark.parametrize("unbiased", [False, True])
def test_validation_crop_of_the_whole_frame_at_its_own_size_is_the_identity(unbiased):
    """The box that covers a W x H image measures (W, H) pixel areas but (W - 1, H - 1) unit
    lengths; each mode then reproduces the image exactly."""
    w, h = INPUT
    image = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    size = (w - 1, h - 1) if unbiased else (w, h)
    res = TopDownCrop(INPUT, unbiased=unbiased)(
        image, np.array([[3.0, 4.0, 2.0]]), ((w - 1) / 2, (h - 1) / 2), size
    )
    np.testing.assert_allclose(res.matrix, [[1, 0, 0], [0, 1, 0]], atol=1e-12)
    np.testing.assert_array_equal(res.image, image)
    np.testing.assert_allclose(res.keypoints, [[3.0, 4.0, 1.0]])


def test_validation_crop_weights_labelled_keypoints_on_the_crop():
    kp = np.array([[100.0, 80.0, 2.0], [101.0, 81.0, 1.0], [102.0, 82.0, 0.0], [5.0, 5.0, 2.0]])
    res = TopDownCrop(INPUT)(textured_frame(), kp, (100.0, 80.0), (48.0, 64.0))
    assert res.image.shape == (64, 48, 3) and res.image.dtype == np.uint8 and not res.flipped
    np.testing.assert_array_equal(res.keypoints[:, 2], [1, 1, 0, 0])  # v 2 and 1 count, 0 not
    np.testing.assert_array_equal(res.keypoints[2:], 0)  # unlabelled and off-crop: zeroed
    np.testing.assert_allclose(res.keypoints[0, :2], [23.5, 31.5])


# --- the augmentation ----------------------------------------------------------------------------
def test_draws_follow_hrnet_distributions():
    rng = np.random.default_rng(0)
    draws = [
        draw_topdown_params(
            rng, scale_factor=0.35, rot_factor=45, rot_prob=0.6, flip=True, half_body_prob=0.3
        )
        for _ in range(4000)
    ]
    scale = np.array([d.scale for d in draws])
    rot = np.array([d.rotation for d in draws])
    assert scale.min() >= 0.65 and scale.max() <= 1.35
    assert abs(np.mean((scale == 0.65) | (scale == 1.35)) - 0.317) < 0.03  # |N| > 1
    assert abs(np.mean(rot == 0) - 0.4) < 0.03 and np.abs(rot).max() <= 90
    assert abs(np.mean([d.flip for d in draws]) - 0.5) < 0.03
    assert abs(np.mean([d.half_body for d in draws]) - 0.3) < 0.03
    # HRNet chooses the upper half when randn() < 0.5: p = Phi(0.5) = 0.69.
    assert abs(np.mean([d.upper_first for d in draws]) - norm.cdf(0.5)) < 0.03
    no_flip = draw_topdown_params(
        np.random.default_rng(0), scale_factor=0.35, rot_factor=45, rot_prob=0.6, flip=False,
        half_body_prob=0.3,
    )  # fmt: skip
    assert not no_flip.flip and no_flip.scale == draws[0].scale  # same stream either way


@pytest.mark.parametrize("unbiased", [False, True])
def test_markers_land_on_the_returned_keypoints(unbiased):
    """A blob painted at each source keypoint ends up where the returned keypoint says, over
    many draws (half-body, scale, rotation, flip all exercised)."""
    aug = augment(unbiased=unbiased, half_body_prob=0.5)
    kp = person()
    frames = [blob_frame(p) for p in kp[:, :2]]
    center, size = box_to_center_size([80, 38, 40, 84], aspect_ratio=0.75)
    checked, flips, rotations, halves = 0, set(), 0, 0
    for seed in range(24):
        params = aug.draw(np.random.default_rng(seed))
        flips.add(params.flip)
        rotations += params.rotation != 0
        _, box_size = aug.crop_box(kp, center, size, params)
        halves += not np.allclose(box_size, size * params.scale)
        sigma = BLOB_SIGMA * INPUT[0] / box_size[0]  # blob size in crop pixels
        for i, frame in enumerate(frames):
            res = aug.apply(frame, kp, center, size, params)
            j = FLIP_INDEX[i] if res.flipped else i
            x, y, weight = res.keypoints[j]
            expected = apply_affine(kp[i : i + 1, :2], res.matrix)[0]
            if weight == 0:
                assert not (-0.5 <= expected[0] < 47.5 and -0.5 <= expected[1] < 63.5)
                continue
            np.testing.assert_allclose([x, y], expected, atol=1e-4)
            margin = 3.5 * sigma
            if margin <= x <= INPUT[0] - 1 - margin and margin <= y <= INPUT[1] - 1 - margin:
                np.testing.assert_allclose(centroid(res.image), [x, y], atol=1.0)
                checked += 1
    assert flips == {False, True} and rotations >= 5 and halves >= 3 and checked >= 100


@pytest.mark.parametrize("unbiased", [False, True])
def test_flip_mirrors_the_crop_and_swaps_pairs_exactly(unbiased):
    """crop -> flip -> flip back == crop: no one-pixel shift in either matrix mode (UDP's point;
    with pixel centres on integers the pixel-area crop is exact too)."""
    aug = augment(unbiased=unbiased)
    frame, kp = textured_frame(), person()
    center, size = np.array([100.0, 80.0]), np.array([60.0, 80.0])
    plain = aug.apply(frame, kp, center, size, TopDownParams(False, True, 1.1, 20.0, False))
    flipped = aug.apply(frame, kp, center, size, TopDownParams(False, True, 1.1, -20.0, True))
    assert flipped.flipped and not plain.flipped
    back = flipped.keypoints[FLIP_INDEX].copy()
    back[:, 0] = INPUT[0] - 1 - back[:, 0]
    np.testing.assert_allclose(back, plain.keypoints, atol=1e-5)  # float32 keypoints
    mirror = np.vstack([flip_matrix(INPUT[0]), [0.0, 0.0, 1.0]])
    np.testing.assert_allclose(flipped.matrix, (mirror @ np.vstack([plain.matrix, [0, 0, 1]]))[:2],
                               atol=1e-12)  # fmt: skip
    # OpenCV samples at 1/32 px: the images agree to one grey level.
    diff = np.abs(flipped.image[:, ::-1].astype(int) - plain.image.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.05
    # The UDP codec's input -> heatmap map, scale (w - 1) / (W - 1), keeps the mirror exact on
    # the heatmap too: heatmap(flipped crop) == heatmap mirror (x -> w - 1 - x) of heatmap(crop).
    if unbiased:
        hm_w = 12
        to_heatmap = np.diag([(hm_w - 1) / (INPUT[0] - 1), (hm_w - 1) / (INPUT[0] - 1), 1.0])
        plain3 = np.vstack([plain.matrix, [0.0, 0.0, 1.0]])
        flipped3 = np.vstack([flipped.matrix, [0.0, 0.0, 1.0]])
        hm_mirror = np.vstack([flip_matrix(hm_w), [0.0, 0.0, 1.0]])
        np.testing.assert_allclose(
            to_heatmap @ flipped3, hm_mirror @ to_heatmap @ plain3, atol=1e-12
        )


def test_flip_is_hrnets_mirror_of_the_source_image():
    """HRNet flips the frame (x -> width - 1 - x), mirrors the centre and swaps the pairs."""
    aug = augment()
    frame, kp = textured_frame(1), person()
    center, size = np.array([96.0, 84.0]), np.array([60.0, 80.0])
    params = TopDownParams(False, True, 0.9, 30.0, True)
    res = aug.apply(frame, kp, center, size, params)
    mirrored = np.ascontiguousarray(frame[:, ::-1])
    kp_m = kp.copy()
    kp_m[:, 0] = FRAME[0] - 1 - kp[:, 0]
    kp_m = kp_m[FLIP_INDEX]
    c_m = np.array([FRAME[0] - 1 - center[0], center[1]])
    ref = aug.apply(mirrored, kp_m, c_m, size, TopDownParams(False, True, 0.9, 30.0, False))
    np.testing.assert_allclose(res.keypoints, ref.keypoints, atol=1e-5)
    # Our matrix reads the unmirrored frame: the reference's crop after the source mirror.
    composed = ref.matrix[:, :2] @ flip_matrix(FRAME[0])
    composed[:, 2] += ref.matrix[:, 2]
    np.testing.assert_allclose(res.matrix, composed, atol=1e-12)
    assert np.abs(res.image.astype(int) - ref.image.astype(int)).max() <= 1


def test_scale_and_rotation_compose_into_the_matrix():
    aug = augment(half_body_prob=0.0)
    frame, kp = textured_frame(), person()
    center, size = np.array([100.0, 80.0]), np.array([60.0, 80.0])
    res = aug.apply(frame, kp, center, size, TopDownParams(False, True, 1.25, 40.0, False))
    np.testing.assert_allclose(
        res.matrix, crop_matrix(center, size * 1.25, INPUT, rotation=40.0), atol=1e-12
    )
    right = apply_affine((center + [20.0, 0.0])[None], res.matrix)[0]
    assert right[1] < (INPUT[1] - 1) / 2 - 5  # content turns counter-clockwise as seen


def test_deterministic_for_a_generator_seed():
    aug = augment()
    frame, kp = textured_frame(), person()
    runs = [
        aug(frame, kp, (100.0, 80.0), (60.0, 80.0), np.random.default_rng(s)) for s in (5, 5, 6)
    ]
    np.testing.assert_array_equal(runs[0].image, runs[1].image)
    np.testing.assert_array_equal(runs[0].keypoints, runs[1].keypoints)
    assert not np.array_equal(runs[0].matrix, runs[2].matrix)


# --- half-body ------------------------------------------------------------------------------------
def test_half_body_box_values_by_hand():
    kp = person()
    center, size = half_body_box(kp, UPPER, LOWER, upper_first=True, aspect_ratio=0.75)
    upper = kp[list(UPPER), :2]
    np.testing.assert_allclose(center, upper.mean(axis=0))  # the mean, as HRNet
    # Extent 35 x 40 -> 35 < 0.75 * 40 = 30? no: 35 > 30, so h = 35 / 0.75; then x 1.5.
    np.testing.assert_allclose(size, np.array([35.0, 35.0 / 0.75]) * 1.5)
    lo = (center - size / 2 <= upper).all() and (upper <= center + size / 2).all()
    assert lo  # the box covers the chosen keypoints
    center, size = half_body_box(kp, UPPER, LOWER, upper_first=False, aspect_ratio=0.75)
    lower = kp[list(LOWER), :2]
    np.testing.assert_allclose(center, lower.mean(axis=0))
    np.testing.assert_allclose(size, np.array([20.0, 20.0 / 0.75]) * 1.5)  # 20 > 0.75 * 25
    assert ((center - size / 2 <= lower) & (lower <= center + size / 2)).all()


def test_half_body_falls_back_when_a_half_has_too_few_keypoints():
    kp = person()
    kp[[6, 7], 2] = 0  # two lower keypoints left: lower is not eligible
    center, _ = half_body_box(kp, UPPER, LOWER, upper_first=False, aspect_ratio=0.75)
    np.testing.assert_allclose(center, kp[list(UPPER), :2].mean(axis=0))
    kp[2:6, 2] = 0  # two upper, two lower: the upper pair (>= 2) is used
    center, _ = half_body_box(kp, UPPER, LOWER, upper_first=True, aspect_ratio=0.75)
    np.testing.assert_allclose(center, kp[[0, 1], :2].mean(axis=0))
    kp[1, 2] = 0  # one upper keypoint: no half-body crop
    assert half_body_box(kp, UPPER, LOWER, upper_first=True, aspect_ratio=0.75) is None


def test_half_body_needs_more_than_eight_labelled_keypoints():
    aug = augment()
    kp = person()
    params = TopDownParams(True, True, 1.0, 0.0, False)
    center, size = np.array([100.0, 80.0]), np.array([60.0, 80.0])
    c, s = aug.crop_box(kp, center, size, params)  # 10 labelled: half-body applies
    np.testing.assert_allclose(c, kp[list(UPPER), :2].mean(axis=0))
    res = aug.apply(textured_frame(), kp, center, size, params)
    np.testing.assert_allclose(res.matrix, crop_matrix(c, s, INPUT), atol=1e-12)
    kp[[8, 9], 2] = 0  # 8 labelled: not more than 8
    c, s = aug.crop_box(kp, center, size, params)
    np.testing.assert_array_equal(c, center)
    np.testing.assert_array_equal(s, size)


def test_constructor_refuses_inconsistent_options():
    with pytest.raises(ValueError, match="upper_body"):
        TopDownAugment(INPUT, FLIP_INDEX)  # half-body on by default needs the halves
    TopDownAugment(INPUT, FLIP_INDEX, half_body_prob=0.0)
    with pytest.raises(ValueError, match="own inverse"):
        TopDownAugment(INPUT, [1, 2, 0], half_body_prob=0.0)
    with pytest.raises(ValueError, match="share"):
        augment(lower_body=(5, 6, 7, 8, 9))
    with pytest.raises(ValueError, match="outside"):
        augment(upper_body=(0, 10))
    with pytest.raises(ValueError, match="input_size"):
        TopDownCrop((48.5, 64))
    assert augment(lower_body=()).lower_body == LOWER  # the complement, as HRNet
