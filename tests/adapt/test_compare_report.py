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


def _with_method(runs: dict, method: str, gains: dict[int, float]) -> dict:
    """``runs`` plus ``method`` scoring source only + gains[seed] on every checkpoint."""
    out = dict(runs)
    out[method] = {}
    for seed, gain in gains.items():
        src = runs["source"][seed]["checkpoints"]["selected_target_valid"]
        entry = {
            metric: {**src[metric], "mean": src[metric]["mean"] + gain}
            for metric in compare_report.METRICS
        }
        checkpoints = {
            key: {"epoch": 2, "images": 4, **entry}
            for key, _, _ in compare_report.METHODS[method].checkpoints
        }
        out[method][seed] = {"epochs": [], "checkpoints": checkpoints}
    return out


def test_gap_closed_pairs_seeds_and_judges_against_the_spread(domain_gap, bench):
    runs = {k: v for k, v in _fake_runs(domain_gap).items() if k in ("source", "oracle")}
    runs = _with_method(runs, "ccssl", {0: 20.0, 1: 30.0})  # oracle - source = 40 per seed
    closed = compare_report.gap_closed(runs)
    legacy = closed["ccssl"]["selected_target_valid"]["legacy"]
    assert legacy["gain"]["mean"] == pytest.approx(25.0)
    assert legacy["closed"]["values"] == pytest.approx([50.0, 75.0])
    assert legacy["closed"]["mean"] == pytest.approx(62.5)
    # source means 30 / 40 (std 7.07), ccssl 50 / 70 (std 14.14): 25 < 2 x 14.14
    assert legacy["spread"] == pytest.approx(math.sqrt(200.0))
    assert legacy["clear"] is False
    # the fake source scores the same on every checkpoint: both baselines agree here
    assert closed["ccssl"]["selected_source_valid"]["legacy"] == legacy
    steady = compare_report.gap_closed(_with_method(runs, "ccssl", {0: 20.0, 1: 20.0}))
    assert steady["ccssl"]["selected_target_valid"]["precise"]["clear"] is True  # 20 > 2 x 7.07
    assert set(closed) == {"ccssl"}  # source and oracle are not adaptation methods
    # a source checkpoint 5 points better on source valid: the gain against it is 5 smaller
    for seed in (0, 1):
        sv = runs["source"][seed]["checkpoints"]["selected_source_valid"]["legacy"]
        runs["source"][seed]["checkpoints"]["selected_source_valid"]["legacy"] = {
            **sv,
            "mean": sv["mean"] + 5,
        }
    shifted = compare_report.gap_closed(runs)["ccssl"]
    assert shifted["selected_source_valid"]["legacy"]["gain"]["mean"] == pytest.approx(20.0)
    assert shifted["selected_source_valid"]["legacy"]["closed"]["values"] == pytest.approx(
        [100 * 15 / 35, 100 * 25 / 35]
    )
    page = compare_report.markdown_report(
        record=bench.record,
        cfg=Config(),
        seeds=[0, 1],
        table=compare_report.aggregate(runs),
        adapt_epochs=4,
        closed=closed,
    )
    row = "| CC-SSL | target valid | legacy | 25.00 ± 7.07 | 62.50 ± 17.68 | 14.14 | no |"
    assert row in page
    assert "| CC-SSL | source valid | legacy |" in page


def test_pseudo_label_precision_lines_and_plot(tmp_path):
    rounds = {
        "ccssl": {
            0: [
                {"round": 0, "keep_share": 0.2, "pck_selected": 0.6, "pck_all": 0.3},
                {"round": 1, "keep_share": 0.4, "pck_selected": 0.5, "pck_all": 0.35},
            ],
            1: [
                {"round": 0, "keep_share": 0.2, "pck_selected": 0.8, "pck_all": 0.3},
                {"round": 1, "keep_share": 0.4, "pck_selected": float("nan"), "pck_all": 0.45},
            ],
        }
    }
    lines = compare_report.pseudo_label_lines(rounds)
    assert "| CC-SSL | 0 | 20.0 | 70.0 | 30.0 | n/a |" in lines  # rounds saved without AUC
    assert "| CC-SSL | 1 | 40.0 | 50.0 | 40.0 | n/a |" in lines  # the NaN seed is left out
    assert compare_report.pseudo_label_lines({}) == []
    png = tmp_path / "p.png"
    compare_report.plot_pseudo_labels(png, title="t", rounds=rounds)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_pseudo_label_lines_give_the_confidence_auc_and_each_part():
    def round_(auc, eye, hoof):
        return {
            "round": 0,
            "keep_share": 0.4,
            "pck_selected": 0.5,
            "pck_all": 0.25,
            "confidence_auc": auc,
            "parts": {"eye": eye, "hoof": hoof},
        }

    rounds = {
        "uda": {
            0: [round_(0.7, {"kept": 0.6, "correct": 0.7}, {"kept": 0.1, "correct": 0.2})],
            1: [round_(0.8, {"kept": 0.8, "correct": 0.5}, {"kept": 0.3, "correct": float("nan")})],
        }
    }
    lines = compare_report.pseudo_label_lines(rounds)
    assert "| UDA-Animal | 0 | 40.0 | 50.0 | 25.0 | 0.750 |" in lines
    assert "| method | round | eye | hoof |" in lines
    assert "| UDA-Animal | 0 | 60.0 (70.0) | 20.0 (20.0) |" in lines  # hoof: NaN seed left out
