"""The synthetic-animal loader on the fixture written in the reference's layout."""

from __future__ import annotations

import functools
import json
import shutil

import numpy as np
import pytest
import torch

from animalpose.datasets.fileio import DataError, read_image
from animalpose.datasets.formats.synthetic import (
    SyntheticAnimal,
    load_vertex_table,
    reference_synthetic_dir,
    synthetic_dir,
)
from animalpose.datasets.generator.cartoon import KEYPOINT_COLOURS, marker_radius
from animalpose.datasets.keypoints import VERTEX_TABLES

S = 64  # crop side used in these tests


@pytest.fixture(scope="module")
def dataset(eval_dataset):
    """``dataset(root, split="valid", **kwargs)``: the horse synthetic-animal loader as
    evaluated, S-px crops."""
    return functools.partial(eval_dataset, cls=SyntheticAnimal, animal="horse", input_size=S)


def test_layout_counts_and_lexicographic_order(dataset, synthetic):
    NUM_SYNTHETIC = synthetic.num_images
    folder = synthetic_dir(synthetic.root, "horse")
    names = sorted(p.name for p in folder.glob("*img.png"))
    assert len(names) == NUM_SYNTHETIC
    everything = dataset(synthetic.root, split="all")
    assert [p.name for p in everything.images] == names
    assert names[:3] == [
        "0_SK_horse_fixture_img.png",
        "10_SK_horse_fixture_img.png",
        "11_SK_horse_fixture_img.png",
    ]
    train, valid = dataset(synthetic.root, "train"), dataset(synthetic.root, "valid")
    assert len(valid) == NUM_SYNTHETIC // 5 and len(train) == NUM_SYNTHETIC - NUM_SYNTHETIC // 5
    np.testing.assert_array_equal(train.indices, np.load(folder / "train_idxs.npy"))
    assert not set(train.indices) & set(valid.indices)
    assert len(dataset(synthetic.root, "train", limit=3)) == 3


def _expected(ds, index):
    """Independent crop of sample ``index`` from the raw files (docs/reference_compat.md §1.1)."""
    image = read_image(ds.image_path(index))
    h, w = image.shape[:2]
    vertices = np.load(str(ds.image_path(index)).replace("img.png", "kpts.npy")).astype(float)
    x = np.clip(vertices[:, 0], 0, w - 1)
    y = np.clip(vertices[:, 1], 0, h - 1)
    cx, cy = (x.min() + x.max()) / 2, (y.min() + y.max()) / 2
    side = 1.25 * max(x.max() - x.min(), y.max() - y.min())
    kp = vertices[list(VERTEX_TABLES["horse"]), :2].astype(np.float64)
    crop = (kp - [cx, cy]) * (S / side) + (S - 1) / 2
    return crop, (cx, cy), side


def test_crop_keypoints_match_independent_computation(dataset, synthetic):
    ds = dataset(synthetic.root)
    for i in range(len(ds)):
        sample = ds[i]
        crop, center, side = _expected(ds, i)
        np.testing.assert_allclose(sample["meta"]["center"], center, atol=1e-3)
        np.testing.assert_allclose(sample["meta"]["size"], [side, side], atol=1e-3)
        inside = sample["keypoints"][:, 2].numpy() > 0
        assert inside.sum() >= 15  # visible forced to 1 (the file's far-side zeros ignored)
        np.testing.assert_allclose(sample["keypoints"][inside, :2].numpy(), crop[inside], atol=1e-3)
        m = sample["meta"]["matrix"]
        kp_image = sample["meta"]["keypoints_image"]
        np.testing.assert_allclose(kp_image[:, :2] @ m[:, :2].T + m[:, 2], crop, atol=1e-6)


def test_drawn_keypoint_colour_is_under_the_crop_keypoint(dataset, synthetic):
    """The fixture's image and annotation agree: each keypoint's disk colour is at its crop
    location (skipping keypoints covered by a later-drawn disk)."""
    ds = dataset(synthetic.root, split="all")
    # The largest disk the fixture can draw at this frame size, plus anti-aliasing.
    w, h = synthetic.frame_size
    reach = marker_radius(0.4 * min(w, h * 4 / 3)) + 1.5
    checked = 0
    for i in range(len(ds)):
        sample = ds[i]
        image = sample["image"].numpy().transpose(1, 2, 0).astype(int)
        kp_src = sample["meta"]["keypoints_image"][:, :2]
        for k, (x, y, v) in enumerate(sample["keypoints"].numpy()):
            later = np.linalg.norm(kp_src[k + 1 :] - kp_src[k], axis=1)
            if v == 0 or (later < 2 * reach).any():
                continue
            pixel = image[round(float(y)), round(float(x))]
            nearest = np.argmin(np.abs(KEYPOINT_COLOURS.astype(int) - pixel).sum(axis=1))
            assert nearest == k, (i, k, pixel)
            checked += 1
    assert checked > 0.6 * len(ds) * 18


