"""Split fingerprints: split files hold positions in a sample list, so files drawn for other data
are refused (naming what changed); the reference's own files still load, with one warning; a
split whose writing was killed is drawn again; the .npy files keep the reference's bytes."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.io

from animalpose.datasets.fileio import CRASH_ENV, DataError
from animalpose.datasets.formats.crops import RealAnimalCrop
from animalpose.datasets.formats.split_fingerprint import FINGERPRINT_NAME, frame_ids
from animalpose.datasets.formats.splits import (
    load_or_create_split,
    load_or_create_video_splits,
    save_video_splits,
)
from animalpose.datasets.formats.synthetic import SyntheticAnimal, synthetic_dir
from animalpose.datasets.formats.tigdog import RealAnimal, load_tigdog, split_folder, tigdog_dir
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.transforms.crop import CenterCrop

IDS = [f"{i:04d}_img.png" for i in range(10)]


def _npy(arr) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(arr, dtype=np.int64))
    return buffer.getvalue()


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# --- the splits API -----------------------------------------------------------------------------


def test_new_split_has_a_fingerprint_and_the_reference_npy_bytes(tmp_path):
    train, valid = load_or_create_split(tmp_path, n=10, seed=3, sample_ids=IDS)
    assert sorted(os.listdir(tmp_path)) == [FINGERPRINT_NAME, "train_idxs.npy", "valid_idxs.npy"]
    assert (tmp_path / "train_idxs.npy").read_bytes() == _npy(train)  # as np.save writes it
    assert (tmp_path / "valid_idxs.npy").read_bytes() == _npy(valid)
    record = json.loads((tmp_path / FINGERPRINT_NAME).read_text())
    assert (record["count"], record["samples"]) == (10, IDS)
    again = load_or_create_split(tmp_path, n=10, seed=3, sample_ids=IDS)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], valid)


def test_a_sample_sorting_first_is_refused_naming_it(tmp_path):
    load_or_create_split(tmp_path, n=10, seed=3, sample_ids=IDS)
    with pytest.raises(DataError) as info:
        load_or_create_split(tmp_path, n=11, seed=3, sample_ids=["-new_img.png", *IDS])
    message = str(info.value)
    assert message.startswith(f"{tmp_path / FINGERPRINT_NAME}: the data changed since the split")
    assert "10 samples then, 11 now; 1 added (first: '-new_img.png')" in message
    assert "first difference at position 0: '0000_img.png' then, '-new_img.png' now" in message
    assert "Delete train_idxs.npy, valid_idxs.npy and split_fingerprint.json" in message
    assert "or restore the data" in message


def test_a_reordered_or_replaced_sample_list_is_refused(tmp_path):
    load_or_create_split(tmp_path, n=10, seed=3, sample_ids=IDS)
    with pytest.raises(DataError, match="the same samples in another order; first difference at"):
        load_or_create_split(tmp_path, n=10, seed=3, sample_ids=IDS[::-1])
    renamed = [*IDS[:4], "x_img.png", *IDS[5:]]
    with pytest.raises(DataError, match="1 added .*'x_img.png'.*1 removed .*'0004_img.png'"):
        load_or_create_split(tmp_path, n=10, seed=3, sample_ids=renamed)


def test_reference_files_load_with_one_warning_and_are_not_written_to(tmp_path, caplog):
    mirror, data = tmp_path / "mirror", tmp_path / "data"
    mirror.mkdir()
    np.save(mirror / "train_idxs.npy", np.array([0, 1, 2, 5, 7, 8, 9]))
    np.save(mirror / "valid_idxs.npy", np.array([6, 3, 4]))
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            _, valid = load_or_create_split(
                data, n=10, seed=0, search_dirs=[mirror], sample_ids=IDS
            )
    assert valid.tolist() == [6, 3, 4]
    warnings = [m for m in _warnings(caplog) if "without a fingerprint" in m]
    assert len(warnings) == 1 and "only their index range can be checked" in warnings[0]
    assert sorted(os.listdir(mirror)) == ["train_idxs.npy", "valid_idxs.npy"]
    assert not data.exists()


def test_older_files_beside_the_data_are_fingerprinted_on_first_use(tmp_path, caplog):
    np.save(tmp_path / "train_idxs.npy", np.arange(8))
    np.save(tmp_path / "valid_idxs.npy", np.array([8, 9]))
    with caplog.at_level(logging.WARNING):
        load_or_create_split(tmp_path, n=10, seed=0, sample_ids=IDS)
    (message,) = _warnings(caplog)
    assert "without a fingerprint (the reference's own, or from an older animalpose)" in message
    assert f"Recorded the current data's fingerprint in {tmp_path / FINGERPRINT_NAME}" in message
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        load_or_create_split(tmp_path, n=10, seed=0, sample_ids=IDS)
    assert not _warnings(caplog)
    with pytest.raises(DataError, match="the data changed"):
        load_or_create_split(tmp_path, n=9, seed=0, sample_ids=IDS[1:])


def test_hand_edited_split_files_are_fingerprinted_again(tmp_path, caplog):
    train, valid = load_or_create_split(tmp_path, n=10, seed=3, sample_ids=IDS)
    np.save(tmp_path / "valid_idxs.npy", valid[:1])  # the data is the same: a smaller valid split
    with caplog.at_level(logging.WARNING):
        again = load_or_create_split(tmp_path, n=10, seed=3, sample_ids=IDS)
    assert again[1].tolist() == valid[:1].tolist()
    (message,) = _warnings(caplog)
    assert f"changed since {FINGERPRINT_NAME} was written" in message


def test_unreadable_fingerprint_names_the_file(tmp_path):
    load_or_create_split(tmp_path, n=10, seed=3, sample_ids=IDS)
    (tmp_path / FINGERPRINT_NAME).write_text("{")
    with pytest.raises(DataError, match=f"{FINGERPRINT_NAME}: cannot read the split fingerprint"):
        load_or_create_split(tmp_path, n=10, seed=3, sample_ids=IDS)


def test_benchmark_files_written_with_their_fingerprint_are_checked(tmp_path, caplog):
    shots = np.repeat([4, 5, 6, 7, 8], 2)
    frames = np.arange(100, 110)
    ids = frame_ids(shots, frames)
    assert ids[:2] == ["4/00000100", "4/00000101"]
    save_video_splits(
        tmp_path,
        train=np.arange(6),
        valid=np.array([6, 7]),
        test=np.array([8, 9]),
        sample_ids=ids,
    )
    kwargs = dict(shots=shots, kept=np.arange(10), seed=0)
    with caplog.at_level(logging.WARNING):
        splits = load_or_create_video_splits(tmp_path, sample_ids=ids, **kwargs)
    assert splits.test.tolist() == [8, 9] and not _warnings(caplog)
    reordered = np.r_[8:10, 0:8]  # ranges.mat rows reordered: the same frames, other positions
    with pytest.raises(DataError, match="test_idxs_by_video.npy.*another order.*regenerate the"):
        load_or_create_video_splits(
            tmp_path,
            sample_ids=frame_ids(shots[reordered], frames[reordered]),
            **{**kwargs, "shots": shots[reordered]},
        )


# --- a killed write -----------------------------------------------------------------------------

_DRAW = textwrap.dedent(
    """
    import sys
    from animalpose.datasets.formats.splits import load_or_create_split
    ids = [f"{i:04d}_img.png" for i in range(10)]
    load_or_create_split(sys.argv[1], n=10, seed=3, sample_ids=ids)
    """
)


@pytest.mark.parametrize(
    "crash_at", ["write:split_fingerprint.json", "write:train_idxs.npy", "write:valid_idxs.npy"]
)
def test_a_split_killed_while_written_is_drawn_again(tmp_path, caplog, crash_at):
    """Commit points: the fingerprint, then train, then valid (``write_split_files``)."""
    folder = tmp_path / "killed"
    env = {**os.environ, CRASH_ENV: crash_at}
    run = subprocess.run([sys.executable, "-c", _DRAW, str(folder)], env=env, timeout=120)
    assert run.returncode == -9
    for tmp in folder.glob(".*.tmp"):  # the crash happened a while ago (a younger temporary
        os.utime(tmp, (0, 0))  # file may be another process's write in progress)
    with caplog.at_level(logging.WARNING):
        train, valid = load_or_create_split(folder, n=10, seed=3, sample_ids=IDS)
    clean = load_or_create_split(tmp_path / "clean", n=10, seed=3, sample_ids=IDS)
    assert np.array_equal(train, clean[0]) and np.array_equal(valid, clean[1])
    assert sorted(os.listdir(folder)) == sorted(os.listdir(tmp_path / "clean"))  # no temp files
    for name in os.listdir(folder):
        assert (folder / name).read_bytes() == (tmp_path / "clean" / name).read_bytes()
    assert not [m for m in _warnings(caplog) if "fingerprint" in m]


# --- the data sets ------------------------------------------------------------------------------


def _synthetic(root, split="valid", **kwargs):
    return SyntheticAnimal(
        root=root,
        animal="horse",
        split=split,
        augmenter=CenterCrop(64),
        spec=ANIMAL18,
        seed=0,
        **kwargs,
    )


def _real(root, split="valid", cls=RealAnimal, **kwargs):
    return cls(
        root=root,
        animal="horse",
        split=split,
        augmenter=CenterCrop(64),
        spec=ANIMAL18,
        seed=0,
        **kwargs,
    )


def test_synthetic_image_sorting_first_is_refused(synthetic, tmp_path):
    src, dst = synthetic_dir(synthetic.root, "horse"), synthetic_dir(tmp_path, "horse")
    dst.mkdir(parents=True)
    for path in sorted(src.glob("*img.png"))[:10]:
        for name in (path.name, path.name.replace("img.png", "kpts.npy")):
            shutil.copy(src / name, dst / name)
    before = _synthetic(tmp_path)
    first = before.images[0]
    shutil.copy(first, dst / "-extra_img.png")  # sorts before every other image
    shutil.copy(str(first).replace("img.png", "kpts.npy"), dst / "-extra_kpts.npy")
    for split in ("valid", "train"):
        with pytest.raises(DataError, match=r"1 added \(first: '-extra_img.png'\)"):
            _synthetic(tmp_path, split)


def test_tigdog_reordered_ranges_is_refused(tigdog, tmp_path):
    root = tmp_path / "data"
    base = tigdog_dir(root)
    for part in ("ranges/horse", "landmarks/horse", "horse"):
        shutil.copytree(tigdog_dir(tigdog.root) / part, base / part)
    before = _real(root)
    data = before.data
    # Swap the valid shot's ranges row with a training shot of as many frames, all annotated:
    # the split files still pass every index check, but "valid" would be former training frames.
    (valid_shot,) = set(data.shots[before.indices].tolist())
    kept = np.isin(np.arange(len(data.shots)), data.kept)
    full = [s for s in np.unique(data.shots) if kept[data.shots == s].all()]
    other = next(s for s in full if s != valid_shot)
    path = base / "ranges" / "horse" / "ranges.mat"
    ranges = scipy.io.loadmat(path)["ranges"]
    rows = [int(np.flatnonzero(ranges[:, 0] == s)[0]) for s in (valid_shot, other)]
    ranges[rows] = ranges[rows[::-1]]
    scipy.io.savemat(path, {"ranges": ranges})
    assert np.array_equal(load_tigdog(root, "horse").kept, data.kept)
    for cls in (RealAnimal, RealAnimalCrop):
        with pytest.raises(DataError, match="the same samples in another order; first difference"):
            _real(root, cls=cls)
    assert (split_folder(root, "horse") / FINGERPRINT_NAME).is_file()
