"""make_loader: errors raised in DataLoader workers reach the user as in the main process."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from animalpose.datasets.fileio import DataError
from animalpose.train.cli import run_training
from animalpose.train.loaders import make_loader, unwrap_worker_error

MESSAGE = "/data/frame_00000003.jpg: truncated JPEG (no end-of-image marker FFD9 at the end)"


class _Broken(Dataset):
    """Six tensors; item 3 raises the DataError a corrupt file gives (or ``error``)."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error or DataError(MESSAGE)

    def __len__(self) -> int:
        return 6

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == 3:
            raise self.error
        return torch.full((2,), float(index))


def _loader(dataset, workers: int):
    return make_loader(
        dataset, batch_size=2, shuffle=False, workers=workers, seed=0, device=torch.device("cpu")
    )


def _error_of(loader) -> DataError:
    """The DataError of iterating ``loader`` (caught here: pytest.raises would keep a reference
    cycle through the test's frame, and collecting it later stops the workers slowly)."""
    try:
        list(loader)
    except DataError as err:
        return err
    pytest.fail("no DataError raised")


@pytest.mark.parametrize("workers", [0, 2])
def test_data_error_in_a_worker_keeps_its_one_line_message(workers):
    err = _error_of(_loader(_Broken(), workers))
    assert type(err) is DataError
    assert str(err) == MESSAGE


def test_run_training_prints_a_worker_data_error_as_one_line(capsys):
    loader = _loader(_Broken(), 2)
    assert run_training(lambda: list(loader)) == 2
    assert capsys.readouterr().err == f"error: {MESSAGE}\n"


def test_multi_line_messages_from_workers():
    multi = "/data/a.png: first line\nanimalpose.datasets.fileio.DataError: not a marker\n"
    assert str(_error_of(_loader(_Broken(DataError(multi)), 2))) == multi


def test_errors_not_from_workers_are_left_alone():
    for text in (MESSAGE, "Caught DataError somewhere else.\nOriginal Traceback: none"):
        err = DataError(text)
        assert unwrap_worker_error(err) is err


def test_loader_iterates_and_reports_length_as_before():
    loader = _loader(_Broken(DataError(MESSAGE)), 2)
    assert len(loader) == 3
    first = next(iter(loader))
    assert first.tolist() == [[0.0, 0.0], [1.0, 1.0]]
