"""The COCO layout writer of the built-in humans, on hand-made frames (no OpenGL)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from animalpose.datasets.fileio import DataError
from animalpose.datasets.generator.human.coco_layout import (
    CATEGORY,
    MIN_PERSON_AREA_SHARE,
    HumanLayout,
    coco_annotations,
    simulate_detections,
)
from animalpose.datasets.generator.human.keypoints import COCO_KEYPOINTS
from animalpose.datasets.generator.human.render import HumanFrame

W, H = 80, 60


def _frame(seed: int = 0) -> HumanFrame:
    """Two people: person 0 a 10x20 block with keypoints, person 1 a 2x2 block (too small)."""
    rng = np.random.default_rng(seed)
    owner = np.full((H, W), -1, np.int8)
    owner[5:25, 3:13] = 0
    owner[0:2, 30:32] = 1
    kp = np.zeros((2, 17, 3))
    kp[:, :, 0] = rng.uniform(3, 12, (2, 17))
    kp[:, :, 1] = rng.uniform(5, 24, (2, 17))
    kp[:, :, 2] = 2.0
    kp[0, 3] = (-4.0, 7.0, 0.0)  # outside the frame
    kp[0, 4, 2] = 1.0
    return HumanFrame(
        image=rng.integers(0, 255, (H, W, 3), dtype=np.uint8),
        keypoints=kp,
        owner=owner,
        boxes=np.array([[3.0, 5.0, 10.0, 20.0], [30.0, 0.0, 2.0, 2.0]]),
        areas=np.array([200.0, 4.0]),
        depth=np.ones((H, W)),
        camera=None,
        points=np.zeros((2, 17, 3)),
        kinds=("stand", "stand"),
    )


def test_annotations_follow_coco():
    anns = coco_annotations(_frame(), image_id=7)
    assert 4 < MIN_PERSON_AREA_SHARE * W * H < 200  # person 1 is below the size limit
    assert len(anns) == 1
    a = anns[0]
    assert (a["id"], a["image_id"], a["category_id"], a["iscrowd"]) == (70, 7, 1, 0)
    kp = np.array(a["keypoints"]).reshape(17, 3)
    assert list(kp[3]) == [0, 0, 0]  # v = 0 -> (0, 0, 0)
    assert kp[4, 2] == 1 and a["num_keypoints"] == 16
    assert a["bbox"] == [3.0, 5.0, 10.0, 20.0] and a["area"] == 200.0
    assert len(CATEGORY["keypoints"]) == 17 and CATEGORY["name"] == "person"


def test_detections_stay_in_the_frame_and_repeat_per_seed():
    anns = coco_annotations(_frame(), image_id=1) * 30
    a = simulate_detections(anns, image_id=1, size=(W, H), rng=np.random.default_rng(3))
    b = simulate_detections(anns, image_id=1, size=(W, H), rng=np.random.default_rng(3))
    assert a == b and 20 < len(a) < 45  # about 5 % missed, a few false boxes
    for det in a:
        x, y, w, h = det["bbox"]
        assert x >= 0 and y >= 0 and x + w <= W + 1e-9 and y + h <= H + 1e-9 and w > 0 and h > 0
        assert 0 < det["score"] <= 1 and det["category_id"] == 1


def _write(root, counts):
    layout = HumanLayout(root=root, counts=counts)
    for split, n in counts.items():
        for i in range(n):
            layout.write_image(split, i, _frame(i), np.random.default_rng(i))
    return layout


def test_assembled_split_loads_as_coco(tmp_path):
    layout = _write(tmp_path, {"train": 2, "val": 3})
    assert layout.image_id("val", 0) == 3 and layout.file_name("val", 2) == "000000000005.jpg"
    counts = layout.assemble("val")
    assert counts["images"] == 3 and counts["annotations"] == 3
    doc = json.loads(layout.annotation_path("val").read_text())
    assert [im["id"] for im in doc["images"]] == [3, 4, 5]
    assert (tmp_path / "val" / "000000000004.jpg").is_file()
    assert doc["categories"][0]["keypoints"] == list(COCO_KEYPOINTS)
    dets = json.loads(layout.detections_path("val").read_text())
    assert {d["image_id"] for d in dets} <= {3, 4, 5}
    if importlib.util.find_spec("pycocotools") is not None:
        from pycocotools.coco import COCO

        coco = COCO(str(layout.annotation_path("val")))
        assert len(coco.getAnnIds(catIds=[1])) == 3
        assert len(coco.loadRes(str(layout.detections_path("val"))).getAnnIds()) == len(dets)
    coco_module = importlib.util.find_spec("animalpose.datasets.formats.coco")
    if coco_module is not None:  # H1's reader, where it exists
        from animalpose.datasets.formats.coco import load_coco_keypoints
        from animalpose.datasets.keypoints import get_spec

        loaded = load_coco_keypoints(layout.annotation_path("val"), spec=get_spec("coco17"))
        assert len(loaded.instances) == 3 and len(loaded.images) == 3


def test_assemble_names_a_missing_image(tmp_path):
    layout = _write(tmp_path, {"train": 2})
    (tmp_path / "train" / "000000000002.jpg").unlink()
    assert not layout.is_complete("train", 1) and layout.is_complete("train", 0)
    with pytest.raises(DataError, match="000000000002.jpg"):
        layout.assemble("train")


def test_unknown_split_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown splits"):
        HumanLayout(root=tmp_path, counts={"valid": 1})
