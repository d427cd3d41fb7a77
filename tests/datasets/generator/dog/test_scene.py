"""Pure NumPy parts of the 3-D dog: camera model, framing, visibility, gait, shape, sampling."""

from __future__ import annotations

import math

import numpy as np
import pytest

from animalpose.datasets.generator.dog import scene as scene


def camera_looking_along_x(width: int = 200, height: int = 100) -> scene.PinholeCamera:
    # At the origin, looking along +x with +z up; the frustum is 0.1 high at distance 0.1.
    return scene.PinholeCamera.from_frustum(
        position=np.zeros(3),
        forward=np.array([1.0, 0, 0]),
        up=np.array([0, 0, 1.0]),
        near=0.1,
        bottom=-0.05,
        top=0.05,
        center=0.0,
        width=width,
        height=height,
    )


def test_projection_follows_the_pixel_centre_convention():
    cam = camera_looking_along_x()
    assert cam.focal == pytest.approx(100.0)  # near * height / (top - bottom)
    points = np.array(
        [
            [10.0, 0.0, 0.0],  # on the axis: the frame centre
            [1.0, 0.0, 0.5],  # top frustum edge: the top edge of row 0
            [1.0, -1.0, 0.0],  # right edge (half-width 0.5 * w / h at unit distance; right = -y)
            [2.0, 0.5, -0.25],  # left of centre and below
        ]
    )
    xy, depth = cam.project(points)
    np.testing.assert_allclose(xy[0], [99.5, 49.5])
    np.testing.assert_allclose(xy[1], [99.5, -0.5])
    np.testing.assert_allclose(xy[2], [199.5, 49.5])
    np.testing.assert_allclose(xy[3], [99.5 - 25.0, 49.5 + 12.5])
    np.testing.assert_allclose(depth, [10.0, 1.0, 1.0, 2.0])


def test_free_camera_frame_is_orthonormal_and_looks_down_for_negative_elevation():
    forward, up = scene.free_camera_frame(30.0, -25.0)
    assert np.linalg.norm(forward) == pytest.approx(1.0)
    assert np.linalg.norm(up) == pytest.approx(1.0)
    assert forward @ up == pytest.approx(0.0, abs=1e-12)
    assert forward[2] == pytest.approx(-math.sin(math.radians(25.0)))
    assert math.degrees(math.atan2(forward[1], forward[0])) == pytest.approx(30.0)


def pinhole_for(lookat, distance, azimuth, elevation, fovy, width, height):
    forward, up = scene.free_camera_frame(azimuth, elevation)
    top = math.tan(math.radians(fovy) / 2.0)
    return scene.PinholeCamera.from_frustum(
        position=lookat - distance * forward,
        forward=forward,
        up=up,
        near=1.0,
        bottom=-top,
        top=top,
        center=0.0,
        width=width,
        height=height,
    )


@pytest.mark.parametrize("azimuth,elevation_down", [(0.0, 10.0), (75.0, 35.0), (200.0, -5.0)])
def test_fit_camera_shows_the_points_at_the_requested_fill(azimuth, elevation_down):
    rng = np.random.default_rng(0)
    points = rng.normal(size=(400, 3)) * [0.5, 0.15, 0.25] + [0.0, 0.0, 0.4]
    view = scene.CameraView(azimuth, elevation_down, 40.0, 0.7, (0.0, 0.0))
    lookat, distance, elevation = scene.fit_camera(
        view=view, points=points, aspect=4 / 3, ground_z=-10.0
    )
    assert elevation == pytest.approx(-elevation_down)
    cam = pinhole_for(lookat, distance, azimuth, elevation, 40.0, 160, 120)
    xy, depth = cam.project(points)
    assert (depth > 0).all()
    reach = np.maximum(np.abs(xy[:, 0] - cam.cx) / 80.0, np.abs(xy[:, 1] - cam.cy) / 60.0)
    assert reach.max() == pytest.approx(0.7, abs=1e-6)  # the tightest point touches the fill


