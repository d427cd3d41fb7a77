"""Batching with torch's DataLoader and the epoch/index-seeded randomness."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from animalpose.datasets.formats.synthetic import SyntheticAnimal
from animalpose.datasets.formats.tigdog import RealAnimal
from animalpose.datasets.geometry import invert_affine
from animalpose.datasets.keypoints import ANIMAL18

S = 48


def _synthetic(root, augmenter):
    return SyntheticAnimal(
        root=root, animal="horse", split="train", augmenter=augmenter, spec=ANIMAL18, seed=11
    )


def test_dataloader_with_two_workers_gives_contract_shapes(tigdog, random_rotate):
    augmenter = random_rotate(S, ANIMAL18.flip_index)
    ds = RealAnimal(
        root=tigdog.root, animal="horse", split="train", augmenter=augmenter, spec=ANIMAL18, seed=0
    )
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=False)
    batch = next(iter(loader))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (4, 3, S, S)
    assert batch["keypoints"].dtype == torch.float32 and batch["keypoints"].shape == (4, 18, 3)
    meta = batch["meta"]
    assert meta["matrix"].dtype == torch.float64 and meta["matrix"].shape == (4, 2, 3)
    assert meta["center"].shape == (4, 2) and meta["size"].shape == (4, 2)
    assert meta["keypoints_image"].shape == (4, 18, 3)
    assert meta["index"].tolist() == [0, 1, 2, 3]
    assert meta["flipped"].dtype == torch.bool
    assert meta["shot"].dtype == torch.int64 and (meta["shot"] > 0).all()
    assert meta["frame"].tolist() == ds.data.frames[ds.indices[:4]].tolist()
    # Visible crop keypoints map back to the annotation through the inverse matrix.
    for b in range(4):
        inv = invert_affine(meta["matrix"][b].numpy())
        kp = batch["keypoints"][b].numpy().astype(np.float64)
        vis = kp[:, 2] > 0
        back = kp[vis, :2] @ inv[:, :2].T + inv[:, 2]
        source = meta["keypoints_image"][b].numpy()
        if meta["flipped"][b]:
            source = source[ANIMAL18.flip_index]
        np.testing.assert_allclose(back, source[vis, :2], atol=1e-3)


def _matrices(loader):
    return torch.cat([batch["meta"]["matrix"] for batch in loader]).numpy()


def test_set_epoch_changes_randomness_and_same_epoch_repeats(synthetic, random_rotate):
    ds = _synthetic(synthetic.root, random_rotate(S, ANIMAL18.flip_index))
    first = ds[3]
    again = ds[3]
    assert torch.equal(first["image"], again["image"])
    np.testing.assert_array_equal(first["meta"]["matrix"], again["meta"]["matrix"])
    assert not np.allclose(ds[4]["meta"]["matrix"], first["meta"]["matrix"])  # index matters
    ds.set_epoch(1)
    assert ds.epoch == 1
    assert not np.allclose(ds[3]["meta"]["matrix"], first["meta"]["matrix"])
    ds.set_epoch(0)
    assert torch.equal(ds[3]["image"], first["image"])


def test_persistent_workers_see_set_epoch(synthetic, random_rotate):
    ds = _synthetic(synthetic.root, random_rotate(S, ANIMAL18.flip_index))
    expected = {
        e: np.stack([(ds.set_epoch(e), ds[i])[1]["meta"]["matrix"] for i in range(len(ds))])
        for e in (0, 1)
    }
    ds.set_epoch(0)
    loader = DataLoader(ds, batch_size=5, num_workers=2, persistent_workers=True)
    np.testing.assert_array_equal(_matrices(loader), expected[0])
    ds.set_epoch(1)
    np.testing.assert_array_equal(_matrices(loader), expected[1])  # same worker processes
    ds.set_epoch(0)
    np.testing.assert_array_equal(_matrices(loader), expected[0])
