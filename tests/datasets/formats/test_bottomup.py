"""The ``coco_bottomup`` data set (datasets/formats/bottomup.py): one sample per whole image,
every person's keypoints through the sample's affine and back to the json, which images each
split holds, the registry entry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from animalpose.datasets.fileio import write_image
from animalpose.datasets.formats.bottomup import MAX_PEOPLE, BottomUpKeypoints
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
from animalpose.datasets.transforms.bottomup import BottomUpAugment, BottomUpResize

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
    assert batch["meta"]["matrix"].shape == (2, 2, 3)
    assert batch["meta"]["num_people"].tolist() == [2, 2]
