"""adapt/cli.py: the adaptation entry points check their -c/--checkpoint folder and --device
before any work, as training does (tests/train/test_cli.py), and end in a one-line error."""

from __future__ import annotations

import pytest
import torch

from animalpose.adapt import cli

MAINS = (cli.ccssl_main, cli.wscda_main)


@pytest.fixture
def no_adaptation(monkeypatch):
    """An ``AdaptTrainer`` that must never be built."""

    class Refused:
        def __init__(self, cfg) -> None:
            pytest.fail("the adaptation started before its output folder was checked")

    monkeypatch.setattr("animalpose.adapt.trainer.AdaptTrainer", Refused)


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("main", MAINS, ids=["ccssl", "wscda"])
def test_output_under_a_regular_file_is_refused_before_adapting(
    main, tmp_path, tiny_flags, no_adaptation, capsys
):
    (tmp_path / "somefile").write_text("not a folder")
    out = tmp_path / "somefile" / "run"
    assert main(["-c", str(out), *tiny_flags]) == 2
    err = _one_line_error(capsys)
    assert f"-c/--checkpoint {out}: {tmp_path / 'somefile'} is a file, not a folder" in err


@pytest.mark.parametrize("main", MAINS, ids=["ccssl", "wscda"])
def test_cuda_without_cuda_is_a_clear_error(main, tmp_path, tiny_flags, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    argv = ["-c", str(tmp_path / "run"), *tiny_flags, "--device", "cuda"]
    assert main([*argv, "--image-path", str(tmp_path / "no_data_needed")]) == 2
    assert "run.device: 'cuda' asks for a GPU, but this machine has no CUDA" in _one_line_error(
        capsys
    )
