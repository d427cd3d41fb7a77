"""The dog's part segmentation: bone -> part rules, the z-buffer rasteriser on hand-built
triangles, the reconciliation with the GL render, and (GL, skipped without it) stills whose labels
sit where their keypoints are, left and right by the dog's own sides, images unchanged."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets.generator.dog.camera import CameraView
from animalpose.datasets.generator.dog.partseg import (
    bone_part,
    face_parts,
    rasterise,
    reconcile,
    vertex_parts,
)
from animalpose.datasets.generator.dog.render import DogRenderer
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.parts import IGNORE, PART_CLASSES, check_partseg

ID = {name: i for i, name in enumerate(PART_CLASSES)}

#: Keypoint -> the part its pixel must show when visible (the distal leg joints and paws lie
#: well inside their leg's silhouette; the eyes sit on the head, their eyeball is ``eye``).
EXPECTED = {
    **{f"{s}_{e}_{j}": f"{s}_{e}" for s in ("left", "right") for e in ("front", "back")
       for j in ("hoof", "knee")},
    "left_eye": "head",
    "right_eye": "head",
}  # fmt: skip


# --- rules and rasteriser (no GL) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("bone", "part"),
    [
        ("skull", "head"),
        ("jaw", "head"),
        ("C_3", "torso"),
        ("L_7", "torso"),
        ("pelvis", "torso"),
        ("scapula_L", "torso"),
        ("Ca_12", "tail"),
        ("upper_arm_L", "left_front"),
        ("finger_R", "right_front"),
        ("upper_leg_L", "left_back"),
        ("toe_R", "right_back"),
    ],
)
def test_bones_map_to_the_reference_classes(bone, part):
    assert bone_part(bone) == ID[part]


def test_unknown_bones_are_refused():
    with pytest.raises(ValueError, match="'ear_L' has no body part"):
        bone_part("ear_L")


def test_vertices_take_their_strongest_bone_and_faces_the_majority():
    weights = np.array([[0.6, 0.4, 0.0], [0.2, 0.7, 0.1], [0.0, 0.45, 0.55], [0.3, 0.3, 0.4]])
    parts = vertex_parts(weights, ["skull", "torso", "Ca_1"])
    assert parts.tolist() == [ID["head"], ID["torso"], ID["tail"], ID["tail"]]
    faces = np.array([[0, 1, 1], [1, 0, 1], [2, 3, 0], [0, 1, 2]])
    assert face_parts(faces, np.array([1, 4, 9, 9], np.uint8)).tolist() == [4, 4, 9, IGNORE]


def square(x0, y0, x1, y1, z):
    """Two front-facing triangles (counter-clockwise on screen) covering a rectangle."""
    xy = np.array([[x0, y0], [x0, y1], [x1, y1], [x1, y0]], float)
    return xy, np.full(4, float(z)), np.array([[0, 1, 2], [0, 2, 3]])


def test_rasterise_covers_pixel_centres_and_keeps_the_nearest_surface():
    size = (12, 10)
    xy_a, z_a, f_a = square(1.5, 1.5, 6.5, 5.5, 4.0)  # pixel centres 2..6 x 2..5
    xy_b, z_b, f_b = square(4.5, 3.5, 9.5, 8.5, 2.0)  # nearer, centres 5..9 x 4..8
    xy = np.concatenate([xy_a, xy_b])
    z = np.concatenate([z_a, z_b])
    faces = np.concatenate([f_a, f_b + 4])
    labels, depth = rasterise(xy, z, faces, np.array([1, 1, 4, 4], np.uint8), size)
    want = np.zeros((10, 12), np.uint8)
    want[2:6, 2:7] = 1
    want[4:9, 5:10] = 4  # drawn over the far square whatever the face order
    assert np.array_equal(labels, want)
    assert np.all(depth[want == 4] == 2.0) and np.all(depth[want == 1] == 4.0)
    assert np.all(np.isinf(depth[want == 0]))
    # The order of the faces does not matter; back faces (reversed winding) are culled.
    again, _ = rasterise(xy, z, faces[::-1], np.array([4, 4, 1, 1], np.uint8), size)
    assert np.array_equal(again, want)
    culled, culled_depth = rasterise(xy, z, faces[:, ::-1], np.ones(4, np.uint8), size)
    assert not culled.any() and np.isinf(culled_depth).all()


def test_rasterise_interpolates_depth_perspective_correctly():
    """A plane tilted in depth: 1/z is affine in the image, so at the pixel halfway between two
    columns the depth is the harmonic (not the arithmetic) mean of theirs."""
    xy = np.array([[0.0, 0.0], [0.0, 4.0], [8.0, 4.0], [8.0, 0.0]])
    z = np.array([1.0, 1.0, 3.0, 3.0])
    faces = np.array([[0, 1, 2], [0, 2, 3]])
    _, depth = rasterise(xy, z, faces, np.ones(2, np.uint8), (9, 5))
    for col in range(9):
        t = col / 8.0
        want = 1.0 / ((1 - t) / 1.0 + t / 3.0)
        np.testing.assert_allclose(depth[2, col], want, rtol=1e-6)


def test_rasterise_clips_to_the_frame_and_skips_points_behind_the_camera():
    xy, z, faces = square(-5.5, -5.5, 2.5, 2.5, 1.0)
    labels, _ = rasterise(xy, z, faces, np.full(2, 9, np.uint8), (6, 4))
    want = np.zeros((4, 6), np.uint8)
    want[:3, :3] = 9
    assert np.array_equal(labels, want)
    behind, _ = rasterise(xy, -z, faces, np.full(2, 9, np.uint8), (6, 4))
    assert not behind.any()


def test_reconcile_labels_agreeing_dog_pixels_ignores_the_rest():
    raster = np.array([[4, 4, 1, 0]], np.uint8)
    raster_depth = np.array([[2.0, 2.5, 3.0, np.inf]], np.float32)
    depth = np.array([[2.0, 2.0, 3.0001, 3.0]])
    dog = np.array([[True, True, True, True]])
    out = reconcile(raster, raster_depth, depth=depth, dog=dog)
    assert out.tolist() == [[4, IGNORE, 1, IGNORE]]  # 0.5 m off and no raster: unknown
    out = reconcile(raster, raster_depth, depth=depth, dog=np.array([[True, False, True, False]]))
    assert out.tolist() == [[4, 0, 1, 0]]
    covered = np.array([[False, False, True, False]])
    out = reconcile(raster, raster_depth, depth=depth, dog=dog, covered=covered)
    assert out.tolist() == [[4, IGNORE, 0, IGNORE]]  # grass in front of the dog: background


# --- the GL dog ---------------------------------------------------------------------------------


def test_partseg_changes_nothing_rendered_and_draws_no_random_numbers(dog, monkeypatch):
    """The same stills rendered with the part segmentation switched off: equal images,
    keypoints and vertices, and the generator left in the same state."""
    with_parts = []
    states = []
    for seed, style, cover in ((3, "source", "none"), (4, "target", "grass")):
        rng = np.random.default_rng(seed)
        with_parts.append(dog.render_still(rng, style, cover=cover))
        states.append(rng.bit_generator.state)
    original = DogRenderer._frame

    def without_parts(self, rng, **kwargs):
        kwargs["partseg"] = False
        return original(self, rng, **kwargs)

    monkeypatch.setattr(DogRenderer, "_frame", without_parts)
    for (seed, style, cover), a, state in zip(
        ((3, "source", "none"), (4, "target", "grass")), with_parts, states
    ):
        rng = np.random.default_rng(seed)
        b = dog.render_still(rng, style, cover=cover)
        assert b.partseg is None and a.partseg is not None
        assert np.array_equal(a.image, b.image)
        assert np.array_equal(a.keypoints, b.keypoints)
        assert np.array_equal(a.vertices, b.vertices)
        assert rng.bit_generator.state == state


def test_stills_label_the_dog_mask_and_only_it(dog):
    for seed in range(3):
        frame = dog.render_still(np.random.default_rng(seed), "source")
        labels, mask = frame.partseg, dog.last_geometry.dog
        check_partseg(labels, source="still", size=(dog.width, dog.height))
        assert np.array_equal(labels > 0, mask)  # cover "none": every dog pixel, nothing else
        known = (labels > 0) & (labels != IGNORE)
        assert known.sum() >= 0.98 * mask.sum()  # the raster agrees with GL almost everywhere
        assert ID["torso"] in labels and ID["head"] in labels


def test_visible_keypoints_land_on_their_part(dog):
    checked = exact = 0
    for seed in range(10):
        frame = dog.render_still(np.random.default_rng(seed), "source")
        for (x, y, visible), name in zip(frame.keypoints, ANIMAL18.keypoints):
            col, row = round(x), round(y)
            if not visible or not (0 <= col < dog.width and 0 <= row < dog.height):
                continue
            label = int(frame.partseg[row, col])
            if name == "chin":  # the jaw's front-bottom corner: on the head's outline
                window = frame.partseg[max(row - 1, 0) : row + 2, max(col - 1, 0) : col + 2]
                assert ID["head"] in window, f"seed {seed}: chin not on the head"
                continue
            if name not in EXPECTED:
                continue
            allowed = {ID[EXPECTED[name]], IGNORE} | ({ID["eye"]} if "eye" in name else set())
            assert label in allowed, f"seed {seed}: {name} on {label}"
            checked += 1
            exact += label != IGNORE
    assert checked >= 30 and exact >= 0.9 * checked


@pytest.mark.parametrize(("azimuth", "near"), [(90.0, "right"), (-90.0, "left")])
def test_side_views_show_the_near_legs(dog, azimuth, near):
    """Azimuth 90 looks at the dog's right flank (dog.xml: its left is +y): that side's legs
    cover more pixels than the far side's, and those are the legs at the near-side keypoints."""
    frame = dog.render_view(
        np.random.default_rng(0), "source", view=CameraView(azimuth, 5.0, 40.0, 0.8, (0, 0))
    )
    far = "left" if near == "right" else "right"
    counts = np.bincount(frame.partseg.ravel(), minlength=256)
    for end in ("front", "back"):
        assert counts[ID[f"{near}_{end}"]] > 1.5 * counts[ID[f"{far}_{end}"]]