def test_fit_camera_shift_moves_the_points_and_keeps_the_camera_above_ground():
    rng = np.random.default_rng(1)
    points = rng.uniform(-0.3, 0.3, size=(200, 3)) + [0.0, 0.0, 0.4]
    centred = scene.CameraView(90.0, 5.0, 40.0, 0.5, (0.0, 0.0))
    shifted = scene.CameraView(90.0, 5.0, 40.0, 0.5, (0.4, 0.0))
    centre = 0.5 * (points.min(0) + points.max(0))
    xs = []
    for view in (centred, shifted):
        lookat, distance, elevation = scene.fit_camera(
            view=view, points=points, aspect=1.0, ground_z=-10.0
        )
        xy, _ = pinhole_for(lookat, distance, 90.0, elevation, 40.0, 100, 100).project(centre[None])
        xs.append(xy[0, 0])
    assert xs[0] == pytest.approx(49.5)
    assert xs[1] - xs[0] == pytest.approx(0.4 * 50.0)  # the box centre moves 0.4 half-frames
    low = scene.CameraView(0.0, -10.0, 40.0, 0.5, (0.0, 0.0))
    lookat, distance, elevation = scene.fit_camera(
        view=low, points=points, aspect=1.0, ground_z=0.0
    )
    forward, _ = scene.free_camera_frame(0.0, elevation)
    assert (lookat - distance * forward)[2] >= scene.MIN_CAMERA_HEIGHT_M


def test_visibility_uses_depth_tolerance_and_frame_bounds():
    depth_map = np.full((10, 12), 5.0)
    xy = np.array([[3.0, 4.0], [3.0, 4.0], [3.0, 4.0], [12.6, 4.0], [-0.4, 9.4], [5.0, 5.0]])
    depth = np.array([5.3, 6.0, 5.45, 5.0, 5.0, -1.0])
    tolerance = np.full(6, 0.5)
    vis = scene.visibility(xy=xy, depth=depth, depth_map=depth_map, tolerance=tolerance)
    # in front / hidden 1 m behind the surface / within tolerance / right of the frame /
    # inside the corner pixel / behind the camera
    np.testing.assert_array_equal(vis, [1, 0, 1, 0, 1, 0])


def test_farthest_point_subsample_is_deterministic_and_spans_the_cloud():
    rng = np.random.default_rng(2)
    points = rng.normal(size=(3000, 3)) * [1.0, 0.3, 0.5]
    a = scene.farthest_point_subsample(points, 300)
    np.testing.assert_array_equal(a, scene.farthest_point_subsample(points, 300))
    assert len(np.unique(a)) == 300 and (np.diff(a) > 0).all()
    assert np.argmax(points[:, 0]) in a
    full, sub = np.ptp(points, axis=0), np.ptp(points[a], axis=0)
    assert (sub >= 0.95 * full).all()


def test_trot_moves_diagonal_legs_together_and_lateral_legs_in_antiphase():
    names = tuple(
        j for _, (swing, flex) in scene.LEG_JOINTS.items() for j in (swing, *[n for n, _ in flex])
    )
    joints = scene.JointTable(names, np.full(len(names), -3.0), np.full(len(names), 3.0))
    spec = scene.GAITS["trot"]
    for phase in np.linspace(0, 2 * math.pi, 7):
        a = scene.gait_angles(joints, offsets=spec.offsets, phase=phase, amplitude=0.4, lift=1.0)
        swing = {leg: a[joints.index(j)] for leg, (j, _) in scene.LEG_JOINTS.items()}
        assert swing["LF"] == pytest.approx(swing["RH"])
        assert swing["LF"] == pytest.approx(-swing["RF"], abs=1e-12)
        # Distal joints flex (negative) only while the leg swings forward.
        for leg, (_, flexors) in scene.LEG_JOINTS.items():
            phi = phase + 2 * math.pi * spec.offsets[leg]
            for joint, _ in flexors:
                value = a[joints.index(joint)]
                assert value <= 0.0
                if math.cos(phi) <= 0:
                    assert value == 0.0


def toy_joints() -> scene.JointTable:
    names = tuple(
        j for _, (swing, flex) in scene.LEG_JOINTS.items() for j in (swing, *[n for n, _ in flex])
    )
    names += (
        "L_1_extend",
        "L_1_bend",
        "Ca_1_extend",
        "Ca_2_bend",
        "C_7_extend",
        "C_7_bend",
        "C_1_extend",
        "C_1_bend",
        "atlas",
        "mandible",
    )
    return scene.JointTable(names, np.full(len(names), -0.3), np.full(len(names), 0.2))


def test_sampled_poses_and_shot_angles_stay_inside_the_joint_ranges():
    joints = toy_joints()
    for seed in range(5):
        pose = scene.sample_pose(joints, np.random.default_rng(seed))
        assert (pose >= joints.lower).all() and (pose <= joints.upper).all()
        motion = scene.sample_motion(joints, np.random.default_rng(seed))
        for t in (0.0, 0.4, 1.3):
            a = motion.angles(t)
            assert (a >= joints.lower).all() and (a <= joints.upper).all()
    np.testing.assert_array_equal(
        scene.sample_pose(joints, np.random.default_rng(7)),
        scene.sample_pose(joints, np.random.default_rng(7)),
    )


