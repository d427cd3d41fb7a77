"""The TigDog loaders read a benchmark's train/valid/test files; a missing or bad test file."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.crops import RealAnimalCrop, write_real_crops
from animalpose.datasets.formats.tigdog import RealAnimal, load_tigdog
from animalpose.datasets.transforms.crop import CenterCrop

S = 64  # crop side


@pytest.fixture(scope="module")
def real(eval_dataset):
    """``real(root, split, cls=RealAnimal)``: a dog TigDog loader as evaluated, S-px crops."""
    return functools.partial(eval_dataset, cls=RealAnimal, animal="dog", input_size=S)


@pytest.fixture(scope="module")
def build(registry_dataset):
    """``build(name, root, split)``: a dog data set of S-px crops by name."""
    return functools.partial(registry_dataset, animal="dog", input_size=S)


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_real_animal_reads_each_split_file(real, bench, split):
    dataset = real(bench.root, split)
    expected = np.load(bench.folder / f"{split}_idxs_by_video.npy")
    assert np.array_equal(dataset.indices, expected)
    assert len(dataset) == bench.record["splits"][split]["frames"]
    shots = {dataset[i]["meta"]["shot"] for i in range(len(dataset))}
    assert shots == set(bench.record["splits"][split]["shots"])


def test_every_tigdog_dataset_has_the_test_split(build, bench_copy):
    write_real_crops(bench_copy.root, "dog", output_size=S, progress=False)
    expected = np.load(bench_copy.folder / "test_idxs_by_video.npy")
    for name in ("real_animal", "real_animal_sp", "real_animal_crop"):
        dataset = build(name, bench_copy.root, "test")
        assert np.array_equal(dataset.indices, expected), name
        assert isinstance(dataset.augmenter, CenterCrop)  # evaluated like "valid"
    crop = build("real_animal_crop", bench_copy.root, "test")
    assert isinstance(crop, RealAnimalCrop)


def test_synthetic_data_sets_have_no_test_split(build, bench):
    with pytest.raises(
        DataError, match="dog_combineds5r5_texture: dataset 'synthetic_animal_sp' has no test split"
    ):
        build("synthetic_animal_sp", bench.root, "test")


def test_without_a_test_file_the_two_file_behaviour_is_unchanged(real, bench_copy):
    (bench_copy.folder / "test_idxs_by_video.npy").unlink()
    train, valid = real(bench_copy.root, "train"), real(bench_copy.root, "valid")
    assert np.array_equal(train.indices, np.load(bench_copy.folder / "train_idxs_by_video.npy"))
    assert np.array_equal(valid.indices, np.load(bench_copy.folder / "valid_idxs_by_video.npy"))
    with pytest.raises(DataError) as info:
        real(bench_copy.root, "test")
    message = str(info.value)
    assert message.startswith(f"{bench_copy.folder}: this data set has no test split")
    assert "generate a benchmark with `python datasets/generate.py --benchmark NAME`" in message


def test_fresh_data_without_split_files_has_no_test_split(real, bench_copy):
    for path in bench_copy.folder.iterdir():
        path.unlink()
    valid = real(bench_copy.root, "valid")  # the reference's behaviour: a new seeded pair
    assert (bench_copy.folder / "valid_idxs_by_video.npy").exists() and len(valid) > 0
    with pytest.raises(DataError, match="this data set has no test split"):
        real(bench_copy.root, "test")


def test_test_frames_in_train_are_refused(real, bench_copy):
    train = np.load(bench_copy.folder / "train_idxs_by_video.npy")
    test_path = bench_copy.folder / "test_idxs_by_video.npy"
    np.save(test_path, np.sort(np.append(np.load(test_path), train[0])))
    for split in ("train", "valid", "test"):  # every split refuses the inconsistent set
        with pytest.raises(
            DataError,
            match=f"{test_path} and .*train_idxs_by_video.npy: 1 frames are in both splits",
        ):
            real(bench_copy.root, split)


def test_test_split_sharing_a_shot_is_refused(real, bench_copy):
    data = load_tigdog(bench_copy.root, "dog")
    valid_path = bench_copy.folder / "valid_idxs_by_video.npy"
    test_path = bench_copy.folder / "test_idxs_by_video.npy"
    valid, test = np.load(valid_path), np.load(test_path)
    moved = valid[data.shots[valid] == data.shots[valid[0]]][:1]  # one frame of a valid shot
    np.save(valid_path, np.setdiff1d(valid, moved))
    np.save(test_path, np.union1d(test, moved))
    with pytest.raises(DataError, match="have frames in both splits; a test split holds out whole"):
        real(bench_copy.root, "test")


def test_bad_test_files_name_the_file(real, bench_copy):
    test_path = bench_copy.folder / "test_idxs_by_video.npy"
    np.save(test_path, np.array([], dtype=np.int64))
    with pytest.raises(DataError, match=f"{test_path}: split file is empty"):
        real(bench_copy.root, "test")
    data = load_tigdog(bench_copy.root, "dog")
    np.save(test_path, np.array([len(data.shots) + 3]))
    with pytest.raises(DataError, match=f"{test_path}: split indices must lie in"):
        real(bench_copy.root, "valid")


def test_a_test_file_without_its_pair_is_refused(real, bench_copy):
    for name in ("train_idxs_by_video.npy", "valid_idxs_by_video.npy"):
        (bench_copy.folder / name).unlink()
    with pytest.raises(
        DataError, match="test_idxs_by_video.npy: a test split without its train/valid files"
    ):
        real(bench_copy.root, "train")
    assert not (bench_copy.folder / "train_idxs_by_video.npy").exists()  # no overlapping pair


def test_unknown_split_names(real, bench):
    with pytest.raises(ValueError, match="split must be one of .*'test'"):
        real(bench.root, "tset")
