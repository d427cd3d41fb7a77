"""The layout writers: reference file formats, the TigDog visibility convention, completeness
checks, stray temporary files, manifests."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.io

from animalpose.datasets.fileio import DataError, atomic_write, read_image
from animalpose.datasets.formats.tigdog import load_tigdog
from animalpose.datasets.generator.renderer import RenderedFrame
from animalpose.datasets.generator.writers import (
    MAT_HEADER,
    SyntheticLayout,
    TigDogLayout,
    check_manifest,
    mat_bytes,
    remove_stray_temp_files,
    write_manifest,
)

W, H = 40, 30


def _frame(seed: int, keypoints=None) -> RenderedFrame:
    rng = np.random.default_rng(seed)
    if keypoints is None:
        keypoints = np.column_stack(
            [rng.uniform(1, W - 1, 18), rng.uniform(1, H - 1, 18), rng.integers(0, 2, 18)]
        ).astype(np.float64)
    return RenderedFrame(
        image=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        keypoints=keypoints,
        vertices=rng.uniform(0, W, (3281, 2)),
        partseg=np.zeros((H, W), np.uint8),
    )


def test_mat_files_have_a_fixed_header_and_read_back():
    ranges = np.array([[1, 1, 4], [2, 5, 8]], dtype=np.int32)
    data = mat_bytes({"ranges": ranges})
    assert data == mat_bytes({"ranges": ranges})  # no time stamp
    assert data.startswith(MAT_HEADER) and data[len(MAT_HEADER) : 116] == b" " * (
        116 - len(MAT_HEADER)
    )
    assert data[126:128] == b"IM"  # little-endian MATLAB 5 indicator survives


def test_synthetic_still_rows_and_atomic_order(tmp_path):
    layout = SyntheticLayout(root=tmp_path, animal="dog", style="source")
    frame = _frame(0)
    assert not layout.is_complete(3)
    layout.write_still(3, frame)
    image, keypoints = layout.paths(3)
    assert image.name == "3_dog_source_img.png" and keypoints.name == "3_dog_source_kpts.npy"
    assert image.parent == tmp_path / "synthetic_animal" / "dog_combineds5r5_texture"
    rows = np.load(keypoints)
    assert rows.shape == (3299, 3) and rows.dtype == np.float32
    assert np.array_equal(rows[:18], frame.keypoints.astype(np.float32))
    assert np.array_equal(rows[18:, :2], frame.vertices.astype(np.float32))
    assert (rows[18:, 2] == 1).all()
    assert np.array_equal(read_image(image), frame.image)  # PNG is lossless
    assert layout.is_complete(3)
    image.write_bytes(image.read_bytes()[:-20])  # truncated (e.g. a copy cut short)
    assert not layout.is_complete(3)
    np.save(keypoints, np.zeros((10, 3)))
    layout.write_still(3, frame)
    assert layout.is_complete(3)
    np.save(keypoints, np.zeros((10, 3)))  # wrong shape
    assert not layout.is_complete(3)


def test_tigdog_shot_annotation_convention(tmp_path):
    layout = TigDogLayout(root=tmp_path, animal="dog", frames_per_shot=3)
    assert layout.shot_range(0) == (1, 1, 3) and layout.shot_range(4) == (5, 13, 15)
    frames = [_frame(s) for s in range(3)]
    kp = frames[1].keypoints
    kp[0] = (-2.0, 10.0, 1)  # left of the frame: unannotated
    kp[1] = (W + 0.2, 10.0, 1)  # right of the frame
    kp[2] = (0.0, 5.0, 1)  # non-positive: the loader would take it as missing
    kp[3] = (10.0, 12.0, 0)  # in the frame, hidden by the body: annotated, occluded
    kp[4] = (11.0, 13.0, 1)
    assert layout.write_shot(1, iter(frames), (W, H)) == (2, 4, 6)
    assert not layout.is_complete(0) and layout.is_complete(1)
    cells = scipy.io.loadmat(layout.landmarks_path(2))["landmarks"]
    assert cells.dtype == object and cells.shape == (3, 1)
    record = cells[1, 0]
    assert record.shape == (1, 1) and record.dtype.names[:2] == ("coordinates", "visibility")
    coords, visible, occluded = (record[0, 0][i] for i in range(3))
    assert coords.shape == (18, 2) and visible.shape == (18, 1) and occluded.shape == (18, 1)
    assert (coords[:3] == 0).all() and (visible[:3] == 0).all() and (occluded[:3] == 0).all()
    assert np.array_equal(coords[3:], kp[3:, :2])
    assert (visible[3:] == 1).all()
    assert occluded[3, 0] == 1 and occluded[4, 0] == 0
    assert np.array_equal(occluded[3:, 0], (kp[3:, 2] == 0).astype(float))
    for t in range(3):
        assert read_image(layout.frame_path(4 + t)).shape == (H, W, 3)
    layout.write_ranges([1])
    ranges = scipy.io.loadmat(layout.ranges_path)["ranges"]
    assert ranges.tolist() == [[2, 4, 6]] and ranges.dtype == np.int32
    # The loader reads it: missing landmarks invisible, occluded ones annotated and visible.
    data = load_tigdog(tmp_path, "dog")
    assert data.frames.tolist() == [4, 5, 6] and (data.shots == 2).all()
    assert (data.keypoints[1, :3, 2] == 0).all() and (data.keypoints[1, 3:, 2] == 1).all()
    assert np.allclose(data.keypoints[1, 3:, :2], kp[3:, :2])
    layout.frame_path(5).unlink()
    assert not layout.is_complete(1)
    layout.write_ranges([])
    assert not layout.ranges_path.exists()


def test_a_shot_with_the_wrong_frame_count_is_not_written(tmp_path):
    layout = TigDogLayout(root=tmp_path, animal="dog", frames_per_shot=3)
    with pytest.raises(ValueError, match="gave 2 of 3 frames"):
        layout.write_shot(0, iter([_frame(0), _frame(1)]), (W, H))
    assert not layout.landmarks_path(1).exists() and not layout.is_complete(0)


def test_stray_temporary_files_are_removed_others_kept(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    with pytest.raises(KeyboardInterrupt), atomic_write(folder / "3_dog_source_img.png") as f:
        f.write(b"partial")
        raise KeyboardInterrupt  # atomic_write cleans up after an exception...
    assert list(folder.iterdir()) == []
    # ...but not after SIGKILL: such leftovers look like this.
    stray = folder / ".3_dog_source_img.png.k2j4_x9a.tmp"
    stray.write_bytes(b"partial")
    other = folder / ".train_idxs.npy.abcd1234.tmp"  # not ours: left alone
    other.write_bytes(b"x")
    keep = folder / "3_dog_source_img.png"
    keep.write_bytes(b"x")
    assert remove_stray_temp_files([folder, tmp_path / "absent"], ("img.png", "kpts.npy")) == [
        stray
    ]
    assert sorted(p.name for p in folder.iterdir()) == sorted([other.name, keep.name])


def test_manifest_check(tmp_path):
    path = tmp_path / "generator.json"
    settings = {"seed": 1, "size": [96, 72], "renderer": "flat"}
    check_manifest(path, settings, has_data=False, force=False)  # fresh folder
    with pytest.raises(DataError, match="did not write"):
        check_manifest(path, settings, has_data=True, force=False)
    check_manifest(path, settings, has_data=True, force=True)
    write_manifest(path, settings)
    assert json.loads(path.read_text()) == settings
    check_manifest(path, dict(settings), has_data=True, force=False)
    with pytest.raises(DataError, match=r"seed: 1 there, 2 now.*--force"):
        check_manifest(path, {**settings, "seed": 2}, has_data=True, force=False)
    check_manifest(path, {**settings, "seed": 2}, has_data=True, force=True)
    path.write_text("{not json")
    with pytest.raises(DataError, match="cannot read the generator manifest"):
        check_manifest(path, settings, has_data=True, force=False)


@pytest.mark.parametrize("layout", ["synthetic", "tigdog"])
def test_layouts_refuse_animal_names_that_are_paths(tmp_path, layout):
    from animalpose.datasets.generator.writers import SyntheticLayout, TigDogLayout

    with pytest.raises(DataError, match="not a plain name"):
        if layout == "synthetic":
            SyntheticLayout(root=tmp_path, animal="../../x", style="source")
        else:
            TigDogLayout(root=tmp_path, animal="../x", frames_per_shot=2)
    assert list(tmp_path.iterdir()) == []
