"""The TigDog loader (real_animal) on the fixture."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.tigdog import RealAnimal, load_tigdog
from animalpose.datasets.generator.cartoon import KEYPOINT_COLOURS
from animalpose.datasets.keypoints import TIGER_PERMUTATION

S = 96  # crop side used in these tests


@pytest.fixture(scope="module")
def dataset(eval_dataset):
    """``dataset(root, split="valid", cls=RealAnimal, animal="horse", **kwargs)``: a TigDog
    loader as evaluated, S-px crops."""
    return functools.partial(eval_dataset, cls=RealAnimal, animal="horse", input_size=S)


def _raw(root, animal):
    """Independent reading of the fixture's files: list of (shot, frame, (19, 3) landmarks)."""
    base = Path(root) / "behaviorDiscovery2.0"
    ranges = scipy.io.loadmat(base / "ranges" / animal / "ranges.mat")["ranges"]
    out = []
    for shot, start, end in ranges:
        path = base / "landmarks" / animal / f"{shot}.mat"
        if not path.exists():
            continue
        cells = scipy.io.loadmat(path)["landmarks"]
        for f in range(start, end + 1):
            record = cells[f - start, 0][0, 0]
            landmarks = np.hstack([record["coordinates"], record["visibility"]])
            out.append((int(shot), int(f), landmarks))
    return out


def test_frame_list_order_filter_and_skipped_shot(tigdog):
    data = load_tigdog(tigdog.root, "horse")
    raw = _raw(tigdog.root, "horse")
    assert len(raw) == tigdog.shots * tigdog.frames_per_shot  # the shot without a file skipped
    assert data.shots.tolist() == [r[0] for r in raw]
    assert data.frames.tolist() == [r[1] for r in raw]
    assert (np.diff(data.frames) > 0).all()
    gaps = np.flatnonzero(np.diff(data.frames) > 1)
    assert len(gaps) == 1  # the skipped shot's frame numbers are missing from the list
    visible = np.array([(r[2][:18, 2] > 0).sum() for r in raw])
    assert data.kept.tolist() == np.flatnonzero(visible > 9).tolist()
    assert 0 < len(data.kept) < len(raw)  # the fixture has frames the filter drops
    assert data.frame_path(0).name == f"{raw[0][1]:08d}.jpg"


def test_split_by_shot_and_files_beside_the_data(dataset, tigdog):
    train, valid = dataset(tigdog.root, split="train"), dataset(tigdog.root)
    data = train.data
    assert not set(data.shots[train.indices]) & set(data.shots[valid.indices])
    assert len(set(data.shots[valid.indices])) == 1  # 6 shots // 5
    assert (np.diff(valid.indices) > 0).all()  # loader order = video/frame order
    folder = Path(tigdog.root) / "behaviorDiscovery2.0" / "splits" / "horse"
    np.testing.assert_array_equal(np.load(folder / "valid_idxs_by_video.npy"), valid.indices)
    sample = valid[2]
    j = valid.indices[2]
    assert sample["meta"]["shot"] == data.shots[j] and sample["meta"]["frame"] == data.frames[j]


def test_reference_split_files_in_split_dir_are_honoured(dataset, tigdog, tmp_path):
    data = load_tigdog(tigdog.root, "horse")
    mirror = tmp_path / "real_animal" / "horse"
    mirror.mkdir(parents=True)
    np.save(mirror / "train_idxs_by_video.npy", data.kept[3:])
    np.save(mirror / "valid_idxs_by_video.npy", data.kept[:3])
    ds = dataset(tigdog.root, split_dir=tmp_path)
    assert ds.indices.tolist() == data.kept[:3].tolist()


