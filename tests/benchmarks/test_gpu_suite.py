"""benchmarks/gpu_suite.sh: a ``--dry-run`` runs every step and the summary holds every figure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "benchmarks" / "gpu_suite.sh"

#: Rows ``| step.figure | value |`` the issue asks for (value: a regex the value must match).
EXPECTED = {
    "train.exit": r"ok .*",
    "train.model": r"hg \(1 stacks, .*",
    "train.channels_last": "True",
    "train.compile": "False",
    "train.model_only_img_s": r"[0-9.]+",
    "train.end_to_end_img_s": r"[0-9.]+",
    "train.eval_flip_test": "True",
    "train.eval_img_s_incl_loader_start": r"[0-9.]+",
    "train.peak_host_pss_gb_all_processes": r"[0-9.]+",
    "train.peak_gpu_mem_gb": r"None|[0-9.]+",
    "train_compile.exit": r"ok .*",
    "train_compile.compile": "True",
    "train_compile.model_only_img_s": r"[0-9.]+",
    "train_compile.end_to_end_img_s": r"[0-9.]+",
    "human_sb50.exit": r"ok .*",
    "human_sb50.model": r"simple_baseline \(ResNet depth 18\) input=64x64 .*",
    "human_sb50.model_only_img_s": r"[0-9.]+",
    "human_sb50.end_to_end_img_s": r"[0-9.]+",
    "human_sb50.end_to_end_fraction": r"[0-9.]+",
    "human_sb50.eval_flip_test": "True",
    "human_sb50.eval_img_s_incl_loader_start": r"[0-9.]+",
    "human_hrnet32.exit": r"ok .*",
    "human_hrnet32.model": r"hrnet \(width 32\) .*",
    "human_hrnet32.end_to_end_img_s": r"[0-9.]+",
    "human_hrnet32.eval_img_s_incl_loader_start": r"[0-9.]+",
    "pseudo_labels.exit": r"ok .*",
    "pseudo_labels.batch": "4",
    "pseudo_labels.views_incl_identity": "5",
    "pseudo_labels.flow": "True",
    "pseudo_labels.predict_ms_per_img": r"[0-9.]+",
    "pseudo_labels.flow_ms_per_img": r"[0-9.]+",
    "pseudo_labels.total_ms_per_img": r"[0-9.]+",
    "pseudo_labels.peak_rss_main_mib": r"[0-9.]+",
    "generator_p1.exit": r"ok .*",
    "generator_p1.renderer": "dog|flat",
    "generator_p1.images": "2",
    "generator_p1.images_per_s_per_process": r"[0-9.]+",
    "generator_p2.exit": r"ok .*",
    "generator_p2.processes": "2",
    "generator_p2.images_per_s_per_process": r"[0-9.]+",
    "peak.gpu_mem_gb (all steps)": r"[0-9.]+",
    "peak.host_gb (all steps)": r"[0-9.]+",
}


def _suite(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHON": sys.executable, "WORKERS": "1"}
    env.pop("OUT", None)
    return subprocess.run(
        ["bash", str(SUITE), *args], env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_dry_run_records_every_figure_in_one_summary(tmp_path):
    out = tmp_path / "suite"
    result = _suite("--dry-run", str(out))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = (out / "summary.md").read_text()
    rows = dict(re.findall(r"^\| (.+?) \| (.*) \|$", summary, flags=re.MULTILINE))
    for figure, pattern in EXPECTED.items():
        assert figure in rows, f"{figure} missing from summary.md:\n{summary}"
        assert re.fullmatch(pattern, rows[figure]), f"{figure} = {rows[figure]!r}"
    assert "dry run: 1" in summary and "generator renderer:" in summary
    # the generated data does not stay in the output folder (the device tool copies it back)
    assert not [p for p in out.rglob("*.png")] and not [p for p in out.rglob("*.jpg")]


def test_unknown_option_is_refused(tmp_path):
    result = _suite("--dryrun", str(tmp_path))
    assert result.returncode == 2
    assert "unknown option --dryrun" in result.stderr


def test_step_limits_fit_eight_minutes():
    """The real run's step limits plus the renderer probe (20 s) and set-up leave a margin."""
    text = SUITE.read_text()
    limits = re.findall(r"^    LIMITS=\(([0-9 ]+)\)", text, flags=re.MULTILINE)
    assert len(limits) == 2, "a dry-run and a real LIMITS line"
    real = sum(int(seconds) for seconds in limits[1].split())
    assert f"= {real} s" in text, "the header's budget matches LIMITS"
    assert real + 20 + 10 <= 8 * 60
