"""The command line: killed with SIGKILL and rerun, errors, flags, ``--benchmark``."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from animalpose.datasets.generator.benchmark_splits import find_benchmark
from animalpose.datasets.generator.cli import main
from animalpose.datasets.generator.dogshift import BENCHMARKS
from animalpose.datasets.generator.run import generate

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


def test_command_line_generates_a_registered_benchmark(tiny_spec, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(BENCHMARKS, "tiny-flat", tiny_spec)
    assert (
        main(
            [
                "--benchmark",
                "tiny-flat",
                "--image-path",
                str(tmp_path),
                "--processes",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["benchmark"] == "tiny-flat" and summary["official"] is True
    assert summary["split_shots"] == {"train": 6, "valid": 2, "test": 2}
    assert summary["images"] == 12 + 10 * 3
    record = find_benchmark(tmp_path, "tiny-flat")
    frames = {n: record["splits"][n]["frames"] for n in ("train", "valid", "test")}
    assert summary["split_frames"] == frames


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--benchmark", "dogshift-v1-cpu", "--size", "64x48", "--seed", "2"],
            "drop --size, --seed",
        ),
        (["--benchmark", "dogshift-v1-cpu", "--source-images", "5"], "drop --source-images"),
        (["--benchmark", "dogshift-v2-cpu", "--target-breed", "mixed"], "drop --target-breed"),
        (
            ["--benchmark", "nope"],
            "unknown benchmark 'nope'; known: ['dogshift-v1', 'dogshift-v1-cpu', 'dogshift-v2', "
            "'dogshift-v2-cpu']",
        ),
    ],
)
def test_command_line_refuses_explicit_counts_with_a_benchmark(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main([*argv, "--image-path", str(tmp_path)])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())
