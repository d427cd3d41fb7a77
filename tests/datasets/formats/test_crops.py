"""The pre-cropped TigDog loader (real_animal_crop) and the crop script on the fixture."""

from __future__ import annotations

import functools
import shutil

import numpy as np
import pytest

from animalpose.datasets.fileio import DataError, read_image
from animalpose.datasets.formats.crops import RealAnimalCrop, crop_path, write_real_crops
from animalpose.datasets.formats.tigdog import RealAnimal, load_tigdog
from animalpose.datasets.transforms.crop import CenterCrop

S = 96  # crop side used in these tests


@pytest.fixture(scope="module")
def dataset(eval_dataset):
    """``dataset(root, split="valid", cls=RealAnimal, animal="horse", **kwargs)``: a TigDog
    loader as evaluated, S-px crops."""
    return functools.partial(eval_dataset, cls=RealAnimal, animal="horse", input_size=S)


def test_crop_real_writes_center_crops_and_crop_dataset_reads_them(
    dataset, run_script, tigdog, tmp_path
):
    root = tmp_path / "data"
    shutil.copytree(
        tigdog.root / "behaviorDiscovery2.0",
        root / "behaviorDiscovery2.0",
        ignore=shutil.ignore_patterns("splits"),
    )
    result = run_script(
        "datasets/crop_real.py", "--image-path", str(root), "--animal", "horse", timeout=120
    )
    assert result.returncode == 0, result.stderr
    data = load_tigdog(root, "horse")
    written = sorted((root / "real_animal_crop" / "real_horse_crop").glob("crop_*.jpg"))
    assert [p.name for p in written] == [f"crop_{data.frames[j]:08d}.jpg" for j in data.kept]
    frames = dataset(root, split="all")
    crops = dataset(root, split="all", cls=RealAnimalCrop)
    for i in (0, len(frames) // 2, len(frames) - 1):
        crop = read_image(crop_path(root, "horse", data.frames[frames.indices[i]]))
        keypoints, center, size = frames.annotation(i)
        expected = CenterCrop(256)(read_image(frames.image_path(i)), keypoints, center, size)
        assert crop.shape == (256, 256, 3)
        assert np.abs(crop.astype(int) - expected.image).mean() < 3  # JPEG error only
        a, b = frames[i], crops[i]
        np.testing.assert_allclose(a["meta"]["matrix"], b["meta"]["matrix"], atol=1e-9)
        np.testing.assert_allclose(a["keypoints"].numpy(), b["keypoints"].numpy(), atol=1e-4)
        assert np.abs(a["image"].numpy().astype(int) - b["image"].numpy()).mean() < 6
        assert b["meta"]["frame"] == a["meta"]["frame"]
    assert write_real_crops(root, "horse", progress=False) == 0  # existing files are skipped


def test_missing_crop_files_point_to_the_script(dataset, tigdog, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(tigdog.root / "behaviorDiscovery2.0", root / "behaviorDiscovery2.0")
    with pytest.raises(DataError, match=r"crop_\d{8}.jpg: image not found.*crop_real.py"):
        dataset(root, cls=RealAnimalCrop)


def test_landmarks_outside_the_frame_are_not_visible_in_crops_too(dataset, tigdog, tmp_path):
    """The crop file no longer shows the frame's edge: its size comes from the frame's header."""
    import scipy.io

    root = tmp_path / "data"
    shutil.copytree(
        tigdog.root / "behaviorDiscovery2.0",
        root / "behaviorDiscovery2.0",
        ignore=shutil.ignore_patterns("splits", "tiger"),
    )
    data = load_tigdog(root, "horse")
    j = int(data.kept[0])
    shot = int(data.shots[j])
    k = int(np.flatnonzero(data.keypoints[j, :, 2] > 0)[0])
    path = root / "behaviorDiscovery2.0" / "landmarks" / "horse" / f"{shot}.mat"
    cells = scipy.io.loadmat(path)["landmarks"]
    record = cells[j - int(np.flatnonzero(data.shots == shot)[0]), 0][0, 0]
    record["coordinates"][k, 0] = tigdog.frame_size[0] + 2.0  # just past the right edge
    scipy.io.savemat(path, {"landmarks": cells})
    write_real_crops(root, "horse", progress=False)
    frames = dataset(root, split="all")
    crops = dataset(root, split="all", cls=RealAnimalCrop)
    i = int(np.flatnonzero(frames.indices == j)[0])
    a, b = frames[i], crops[i]
    assert a["meta"]["keypoints_image"][k, 2] == b["meta"]["keypoints_image"][k, 2] == 0
    assert (b["keypoints"][k] == 0).all()
    np.testing.assert_allclose(a["keypoints"].numpy(), b["keypoints"].numpy(), atol=1e-4)


def test_crop_path_refuses_animal_names_that_are_not_plain(tmp_path):
    with pytest.raises(DataError, match=r"animal name '../x' is not a plain name"):
        crop_path(tmp_path, "../x", 1)
