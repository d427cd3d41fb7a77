"""The generator pipeline: plan, both layouts through the real loaders, determinism across
process counts, resuming, manifests."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.registry import build_dataset, dataset_mean_std
from animalpose.datasets.formats.tigdog import load_tigdog
from animalpose.datasets.generator.fixtures import make_tigdog_fixture
from animalpose.datasets.generator.run import Job, generate, job_rng, plan_jobs
from animalpose.datasets.keypoints import ANIMAL18

SYNTHETIC = Path("synthetic_animal/dog_combineds5r5_texture")
TIGDOG = Path("behaviorDiscovery2.0")


def _build(name, root, split):
    return build_dataset(
        name,
        root=root,
        animal="dog",
        split=split,
        input_size=64,
        spec=ANIMAL18,
        seed=0,
        scale_factor=0.25,
        rot_factor=30,
        augment_backend="fused",
    )


def test_plan_counts_and_job_seeds(gen):
    settings = gen.settings(Path("unused"))
    jobs = plan_jobs(settings)
    assert [j for j in jobs if j.style == "source"] == [
        Job("source", "synthetic", i, 1) for i in range(gen.source_images)
    ]
    assert [j for j in jobs if j.style == "target"] == [
        Job("target", "tigdog", i, gen.frames_per_shot) for i in range(gen.target_shots)
    ]
    swapped = gen.settings(Path("unused"), source_layout="tigdog", target_layout="synthetic")
    counts = {s: sum(j.style == s for j in plan_jobs(swapped)) for s in ("source", "target")}
    # ceil(6 / 4) = 2 source shots; 3 * 4 = 12 target stills
    assert counts == {"source": 2, "target": 12}
    a, b = job_rng(gen.seed, jobs[0]).random(3), np.random.default_rng([gen.seed, 0, 0]).random(3)
    assert np.array_equal(a, b)
    assert not np.array_equal(job_rng(gen.seed, jobs[-1]).random(3), a)


def test_default_layouts_written_and_loaded(gen, reference_run, reference_copy):
    root = reference_copy
    report = reference_run.report
    assert (report.written, report.skipped) == (gen.source_images + gen.target_shots, 0)
    assert report.images == gen.source_images + gen.target_shots * gen.frames_per_shot
    images = sorted((root / SYNTHETIC).glob("*_img.png"))
    assert len(images) == gen.source_images
    manifest = json.loads((root / SYNTHETIC / "generator.json").read_text())
    assert manifest["style"] == "source" and manifest["images"] == gen.source_images
    assert manifest["size"] == list(gen.size) and manifest["seed"] == gen.seed
    ranges = scipy.io.loadmat(root / TIGDOG / "ranges/dog/ranges.mat")["ranges"]
    assert ranges.tolist() == [
        [s + 1, s * gen.frames_per_shot + 1, (s + 1) * gen.frames_per_shot]
        for s in range(gen.target_shots)
    ]
    # Through the real loaders, splits and mean files created on the way.
    train, valid = (
        _build("synthetic_animal_sp", root, "train"),
        _build("synthetic_animal_sp", root, "valid"),
    )
    assert len(train) + len(valid) == gen.source_images and len(valid) == gen.source_images // 5
    sample = valid[0]
    assert sample["image"].shape == (3, 64, 64)
    name = Path(valid.image_path(0)).name
    rows = np.load(root / SYNTHETIC / name.replace("img.png", "kpts.npy"))
    assert np.allclose(sample["meta"]["keypoints_image"][:, :2], rows[:18, :2], atol=1e-4)
    assert sample["meta"]["keypoints_image"][:, 2].sum() == 18  # all inside the frame
    assert train[0]["image"].shape == (3, 64, 64)
    real = _build("real_animal_sp", root, "valid")
    assert len(real) == gen.frames_per_shot  # one of three shots held out, every frame kept
    assert len(_build("real_animal_sp", root, "train")) == 2 * gen.frames_per_shot
    meta = real[0]["meta"]
    assert meta["shot"] >= 1 and meta["frame"] == (meta["shot"] - 1) * gen.frames_per_shot + 1
    _, std = dataset_mean_std("real_animal_sp", root=root, animal="dog")
    assert (root / SYNTHETIC / "mean.pth.tar").is_file() and (std > 0).all()
    assert (root / SYNTHETIC / "train_idxs.npy").is_file()
    assert (root / TIGDOG / "splits/dog/train_idxs_by_video.npy").is_file()


def test_swapped_layouts_written_and_loaded(gen, tmp_path):
    """Source shots in the TigDog layout, target stills in the synthetic layout."""
    settings = gen.settings(tmp_path, source_layout="tigdog", target_layout="synthetic")
    report = generate(settings, processes=1, progress=False)
    assert report.written == 2 + gen.target_shots * gen.frames_per_shot
    names = sorted(p.name for p in (tmp_path / SYNTHETIC).glob("*_img.png"))
    assert len(names) == gen.target_shots * gen.frames_per_shot and all(
        "_dog_target_" in n for n in names
    )
    valid = _build("synthetic_animal_sp", tmp_path, "valid")
    assert valid[0]["image"].shape == (3, 64, 64)
    data = load_tigdog(tmp_path, "dog")
    assert len(data.frames) == 2 * gen.frames_per_shot
    assert len(_build("real_animal_sp", tmp_path, "valid")) == gen.frames_per_shot
    manifest = json.loads((tmp_path / TIGDOG / "ranges/dog/generator.json").read_text())
    assert manifest["style"] == "source" and manifest["shots"] == 2


def test_two_processes_write_the_same_files(gen, reference_run, tmp_path):
    report = generate(gen.settings(tmp_path), processes=2, progress=False)
    assert report.written == gen.source_images + gen.target_shots
    assert gen.tree(tmp_path) == reference_run.files


def test_seed_decides_the_content(gen, reference_run, tmp_path):
    generate(gen.settings(tmp_path, seed=gen.seed + 1), processes=1, progress=False)
    other = gen.tree(tmp_path)
    assert other.keys() == reference_run.files.keys()
    frames = [k for k in other if k.endswith((".png", ".jpg"))]
    assert all(other[k] != reference_run.files[k] for k in frames)


def test_consecutive_frames_of_a_shot_move_a_little(gen, reference_copy):
    data = load_tigdog(reference_copy, "dog")
    for shot in np.unique(data.shots):
        kp = data.keypoints[data.shots == shot]
        assert len(kp) == gen.frames_per_shot
        step = np.linalg.norm(np.diff(kp[:, :, :2], axis=0), axis=2)
        size = np.ptp(kp[0, :, :2], axis=0).max()
        assert 0 < np.median(step) < 0.1 * size and step.max() < 0.3 * size


class _Interrupt(Exception):
    pass


def test_resume_after_an_interruption_runs_exactly_the_missing_jobs(gen, reference_run, tmp_path):
    settings = gen.settings(tmp_path)
    done: list[Job] = []

    def stop_after_four(job: Job) -> None:
        done.append(job)
        if len(done) == 4:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        generate(settings, processes=1, progress=False, on_job_done=stop_after_four)
    assert len(done) == 4
    # A process killed mid-write leaves an atomic_write temporary file: no sample half-written.
    stray = tmp_path / SYNTHETIC / ".5_dog_source_img.png.zz81lq0w.tmp"
    stray.write_bytes(b"\x89PNG partial")
    images = sorted((tmp_path / SYNTHETIC).glob("*_img.png"))
    assert len(images) == 4  # the loader sees only whole samples
    rerun: list[Job] = []
    report = generate(settings, processes=1, progress=False, on_job_done=rerun.append)
    assert set(rerun) == set(plan_jobs(settings)) - set(done)
    assert (report.written, report.skipped, report.removed_temp) == (len(rerun), 4, 1)
    assert gen.tree(tmp_path) == reference_run.files


def test_resume_redoes_deleted_or_damaged_outputs_and_drops_stale_splits(gen, reference_copy):
    root = reference_copy
    _build("synthetic_animal_sp", root, "valid")  # creates split files
    _build("real_animal_sp", root, "valid")
    (root / SYNTHETIC / "2_dog_source_kpts.npy").unlink()
    frame = root / TIGDOG / "dog" / f"{gen.frames_per_shot + 2:08d}.jpg"  # in shot 2
    frame.write_bytes(frame.read_bytes()[:100])  # truncated
    rerun: list[Job] = []
    report = generate(gen.settings(root), processes=1, progress=False, on_job_done=rerun.append)
    assert rerun == [
        Job("source", "synthetic", 2, 1),
        Job("target", "tigdog", 1, gen.frames_per_shot),
    ]
    assert report.skipped == gen.source_images + gen.target_shots - 2
    assert not (root / SYNTHETIC / "train_idxs.npy").exists()
    assert not (root / TIGDOG / "splits/dog/train_idxs_by_video.npy").exists()
    nothing = generate(gen.settings(root), processes=1, progress=False)
    assert nothing.written == 0


def test_a_run_with_other_settings_is_refused(gen, reference_copy, tmp_path):
    with pytest.raises(DataError, match=r"seed: 7 there, 8 now"):
        generate(gen.settings(reference_copy, seed=8), processes=1, progress=False)
    with pytest.raises(DataError, match=r"size: \[96, 72\] there, \[80, 64\] now"):
        generate(gen.settings(reference_copy, size=(80, 64)), processes=1, progress=False)
    report = generate(
        gen.settings(reference_copy, source_images=gen.source_images + 2, target_shots=0),
        processes=1,
        progress=False,
        force=True,
    )
    assert (report.written, report.skipped) == (2, gen.source_images)  # grew the same seed's run
    # A TigDog folder the generator did not write (e.g. real data) is left alone.
    make_tigdog_fixture(
        tmp_path, animal="dog", num_shots=2, frames_per_shot=3, seed=0, frame_size=(64, 48)
    )
    with pytest.raises(DataError, match="did not write"):
        generate(gen.settings(tmp_path, source_images=0), processes=1, progress=False)


def test_breed_and_cover_settings_are_recorded(gen, reference_run, tmp_path):
    manifest = json.loads((reference_run.root / SYNTHETIC / "generator.json").read_text())
    assert (manifest["breed"], manifest["cover"]) == ("mixed", "none")
    report = generate(
        gen.settings(tmp_path, source_images=0, target_breed="basset"), processes=1, progress=False
    )
    assert report.written == gen.target_shots
    target = json.loads(next((tmp_path / TIGDOG).rglob("generator.json")).read_text())
    assert (target["breed"], target["cover"], target["style"]) == ("basset", "none", "target")
    # Another breed is another data set: refused unless forced.
    with pytest.raises(DataError, match="breed: 'basset' there, 'mixed' now"):
        generate(gen.settings(tmp_path, source_images=0), processes=1, progress=False)
