"""Scoring a results file: ``evaluation/test.py --ann A --results R -c OUT`` (score.py)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from animalpose.datasets.keypoints import SPECS, KeypointSpec
from animalpose.evaluation.oks import STAT_NAMES
from animalpose.evaluation.score import OKS_RESULTS_JSON, oks_row, score_main, wants_scoring

REPO = Path(__file__).resolve().parents[2]
K = 17


def _files(tmp_path: Path) -> tuple[Path, Path, dict, list[dict]]:
    """Three people on two images, results with a miss, a shift and a duplicate."""
    rng = np.random.default_rng(0)
    boxes = [(10.0, 10.0, 100.0, 200.0), (300.0, 20.0, 60.0, 120.0), (50.0, 50.0, 90.0, 150.0)]
    annotations, kps = [], []
    for i, (x, y, w, h) in enumerate(boxes):
        kp = np.stack([x + rng.uniform(0, w, K), y + rng.uniform(0, h, K), np.full(K, 2.0)], 1)
        kp[i, 2] = 0  # one unlabelled keypoint each
        kps.append(kp)
        annotations.append(
            {
                "id": i + 1,
                "image_id": 1 if i < 2 else 2,
                "category_id": 1,
                "keypoints": kp.reshape(-1).tolist(),
                "num_keypoints": K - 1,
                "area": w * h * 0.6,
                "bbox": [x, y, w, h],
                "iscrowd": 0,
            }
        )
    gt = {
        "images": [{"id": 1, "file_name": "1.jpg"}, {"id": 2, "file_name": "2.jpg"}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": annotations,
    }

    def result(image_id: int, kp: np.ndarray, dx: float, score: float) -> dict:
        flat = np.c_[kp[:, 0] + dx, kp[:, 1], np.full(K, 0.8)].reshape(-1).tolist()
        return {"image_id": image_id, "category_id": 1, "keypoints": flat, "score": score}

    results = [
        result(1, kps[0], 0.0, 0.9),
        result(1, kps[0], 1.0, 0.85),  # duplicate
        result(1, kps[1], 6.0, 0.7),  # shifted
        result(2, kps[0], 0.0, 0.95),  # nobody there
    ]
    ann_path, res_path = tmp_path / "ann.json", tmp_path / "res.json"
    ann_path.write_text(json.dumps(gt))
    res_path.write_text(json.dumps(results))
    return ann_path, res_path, gt, results


def _reference(gt: dict, results: list[dict], sigmas=None) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def test_scoring_writes_cocoeval_numbers(tmp_path, capsys):
    ann, res, gt, results = _files(tmp_path)
    out = tmp_path / "out"
    assert score_main(["--ann", str(ann), "--results", str(res), "-c", str(out)]) == 0
    doc = json.loads((out / OKS_RESULTS_JSON).read_text())
    expected = _reference(gt, results)
    assert [doc[n] for n in STAT_NAMES] == expected
    assert 0 < expected[0] < 1  # the hand-made faults cost something
    assert doc["annotations"] == str(ann.resolve()) and doc["results"] == str(res.resolve())
    assert doc["num_results"] == 4 and doc["num_images"] == 2
    printed = capsys.readouterr().out
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets= 20 ]" in printed
    assert oks_row(doc) in printed
    assert printed.count("Average Precision  (AP) @[ IoU=0.50      |") == 1  # printed once
    assert "loading annotations" not in printed and "DONE" not in printed  # chatter captured


def test_spec_flag_selects_the_sigmas(tmp_path, monkeypatch):
    names = ("nose", "left_eye", "right_eye", "tail")
    spec = KeypointSpec(
        name="test4",
        keypoints=names,
        flip_pairs=(("left_eye", "right_eye"),),
        parts={"all": names},
        skeleton=(),
        sigmas=(0.05, 0.03, 0.03, 0.1),
    )
    monkeypatch.setitem(SPECS, "test4", spec)
    kp = [10.0, 10.0, 2, 30.0, 12.0, 2, 50.0, 12.0, 2, 40.0, 90.0, 2]
    gt = {
        "images": [{"id": 1}],
        "categories": [{"id": 1, "name": "animal"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "keypoints": kp, "num_keypoints": 4,
             "area": 3000.0, "bbox": [10.0, 10.0, 40.0, 80.0], "iscrowd": 0}
        ],
    }  # fmt: skip
    pred = (np.array(kp).reshape(4, 3) + [3.0, 0.0, -1.2]).reshape(-1).tolist()
    results = [{"image_id": 1, "category_id": 1, "keypoints": pred, "score": 0.9}]
    ann, res, out = tmp_path / "ann.json", tmp_path / "res.json", tmp_path / "out"
    ann.write_text(json.dumps(gt))
    res.write_text(json.dumps(results))
    argv = ["--ann", str(ann), "--results", str(res), "-c", str(out), "--spec", "test4"]
    assert score_main(argv) == 0
    doc = json.loads((out / OKS_RESULTS_JSON).read_text())
    expected = _reference(gt, results, sigmas=spec.sigmas)
    assert [doc[n] for n in STAT_NAMES] == expected
    assert 0 < expected[0] < 1
    assert doc["spec"] == "test4" and doc["sigmas"] == list(spec.sigmas)


def test_oks_row_is_percent_and_marks_missing_ranges():
    stats = dict.fromkeys(STAT_NAMES, 0.5) | {"APm": -1.0}
    header, values = oks_row(stats).splitlines()
    assert header.split(" | ")[3].strip() == "APm"
    assert values.split(" | ")[3].strip() == "n/a"
    assert values.split(" | ")[0].strip() == "50.0"


def _error(argv: list[str], capsys) -> str:
    assert score_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def test_bad_inputs_fail_with_one_line_naming_the_file(tmp_path, capsys):
    ann, res, gt, results = _files(tmp_path)
    out = str(tmp_path / "out")
    missing = tmp_path / "nope.json"
    assert str(missing) in _error(["--ann", str(missing), "--results", str(res), "-c", out], capsys)
    assert str(missing) in _error(["--ann", str(ann), "--results", str(missing), "-c", out], capsys)
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps([{**results[0], "image_id": 99}]))
    err = _error(["--ann", str(ann), "--results", str(unknown), "-c", out], capsys)
    assert f"{unknown}: result 0 (image_id 99)" in err
    short = tmp_path / "short.json"
    short.write_text(json.dumps([{**results[0], "keypoints": [1.0, 2.0, 0.5]}]))
    err = _error(["--ann", str(ann), "--results", str(short), "-c", out], capsys)
    assert f"{short}: result 0" in err and "51 numbers" in err
    broken = tmp_path / "broken.json"
    broken.write_text("[{")
    assert f"{broken}: results json is not valid json" in _error(
        ["--ann", str(ann), "--results", str(broken), "-c", out], capsys
    )
    no_area = copy.deepcopy(gt)
    del no_area["annotations"][2]["area"]
    bad_ann = tmp_path / "bad_ann.json"
    bad_ann.write_text(json.dumps(no_area))
    assert f"{bad_ann}: annotation id 3: 'area'" in _error(
        ["--ann", str(bad_ann), "--results", str(res), "-c", out], capsys
    )
    assert "--spec 'nope'" in _error(
        ["--ann", str(ann), "--results", str(res), "-c", out, "--spec", "nope"], capsys
    )
    assert not (tmp_path / "out" / OKS_RESULTS_JSON).exists()


def test_missing_flags_are_usage_errors(tmp_path):
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stderr(io.StringIO()):
        score_main(["--results", "r.json", "-c", str(tmp_path)])
    assert exc.value.code == 2


def test_only_results_flag_selects_scoring():
    assert wants_scoring(["--ann", "a.json", "--results", "r.json", "-c", "out"])
    assert wants_scoring(["--results=r.json"])
    assert not wants_scoring(["--evaluate", "--resume", "results/model.pth.tar"])
    assert not wants_scoring(["--results-dir", "x"])


def test_evaluation_test_script_dispatches_to_the_scorer(tmp_path):
    ann, res, gt, results = _files(tmp_path)
    out = tmp_path / "out"
    script = REPO / "evaluation" / "test.py"
    run = subprocess.run(
        [sys.executable, str(script), "--ann", str(ann), "--results", str(res), "-c", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    doc = json.loads((out / OKS_RESULTS_JSON).read_text())
    assert [doc[n] for n in STAT_NAMES] == _reference(gt, results)
