"""Pseudo-label scores (adapt/label_scores.py, benchmarks/pseudo_label_scores.py): the engine's
labels and confidences reproduced, the agreements' invariants, AUC and precision by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from animalpose.adapt.cli import ccssl_main
from animalpose.adapt.label_scores import SCORES, LabelScores, score_labels
from animalpose.adapt.views import ViewSampler
from animalpose.datasets.keypoints import ANIMAL18


@pytest.fixture(scope="module")
def score(tiny_model, real_dataset, codec, normalizer):
    def run(**overrides):
        kwargs = dict(
            codec=codec,
            normalizer=normalizer,
            views=ViewSampler(),
            flip_index=ANIMAL18.flip_index,
            seed=1,
            batch_size=4,
        )
        kwargs.update(overrides)
        return score_labels(tiny_model, real_dataset, **kwargs)

    return run


def test_the_peak_is_the_engines_confidence_at_the_engines_labels(score, generate):
    """Same views, same seed: the labels, hits and confidences of a round without flow."""
    scores = score(round_index=3)
    labels = generate(round_index=3)
    np.testing.assert_allclose(scores.keypoints, labels.keypoints, atol=1e-4)
    np.testing.assert_array_equal(scores.hits, labels.hits)
    np.testing.assert_allclose(scores.scores["peak"], labels.confidence, atol=1e-6)
    assert list(scores.scores) == list(SCORES)
    for name in SCORES:
        assert scores.scores[name].shape == labels.confidence.shape
        assert np.isfinite(scores.scores[name]).all()
    assert (scores.scores["view_agreement"] <= 0).all()
    assert (scores.scores["flip_agreement"] <= 0).all()


def test_one_view_agrees_with_itself(score):
    """Identity only: its own median (agreement 0), its own peak (= the average's)."""
    scores = score(views=ViewSampler(num_views=0))
    assert (scores.scores["view_agreement"] == 0).all()
    np.testing.assert_allclose(scores.scores["view_peak"], scores.scores["peak"], atol=1e-6)


def test_auc_and_precision_at_a_share_by_hand():
    hits = np.array([[1, 0, 1, 0, -1]], dtype=np.int8)
    good = np.array([[0.9, 0.1, 0.8, 0.2, 1.0]])
    scores = LabelScores(
        keypoints=np.zeros((1, 5, 2), np.float32), hits=hits, scores={"a": good, "b": -good}
    )
    assert scores.auc("a") == 1.0 and scores.auc("b") == 0.0
    # Top 60 % (3 labels) by "a": 1.0 (not judged), 0.9 (right), 0.8 (right).
    assert scores.precision_at("a", 0.6) == 1.0
    # By "b": -0.1 (wrong), -0.2 (wrong), -0.8 (right).
    assert scores.precision_at("b", 0.6) == pytest.approx(1 / 3)
    assert scores.precision_at("a", 1.0) == 0.5


def test_the_benchmark_scores_an_adaptation_runs_start(
    pseudo_label_scores, tiny, adapt_argv, tmp_path, capsys
):
    out = tmp_path / "run"
    assert ccssl_main(adapt_argv(out, "--num-epochs", "1")) == 0
    report = tmp_path / "scores.json"
    argv = [str(out / "config.yaml"), "--limit", "6", "--share", "0.5", "--json", str(report)]
    assert pseudo_label_scores.main(argv) == 0
    assert torch.is_grad_enabled()  # scoring leaves the process's autograd state alone
    doc = json.loads(report.read_text())
    (run,) = doc["runs"]
    assert doc["share"] == 0.5 and run["labels"] == 6 * ANIMAL18.num_keypoints
    assert set(run["auc"]) == set(SCORES) == set(run["precision"])
    assert all(v is None or 0 <= v <= 1 for v in run["auc"].values())
    printed = capsys.readouterr().out
    assert "| peak of the view-averaged map (the engine's confidence) |" in printed
    assert "right among the top 50% |" in printed


def test_the_benchmark_refuses_a_config_without_starting_weights(pseudo_label_scores, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("run:\n  pretrained: ''\n")
    assert pseudo_label_scores.main([str(config)]) == 2
