"""benchmarks/human_topdown.py: every row is a valid config, and rows map onto the right run and
score folders (shared trainings, evaluation-only rows beside the run they score)."""

from __future__ import annotations

from pathlib import Path

import pytest

from animalpose.train.bottomup import check_bottomup
from animalpose.train.config_io import apply_overrides, load_config


def _config(module, experiment: str, row: str):
    """The config a row trains (and evaluates) with: the recipe plus its overrides."""
    key = (experiment, row)
    (trained_experiment, trained_row), evaluation = module.EVAL_ONLY.get(key, (key, []))
    overrides = module.EXPERIMENTS[trained_experiment][trained_row]
    return apply_overrides(load_config(module.CONFIG), [*overrides, *evaluation])


def test_every_row_is_a_config_the_entry_points_accept(human_topdown):
    rows = [(e, r) for e, rows in human_topdown.EXPERIMENTS.items() for r in rows]
    assert len(rows) == len(set(rows)) and ("methods", "associative_w32") in rows
    for experiment, row in rows:
        cfg = _config(human_topdown, experiment, row)  # raises ConfigError on a bad key/value
        check_bottomup(cfg)
    assert _config(human_topdown, "methods", "lpn_50_soft_argmax").data.codec == "soft-argmax"
    assert _config(human_topdown, "methods", "cpn_r18_ohkm").optim.ohkm_topk == 8
    assert _config(human_topdown, "methods", "cpn_r18").optim.ohkm_topk == 0
    assert _config(human_topdown, "methods", "lpn_50").model.attention == "gc"
    assert _config(human_topdown, "methods", "lpn_50_no_gc").model.attention == "none"


def test_rows_map_onto_their_training_and_score_folders(human_topdown):
    out = Path("runs")
    run_dir, eval_dir = human_topdown.run_dir, human_topdown.eval_dir
    # One training serves the same row of several experiments.
    assert run_dir(out, "methods", "simple_baseline_r18", 1) == out / "codecs/msra/seed1"
    assert run_dir(out, "models", "simple_baseline_r18", 1) == out / "codecs/msra/seed1"
    assert run_dir(out, "methods", "cpn_r18", 2) == out / "methods/cpn_r18/seed2"
    assert eval_dir(out, "methods", "cpn_r18", 2) == out / "methods/cpn_r18/seed2/eval_test"
    # Evaluation-only rows score the trained row's weights into a folder of their own.
    soft = ("methods", "lpn_50_soft_argmax")
    assert run_dir(out, *soft, 0) == out / "methods/lpn_50/seed0"
    assert eval_dir(out, *soft, 0) == out / "methods/lpn_50/seed0/eval_test_lpn_50_soft_argmax"
    boxes = ("methods", "simple_baseline_r18_detections")
    assert run_dir(out, *boxes, 0) == out / "codecs/msra/seed0"
    assert eval_dir(out, *boxes, 0).name == "eval_test_simple_baseline_r18_detections"


@pytest.mark.parametrize(
    ("values", "expected"), [([1.0, 2.0, 3.0], "2.00 ± 1.00"), ([2.5], "2.50"), ([1.0, None], "—")]
)
def test_mean_std_cells(human_topdown, values, expected):
    assert human_topdown._mean_std(values) == expected