def test_shot_root_follows_a_circle_of_radius_speed_over_turn_rate():
    motion = scene.sample_motion(toy_joints(), np.random.default_rng(0))
    motion = scene.ShotMotion(
        **{**motion.__dict__, "speed_mps": 1.2, "turn_rate": 0.5, "heading0": 0.3}
    )
    xy0, _ = motion.root(0.0)
    np.testing.assert_allclose(xy0, [0.0, 0.0])
    centre = np.array([-math.sin(0.3), math.cos(0.3)]) * (1.2 / 0.5)  # left of the heading
    for t in (0.5, 1.0, 2.0):
        xy, h = motion.root(t)
        assert np.linalg.norm(xy - centre) == pytest.approx(1.2 / 0.5)
        assert h == pytest.approx(0.3 + 0.5 * t)
    straight = scene.ShotMotion(**{**motion.__dict__, "turn_rate": 0.0})
    expected = 2.4 * np.array([math.cos(0.3), math.sin(0.3)])
    np.testing.assert_allclose(straight.root(2.0)[0], expected)


def test_level_pitch_tilts_the_nose_down_when_the_front_paws_are_higher():
    hind = np.array([[-0.5, 0.0, 0.00]])
    front = np.array([[0.2, 0.0, 0.07], [0.2, 0.1, 0.10]])
    pitch = scene.level_pitch(front=front, hind=hind, heading=0.0, limit_deg=30.0)
    assert pitch == pytest.approx(math.asin(0.07 / 0.7))
    # Same scene facing -x: the run is measured along the heading.
    flipped = scene.level_pitch(
        front=front * [-1, 1, 1], hind=hind * [-1, 1, 1], heading=math.pi, limit_deg=30.0
    )
    assert flipped == pytest.approx(pitch)
    assert scene.level_pitch(
        front=front * [1, 1, 40], hind=hind, heading=0.0, limit_deg=20.0
    ) == pytest.approx(math.radians(20.0))


def test_girth_scales_distance_from_the_bone_axis_only():
    rng = np.random.default_rng(3)
    verts = rng.normal(size=(50, 3)) * [0.3, 0.05, 0.05]
    n = len(verts)
    girth = scene.GirthModel.build(
        vertices=verts,
        pair_vertex=np.arange(n),
        pair_bone=np.zeros(n, int),
        pair_weight=np.ones(n),
        bone_pos=np.zeros((1, 3)),
        bone_axis=np.array([[1.0, 0, 0]]),
        bone_group=["trunk"],
    )
    np.testing.assert_allclose(girth.apply({"trunk": 1.0}), verts)
    fat = girth.apply({"trunk": 1.5, "tail": 3.0})
    np.testing.assert_allclose(fat[:, 0], verts[:, 0])
    np.testing.assert_allclose(fat[:, 1:], 1.5 * verts[:, 1:])


def test_scaled_body_pos_scales_only_the_named_chains():
    names = ["world", "torso"] + [n for chain in scene.SHAPE_CHAINS.values() for n in chain]
    pos = np.arange(3 * len(names), dtype=float).reshape(-1, 3)
    out = scene.scaled_body_pos(pos, names, {"front_leg": 1.2, "neck": 0.5})
    for i, name in enumerate(names):
        factor = (
            1.2
            if name in scene.SHAPE_CHAINS["front_leg"]
            else 0.5
            if name in scene.SHAPE_CHAINS["neck"]
            else 1.0
        )
        np.testing.assert_allclose(out[i], factor * pos[i])
    with pytest.raises(ValueError):
        scene.scaled_body_pos(pos[:3], names[:3], {"tail": 1.1})


def test_ground_depth_matches_the_plane_under_a_tilted_camera():
    cam = pinhole_for(np.array([0.0, 0, 0.3]), 2.0, 30.0, -20.0, 40.0, 40, 30)
    depth = scene.ground_depth(cam, ground_z=0.0, centre=np.array([1.0, -2.0]), half_size=50.0)
    # Re-project the ground points: they must lie on z = 0 and project to their own pixels.
    rows, cols = np.nonzero(np.isfinite(depth))
    assert len(rows) > 100
    rays = np.stack(
        [(cols - cam.cx) / cam.focal, -(rows - cam.cy) / cam.focal, np.ones(len(rows))], 1
    )
    points = cam.position + (rays * depth[rows, cols, None]) @ cam.rotation
    np.testing.assert_allclose(points[:, 2], 0.0, atol=1e-9)
    xy, _ = cam.project(points)
    np.testing.assert_allclose(xy, np.stack([cols, rows], 1), atol=1e-6)
    assert not np.isfinite(depth[0]).any()  # the top row looks above the horizon


