"""The multitask synthetic loader: part maps that follow the crop, the flip, and bad files.

Fixtures are written here, not by the generator: each still is painted from its part map with
one flat colour per class (``PALETTE``), so a crop's colours say which labels it must carry.
"""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from animalpose.datasets.fileio import DataError, write_image
from animalpose.datasets.formats.registry import DATASETS, build_dataset
from animalpose.datasets.formats.synthetic import (
    NUM_VERTICES,
    keypoints_path,
    load_vertex_table,
    synthetic_dir,
)
from animalpose.datasets.formats.synthetic_multitask import (
    SyntheticAnimalMultitask,
    partseg_path,
    read_partseg,
)
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.parts import IGNORE, PART_CLASSES, flip_labels
from animalpose.datasets.transforms.crop import CenterCrop
from animalpose.datasets.transforms.occlusion import Occluded
from animalpose.datasets.transforms.strong import (
    AffineStep,
    StrongAugment,
    StrongParams,
    draw_strong_params,
)

HEAD, TORSO, LEFT_FRONT, RIGHT_FRONT, LEFT_BACK, RIGHT_BACK, TAIL = (
    PART_CLASSES.index(n)
    for n in ("head", "torso", "left_front", "right_front", "left_back", "right_back", "tail")
)
#: (256, 3) uint8 colour of each label: far-apart flat colours, none black (black is the
#: strong pipeline's padding) and none equal.
PALETTE = np.zeros((256, 3), dtype=np.uint8)
PALETTE[:10] = [
    (90, 90, 90),
    (255, 0, 0),
    (0, 255, 0),
    (0, 0, 255),
    (255, 255, 0),
    (255, 0, 255),
    (0, 255, 255),
    (255, 128, 0),
    (128, 0, 255),
    (0, 128, 64),
]
PALETTE[IGNORE] = (255, 255, 255)
FRAME = (160, 120)  # (w, h)
#: Vertex box of the aligned fixture: centre (80, 60), crop side 1.25 x 96 = 120 source px
#: (shifted sideways in half of its samples).
BOX = (32.0, 24.0, 128.0, 96.0)
S = 64  # crop side: about 2 source pixels per crop pixel
#: The strong pipeline's geometry only (its noise, blur and contrast change the colours).
GEOMETRY_ONLY = {"noise": 0.0, "blur": 0.0, "contrast": 0.0}


def _vertices(box, rng, rows) -> np.ndarray:
    """(NUM_VERTICES, 3) float32 vertices filling ``box`` (x0, y0, x1, y1), its two corners
    included, so the loader's crop box is ``box``."""
    x0, y0, x1, y1 = box
    v = np.ones((NUM_VERTICES, 3), dtype=np.float32)
    v[:, 0] = rng.uniform(x0, x1, NUM_VERTICES)
    v[:, 1] = rng.uniform(y0, y1, NUM_VERTICES)
    spare = np.setdiff1d(np.arange(NUM_VERTICES), rows)
    v[spare[0], :2], v[spare[1], :2] = (x0, y0), (x1, y1)
    return v


def _write_sample(folder, index: int, labels: np.ndarray, vertices: np.ndarray, image=None):
    """``<index>_t_img.png`` (PALETTE[labels] unless ``image``), ``_kpts.npy``, ``_partseg.png``."""
    base = folder / f"{index}_t_"
    write_image(base.with_name(base.name + "img.png"), PALETTE[labels] if image is None else image)
    np.save(base.with_name(base.name + "kpts.npy"), vertices)
    assert cv2.imwrite(str(base.with_name(base.name + "partseg.png")), labels)


def _parts_map(rng) -> np.ndarray:
    """(H, W) labels: a horse-like layout of flat rectangles, jittered by ``rng``, legs on
    both sides, an IGNORE patch; regions at least 8 px wide."""
    w, h = FRAME
    labels = np.zeros((h, w), dtype=np.uint8)
    dx, dy = rng.integers(-6, 7, size=2)

    def box(x0, y0, x1, y1, value):
        labels[y0 + dy : y1 + dy, x0 + dx : x1 + dx] = value

    box(44, 40, 116, 70, TORSO)
    box(110, 24, 136, 48, HEAD)
    box(24, 36, 44, 50, TAIL)
    box(44, 70, 60, 100, LEFT_BACK)
    box(62, 70, 76, 100, RIGHT_BACK)
    box(92, 70, 104, 100, LEFT_FRONT)
    box(104, 70, 116, 100, RIGHT_FRONT)
    box(70, 48, 86, 60, IGNORE)
    box(122, 28, 130, 36, PART_CLASSES.index("eye"))
    return labels


