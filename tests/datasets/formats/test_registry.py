"""DATASETS / build_dataset / dataset_mean_std: every name builds, means come from the
right file."""

from __future__ import annotations

import functools
import logging
import shutil

import numpy as np
import pytest
import torch

from animalpose.datasets.fileio import DataError, read_image
from animalpose.datasets.formats.crops import write_real_crops
from animalpose.datasets.formats.means import KNOWN_SYNTHETIC_MEANS, read_mean, save_mean
from animalpose.datasets.formats.registry import DATASETS, dataset_mean_std
from animalpose.datasets.formats.synthetic import synthetic_dir
from animalpose.datasets.transforms.crop import CenterCrop

S = 64
REFERENCE_NAMES = {
    "synthetic_animal",
    "synthetic_animal_sp",
    "synthetic_animal_sp_multitask",
    "real_animal",
    "real_animal_sp",
    "real_animal_crop",
}


@pytest.fixture(scope="module")
def combined(synthetic, tigdog, tmp_path_factory):
    """One image path with both layouts and the crops (copies: this module writes files)."""
    root = tmp_path_factory.mktemp("combined")
    shutil.copytree(
        synthetic.root / "synthetic_animal",
        root / "synthetic_animal",
        ignore=shutil.ignore_patterns("*.npy.tmp", "mean.pth.tar"),
    )
    shutil.copytree(
        tigdog.root / "behaviorDiscovery2.0",
        root / "behaviorDiscovery2.0",
        ignore=shutil.ignore_patterns("splits", "tiger"),
    )
    write_real_crops(root, "horse", progress=False)
    return root


@pytest.fixture(scope="module")
def build(registry_dataset):
    """``build(name, root, split, **kwargs)``: a horse data set of S-px crops by name."""
    return functools.partial(registry_dataset, animal="horse", input_size=S)


def test_registry_holds_the_reference_names(build):
    assert set(DATASETS) == REFERENCE_NAMES | {"coco", "coco_bottomup"}
    with pytest.raises(KeyError, match="unknown dataset 'mpii'.*real_animal"):
        build("mpii", "unused", "valid")


@pytest.mark.parametrize("name", sorted(REFERENCE_NAMES))
def test_every_dataset_builds_both_splits(build, combined, name):
    valid = build(name, combined, "valid")
    assert isinstance(valid.augmenter, CenterCrop)
    train = build(name, combined, "train", limit=4)
    assert len(train) == 4
    kind = DATASETS[name].train_augment
    assert (
        type(train.augmenter).__name__
        == {"classic": "ClassicAugment", "strong": "StrongAugment"}[kind]
    )
    for ds in (train, valid):
        sample = ds[0]
        assert sample["image"].shape == (3, S, S) and sample["keypoints"].shape == (18, 3)
    assert DATASETS["synthetic_animal_sp"].train_augment == "strong"
    assert DATASETS["real_animal"].train_augment == "classic"


def test_synthetic_mean_is_computed_over_train_images_then_read(build, combined):
    mean, std = dataset_mean_std("synthetic_animal", root=combined, animal="horse", seed=0)
    path = synthetic_dir(combined, "horse") / "mean.pth.tar"
    assert path.exists()
    train = build("synthetic_animal", combined, "valid")  # paths only
    train_idxs = np.load(path.parent / "train_idxs.npy")
    images = [read_image(p) for p in np.array(train.images)[train_idxs]]
    pixels = [im.reshape(-1, 3) / 255.0 for im in images]
    np.testing.assert_allclose(mean, np.mean([p.mean(0) for p in pixels], axis=0), atol=1e-6)
    np.testing.assert_allclose(std, np.mean([p.std(0, ddof=1) for p in pixels], axis=0), atol=1e-6)
    # The _sp real datasets and real_animal_crop use the synthetic mean of the animal.
    for name in ("synthetic_animal_sp", "real_animal_sp", "real_animal_crop"):
        other = dataset_mean_std(name, root=combined, animal="horse", seed=0)
        np.testing.assert_array_equal(other[0], mean)


