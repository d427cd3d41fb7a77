"""The ``coco_bottomup`` data set (datasets/formats/bottomup.py): one sample per whole image,
every person's keypoints through the sample's affine and back to the json, which images each
split holds, the registry entry, and the crowd / keypoint-less regions read back as loss masks
(polygons, RLE, boxes) that move with the image."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from animalpose.datasets.fileio import DataError, write_image
from animalpose.datasets.formats.bottomup import (
    MAX_PEOPLE,
    BottomUpKeypoints,
    build_bottomup_dataset,
    image_mask,
    load_ignore_regions,
)
from animalpose.datasets.formats.registry import (
    BOTTOMUP_DATASETS,
    TOPDOWN_DATASETS,
    build_dataset,
    dataset_mean_std,
    is_bottomup,
)
from animalpose.datasets.generator.fixtures import make_coco_fixture
from animalpose.datasets.geometry import apply_affine, invert_affine
from animalpose.datasets.keypoints import COCO17
from animalpose.datasets.transforms.bottomup import BottomUpAugment, BottomUpResize, warp_mask

S = 64
#: The fixture's images are 160 x 120 with two people each.
IMAGE = (160, 120)


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    """A COCO-layout folder: 3 train and 3 val images of two people, plus a val image without
    anyone and a crowd annotation on the first val image."""
    root = tmp_path_factory.mktemp("people")
    make_coco_fixture(root, images=3)
    path = root / "annotations" / "person_keypoints_val.json"
    data = json.loads(path.read_text())
    write_image(root / "val" / "empty.jpg", np.zeros((120, 160, 3), np.uint8), atomic=False)
    data["images"].append({"id": 99, "file_name": "empty.jpg", "width": 160, "height": 120})
    first = data["images"][0]["id"]
    crowd = {**data["annotations"][0], "id": 999, "iscrowd": 1, "image_id": first}
    data["annotations"].append(crowd)
    path.write_text(json.dumps(data))
    return root


def build(root, split: str, **kwargs):
    options = dict(
        root=root, animal="horse", input_size=S, spec=COCO17, seed=0, scale_factor=0.25,
        rot_factor=30.0, augment_backend="fused",
    )  # fmt: skip
    options.update(kwargs)
    return build_dataset("coco_bottomup", split=split, **options)


def json_people(root, split: str) -> dict[int, np.ndarray]:
    """image id -> (P, 17, 3) keypoints of the file's non-crowd annotations, file order."""
    data = json.loads((root / "annotations" / f"person_keypoints_{split}.json").read_text())
    out: dict[int, list] = {}
    for ann in data["annotations"]:
        if not ann["iscrowd"]:
            out.setdefault(ann["image_id"], []).append(np.reshape(ann["keypoints"], (17, 3)))
    return {k: np.array(v, dtype=np.float64) for k, v in out.items()}


def test_registry_entry():
    assert BOTTOMUP_DATASETS == ("coco_bottomup",) and is_bottomup("coco_bottomup")
    assert "coco_bottomup" not in TOPDOWN_DATASETS and not is_bottomup("coco")
    mean, std = dataset_mean_std("coco_bottomup", root="unused", animal="horse")
    np.testing.assert_allclose(mean, [0.485, 0.456, 0.406])
    np.testing.assert_allclose(std, [0.229, 0.224, 0.225])


def test_splits_hold_images_with_people_for_training_and_every_image_for_evaluation(people):
    train, valid = build(people, "train"), build(people, "valid")
    assert isinstance(train, BottomUpKeypoints) and isinstance(valid, BottomUpKeypoints)
    assert isinstance(train.augmenter, BottomUpAugment)
    assert type(valid.augmenter) is BottomUpResize
    assert (len(train), len(valid)) == (3, 4)
    assert 99 in valid.image_ids.tolist() and 99 not in train.image_ids.tolist()
    assert valid.annotations.skipped["crowd"] == 1  # COCO's rule: crowds are not people
    limited = build(people, "valid", limit=2)
    assert limited.image_ids.tolist() == valid.image_ids[:2].tolist()
    assert set(limited.annotations.images) == set(limited.image_ids.tolist())
    assert {inst.image_id for inst in limited.instances} <= set(limited.image_ids.tolist())
    with pytest.raises(ValueError, match="occlusion and legacy"):
        build(people, "train", legacy=True)
    with pytest.raises(ValueError, match="crops squares"):
        build(people, "valid", input_size=(64, 48))


