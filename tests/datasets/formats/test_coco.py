"""COCO-style keypoint json, detection results and MPII json readers, on hand-written files."""

from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.coco import (
    SKIP_REASONS,
    load_coco_keypoints,
    load_detections,
    load_mpii,
    mpii_box,
    sanitize_box,
)
from animalpose.datasets.keypoints import ANIMALPOSE20, AP10K17, COCO17, MPII16

#: The file lists COCO's names reversed, so reading by index would scramble them.
FILE_ORDER = list(reversed(COCO17.keypoints))
W, H = 100, 80


def _kp_in_file_order(values: dict[str, tuple[float, float, int]]) -> list[float]:
    flat: list[float] = []
    for name in FILE_ORDER:
        flat += list(values.get(name, (0, 0, 0)))
    return flat


def _person(ann_id, *, image_id=1, bbox=(10, 10, 20, 30), **extra):
    kps = _kp_in_file_order({"nose": (12, 14, 2), "left_ankle": (20, 35, 1)})
    ann = dict(
        id=ann_id,
        image_id=image_id,
        category_id=1,
        keypoints=kps,
        num_keypoints=2,
        bbox=list(bbox),
        area=500.0,
        iscrowd=0,
    )
    ann.update(extra)
    return ann


def _coco_file() -> dict:
    return {
        "images": [
            {"id": 1, "file_name": "a.jpg", "width": W, "height": H},
            {"id": 2, "file_name": "b.jpg", "width": W, "height": H},
        ],
        "categories": [
            {"id": 1, "name": "person", "keypoints": FILE_ORDER, "skeleton": [[1, 2]]},
        ],
        "annotations": [
            _person(10),
            _person(11, image_id=2, bbox=(-10, 5, 50, 30)),
            _person(12, iscrowd=1, keypoints=[0] * 51, num_keypoints=0),
            _person(13, keypoints=[0] * 51, num_keypoints=0),
            _person(14, area=0.0),
        ],
    }


