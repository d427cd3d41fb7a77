"""Occlusion augmentation: built-in occluders pasted over the crop, keypoints untouched."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from animalpose.datasets.transforms.crop import CenterCrop
from animalpose.datasets.transforms.occlusion import (
    SIZE_RANGE,
    Occluded,
    TextureBank,
    draw_occluder,
    occlude,
)
from animalpose.datasets.transforms.registry import build_augmenter
from animalpose.datasets.transforms.strong import StrongAugment


def test_occluders_have_the_documented_size_and_a_soft_alpha(scene):
    image = scene.textured_frame()[:96, :96]
    rng = np.random.default_rng(0)
    for _ in range(50):
        texture, alpha, _ = draw_occluder(image, rng)
        s = alpha.shape[0]
        assert texture.shape == (s, s, 3) and texture.dtype == np.float32
        assert SIZE_RANGE[0] * 96 - 1 <= s <= SIZE_RANGE[1] * 96 + 1
        assert alpha.min() >= 0 and alpha.max() <= 1
        assert alpha.max() > 0.85  # an (almost) opaque core ...
        assert ((alpha > 0.02) & (alpha < 0.98)).any()  # ... and a soft edge
        assert 0.03 < alpha.mean() < 0.9  # a shape, not the whole square


def test_occlude_changes_only_pixels_under_occluders_and_is_seeded(scene):
    image = scene.textured_frame()[:96, :96].copy()
    a = occlude(image, 3, np.random.default_rng(5))
    b = occlude(image, 3, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.shape == image.shape
    changed = (a != image).any(axis=2).mean()
    assert 0.0 < changed < 0.9
    assert not np.shares_memory(a, image)
    np.testing.assert_array_equal(occlude(image, 0, np.random.default_rng(5)), image)


def test_occluded_keeps_the_inner_geometry_and_labels(scene):
    inner = StrongAugment(output_size=scene.out, flip_index=scene.flip_index)
    wrapped = Occluded(inner, probability=1.0, max_count=4)
    frame = scene.textured_frame()
    plain = inner(frame, scene.keypoints, scene.center, scene.size, np.random.default_rng(3))
    occl = wrapped(frame, scene.keypoints, scene.center, scene.size, np.random.default_rng(3))
    np.testing.assert_array_equal(occl.keypoints, plain.keypoints)
    np.testing.assert_array_equal(occl.matrix, plain.matrix)
    assert occl.flipped == plain.flipped
    assert (occl.image != plain.image).any()
    assert wrapped.output_size == scene.out  # attributes of the wrapped augmenter
    assert pickle.loads(pickle.dumps(wrapped)).max_count == 4  # loader workers pickle it


def test_probability_is_the_share_of_occluded_samples(scene):
    wrapped = Occluded(CenterCrop(scene.out), probability=0.3, max_count=2)
    frame = scene.textured_frame()
    plain = CenterCrop(scene.out)(frame, scene.keypoints, scene.center, scene.size, None)
    hits = []
    for i in range(400):
        rng = np.random.default_rng(i)
        out = wrapped(frame, scene.keypoints, scene.center, scene.size, rng)
        hits.append((out.image != plain.image).any())
    assert 0.22 < np.mean(hits) < 0.38
    never = Occluded(CenterCrop(scene.out), probability=0.0)
    out = never(frame, scene.keypoints, scene.center, scene.size, np.random.default_rng(0))
    np.testing.assert_array_equal(out.image, plain.image)


def test_build_augmenter_wraps_only_when_asked(scene):
    opts = {"output_size": scene.out, "flip_index": scene.flip_index}
    assert isinstance(build_augmenter("strong", **opts), StrongAugment)
    wrapped = build_augmenter("strong", **opts, occlusion=0.5, occluders=3)
    assert isinstance(wrapped, Occluded) and isinstance(wrapped.inner, StrongAugment)
    assert (wrapped.probability, wrapped.max_count) == (0.5, 3)


@pytest.mark.parametrize("kw", [{"probability": 1.5}, {"probability": 0.5, "max_count": 0}])
def test_bad_settings_are_refused(scene, kw):
    with pytest.raises(ValueError, match="occlu"):
        Occluded(CenterCrop(scene.out), **kw)


def test_texture_bank_patches_come_from_its_images(tmp_path):
    from animalpose.datasets.fileio import write_image

    red = np.zeros((40, 60, 3), np.uint8)
    red[..., 0] = 200
    bank = TextureBank([red])
    patch = bank.patch(24, np.random.default_rng(0))
    assert patch.shape == (24, 24, 3) and patch.dtype == np.float32
    np.testing.assert_allclose(patch[..., 0], 200)
    np.testing.assert_allclose(patch[..., 1:], 0)
    big = bank.patch(100, np.random.default_rng(1))  # larger than the image: resized up
    assert big.shape == (100, 100, 3)
    path = tmp_path / "wide.png"
    write_image(path, np.full((300, 600, 3), 7, np.uint8))
    (loaded,) = TextureBank.from_files([path], max_side=128).images
    assert loaded.shape == (64, 128, 3) and (loaded == 7).all()
    with pytest.raises(ValueError, match="at least one image"):
        TextureBank([])
    with pytest.raises(ValueError, match="texture 0"):
        TextureBank([np.zeros((4, 4, 3), np.uint8)])


def test_occluders_textured_from_the_bank_carry_its_colours(scene):
    image = np.zeros((96, 96, 3), np.uint8)  # black crop: only bank patches can be green
    green = np.zeros((64, 64, 3), np.uint8)
    green[..., 1] = 250
    bank = TextureBank([green])
    out = [occlude(image, 5, np.random.default_rng(i), bank) for i in range(20)]
    greenish = sum(int(((o[..., 1] > 100) & (o[..., 0] < 50)).sum()) for o in out)
    assert greenish > 500
    plain = [occlude(image, 5, np.random.default_rng(i)) for i in range(20)]
    assert all(not ((o[..., 1] > 245) & (o[..., 0] == 0) & (o[..., 2] == 0)).any() for o in plain)
