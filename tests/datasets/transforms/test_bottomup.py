"""Bottom-up inputs and targets (datasets/transforms/bottomup.py): the whole-image matrix, the
image and the people moving by one affine, HigherHRNet's draws, the loss mask moving with the
image, and the AE targets at every output resolution with their masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.codecs.udp import UDPHeatmap
from animalpose.datasets.geometry import apply_affine, invert_affine
from animalpose.datasets.transforms.bottomup import (
    MAX_ROTATION,
    MAX_SCALE,
    MAX_TRANSLATE,
    MIN_SCALE,
    BottomUpAugment,
    BottomUpParams,
    BottomUpResize,
    bottomup_matrix,
    bottomup_targets,
    codec_at_size,
    resize_masks,
    warp_mask,
)

FRAME = (160, 120)  # (w, h)
S = 64
#: Four keypoints: pairs 0/1 and 2/3 swap under a flip.
FLIP_INDEX = np.array([1, 0, 3, 2])
BLOB_SIGMA = 2.0


def blob_frame(xy) -> np.ndarray:
    """Dark (H, W, 3) uint8 frame with one bright Gaussian blob centred on ``xy``."""
    w, h = FRAME
    ys, xs = np.mgrid[0:h, 0:w]
    g = np.exp(-((xs - xy[0]) ** 2 + (ys - xy[1]) ** 2) / (2 * BLOB_SIGMA**2))
    return np.repeat(np.round(255 * g).astype(np.uint8)[..., None], 3, axis=2)


def centroid(image: np.ndarray) -> np.ndarray:
    v = image.astype(np.float64).mean(axis=2)
    ys, xs = np.mgrid[0 : v.shape[0], 0 : v.shape[1]]
    return np.array([(v * xs).sum(), (v * ys).sum()]) / v.sum()


def people() -> np.ndarray:
    """(2, 4, 3): two people of four keypoints; the second has keypoint 3 unlabelled."""
    return np.array(
        [
            [[40, 30, 2], [60, 32, 2], [45, 70, 1], [58, 72, 2]],
            [[100, 40, 2], [120, 41, 2], [104, 90, 2], [0, 0, 0]],
        ],
        dtype=np.float64,
    )


def test_the_whole_image_fits_the_input_longer_side_first():
    """160 x 120 on 64 x 64: 0.4 input px per image px; the image's outer pixel edges (-0.5,
    159.5) land on the input's (-0.5, 63.5); the 120 rows are centred with 8 black rows above
    and below."""
    m = bottomup_matrix(FRAME, S)
    np.testing.assert_allclose(m[:, :2], 0.4 * np.eye(2))
    corners = apply_affine(np.array([[-0.5, -0.5], [159.5, 119.5], [79.5, 59.5]]), m)
    np.testing.assert_allclose(corners, [[-0.5, 7.5], [63.5, 55.5], [31.5, 31.5]], atol=1e-12)
    # scale 2 shows a region twice the longer side (zoom out): half the input pixels per pixel.
    np.testing.assert_allclose(bottomup_matrix(FRAME, S, scale=2.0)[:, :2], 0.2 * np.eye(2))
    # a shift moves the region centre, so the image moves the other way on the input
    shifted = apply_affine(np.array([[79.5, 59.5]]), bottomup_matrix(FRAME, S, shift=(10, 0)))
    np.testing.assert_allclose(shifted, [[31.5 - 4.0, 31.5]])
    # image pixel (0, 0) lands at (-0.3, 7.7); the flip mirrors the input: x -> S - 1 - x
    origin = np.array([[0.0, 0.0]])
    np.testing.assert_allclose(apply_affine(origin, m), [[-0.3, 7.7]], atol=1e-12)
    flipped = apply_affine(origin, bottomup_matrix(FRAME, S, flip=True))
    np.testing.assert_allclose(flipped, [[S - 1 + 0.3, 7.7]], atol=1e-12)


def test_resize_moves_every_person_and_marks_unlabelled_and_off_input_keypoints():
    crowd = people()
    crowd[0, 0, :2] = (-20, 30)  # off the image, and so off the input
    result = BottomUpResize(S)(blob_frame((80, 60)), crowd)
    assert result.image.shape == (S, S, 3) and result.keypoints.shape == (2, 4, 3)
    expected = apply_affine(crowd[..., :2], bottomup_matrix(FRAME, S))
    weight = np.array([[0, 1, 1, 1], [1, 1, 1, 0]], dtype=bool)
    np.testing.assert_allclose(result.keypoints[weight][:, :2], expected[weight], atol=1e-5)
    np.testing.assert_array_equal(result.keypoints[..., 2], weight.astype(np.float32))
    assert not result.keypoints[~weight].any()  # x = y = 0 where the weight is 0
    assert not result.flipped


@pytest.mark.parametrize(
    "params",
    [
        BottomUpParams(scale=1.2, rotation=25.0, shift=(0.1, -0.15), flip=False),
        BottomUpParams(scale=0.8, rotation=-17.0, shift=(-0.05, 0.1), flip=True),
    ],
)
def test_image_and_people_move_by_the_same_affine(params):
    """A blob drawn at keypoint 0 of person 0 ends where that keypoint goes (on a flip: in
    channel flip_index[0] = 1), and the matrix inverts back to the annotation."""
    crowd = people()
    augment = BottomUpAugment(S, FLIP_INDEX)
    result = augment.apply(blob_frame(crowd[0, 0, :2]), crowd, params)
    channel = FLIP_INDEX[0] if params.flip else 0
    moved = result.keypoints[0, channel]
    assert moved[2] == 1
    np.testing.assert_allclose(centroid(result.image), moved[:2], atol=0.3)
    back = apply_affine(result.keypoints[..., :2].astype(np.float64), invert_affine(result.matrix))
    order = FLIP_INDEX if params.flip else np.arange(4)
    labelled = result.keypoints[..., 2] > 0
    np.testing.assert_allclose(back[labelled], crowd[:, order][..., :2][labelled], atol=1e-3)
    assert result.flipped is params.flip


def test_draws_stay_in_higherhrnets_ranges_and_follow_the_generator():
    augment = BottomUpAugment(S, FLIP_INDEX)
    draws = [augment.draw(np.random.default_rng(seed)) for seed in range(200)]
    scales = np.array([d.scale for d in draws])
    rotations = np.array([d.rotation for d in draws])
    shifts = np.array([d.shift for d in draws])
    assert MIN_SCALE <= scales.min() and scales.max() <= MAX_SCALE
    assert np.abs(rotations).max() <= MAX_ROTATION and np.abs(shifts).max() <= MAX_TRANSLATE
    assert 60 < sum(d.flip for d in draws) < 140  # p = 0.5
    assert augment.draw(np.random.default_rng(7)) == augment.draw(np.random.default_rng(7))
    still = BottomUpAugment(S, FLIP_INDEX, max_rotation=0, flip=False)
    assert all(
        d.rotation == 0 and not d.flip
        for d in (still.draw(np.random.default_rng(s)) for s in range(20))
    )


def test_refusals():
    with pytest.raises(ValueError, match="its own inverse"):
        BottomUpAugment(S, [1, 2, 0])
    with pytest.raises(ValueError, match="needs the flip_index"):
        BottomUpResize(S).apply(blob_frame((5, 5)), people(), BottomUpParams(flip=True))
    with pytest.raises(ValueError, match=r"\(M, K, 3\)"):
        BottomUpResize(S)(blob_frame((5, 5)), people()[0])


@pytest.mark.parametrize(
    "params",
    [
        BottomUpParams(scale=1.0),
        BottomUpParams(scale=1.3, rotation=35.0, shift=(0.1, -0.05), flip=True),
    ],
)
def test_a_box_mask_lands_where_the_warped_box_lands(params):
    """A box of the image drawn as a mask and warped with the image's own matrix covers the
    input pixels whose inverse-mapped centres fall in the box (COCO's continuous box: image
    pixel x covers [x, x + 1), i.e. centres x + 0.5 in [bx, bx + bw]); they may differ only
    within one input pixel of the box's edge. Pixels off the image count (1)."""
    box = (30.0, 20.0, 70.0, 50.0)  # x, y, w, h
    mask = np.ones(FRAME[::-1], dtype=np.uint8)
    mask[20:70, 30:100] = 0
    result = BottomUpAugment(S, FLIP_INDEX).apply(blob_frame((80, 60)), people(), params)
    warped = warp_mask(mask, result.matrix, S)
    assert warped.shape == (S, S) and warped.dtype == np.uint8
    grid = np.stack(np.meshgrid(np.arange(S), np.arange(S)), axis=-1).astype(np.float64)
    inverse = invert_affine(result.matrix)
    image_xy = apply_affine(grid, inverse) + 0.5
    inside = (
        (image_xy[..., 0] >= box[0])
        & (image_xy[..., 0] <= box[0] + box[2])
        & (image_xy[..., 1] >= box[1])
        & (image_xy[..., 1] <= box[1] + box[3])
    )
    # distance of each input pixel to the box edge, in input pixels (the affine is a similarity)
    scale = np.sqrt(abs(np.linalg.det(result.matrix[:, :2])))
    edge = np.minimum.reduce(
        [
            np.abs(image_xy[..., 0] - box[0]),
            np.abs(image_xy[..., 0] - box[0] - box[2]),
            np.abs(image_xy[..., 1] - box[1]),
            np.abs(image_xy[..., 1] - box[1] - box[3]),
        ]
    )
    near_edge = edge * scale <= 1.0
    assert inside.sum() > 100
    assert ((warped == 0) == inside)[~near_edge].all()
    # each of the box's corner pixels lands within one input pixel of a masked pixel
    corners = np.array([[30.0, 20.0], [99.0, 20.0], [30.0, 69.0], [99.0, 69.0]])
    checked = 0
    for x, y in apply_affine(corners, result.matrix):
        xi, yi = int(round(x)), int(round(y))
        if 1 <= xi < S - 1 and 1 <= yi < S - 1:
            assert warped[yi - 1 : yi + 2, xi - 1 : xi + 2].min() == 0
            checked += 1
    assert checked >= 2
    off_image = (image_xy[..., 0] < -1) | (image_xy[..., 0] > FRAME[0] + 1)
    off_image |= (image_xy[..., 1] < -1) | (image_xy[..., 1] > FRAME[1] + 1)
    assert warped[off_image].all()