def _write(tmp_path, data, name="ann.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def test_keypoints_are_remapped_by_name_and_skips_counted(tmp_path):
    path = _write(tmp_path, _coco_file())
    ds = load_coco_keypoints(path, spec=COCO17)
    assert [i.id for i in ds.instances] == [10, 11]
    assert ds.skipped == {
        **dict.fromkeys(SKIP_REASONS, 0),
        "crowd": 1,
        "no_keypoints": 1,
        "zero_area": 1,
    }
    inst = ds.instances[0]
    assert inst.keypoints.shape == (17, 3) and inst.keypoints.dtype == np.float64
    np.testing.assert_array_equal(inst.keypoints[COCO17.index("nose")], [12, 14, 2])
    np.testing.assert_array_equal(inst.keypoints[COCO17.index("left_ankle")], [20, 35, 1])
    assert inst.keypoints[:, 2].sum() == 3  # nothing else labelled
    assert inst.category == "person" and inst.score == 1.0 and inst.area == 500.0
    assert ds.images[2].file_name == "b.jpg" and ds.categories == {1: "person"}
    assert len(ds) == 2 and ds.path == path and ds.spec is COCO17


def test_boxes_are_clipped_as_hrnet_does(tmp_path):
    ds = load_coco_keypoints(_write(tmp_path, _coco_file()), spec=COCO17)
    # Inside: far edge at the last pixel, x2 = 10 + 19, so w = 19, h = 29.
    np.testing.assert_array_equal(ds.instances[0].bbox, [10, 10, 19, 29])
    # Over the left edge: x1 = 0, x2 = min(99, 0 + 49) = 49; y2 = min(79, 5 + 29) = 34.
    np.testing.assert_array_equal(ds.instances[1].bbox, [0, 5, 49, 29])
    # Over the bottom-right corner: x2 = min(99, 90 + 19) = 99, y2 = min(79, 70 + 19) = 79.
    np.testing.assert_array_equal(sanitize_box([90, 70, 20, 20], W, H), [90, 70, 9, 9])


def test_num_keypoints_zero_is_skipped_even_with_labels(tmp_path):
    data = _coco_file()
    data["annotations"] = [_person(1, num_keypoints=0), _person(2)]
    ds = load_coco_keypoints(_write(tmp_path, data), spec=COCO17)
    assert [i.id for i in ds.instances] == [2] and ds.skipped["no_keypoints"] == 1


def test_categories_filter_and_coverage(tmp_path):
    data = _coco_file()
    data["categories"].append({"id": 2, "name": "robot", "keypoints": ["nose"]})
    data["annotations"] = [_person(1), {**_person(2), "category_id": 2, "keypoints": [1, 1, 2]}]
    path = _write(tmp_path, data)
    ds = load_coco_keypoints(path, spec=COCO17, categories=["person"])
    assert [i.id for i in ds.instances] == [1] and ds.skipped["other_category"] == 1
    assert ds.categories == {1: "person"}
    with pytest.raises(DataError, match=r"category id 2 \('robot'\).*missing \['left_eye'"):
        load_coco_keypoints(path, spec=COCO17)
    with pytest.raises(DataError, match=r"no category named \['cat'\]"):
        load_coco_keypoints(path, spec=COCO17, categories=["cat"])


def test_public_spellings_map_through_aliases(tmp_path):
    # mmpose's Animal-Pose conversion order and names.
    mmpose = ["L_Eye", "R_Eye", "L_EarBase", "R_EarBase", "Nose", "Throat", "TailBase", "Withers"]
    mmpose += [f"{s}_{e}_{j}" for j in ("Elbow", "Knee", "Paw") for e in ("F", "B") for s in "LR"]
    assert len(mmpose) == 20
    kps = [v for i in range(20) for v in (i, 100 + i, 2)]
    data = {
        "images": [{"id": 5, "file_name": "dog.jpg", "width": 300, "height": 300}],
        "categories": [{"id": 1, "name": "dog", "keypoints": mmpose}],
        "annotations": [dict(id=1, image_id=5, category_id=1, keypoints=kps, bbox=[0, 0, 50, 50])],
    }
    expected = ["left_eye", "right_eye", "left_ear", "right_ear", "nose", "throat", "tail_base"]
    expected += ["withers"]
    sides, ends = ("left", "right"), ("front", "back")
    expected += [f"{s}_{e}_{j}" for j in ("elbow", "knee", "paw") for e in ends for s in sides]
    inst = load_coco_keypoints(_write(tmp_path, data), spec=ANIMALPOSE20).instances[0]
    for i, name in enumerate(expected):
        np.testing.assert_array_equal(inst.keypoints[ANIMALPOSE20.index(name)], [i, 100 + i, 2])
    assert inst.area == 2500.0  # no `area` field: w x h of the file's box

    # AP-10K's json spells the tail base "root_of_tail".
    ap10k = ["root_of_tail" if n == "tail_base" else n for n in AP10K17.keypoints]
    data["categories"] = [{"id": 1, "name": "dog", "keypoints": ap10k}]
    data["annotations"][0]["keypoints"] = [v for i in range(17) for v in (i, i, 2)]
    inst = load_coco_keypoints(_write(tmp_path, data), spec=AP10K17).instances[0]
    np.testing.assert_array_equal(inst.keypoints[:, 0], np.arange(17))


BAD_ANNOTATIONS = [
    # (mutation of annotation id 10, message)
    (lambda a: a.pop("keypoints"), r"annotation id 10: missing field\(s\) \['keypoints'\]"),
    (lambda a: a.pop("bbox"), r"annotation id 10: missing field\(s\) \['bbox'\]"),
    (lambda a: a.pop("image_id"), r"annotation id 10: missing field\(s\) \['image_id'\]"),
    (lambda a: a.pop("category_id"), r"annotation id 10: missing field\(s\) \['category_id'\]"),
    (lambda a: a.update(keypoints=a["keypoints"][:-3]), r"annotation id 10: 'keypoints' has 48"),
    (
        lambda a: a["keypoints"].__setitem__(0, float("nan")),
        r"annotation id 10: 'keypoints' has non-finite",
    ),
    (lambda a: a["keypoints"].__setitem__(2, 3), r"annotation id 10: keypoint visibility"),
    (lambda a: a.update(bbox=[10, 10, 0, 5]), r"annotation id 10: bbox .* w or h <= 0"),
    (lambda a: a.update(bbox=[10, 10, 5, -1]), r"annotation id 10: bbox .* w or h <= 0"),
    (
        lambda a: a.update(bbox=[100, 10, 5, 5]),
        r"annotation id 10: bbox .* wholly outside .*'a.jpg'",
    ),
    (lambda a: a.update(bbox=[-20, 10, 20, 5]), r"annotation id 10: bbox .* wholly outside"),
    (lambda a: a.update(bbox=[10, 80, 5, 5]), r"annotation id 10: bbox .* wholly outside"),
    (lambda a: a.update(image_id=99), r"annotation id 10: unknown image_id 99"),
    (lambda a: a.update(category_id=7), r"annotation id 10: unknown category_id 7"),
    (lambda a: a.update(image_id="1"), r"annotation id 10: 'image_id' must be an integer"),
    (lambda a: a.update(area=float("inf")), r"annotation id 10: 'area' must be a finite"),
]


@pytest.mark.parametrize("mutate, message", BAD_ANNOTATIONS)
def test_bad_annotations_name_the_file_and_annotation(tmp_path, mutate, message):
    data = _coco_file()
    mutate(data["annotations"][0])
    path = _write(tmp_path, data, "bad_ann.json")
    with pytest.raises(DataError, match=message) as info:
        load_coco_keypoints(path, spec=COCO17)
    assert str(info.value).startswith(str(path))


BAD_FILES = [
    (lambda d: d.pop("images"), r"missing top-level field\(s\) \['images'\]"),
    (lambda d: d.update(annotations={}), r"'annotations' must be a list"),
    (lambda d: d["annotations"].append(_person(10)), r"annotation id 10: duplicate annotation id"),
    (lambda d: d["images"].append(dict(d["images"][0])), r"image id 1: duplicate image id"),
    (lambda d: d["categories"].append(dict(d["categories"][0])), r"category id 1 .*duplicate"),
    (lambda d: d["images"][0].pop("width"), r"image #0: missing field\(s\) \['width'\]"),
    (lambda d: d["images"][0].update(height=0), r"image id 1: width and height must be > 0"),
    (lambda d: d["annotations"][0].pop("id"), r"annotation without an 'id'"),
]


@pytest.mark.parametrize("mutate, message", BAD_FILES)
def test_bad_files_name_the_file(tmp_path, mutate, message):
    data = _coco_file()
    mutate(data)
    path = _write(tmp_path, data, "bad_file.json")
    with pytest.raises(DataError, match=message) as info:
        load_coco_keypoints(path, spec=COCO17)
    assert str(info.value).startswith(str(path))


def test_not_json_and_missing_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [')
    with pytest.raises(DataError, match=r"broken.json: keypoint annotation file is not valid JSON"):
        load_coco_keypoints(path, spec=COCO17)
    with pytest.raises(DataError, match=r"nothing.json: keypoint annotation file not found"):
        load_coco_keypoints(tmp_path / "nothing.json", spec=COCO17)
    path.write_text("[]")
    with pytest.raises(DataError, match="expected a JSON object"):
        load_coco_keypoints(path, spec=COCO17)


def test_skipped_annotations_are_still_checked_for_structure(tmp_path):
    data = _coco_file()
    data["annotations"][2].pop("bbox")  # the crowd annotation
    with pytest.raises(DataError, match=r"annotation id 12: missing field"):
        load_coco_keypoints(_write(tmp_path, data), spec=COCO17)


# -- detections -------------------------------------------------------------------------------


@pytest.fixture
def gt(tmp_path):
    return load_coco_keypoints(_write(tmp_path, _coco_file(), "gt.json"), spec=COCO17)


def _det(image_id=1, category_id=1, bbox=(1.5, 2.5, 30, 40), score=0.9):
    return dict(image_id=image_id, category_id=category_id, bbox=list(bbox), score=score)


def test_detections_threshold_and_category(tmp_path, gt):
    dets = [_det(score=0.9), _det(score=0.2), _det(image_id=2, score=0.5), _det(category_id=3)]
    path = _write(tmp_path, dets, "det.json")
    kept = load_detections(path, images=gt, score_threshold=0.5)
    assert [(d.id, d.image_id, d.score) for d in kept] == [(0, 1, 0.9), (2, 2, 0.5)]
    d = kept[0]
    np.testing.assert_array_equal(d.bbox, [1.5, 2.5, 30, 40])  # not clipped
    assert d.area == 1200.0 and d.category == "person"
    assert d.keypoints.shape == (17, 3) and not d.keypoints.any()
    assert len(load_detections(path, images=gt)) == 3  # category 3 is not a gt category
    assert len(load_detections(path, images=gt, category_id=1, score_threshold=0.95)) == 0
    with pytest.raises(ValueError, match="category_id 3 is not a category"):
        load_detections(path, images=gt, category_id=3)


@pytest.mark.parametrize(
    "entry, message",
    [
        (_det(image_id=42), r"detection #1: image_id 42 is not an image of .*gt.json"),
        (_det(bbox=(0, 0, 0, 5)), r"detection #1: bbox .* w or h <= 0"),
        (_det(score=float("nan")), r"detection #1: 'score' must be a finite"),
        ({"image_id": 1, "bbox": [0, 0, 1, 1], "score": 1}, r"detection #1: missing .*category_id"),
    ],
)
def test_bad_detections(tmp_path, gt, entry, message):
    path = _write(tmp_path, [_det(), entry], "det.json")
    with pytest.raises(DataError, match=message):
        load_detections(path, images=gt)
    path.write_text(json.dumps({"a": 1}))
    with pytest.raises(DataError, match="det.json: expected a JSON list"):
        load_detections(path, images=gt)


# -- MPII ---------------------------------------------------------------------------------------


def _mpii_entry(image="m1.jpg", center=(101.0, 201.0), scale=2.0):
    joints = [[-1.0, -1.0]] * 16
    vis = [0] * 16
    joints[0], vis[0] = [11.0, 21.0], 1  # right_ankle
    joints[9], vis[9] = [51.0, 61.0], 1  # head_top
    return dict(image=image, center=list(center), scale=scale, joints=joints, joints_vis=vis)


def test_mpii_conversion_values(tmp_path):
    entries = [
        _mpii_entry(),
        _mpii_entry("m2.jpg", center=(-1, -1)),
        {**_mpii_entry("m1.jpg"), "joints_vis": [0] * 16},
        {"image": "m3.jpg", "center": [51.0, 41.0], "scale": 0.5},  # test split: no joints
    ]
    ds = load_mpii(_write(tmp_path, entries, "train.json"))
    assert ds.spec is MPII16 and ds.categories == {1: "person"}
    assert ds.skipped["no_center"] == 1 and ds.skipped["no_keypoints"] == 1
    assert [(i.id, i.image_id) for i in ds.instances] == [(0, 0), (3, 2)]
    assert [ds.images[k].file_name for k in range(3)] == ["m1.jpg", "m2.jpg", "m3.jpg"]
    assert ds.images[0].width == 0  # no image_root: sizes unknown
    inst = ds.instances[0]
    np.testing.assert_array_equal(inst.keypoints[0], [10, 20, 2])  # 1-based -> 0-based
    np.testing.assert_array_equal(inst.keypoints[9], [50, 60, 2])
    assert not inst.keypoints[1:9].any() and not inst.keypoints[10:].any()
    # Side 200 x 2 = 400 around (101 - 1, 201 - 1 + 15 x 2) = (100, 230).
    np.testing.assert_array_equal(inst.bbox, [-100, 30, 400, 400])
    assert inst.area == 160000.0
    # HRNet's crop: centre x + w/2, side 1.25 x 200 x scale.
    x, y, w, h = inst.bbox
    assert (x + w / 2, y + h / 2, 1.25 * w) == (100, 230, 1.25 * 200 * 2.0)
    assert not ds.instances[1].keypoints.any()
    np.testing.assert_array_equal(ds.instances[1].bbox, mpii_box((51, 41), 0.5))


def test_mpii_to_a_subset_spec_and_image_sizes(tmp_path):
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "m1.jpg"), np.zeros((30, 40, 3), np.uint8))
    ds = load_mpii(_write(tmp_path, [_mpii_entry()], "valid.json"), image_root=tmp_path / "img")
    assert (ds.images[0].width, ds.images[0].height) == (40, 30)
    with pytest.raises(DataError, match=r"MPII has no keypoint\(s\) \['nose'"):
        load_mpii(tmp_path / "valid.json", spec=COCO17)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda e: e.pop("scale"), r"entry #0: missing field\(s\) \['scale'\]"),
        (lambda e: e.update(scale=0), r"entry #0: scale 0.0 must be > 0"),
        (lambda e: e.update(joints=e["joints"][:15]), r"entry #0: 'joints' has 30 values"),
        (lambda e: e["joints_vis"].__setitem__(3, 2), r"entry #0: joints_vis must be 0 or 1"),
        (lambda e: e.pop("joints_vis"), r"entry #0: 'joints' and 'joints_vis' must come together"),
        (lambda e: e.update(center=[1, float("nan")]), r"entry #0: 'center' has non-finite"),
    ],
)
def test_bad_mpii_entries(tmp_path, change, message):
    entry = copy.deepcopy(_mpii_entry())
    change(entry)
    with pytest.raises(DataError, match=message):
        load_mpii(_write(tmp_path, [entry], "bad_mpii.json"))
