"""The reference loaders' quirks in legacy mode (datasets/formats/legacy.py and the loaders).

Expected values are worked out by hand in the comments (crop 256, heatmaps 64, stride 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from animalpose.datasets.codecs.legacy import LegacyHeatmap
from animalpose.datasets.fileio import read_image
from animalpose.datasets.formats.legacy import (
    legacy_sample_keypoints,
    legacy_synthetic_targets,
    legacy_tigdog_targets,
)
from animalpose.datasets.formats.synthetic import SyntheticAnimal, list_synthetic_images
from animalpose.datasets.formats.tigdog import RealAnimal, load_tigdog
from animalpose.datasets.keypoints import ANIMAL18, VERTEX_TABLES
from animalpose.datasets.transforms.crop import CenterCrop
from animalpose.datasets.transforms.legacy_crop import legacy_crop

NAN = np.nan

# One TigDog frame hitting each quirk (x, y, visibility), with 10 visible landmarks.
FRAME = np.zeros((18, 3))
FRAME[:11] = [
    (10, 20, 1),
    (30, 40, 0),  # occluded but annotated: drawn, weight 0
    (0, 0, 1),  # (0, 0) visible: no map, weight 1
    (-1, 50, 1),  # x = -1, y kept: drawn; its x stays out of the box
    (70, -2, 1),  # y <= 0: not drawn, weight 1; its x is in the box
    (-6, 30, 1),  # x value -0.71: truncated toward zero -> cell 0
    (41, 36, 1),
    (41, 36, 1),
    (41, 36, 1),
    (41, 36, 1),
    (50, 30, 1),
]
# Box: x from {10, 30, 70, 41, 50} = [10, 70], y from {20, 40, 50, 30, 36} = [20, 50]; centre
# (40, 35); scale = 60 / 200 * 1.5 = 0.44999999999999996 (not 0.45: the reference's order),
# h = 200 s = 90 (less an ulp). Cell = trunc(64 (v - c) / 90 + 32):
#   x: 10 -> 10.67 -> 10, 30 -> 24.9 -> 24, -1 -> 2.84 -> 2, -6 -> -0.71 -> 0, 41 -> 32.7 -> 32,
#      50 -> 39.1 -> 39
#   y: 20 -> 21.3 -> 21, 40 -> 35.6 -> 35, 50 -> 42.7 -> 42, 30 -> 28.4 -> 28, 36 -> 32.7 -> 32
CELLS = {0: (10, 21), 1: (24, 35), 3: (2, 42), 5: (0, 28), 6: (32, 32), 10: (39, 28)}
WEIGHTS = [1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1] + [0] * 7


def _expected_sample_keypoints() -> np.ndarray:
    out = np.full((18, 3), NAN, dtype=np.float32)
    out[:, 2] = WEIGHTS
    for k in range(18):
        cell = CELLS.get(k, CELLS[6] if 6 <= k <= 9 else None)
        if cell is not None:
            out[k, :2] = [4 * cell[0] - 0.5, 4 * cell[1] - 0.5]
    return out


def test_tigdog_targets_box_and_weights():
    t = legacy_tigdog_targets(FRAME, 1.5)
    assert t.center.dtype == np.float32 and t.center.tolist() == [40.0, 35.0]
    assert t.scale == 0.44999999999999996 and t.scale != 0.45
    assert t.drawn.tolist() == [True, True, False, True, False] + [True] * 6 + [False] * 7
    assert t.weights.tolist() == FRAME[:, 2].tolist()
    keypoints = legacy_sample_keypoints(
        t,
        matrix=np.eye(2, 3),
        flipped=False,
        flip_index=ANIMAL18.flip_index,
        exact=True,
        input_size=256,
        heatmap_size=64,
    )
    np.testing.assert_array_equal(keypoints, _expected_sample_keypoints())


def test_tigdog_targets_through_the_codec():
    """Occluded: a map with weight 0; (0, 0): no map, weight 1; x -> cell 0: the patch is cut at
    the border (columns 0..3 of the map)."""
    t = legacy_tigdog_targets(FRAME, 1.5)
    kp = legacy_sample_keypoints(
        t,
        matrix=np.eye(2, 3),
        flipped=False,
        flip_index=ANIMAL18.flip_index,
        exact=True,
        input_size=256,
        heatmap_size=64,
    )
    heatmaps, weights = LegacyHeatmap((256, 256), (64, 64)).encode(kp[:, :2], kp[:, 2])
    assert weights.tolist() == WEIGHTS
    assert heatmaps[1, 35, 24] == 1.0 and weights[1] == 0
    assert not heatmaps[2].any() and not heatmaps[4].any()
    assert heatmaps[5, 28, 0] == 1.0
    assert np.flatnonzero(heatmaps[5].any(axis=0)).tolist() == [0, 1, 2, 3]


# Synthetic: every vertex starts at (100, 100) (visibility column 0: the reference forces 1).
ROWS = np.asarray(VERTEX_TABLES["horse"])


def _vertices() -> np.ndarray:
    v = np.zeros((3299, 3))
    v[:, :2] = 100.0
    free = np.setdiff1d(np.arange(3299), ROWS)
    v[free[0], :2] = (0.1, 50)  # float16 0.0999755859375: x_min
    v[free[1], :2] = (639.9, 479.9)  # float16 640.0, 480.0: x_max, y_max
    v[free[2], :2] = (300, -10)  # y_min, clipped to 0
    v[ROWS[0], :2] = (640.1, 100)  # float16 640.0: on the window's edge, kept
    v[ROWS[1], :2] = (640.3, 100)  # float16 640.5: outside, zeroed
    v[ROWS[2], :2] = (200, 0)  # y = 0: kept, no map
    v[ROWS[3], :2] = (100, -0.0001)  # outside, zeroed
    v[ROWS[4], :2] = (300, 480.1)  # float16 480.0: kept
    v[ROWS[5], :2] = (300, 480.2)  # float16 480.25: zeroed
    return v


def test_synthetic_targets_float16_window_and_box():
    t = legacy_synthetic_targets(_vertices(), ROWS, 1.25)
    # x: (0.0999755859375 + 640.0) / 2 in float64 = 320.04998779296875 (a float32); NumPy 2's
    # float16 arithmetic would give float16(640.0999...) / 2 = 320.0, and float64 inputs 320.0.
    assert t.center.tolist() == [320.04998779296875, 240.0]
    assert t.scale == (640.0 - 0.0999755859375) / 200.0 * 1.25
    expected = np.full((18, 2), 100.0, dtype=np.float32)
    expected[:6] = [(640, 100), (0, 0), (200, 0), (0, 0), (300, 480), (0, 0)]
    np.testing.assert_array_equal(t.points, expected)
    assert t.weights.tolist() == [1, 0, 1, 0, 1, 0] + [1] * 12
    assert t.drawn.tolist() == [True, False, False, False, True, False] + [True] * 12


def test_list_order_is_lexicographic(tmp_path):
    folder = tmp_path / "synthetic_animal" / "horse_combineds5r5_texture"
    folder.mkdir(parents=True)
    for name in ("a", "B", "2", "10", "1_1"):
        (folder / f"{name}_img.png").touch()
    names = [p.name for p in list_synthetic_images(tmp_path, "horse")]
    assert names == ["10_img.png", "1_1_img.png", "2_img.png", "B_img.png", "a_img.png"]


# -- the loaders in legacy mode ----------------------------------------------------------------
def _edit(root: Path, shot: int, position: int, landmarks: np.ndarray) -> None:
    path = root / "behaviorDiscovery2.0" / "landmarks" / "horse" / f"{shot}.mat"
    cells = scipy.io.loadmat(path)["landmarks"]
    record = cells[position, 0][0, 0]
    record["coordinates"][:18] = landmarks[:, :2]
    record["visibility"][:18, 0] = landmarks[:, 2]
    scipy.io.savemat(path, {"landmarks": cells})


def test_real_animal_legacy_samples(tigdog, tmp_path):
    """Frames with exactly 10 visible landmarks are kept, 9 dropped; a kept frame's sample
    carries the hand-worked cells; default mode is unchanged."""
    root = tmp_path / "data"
    shutil.copytree(
        tigdog.root / "behaviorDiscovery2.0",
        root / "behaviorDiscovery2.0",
        ignore=shutil.ignore_patterns("splits", "tiger"),
    )
    data = load_tigdog(root, "horse")
    shot = int(data.shots[0])
    nine = FRAME.copy()
    nine[10, 2] = 0
    _edit(root, shot, 0, FRAME)
    _edit(root, shot, 1, nine)
    data = load_tigdog(root, "horse")
    assert 0 in data.kept and 1 not in data.kept

    def build(legacy: bool) -> RealAnimal:
        return RealAnimal(
            root=root,
            animal="horse",
            split="all",
            augmenter=CenterCrop(256),
            spec=ANIMAL18,
            seed=0,
            legacy=legacy,
        )

    sample = build(True)[0]
    np.testing.assert_array_equal(sample["keypoints"].numpy(), _expected_sample_keypoints())
    assert sample["meta"]["center"].tolist() == [40.0, 35.0]
    assert sample["meta"]["size"][0] == 200 * 0.44999999999999996
    frame = read_image(data.frame_path(0))
    crop, matrix = legacy_crop(frame, np.float32([40, 35]), 0.44999999999999996, 256)
    np.testing.assert_array_equal(sample["image"].permute(1, 2, 0).numpy(), crop)
    np.testing.assert_array_equal(sample["meta"]["matrix"], matrix)
    default = build(False)[0]
    assert default["keypoints"][1].tolist() == [0.0, 0.0, 0.0]  # occluded: not visible
    assert np.isfinite(default["keypoints"].numpy()).all()


def test_synthetic_animal_legacy_samples(synthetic, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(synthetic.root / "synthetic_animal", root / "synthetic_animal")
    images = list_synthetic_images(root, "horse")
    np.save(images[0].with_name(images[0].name[: -len("img.png")] + "kpts.npy"), _vertices())
    ds = SyntheticAnimal(
        root=root,
        animal="horse",
        split="all",
        augmenter=CenterCrop(256),
        spec=ANIMAL18,
        seed=0,
        legacy=True,
    )
    sample = ds[0]
    t = legacy_synthetic_targets(_vertices(), ROWS, 1.25)
    assert sample["meta"]["center"].tolist() == t.center.tolist()
    kp = sample["keypoints"].numpy()
    assert np.isnan(kp[[1, 2, 3, 5], :2]).all() and kp[:, 2].tolist() == t.weights.tolist()
    # Keypoint 6 at (100, 100): x cell trunc(64 (100 - 320.05) / 799.8 + 32) = trunc(14.39) = 14,
    # y cell trunc(64 (100 - 240) / 799.8 + 32) = trunc(20.80) = 20.
    assert kp[6].tolist() == [4 * 14 - 0.5, 4 * 20 - 0.5, 1.0]


@pytest.mark.parametrize("legacy", [False, True])
def test_legacy_flag_reaches_the_dataset(synthetic, registry_dataset, legacy):
    ds = registry_dataset(
        "synthetic_animal", synthetic.root, "valid", animal="horse", input_size=64, legacy=legacy
    )
    assert ds.legacy is legacy and ds.heatmap_size == 64
