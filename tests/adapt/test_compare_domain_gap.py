"""benchmarks/domain_gap.py end to end: one seed, one epoch; two seeds and reuse (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from animalpose.datasets.keypoints import ANIMAL18
from animalpose.train import cli

PARTS = tuple(ANIMAL18.part_indices)


def test_end_to_end_one_seed_one_epoch(domain_gap, bench, compare_argv, tmp_path, capsys):
    out = tmp_path / "gap"
    assert domain_gap.main(compare_argv(out)) == 0
    assert {p.name for p in out.iterdir()} >= {
        "domain_gap.md",
        "domain_gap.json",
        "domain_gap.png",
        "source",
        "oracle",
    }
    doc = json.loads((out / "domain_gap.json").read_text())
    n_test = bench.record["splits"]["test"]["frames"]
    assert doc["benchmark"]["name"] == "tiny-flat" and doc["seeds"] == [0]
    assert doc["config"]["optim"]["epochs"] == 1 and doc["config"]["data"]["animal"] == "dog"
    source, oracle = doc["runs"]["source"]["0"], doc["runs"]["oracle"]["0"]
    assert set(source["checkpoints"]) == {"selected_source_valid", "selected_target_valid", "last"}
    assert set(oracle["checkpoints"]) == {"selected_target_valid", "last"}
    for run in (source, oracle):
        for result in run["checkpoints"].values():
            assert result["images"] == n_test and result["epoch"] == 1
            assert set(result["precise"]["per_part"]) == set(PARTS)
    assert set(source["epochs"][0]) == {"epoch", "valid", "target_valid"}
    assert (out / "source/seed0/model_best_target_valid.pth.tar").is_file()
    config = (out / "oracle/seed0/config.yaml").read_text()
    assert "dataset: real_animal_sp" in config
    page = (out / "domain_gap.md").read_text()
    assert page in capsys.readouterr().out

    # Cross-check one number through evaluation/test.py's path on the test split (the model's
    # settings come from the checkpoint).
    check = tmp_path / "check"
    last = out / "oracle/seed0/checkpoint.pth.tar"
    argv = ["--image-path", str(bench.root), "--animal", "dog", "--dataset", "real_animal_sp"]
    argv += ["--resume", str(last), "--eval-split", "test", "-c", str(check)]
    argv += ["--test-batch", "4", "-j", "0", "--device", "cpu", "--no-progress"]
    assert cli.test_main(argv) == 0
    metrics = json.loads((check / "pck_results.json").read_text())["metrics"]
    for metric in ("legacy", "precise"):
        got = oracle["checkpoints"]["last"][metric]["mean"]
        assert got == pytest.approx(metrics[metric]["mean"], abs=1e-9) or (
            got is None and metrics[metric]["mean"] is None
        )


def test_unknown_benchmark_is_a_clear_error(domain_gap, bench, tmp_path, capsys):
    assert (
        domain_gap.main(
            ["--benchmark", "dogshift-v1", "--image-path", str(bench.root), "--out", str(tmp_path)]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "no benchmark 'dogshift-v1' here" in err and "--benchmark dogshift-v1" in err


@pytest.mark.slow
def test_command_line_two_seeds_then_reuse(compare_argv, run_script, tmp_path):
    out = tmp_path / "gap"
    argv = compare_argv(out, seeds=("0", "1"))
    result = run_script("benchmarks/domain_gap.py", *argv, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads((out / "domain_gap.json").read_text())
    assert sorted(doc["runs"]["source"]) == ["0", "1"]
    mean = doc["aggregate"]["oracle"]["last"]["precise"]["mean"]
    values = [doc["runs"]["oracle"][s]["checkpoints"]["last"]["precise"]["mean"] for s in "01"]
    finite = [v for v in values if v is not None]
    if finite:
        assert mean["mean"] == pytest.approx(np.mean(finite))
    assert " ± " in (out / "domain_gap.md").read_text()
    # The same command again reuses the complete runs and reports the same numbers.
    again = run_script("benchmarks/domain_gap.py", *argv, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("complete run with this config, not trained again") == 4
    assert json.loads((out / "domain_gap.json").read_text())["aggregate"] == doc["aggregate"]


def test_a_complete_run_with_other_settings_is_never_trained_over(tmp_path):
    from animalpose.adapt.compare import RUN_RECORD, train_run
    from animalpose.datasets.fileio import DataError
    from animalpose.train.config import Config
    from animalpose.train.config_io import apply_overrides, config_to_dict

    run = tmp_path / "source" / "seed0"
    cfg = apply_overrides(Config(), [f"run.checkpoint={run}"], source="test")
    saved = config_to_dict(apply_overrides(cfg, ["data.occlusion=0.5"], source="test"))
    run.mkdir(parents=True)
    record = {"config": saved, "complete": True, "epochs": [{"epoch": 1}]}
    (run / RUN_RECORD).write_text(json.dumps(record))
    before = sorted(p.name for p in run.iterdir())
    with pytest.raises(DataError, match=r"holds a complete source run .*data\.occlusion"):
        train_run(cfg, "source")
    assert sorted(p.name for p in run.iterdir()) == before  # nothing written
    # The same settings: the run is reused, not trained.
    same = apply_overrides(cfg, ["data.occlusion=0.5"], source="test")
    assert train_run(same, "source") == [{"epoch": 1}]
