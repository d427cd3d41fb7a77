"""Girth, chain lengths and breeds."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets.generator.dog.shape import (
    BREEDS,
    SHAPE_CHAINS,
    Breed,
    GirthModel,
    sample_shape,
    scaled_body_pos,
)


def test_girth_scales_distance_from_the_bone_axis_only():
    rng = np.random.default_rng(3)
    verts = rng.normal(size=(50, 3)) * [0.3, 0.05, 0.05]
    n = len(verts)
    girth = GirthModel.build(
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
    names = ["world", "torso"] + [n for chain in SHAPE_CHAINS.values() for n in chain]
    pos = np.arange(3 * len(names), dtype=float).reshape(-1, 3)
    out = scaled_body_pos(pos, names, {"front_leg": 1.2, "neck": 0.5})
    for i, name in enumerate(names):
        factor = (
            1.2
            if name in SHAPE_CHAINS["front_leg"]
            else 0.5
            if name in SHAPE_CHAINS["neck"]
            else 1.0
        )
        np.testing.assert_allclose(out[i], factor * pos[i])
    with pytest.raises(ValueError):
        scaled_body_pos(pos[:3], names[:3], {"tail": 1.1})


def test_every_breed_makes_the_same_draws_inside_its_ranges():
    for seed in range(25):
        after = set()
        for name, breed in BREEDS.items():
            rng = np.random.default_rng(seed)
            shape = sample_shape(rng, name)
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
    shape = sample_shape(np.random.default_rng(11))
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
    mixed, basset = BREEDS["mixed"], BREEDS["basset"]
    assert basset.leg[1] * 1.04 < mixed.leg[0] * 0.96  # every basset has shorter legs
    assert basset.lumbar[0] > mixed.lumbar[1] and basset.trunk_girth[0] > mixed.trunk_girth[1]
    with pytest.raises(ValueError, match="unknown breed 'corgi'"):
        sample_shape(np.random.default_rng(0), "corgi")
    with pytest.raises(ValueError, match="Breed.leg"):
        Breed(
            leg=(1.2, 0.9),
            neck=(1, 1),
            lumbar=(1, 1),
            tail=(1, 1),
            trunk_girth=(1, 1),
            neck_girth=(1, 1),
            leg_girth=(1, 1),
            tail_girth=(1, 1),
        )
