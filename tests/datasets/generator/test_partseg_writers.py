"""The synthetic layout's ``_partseg.png``: written beside each still as an 8-bit single-channel
PNG that the multitask loader reads back (``synthetic_multitask.read_partseg``), required for
completeness; a folder from before part segmentations resumes by adding them, its images,
keypoints and split files untouched; the fixtures write them too."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import pytest

from animalpose.datasets.fileio import DataError, read_image
from animalpose.datasets.formats.synthetic_multitask import (
    PARTSEG_SUFFIX,
    partseg_path,
    read_partseg,
)
from animalpose.datasets.generator.fixtures import make_synthetic_fixture
from animalpose.datasets.generator.renderer import RenderedFrame
from animalpose.datasets.generator.run import Job, generate
from animalpose.datasets.generator.writers import (
    SyntheticLayout,
    remove_stray_temp_files,
    write_partseg,
)
from animalpose.datasets.parts import IGNORE, NUM_CLASSES

SYNTHETIC = Path("synthetic_animal/dog_combineds5r5_texture")
W, H = 40, 30


def _frame(seed: int, partseg: bool = True) -> RenderedFrame:
    rng = np.random.default_rng(seed)
    labels = rng.choice([*range(NUM_CLASSES), IGNORE], size=(H, W)).astype(np.uint8)
    return RenderedFrame(
        image=rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
        keypoints=np.column_stack(
            [rng.uniform(1, W - 1, 18), rng.uniform(1, H - 1, 18), rng.integers(0, 2, 18)]
        ),
        vertices=rng.uniform(0, W, (3281, 2)),
        partseg=labels if partseg else None,
    )


def test_stills_get_a_single_channel_partseg_png(tmp_path):
    layout = SyntheticLayout(root=tmp_path, animal="dog", style="source")
    frame = _frame(0)
    layout.write_still(3, frame)
    path = layout.partseg_path(3)
    assert path.name == "3_dog_source_partseg.png" and path.parent == layout.paths(3)[0].parent
    assert path == partseg_path(layout.paths(3)[0])  # the reference's img_path[:-7]
    raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == 2 and raw.dtype == np.uint8  # 8-bit grey, no palette or RGB
    assert np.array_equal(raw, frame.partseg)
    assert np.array_equal(read_partseg(path, size=(W, H)), frame.partseg)
    assert layout.is_complete(3)
    path.write_bytes(path.read_bytes()[:-20])  # cut short
    assert not layout.is_complete(3) and layout.data_complete(3)
    with pytest.raises(DataError, match="truncated PNG"):
        read_partseg(path)
    path.unlink()
    assert not layout.is_complete(3)
    assert PARTSEG_SUFFIX in layout.output_names()


def test_a_frame_without_partseg_is_refused(tmp_path):
    layout = SyntheticLayout(root=tmp_path, animal="dog", style="source")
    with pytest.raises(ValueError, match="renderer gave none"):
        layout.write_still(0, _frame(0, partseg=False))
    assert not any(p.exists() for p in (*layout.paths(0), layout.partseg_path(0)))


def test_bad_label_maps_are_refused_naming_the_file(tmp_path):
    with pytest.raises(DataError, match=r"bad_partseg.png: part segmentation holds labels \[10"):
        write_partseg(tmp_path / "bad_partseg.png", np.full((4, 5), 10, np.uint8))
    assert not (tmp_path / "bad_partseg.png").exists()
    with pytest.raises(DataError, match="single-channel 8-bit"):
        write_partseg(tmp_path / "rgb_partseg.png", np.zeros((4, 5, 3), np.uint8))
    good = tmp_path / "good_partseg.png"
    write_partseg(good, np.zeros((4, 5), np.uint8))
    with pytest.raises(DataError, match="is 5x4, the image 6x4"):
        read_partseg(good, size=(6, 4))


def test_stray_partseg_temp_files_are_removed(tmp_path):
    layout = SyntheticLayout(root=tmp_path, animal="dog", style="source")
    layout.folder.mkdir(parents=True)
    stray = layout.folder / ".4_dog_source_partseg.png.ab12cd34.tmp"
    stray.write_bytes(b"\x89PNG partial")
    assert remove_stray_temp_files([layout.folder], layout.output_names()) == [stray]


def test_generated_stills_carry_partseg_of_their_frame(gen, reference_run):
    folder = reference_run.root / SYNTHETIC
    images = sorted(folder.glob("*_img.png"))
    assert len(images) == gen.source_images
    for image in images:
        labels = read_partseg(partseg_path(image), size=gen.size)
        assert (labels > 0).mean() > 0.02  # the animal is labelled
        assert {1, 4} <= set(np.unique(labels).tolist())  # head and torso


def _drop_partseg(root: Path) -> dict[str, bytes]:
    """Delete the partseg files (a folder from before them); the bytes of the others."""
    for path in (root / SYNTHETIC).glob(f"*_{PARTSEG_SUFFIX}"):
        path.unlink()
    return {p.name: p.read_bytes() for p in (root / SYNTHETIC).iterdir()}


def test_resume_adds_partseg_to_an_older_folder_keeping_its_data(
    gen, reference_run, reference_copy
):
    root = reference_copy
    before = _drop_partseg(root)
    split = root / SYNTHETIC / "train_idxs.npy"  # a derived file of the old data
    split.write_bytes(b"split of the unchanged images")
    rerun: list[Job] = []
    report = generate(gen.settings(root), processes=1, progress=False, on_job_done=rerun.append)
    assert rerun == [Job("source", "synthetic", i, 1) for i in range(gen.source_images)]
    assert report.skipped == gen.target_shots
    assert split.read_bytes() == b"split of the unchanged images"  # still valid: kept
    split.unlink()
    for name, data in before.items():
        assert (root / SYNTHETIC / name).read_bytes() == data, name  # images, keypoints, manifest
    assert gen.tree(root) == reference_run.files  # the same files as a fresh run
    assert generate(gen.settings(root), processes=1, progress=False).written == 0


def test_resume_replaces_a_still_that_renders_differently(
    gen, reference_run, reference_copy, caplog
):
    root = reference_copy
    _drop_partseg(root)
    image = root / SYNTHETIC / "1_dog_source_img.png"
    changed = read_image(image)
    changed[0, 0] ^= 255
    ok, data = cv2.imencode(".png", changed[:, :, ::-1])
    image.write_bytes(data.tobytes())
    split = root / SYNTHETIC / "train_idxs.npy"
    split.write_bytes(b"split")
    with caplog.at_level(logging.WARNING):
        generate(gen.settings(root), processes=1, progress=False)
    assert "1_dog_source_img.png: the re-rendered still differs" in caplog.text
    assert not split.exists()  # the data changed: its splits are stale
    assert gen.tree(root) == reference_run.files


def test_fixture_stills_carry_partseg(tmp_path):
    folder = make_synthetic_fixture(tmp_path, animal="horse", num_images=3, frame_size=(96, 72))
    for i in range(3):
        image = folder / f"{i}_SK_horse_fixture_img.png"
        labels = read_partseg(partseg_path(image), size=(96, 72))
        assert (labels == IGNORE).any()  # the keypoint disks
        assert (labels == 4).sum() > (labels == 1).sum() > 0  # torso larger than the head
