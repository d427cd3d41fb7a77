import cv2
import numpy as np
import pytest

from animalpose.datasets.geometry import (
    apply_affine,
    box_from_points,
    crop_matrix,
    flip_keypoints,
    invert_affine,
    legacy_center_scale,
    legacy_transform,
)
from animalpose.datasets.keypoints import ANIMAL18


def test_crop_maps_box_edges_to_output_edges():
    m = crop_matrix((100.0, 50.0), 64.0, (256, 256))
    # Source square [68, 132] (edges) -> output edges [-0.5, 255.5].
    out = apply_affine(np.array([[68.0, 18.0], [132.0, 82.0], [100.0, 50.0]]), m)
    np.testing.assert_allclose(out, [[-0.5, -0.5], [255.5, 255.5], [127.5, 127.5]], atol=1e-9)


def test_rotation_turns_content_counter_clockwise():
    m = crop_matrix((0.0, 0.0), 10.0, (11, 11), rotation=90)
    # A point right of the centre ends above it (smaller y) in the crop.
    p = apply_affine(np.array([[2.0, 0.0]]), m)[0]
    np.testing.assert_allclose(p, [5.0 + 0.0, 5.0 - 2.2], atol=1e-9)


def test_inverse_round_trip_and_flip():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 300, (10, 2))
    m = crop_matrix((150, 120), 90, (64, 48), rotation=33, flip=True)
    back = apply_affine(apply_affine(pts, m), invert_affine(m))
    np.testing.assert_allclose(back, pts, atol=1e-9)
    m_noflip = crop_matrix((150, 120), 90, (64, 48), rotation=33)
    np.testing.assert_allclose(
        apply_affine(pts, m)[:, 0], 63 - apply_affine(pts, m_noflip)[:, 0], atol=1e-9
    )


def test_warp_moves_pixels_with_keypoints():
    img = np.zeros((120, 160), np.float32)
    src = np.array([[40.0, 30.0], [120.0, 90.0], [77.0, 61.0]])
    for x, y in src.astype(int):
        img[y, x] = 1.0
    m = crop_matrix((80, 60), 100, (200, 200), rotation=20)
    out = cv2.warpAffine(img, m, (200, 200), flags=cv2.INTER_LINEAR)
    dst = apply_affine(src, m)
    for x, y in dst:
        patch = out[int(round(y)) - 3 : int(round(y)) + 4, int(round(x)) - 3 : int(round(x)) + 4]
        ys, xs = np.mgrid[-3:4, -3:4]
        cx = (patch * xs).sum() / patch.sum() + round(x)
        cy = (patch * ys).sum() / patch.sum() + round(y)
        assert abs(cx - x) < 0.15 and abs(cy - y) < 0.15


def test_flip_keypoints_swaps_channels():
    kp = np.zeros((18, 3))
    kp[0] = [10, 5, 1]  # left eye
    out = flip_keypoints(kp, 100, ANIMAL18.flip_index)
    np.testing.assert_allclose(out[1], [89, 5, 1])
    assert out[0, 2] == 0


def test_box_from_points_clips_to_frame():
    box = box_from_points(np.array([[-5, 10], [700, 300]]), frame_size=(640, 480))
    np.testing.assert_allclose(box, [0, 10, 639, 300])
    with pytest.raises(ValueError):
        box_from_points(np.zeros((0, 2)))


def test_legacy_transform_known_values():
    # The reference: 200-px scale units, 1-based points, astype(int) + 1.
    center, scale = legacy_center_scale(np.array([100, 100, 300, 200]), 1.25)
    np.testing.assert_allclose(center, [200, 150])
    assert scale == pytest.approx(1.25)
    # Crop side 250 px -> 64 px; the centre maps to the middle (32 + 1 after the +1).
    np.testing.assert_array_equal(legacy_transform([201, 151], center, scale, (64, 64)), [33, 33])
    # One crop side to the right and up by half a side: x = 64 + 32 -> outside (97).
    np.testing.assert_array_equal(legacy_transform([451, 151], center, scale, (64, 64)), [97, 33])
    back = legacy_transform([33, 33], center, scale, (64, 64), invert=True)
    assert abs(back[0] - 201) <= 4 and abs(back[1] - 151) <= 4
