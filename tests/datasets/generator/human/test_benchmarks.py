"""Human benchmark specs, the command line, and a run that is killed and resumed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from animalpose.datasets.generator.cli import main
from animalpose.datasets.generator.dog.gl import gl_available
from animalpose.datasets.generator.dogshift import BENCHMARKS
from animalpose.datasets.generator.human.benchmarks import (
    HUMAN_BENCHMARKS,
    HumanBenchmarkSpec,
    generate_humans,
    get_human_benchmark,
    image_rngs,
)

TINY = HumanBenchmarkSpec(
    name="tiny", version=1, description="test", size=(96, 72), train=3, val=1, test=1
)


def test_registry_and_spec_checks():
    assert get_human_benchmark("humans-v1-cpu").counts == {"train": 600, "val": 100, "test": 100}
    assert HUMAN_BENCHMARKS["humans-v1"].size == (640, 480)
    assert not set(HUMAN_BENCHMARKS) & set(BENCHMARKS)  # the dog's names are untouched
    with pytest.raises(KeyError, match="humans-v1-cpu"):
        get_human_benchmark("humans-v2")
    with pytest.raises(ValueError, match="style"):
        HumanBenchmarkSpec(name="x", version=1, description="", size=(64, 64), train=1, val=1,
                           test=1, style="cartoon")  # fmt: skip


def test_image_streams_differ_by_split_and_index():
    a = image_rngs(0, "train", 0)[0].random()
    assert a == image_rngs(0, "train", 0)[0].random()
    assert a != image_rngs(0, "val", 0)[0].random() and a != image_rngs(0, "train", 1)[0].random()
    assert a != image_rngs(0, "train", 0)[1].random()  # detections draw from their own stream


@pytest.mark.parametrize("extra", [["--renderer", "flat"], ["--size", "64x64"]])
def test_cli_refuses_flags_a_human_benchmark_sets(extra, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--benchmark", "humans-v1-cpu", "--image-path", "unused", *extra])
    assert exit_info.value.code == 2
    assert "humans-v1-cpu" in capsys.readouterr().err


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


_CHILD = """
import sys
from animalpose.datasets.generator.human.benchmarks import HumanBenchmarkSpec, generate_humans
spec = HumanBenchmarkSpec(name="tiny", version=1, description="test", size=(96, 72), train=3,
                          val=1, test=1)
generate_humans(spec, sys.argv[1], processes=1, progress=False)
"""


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_files(tmp_path):
    """A run SIGKILLed after its second image, then rerun, equals an uninterrupted run byte for
    byte (images, records, split files, manifest); the rerun renders only the missing images."""
    ok, reason = gl_available()
    if not ok:
        pytest.skip(reason)
    reference = tmp_path / "reference"
    report, summary = generate_humans(TINY, reference, processes=1, progress=False)
    assert report.written == 5 and summary["splits"]["train"]["images"] == 3
    doc = json.loads((reference / "annotations" / "person_keypoints_train.json").read_text())
    assert len(doc["images"]) == 3 and doc["categories"][0]["name"] == "person"
    killed = tmp_path / "killed"
    env = dict(os.environ, ANIMALPOSE_CRASH_AT="humans:job_done@2")
    run = subprocess.run([sys.executable, "-c", _CHILD, str(killed)], env=env, check=False)
    assert run.returncode == -9  # SIGKILL
    assert not (killed / "annotations").exists()
    report, _ = generate_humans(TINY, killed, processes=1, progress=False)
    assert (report.written, report.skipped) == (3, 2)
    assert _tree(killed) == _tree(reference)