def _make_aligned(root, n: int = 10, seed: int = 0):
    folder = synthetic_dir(root, "horse")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    rows = load_vertex_table("horse", num_keypoints=18)
    for i in range(n):
        # Even samples: the box centred; odd ones shifted sideways, their crops leave the frame.
        shift = 0.0 if i % 2 == 0 else float(rng.choice([-1, 1]) * rng.uniform(20, 28))
        box = (BOX[0] + shift, BOX[1], BOX[2] + shift, BOX[3])
        _write_sample(folder, i, _parts_map(rng), _vertices(box, rng, rows))
    return folder


@pytest.fixture(scope="module")
def aligned(tmp_path_factory):
    root = tmp_path_factory.mktemp("multitask")
    _make_aligned(root)
    return root


def _dataset(root, augmenter, *, split="all", legacy=False, **kwargs):
    return SyntheticAnimalMultitask(
        root=root,
        animal="horse",
        split=split,
        augmenter=augmenter,
        spec=ANIMAL18,
        seed=0,
        legacy=legacy,
        **kwargs,
    )


def _strong(backend: str = "fused", **probabilities) -> StrongAugment:
    return StrongAugment(
        output_size=S, flip_index=ANIMAL18.flip_index, backend=backend, probabilities=probabilities
    )


def _interior(labels: np.ndarray, radius: int) -> np.ndarray:
    """(S, S) bool: pixels whose (2 radius + 1)^2 neighbourhood holds one label and lies
    inside the crop (an edge just outside the crop still blends into its border pixels)."""
    k = np.ones((2 * radius + 1,) * 2, dtype=np.uint8)
    lo = cv2.erode(labels, k, borderType=cv2.BORDER_REPLICATE)
    hi = cv2.dilate(labels, k, borderType=cv2.BORDER_REPLICATE)
    inner = np.zeros_like(labels, dtype=bool)
    inner[radius:-radius, radius:-radius] = (lo == hi)[radius:-radius, radius:-radius]
    return inner


def _crop(sample) -> np.ndarray:
    return sample["image"].numpy().transpose(1, 2, 0)


# --- alignment ------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["fused", "imgaug"])
def test_strong_geometry_mask_matches_the_crop_colours(aligned, backend):
    if backend == "imgaug":
        pytest.importorskip("imgaug")
    ds = _dataset(aligned, _strong(**GEOMETRY_ONLY, backend=backend))
    checked, flips, affines, padded = 0, 0, 0, 0
    for epoch in range(5):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            sample = ds[i]
            seg = sample["segmentation"].numpy()
            assert seg.shape == (S, S) and seg.dtype == np.uint8
            image, flipped = _crop(sample), sample["meta"]["flipped"]
            params = draw_strong_params(ds.rng(i), ds.augmenter.probabilities)
            assert flipped == params.flip
            flips += flipped
            affines += params.affine is not None
            # The image was painted before the flip swapped the sides' ids.
            painted = flip_labels(seg) if flipped else seg
            inner = _interior(seg, 2) & (seg != 0)
            np.testing.assert_array_equal(image[inner], PALETTE[painted[inner]])
            checked += int(inner.sum())
            # Crop pixels outside the (warped) frame are black in the image: background there.
            black = (image == 0).all(axis=2)
            assert (seg[black] == 0).all()
            padded += int(black.sum())
    assert checked > 4 * S * S and 10 < flips < 40 and 10 < affines < 40 and padded > 0


def test_mask_is_background_where_the_affine_pushed_the_frame_out(tmp_path):
    # A 1.5x zoom about the frame centre pushes the right of the frame out of it; the crop,
    # centred near the right edge, shows black there (the reference pads after the affine), and
    # the mask must say background although the un-cut warp would find torso in the source.
    folder = synthetic_dir(tmp_path, "horse")
    folder.mkdir(parents=True)
    labels = np.full(FRAME[::-1], TORSO, dtype=np.uint8)
    rows = load_vertex_table("horse", num_keypoints=18)
    _write_sample(folder, 0, labels, _vertices((100, 30, 150, 90), np.random.default_rng(1), rows))
    zoom = AffineStep((1.5, 1.5), (0.0, 0.0), 0.0, 0.0, 0, (7, 7, 7))

    class Zoom(StrongAugment):
        def __call__(self, image, keypoints, center, size, rng):
            return self.apply(image, keypoints, center, size, StrongParams((zoom,), False))

    ds = _dataset(tmp_path, Zoom(output_size=S, flip_index=ANIMAL18.flip_index))
    sample = ds[0]
    seg, image = sample["segmentation"].numpy(), _crop(sample)
    # Crop centre (125, 60), side 1.25 x 60 = 75 source px: column p sits at x = 125 + (p - 31.5)
    # x 75 / 64 of the zoomed frame, past its edge (159.5) from p = 61.6 on; the zoom maps that
    # x back to 79.5 + (x - 79.5) / 1.5 <= 134.4 of the source, inside it.
    col_x = 125.0 + (np.arange(S) - (S - 1) / 2) * 75.0 / S  # zoomed-frame x of each column
    source_x = (FRAME[0] - 1) / 2 + (col_x - (FRAME[0] - 1) / 2) / 1.5
    assert (source_x < FRAME[0] - 1).all()  # every column's source lies inside the frame ...
    outside = col_x > FRAME[0] - 0.5  # ... but not every column's zoomed-frame position
    assert 0 < outside.sum() < S
    assert (seg[:, outside] == 0).all() and (image[:, outside] == 0).all()
    inside = col_x < FRAME[0] - 1.5
    assert (seg[:, inside] == TORSO).all()


