"""The MuJoCo dog renderer (skipped with the reason when no headless OpenGL is available)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from animalpose.datasets.generator.dog.camera import CameraView
from animalpose.datasets.generator.renderer import NUM_KEYPOINTS, NUM_VERTEX_ROWS, STYLES
from animalpose.datasets.keypoints import ANIMAL18

#: Keypoints on one side of the body that the trunk hides in a side view from the other side.
SIDE_POINTS = ("shoulder", "front_elbow", "back_elbow", "front_knee", "back_knee")


def on_mask(mask: np.ndarray, xy: np.ndarray, grow: int = 1) -> np.ndarray:
    """(N,) whether each (x, y) pixel is inside ``mask`` grown by ``grow`` pixels."""
    grown = cv2.dilate(mask.astype(np.uint8), np.ones((2 * grow + 1,) * 2, np.uint8)).astype(bool)
    px = np.rint(xy).astype(int)
    return grown[px[:, 1], px[:, 0]]


def in_frame(xy: np.ndarray, w: int, h: int) -> np.ndarray:
    return (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)


@pytest.mark.parametrize("style", STYLES)
def test_stills_have_the_contract_shapes(dog, style):
    frame = dog.render_still(np.random.default_rng(1), style)
    assert frame.image.shape == (dog.height, dog.width, 3) and frame.image.dtype == np.uint8
    assert frame.keypoints.shape == (NUM_KEYPOINTS, 3) and frame.keypoints.dtype == np.float64
    assert frame.vertices.shape == (NUM_VERTEX_ROWS - NUM_KEYPOINTS, 2)
    assert set(np.unique(frame.keypoints[:, 2])) <= {0.0, 1.0}
    assert frame.keypoints[:, 2].sum() >= 6  # a dog in view shows a good part of its keypoints
    assert frame.image.std() > 5  # not a blank frame


def test_same_seed_same_frame_and_other_seeds_differ(dog):
    a = dog.render_still(np.random.default_rng(7), "target")
    dog.render_still(np.random.default_rng(8), "source")  # state left behind must not leak
    b = dog.render_still(np.random.default_rng(7), "target")
    np.testing.assert_array_equal(a.image, b.image)
    np.testing.assert_array_equal(a.keypoints, b.keypoints)
    np.testing.assert_array_equal(a.vertices, b.vertices)
    c = dog.render_still(np.random.default_rng(9), "target")
    assert not np.array_equal(a.keypoints, c.keypoints)


def test_mirrored_camera_swaps_left_and_right(dog):
    """The standing dog is left/right symmetric: a camera mirrored about its sagittal plane
    (azimuth -a instead of a) sees the mirror image, so left keypoints land where the right ones
    were, mirrored, with the same visibility."""
    for azimuth in (60.0, 150.0):
        rng = np.random.default_rng(0)
        a = dog.render_view(
            rng, "source", view=CameraView(azimuth, 15.0, 40.0, 0.8, (0, 0)), effects=False
        )
        b = dog.render_view(
            rng, "source", view=CameraView(-azimuth, 15.0, 40.0, 0.8, (0, 0)), effects=False
        )
        mirrored = b.keypoints[ANIMAL18.flip_index].copy()
        mirrored[:, 0] = (dog.width - 1) - mirrored[:, 0]
        np.testing.assert_allclose(a.keypoints[:, :2], mirrored[:, :2], atol=1.0)
        np.testing.assert_array_equal(a.keypoints[:, 2], mirrored[:, 2])


def test_side_views_hide_the_far_side(dog):
    """Azimuth 90 looks along +y at the dog's right flank (the dog faces +x, its left is +y)."""
    seen = {}
    for azimuth, near in ((90.0, "right"), (-90.0, "left")):
        frame = dog.render_view(
            np.random.default_rng(0),
            "source",
            view=CameraView(azimuth, 5.0, 40.0, 0.8, (0, 0)),
            effects=False,
        )
        far = "left" if near == "right" else "right"
        vis = dict(zip(ANIMAL18.keypoints, frame.keypoints[:, 2]))
        for point in SIDE_POINTS:
            assert vis[f"{near}_{point}"] == 1.0, (azimuth, point)
            assert vis[f"{far}_{point}"] == 0.0, (azimuth, point)
        assert vis["hip"] == 1.0 and vis["chin"] == 1.0
        seen[near] = frame.keypoints[:, 2]
    assert not np.array_equal(seen["left"], seen["right"])
    # From behind (azimuth 0 looks along +x) the chin and both eyes are hidden, the hip is not.
    back = dog.render_view(
        np.random.default_rng(0),
        "source",
        view=CameraView(0.0, 5.0, 40.0, 0.8, (0, 0)),
        effects=False,
    )
    vis = dict(zip(ANIMAL18.keypoints, back.keypoints[:, 2]))
    assert vis["chin"] == vis["left_eye"] == vis["right_eye"] == 0.0 and vis["hip"] == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_projection_agrees_with_the_rendered_silhouette(dog, seed):
    """Projected skin vertices fall on the dog's pixels in the depth buffer, the dog's pixels are
    covered by projected vertices, and visible keypoints lie on the dog."""
    frame = dog.render_still(np.random.default_rng(seed), STYLES[seed % 2])
    geometry = dog.last_geometry
    assert geometry.dog.sum() > 50
    xy = frame.vertices[in_frame(frame.vertices, dog.width, dog.height)]
    assert on_mask(geometry.dog, xy).mean() > 0.995
    splat = np.zeros((dog.height, dog.width), np.uint8)
    px = np.rint(xy).astype(int)
    splat[px[:, 1], px[:, 0]] = 1
    covered = cv2.dilate(splat, np.ones((5, 5), np.uint8)).astype(bool)
    assert covered[geometry.dog].mean() > 0.99
    visible = frame.keypoints[:, 2] > 0
    assert on_mask(geometry.dog, frame.keypoints[visible, :2]).all()
    # The keypoints are the 3-D points the renderer projected.
    xy3, _ = geometry.camera.project(geometry.points)
    np.testing.assert_allclose(xy3, frame.keypoints[:, :2])