def test_contract_types(dataset, synthetic):
    sample = dataset(synthetic.root)[0]
    assert sample["image"].dtype == torch.uint8 and sample["image"].shape == (3, S, S)
    assert sample["keypoints"].dtype == torch.float32 and sample["keypoints"].shape == (18, 3)
    meta = sample["meta"]
    assert meta["matrix"].dtype == np.float64 and meta["matrix"].shape == (2, 3)
    assert meta["keypoints_image"].shape == (18, 3)
    assert meta["shot"] == -1 and meta["frame"] == -1 and meta["flipped"] is False


def _copy(synthetic, tmp_path, count=6):
    src = synthetic_dir(synthetic.root, "horse")
    dst = synthetic_dir(tmp_path, "horse")
    dst.mkdir(parents=True)
    for p in sorted(src.glob("*img.png"))[:count]:
        shutil.copy(p, dst / p.name)
        kp = p.name.replace("img.png", "kpts.npy")
        shutil.copy(src / kp, dst / kp)
    return dst


def test_bad_keypoint_file_shape_names_the_file(dataset, synthetic, tmp_path):
    dst = _copy(synthetic, tmp_path)
    victim = sorted(dst.glob("*kpts.npy"))[2]
    np.save(victim, np.zeros((10, 3)))
    message = rf"{victim.name}: keypoint array must have shape \(3299, 3\)"
    with pytest.raises(DataError, match=message):
        dataset(tmp_path, split="all")


def test_missing_root_folder_and_images(dataset, tmp_path):
    with pytest.raises(DataError, match=r"nowhere: image path does not exist.*synthetic_animal/"):
        dataset(tmp_path / "nowhere")
    with pytest.raises(DataError, match="horse_combineds5r5_texture: folder not found"):
        dataset(tmp_path)
    synthetic_dir(tmp_path, "horse").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no \*img.png images"):
        dataset(tmp_path)


def test_truncated_png_names_the_file(dataset, synthetic, tmp_path):
    dst = _copy(synthetic, tmp_path)
    ds = dataset(tmp_path, split="all")
    victim = ds.image_path(1)
    victim.write_bytes(victim.read_bytes()[:-200])
    with pytest.raises(DataError, match=rf"{victim.name}: truncated PNG"):
        ds[1]
    assert ds[0]["image"].shape == (3, S, S)
    assert dst.exists()


def test_empty_split_file_names_the_file(dataset, synthetic, tmp_path):
    dst = _copy(synthetic, tmp_path)
    np.save(dst / "train_idxs.npy", np.arange(5))
    np.save(dst / "valid_idxs.npy", np.array([], dtype=np.int64))
    with pytest.raises(DataError, match="valid_idxs.npy: split file is empty"):
        dataset(tmp_path)


def test_reference_split_mirror_is_honoured(dataset, synthetic, tmp_path):
    _copy(synthetic, tmp_path)
    mirror = tmp_path / "data" / "synthetic_animal" / "horse_combineds5r5_texture"
    mirror.mkdir(parents=True)
    np.save(mirror / "train_idxs.npy", np.array([5, 0, 1, 2]))
    np.save(mirror / "valid_idxs.npy", np.array([4, 3]))
    ds = dataset(tmp_path, split_dir=tmp_path / "data")
    assert ds.indices.tolist() == [4, 3]


def test_vertex_table_json_and_errors(tmp_path):
    table = tmp_path / "zebra.json"
    rows = list(range(100, 118))
    table.write_text(json.dumps({"animal": "zebra", "rows": rows}))
    assert load_vertex_table("zebra", table, num_keypoints=18).tolist() == rows
    assert load_vertex_table("sheep", num_keypoints=18)[0] == 2046  # packaged table
    assert load_vertex_table("horse", num_keypoints=18).tolist() == list(VERTEX_TABLES["horse"])
    with pytest.raises(DataError, match="no vertex table for animal 'zebra'"):
        load_vertex_table("zebra", num_keypoints=18)
    table.write_text(json.dumps({"animal": "zebra", "rows": rows[:10]}))
    with pytest.raises(DataError, match="zebra.json: vertex table must list 18 integer rows"):
        load_vertex_table("zebra", table, num_keypoints=18)
    with pytest.raises(DataError, match=r"distinct and in \[0, 3299\)"):
        load_vertex_table("zebra", [5000] + rows[1:], num_keypoints=18)


