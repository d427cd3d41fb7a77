"""adapt/compare_report.py: mean and std over seeds, the Markdown table and the chart on known
numbers."""

from __future__ import annotations

import math

import pytest

from animalpose.adapt import compare_report
from animalpose.datasets.keypoints import ANIMAL18
from animalpose.train.config import Config

PARTS = tuple(ANIMAL18.part_indices)


def _summary(base: float) -> dict:
    """A ``report.summarize``-shaped result: part i scores base + i, mean base + 10."""
    return {
        "per_keypoint": {},
        "per_part": {p: base + i for i, p in enumerate(PARTS)},
        "mean": base + 10,
    }


def _fake_runs(domain_gap) -> dict:
    runs = {}
    for method, m in domain_gap.METHODS.items():
        for seed, base in ((0, 20.0), (1, 30.0)):
            offset = 40.0 if method == "oracle" else 0.0
            checkpoints = {
                key: {
                    "epoch": seed + 3,
                    "images": 4,
                    "legacy": _summary(base + offset),
                    "precise": _summary(base + offset + 1),
                }
                for key, _, _ in m.checkpoints
            }
            runs.setdefault(method, {})[seed] = {"epochs": [], "checkpoints": checkpoints}
    return runs


def test_stats_mean_and_sample_std(domain_gap):
    assert compare_report._stats([20.0, 30.0])["mean"] == 25.0
    assert compare_report._stats([20.0, 30.0])["std"] == pytest.approx(math.sqrt(50.0))  # ddof 1
    assert compare_report._stats([7.0])["std"] == 0.0
    assert compare_report._stats([float("nan"), 4.0])["mean"] == 4.0  # a never-evaluated seed
    assert compare_report._stats([float("nan")])["mean"] is None


def test_aggregate_table_and_chart_on_known_numbers(domain_gap, bench, tmp_path):
    table = compare_report.aggregate(_fake_runs(domain_gap))
    oracle = table["oracle"]["selected_target_valid"]
    assert oracle["epochs"] == [3, 4]
    assert oracle["legacy"]["per_part"]["hoof"]["mean"] == pytest.approx(40 + 25 + 2)
    assert oracle["precise"]["mean"]["mean"] == pytest.approx(40 + 25 + 1 + 10)
    assert oracle["precise"]["mean"]["std"] == pytest.approx(math.sqrt(50.0))
    cfg = Config()
    page = compare_report.markdown_report(record=bench.record, cfg=cfg, seeds=[0, 1], table=table)
    rows = [line for line in page.splitlines() if line.startswith(("| source only", "| oracle"))]
    assert len(rows) == 2 * 5  # 3 source + 2 oracle checkpoints, per metric
    std = math.sqrt(50.0)
    first = f"| source only | selected on source valid | 3, 4 | 25.00 ± {std:.2f} | 26.00 ± "
    assert first in page
    assert f"**35.00 ± {std:.2f}**" in page  # source legacy mean: (30 + 40) / 2
    assert "legacy +40.00, precise +40.00" in page  # the gap line: oracle - source
    chart = tmp_path / "chart.png"
    compare_report.plot_chart(chart, title="t", table=table)
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 5000
