"""TopDownKeypoints on a tiny COCO keypoint file: the sample contract, crops from ground-truth or
detection boxes, per-(seed, epoch, index) draws, and clear errors for bad image references."""

from __future__ import annotations

import json
import shutil

import cv2
import numpy as np
import pytest
from torch.utils.data import DataLoader

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.coco import (
    CocoInstance,
    load_coco_keypoints,
    load_detections,
)
from animalpose.datasets.formats.topdown import TopDownKeypoints
from animalpose.datasets.geometry import apply_affine
from animalpose.datasets.keypoints import COCO17, MPII16
from animalpose.datasets.transforms.topdown import TopDownAugment, TopDownCrop

INPUT = (48, 64)  # (w, h), the 192 x 256 aspect ratio
#: Image id -> (file name, (W, H)); one image sits in a subfolder.
IMAGES = {1: ("a.png", (160, 120)), 2: ("sub/b.png", (200, 150))}
DOT_SIGMA = 2.0


def person(offset, labelled: dict[str, int]) -> np.ndarray:
    """(17, 3) COCO17 keypoints of an upright figure at ``offset``; v from ``labelled``."""
    layout = {
        "nose": (20, 8), "left_eye": (22, 6), "right_eye": (18, 6), "left_ear": (25, 8),
        "right_ear": (15, 8), "left_shoulder": (28, 20), "right_shoulder": (12, 20),
        "left_elbow": (32, 34), "right_elbow": (8, 34), "left_wrist": (34, 46),
        "right_wrist": (6, 46), "left_hip": (25, 50), "right_hip": (15, 50),
        "left_knee": (26, 66), "right_knee": (14, 66), "left_ankle": (27, 82),
        "right_ankle": (13, 82),
    }  # fmt: skip
    kp = np.zeros((17, 3))
    for name, v in labelled.items():
        kp[COCO17.index(name)] = [layout[name][0] + offset[0], layout[name][1] + offset[1], v]
    return kp


#: Annotation id -> (image id, bbox, keypoints). 10: a few keypoints, one labelled far off the
#: box (x = 4 on a box from x = 40); 20: every keypoint labelled.
ANNOTATIONS = {
    10: (1, [40.0, 20.0, 48.0, 80.0], person((44, 22), {"nose": 2, "left_shoulder": 1,
                                                        "right_shoulder": 2, "left_hip": 2})),
    20: (2, [100.0, 30.0, 60.0, 100.0], person((110, 35), dict.fromkeys(COCO17.keypoints, 2))),
}  # fmt: skip
ANNOTATIONS[10][2][COCO17.index("right_ankle")] = [4.0, 110.0, 2.0]


def write_dataset(root) -> tuple:
    """Images with a bright dot on every labelled keypoint, and their COCO json."""
    for image_id, (name, (w, h)) in IMAGES.items():
        ys, xs = np.mgrid[0:h, 0:w]
        frame = np.zeros((h, w))
        for img, _, kp in ANNOTATIONS.values():
            for x, y, v in kp:
                if img == image_id and v > 0:
                    frame = np.maximum(
                        frame, np.exp(-((xs - x) ** 2 + (ys - y) ** 2) / (2 * DOT_SIGMA**2))
                    )
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        dots = np.round(255 * frame).astype(np.uint8)
        cv2.imwrite(str(root / name), np.repeat(dots[..., None], 3, axis=2))
    anns = [
        {
            "id": ann_id, "image_id": img, "category_id": 1, "bbox": bbox,
            "keypoints": kp.reshape(-1).tolist(), "num_keypoints": int((kp[:, 2] > 0).sum()),
            "area": bbox[2] * bbox[3], "iscrowd": 0,
        }
        for ann_id, (img, bbox, kp) in ANNOTATIONS.items()
    ]  # fmt: skip
    anns.append(dict(anns[0], id=11, iscrowd=1))  # skipped as COCO does
    data = {
        "images": [
            {"id": i, "file_name": name, "width": w, "height": h}
            for i, (name, (w, h)) in IMAGES.items()
        ],
        "annotations": anns,
        "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.keypoints)}],
    }
    path = root / "person_keypoints.json"
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def coco(tmp_path):
    path = write_dataset(tmp_path)
    return load_coco_keypoints(path, spec=COCO17), tmp_path


def training_augmenter() -> TopDownAugment:
    return TopDownAugment(
        INPUT,
        COCO17.flip_index,
        upper_body=COCO17.upper_body_index,
        lower_body=COCO17.lower_body_index,
        half_body_prob=0.5,
    )


def on_dot(image, xy) -> bool:
    """A bright dot lies at crop point ``xy`` (brightest pixel of its 3 x 3 neighbourhood)."""
    v = image.float().mean(0).numpy()
    x, y = int(round(float(xy[0]))), int(round(float(xy[1])))
    patch = v[max(y - 1, 0) : y + 2, max(x - 1, 0) : x + 2]
    return patch.max() > 100


