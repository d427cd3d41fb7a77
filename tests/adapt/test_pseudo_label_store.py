"""PseudoLabels storage: exact save/load round trips, file size, refusal of bad files."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from animalpose.adapt.pseudo_label_store import PseudoLabels, confidence_auc
from animalpose.datasets.fileio import DataError

K = 18


@pytest.fixture(scope="module")
def assert_same(row_arrays):
    """``assert_same(a, b)``: two rounds hold the same values, arrays of the same dtypes."""

    def check(a: PseudoLabels, b: PseudoLabels) -> None:
        for name in ("round", "epoch", "keep_share"):
            assert getattr(a, name) == getattr(b, name)
        assert a.threshold == b.threshold or (np.isnan(a.threshold) and np.isnan(b.threshold))
        for name in row_arrays:
            x, y = getattr(a, name), getattr(b, name)
            assert x.dtype == y.dtype, name
            np.testing.assert_array_equal(x, y, err_msg=name)
        assert a.diagnostics.keys() == b.diagnostics.keys()
        np.testing.assert_array_equal(list(a.diagnostics.values()), list(b.diagnostics.values()))

    return check


def test_save_load_round_trip(labels, assert_same, tmp_path):
    chosen = labels.with_selection(0.4)
    chosen.save(tmp_path / "round2.npz")
    assert_same(PseudoLabels.load(tmp_path / "round2.npz"), chosen)
    labels.save(tmp_path / "unselected.npz")  # NaN threshold and NaN diagnostics survive
    assert_same(PseudoLabels.load(tmp_path / "unselected.npz"), labels)
    # Atomic writes leave no temporary file behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["round2.npz", "unselected.npz"]


def random_labels(n: int, k: int = K) -> PseudoLabels:
    rng = np.random.default_rng(0)
    return PseudoLabels(
        round=1,
        epoch=10,
        keep_share=0.4,
        threshold=0.5,
        indices=np.arange(n),
        shots=np.repeat(np.arange(n // 50 + 1), 50)[:n],
        frames=np.arange(n) + 1,
        keypoints=rng.uniform(0, 1280, (n, k, 2)).astype(np.float32),
        confidence=rng.uniform(0, 1, (n, k)).astype(np.float32),
        substituted=rng.uniform(size=(n, k)) < 0.05,
        selected=rng.uniform(size=(n, k)) < 0.4,
        hits=rng.integers(-1, 2, (n, k)).astype(np.int8),
        diagnostics={"pck_all": 0.5},
    )


def test_ten_thousand_frames_take_a_few_megabytes(assert_same, tmp_path):
    big = random_labels(10_000)
    big.save(tmp_path / "big.npz")
    assert (tmp_path / "big.npz").stat().st_size < 4e6
    assert_same(PseudoLabels.load(tmp_path / "big.npz"), big)


def rewrite(path, **changes):
    """Copy the .npz at ``path`` with entries replaced (None deletes) to a new file."""
    with np.load(path) as z:
        content = {k: z[k] for k in z.files}
    for key, value in changes.items():
        if value is None:
            del content[key]
        else:
            content[key] = value
    out = path.with_name(f"bad_{'_'.join(changes)}.npz")
    np.savez(out, **content)
    return out


def test_load_rejects_bad_files_naming_them(tmp_path):
    good = tmp_path / "labels.npz"
    random_labels(20).save(good)
    with pytest.raises(DataError, match="missing.npz: pseudo-label file not found"):
        PseudoLabels.load(tmp_path / "missing.npz")
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all" * 10)
    with pytest.raises(DataError, match="garbage.npz: not a readable pseudo-label"):
        PseudoLabels.load(garbage)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match="cut.npz"):
        PseudoLabels.load(cut)
    cases = {
        "selected": ({"selected": None}, "lacks \\['selected'\\]"),
        "confidence": ({"confidence": np.zeros((20, K + 1), np.float32)}, "'confidence' must be"),
        "keypoints": ({"keypoints": np.zeros((20, K, 2))}, "'keypoints' must be float32"),
        "indices": ({"indices": np.arange(21)}, "'shots' must be int64 of shape \\(21,\\)"),
        "round": ({"round": np.array([1])}, "'round' must be a int64 scalar"),
        "format": ({"format": np.asarray("other/1")}, "format tag"),
        "hits": ({"hits": np.full((20, K), 3, np.int8)}, "'hits' must hold only"),
    }
    for change, message in cases.values():
        bad = rewrite(good, **change)
        with pytest.raises(DataError, match=f"{bad.name}: .*{message}"):
            PseudoLabels.load(bad)
    # Object arrays would need pickle: refused, not executed.
    bad = rewrite(good, diagnostic_names=np.array([{"a": 1}], dtype=object))
    with pytest.raises(DataError, match=bad.name):
        PseudoLabels.load(bad)


def test_a_round_records_what_made_it(tmp_path):
    """The run's settings and the digest of the predicting weights survive a round trip; files
    written before they were recorded load with None (the trainer then makes the round again)."""
    from animalpose.adapt.pseudo_label_store import weights_digest

    weights = {"a": torch.arange(6.0).reshape(2, 3), "b": torch.tensor(3)}
    digest = weights_digest(weights)
    assert digest == weights_digest({k: v.clone() for k, v in weights.items()})
    assert digest != weights_digest({**weights, "a": weights["a"] + 1e-6})
    assert digest != weights_digest({**weights, "a": weights["a"].double()})
    settings = {"optim": {"lr": 0.001, "schedule": [3, 5]}, "run": {"seed": 4}}
    made = replace(random_labels(20), settings=settings, weights=digest)
    made.save(tmp_path / "made.npz")
    loaded = PseudoLabels.load(tmp_path / "made.npz")
    assert (loaded.settings, loaded.weights) == (settings, digest)
    older = rewrite(tmp_path / "made.npz", settings=None, weights=None)
    assert (PseudoLabels.load(older).settings, PseudoLabels.load(older).weights) == (None, None)
    bad = rewrite(tmp_path / "made.npz", settings=np.asarray("{not json"))
    with pytest.raises(DataError, match=f"{bad.name}: 'settings' is not JSON"):
        PseudoLabels.load(bad)
    bad = rewrite(tmp_path / "made.npz", weights=np.arange(3))
    with pytest.raises(DataError, match=f"{bad.name}: 'weights' must be a str scalar"):
        PseudoLabels.load(bad)


def test_oracle_filter_keeps_only_labels_the_annotations_call_right():
    labels = random_labels(300)
    right = labels.hits == 1
    assert labels.with_oracle_filter("none") is labels
    kept = labels.with_oracle_filter("kept")
    np.testing.assert_array_equal(kept.selected, labels.selected & right)
    every = labels.with_oracle_filter("all")
    np.testing.assert_array_equal(every.selected, right)
    for out in (kept, every):
        assert out.diagnostics["pck_selected"] == 1.0  # every kept label is right
        assert out.diagnostics["kept_share"] == pytest.approx(out.selected.mean())
        assert out.diagnostics["pck_all"] == pytest.approx(right.sum() / (labels.hits >= 0).sum())
        np.testing.assert_array_equal(out.keypoints, labels.keypoints)  # only the choice changes
    assert 0 < kept.selected.sum() < min(labels.selected.sum(), every.selected.sum())


def test_oracle_filter_refuses_labels_without_annotations_and_unknown_modes():
    labels = random_labels(20)
    blind = replace(labels, hits=np.full_like(labels.hits, -1))
    with pytest.raises(ValueError, match="needs the target train split's annotations"):
        blind.with_oracle_filter("kept")
    with pytest.raises(ValueError, match="unknown oracle filter 'best'"):
        labels.with_oracle_filter("best")


def test_confidence_auc_known_values_and_a_pairwise_count():
    hits = np.array([1, 1, 0, 0, -1], dtype=np.int8)
    assert confidence_auc(np.array([0.9, 0.8, 0.2, 0.1, 0.0]), hits) == 1.0
    assert confidence_auc(np.array([0.1, 0.2, 0.8, 0.9, 5.0]), hits) == 0.0
    assert confidence_auc(np.full(5, 0.5), hits) == 0.5  # ties count half
    assert np.isnan(confidence_auc(np.ones(3), np.array([1, 1, -1], dtype=np.int8)))
    rng = np.random.default_rng(3)
    hits = rng.integers(-1, 2, (40, 18)).astype(np.int8)
    conf = rng.integers(0, 6, (40, 18)).astype(np.float32)  # many ties
    right, wrong = conf[hits == 1], conf[hits == 0]
    pairs = (right[:, None] > wrong[None, :]).sum() + 0.5 * (right[:, None] == wrong[None, :]).sum()
    assert confidence_auc(conf, hits) == pytest.approx(pairs / (right.size * wrong.size))
