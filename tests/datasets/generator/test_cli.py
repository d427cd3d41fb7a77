"""The command line: killed with SIGKILL and rerun, errors."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from animalpose.datasets.generator.run import generate, main

REPO = Path(__file__).resolve().parents[3]
SYNTHETIC = Path("synthetic_animal/dog_combineds5r5_texture")


def test_command_line_killed_and_rerun_completes_the_same_files(gen, tmp_path):
    """SIGKILL mid-run (no cleanup at all), then the same command again."""
    args = [
        sys.executable,
        str(REPO / "datasets" / "generate.py"),
        "--image-path",
        str(tmp_path),
        "--renderer",
        "flat",
        "--source-images",
        "200",
        "--target-shots",
        "2",
        "--frames-per-shot",
        "5",
        "--size",
        "64x48",
        "--processes",
        "1",
        "--seed",
        "3",
        "--no-progress",
    ]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((tmp_path / SYNTHETIC).glob("*_img.png"))) >= 3:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.005)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL  # killed, not finished
    assert len(list((tmp_path / SYNTHETIC).glob("*_img.png"))) < 200
    result = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["jobs_written"] + summary["jobs_skipped"] == 202
    assert 0 < summary["jobs_skipped"] < 200
    reference = tmp_path.parent / f"{tmp_path.name}_reference"
    generate(
        gen.settings(
            reference, source_images=200, target_shots=2, frames_per_shot=5, size=(64, 48), seed=3
        ),
        processes=1,
        progress=False,
    )
    assert gen.tree(tmp_path) == gen.tree(reference)
    shutil.rmtree(reference)


def test_command_line_errors_exit_with_status_2(gen, reference_copy, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--image-path", str(reference_copy), "--size", "96by72"])
    assert exit_info.value.code == 2 and "WIDTHxHEIGHT" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "--image-path",
                str(reference_copy),
                "--renderer",
                "flat",
                "--size",
                "96x72",
                "--seed",
                "1",
                "--no-progress",
            ]
        )
    assert exit_info.value.code == 2
    assert "generated with other settings" in capsys.readouterr().err


def test_breed_and_cover_flags_reach_the_manifest(tmp_path, capsys):
    base = [
        "--image-path",
        str(tmp_path),
        "--renderer",
        "flat",
        "--source-images",
        "0",
        "--target-shots",
        "1",
        "--frames-per-shot",
        "2",
        "--size",
        "64x48",
        "--no-progress",
    ]
    with pytest.raises(SystemExit) as exit_info:
        main([*base, "--target-cover", "grass"])
    assert exit_info.value.code == 2 and "flat renderer draws no ground cover" in (
        capsys.readouterr().err
    )
    assert main([*base, "--target-breed", "basset"]) == 0
    manifest = json.loads(next(tmp_path.rglob("generator.json")).read_text())
    assert (manifest["breed"], manifest["cover"]) == ("basset", "none")
