"""train.py with a --split-dir that does not exist: a one-line error (exit 2) naming the folder
and the flag, before any training (it used to be silently ignored)."""

from __future__ import annotations

from animalpose.train import cli


def test_split_dir_pointing_nowhere_is_a_clear_error(bench, tiny_dog_flags, tmp_path, capsys):
    nowhere = tmp_path / "reference" / "data"
    argv = [
        *tiny_dog_flags,
        "--dataset",
        "real_animal",
        "--image-path",
        str(bench.root),
        "--split-dir",
        str(nowhere),
        "--epochs",
        "1",
        "-c",
        str(tmp_path / "run"),
    ]
    assert cli.train_main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"error: {nowhere}: the split folder (--split-dir / data.split_dir) does not exist; point "
        "it at a copy of the reference's data/ folder (holding synthetic_animal/ and "
        "real_animal/), or leave it empty to use the split files beside the data"
    ]
    assert not (tmp_path / "run" / "checkpoint.pth.tar").exists()
