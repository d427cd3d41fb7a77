import numpy as np
import pytest

from animalpose.datasets.keypoints import (
    ANIMAL18,
    TIGER_PERMUTATION,
    VERTEX_TABLES,
    KeypointSpec,
    get_spec,
)


def test_animal18_matches_reference_order_and_flip_pairs():
    assert ANIMAL18.num_keypoints == 18
    assert ANIMAL18.keypoints[0] == "left_eye" and ANIMAL18.keypoints[7] == "hip"
    # Reference flip pairs (0-based, spec 1.3):
    # (0,1) (3,4) (5,6) (8,9) (10,11) (12,13) (14,15) (16,17)
    pairs = [(0, 1), (3, 4), (5, 6), (8, 9), (10, 11), (12, 13), (14, 15), (16, 17)]
    expected = np.arange(18)
    for a, b in pairs:
        expected[a], expected[b] = b, a
    np.testing.assert_array_equal(ANIMAL18.flip_index, expected)


def test_parts_cover_reference_groups():
    parts = ANIMAL18.part_indices
    assert parts == {
        "eye": [0, 1],
        "chin": [2],
        "hoof": [3, 4, 5, 6],
        "hip": [7],
        "knee": [8, 9, 10, 11],
        "shoulder": [12, 13],
        "elbow": [14, 15, 16, 17],
    }


def test_tiger_permutation_is_the_reference_involution():
    perm = np.array(TIGER_PERMUTATION)
    np.testing.assert_array_equal(perm[perm], np.arange(18))
    assert list(perm[8:12]) == [14, 15, 16, 17] and list(perm[14:18]) == [8, 9, 10, 11]


def test_vertex_tables_from_reference():
    assert VERTEX_TABLES["horse"][0] == 1718 and VERTEX_TABLES["tiger"][-1] == 129
    assert all(len(v) == 18 for v in VERTEX_TABLES.values())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(keypoints=("a", "a")), "duplicate"),
        (dict(flip_pairs=(("a", "zz"),)), "unknown keypoint"),
        (dict(flip_pairs=(("a", "b"), ("b", "c"))), "two flip pairs"),
        (dict(parts={"x": ("a",)}), "cover every keypoint"),
        (dict(skeleton=(("a", "q"),)), "skeleton"),
        (dict(sigmas=(0.1,)), "sigmas"),
    ],
)
def test_spec_validation_rejects_bad_specs(kwargs, message):
    base = dict(
        name="t",
        keypoints=("a", "b", "c"),
        flip_pairs=(),
        parts={"all": ("a", "b", "c")},
        skeleton=(),
    )
    base.update(kwargs)
    if "keypoints" in kwargs:
        base["parts"] = {"all": kwargs["keypoints"]}
    with pytest.raises(ValueError, match=message):
        KeypointSpec(**base)


def test_get_spec_lists_known_names():
    assert get_spec("animal18") is ANIMAL18
    with pytest.raises(KeyError, match="animal18"):
        get_spec("nope")
    with pytest.raises(KeyError, match="left_eye"):
        ANIMAL18.index("nose")