def test_keypoints_outside_the_frame_are_not_visible(dataset, synthetic, tmp_path):
    dst = _copy(synthetic, tmp_path, count=5)
    path = min(dst.glob("*kpts.npy"))
    vertices = np.load(path)
    vertices[VERTEX_TABLES["horse"][3], :2] = (-50.0, 20.0)  # left front hoof off the frame
    np.save(path, vertices)
    sample = dataset(tmp_path, split="all")[0]
    assert sample["meta"]["keypoints_image"][3, 2] == 0
    assert sample["keypoints"][3].tolist() == [0.0, 0.0, 0.0]


def test_zero_byte_keypoint_file_names_the_file(dataset, synthetic, tmp_path):
    dst = _copy(synthetic, tmp_path)
    victim = sorted(dst.glob("*kpts.npy"))[1]
    victim.write_bytes(b"")
    with pytest.raises(DataError, match=rf"{victim.name}: cannot read keypoint file"):
        dataset(tmp_path, split="all")


def test_keypoint_file_swapped_for_empty_after_construction_names_it(dataset, synthetic, tmp_path):
    dst = _copy(synthetic, tmp_path)
    ds = dataset(tmp_path, split="all")
    victim = dst / ds.image_path(2).name.replace("img.png", "kpts.npy")
    victim.write_bytes(b"")
    with pytest.raises(DataError, match=rf"{victim.name}: cannot read keypoint file"):
        ds[2]


def test_nan_vertex_rows_blame_the_keypoint_file(dataset, synthetic, tmp_path):
    dst = _copy(synthetic, tmp_path)
    ds = dataset(tmp_path, split="all")
    victim = dst / ds.image_path(0).name.replace("img.png", "kpts.npy")
    vertices = np.load(victim)
    vertices[[100, 2000], 1] = np.nan
    np.save(victim, vertices)
    message = rf"{victim.name}: vertex rows \[100, 2000\] have non-finite coordinates"
    with pytest.raises(DataError, match=message):
        ds[0]


@pytest.mark.parametrize("animal", ["../../x", "horse/..", "", "a b", "/abs"])
def test_animal_names_that_are_not_plain_are_refused(dataset, synthetic, tmp_path, animal):
    message = r"animal name .* is not a plain name \(letters, digits, _ and -\)"
    for path_of in (synthetic_dir, reference_synthetic_dir):
        with pytest.raises(DataError, match=message):
            path_of(tmp_path, animal)
    with pytest.raises(DataError, match=message):
        dataset(synthetic.root, animal=animal, vertex_table=list(VERTEX_TABLES["horse"]))


def test_animal_name_cannot_escape_the_image_path(dataset, synthetic, tmp_path):
    """``--animal ../../x`` used to read, and write split and mean files, outside the data."""
    root = tmp_path / "a" / "b"
    (root / "synthetic_animal").mkdir(parents=True)
    _copy(synthetic, tmp_path / "a")
    outside = tmp_path / "a" / "horse_combineds5r5_texture"
    (tmp_path / "a" / "synthetic_animal" / "horse_combineds5r5_texture").rename(outside)
    rows = list(VERTEX_TABLES["horse"])
    with pytest.raises(DataError, match="animal name '../../horse' is not a plain name"):
        dataset(root, animal="../../horse", vertex_table=rows)
    assert not list(outside.glob("*idxs.npy"))


def test_keypoint_file_that_is_a_fifo_is_refused_without_blocking(dataset, synthetic, tmp_path):
    import os
    import threading

    dst = _copy(synthetic, tmp_path)
    victim = sorted(dst.glob("*kpts.npy"))[0]
    victim.unlink()
    os.mkfifo(victim)
    outcome = []

    def build():
        try:
            dataset(tmp_path, split="all")
        except DataError as err:
            outcome.append(str(err))

    worker = threading.Thread(target=build, daemon=True)  # np.load on a FIFO blocks for ever
    worker.start()
    worker.join(timeout=20)
    assert outcome == [f"{victim}: keypoint file is not a regular file (a named pipe)"]