def test_samples_follow_the_contract(coco):
    data, root = coco
    ds = TopDownKeypoints(annotations=data, image_root=root, augmenter=TopDownCrop(INPUT), seed=0)
    assert len(ds) == 2 and ds.box_source == "ground truth"
    s = ds[0]
    assert s["image"].shape == (3, 64, 48) and str(s["image"].dtype) == "torch.uint8"
    assert s["keypoints"].shape == (17, 3) and str(s["keypoints"].dtype) == "torch.float32"
    meta = s["meta"]
    assert (meta["index"], meta["image_id"], meta["instance_id"], meta["score"]) == (0, 1, 10, 1.0)
    assert meta["flipped"] is False and meta["matrix"].shape == (2, 3)
    # HRNet's clipped box [40, 20, 47, 79]: centre (63.5, 59.5); 47 < 0.75 x 79 -> w = 59.25.
    np.testing.assert_allclose(meta["bbox"], [40.0, 20.0, 47.0, 79.0])
    np.testing.assert_allclose(meta["center"], [63.5, 59.5])
    np.testing.assert_allclose(meta["size"], np.array([59.25, 79.0]) * 1.25)
    np.testing.assert_array_equal(meta["keypoints_image"], ANNOTATIONS[10][2])  # v kept: 1, 2
    weight = s["keypoints"][:, 2].numpy()
    labelled_on_crop = [COCO17.index(n) for n in ("nose", "left_shoulder", "right_shoulder",
                                                   "left_hip")]  # fmt: skip
    expected = np.zeros(17)
    expected[labelled_on_crop] = 1  # v = 1 counts; right_ankle is off the crop; the rest v = 0
    np.testing.assert_array_equal(weight, expected)
    moved = apply_affine(ANNOTATIONS[10][2][:, :2], meta["matrix"])
    np.testing.assert_allclose(s["keypoints"][labelled_on_crop, :2], moved[labelled_on_crop],
                               atol=1e-4)  # fmt: skip
    np.testing.assert_array_equal(s["keypoints"][weight == 0], 0)
    assert all(on_dot(s["image"], s["keypoints"][j]) for j in labelled_on_crop)


def test_samples_batch_with_the_default_collate(coco):
    data, root = coco
    ds = TopDownKeypoints(annotations=data, image_root=root, augmenter=training_augmenter(), seed=1)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["image"].shape == (2, 3, 64, 48)
    assert batch["keypoints"].shape == (2, 17, 3)
    assert batch["meta"]["matrix"].shape == (2, 2, 3) and batch["meta"]["size"].shape == (2, 2)
    assert batch["meta"]["image_id"].tolist() == [1, 2]
    assert batch["meta"]["instance_id"].tolist() == [10, 20]


def test_draws_depend_on_seed_epoch_and_index_and_keypoints_stay_on_the_dots(coco):
    data, root = coco
    make = lambda seed: TopDownKeypoints(  # noqa: E731
        annotations=data, image_root=root, augmenter=training_augmenter(), seed=seed
    )
    ds, twin, other = make(3), make(3), make(4)
    a, b = ds[1], twin[1]
    np.testing.assert_array_equal(a["image"], b["image"])
    np.testing.assert_array_equal(a["meta"]["matrix"], b["meta"]["matrix"])
    assert not np.array_equal(a["meta"]["matrix"], other[1]["meta"]["matrix"])
    matrices, flips, checked = set(), set(), 0
    for epoch in range(8):
        ds.set_epoch(epoch)
        s = ds[1]
        matrices.add(s["meta"]["matrix"].round(6).tobytes())
        flips.add(s["meta"]["flipped"])
        np.testing.assert_array_equal(s["meta"]["center"], ds.centers[1])  # un-augmented
        for j in np.flatnonzero(s["keypoints"][:, 2].numpy()):
            x, y = s["keypoints"][j, :2].tolist()
            if 2 <= x <= INPUT[0] - 3 and 2 <= y <= INPUT[1] - 3:
                assert on_dot(s["image"], (x, y)), (epoch, j)
                checked += 1
        # The flip swapped the channels: left_shoulder's channel holds the image's right one.
        source = COCO17.flip_index if s["meta"]["flipped"] else np.arange(17)
        moved = apply_affine(s["meta"]["keypoints_image"][:, :2], s["meta"]["matrix"])[source]
        on = s["keypoints"][:, 2].numpy() > 0
        np.testing.assert_allclose(s["keypoints"][on, :2], moved[on], atol=1e-4)
    assert len(matrices) == 8 and flips == {False, True} and checked >= 60
    ds.set_epoch(0)
    np.testing.assert_array_equal(ds[1]["image"], make(3)[1]["image"])


