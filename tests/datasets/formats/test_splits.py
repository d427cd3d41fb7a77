"""Split files: created seeded beside the data, re-read identically, reference files honoured,
bad files rejected with the file's name."""

from __future__ import annotations

import os

import numpy as np
import pytest

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.splits import (
    check_split_dir,
    load_or_create_split,
    load_or_create_video_split,
)


def test_created_split_is_seeded_saved_and_reread(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    train, valid = load_or_create_split(data, n=50, seed=7)
    assert len(valid) == 10 and len(train) == 40  # the reference holds out len // 5
    assert np.array_equal(np.sort(np.concatenate([train, valid])), np.arange(50))
    assert (np.diff(train) > 0).all() and (np.diff(valid) > 0).all()
    assert sorted(os.listdir(data)) == ["train_idxs.npy", "valid_idxs.npy"]
    assert not (tmp_path / "train_idxs.npy").exists()  # nothing written in the cwd
    again = load_or_create_split(data, n=50, seed=999)  # files win over the seed
    assert np.array_equal(again[0], train) and np.array_equal(again[1], valid)
    other = load_or_create_split(tmp_path / "other", n=50, seed=7)
    assert np.array_equal(other[1], valid)  # same seed, same split
    third = load_or_create_split(tmp_path / "third", n=50, seed=8)
    assert not np.array_equal(third[1], valid)


def test_reference_files_in_search_dirs_are_honoured_in_file_order(tmp_path):
    mirror, data = tmp_path / "mirror", tmp_path / "data"
    mirror.mkdir()
    np.save(mirror / "train_idxs.npy", np.array([0, 1, 2, 5, 7]))
    np.save(mirror / "valid_idxs.npy", np.array([6, 3]))  # reference valid files are unsorted
    train, valid = load_or_create_split(data, n=8, seed=0, search_dirs=[mirror])
    assert train.tolist() == [0, 1, 2, 5, 7] and valid.tolist() == [6, 3]
    assert not data.exists()  # nothing created when files were found


@pytest.mark.parametrize(
    "train, valid, message",
    [
        (np.array([0, 1]), np.array([], dtype=np.int64), "valid_idxs.npy: split file is empty"),
        (np.array([0, 1]), np.array([1, 2]), "in both splits"),
        (np.array([0, 9]), np.array([2]), r"train_idxs.npy: split indices must lie in \[0, 5\)"),
        (np.array([0.0, 1.0]), np.array([2]), "train_idxs.npy: split file must be a 1-D integer"),
        (np.array([[0, 1]]), np.array([2]), "train_idxs.npy: split file must be a 1-D integer"),
        (np.array([0, 0]), np.array([2]), "train_idxs.npy: split file lists an index twice"),
    ],
)
def test_bad_split_files_raise_naming_the_file(tmp_path, train, valid, message):
    np.save(tmp_path / "train_idxs.npy", train)
    np.save(tmp_path / "valid_idxs.npy", valid)
    with pytest.raises(DataError, match=message):
        load_or_create_split(tmp_path, n=5, seed=0)


def test_half_a_split_pair_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr("animalpose.datasets.formats.splits.PARTNER_WAIT_S", 0.1)
    np.save(tmp_path / "train_idxs.npy", np.array([0, 1]))
    with pytest.raises(DataError, match="valid_idxs.npy: split file not found"):
        load_or_create_split(tmp_path, n=5, seed=0)


def test_too_few_samples_to_split(tmp_path):
    with pytest.raises(DataError, match="cannot split 1 samples"):
        load_or_create_split(tmp_path, n=1, seed=0)


def test_video_split_keeps_whole_shots_on_one_side(tmp_path):
    shots = np.repeat([11, 22, 33, 44, 55, 66, 77, 88, 99, 100], 6)
    kept = np.flatnonzero(np.arange(len(shots)) % 5 != 0)  # every fifth frame filtered out
    train, valid = load_or_create_video_split(tmp_path, shots=shots, kept=kept, seed=1)
    assert not set(shots[train]) & set(shots[valid])
    assert len(set(shots[valid])) == 2  # 10 shots // 5
    assert np.array_equal(np.sort(np.concatenate([train, valid])), kept)
    assert (np.diff(train) > 0).all() and (np.diff(valid) > 0).all()
    assert sorted(os.listdir(tmp_path)) == ["train_idxs_by_video.npy", "valid_idxs_by_video.npy"]
    again = load_or_create_video_split(tmp_path, shots=shots, kept=kept, seed=2)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], valid)


def test_video_split_rejects_files_listing_filtered_frames(tmp_path):
    shots = np.repeat([1, 2, 3], 4)
    kept = np.array([0, 1, 2, 4, 5, 6, 8, 9, 10])
    np.save(tmp_path / "train_idxs_by_video.npy", np.array([0, 1, 3]))  # 3 is filtered out
    np.save(tmp_path / "valid_idxs_by_video.npy", np.array([8, 9]))
    with pytest.raises(DataError, match="train_idxs_by_video.npy: lists 1 frames that the"):
        load_or_create_video_split(tmp_path, shots=shots, kept=kept, seed=0)


def test_video_split_needs_two_shots(tmp_path):
    with pytest.raises(DataError, match="at least 2 annotated shots"):
        load_or_create_video_split(tmp_path, shots=np.zeros(5, int), kept=np.arange(5), seed=0)


def test_split_dir_must_be_an_existing_folder(tmp_path):
    assert check_split_dir(None) is None and check_split_dir("") is None
    assert check_split_dir(str(tmp_path)) == tmp_path
    with pytest.raises(DataError, match=r"nowhere: the split folder \(--split-dir / data.split_di"):
        check_split_dir(tmp_path / "nowhere")
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="file: the split folder .* is not a folder; point it at"):
        check_split_dir(tmp_path / "file")