def test_evaluation_sample_round_trips_to_the_json(people):
    """Every person of the file, padded to MAX_PEOPLE, on the input by meta's matrix; the
    inverse matrix gives the json's coordinates back. The image without people is all padding."""
    valid = build(people, "valid")
    expected = json_people(people, "val")
    for index in range(len(valid)):
        sample = valid[index]
        meta = sample["meta"]
        assert sample["image"].shape == (3, S, S) and sample["image"].dtype == torch.uint8
        assert sample["keypoints"].shape == (MAX_PEOPLE, 17, 3)
        truth = expected.get(meta["image_id"], np.zeros((0, 17, 3)))
        assert meta["num_people"] == len(truth) and not meta["flipped"]
        assert meta["image_size"].tolist() == list(IMAGE)
        np.testing.assert_array_equal(meta["keypoints_image"][: len(truth)], truth)
        kp = sample["keypoints"].numpy().astype(np.float64)
        assert not kp[len(truth) :].any()  # padding
        back = apply_affine(kp[: len(truth), :, :2], invert_affine(meta["matrix"]))
        np.testing.assert_allclose(back, truth[..., :2], atol=1e-3)
        np.testing.assert_array_equal(kp[: len(truth), :, 2], 1.0)  # all labelled, on the input


def test_augmented_samples_round_trip_through_flips_and_epochs(people):
    """Training draws change with the epoch; whatever the draw, a keypoint left on the input
    inverts back to its json position (on a flip, from its mirrored channel)."""
    train = build(people, "train")
    expected = json_people(people, "train")
    flips, matrices = 0, set()
    for epoch in range(4):
        train.set_epoch(epoch)
        for index in range(len(train)):
            sample = train[index]
            meta = sample["meta"]
            truth = expected[meta["image_id"]]
            kp = sample["keypoints"].numpy()[: len(truth)].astype(np.float64)
            if meta["flipped"]:
                flips += 1
                kp = kp[:, COCO17.flip_index]  # mirrored channels back to the json's order
            back = apply_affine(kp[..., :2], invert_affine(meta["matrix"]))
            kept = kp[..., 2] > 0
            assert kept.sum() > 0
            np.testing.assert_allclose(back[kept], truth[..., :2][kept], atol=1e-3)
            matrices.add(np.round(meta["matrix"], 6).tobytes())
    assert flips > 0 and len(matrices) == 4 * len(train)
    # the same (seed, epoch, index) draws the same sample
    train.set_epoch(1)
    torch.testing.assert_close(train[0]["keypoints"], train[0]["keypoints"])


def test_samples_collate_into_batches(people):
    batch = torch.utils.data.default_collate([build(people, "valid")[i] for i in range(2)])
    assert batch["image"].shape == (2, 3, S, S)
    assert batch["keypoints"].shape == (2, MAX_PEOPLE, 17, 3)
    assert batch["mask"].shape == (2, S, S) and batch["mask"].dtype == torch.uint8
    assert not batch["mask"][0].all() and batch["mask"][1].all()  # the crowd is on image 0
    assert batch["meta"]["matrix"].shape == (2, 2, 3)
    assert batch["meta"]["num_people"].tolist() == [2, 2]


# --- ignore regions and loss masks ----------------------------------------------------------


def _compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


