"""Associative Embedding grouping on hand-made heatmaps and tag maps: exact assignments of two
and three people whose limbs cross (detections of different people interleaved in space), the
Hungarian matching where a greedy nearest-tag pass goes wrong, detection scores breaking ties,
new people for unmatched tags, ``refine`` filling a missing keypoint from a weaker peak with the
right tag, the quarter-pixel shift, NMS and top-k, the COCO visiting order, the multi-scale
merge, and grouping on maps resized to the input (HigherHRNet's projection) agreeing with
grouping at the output resolution."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from animalpose.datasets.keypoints import AP10K17, COCO17
from animalpose.evaluation.grouping import (
    QUARTER_SHIFT,
    group,
    grouping_order,
    multi_scale_merge,
    refine,
    top_detections,
)

#: Tag of every pixel outside the drawn peaks: far from every person's tag.
BACKGROUND_TAG = 50.0
#: HigherHRNet's COCO ``joint_order`` (lib/core/group.py ``Params``), 1-based.
REFERENCE_COCO_ORDER = [1, 2, 3, 4, 5, 6, 7, 12, 13, 8, 9, 10, 11, 14, 15, 16, 17]


def scene(people, num_keypoints: int, size=(48, 32), tag_dim: int = 1):
    """Heatmaps and tag maps with one symmetric peak per (person, keypoint).

    ``people``: list of ``(tag, {k: (x, y, score)})``; a peak is ``score`` at (x, y) and
    ``score / 2`` at its four neighbours (no quarter shift), its 3x3 patch carrying the tag.
    Returns (K, h, w) heatmaps and (K, h, w) (or (K, h, w, T)) tags.
    """
    width, height = size
    heat = np.zeros((num_keypoints, height, width))
    tags = np.full((num_keypoints, height, width, tag_dim), BACKGROUND_TAG)
    for tag, points in people:
        for k, (x, y, score) in points.items():
            for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
                heat[k, y + dy, x + dx] = max(heat[k, y + dy, x + dx], score / 2)
            heat[k, y, x] = score
            tags[k, y - 1 : y + 2, x - 1 : x + 2] = tag
    return heat, (tags[..., 0] if tag_dim == 1 else tags)


def by_tag(people: np.ndarray) -> np.ndarray:
    """People sorted by the tag of their first detected keypoint."""
    first = [p[np.flatnonzero(p[:, 2] > 0)[0], 3] for p in people]
    return people[np.argsort(first)]


def expected_person(points, tag, num_keypoints):
    out = np.zeros((num_keypoints, 4))
    for k, (x, y, score) in points.items():
        out[k] = (x, y, score, tag)
    return out


def test_coco_order_is_the_references_joint_order():
    assert grouping_order(COCO17) == tuple(i - 1 for i in REFERENCE_COCO_ORDER)
    order = grouping_order(AP10K17)
    names = [AP10K17.keypoints[k] for k in order]
    assert names[:7] == [
        "nose",
        "left_eye",
        "right_eye",
        "left_shoulder",
        "right_shoulder",
        "left_hip",
        "right_hip",
    ]
    assert sorted(order) == list(range(17))


def test_two_people_with_crossing_limbs():
    """Each keypoint type's two peaks sit 4 px apart, and the limbs cross: A's wrists and
    ankles lie on B's side and the other way round, so position alone cannot group them."""
    k = 17
    a, b = {}, {}
    for j in range(k):
        x, y = 4 + 5 * (j % 8), 4 + 6 * (j // 8)
        near, far = (x, y), (x + 4, y + 1)
        limb = COCO17.keypoints[j].split("_")[-1] in ("wrist", "ankle")
        a[j] = (*(far if limb else near), 0.9 - 0.01 * j)
        b[j] = (*(near if limb else far), 0.8 - 0.01 * j)
    heat, tags = scene([(0.0, a), (3.0, b)], k)
    people = group(heat, tags, order=grouping_order(COCO17))
    assert people.shape == (2, k, 4)
    got = by_tag(people)
    np.testing.assert_allclose(got[0], expected_person(a, 0.0, k))
    np.testing.assert_allclose(got[1], expected_person(b, 3.0, k))


def test_three_people_with_missing_keypoints_and_two_dimensional_tags():
    k = 5
    tags3 = [(0.0, 0.0), (2.0, 0.0), (0.0, 2.0)]
    points = [
        {0: (5, 5, 0.9), 1: (20, 6, 0.7), 2: (30, 20, 0.5), 4: (10, 25, 0.4)},
        {0: (10, 5, 0.8), 1: (15, 6, 0.6), 3: (25, 12, 0.9), 4: (5, 25, 0.5)},
        {1: (25, 6, 0.5), 2: (35, 20, 0.8), 3: (30, 12, 0.3), 4: (15, 25, 0.9)},
    ]
    heat, tags = scene(list(zip(tags3, points)), k, tag_dim=2)
    people = group(heat, tags, fill_missing=False)
    assert people.shape == (3, k, 5)
    for tag, pts in zip(tags3, points):
        match = [p for p in people if np.allclose(p[p[:, 2] > 0][0, 3:], tag)]
        assert len(match) == 1
        person = match[0]
        for j in range(k):
            if j in pts:
                np.testing.assert_allclose(person[j], (*pts[j], *tag))
            else:
                assert not person[j].any()  # missing: every column 0


def test_hungarian_matching_where_greedy_nearest_tag_fails():
    """People A (tag 0) and B (tag 0.8). Keypoint 1 has detections x (tag 0.45, nearest to B)
    and y (tag 1.5, only B is within the threshold): the right assignment is x -> A, y -> B."""
    heat, tags = scene(
        [
            (0.0, {0: (5, 5, 0.9)}),
            (0.8, {0: (20, 5, 0.9)}),
            (0.45, {1: (5, 15, 0.9)}),
            (1.5, {1: (20, 15, 0.9)}),
        ],
        2,
    )
    people = group(heat, tags, fill_missing=False)
    assert people.shape == (2, 2, 4)
    a, b = by_tag(people)
    np.testing.assert_allclose(a[:, 3], [0.0, 0.45])
    np.testing.assert_allclose(b[:, 3], [0.8, 1.5])


def test_detection_score_breaks_ties_and_unmatched_tags_start_people():
    """Two keypoint-1 detections both round to distance 0 from the one person: the stronger
    joins, the weaker starts a person of its own; a far tag starts one too."""
    heat, tags = scene(
        [
            (0.0, {0: (5, 5, 0.9)}),
            (0.1, {1: (5, 15, 0.5)}),
            (0.2, {1: (20, 15, 0.9)}),
            (7.0, {1: (35, 15, 0.6)}),
        ],
        2,
    )
    people = group(heat, tags, fill_missing=False)
    assert people.shape == (3, 2, 4)
    joined = people[0]  # creation order: the keypoint-0 person first
    np.testing.assert_allclose(joined, [[5, 5, 0.9, 0.0], [20, 15, 0.9, 0.2]])
    alone = {round(p[1, 3], 6): p for p in people[1:]}
    assert sorted(alone) == [0.1, 7.0]
    assert not alone[0.1][0].any() and alone[0.1][1, 2] == pytest.approx(0.5)


def test_refine_fills_a_missing_keypoint_from_a_weaker_peak_with_the_right_tag():
    """A's keypoint 1 is under the detection threshold (0.05); B's keypoint 1 (0.9) is close by
    but carries B's tag. B has no keypoint 2; only A's keypoint 2 peak exists."""
    a = {0: (5, 5, 0.9), 1: (8, 15, 0.05), 2: (30, 25, 0.8)}
    b = {0: (20, 5, 0.9), 1: (12, 15, 0.9)}
    heat, tags = scene([(0.0, a), (3.0, b)], 3)
    plain = by_tag(group(heat, tags, fill_missing=False))
    assert plain.shape == (2, 3, 4)
    assert not plain[0, 1].any() and not plain[1, 2].any()
    filled = by_tag(group(heat, tags))
    np.testing.assert_allclose(filled[0], expected_person(a, 0.0, 3))  # the weak peak joins A
    np.testing.assert_allclose(filled[1], expected_person(b, 3.0, 3))  # A's peak stays out of B
    # Without a tag threshold (the reference's refine) B takes A's keypoint-2 peak.
    taken = refine(heat, tags, plain[1], tag_threshold=None)
    np.testing.assert_allclose(taken[2], (30, 25, 0.8, 0.0))
    np.testing.assert_allclose(taken[:2], plain[1, :2])


def test_quarter_shift_towards_the_higher_neighbour():
    heat, tags = scene([(0.0, {0: (10, 10, 1.0)})], 1)
    heat[0, 10, 11], heat[0, 10, 9] = 0.7, 0.2  # right higher: x + 0.25
    heat[0, 9, 10], heat[0, 11, 10] = 0.6, 0.3  # up higher: y - 0.25
    heat[0, 0, 20] = 0.5  # a peak on the border: no neighbour above, no y shift
    heat[0, 0, 21] = 0.4  # right higher: x + 0.25
    people = group(heat, tags, fill_missing=False)
    assert people.shape == (2, 1, 4)
    np.testing.assert_allclose(people[0, 0, :3], (10.25, 9.75, 1.0))
    np.testing.assert_allclose(people[1, 0, :3], (20.25, 0.0, 0.5))


def test_nms_threshold_and_top_k():
    peaks = {(5, 5): 0.9, (15, 5): 0.7, (25, 5): 0.5, (35, 5): 0.08}
    heat, tags = scene([(float(i), {0: (*xy, s)}) for i, (xy, s) in enumerate(peaks.items())], 1)
    xy, scores, peak_tags = top_detections(heat, tags, max_people=3)
    np.testing.assert_array_equal(xy[0], [(5, 5), (15, 5), (25, 5)])  # strongest first
    np.testing.assert_allclose(scores[0], [0.9, 0.7, 0.5])  # the 0.45 neighbours are no peaks
    np.testing.assert_allclose(peak_tags[0, :, 0], [0.0, 1.0, 2.0])
    assert group(heat, tags).shape == (3, 1, 4)  # 0.08 is under the detection threshold
    assert group(heat, tags, max_people=2).shape == (2, 1, 4)
    assert group(heat, tags, detection_threshold=0.6).shape == (2, 1, 4)
    assert group(np.zeros((3, 8, 8)), np.zeros((3, 8, 8))).shape == (0, 3, 4)


def test_tensors_and_arrays_group_alike():
    heat, tags = scene([(0.0, {0: (5, 5, 0.9), 1: (6, 9, 0.8)}), (2.0, {0: (20, 5, 0.7)})], 2)
    np.testing.assert_allclose(
        group(torch.from_numpy(heat).float(), torch.from_numpy(tags).float()),
        group(heat.astype(np.float32), tags.astype(np.float32)),
    )


def test_bad_arguments_are_named():
    heat, tags = np.zeros((2, 8, 8)), np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="permutation"):
        group(heat, tags, order=[0, 0])
    with pytest.raises(ValueError, match="same K, h, w"):
        group(heat, np.zeros((2, 8, 7)))
    with pytest.raises(ValueError, match="odd"):
        top_detections(heat, tags, nms_kernel=4)