def test_validation_mask_is_the_nearest_neighbour_crop(tmp_path):
    # Frame 10 x 10, vertex box [0, 8]^2: centre (4, 4), side 10, crop 15 px = 1.5 per source
    # px: crop pixel p samples source 4 + (p - 7) / 1.5 = -0.67, 0, 0.67, 1.33, ... (thirds,
    # never a tie), rounded: -1 (outside: background), 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 8, 9.
    nearest = [-1, 0, 1, 1, 2, 3, 3, 4, 5, 5, 6, 7, 7, 8, 9]
    folder = synthetic_dir(tmp_path, "horse")
    folder.mkdir(parents=True)
    rng = np.random.default_rng(4)
    labels = rng.choice([*range(10), IGNORE], size=(10, 10)).astype(np.uint8)
    rows = load_vertex_table("horse", num_keypoints=18)
    _write_sample(folder, 0, labels, _vertices((0, 0, 8, 8), rng, rows))
    sample = _dataset(tmp_path, CenterCrop(15))[0]
    expected = np.zeros((15, 15), dtype=np.uint8)
    for r, y in enumerate(nearest):
        for c, x in enumerate(nearest):
            expected[r, c] = labels[y, x] if x >= 0 and y >= 0 else 0
    np.testing.assert_array_equal(sample["segmentation"].numpy(), expected)
    assert not sample["meta"]["flipped"]


# --- flip -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def left_leg(tmp_path_factory):
    """A left-front-leg blob in the left of the frame, torso beside it."""
    root = tmp_path_factory.mktemp("left_leg")
    folder = synthetic_dir(root, "horse")
    folder.mkdir(parents=True)
    labels = np.zeros(FRAME[::-1], dtype=np.uint8)
    labels[50:90, 40:56] = LEFT_FRONT
    labels[40:60, 56:120] = TORSO
    rows = load_vertex_table("horse", num_keypoints=18)
    _write_sample(folder, 0, labels, _vertices(BOX, np.random.default_rng(2), rows))
    return root


@pytest.mark.parametrize("legacy", [False, True])
def test_flip_mirrors_the_mask_and_swaps_sides_unless_legacy(left_leg, legacy):
    plain = _dataset(left_leg, _strong(**GEOMETRY_ONLY, affine=0.0, flip=0.0), legacy=legacy)[0]
    flipped = _dataset(left_leg, _strong(**GEOMETRY_ONLY, affine=0.0, flip=1.0), legacy=legacy)[0]
    assert not plain["meta"]["flipped"] and flipped["meta"]["flipped"]
    before, after = plain["segmentation"].numpy(), flipped["segmentation"].numpy()
    cols = np.nonzero(before == LEFT_FRONT)[1]
    assert cols.size > 50 and cols.max() < S // 2  # the leg on the left of the plain crop
    moved = before[:, ::-1]  # the same sampling points, mirrored
    if legacy:  # the reference mirrors the pixels only
        np.testing.assert_array_equal(after, moved)
        assert (after == LEFT_FRONT).sum() == cols.size and (after == RIGHT_FRONT).sum() == 0
    else:
        np.testing.assert_array_equal(after, flip_labels(moved))
        assert (after == RIGHT_FRONT).sum() == cols.size and (after == LEFT_FRONT).sum() == 0
    leg = after == (LEFT_FRONT if legacy else RIGHT_FRONT)
    assert np.nonzero(leg)[1].min() >= S // 2  # now on the right
    # The keypoints were mirrored with the same matrix: the image agrees with the mask.
    np.testing.assert_array_equal(_crop(flipped), _crop(plain)[:, ::-1])


# --- occlusion, collation, registry ---------------------------------------------------------


def test_occluders_change_the_image_not_the_mask(aligned):
    base = _strong(**GEOMETRY_ONLY)
    clean = _dataset(aligned, base)
    occluded = _dataset(aligned, Occluded(base, probability=1.0, max_count=3))
    changed = 0
    for i in range(4):
        a, b = clean[i], occluded[i]
        np.testing.assert_array_equal(a["segmentation"].numpy(), b["segmentation"].numpy())
        changed += int((a["image"] != b["image"]).any())
    assert changed == 4