@pytest.mark.parametrize("animal", ["horse", "tiger"])
def test_crop_keypoints_equal_annotation_through_matrix(dataset, tigdog, animal):
    """Independent: landmarks from the .mat, tiger slots permuted, box of positive coordinates,
    side 1.5 x longer side, mapped by the explicit crop formula."""
    ds = dataset(tigdog.root, animal=animal, split="all")
    raw = _raw(tigdog.root, animal)
    order = list(TIGER_PERMUTATION) if animal == "tiger" else list(range(18))
    for i in range(0, len(ds), 3):
        sample = ds[i]
        lm = raw[ds.indices[i]][2][:18][order]
        xs, ys = lm[lm[:, 0] > 0, 0], lm[lm[:, 1] > 0, 1]
        center = np.array([(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2])
        side = 1.5 * max(np.ptp(xs), np.ptp(ys))
        crop = (lm[:, :2] - center) * (S / side) + (S - 1) / 2
        np.testing.assert_allclose(sample["meta"]["center"], center)
        np.testing.assert_allclose(sample["meta"]["size"], [side, side])
        np.testing.assert_allclose(sample["meta"]["keypoints_image"][:, :2], lm[:, :2])
        visible = (lm[:, 2] > 0) & (lm[:, 0] > 0) & (lm[:, 1] > 0)
        np.testing.assert_array_equal(sample["keypoints"][:, 2].numpy() > 0, visible)
        np.testing.assert_allclose(
            sample["keypoints"][visible, :2].numpy(), crop[visible], atol=1e-4
        )
        assert (sample["keypoints"][~visible] == 0).all()
        m = sample["meta"]["matrix"]
        np.testing.assert_allclose(lm[:, :2] @ m[:, :2].T + m[:, 2], crop, atol=1e-9)


@pytest.mark.parametrize("animal", ["horse", "tiger"])
def test_drawn_keypoint_colour_is_under_the_crop_keypoint(dataset, tigdog, animal):
    """Model-order channel k shows keypoint k's colour: for the tiger this only holds when the
    loader undoes the fixture's TigDog slot permutation."""
    ds = dataset(tigdog.root, animal=animal, split="all")
    hits = total = 0
    for i in range(0, len(ds), 2):
        sample = ds[i]
        image = sample["image"].numpy().transpose(1, 2, 0).astype(int)
        kp_src = sample["meta"]["keypoints_image"]
        for k, (x, y, v) in enumerate(sample["keypoints"].numpy()):
            close = np.linalg.norm(kp_src[k + 1 :, :2] - kp_src[k, :2], axis=1) < 10
            if v == 0 or close.any():
                continue
            pixel = image[round(float(y)), round(float(x))]
            hits += np.argmin(np.abs(KEYPOINT_COLOURS.astype(int) - pixel).sum(axis=1)) == k
            total += 1
    assert total > 100 and hits / total > 0.95


def test_tiger_permutation_round_trip(tigdog):
    """The fixture stores tiger landmarks in TigDog slot order; applying the (self-inverse)
    permutation to the loader's model order gives the stored slots back."""
    data = load_tigdog(tigdog.root, "tiger")
    raw = _raw(tigdog.root, "tiger")
    perm = list(TIGER_PERMUTATION)
    for j in data.kept[:10]:
        np.testing.assert_array_equal(data.keypoints[j][perm][:, :2], raw[j][2][:18, :2])
        assert not np.array_equal(data.keypoints[j][:, :2], raw[j][2][:18, :2])


def _copy_tigdog(tigdog, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(
        tigdog.root / "behaviorDiscovery2.0",
        root / "behaviorDiscovery2.0",
        ignore=shutil.ignore_patterns("splits", "tiger"),
    )
    return root


def test_bad_tigdog_inputs_name_the_file(dataset, tigdog, tmp_path):
    with pytest.raises(DataError, match="image path does not exist.*behaviorDiscovery2.0"):
        dataset(tmp_path / "nowhere")
    root = _copy_tigdog(tigdog, tmp_path)
    ranges = root / "behaviorDiscovery2.0" / "ranges" / "horse" / "ranges.mat"
    good = scipy.io.loadmat(ranges)["ranges"]
    scipy.io.savemat(ranges, {"shots": good})
    with pytest.raises(DataError, match=r"ranges.mat: MATLAB file has no variable 'ranges'"):
        dataset(root)
    scipy.io.savemat(ranges, {"ranges": good})
    landmark = root / "behaviorDiscovery2.0" / "landmarks" / "horse" / f"{good[0, 0]}.mat"
    scipy.io.savemat(landmark, {"points": np.zeros(3)})
    message = rf"{good[0, 0]}.mat: MATLAB file has no variable 'landmarks'"
    with pytest.raises(DataError, match=message):
        dataset(root)


def test_truncated_jpeg_frame_names_the_file(dataset, tigdog, tmp_path):
    root = _copy_tigdog(tigdog, tmp_path)
    ds = dataset(root)
    victim = ds.image_path(0)
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with pytest.raises(DataError, match=rf"{victim.name}: truncated JPEG"):
        ds[0]


def _edit_landmarks(root, shot, position, edit):
    """Apply ``edit(coordinates (K, 2), visibility (K, 1))`` in place to frame ``position``
    (0-based) of a horse shot's landmark file."""
    path = Path(root) / "behaviorDiscovery2.0" / "landmarks" / "horse" / f"{shot}.mat"
    cells = scipy.io.loadmat(path)["landmarks"]
    record = cells[position, 0][0, 0]
    edit(record["coordinates"], record["visibility"])
    scipy.io.savemat(path, {"landmarks": cells})
    return path


def _kept_frame(root):
    """(shot, position in its shot file, index in the frame list) of the first kept frame."""
    data = load_tigdog(root, "horse")
    j = int(data.kept[0])
    shot = int(data.shots[j])
    return shot, j - int(np.flatnonzero(data.shots == shot)[0]), j


def test_landmarks_outside_the_frame_are_not_visible(dataset, tigdog, tmp_path):
    """Treated as missing ones are: visible 0 (coordinates kept in keypoints_image), so the
    crop keypoint is zeroed; the frame filter and the crop box stay the reference's."""
    root = _copy_tigdog(tigdog, tmp_path)
    shot, position, j = _kept_frame(root)
    w, h = tigdog.frame_size
    before = load_tigdog(root, "horse")
    k_right, k_below = np.flatnonzero(before.keypoints[j, :, 2] > 0)[:2]

    def push_out(coords, vis):
        coords[k_right, 0] = w + 2.0  # just past the right edge: inside the 1.5x crop box
        coords[k_below, 1] = h - 0.5  # the bottom edge of the last pixel row is outside
        vis[[k_right, k_below]] = 1

    _edit_landmarks(root, shot, position, push_out)
    data = load_tigdog(root, "horse")
    assert data.kept.tolist() == before.kept.tolist()
    ds = dataset(root, split="all")
    i = int(np.flatnonzero(ds.indices == j)[0])
    sample = ds[i]
    annotation = sample["meta"]["keypoints_image"]
    assert annotation[[k_right, k_below], 2].tolist() == [0.0, 0.0]
    assert annotation[k_right, 0] == w + 2.0  # kept, as for missing landmarks
    assert (sample["keypoints"][[k_right, k_below]] == 0).all()
    others = np.setdiff1d(np.flatnonzero(data.keypoints[j, :, 2] > 0), [k_right, k_below])
    assert (annotation[others, 2] == 1).all()


def test_nan_coordinates_name_the_file_frame_and_landmark(tigdog, tmp_path):
    root = _copy_tigdog(tigdog, tmp_path)
    shot, position, j = _kept_frame(root)
    frame = load_tigdog(root, "horse").frames[j]

    def nan(coords, vis):
        coords[4, 1] = np.nan
        vis[4] = 0  # NaN is not a way to write "missing": still an error

    path = _edit_landmarks(root, shot, position, nan)
    message = rf"{path.name}: cell {position + 1} \(frame {frame}\): landmark 5 has a NaN"
    with pytest.raises(DataError, match=message):
        load_tigdog(root, "horse")


def _write_ranges(root, rows):
    path = Path(root) / "behaviorDiscovery2.0" / "ranges" / "horse" / "ranges.mat"
    scipy.io.savemat(path, {"ranges": np.asarray(rows, dtype=np.float64)})
    return path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.__setitem__((1, 2), np.nan), r"row 2 \(.*\) holds NaN or infinity"),
        (lambda r: r.__setitem__((1, 1), r[1, 1] + 0.5), r"row 2 \(.*\) holds a fractional"),
        (lambda r: np.vstack([r, r[:1]]), r"row 8 \(.*\) repeats shot \d+ of row 1"),
    ],
    ids=["nan", "fractional", "duplicate"],
)
def test_bad_ranges_rows_name_the_file_and_row(tigdog, tmp_path, change, message):
    root = _copy_tigdog(tigdog, tmp_path)
    path = Path(root) / "behaviorDiscovery2.0" / "ranges" / "horse" / "ranges.mat"
    rows = scipy.io.loadmat(path)["ranges"].astype(np.float64)
    assert len(rows) == tigdog.shots + 1  # one shot without a landmark file
    changed = change(rows)
    _write_ranges(root, rows if changed is None else changed)
    with pytest.raises(DataError, match=rf"ranges.mat: `ranges` {message}"):
        load_tigdog(root, "horse")


@pytest.mark.parametrize("animal", ["../horse", "horse/../horse", ""])
def test_animal_names_that_are_not_plain_are_refused(dataset, tigdog, animal):
    from animalpose.datasets.formats.tigdog import reference_real_dir, split_folder

    message = r"animal name .* is not a plain name \(letters, digits, _ and -\)"
    with pytest.raises(DataError, match=message):
        dataset(tigdog.root, animal=animal)
    for path_of in (split_folder, reference_real_dir):
        with pytest.raises(DataError, match=message):
            path_of(tigdog.root, animal)