def test_an_all_ones_mask_stays_ones_and_masks_must_be_2d():
    matrix = bottomup_matrix(FRAME, S, scale=1.4, rotation=20.0)
    assert warp_mask(np.ones(FRAME[::-1], bool), matrix, S).all()
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        warp_mask(np.ones((2, 3, 4)), matrix, S)


# --- targets -------------------------------------------------------------------------------


def test_targets_are_the_maximum_of_each_persons_gaussians_and_their_cells():
    """Two people whose keypoint 0 lie one heatmap pixel apart: the target is the pixel-wise
    maximum of the two Gaussians (encoded one person at a time), not their sum; the cells are
    the Gaussians' rounded centres (pixel area: floor((x + 0.5) / 4)), visible only where
    labelled; the padding person counts nowhere."""
    codec = MSRAHeatmap((S, S), (S // 4, S // 4), sigma=2.0)
    kp = torch.zeros(1, 3, 2, 3)
    kp[0, 0] = torch.tensor([[10.0, 21.0, 1.0], [40.0, 50.0, 1.0]])
    kp[0, 1] = torch.tensor([[14.0, 21.0, 1.0], [0.0, 0.0, 0.0]])  # keypoint 1 unlabelled
    targets = bottomup_targets(codec, kp)
    assert targets.heatmaps.shape == (1, 2, 16, 16)
    one, _ = codec.encode(kp[0, 0, :, :2], kp[0, 0, :, 2])
    two, _ = codec.encode(kp[0, 1, :, :2], kp[0, 1, :, 2])
    torch.testing.assert_close(targets.heatmaps[0], torch.maximum(one, two))
    assert targets.heatmaps[0, 0].max() == 1.0 and (one + two)[0].max() > 1.0
    cells = [[[2, 5], [10, 12]], [[3, 5], [0, 0]], [[0, 0], [0, 0]]]
    assert targets.cells[0].tolist() == cells
    assert targets.cells.dtype == torch.int64
    assert targets.visible[0].tolist() == [[1, 1], [1, 0], [0, 0]]
    torch.testing.assert_close(targets.weights, torch.ones(1, 2))


def test_targets_of_an_image_without_people_are_empty():
    codec = MSRAHeatmap((S, S), (S // 4, S // 4), sigma=2.0)
    targets = bottomup_targets(codec, torch.zeros(2, 4, 3, 3))
    assert targets.heatmaps.shape == (2, 3, 16, 16) and not targets.heatmaps.any()
    assert not targets.visible.any() and targets.weights.sum() == 6


def test_codec_at_size_keeps_sigma_and_alignment_at_another_resolution():
    codec = MSRAHeatmap((S, S), (S // 4, S // 4), sigma=2.0)
    assert codec_at_size(codec, (16, 16)) is codec
    fine = codec_at_size(codec, (32, 32))
    assert type(fine) is MSRAHeatmap and fine.sigma == 2.0 and fine.stride == (2.0, 2.0)
    assert codec.heatmap_size == (16, 16)  # the original is untouched
    # pixel-area: input x = 2 hm + 0.5 at stride 2, 4 hm + 1.5 at stride 4
    np.testing.assert_allclose(fine.to_input(np.array([[3.0, 5.0]])), [[6.5, 10.5]])
    msra = codec_at_size(MSRAHeatmap((S, S), (16, 16), convention="msra"), (32, 32))
    assert msra.convention == "msra"
    with pytest.raises(ValueError, match="UDPHeatmap"):
        codec_at_size(UDPHeatmap((S, S), (16, 16), sigma=2.0), (32, 32))


def test_targets_for_every_output_resolution():
    """HigherHRNet's two outputs (16 and 32 px maps of a 64 px input): the stride-2 targets are
    the stride-2 codec's Gaussians (sigma 2 in its own pixels), peaking at the cell the
    keypoint lands on at stride 2; the stride-4 targets and the tag cells are those of a single
    output, bit for bit."""
    codec = MSRAHeatmap((S, S), (S // 4, S // 4), sigma=2.0)
    kp = torch.zeros(1, 2, 2, 3)
    kp[0, 0] = torch.tensor([[10.0, 21.0, 1.0], [40.0, 50.0, 1.0]])
    kp[0, 1] = torch.tensor([[30.0, 8.0, 1.0], [0.0, 0.0, 0.0]])
    plain = bottomup_targets(codec, kp)
    both = bottomup_targets(codec, kp, heatmap_sizes=[(16, 16), (32, 32)])
    assert torch.equal(both.heatmaps, plain.heatmaps) and torch.equal(both.cells, plain.cells)
    assert torch.equal(both.visible, plain.visible) and plain.higher_heatmaps == ()
    (fine,) = both.higher_heatmaps
    assert fine.shape == (1, 2, 32, 32)
    fine_codec = MSRAHeatmap((S, S), (32, 32), sigma=2.0)
    one, _ = fine_codec.encode(kp[0, 0, :, :2], kp[0, 0, :, 2])
    two, _ = fine_codec.encode(kp[0, 1, :, :2], kp[0, 1, :, 2])
    torch.testing.assert_close(fine[0], torch.maximum(one, two))
    # (10, 21) -> floor((10 + 0.5) / 2) = 5, floor(21.5 / 2) = 10 at stride 2
    assert fine[0, 0, 10, 5] == 1.0 and fine[0, 0, 4, 15] == 1.0  # person 1 at (30, 8)
    assert [w.shape for w in both.weights_per_output] == [(1, 2), (1, 2)]
    assert len(both.heatmaps_per_output) == 2
    with pytest.raises(ValueError, match="must start with the codec's heatmap size"):
        bottomup_targets(codec, kp, heatmap_sizes=[(32, 32), (16, 16)])


def test_masks_shrink_to_every_resolution_by_the_area_share():
    """A 64 px mask with rows 0-4 and columns 8-39 masked: a 16 px cell (4 x 4 input pixels)
    counts when more than half of it counts, so cell row 0 is masked (0 of 4 rows count), row 1
    counts (3 of 4); columns 2-9 are masked exactly. At 32 px (2 x 2): rows 0-2 masked (row 2
    covers input rows 4-5, half of which count: not more than half), row 3 counts."""
    masks = torch.ones(2, S, S, dtype=torch.uint8)
    masks[0, 0:5, 8:40] = 0
    coarse = resize_masks(masks, (16, 16))
    expected = torch.ones(2, 16, 16)
    expected[0, 0, 2:10] = 0
    assert torch.equal(coarse, expected)
    fine = resize_masks(masks, (32, 32))
    expected = torch.ones(2, 32, 32)
    expected[0, 0:3, 4:20] = 0
    assert torch.equal(fine, expected)
    codec = MSRAHeatmap((S, S), (S // 4, S // 4), sigma=2.0)
    targets = bottomup_targets(
        codec, torch.zeros(2, 1, 3, 3), masks=masks, heatmap_sizes=[(16, 16), (32, 32)]
    )
    assert torch.equal(targets.weights, coarse) and torch.equal(targets.higher_weights[0], fine)
    with pytest.raises(ValueError, match=r"masks must be \(B, S, S\) with B = 2"):
        bottomup_targets(codec, torch.zeros(2, 1, 3, 3), masks=masks[:1])