def test_multi_scale_merge_averages_heatmaps_and_concatenates_tags():
    g = torch.Generator().manual_seed(0)
    h1, t1 = torch.rand(2, 6, 8, generator=g), torch.rand(2, 6, 8, generator=g)
    h2, t2 = torch.rand(2, 6, 8, generator=g), torch.rand(2, 6, 8, 2, generator=g)
    heat, tags = multi_scale_merge([(h1, t1), (h2, t2)])
    torch.testing.assert_close(heat, (h1 + h2) / 2)
    torch.testing.assert_close(tags, torch.cat([t1[..., None], t2], dim=-1))


def test_multi_scale_merge_resizes_with_pixel_centres_aligned():
    """A ramp f(u) = u at half size, upsampled 2x: output pixel x sits at u = (x + 0.5) / 2 -
    0.5 of the small map, so inside (away from the clamped borders) it reads that value."""
    small = torch.arange(8, dtype=torch.float32).expand(1, 4, 8).contiguous()  # f = x
    large = torch.zeros(1, 8, 16)
    heat, tags = multi_scale_merge([(large, large), (small, small)])
    assert heat.shape == (1, 8, 16) and tags.shape == (1, 8, 16, 2)
    x = torch.arange(16, dtype=torch.float32)
    inside = slice(1, 15)
    torch.testing.assert_close(tags[0, 3, inside, 1], ((x + 0.5) / 2 - 0.5)[inside])
    torch.testing.assert_close(heat[0, 3, inside], ((x + 0.5) / 4 - 0.25)[inside])  # mean with 0
    assert not tags[..., 0].any()
    heat, _ = multi_scale_merge([(small, small)], size=(16, 8))
    expected = F.interpolate(small[None], (8, 16), mode="bilinear", align_corners=False)[0]
    torch.testing.assert_close(heat, expected)


