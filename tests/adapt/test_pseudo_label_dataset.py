"""PseudoLabelDataset: serves pseudo-labels through the base dataset's crop and augmentation."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from animalpose.adapt.pseudo_label_dataset import PseudoLabelDataset
from animalpose.adapt.pseudo_label_store import PseudoLabels
from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.tigdog import RealAnimal
from animalpose.datasets.geometry import apply_affine, crop_matrix
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.transforms.registry import build_augmenter

S = 64


@pytest.fixture(scope="module")
def labels(real_dataset):
    """Hand-made labels: the annotation moved by a known offset, confidences random."""
    n, rng = len(real_dataset), np.random.default_rng(4)
    truth = np.stack([real_dataset.annotation(i)[0] for i in range(n)])
    keypoints = np.where(truth[..., 2:] > 0, truth[..., :2], 0.5 * np.array([192.0, 128.0]))
    keypoints = (keypoints + [3.0, -2.0]).astype(np.float32)
    sf = np.array([real_dataset.shot_frame(i) for i in range(n)])
    raw = PseudoLabels(
        round=0,
        epoch=0,
        keep_share=0.0,
        threshold=float("nan"),
        indices=np.arange(n),
        shots=sf[:, 0],
        frames=sf[:, 1],
        keypoints=keypoints,
        confidence=rng.uniform(size=(n, 18)).astype(np.float32),
        substituted=np.zeros((n, 18), bool),
        selected=np.zeros((n, 18), bool),
    )
    return raw.with_selection(0.5)


def expected_keypoints(labels: PseudoLabels, row: int, matrix: np.ndarray, flipped: bool):
    """(K, 3) crop keypoints independently: labels through the sample's matrix, channels
    swapped when mirrored, visible = selected and inside the crop."""
    order = ANIMAL18.flip_index if flipped else np.arange(18)
    xy = apply_affine(labels.keypoints[row].astype(np.float64), matrix)[order]
    visible = labels.selected[row][order]
    visible &= ((xy >= -0.5) & (xy < S - 0.5)).all(axis=1)
    return np.where(visible[:, None], xy, 0.0), visible


def test_identity_augmenter_serves_the_labels_in_the_crop(real_dataset, labels):
    data = PseudoLabelDataset(real_dataset, labels)
    assert len(data) == len(real_dataset)
    for i in (0, 5, len(data) - 1):
        sample = data[i]
        _, center, size = real_dataset.annotation(i)
        matrix = crop_matrix(center, size, (S, S))
        np.testing.assert_allclose(sample["meta"]["matrix"], matrix)
        xy, visible = expected_keypoints(labels, i, matrix, flipped=False)
        kp = sample["keypoints"].numpy()
        np.testing.assert_array_equal(kp[:, 2] > 0, visible)
        assert visible.any() and not (kp[~labels.selected[i], 2] > 0).any()
        np.testing.assert_allclose(kp[:, :2], xy, atol=1e-4)
        assert torch.equal(sample["image"], real_dataset[i]["image"])  # base's own crop
        meta = sample["meta"]
        assert (meta["index"], meta["shot"], meta["frame"]) == (i, *real_dataset.shot_frame(i))


def test_training_augmenter_moves_labels_with_the_image(tigdog, labels):
    strong = build_augmenter("strong", output_size=S, flip_index=ANIMAL18.flip_index)
    base = RealAnimal(
        root=tigdog.root, animal="horse", split="all", augmenter=strong, spec=ANIMAL18, seed=3
    )
    data = PseudoLabelDataset(base, labels)
    flips = set()
    for i in range(8):
        sample = data[i]
        flips.add(sample["meta"]["flipped"])
        xy, visible = expected_keypoints(
            labels, i, sample["meta"]["matrix"], sample["meta"]["flipped"]
        )
        kp = sample["keypoints"].numpy()
        np.testing.assert_array_equal(kp[:, 2] > 0, visible)
        np.testing.assert_allclose(kp[:, :2], xy, atol=1e-3)
    assert flips == {True, False}  # both branches checked
    first = data[2]["image"].clone()
    data.set_epoch(1)
    assert base.epoch == 1 and data.epoch == 1
    assert not torch.equal(data[2]["image"], first)  # a new augmentation draw


def test_crop_files_use_their_pre_matrix(crop_dataset, labels):
    base = crop_dataset
    data = PseudoLabelDataset(base, labels)
    for i in (1, 9):
        sample = data[i]
        _, center, size = base.annotation(i)
        matrix = crop_matrix(center, size, (S, S))  # CenterCrop of the whole crop file
        np.testing.assert_allclose(sample["meta"]["matrix"], matrix, atol=1e-9)
        xy, visible = expected_keypoints(labels, i, matrix, flipped=False)
        np.testing.assert_array_equal(sample["keypoints"][:, 2].numpy() > 0, visible)
        np.testing.assert_allclose(sample["keypoints"][:, :2].numpy(), xy, atol=1e-4)


def test_labels_of_a_subset_map_through_their_indices(real_dataset, labels, row_arrays):
    rows = np.arange(4, 9)
    arrays = {name: getattr(labels, name) for name in row_arrays}
    part = replace(labels, **{name: a[rows] for name, a in arrays.items() if a is not None})
    data = PseudoLabelDataset(real_dataset, part)
    assert len(data) == 5 and data[0]["meta"]["index"] == 4
    np.testing.assert_allclose(
        data[0]["keypoints"].numpy(),
        PseudoLabelDataset(real_dataset, labels)[4]["keypoints"].numpy(),
    )


def test_mismatched_labels_are_rejected(real_dataset, labels):
    shots = labels.shots.copy()
    shots[3] += 1
    with pytest.raises(DataError, match="row 3 \\(index 3\\) is shot .* but the dataset has"):
        PseudoLabelDataset(real_dataset, replace(labels, shots=shots))
    frames = labels.frames.copy()
    frames[-1] += 100
    with pytest.raises(DataError, match=f"row {len(frames) - 1} .* frame"):
        PseudoLabelDataset(real_dataset, replace(labels, frames=frames))
    with pytest.raises(DataError, match="outside the dataset"):
        PseudoLabelDataset(real_dataset, replace(labels, indices=labels.indices + 5))
    with pytest.raises(DataError, match="17 keypoints"):
        PseudoLabelDataset(real_dataset, replace(labels, keypoints=labels.keypoints[:, :17]))
