"""Mean/std files: the reference's format written and read, bad files rejected with the file's
name, computed once then re-read."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.means import (
    compute_mean_std,
    load_or_compute_mean,
    read_mean,
    save_mean,
)


def test_mean_file_round_trip_in_reference_format(tmp_path):
    path = tmp_path / "mean.pth.tar"
    save_mean(path, np.array([0.4038, 0.3956, 0.3925]), np.array([0.2611, 0.2452, 0.2299]))
    raw = torch.load(path, weights_only=True)  # the reference's format, safe to load
    assert set(raw) == {"mean", "std"} and raw["mean"].dtype == torch.float32
    assert raw["mean"].shape == (3,)
    mean, std = read_mean(path)
    np.testing.assert_allclose(mean, [0.4038, 0.3956, 0.3925], atol=1e-7)
    np.testing.assert_allclose(std, [0.2611, 0.2452, 0.2299], atol=1e-7)


def test_legacy_torch_serialisation_is_read(tmp_path):
    """The reference's files come from old torch (non-zip pickles)."""
    path = tmp_path / "mean.pth.tar"
    torch.save(
        {"mean": torch.tensor([0.5, 0.4, 0.3]), "std": torch.tensor([0.2, 0.2, 0.1])},
        path,
        _use_new_zipfile_serialization=False,
    )
    mean, _ = read_mean(path)
    np.testing.assert_allclose(mean, [0.5, 0.4, 0.3], atol=1e-7)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"mean": torch.zeros(3)}, "mean file must hold a dict with 'mean' and 'std'"),
        ({"mean": torch.zeros(2), "std": torch.ones(2)}, "'mean' must be 3 finite"),
        ({"mean": torch.zeros(3), "std": torch.zeros(3)}, "'std' must be positive"),
    ],
)
def test_bad_mean_files(tmp_path, content, message):
    path = tmp_path / "mean.pth.tar"
    torch.save(content, path)
    with pytest.raises(DataError, match=f"mean.pth.tar: {message}"):
        read_mean(path)


def test_load_or_compute_mean_computes_once_then_reads(tmp_path):
    images = [np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)]
    images[1][0, 0] = 0
    calls = []

    def compute():
        calls.append(1)
        return compute_mean_std(lambda i: images[i], len(images))

    path = tmp_path / "sub" / "mean.pth.tar"
    mean, std = load_or_compute_mean(path, compute)
    # Independent: per-image channel means/stds (unbiased), averaged over the two images.
    second = images[1][..., 0].ravel() / 255.0
    np.testing.assert_allclose(mean, (0.0 + second.mean()) / 2, atol=1e-6)
    np.testing.assert_allclose(std, (0.0 + second.std(ddof=1)) / 2, atol=1e-6)
    again = load_or_compute_mean(path, compute)
    assert len(calls) == 1 and np.array_equal(again[0], mean) and np.array_equal(again[1], std)
    mirror = tmp_path / "mirror.pth.tar"
    save_mean(mirror, np.full(3, 0.25), np.full(3, 0.5))
    first = load_or_compute_mean(path, compute, search_paths=[mirror])
    np.testing.assert_allclose(first[0], 0.25)