def gaussian_scene(people, num_keypoints: int, size, sigma: float = 1.5):
    """Heatmaps of Gaussians centred off the pixel grid (no ties between neighbours) and tag
    maps holding each person's tag on the 5 x 5 cells around each of its keypoints.
    ``people``: list of ``(tag, {k: (x, y)})`` in continuous heatmap pixels."""
    width, height = size
    ys, xs = np.mgrid[0:height, 0:width]
    heat = np.zeros((num_keypoints, height, width))
    tags = np.full((num_keypoints, height, width), BACKGROUND_TAG)
    for tag, points in people:
        for k, (x, y) in points.items():
            g = np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * sigma**2))
            heat[k] = np.maximum(heat[k], g)
            cx, cy = int(round(x)), int(round(y))
            tags[k, cy - 2 : cy + 3, cx - 2 : cx + 3] = tag
    return heat, tags


def test_grouping_at_input_resolution_agrees_with_the_output_resolution():
    """Three people whose limbs cross, on 24 x 16 maps of a stride-4 model, grouped as they are
    and after a bilinear resize to the 96 x 64 input (pixel-area: map pixel j -> input pixel
    4 j + 1.5). The same people with the same keypoints and tags come out, and each keypoint
    agrees with output-resolution x stride within the rounding of both: the output grid's
    quarter shift (QUARTER_SHIFT x 4 = 1 input pixel) plus the input peak's half pixel from the
    resized grid's knot and its own quarter shift (0.5 + 0.25)."""
    people = [
        (0.0, {0: (3.3, 3.8), 1: (8.6, 4.2), 2: (15.2, 11.7), 3: (4.1, 12.4)}),
        (3.0, {0: (10.7, 3.1), 1: (2.8, 8.9), 2: (9.4, 12.6), 3: (20.3, 6.2)}),
        (6.0, {0: (18.2, 9.6), 1: (14.9, 3.3), 2: (3.6, 6.4), 3: (12.2, 8.3)}),
    ]
    heat, tags = gaussian_scene(people, 4, (24, 16))
    stride = 4
    low = by_tag(group(heat, tags))
    big_heat, big_tags = multi_scale_merge([(heat, tags)], size=(24 * stride, 16 * stride))
    high = by_tag(group(big_heat, big_tags))
    assert low.shape == high.shape == (3, 4, 4)
    np.testing.assert_array_equal(low[..., 2] > 0, high[..., 2] > 0)
    assert (low[..., 2] > 0).all()
    np.testing.assert_allclose(high[..., 3], low[..., 3])  # the same tags: the same grouping
    np.testing.assert_allclose(low[:, :, 3], [[0.0] * 4, [3.0] * 4, [6.0] * 4])
    tolerance = stride * QUARTER_SHIFT + 0.5 + QUARTER_SHIFT
    at_input = (low[..., :2] + 0.5) * stride - 0.5
    error = np.abs(high[..., :2] - at_input)
    assert error.max() <= tolerance
    assert error.max() > 0  # the two differ: the test compares two computations
    # near the truth: a bilinear map peaks on the resized grid's knots, so the input peak is
    # the nearest knot (half a map pixel, stride / 2 input pixels) within 0.5 + 0.25
    truth = np.array([[points[k] for k in range(4)] for _, points in people])
    truth = (truth + 0.5) * stride - 0.5
    assert np.abs(high[..., :2] - truth).max() <= stride / 2 + 0.5 + QUARTER_SHIFT
