"""The human and public-animal keypoint specs (COCO17, MPII16, ANIMALPOSE20, AP10K17) and
``keypoint_mapping``: facts from the published files, invariants, mapping by name."""

import numpy as np
import pytest

from animalpose.datasets.keypoints import (
    ANIMAL18,
    ANIMALPOSE20,
    AP10K17,
    COCO17,
    MPII16,
    SPECS,
    KeypointSpec,
    get_spec,
    keypoint_mapping,
)

NEW_SPECS = (COCO17, MPII16, ANIMALPOSE20, AP10K17)


def test_specs_are_registered_under_their_names():
    for spec in (ANIMAL18, *NEW_SPECS):
        assert SPECS[spec.name] is spec and get_spec(spec.name) is spec
    assert [s.num_keypoints for s in NEW_SPECS] == [17, 16, 20, 17]


def test_coco17_order_flip_and_skeleton_match_the_coco_person_category():
    assert COCO17.keypoints[:5] == ("nose", "left_eye", "right_eye", "left_ear", "right_ear")
    assert COCO17.keypoints[-2:] == ("left_ankle", "right_ankle")
    # HRNet lib/dataset/coco.py flip_pairs (0-based).
    expected = np.arange(17)
    for a, b in [(1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)]:
        expected[a], expected[b] = b, a
    np.testing.assert_array_equal(COCO17.flip_index, expected)
    # COCO's skeleton [16,14] (1-based) is left_ankle - left_knee; [1,2] nose - left_eye.
    assert COCO17.skeleton[0] == ("left_ankle", "left_knee")
    assert ("nose", "left_eye") in COCO17.skeleton and len(COCO17.skeleton) == 19
    assert COCO17.upper_body_index == list(range(11))
    assert COCO17.lower_body_index == list(range(11, 17))


def test_coco17_sigmas_are_pycocotools_values():
    expected = np.array([26, 25, 25, 35, 35, 79, 79, 72, 72, 62, 62, 107, 107, 87, 87, 89, 89])
    np.testing.assert_allclose(COCO17.sigmas, expected / 1000)


def test_mpii16_order_is_the_hrnet_json_order():
    assert MPII16.keypoints[:6] == (
        "right_ankle",
        "right_knee",
        "right_hip",
        "left_hip",
        "left_knee",
        "left_ankle",
    )
    assert MPII16.keypoints[6:10] == ("pelvis", "thorax", "upper_neck", "head_top")
    assert MPII16.keypoints[10:] == (
        "right_wrist",
        "right_elbow",
        "right_shoulder",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
    )
    # HRNet lib/dataset/mpii.py flip_pairs.
    expected = np.arange(16)
    for a, b in [(0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)]:
        expected[a], expected[b] = b, a
    np.testing.assert_array_equal(MPII16.flip_index, expected)
    # HRNet parent_ids: every joint but the pelvis is linked to its parent.
    parents = [1, 2, 6, 6, 3, 4, 6, 6, 7, 8, 11, 12, 7, 7, 13, 14]
    expected_edges = {(c, p) for c, p in enumerate(parents) if c != p}
    assert set(MPII16.skeleton_index) == expected_edges
    assert MPII16.upper_body_index == list(range(7, 16))
    assert MPII16.sigmas is None


def test_animalpose20_order_and_sigmas_by_name():
    assert ANIMALPOSE20.keypoints[:5] == ("left_eye", "right_eye", "nose", "left_ear", "right_ear")
    assert ANIMALPOSE20.keypoints[-3:] == ("throat", "withers", "tail_base")
    sigma = dict(zip(ANIMALPOSE20.keypoints, ANIMALPOSE20.sigmas, strict=True))
    # mmpose animalpose.py: eyes .025, ear bases .026 / .035, nose .035, throat .10, ...
    assert sigma["left_eye"] == sigma["right_eye"] == 0.025
    assert (sigma["left_ear"], sigma["right_ear"], sigma["nose"]) == (0.026, 0.035, 0.035)
    assert sigma["throat"] == sigma["withers"] == sigma["tail_base"] == 0.10
    assert sigma["left_back_elbow"] == 0.107 and sigma["right_front_knee"] == 0.087
    assert sigma["right_back_paw"] == 0.089


def test_ap10k17_order_and_sigmas():
    assert AP10K17.keypoints[:8] == (
        "left_eye",
        "right_eye",
        "nose",
        "neck",
        "tail_base",
        "left_shoulder",
        "left_elbow",
        "left_front_paw",
    )
    assert AP10K17.keypoints[-1] == "right_back_paw"
    # mmpose ap10k.py: flip pairs (5, 8) (6, 9) (7, 10) (11, 14) (12, 15) (13, 16) and (0, 1).
    expected = np.arange(17)
    for a, b in [(0, 1), (5, 8), (6, 9), (7, 10), (11, 14), (12, 15), (13, 16)]:
        expected[a], expected[b] = b, a
    np.testing.assert_array_equal(AP10K17.flip_index, expected)
    assert AP10K17.sigmas[:5] == (0.025, 0.025, 0.026, 0.035, 0.035)
    assert AP10K17.sigmas[-1] == 0.089


