"""Keypoint sources, visibility against the depth buffer, the vertex subsample."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets.generator.dog.keypoints import (
    KEYPOINT_SOURCES,
    VISIBILITY_MARGIN_M,
    VISIBILITY_RADIUS_SCALE,
    KeypointModel,
    farthest_point_subsample,
    visibility,
)


def test_visibility_uses_depth_tolerance_and_frame_bounds():
    depth_map = np.full((10, 12), 5.0)
    xy = np.array([[3.0, 4.0], [3.0, 4.0], [3.0, 4.0], [12.6, 4.0], [-0.4, 9.4], [5.0, 5.0]])
    depth = np.array([5.3, 6.0, 5.45, 5.0, 5.0, -1.0])
    tolerance = np.full(6, 0.5)
    vis = visibility(xy=xy, depth=depth, depth_map=depth_map, tolerance=tolerance)
    # in front / hidden 1 m behind the surface / within tolerance / right of the frame /
    # inside the corner pixel / behind the camera
    np.testing.assert_array_equal(vis, [1, 0, 1, 0, 1, 0])


def test_farthest_point_subsample_is_deterministic_and_spans_the_cloud():
    rng = np.random.default_rng(2)
    points = rng.normal(size=(3000, 3)) * [1.0, 0.3, 0.5]
    a = farthest_point_subsample(points, 300)
    np.testing.assert_array_equal(a, farthest_point_subsample(points, 300))
    assert len(np.unique(a)) == 300 and (np.diff(a) > 0).all()
    assert np.argmax(points[:, 0]) in a
    full, sub = np.ptp(points, axis=0), np.ptp(points[a], axis=0)
    assert (sub >= 0.95 * full).all()


def test_keypoint_model_reads_bodies_geoms_chin_and_paw_centroids():
    from animalpose.datasets.keypoints import ANIMAL18

    names = ANIMAL18.keypoints
    bodies = sorted({e for k, e in KEYPOINT_SOURCES.values() if k == "body"})
    geoms = ["floor", "pupil_L", "pupil_R"]
    bones = ["jaw", "finger_L", "finger_R", "toe_L", "toe_R", "torso"]
    rng = np.random.default_rng(4)
    # Jaw: midline vertices at increasing (x - z), the best one at index 2; an off-midline vertex
    # further along that the rule must ignore.
    jaw = np.array(
        [[0.40, 0.0, 0.60], [0.41, 0.001, 0.60], [0.42, -0.002, 0.59], [0.45, 0.02, 0.50]]
    )
    paws = [
        rng.normal(size=(5, 3)) * 0.01 + c
        for c in ([0.2, 0.06, 0.01], [0.2, -0.06, 0.01], [-0.5, 0.08, 0.01], [-0.5, -0.08, 0.01])
    ]
    # A body cross-section around the hip (x = -0.3, z = 0.52) 0.06 wide on each side.
    flank = np.array([[-0.3, 0.06, 0.52], [-0.3, -0.06, 0.52], [-0.3, 0.0, 0.54]])
    vertices = np.concatenate([jaw, *paws, flank])
    weights = np.zeros((len(vertices), len(bones)))
    weights[:4, 0] = 1.0
    for i in range(4):
        weights[4 + 5 * i : 9 + 5 * i, 1 + i] = 1.0
    weights[24:, 5] = 1.0
    xpos = rng.normal(size=(len(bodies), 3))
    xpos[bodies.index("Ca_1")] = (-0.3, 0.0, 0.52)
    geom_xpos = rng.normal(size=(len(geoms), 3))
    model = KeypointModel.build(
        keypoint_names=names,
        body_names=bodies,
        geom_names=geoms,
        bone_names=bones,
        bind_vertices=vertices,
        bone_weights=weights,
        bind_xpos=xpos,
        bind_geom_xpos=geom_xpos,
    )
    points = model.locate(xpos, geom_xpos, vertices)
    index = {n: i for i, n in enumerate(names)}
    np.testing.assert_allclose(points[index["chin"]], jaw[2])
    np.testing.assert_allclose(points[index["left_eye"]], geom_xpos[1])
    np.testing.assert_allclose(points[index["right_back_hoof"]], paws[3].mean(0))
    np.testing.assert_allclose(points[index["left_front_knee"]], xpos[bodies.index("hand_L")])
    # The hip sits on the midline: its radius is the flank's half-width, not the 2 cm to the back.
    assert model.radius[index["hip"]] == pytest.approx(0.06)
    tol = model.tolerance(1.0)
    np.testing.assert_allclose(tol, VISIBILITY_RADIUS_SCALE * model.radius + VISIBILITY_MARGIN_M)
    assert (model.tolerance(1.2) > tol).all()
