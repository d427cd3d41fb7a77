"""benchmarks/adaptation.py: every method, one seed, one epoch each, on the tiny benchmark."""

from __future__ import annotations

import json

import pytest

from animalpose.adapt import compare
from animalpose.adapt.compare_methods import ADAPTATION_METHODS, METHODS
from animalpose.train.checkpoint import load_checkpoint

#: Every adaptation method (slow test) / the combination, which runs every code path (default).
ALL = ("source", "ccssl", "wscda", "ccssl_wscda", "wscda_pplo", "oracle")
QUICK = ("source", "ccssl_wscda", "oracle")


@pytest.mark.parametrize("methods", [pytest.param(ALL, marks=pytest.mark.slow), QUICK])
def test_methods_end_to_end(bench, compare_argv, tmp_path, capsys, methods):
    out = tmp_path / "table"
    argv = compare_argv(
        out,
        "--methods",
        *methods,
        "--adapt-epochs",
        "2",
        "--adapt-set",
        "adapt.pseudo_workers=0",
        "adapt.pseudo_batch=4",
        "optim.lr=0.00123",
    )
    assert compare.main(argv, report="adaptation", methods=ADAPTATION_METHODS) == 0
    doc = json.loads((out / "adaptation.json").read_text())
    assert doc["round_every"] == 1 and doc["adapt_epochs"] == 2  # 2 epochs / 6 -> at least 1
    n_test = bench.record["splits"]["test"]["frames"]
    adapted = [m for m in methods if METHODS[m].adapts]
    for method in adapted:
        run = doc["runs"][method]["0"]
        assert set(run["checkpoints"]) == {"selected_target_valid", "last"}
        assert all(r["images"] == n_test for r in run["checkpoints"].values())
        assert run["checkpoints"]["last"]["epoch"] == 2
        cfg = load_checkpoint(out / method / "seed0" / "checkpoint.pth.tar")["config"]
        start = METHODS[method].start  # WS-CDA + PPLO: the WS-CDA run's selected model
        assert cfg["run"]["pretrained"] == str(out / start / "seed0" / "model_best.pth.tar")
    pseudo = {m: (out / m / "seed0" / "pseudo_labels").is_dir() for m in doc["runs"]}
    expected = {
        "source": False,
        "ccssl": True,
        "wscda": False,
        "ccssl_wscda": True,
        "wscda_pplo": True,
        "oracle": False,
    }
    assert pseudo == {m: expected[m] for m in methods}
    page = (out / "adaptation.md").read_text()
    schedules = {"ccssl": "ccssl by round", "ccssl_wscda": "ccssl by round"}
    schedules["wscda_pplo"] = "pplo 0.2/0.4/0.6/0.8"
    assert doc["schedules"] == {m: schedules[m] for m in adapted if expected[m]}
    adapting = next(line for line in page.splitlines() if line.startswith("- adaptation: "))
    assert "lr 0.00123 constant" in adapting  # the adaptation runs' rate, not the recipe's
    assert "adaptation settings adapt.pseudo_workers=0, adapt.pseudo_batch=4, optim.lr" in adapting
    kept = next(line for line in page.splitlines() if line.startswith("- pseudo-labels kept: "))
    assert "CC-SSL + WS-CDA: ccssl by round" in kept
    for method in adapted:
        label = METHODS[method].label
        # 2 checkpoints x 2 metric tables, one row per baseline and metric against source
        # only, and two per pseudo-label round (2): its precision and its parts
        assert page.count(f"| {label} |") == 2 * 2 + 2 * 2 + 2 * 2 * expected[method]
        assert f"| {label} | target valid | legacy |" in page
        assert f"| {label} | source valid | precise |" in page
        assert set(doc["gap_closed"][method]["selected_source_valid"]) == {"legacy", "precise"}
        if expected[method]:  # every stored round is in the precision table and the JSON
            rounds = doc["pseudo_label_rounds"][method]["0"]
            assert [r["round"] for r in rounds] == [0, 1]
            assert all(0 < r["keep_share"] <= 1 for r in rounds)
            for r in rounds:  # the animal parts, each kept share the mean of its joints'
                assert list(r["parts"]) == [
                    "eye",
                    "chin",
                    "hoof",
                    "hip",
                    "knee",
                    "shoulder",
                    "elbow",
                ]
                assert 0 <= r["parts"]["hoof"]["kept"] <= 1
                auc = r["confidence_auc"]
                assert auc is None or 0 <= auc <= 1
            assert f"| {label} | 1 |" in page
    assert set(doc["pseudo_label_rounds"]) == {m for m in adapted if expected[m]}
    assert (out / "adaptation.png").stat().st_size > 5000
    assert (out / "adaptation_pseudo_labels.png").stat().st_size > 5000
    assert page in capsys.readouterr().out


def test_adaptation_needs_the_source_run_first(compare_argv, tmp_path, capsys):
    assert compare.main(compare_argv(tmp_path, "--methods", "ccssl"), report="adaptation") == 2
    assert "list 'source' before it" in capsys.readouterr().err


def test_pplo_after_wscda_needs_the_wscda_run_first(compare_argv, tmp_path, capsys):
    assert METHODS["wscda_pplo"].start == "wscda"
    argv = compare_argv(tmp_path, "--methods", "source", "wscda_pplo")
    assert compare.main(argv, report="adaptation") == 2
    assert "wscda_pplo starts from the WS-CDA model; list 'wscda' before it" in (
        capsys.readouterr().err
    )


def test_script_defaults_are_the_issue_methods(adaptation):
    args = compare._parser(report="adaptation", methods=ADAPTATION_METHODS).parse_args(
        ["--benchmark", "x"]
    )
    assert args.methods == ["source", "ccssl", "wscda", "ccssl_wscda", "uda", "oracle"]
    assert callable(adaptation.main)
