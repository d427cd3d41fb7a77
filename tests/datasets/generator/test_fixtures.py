"""The fixture writers produce the reference's exact file formats, deterministically."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import scipy.io

from animalpose.datasets.fileio import read_image
from animalpose.datasets.formats.tigdog import load_tigdog
from animalpose.datasets.generator.fixtures import make_synthetic_fixture, make_tigdog_fixture
from animalpose.datasets.keypoints import VERTEX_TABLES

REPO = Path(__file__).resolve().parents[3]


def test_script_writes_both_layouts_in_reference_formats(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "datasets" / "make_fixture.py"),
            "--image-path",
            str(tmp_path),
            "--num-images",
            "3",
            "--shots",
            "2",
            "--frames-per-shot",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "synthetic_animal" / "horse_combineds5r5_texture"
    images = sorted(folder.glob("*_img.png"))
    assert len(images) == 3
    assert read_image(images[0]).shape == (480, 640, 3)  # the reference's render size
    vertices = np.load(str(images[0]).replace("img.png", "kpts.npy"))
    assert vertices.shape == (3299, 3)
    assert set(np.unique(vertices[:, 2])) <= {0.0, 1.0}
    base = tmp_path / "behaviorDiscovery2.0"
    ranges = scipy.io.loadmat(base / "ranges" / "horse" / "ranges.mat")["ranges"]
    assert ranges.shape == (3, 3) and np.issubdtype(ranges.dtype, np.integer)
    assert (ranges[:, 2] - ranges[:, 1] == 3).all() and ranges[0, 1] == 1
    files = sorted((base / "landmarks" / "horse").glob("*.mat"))
    assert len(files) == 2  # one range row has no landmark file
    cells = scipy.io.loadmat(files[0])["landmarks"]
    assert cells.dtype == object and cells.shape == (4, 1)  # a real MATLAB cell array
    struct = cells[0, 0]
    assert struct.shape == (1, 1) and len(struct.dtype.names) == 2  # a 1x1 MATLAB struct
    coords, visible = struct[0, 0][0], struct[0, 0][1]
    assert coords.shape == (19, 2) and visible.shape == (19, 1)
    assert len(list((base / "horse").glob("*.jpg"))) == 8


def test_fixtures_are_deterministic(tmp_path):
    a = make_synthetic_fixture(tmp_path / "a", num_images=2, seed=4, frame_size=(96, 72))
    b = make_synthetic_fixture(tmp_path / "b", num_images=2, seed=4, frame_size=(96, 72))
    for p in sorted(a.iterdir()):
        assert p.read_bytes() == (b / p.name).read_bytes()


def test_tigdog_fixture_is_deterministic_and_written_like_the_generator(tmp_path):
    """Same bytes for a seed (fixed MATLAB header), and the generator's struct field names."""
    size = (96, 72)
    a = make_tigdog_fixture(tmp_path / "a", num_shots=2, frames_per_shot=3, seed=4, frame_size=size)
    b = make_tigdog_fixture(tmp_path / "b", num_shots=2, frames_per_shot=3, seed=4, frame_size=size)
    files = sorted(p for p in a.rglob("*") if p.is_file())
    assert files
    for p in files:
        assert p.read_bytes() == (b / p.relative_to(a)).read_bytes()
    cells = scipy.io.loadmat(next((a / "landmarks" / "horse").glob("*.mat")))["landmarks"]
    assert cells[0, 0].dtype.names == ("coordinates", "visibility")


def test_synthetic_keypoints_are_inside_and_box_is_the_body(tmp_path):
    folder = make_synthetic_fixture(tmp_path, num_images=20, seed=1, frame_size=(160, 120))
    for path in sorted(folder.glob("*_kpts.npy")):
        v = np.load(path)
        kp = v[list(VERTEX_TABLES["horse"])]
        assert (kp[:, 0] >= 0).all() and (kp[:, 0] < 160).all()
        assert (kp[:, 1] >= 0).all() and (kp[:, 1] < 120).all()
        box = np.ptp(v[:, :2], axis=0)
        kp_box = np.ptp(kp[:, :2], axis=0)
        # The vertex cloud covers the animal: its box is about the keypoints' box, not larger
        # than 1.6x it (head and body extend a little beyond the keypoints).
        assert (box >= kp_box - 1e-3).all() and (box <= 1.6 * kp_box + 10).all()


def test_video_motion_is_smooth_within_a_shot(tmp_path):
    make_tigdog_fixture(tmp_path, num_shots=3, frames_per_shot=10, seed=2, frame_size=(320, 192))
    data = load_tigdog(tmp_path, "horse")
    for shot in np.unique(data.shots):
        idx = np.flatnonzero(data.shots == shot)
        kp = data.keypoints[idx]
        both = (kp[1:, :, 2] > 0) & (kp[:-1, :, 2] > 0)
        step = np.linalg.norm(kp[1:, :, :2] - kp[:-1, :, :2], axis=2)[both]
        size = np.ptp(kp[0][kp[0][:, 2] > 0, :2], axis=0).max()
        assert np.median(step) < 0.15 * size  # frame to frame the animal moves a little