def test_ground_depth_is_infinite_off_the_square():
    cam = pinhole_for(np.array([0.0, 0, 0.3]), 2.0, 30.0, -30.0, 40.0, 40, 30)
    wide = scene.ground_depth(cam, ground_z=0.0, centre=np.zeros(2), half_size=50.0)
    small = scene.ground_depth(cam, ground_z=0.0, centre=np.array([0.0, 0.0]), half_size=0.3)
    moved = scene.ground_depth(cam, ground_z=0.0, centre=np.array([5.0, 5.0]), half_size=0.3)
    finite = np.isfinite(small)
    assert 0 < finite.sum() < np.isfinite(wide).sum()
    np.testing.assert_array_equal(small[finite], wide[finite])
    assert not np.isfinite(moved).any()  # that square is out of view


def test_keypoint_model_reads_bodies_geoms_chin_and_paw_centroids():
    from animalpose.datasets.keypoints import ANIMAL18

    names = ANIMAL18.keypoints
    bodies = sorted({e for k, e in scene.KEYPOINT_SOURCES.values() if k == "body"})
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
    model = scene.KeypointModel.build(
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
    np.testing.assert_allclose(
        tol, scene.VISIBILITY_RADIUS_SCALE * model.radius + scene.VISIBILITY_MARGIN_M
    )
    assert (model.tolerance(1.2) > tol).all()


def test_every_breed_makes_the_same_draws_inside_its_ranges():
    for seed in range(25):
        after = set()
        for name, breed in scene.BREEDS.items():
            rng = np.random.default_rng(seed)
            shape = scene.sample_shape(rng, name)
            after.add(float(rng.random()))  # the generator state after the draws
            leg = breed.leg
            for chain in ("front_leg", "hind_leg"):
                assert 0.96 * leg[0] <= shape.lengths[chain] <= 1.04 * leg[1]
            for chain in ("neck", "lumbar", "tail"):
                low, high = getattr(breed, chain)
                assert low <= shape.lengths[chain] <= high
            for group in ("trunk", "neck", "leg", "tail"):
                low, high = getattr(breed, f"{group}_girth")
                assert low <= shape.girths[group] <= high
        assert len(after) == 1, "breeds must consume the same draws (equal scenes otherwise)"


def test_mixed_shape_draws_are_the_documented_uniforms():
    """The default breed is the generator's original shape sampler: each factor is
    low + (high - low) * u for the next uniform u, in the documented order."""
    u = np.random.default_rng(11).random(10)
    shape = scene.sample_shape(np.random.default_rng(11))
    leg = 0.85 + 0.5 * u[0]
    expected = [
        leg * (0.96 + 0.08 * u[1]),
        leg * (0.96 + 0.08 * u[2]),
        0.8 + 0.5 * u[3],
        0.85 + 0.35 * u[4],
        0.6 + 0.7 * u[5],
        0.88 + 0.32 * u[6],
        0.9 + 0.3 * u[7],
        0.85 + 0.35 * u[8],
        0.8 + 1.0 * u[9],
    ]
    got = [*shape.lengths.values(), *shape.girths.values()]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_the_basset_lies_outside_the_mixed_ranges():
    mixed, basset = scene.BREEDS["mixed"], scene.BREEDS["basset"]
    assert basset.leg[1] * 1.04 < mixed.leg[0] * 0.96  # every basset has shorter legs
    assert basset.lumbar[0] > mixed.lumbar[1] and basset.trunk_girth[0] > mixed.trunk_girth[1]
    with pytest.raises(ValueError, match="unknown breed 'corgi'"):
        scene.sample_shape(np.random.default_rng(0), "corgi")
    with pytest.raises(ValueError, match="Breed.leg"):
        scene.Breed(
            leg=(1.2, 0.9),
            neck=(1, 1),
            lumbar=(1, 1),
            tail=(1, 1),
            trunk_girth=(1, 1),
            neck_girth=(1, 1),
            leg_girth=(1, 1),
            tail_girth=(1, 1),
        )