def test_loader_collates_segmentation(aligned):
    ds = _dataset(aligned, _strong())
    batch = next(iter(DataLoader(ds, batch_size=3, shuffle=False, num_workers=0)))
    assert batch["segmentation"].shape == (3, S, S) and batch["segmentation"].dtype == torch.uint8
    for i in range(3):
        torch.testing.assert_close(batch["segmentation"][i], ds[i]["segmentation"])
    assert batch["image"].shape == (3, 3, S, S)


def test_registry_builds_the_multitask_dataset(aligned):
    assert DATASETS["synthetic_animal_sp_multitask"].cls is SyntheticAnimalMultitask
    kwargs = dict(root=aligned, animal="horse", input_size=S, spec=ANIMAL18, seed=0)
    kwargs.update(scale_factor=0.25, rot_factor=30, augment_backend="fused")
    train = build_dataset("synthetic_animal_sp_multitask", split="train", **kwargs)
    valid = build_dataset("synthetic_animal_sp_multitask", split="valid", **kwargs)
    assert isinstance(train.augmenter, StrongAugment) and isinstance(valid.augmenter, CenterCrop)
    assert len(valid) == 2 and len(train) == 8  # the reference's len // 5 validation split
    for ds in (train, valid):
        sample = ds[0]
        assert sample["segmentation"].shape == (S, S) and sample["keypoints"].shape == (18, 3)
    # The un-augmented crop of a flat-coloured still: colours and labels agree inside regions.
    sample = valid[1]
    seg, image = sample["segmentation"].numpy(), _crop(sample)
    inner = _interior(seg, 1)
    assert inner.mean() > 0.5
    np.testing.assert_array_equal(image[inner], PALETTE[seg[inner]])


# --- errors ---------------------------------------------------------------------------------------


@pytest.fixture
def copy(aligned, tmp_path):
    """A writable copy of the aligned fixture; returns (root, folder)."""
    shutil.copytree(aligned / "synthetic_animal", tmp_path / "synthetic_animal")
    return tmp_path, synthetic_dir(tmp_path, "horse")


def _first(folder):
    return sorted(folder.glob("*img.png"))[0]


def test_missing_partseg_fails_at_construction(copy):
    root, folder = copy
    path = partseg_path(_first(folder))
    path.unlink()
    with pytest.raises(DataError, match=rf"{path}: part segmentation not found.*generate\.py"):
        _dataset(root, CenterCrop(S))
    assert keypoints_path(_first(folder)).is_file()  # only the part map is missing


def _rewrite(copy, labels) -> tuple:
    root, folder = copy
    path = partseg_path(_first(folder))
    assert cv2.imwrite(str(path), labels)
    return _dataset(root, CenterCrop(S)), path


def test_wrong_size_partseg_names_the_file(copy):
    ds, path = _rewrite(copy, np.zeros((FRAME[1], FRAME[0] - 1), dtype=np.uint8))
    ds[1]  # other samples still load: content is checked per sample
    with pytest.raises(
        DataError, match=rf"{path}: part segmentation is 159x120, the image 160x120"
    ):
        ds[0]


def test_bad_labels_name_the_file(copy):
    labels = np.zeros(FRAME[::-1], dtype=np.uint8)
    labels[5, 5], labels[6, 6] = 10, 254
    ds, path = _rewrite(copy, labels)
    with pytest.raises(DataError, match=rf"{path}: part segmentation holds labels \[10, 254\]"):
        ds[0]


def test_channels_and_depth_are_checked(copy):
    grey = np.full(FRAME[::-1], TORSO, dtype=np.uint8)
    ds, path = _rewrite(copy, np.repeat(grey[:, :, None], 3, axis=2))  # equal channels: fine
    np.testing.assert_array_equal(read_partseg(path), grey)
    assert set(np.unique(ds[0]["segmentation"].numpy())) <= {0, TORSO}
    colour = np.repeat(grey[:, :, None], 3, axis=2)
    colour[0, 0, 1] = 0
    ds, path = _rewrite(copy, colour)
    with pytest.raises(DataError, match=rf"{path}: part segmentation has 3 different colour"):
        ds[0]
    ds, path = _rewrite(copy, grey.astype(np.uint16))
    with pytest.raises(DataError, match=rf"{path}: .*single-channel 8-bit image.*uint16"):
        ds[0]


def test_palette_png_is_refused(copy):
    from PIL import Image

    root, folder = copy
    path = partseg_path(_first(folder))
    indexed = Image.fromarray(np.full(FRAME[::-1], TORSO, dtype=np.uint8), mode="L").convert("P")
    indexed.save(path)
    with pytest.raises(DataError, match=rf"{path}: .*indexed \(palette\) PNG"):
        read_partseg(path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=rf"{path}: truncated PNG"):
        read_partseg(path)
