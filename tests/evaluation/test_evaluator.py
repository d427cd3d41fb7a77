"""Evaluator: evaluate with its own or another codec, print both tables, write the report."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from torch import nn

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.fileio import DataError
from animalpose.datasets.geometry import apply_affine, crop_matrix
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.transforms.normalize import Normalizer
from animalpose.evaluation.evaluator import Evaluator
from animalpose.train.loss import KeypointMSELoss

INPUT, HEATMAP = 64, 16
K = ANIMAL18.num_keypoints
CODEC = MSRAHeatmap((INPUT, INPUT), (HEATMAP, HEATMAP), sigma=1.0)


class ConstantModel(nn.Module):
    """The same (K, h, w) heatmaps for every image, as a two-stack list."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("heatmaps", torch.rand(1, K, HEATMAP, HEATMAP, generator=_gen(0)))

    def forward(self, x):
        out = self.heatmaps.expand(x.shape[0], -1, -1, -1)
        return [out, out]


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(first: int, n: int) -> dict:
    rng = np.random.default_rng(first)
    center, size = (120.0, 90.0), 100.0
    m = crop_matrix(center, size, (INPUT, INPUT))
    image_kp = np.concatenate([rng.uniform(80, 160, size=(n, K, 2)), np.ones((n, K, 1))], axis=-1)
    crop_kp = np.stack([apply_affine(k, m) for k in image_kp])
    return {
        "image": torch.randint(0, 256, (n, 3, INPUT, INPUT), dtype=torch.uint8, generator=_gen(1)),
        "keypoints": torch.from_numpy(crop_kp).float(),
        "meta": {
            "matrix": torch.from_numpy(np.stack([m] * n)),
            "size": torch.full((n, 2), size, dtype=torch.float64),
            "keypoints_image": torch.from_numpy(image_kp),
            "index": torch.arange(first, first + n),
        },
    }


@pytest.fixture
def evaluator() -> Evaluator:
    # A split of 5 samples: rows 0..4 of the split are samples 10, 12, ... of the full list.
    return Evaluator(
        model=ConstantModel(),
        dataset=_Sized(indices=np.arange(10, 20, 2)),
        loader=[_batch(0, 3), _batch(3, 2)],
        codec=CODEC,
        normalizer=Normalizer((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)),
        spec=ANIMAL18,
        device=torch.device("cpu"),
        name="real_animal_sp",
        split="test",
        flip=True,
        loss_fn=KeypointMSELoss(),
        progress=False,
        max_overlays=2,
        epoch=4,
    )


class _Sized:
    def __init__(self, indices: np.ndarray) -> None:
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)


def test_evaluate_uses_the_codec_it_is_given(evaluator):
    val = evaluator.evaluate()
    assert val.preds.shape == (5, K, 2) and np.array_equal(val.indices, np.arange(5))
    assert len(val.overlays) == 2 and val.loss is not None
    wide = evaluator.evaluate(MSRAHeatmap((INPUT, INPUT), (HEATMAP, HEATMAP), sigma=3.0))
    assert wide.loss != val.loss  # the targets of another sigma
    np.testing.assert_array_equal(wide.preds, val.preds)  # decoding does not depend on sigma


def test_report_prints_both_tables_and_writes_every_file(evaluator, tmp_path, capsys):
    val = evaluator.report(
        tmp_path, checkpoint="ckpt.pth.tar", animal="dog", legacy_input=False, overlays=2
    )
    out = capsys.readouterr().out
    on = "real_animal_sp test split, 5 images"
    assert f"PCK@0.05, legacy metric (reference, paper-comparable); {on}" in out
    assert f"PCK@0.05, precise metric (annotation coordinates, sub-pixel); {on}" in out
    assert f"=> test split results in {tmp_path}" in out
    preds = scipy.io.loadmat(tmp_path / "preds_test.mat")["preds"]
    np.testing.assert_array_equal(preds, val.preds.astype(np.float32))
    extra = json.loads((tmp_path / "pck_results.json").read_text())["extra"]
    assert list(extra) == [
        "checkpoint",
        "dataset",
        "animal",
        "split",
        "images",
        "flip_test",
        "legacy_input",
        "legacy",
        "sample_indices",
    ]
    assert extra["legacy"] is False
    assert extra["sample_indices"] == [10, 12, 14, 16, 18]
    assert (extra["dataset"], extra["split"], extra["images"]) == ("real_animal_sp", "test", 5)
    assert extra["flip_test"] is True and extra["legacy_input"] is False
    assert (tmp_path / "pck_results.csv").is_file() and (tmp_path / "pck.png").is_file()
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == ["0000.png", "0001.png"]


def test_report_checks_its_folder_before_evaluating(evaluator, tmp_path, monkeypatch):
    (tmp_path / "somefile").write_text("not a folder")
    monkeypatch.setattr(evaluator, "evaluate", lambda *a: pytest.fail("evaluated first"))
    out = tmp_path / "somefile" / "eval"
    with pytest.raises(DataError, match=f"{out}: {tmp_path / 'somefile'} is a file, not a folder"):
        evaluator.report(out, checkpoint="c", animal="dog", legacy_input=False)


def test_report_names_the_file_a_full_disk_refused(evaluator, tmp_path, monkeypatch):
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc/self/fd to name an open file")
    real = os.fsync

    def fsync(fd: int) -> None:  # the disk fills up after the folder check: at pck_results.json
        if "pck_results.json" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(DataError) as info:
        evaluator.report(tmp_path, checkpoint="c", animal="dog", legacy_input=False)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'pck_results.json'}: No space left on device (ENOSPC)")
    assert "-c/--checkpoint" in message and "\n" not in message
    assert not list(tmp_path.glob(".*.tmp")), "no temporary file is left"
