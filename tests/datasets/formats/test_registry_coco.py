"""The ``coco`` data set of the registry: both folder layouts (real COCO 2017 and the built-in
humans), errors that list the paths tried, detection boxes, limits, augmenters and ImageNet's
mean/std, on tiny COCO keypoint files written here."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.registry import (
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    TOPDOWN_DATASETS,
    build_dataset,
    coco_paths,
    dataset_mean_std,
    detections_path,
    is_topdown,
)
from animalpose.datasets.formats.topdown import TopDownKeypoints
from animalpose.datasets.geometry import apply_affine
from animalpose.datasets.keypoints import ANIMAL18, COCO17
from animalpose.datasets.transforms.topdown import TopDownAugment, TopDownCrop

INPUT = (48, 64)  # (w, h), 192:256
IMAGE = (160, 120)  # (W, H) of every image
#: COCO17 keypoints of an upright figure, relative to its box corner (box 40 x 90).
FIGURE = {
    "nose": (20, 8), "left_eye": (22, 6), "right_eye": (18, 6), "left_ear": (25, 8),
    "right_ear": (15, 8), "left_shoulder": (28, 20), "right_shoulder": (12, 20),
    "left_elbow": (32, 34), "right_elbow": (8, 34), "left_wrist": (34, 46),
    "right_wrist": (6, 46), "left_hip": (25, 50), "right_hip": (15, 50),
    "left_knee": (26, 66), "right_knee": (14, 66), "left_ankle": (27, 82),
    "right_ankle": (13, 82),
}  # fmt: skip
#: People per image of every split (image ids count up through the splits, annotation ids are
#: image id * 10 + person); person p stands at x = 10 + 60 p.
PEOPLE = {"train": [2, 1, 1], "val": [2, 1, 1], "test": [1]}


def person_keypoints(p: int) -> np.ndarray:
    """(17, 3) x, y, v of person ``p`` in COCO17 order; every keypoint visible."""
    kp = np.zeros((17, 3))
    for name, (x, y) in FIGURE.items():
        kp[COCO17.index(name)] = [10 + 60 * p + x, 15 + y, 2]
    return kp


def write_coco(root, *, layout: str = "builtin", splits=("train", "val"), nested=False) -> dict:
    """Write ``splits`` under ``root`` in ``layout`` ("builtin": person_keypoints_val.json and
    val/; "coco2017": person_keypoints_val2017.json and val2017/, or images/val2017/ when
    ``nested``), plus ``<split>_detections.json``. Returns split -> annotation ids."""
    rng = np.random.default_rng(0)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    image_id, ids = 0, {}
    for split in splits:
        name = f"{split}2017" if layout == "coco2017" else split
        folder = root / "images" / name if nested else root / name
        folder.mkdir(parents=True, exist_ok=True)
        images, anns, dets = [], [], []
        for count in PEOPLE[split]:
            image_id += 1
            file_name = f"{image_id:012d}.jpg"
            pixels = rng.integers(0, 255, (IMAGE[1], IMAGE[0], 3), dtype=np.uint8)
            cv2.imwrite(str(folder / file_name), pixels)
            images.append({"id": image_id, "file_name": file_name, "width": 160, "height": 120})
            for p in range(count):
                box = [10.0 + 60 * p, 15.0, 40.0, 90.0]
                kp = person_keypoints(p)
                anns.append(
                    {
                        "id": image_id * 10 + p, "image_id": image_id, "category_id": 1,
                        "keypoints": kp.reshape(-1).tolist(), "num_keypoints": 17,
                        "bbox": box, "area": 3600.0, "iscrowd": 0,
                    }
                )  # fmt: skip
                # A detection per person (score 0.9 / 0.4 alternating) and one per image at 0.2.
                score = 0.9 if p % 2 == 0 else 0.4
                dets.append({"image_id": image_id, "category_id": 1, "bbox": box, "score": score})
            dets.append(
                {"image_id": image_id, "category_id": 1, "bbox": [0, 0, 30, 60], "score": 0.2}
            )
        ids[split] = [a["id"] for a in anns]
        suffix = "2017" if layout == "coco2017" else ""
        data = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.keypoints)}],
        }
        (root / "annotations" / f"person_keypoints_{split}{suffix}.json").write_text(
            json.dumps(data)
        )
        (root / "annotations" / f"{split}_detections.json").write_text(json.dumps(dets))
    return ids


def coco(root, split: str, **kwargs) -> TopDownKeypoints:
    options = dict(
        root=root,
        animal="horse",
        split=split,
        input_size=INPUT,
        spec=COCO17,
        seed=0,
        scale_factor=0.35,
        rot_factor=45.0,
        augment_backend="fused",
    )
    return build_dataset("coco", **{**options, **kwargs})


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    root = tmp_path_factory.mktemp("humans")
    return root, write_coco(root, splits=("train", "val", "test"))


def test_coco_is_the_one_topdown_dataset():
    assert TOPDOWN_DATASETS == ("coco",)
    assert DATASETS["coco"].cls is TopDownKeypoints
    assert is_topdown("coco") and not is_topdown("real_animal_sp")


def test_builtin_layout_splits(builtin):
    root, _ = builtin
    for split, name in (("train", "train"), ("valid", "val"), ("test", "test")):
        paths = coco_paths(root, split)
        assert paths.annotations == root / "annotations" / f"person_keypoints_{name}.json"
        assert (paths.images, paths.layout, paths.split) == (root / name, "builtin", name)


@pytest.mark.parametrize("nested", [False, True])
def test_coco2017_layout(tmp_path, nested):
    write_coco(tmp_path, layout="coco2017", splits=("val",), nested=nested)
    paths = coco_paths(tmp_path, "valid")
    assert paths.annotations == tmp_path / "annotations" / "person_keypoints_val2017.json"
    assert paths.images == (tmp_path / "images" / "val2017" if nested else tmp_path / "val2017")
    assert paths.layout == "coco2017"
    ds = coco(tmp_path, "valid")
    assert len(ds) == sum(PEOPLE["val"]) and ds[0]["image"].shape == (3, 64, 48)


def test_coco2017_layout_wins_over_builtin(tmp_path):
    write_coco(tmp_path, layout="coco2017", splits=("val",))
    write_coco(tmp_path, layout="builtin", splits=("val",))
    assert coco_paths(tmp_path, "valid").layout == "coco2017"


def test_missing_annotations_list_the_paths_tried(tmp_path):
    with pytest.raises(DataError) as err:
        coco_paths(tmp_path, "valid")
    message = str(err.value)
    assert str(tmp_path / "annotations" / "person_keypoints_val2017.json") in message
    assert str(tmp_path / "annotations" / "person_keypoints_val.json") in message
    # COCO has no test keypoints: the message says so.
    write_coco(tmp_path, layout="coco2017", splits=("val",))
    with pytest.raises(DataError, match="person_keypoints_test2017.json.*no test keypoint"):
        coco_paths(tmp_path, "test")
    with pytest.raises(DataError, match="has no split 'all'; known: train, valid, test"):
        coco_paths(tmp_path, "all")


def test_annotations_without_images_list_the_folders_tried(tmp_path):
    write_coco(tmp_path, layout="coco2017", splits=("val",))
    (tmp_path / "val2017").rename(tmp_path / "elsewhere")
    with pytest.raises(DataError) as err:
        coco_paths(tmp_path, "valid")
    assert str(tmp_path / "val2017") in str(err.value)
    assert str(tmp_path / "images" / "val2017") in str(err.value)


def test_validation_samples_are_the_ground_truth_people(builtin):
    root, ids = builtin
    ds = coco(root, "valid")
    assert isinstance(ds.augmenter, TopDownCrop) and not ds.augmenter.unbiased
    assert ds.box_source == "ground truth"
    assert [inst.id for inst in ds.instances] == ids["val"]
    for i, inst in enumerate(ds.instances):
        sample = ds[i]
        p = inst.id % 10
        meta = sample["meta"]
        np.testing.assert_array_equal(meta["keypoints_image"], person_keypoints(p))
        crop = apply_affine(person_keypoints(p)[:, :2], meta["matrix"])
        np.testing.assert_allclose(sample["keypoints"][:, :2].numpy(), crop, atol=1e-4)
        assert sample["keypoints"][:, 2].tolist() == [1.0] * 17  # all labelled, all on the crop
        assert meta["image_id"] == inst.image_id and meta["instance_id"] == inst.id


def test_training_split_augments_with_the_spec(builtin):
    root, ids = builtin
    ds = coco(root, "train", scale_factor=0.3, rot_factor=40.0, unbiased=True, augment_seed=5)
    aug = ds.augmenter
    assert isinstance(aug, TopDownAugment)
    assert (aug.input_size, aug.scale_factor, aug.rot_factor) == (INPUT, 0.3, 40.0)
    np.testing.assert_array_equal(aug.flip_index, COCO17.flip_index)
    assert aug.upper_body == tuple(COCO17.upper_body_index) and aug.unbiased
    assert ds.seed == 5 and [inst.id for inst in ds.instances] == ids["train"]
    # Training crops ground truth even when detections are asked for.
    assert coco(root, "train", detections="auto").box_source == "ground truth"
    # The test split of the built-in humans exists.
    assert len(coco(root, "test")) == sum(PEOPLE["test"])


def test_detections_auto_and_threshold(builtin):
    root, _ = builtin
    paths = coco_paths(root, "valid")
    assert detections_path(paths, "auto") == root / "annotations" / "val_detections.json"
    every = coco(root, "valid", detections="auto")
    assert every.box_source == "detections"
    # one box per person plus one low-scoring box per image (write_coco)
    assert len(every) == sum(PEOPLE["val"]) + len(PEOPLE["val"])
    kept = coco(root, "valid", detections="auto", det_score=0.5)
    assert [inst.score for inst in kept.instances] == [0.9, 0.9, 0.9]  # person 0 of each image
    explicit = coco(root, "valid", detections=str(root / "annotations" / "val_detections.json"))
    assert len(explicit) == len(every)
    sample = kept[0]
    assert sample["keypoints"][:, 2].sum() == 0  # detection boxes carry no keypoints
    assert sample["meta"]["score"] == pytest.approx(0.9)


def test_missing_detections_list_the_paths_tried(tmp_path):
    write_coco(tmp_path, layout="coco2017", splits=("val",))
    (tmp_path / "annotations" / "val_detections.json").unlink()
    with pytest.raises(DataError) as err:
        coco(tmp_path, "valid", detections="auto")
    assert str(tmp_path / "annotations" / "val_detections.json") in str(err.value)
    hrnet = "person_detection_results/COCO_val2017_detections_AP_H_56_person.json"
    assert str(tmp_path / hrnet) in str(err.value)
    # SimpleBaseline/HRNet's file is found in the COCO layout.
    (tmp_path / "person_detection_results").mkdir()
    (tmp_path / hrnet).write_text(json.dumps([{"image_id": 1, "category_id": 1,
                                               "bbox": [1, 2, 30, 40], "score": 0.7}]))  # fmt: skip
    assert len(coco(tmp_path, "valid", detections="auto")) == 1
    with pytest.raises(DataError, match="nothing.json: detection results file"):
        coco(tmp_path, "valid", detections=str(tmp_path / "nothing.json"))


def test_limit_keeps_whole_images(builtin):
    root, ids = builtin
    first = coco(root, "valid", limit=1)  # the first image holds two people
    assert [inst.id for inst in first.instances] == ids["val"][:2]
    assert sorted(first.annotations.images) == [first.instances[0].image_id]
    assert len(first.annotations.instances) == 2
    three = coco(root, "valid", limit=3)
    assert len(three) == 3 and len(three.annotations.images) == 2
    dets = coco(root, "valid", detections="auto", limit=1)
    assert {inst.image_id for inst in dets.instances} == {dets.annotations.instances[0].image_id}
    assert len(dets) == 3  # two people and the low-scoring box of image 1
    assert len(coco(root, "valid", limit=100)) == sum(PEOPLE["val"])


def test_imagenet_mean_std():
    mean, std = dataset_mean_std("coco", root="/nonexistent", animal="horse")
    np.testing.assert_array_equal(mean, [0.485, 0.456, 0.406])
    np.testing.assert_array_equal(std, [0.229, 0.224, 0.225])
    assert (tuple(mean), tuple(std)) == (IMAGENET_MEAN, IMAGENET_STD)


def test_options_of_the_other_kind_are_refused():
    animal = dict(
        root="unused", animal="horse", split="valid", spec=ANIMAL18, seed=0,
        scale_factor=0.25, rot_factor=30.0, augment_backend="fused",
    )  # fmt: skip
    with pytest.raises(ValueError, match="crops squares; got input size 48x64"):
        build_dataset("real_animal", input_size=(48, 64), **animal)
    with pytest.raises(ValueError, match="detections and unbiased crops apply to top-down"):
        build_dataset("real_animal", input_size=64, detections="auto", **animal)
    with pytest.raises(ValueError, match="detections and unbiased crops apply to top-down"):
        build_dataset("synthetic_animal", input_size=64, unbiased=True, **animal)
    for option in ({"occlusion": 0.5}, {"legacy": True}):
        with pytest.raises(ValueError, match="apply to the animal data sets only"):
            coco("unused", "valid", **option)
