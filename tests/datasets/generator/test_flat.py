"""The fallback renderer honours the renderer interface: shapes, determinism, the two styles,
visibility rule, smooth shots."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from animalpose.datasets.generator.cartoon import CartoonAnimal, body_ellipse, walk
from animalpose.datasets.generator.dog.shape import BREEDS
from animalpose.datasets.generator.flat import FlatRenderer, flat_visibility
from animalpose.datasets.generator.renderer import NUM_KEYPOINTS, NUM_VERTEX_ROWS, RenderedFrame
from animalpose.datasets.keypoints import ANIMAL18

W, H = 128, 96
NAMES = list(ANIMAL18.keypoints)


@pytest.fixture(scope="module")
def renderer():
    r = FlatRenderer(width=W, height=H)
    yield r
    r.close()


def test_frames_have_the_interface_shapes(renderer):
    assert renderer.name == "dog" and (renderer.width, renderer.height) == (W, H)
    for style in ("source", "target"):
        frame = renderer.render_still(np.random.default_rng(0), style)
        assert isinstance(frame, RenderedFrame)
        assert frame.image.shape == (H, W, 3) and frame.image.dtype == np.uint8
        assert frame.keypoints.shape == (NUM_KEYPOINTS, 3)
        assert frame.vertices.shape == (NUM_VERTEX_ROWS - NUM_KEYPOINTS, 2) == (3281, 2)
        assert set(np.unique(frame.keypoints[:, 2])) <= {0.0, 1.0}
        # The vertices cover the animal: their box holds every keypoint (within a limb width).
        lo, hi = frame.vertices.min(axis=0), frame.vertices.max(axis=0)
        assert (frame.keypoints[:, :2] >= lo - 3).all() and (frame.keypoints[:, :2] <= hi + 3).all()


def test_equal_generators_give_equal_frames_and_others_differ(renderer):
    a = renderer.render_still(np.random.default_rng([1, 2]), "target")
    b = renderer.render_still(np.random.default_rng([1, 2]), "target")
    c = renderer.render_still(np.random.default_rng([1, 3]), "target")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.keypoints, b.keypoints)
    assert np.array_equal(a.vertices, b.vertices)
    assert not np.array_equal(a.image, c.image)


def _saturation(image):
    return cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[:, :, 1].astype(float).mean()


def _sharpness(image):
    return cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), cv2.CV_64F).var()


def test_the_two_styles_differ_visibly(renderer):
    """Source: random saturated colours and hard-edged textures; target: natural (unsaturated)
    colours, blurred. Every target image is less saturated than the source median."""
    stills = {
        s: [renderer.render_still(np.random.default_rng([5, i]), s).image for i in range(12)]
        for s in ("source", "target")
    }
    sat = {s: np.array([_saturation(im) for im in ims]) for s, ims in stills.items()}
    assert sat["target"].max() < np.median(sat["source"])
    assert np.median(sat["source"]) > np.median(sat["target"]) + 30
    sharp = {s: np.median([_sharpness(im) for im in ims]) for s, ims in stills.items()}
    assert sharp["target"] < sharp["source"]
    with pytest.raises(ValueError, match="unknown style 'cartoon'"):
        renderer.render_still(np.random.default_rng(0), "cartoon")


def test_visibility_rule_matches_an_independent_check():
    """In frame and not (far side inside the trunk ellipse), far eye hidden; recomputed here
    point by point with OpenCV's ellipse polygon."""
    checked = 0
    for seed in range(20):
        beast, [points] = walk(np.random.default_rng(seed), (W, H), 1)
        visible = flat_visibility(beast, points, (W, H))
        centre, (half, height), angle = body_ellipse(beast, points)
        polygon = (
            cv2.ellipse2Poly(
                (0, 0), (int(half * 64), int(height * 64)), round(angle), 0, 360, 1
            ).astype(np.float64)
            / 64
            + centre
        )
        far = "left_" if beast.near == "right" else "right_"
        for i, name in enumerate(NAMES):
            x, y = points[name]
            inside = -0.5 <= x < W - 0.5 and -0.5 <= y < H - 0.5
            depth = cv2.pointPolygonTest(polygon.astype(np.float32), (float(x), float(y)), True)
            if abs(depth) < 1.0:
                continue  # on the outline: the polygon approximation may disagree
            hidden = name.startswith(far) and (depth > 0 or name == f"{far}eye")
            assert visible[i] == float(inside and not hidden), (seed, name)
            checked += 1
        # The far shoulder sits on the trunk: always hidden; the near one always visible
        # (the animal is placed inside the frame).
        near = "left_" if far == "right_" else "right_"
        assert visible[NAMES.index(f"{far}shoulder")] == 0
        assert visible[NAMES.index(f"{near}shoulder")] == 1
    assert checked > 0.9 * 20 * len(NAMES)


def test_visibility_is_zero_outside_the_frame():
    beast, [points] = walk(np.random.default_rng(3), (W, H), 1)
    assert isinstance(beast, CartoonAnimal)
    shifted = {n: p + np.array([W, 0.0]) for n, p in points.items()}  # moved out to the right
    assert flat_visibility(beast, shifted, (W, H)).sum() == 0


def test_shots_move_smoothly_and_vertices_follow(renderer):
    frames = list(renderer.render_shot(np.random.default_rng(11), "target", 12))
    assert len(frames) == 12
    kp = np.stack([f.keypoints[:, :2] for f in frames])
    size = np.ptp(kp[0], axis=0).max()
    step = np.linalg.norm(np.diff(kp, axis=0), axis=2)
    assert step.max() < 0.25 * size and np.median(step) < 0.08 * size
    assert step.mean() > 0  # it does move
    vstep = np.linalg.norm(np.diff(np.stack([f.vertices for f in frames]), axis=0), axis=2)
    assert np.median(vstep) < 0.08 * size  # the same body points, not a fresh random cloud
    # The camera pans: the background moves between the first and last frame.
    assert not np.array_equal(frames[0].image[:8, :8], frames[-1].image[:8, :8])


def test_flat_renderer_scales_the_legs_by_the_breed():
    """The cartoon's leg chains scale by basset's mean leg factor over mixed's: in every frame
    each shoulder-to-hoof vector is that factor times the mixed dog's of the same seed."""
    factor = BREEDS["basset"].mean_leg() / BREEDS["mixed"].mean_leg()
    names = list(ANIMAL18.keypoints)
    r = FlatRenderer(width=160, height=120)
    for seed in range(3):
        frames = {
            b: list(r.render_shot(np.random.default_rng(seed), "source", 3, breed=b))
            for b in ("mixed", "basset")
        }
        for mixed, basset in zip(frames["mixed"], frames["basset"]):
            for side in ("left", "right"):
                s, h = names.index(f"{side}_shoulder"), names.index(f"{side}_front_hoof")
                np.testing.assert_allclose(
                    basset.keypoints[h, :2] - basset.keypoints[s, :2],
                    factor * (mixed.keypoints[h, :2] - mixed.keypoints[s, :2]),
                    atol=1e-6,
                )
    with pytest.raises(ValueError, match="no ground cover"):
        r.render_still(np.random.default_rng(0), "target", cover="grass")
