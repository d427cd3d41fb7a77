"""Cross-species correspondences (datasets/correspondence.py): the documented pairs, their
invariants, the error when nothing corresponds, and a person's crop labelled in animal18."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets import correspondence as corr
from animalpose.datasets.correspondence import correspondence, correspondence_names
from animalpose.datasets.formats.coco_layout import build_topdown_dataset
from animalpose.datasets.generator.fixtures import make_coco_fixture
from animalpose.datasets.keypoint_spec import KeypointSpec
from animalpose.datasets.keypoints import ANIMAL18, AP10K17, COCO17, MPII16, keypoint_mapping

#: The human -> animal18 correspondence as docs/adaptation.md states it.
COCO_TO_ANIMAL = {
    "left_eye": "left_eye",
    "right_eye": "right_eye",
    "left_shoulder": "left_shoulder",
    "right_shoulder": "right_shoulder",
    "left_elbow": "left_front_elbow",
    "right_elbow": "right_front_elbow",
    "left_wrist": "left_front_knee",
    "right_wrist": "right_front_knee",
    "left_knee": "left_back_elbow",
    "right_knee": "right_back_elbow",
    "left_ankle": "left_back_knee",
    "right_ankle": "right_back_knee",
}


def test_coco_to_animal18_is_the_documented_table():
    assert dict(correspondence_names(COCO17, ANIMAL18)) == COCO_TO_ANIMAL
    src, tgt = correspondence(COCO17, ANIMAL18)
    assert list(tgt) == sorted(tgt)  # target order
    pairs = {COCO17.keypoints[s]: ANIMAL18.keypoints[t] for s, t in zip(src, tgt, strict=True)}
    assert pairs == COCO_TO_ANIMAL


def test_mpii_pelvis_stands_in_for_the_animal_hip():
    names = dict(correspondence_names(MPII16, ANIMAL18))
    assert names["pelvis"] == "hip"
    no_eyes = {k: v for k, v in COCO_TO_ANIMAL.items() if not k.endswith("_eye")}
    assert {k: v for k, v in names.items() if k != "pelvis"} == no_eyes  # MPII has no eyes


@pytest.mark.parametrize(("source", "target"), [(COCO17, ANIMAL18), (MPII16, ANIMAL18)])
def test_pairs_commute_with_the_flips(source, target):
    src, tgt = correspondence(source, target)
    mapping = dict(zip(src.tolist(), tgt.tolist(), strict=True))
    for s, t in mapping.items():
        assert mapping[int(source.flip_index[s])] == int(target.flip_index[t])


def test_without_a_table_it_is_the_mapping_by_name():
    for a, b in ((COCO17, AP10K17), (AP10K17, COCO17), (COCO17, COCO17)):
        for ours, by_name in zip(correspondence(a, b), keypoint_mapping(a, b), strict=True):
            np.testing.assert_array_equal(ours, by_name)


def test_specs_sharing_nothing_raise_naming_both():
    other = KeypointSpec(
        name="fins",
        keypoints=("dorsal", "tail_fin"),
        flip_pairs=(),
        parts={"fin": ("dorsal", "tail_fin")},
        skeleton=(),
    )
    with pytest.raises(ValueError, match=r"'coco17' and 'fins' share no keypoint"):
        correspondence(COCO17, other)


def test_a_broken_table_is_refused(monkeypatch):
    bad = (("left_elbow", "right_front_elbow"), ("right_elbow", "left_front_elbow"))
    monkeypatch.setitem(corr.CORRESPONDENCES, ("coco17", "animal18"), bad)
    corr._check(("coco17", "animal18"), bad)  # a consistent left/right swap is still a mirror
    lopsided = (("left_elbow", "left_front_elbow"), ("right_elbow", "left_back_elbow"))
    monkeypatch.setitem(corr.CORRESPONDENCES, ("coco17", "animal18"), lopsided)
    with pytest.raises(AssertionError, match="does not commute with the flips"):
        corr._check(("coco17", "animal18"), lopsided)
    twice = (("left_elbow", "left_front_elbow"), ("left_wrist", "left_front_elbow"))
    with pytest.raises(AssertionError, match="used twice"):
        corr._check(("coco17", "animal18"), twice)


def test_a_person_crop_is_labelled_in_animal18(tmp_path):
    make_coco_fixture(tmp_path)
    kw = dict(
        root=tmp_path, split="train", input_size=(64, 64), seed=0, augment=False,
        scale_factor=0.0, rot_factor=0.0, limit=0, detections="", det_score=0.0, unbiased=False,
    )  # fmt: skip
    person = build_topdown_dataset(spec=COCO17, **kw)
    animal = build_topdown_dataset(spec=ANIMAL18, annotation_spec=COCO17, half_body=False, **kw)
    assert len(person) == len(animal) == 4
    for i in range(len(person)):
        p, a = person[i]["keypoints"].numpy(), animal[i]["keypoints"].numpy()
        assert a.shape == (18, 3)
        for human, beast in COCO_TO_ANIMAL.items():
            np.testing.assert_array_equal(
                a[ANIMAL18.index(beast)], p[COCO17.index(human)], err_msg=beast
            )
        unmatched = [
            ANIMAL18.index(n) for n in ANIMAL18.keypoints if n not in COCO_TO_ANIMAL.values()
        ]
        assert (a[unmatched, 2] == 0).all()