def test_real_animal_uses_mean_by_video(combined, tmp_path):
    mean, _ = dataset_mean_std("real_animal", root=combined, animal="horse", seed=0)
    path = combined / "behaviorDiscovery2.0" / "splits" / "horse" / "mean_by_video.pth.tar"
    assert path.exists()
    np.testing.assert_array_equal(read_mean(path)[0], mean)
    assert not np.allclose(
        mean, dataset_mean_std("synthetic_animal", root=combined, animal="horse", seed=0)[0]
    )
    mirror = tmp_path / "real_animal" / "horse"
    save_mean(
        mirror / "mean_by_video.pth.tar",
        np.array([0.5319, 0.5107, 0.4206]),
        np.array([0.1910, 0.1921, 0.1951]),
    )
    ref, _ = dataset_mean_std("real_animal", root=combined, animal="horse", split_dir=tmp_path)
    np.testing.assert_allclose(ref, [0.5319, 0.5107, 0.4206], atol=1e-6)


def test_missing_synthetic_data_falls_back_to_published_values(tigdog, caplog):
    with caplog.at_level(logging.WARNING):
        mean, std = dataset_mean_std("real_animal_sp", root=tigdog.root, animal="tiger")
    np.testing.assert_allclose(mean, KNOWN_SYNTHETIC_MEANS["tiger"][0])
    np.testing.assert_allclose(std, [0.2567, 0.2410, 0.2283])
    assert "published" in caplog.text
    with pytest.raises(DataError, match="no synthetic data for 'zebra'"):
        dataset_mean_std("real_animal_sp", root=tigdog.root, animal="zebra")


def test_reference_mean_file_in_split_dir_wins(combined, tmp_path):
    mirror = tmp_path / "synthetic_animal" / "horse_combineds5r5_texture"
    mirror.mkdir(parents=True)
    torch.save(
        {
            "mean": torch.tensor([0.4038, 0.3956, 0.3925]),
            "std": torch.tensor([0.2611, 0.2452, 0.2299]),
        },
        mirror / "mean.pth.tar",
        _use_new_zipfile_serialization=False,
    )
    _, std = dataset_mean_std("synthetic_animal", root=combined, animal="horse", split_dir=tmp_path)
    np.testing.assert_allclose(std, [0.2611, 0.2452, 0.2299], atol=1e-6)


def test_augment_seed_changes_draws_but_not_the_split(build, combined):
    a = build("synthetic_animal_sp", combined, "train")
    b = build("synthetic_animal_sp", combined, "train", augment_seed=7)
    c = build("synthetic_animal_sp", combined, "train", augment_seed=0)
    assert len(a) == len(b)
    np.testing.assert_array_equal(a[0]["meta"]["keypoints_image"], b[0]["meta"]["keypoints_image"])
    assert torch.equal(a[0]["image"], c[0]["image"])  # augment_seed == seed: the same draw
    assert any(not torch.equal(a[i]["image"], b[i]["image"]) for i in range(3))


@pytest.mark.parametrize("name", sorted(REFERENCE_NAMES))
def test_a_split_dir_that_does_not_exist_is_an_error(build, combined, tmp_path, name):
    nowhere = tmp_path / "nowhere"
    message = rf"{nowhere}: the split folder \(--split-dir / data.split_dir\) does not exist"
    for split in ("train", "valid", "all"):
        with pytest.raises(DataError, match=message):
            build(name, combined, split, split_dir=nowhere)
    with pytest.raises(DataError, match=message):
        dataset_mean_std(name, root=combined, animal="horse", split_dir=nowhere)
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="file: the split folder .* is not a folder"):
        build(name, combined, "valid", split_dir=tmp_path / "file")


def test_a_split_dir_without_the_animal_says_so(build, combined, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        valid = build("real_animal", combined, "valid", split_dir=tmp_path)
    assert len(valid) > 0
    assert f"in {tmp_path / 'real_animal' / 'horse'} (--split-dir); using the split" in caplog.text


def test_occlusion_reaches_the_augmented_train_split_only(synthetic, registry_dataset):
    from animalpose.datasets.transforms.occlusion import Occluded

    def build(split, **kw):
        return registry_dataset(
            "synthetic_animal_sp", synthetic.root, split, animal="horse", input_size=64, **kw
        )

    plain, occluded = build("train"), build("train", occlusion=1.0, occluders=3)
    assert isinstance(occluded.augmenter, Occluded) and occluded.augmenter.max_count == 3
    assert not isinstance(plain.augmenter, Occluded)
    a, b = plain[0], occluded[0]
    # same draws before the occluders: same geometry and labels, different pixels
    assert (a["keypoints"] == b["keypoints"]).all()
    assert (a["image"] != b["image"]).any()
    assert not isinstance(build("valid", occlusion=1.0).augmenter, Occluded)