def test_detection_boxes_replace_the_ground_truth(coco, tmp_path):
    data, root = coco
    dets = [
        {"image_id": 1, "category_id": 1, "bbox": [38.0, 18.0, 50.0, 84.0], "score": 0.9},
        {"image_id": 2, "category_id": 1, "bbox": [98.0, 28.0, 64.0, 104.0], "score": 0.3},
        {"image_id": 2, "category_id": 1, "bbox": [180.0, 100.0, 40.0, 60.0], "score": 0.7},
    ]
    (tmp_path / "dets.json").write_text(json.dumps(dets))
    boxes = load_detections(tmp_path / "dets.json", images=data, score_threshold=0.5)
    ds = TopDownKeypoints(
        annotations=data, image_root=root, augmenter=TopDownCrop(INPUT), seed=0, detections=boxes
    )
    assert len(ds) == 2 and ds.box_source == "detections"
    first, second = ds[0], ds[1]
    assert first["meta"]["score"] == pytest.approx(0.9) and first["meta"]["image_id"] == 1
    np.testing.assert_allclose(first["meta"]["bbox"], [38.0, 18.0, 50.0, 84.0])  # not clipped
    np.testing.assert_allclose(first["meta"]["center"], [63.0, 60.0])
    np.testing.assert_allclose(first["meta"]["size"], np.array([63.0, 84.0]) * 1.25)
    assert second["meta"]["score"] == pytest.approx(0.7)  # a box hanging over the image edge
    for s in (first, second):
        np.testing.assert_array_equal(s["keypoints"], 0)  # detections carry no keypoints


def test_missing_image_is_named_with_the_json_and_image_id(coco):
    data, root = coco
    (root / "sub" / "b.png").unlink()
    with pytest.raises(DataError, match=r"person_keypoints\.json: image 2: .*sub/b\.png"):
        TopDownKeypoints(annotations=data, image_root=root, augmenter=TopDownCrop(INPUT), seed=0)


def test_file_names_must_stay_inside_the_image_folder(tmp_path):
    path = write_dataset(tmp_path / "data")
    shutil.copy(tmp_path / "data" / "a.png", tmp_path / "outside.png")
    content = json.loads(path.read_text())
    content["images"][0]["file_name"] = "../outside.png"
    path.write_text(json.dumps(content))
    data = load_coco_keypoints(path, spec=COCO17)
    with pytest.raises(DataError, match=r"image 1 file_name '\.\./outside\.png'"):
        TopDownKeypoints(
            annotations=data, image_root=tmp_path / "data", augmenter=TopDownCrop(INPUT), seed=0
        )


def test_boxes_without_extent_are_refused(coco):
    data, root = coco
    flat = CocoInstance(7, 1, np.zeros((17, 3)), np.array([5.0, 5.0, 0.0, 0.0]), 0.0, "person")
    with pytest.raises(DataError, match=r"detection 7 \(image 1\): degenerate box"):
        TopDownKeypoints(
            annotations=data,
            image_root=root,
            augmenter=TopDownCrop(INPUT),
            seed=0,
            detections=[flat],
        )


def test_image_size_must_match_the_json(coco):
    data, root = coco
    cv2.imwrite(str(root / "a.png"), np.zeros((100, 160, 3), np.uint8))
    ds = TopDownKeypoints(annotations=data, image_root=root, augmenter=TopDownCrop(INPUT), seed=0)
    with pytest.raises(DataError, match=r"a\.png: image is 160x100 but .* image 1 is 160x120"):
        ds[0]


def test_another_spec_gets_the_shared_keypoints_by_name(coco):
    data, root = coco
    ds = TopDownKeypoints(
        annotations=data, image_root=root, augmenter=TopDownCrop(INPUT), seed=0, spec=MPII16
    )
    kp = ds.keypoints_image(1)
    assert kp.shape == (16, 3)
    for name in ("left_shoulder", "right_ankle", "left_wrist", "right_hip"):
        np.testing.assert_array_equal(
            kp[MPII16.index(name)], ANNOTATIONS[20][2][COCO17.index(name)]
        )
    for name in ("pelvis", "thorax", "upper_neck", "head_top"):  # not COCO keypoints
        np.testing.assert_array_equal(kp[MPII16.index(name)], 0)
    assert ds[1]["keypoints"].shape == (16, 3)


def test_aspect_ratio_comes_from_the_augmenter_or_must_be_given(coco):
    data, root = coco
    crop = TopDownCrop(INPUT)
    plain = lambda image, keypoints, center, size, rng: crop(image, keypoints, center, size)  # noqa: E731
    with pytest.raises(ValueError, match="aspect_ratio"):
        TopDownKeypoints(annotations=data, image_root=root, augmenter=plain, seed=0)
    ds = TopDownKeypoints(
        annotations=data, image_root=root, augmenter=plain, seed=0, aspect_ratio=1.0, padding=1.0
    )
    np.testing.assert_allclose(ds.sizes[0], [79.0, 79.0])  # square, unpadded
