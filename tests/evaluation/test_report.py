"""Reports: table rows computed independently, JSON/CSV round trip, preds.mat, PNG chart."""

from __future__ import annotations

import csv
import json
import math

import cv2
import numpy as np
import pytest
import scipy.io

from animalpose.datasets.keypoints import ANIMAL18
from animalpose.evaluation.report import (
    METRIC_LABELS,
    pck_table,
    plot_pck,
    save_preds_mat,
    save_results,
    summarize,
)


@pytest.fixture
def values() -> np.ndarray:
    v = np.random.default_rng(0).uniform(0.1, 0.9, size=18)
    v[ANIMAL18.index("chin")] = np.nan  # a keypoint never evaluated
    v[ANIMAL18.index("left_eye")] = 0.5
    v[ANIMAL18.index("right_eye")] = 0.25
    return v


def _rows(table: str) -> tuple[dict[str, str], dict[str, str]]:
    """Table -> (keypoint and mean rows, part rows), name -> printed value."""
    lines = [line.split() for line in table.splitlines()[1:] if line.split() and "---" not in line]
    split = lines.index(["part", "PCK", "(%)"])
    first = dict(line for line in lines[1:split])
    parts = dict(line for line in lines[split + 1 :])
    first["mean"] = parts.pop("mean")
    return first, parts


def test_pck_table_rows(values):
    table = pck_table(values, ANIMAL18, title=METRIC_LABELS["legacy"])
    assert table.splitlines()[0] == METRIC_LABELS["legacy"] and "legacy" in table
    keypoints, parts = _rows(table)
    assert list(parts) == list(ANIMAL18.parts)
    assert keypoints["left_eye"] == "50.00"
    assert parts["eye"] == "37.50"  # (50 + 25) / 2
    assert keypoints["chin"] == "n/a" and parts["chin"] == "n/a"  # the part has only NaN
    for part, members in ANIMAL18.parts.items():
        idx = [ANIMAL18.index(n) for n in members]
        if part != "chin":
            assert parts[part] == f"{100 * np.nanmean(values[idx]):.2f}"
    assert keypoints["mean"] == f"{100 * np.nanmean(values):.2f}"
    for i, name in enumerate(ANIMAL18.keypoints):
        if name != "chin":
            assert keypoints[name] == f"{100 * values[i]:.2f}"


def test_summarize_rejects_wrong_length():
    with pytest.raises(ValueError, match="18"):
        summarize(np.zeros(17), ANIMAL18)


def test_save_results_round_trip(tmp_path, values):
    precise = np.linspace(0, 1, 18)
    extra = {"checkpoint": "model_best.pth.tar", "counts": [3] * 18}
    json_path, csv_path = save_results(
        tmp_path / "out", spec=ANIMAL18, legacy=values, precise=precise, extra=extra
    )
    doc = json.loads(json_path.read_text())
    assert doc["spec"] == "animal18" and doc["unit"] == "percent" and doc["extra"] == extra
    legacy = doc["metrics"]["legacy"]
    assert legacy["label"] == METRIC_LABELS["legacy"]
    assert "precise" in doc["metrics"]["precise"]["label"]
    assert legacy["per_keypoint"]["chin"] is None and legacy["per_part"]["chin"] is None
    got = [legacy["per_keypoint"][n] for n in ANIMAL18.keypoints]
    assert np.allclose(np.array(got, dtype=float), 100 * values, equal_nan=True)
    assert legacy["per_part"]["eye"] == pytest.approx(37.5)
    assert legacy["mean"] == pytest.approx(100 * np.nanmean(values))
    assert doc["metrics"]["precise"]["mean"] == pytest.approx(50.0)
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * (18 + 7 + 1)
    by_key = {(r["metric"], r["group"], r["name"]): r["pck_percent"] for r in rows}
    assert float(by_key[("precise", "keypoint", "right_back_elbow")]) == pytest.approx(100.0)
    assert by_key[("legacy", "keypoint", "chin")] == ""
    assert float(by_key[("legacy", "mean", "mean")]) == pytest.approx(legacy["mean"], abs=1e-4)
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["pck_results.csv", "pck_results.json"]  # no temporary files left


def test_save_results_single_metric(tmp_path, values):
    json_path, _ = save_results(tmp_path, spec=ANIMAL18, legacy=None, precise=values, extra={})
    assert list(json.loads(json_path.read_text())["metrics"]) == ["precise"]
    with pytest.raises(ValueError):
        save_results(tmp_path, spec=ANIMAL18, legacy=None, precise=None)


def test_save_preds_mat(tmp_path):
    preds = np.random.default_rng(1).uniform(0, 640, size=(5, 18, 2))
    path = save_preds_mat(tmp_path / "preds_valid.mat", preds)
    loaded = scipy.io.loadmat(path)["preds"]
    assert loaded.shape == (5, 18, 2) and loaded.dtype == np.float32
    assert np.allclose(loaded, preds, atol=1e-3)
    with pytest.raises(ValueError, match="N, K, 2"):
        save_preds_mat(tmp_path / "bad.mat", np.zeros((5, 18)))


def test_plot_pck_png(tmp_path, values):
    path = plot_pck(
        tmp_path / "pck.png", spec=ANIMAL18, results={"legacy": values, "precise": np.full(18, 0.6)}
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = cv2.imread(str(path))
    assert image is not None and image.ndim == 3 and min(image.shape[:2]) > 100
    assert not math.isnan(float(image.mean()))