@pytest.fixture(scope="module")
def regions_root(tmp_path_factory):
    """One image per split (160 x 120, two people) with four more annotations: a keypoint-less
    person with a polygon (x 20-50, y 10-40), a crowd with an uncompressed RLE (column 0), a
    crowd with a compressed RLE (x 150-159, y 100-119) and a keypoint-less person with only a
    box (x 60-80, y 80-90)."""
    root = tmp_path_factory.mktemp("regions")
    make_coco_fixture(root, images=1)
    corner = np.zeros((120, 160), np.uint8)
    corner[100:, 150:] = 1
    for split in ("train", "val"):
        path = root / "annotations" / f"person_keypoints_{split}.json"
        data = json.loads(path.read_text())
        base = {"image_id": data["images"][0]["id"], "category_id": 1, "area": 100.0}
        none = {"keypoints": [0] * 51, "num_keypoints": 0}
        data["annotations"] += [
            {**base, **none, "id": 501, "iscrowd": 0, "bbox": [20, 10, 30, 30],
             "segmentation": [[20, 10, 50, 10, 50, 40, 20, 40]]},
            {**base, **none, "id": 502, "iscrowd": 1, "bbox": [0, 0, 1, 120],
             "segmentation": {"size": [120, 160], "counts": [0, 120, 160 * 120 - 120]}},
            {**base, **none, "id": 503, "iscrowd": 1, "bbox": [150, 100, 10, 20],
             "segmentation": _compressed_rle(corner)},
            {**base, **none, "id": 504, "iscrowd": 0, "bbox": [60.0, 80.0, 20.0, 10.0]},
        ]  # fmt: skip
        path.write_text(json.dumps(data))
    return root


def test_ignore_regions_are_read_back_and_drawn(regions_root):
    """Each region's pixels by hand: the polygon's 30 x 30 pixels, column 0 of the RLE, the
    compressed RLE's corner, the box's 20 x 10; the people stay people, not regions."""
    valid = build(regions_root, "valid")
    regions = load_ignore_regions(valid.annotations)
    (image,) = valid.image_ids.tolist()
    assert [(r.id, r.reason) for r in regions[image]] == [
        (501, "no_keypoints"),
        (502, "crowd"),
        (503, "crowd"),
        (504, "no_keypoints"),
    ]
    assert len(valid.instances) == 2  # the two people of the fixture
    mask = image_mask(regions[image], 160, 120)
    expected = np.ones((120, 160), np.uint8)
    expected[10:40, 20:50] = 0
    expected[:, 0] = 0
    expected[100:, 150:] = 0
    expected[80:90, 60:80] = 0
    np.testing.assert_array_equal(mask, expected)
    assert image_mask([], 160, 120).all()


@pytest.mark.parametrize("split", ["valid", "train"])
def test_samples_carry_the_mask_warped_like_the_image(regions_root, split):
    """Every sample's mask is the image mask through the sample's own matrix (augmented draws
    too); the people's keypoints lie where the mask counts; a build without masks gives ones."""
    dataset = build(regions_root, split)
    regions = load_ignore_regions(dataset.annotations)
    for epoch in range(3):
        dataset.set_epoch(epoch)
        sample = dataset[0]
        matrix = sample["meta"]["matrix"]
        expected = warp_mask(image_mask(regions[sample["meta"]["image_id"]], 160, 120), matrix, S)
        mask = sample["mask"].numpy()
        assert mask.shape == (S, S) and mask.dtype == np.uint8
        np.testing.assert_array_equal(mask, expected)
        assert 0 < (mask == 0).sum() < S * S
        kp = sample["keypoints"].numpy()
        cells = np.round(kp[kp[..., 2] > 0][:, :2]).astype(int)
        assert len(cells) and mask[cells[:, 1], cells[:, 0]].mean() > 0.9  # people count
    unmasked = build_bottomup_dataset(
        root=regions_root, split=split, input_size=S, spec=COCO17, seed=0,
        augment=split == "train", rot_factor=30.0, limit=0, masks=False,
    )  # fmt: skip
    assert unmasked.ignore_regions == {} and unmasked[0]["mask"].all()


def test_a_bad_segmentation_is_named(tmp_path):
    make_coco_fixture(tmp_path, images=1, splits=("val",))
    path = tmp_path / "annotations" / "person_keypoints_val.json"
    data = json.loads(path.read_text())
    bad = {**data["annotations"][0], "id": 777, "iscrowd": 1, "segmentation": [[1, 2, 3, 4]]}
    data["annotations"].append(bad)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="annotation id 777: segmentation must be polygons"):
        build(tmp_path, "valid")
    bad["segmentation"] = {"size": [10, 10], "counts": [100]}
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"annotation id 777: RLE size \[10, 10\]"):
        build(tmp_path, "valid")