@pytest.mark.parametrize("spec", NEW_SPECS, ids=lambda s: s.name)
def test_flip_pairs_swap_left_and_right_names(spec):
    for i, j in enumerate(spec.flip_index):
        a, b = spec.keypoints[i], spec.keypoints[j]
        if a.startswith("left_"):
            assert b == "right_" + a[5:]
        elif a.startswith("right_"):
            assert b == "left_" + a[6:]
        else:
            assert a == b


@pytest.mark.parametrize("spec", (COCO17, MPII16), ids=lambda s: s.name)
def test_human_flip_pairs_have_equal_sigmas_and_half_body_is_side_symmetric(spec):
    perm = spec.flip_index
    if spec.sigmas is not None:
        sigmas = np.array(spec.sigmas)
        np.testing.assert_array_equal(sigmas, sigmas[perm])
    upper = set(spec.upper_body_index)
    assert {int(perm[i]) for i in upper} == upper


def test_mapping_coco17_mpii16_shares_the_twelve_limb_joints():
    src, tgt = keypoint_mapping(COCO17, MPII16)
    shared = [MPII16.keypoints[j] for j in tgt]
    assert len(shared) == 12
    assert all(COCO17.keypoints[i] == MPII16.keypoints[j] for i, j in zip(src, tgt, strict=True))
    limbs = ("shoulder", "elbow", "wrist", "hip", "knee", "ankle")
    assert sorted(shared) == sorted(f"{s}_{p}" for s in ("left", "right") for p in limbs)
    # Moving a COCO array into MPII order puts right_ankle (COCO 16) in MPII channel 0.
    coco = np.arange(17 * 3, dtype=float).reshape(17, 3)
    mpii = np.zeros((16, 3))
    mpii[tgt] = coco[src]
    np.testing.assert_array_equal(mpii[0], coco[16])
    np.testing.assert_array_equal(mpii[15], coco[9])  # left_wrist
    assert not mpii[6:10].any()  # pelvis, thorax, neck, head top: COCO has none


def test_mapping_round_trip_and_direction():
    s1, t1 = keypoint_mapping(MPII16, COCO17)
    s2, t2 = keypoint_mapping(COCO17, MPII16)
    assert sorted(zip(s1, t1, strict=True)) == sorted(zip(t2, s2, strict=True))
    src, tgt = keypoint_mapping(COCO17, COCO17)
    np.testing.assert_array_equal(src, np.arange(17))
    np.testing.assert_array_equal(tgt, np.arange(17))
    assert src.dtype == tgt.dtype == np.int64


def test_mapping_between_human_and_animal_specs():
    names = lambda a, b: sorted(b.keypoints[j] for j in keypoint_mapping(a, b)[1])  # noqa: E731
    assert names(COCO17, ANIMAL18) == ["left_eye", "left_shoulder", "right_eye", "right_shoulder"]
    assert names(COCO17, ANIMALPOSE20) == sorted(COCO17.keypoints[:5])
    assert "tail_base" in names(ANIMALPOSE20, AP10K17)
    assert names(ANIMALPOSE20, AP10K17) == sorted(
        [
            "left_eye",
            "right_eye",
            "nose",
            "tail_base",
            "left_front_paw",
            "right_front_paw",
            "left_back_paw",
            "right_back_paw",
        ]
    )
    assert len(names(ANIMAL18, ANIMALPOSE20)) == 10  # eyes, 4 elbows, 4 knees
    assert names(COCO17, AP10K17) == sorted(
        ["left_eye", "right_eye", "nose"]
        + [f"{s}_{p}" for s in ("left", "right") for p in ("shoulder", "elbow", "hip", "knee")]
    )


def test_mapping_without_shared_names_names_both_specs():
    other = KeypointSpec(
        name="blob", keypoints=("a", "b"), flip_pairs=(), parts={"x": ("a", "b")}, skeleton=()
    )
    with pytest.raises(ValueError, match="'blob' and 'coco17' share no keypoint"):
        keypoint_mapping(other, COCO17)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(upper_body=("zz",)), "upper_body names unknown"),
        (dict(upper_body=("a", "a")), "twice"),
        (dict(sigmas=(0.1, 0.0)), "finite and > 0"),
        (dict(sigmas=(0.1, float("nan"))), "finite and > 0"),
    ],
)
def test_new_validation_rules(kwargs, message):
    base = dict(name="t", keypoints=("a", "b"), flip_pairs=(), parts={"x": ("a", "b")}, skeleton=())
    with pytest.raises(ValueError, match=message):
        KeypointSpec(**{**base, **kwargs})