@pytest.mark.parametrize("style", STYLES)
def test_shots_move_smoothly(dog, style):
    frames = list(dog.render_shot(np.random.default_rng(11), style, 8))
    assert len(frames) == 8
    kp = np.stack([f.keypoints for f in frames])
    step = np.linalg.norm(np.diff(kp[:, :, :2], axis=0), axis=2).mean(axis=1)  # (7,) pixels
    travel = np.linalg.norm(kp[-1, :, :2] - kp[0, :, :2], axis=1).mean()
    assert step.max() < 0.04 * dog.width  # a few pixels per frame, no jumps
    assert travel > 2.0 * step.mean()  # consistent motion accumulates over the shot
    images = np.stack([f.image for f in frames]).astype(np.float32)
    consecutive = np.abs(np.diff(images, axis=0)).mean()
    assert consecutive < np.abs(images[-1] - images[0]).mean()
    assert consecutive > 0.0


def test_interleaving_a_shot_with_other_renders_is_an_error(dog):
    shot = dog.render_shot(np.random.default_rng(0), "source", 3)
    next(shot)
    dog.render_still(np.random.default_rng(1), "source")
    with pytest.raises(RuntimeError, match="shot"):
        next(shot)


def test_bad_arguments_are_rejected(dog):
    with pytest.raises(ValueError, match="unknown style"):
        dog.render_still(np.random.default_rng(0), "cartoon")
    with pytest.raises(ValueError, match="num_frames"):
        dog.render_shot(np.random.default_rng(0), "source", 0)
    with pytest.raises(ValueError, match="angles"):
        dog.render_view(
            np.random.default_rng(0),
            "source",
            angles=np.zeros(3),
            view=CameraView(0.0, 5.0, 40.0, 0.8, (0, 0)),
        )


def _leg_over_body(points: np.ndarray) -> float:
    """3-D length of the front legs (shoulder to hoof) over the shoulder-to-hip distance."""
    k = {n: points[i] for i, n in enumerate(ANIMAL18.keypoints)}
    legs = np.mean(
        [np.linalg.norm(k[f"{s}_shoulder"] - k[f"{s}_front_hoof"]) for s in ("left", "right")]
    )
    return legs / np.linalg.norm(0.5 * (k["left_shoulder"] + k["right_shoulder"]) - k["hip"])


def test_breed_and_cover_change_the_dog_and_the_image_not_the_scene(dog):
    """Equal seeds: a basset's legs are shorter relative to its body than the mixed dog's in the
    same pose; grass changes pixels but not a single keypoint label."""
    ratios = {}
    for breed in ("mixed", "basset"):
        ratios[breed] = []
        for seed in range(4):
            dog.render_still(np.random.default_rng(seed), "target", breed=breed)
            ratios[breed].append(_leg_over_body(dog.last_geometry.points))
    assert all(b < 0.7 * m for m, b in zip(ratios["mixed"], ratios["basset"])), ratios
    bare = dog.render_still(np.random.default_rng(9), "target", breed="basset")
    grass = dog.render_still(np.random.default_rng(9), "target", breed="basset", cover="grass")
    np.testing.assert_array_equal(bare.keypoints, grass.keypoints)
    np.testing.assert_array_equal(bare.vertices, grass.vertices)
    # Blades replace ground and body pixels: far more than camera noise changes (the noise
    # draws differ, as the grass is drawn from the same generator first).
    changed = np.abs(grass.image.astype(int) - bare.image.astype(int)).max(axis=2) > 60
    assert changed.mean() > 0.005, changed.mean()  # 1.8 % at seed 9
    with pytest.raises(ValueError, match="unknown ground cover"):
        dog.render_still(np.random.default_rng(0), "target", cover="snow")
    with pytest.raises(ValueError, match="unknown breed"):
        dog.render_shot(np.random.default_rng(0), "target", 2, breed="corgi")
