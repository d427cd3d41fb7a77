"""Pseudo-label generation on the TigDog fixture, and its diagnostics."""

import numpy as np
import pytest
import torch

from animalpose.adapt.selection import select_top_share
from animalpose.adapt.temporal import TemporalConfig, temporal_refine
from animalpose.adapt.views import ViewSampler
from animalpose.datasets.geometry import crop_matrix
from animalpose.evaluation.inference import evaluate
from animalpose.evaluation.pck import pck_hits
from animalpose.train.loaders import make_loader

K = 18


def test_generated_labels_cover_the_dataset_in_order(labels, real_dataset):
    n = len(real_dataset)
    assert len(labels) == n and labels.round == 2 and labels.epoch == 20
    np.testing.assert_array_equal(labels.indices, np.arange(n))
    assert [(int(s), int(f)) for s, f in zip(labels.shots, labels.frames, strict=True)] == [
        real_dataset.shot_frame(i) for i in range(n)
    ]
    assert labels.keypoints.shape == (n, K, 2) and labels.keypoints.dtype == np.float32
    assert labels.confidence.shape == (n, K) and labels.confidence.dtype == np.float32
    assert labels.selected.dtype == bool and not labels.selected.any()
    assert not labels.substituted.any() and np.isnan(labels.threshold)
    assert np.isfinite(labels.keypoints).all() and np.isfinite(labels.confidence).all()


def test_identity_view_alone_equals_the_evaluation_path(
    generate, tiny_model, real_dataset, codec, normalizer
):
    """With no random views the engine must give evaluate()'s predictions (independent code:
    plain forward, codec decode, inverse crop matrix)."""
    labels = generate(views=ViewSampler(num_views=0))
    loader = make_loader(
        real_dataset, batch_size=5, shuffle=False, workers=0, seed=0, device=torch.device("cpu")
    )
    result = evaluate(
        tiny_model, loader, codec=codec, normalizer=normalizer, device="cpu", progress=False
    )
    np.testing.assert_allclose(labels.keypoints, result.preds, atol=1e-3)
    np.testing.assert_allclose(labels.confidence, result.scores, atol=1e-6)


def test_deterministic_for_a_seed_and_independent_of_batch_size(generate, labels):
    same = generate(round_index=2, epoch=20)
    np.testing.assert_array_equal(same.keypoints, labels.keypoints)
    np.testing.assert_array_equal(same.confidence, labels.confidence)
    # Another batch size: the same views per sample; CPU kernels may block a batch differently
    # (float32 rounding), hence the tolerance.
    again = generate(round_index=2, epoch=20, batch_size=7)
    np.testing.assert_allclose(again.keypoints, labels.keypoints, atol=1e-3)
    np.testing.assert_allclose(again.confidence, labels.confidence, atol=1e-5)
    other_seed = generate(round_index=2, epoch=20, seed=2)
    other_round = generate(round_index=3, epoch=20)
    assert not np.array_equal(other_seed.confidence, labels.confidence)  # other views
    assert not np.array_equal(other_round.confidence, labels.confidence)


def test_model_runs_in_eval_mode_and_its_mode_is_restored(generate, model_factory):
    model = model_factory(0).train()
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    generate(model=model, views=ViewSampler(num_views=1))
    assert model.training  # restored
    for name, value in model.state_dict().items():  # BatchNorm statistics untouched: eval mode
        if name in stats:
            assert torch.equal(value, stats[name]), name


def _refinement(dataset, labels, config: TemporalConfig, **kwargs):
    """temporal_refine of the unrefined ``labels`` of ``dataset``, called directly."""
    n = len(dataset)
    return temporal_refine(
        image_paths=[dataset.image_path(i) for i in range(n)],
        shots=labels.shots,
        frames=labels.frames,
        keypoints=labels.keypoints,
        confidence=labels.confidence,
        box_sizes=np.array([dataset.annotation(i)[2] for i in range(n)]),
        config=config,
        **kwargs,
    )


def test_temporal_step_is_the_refinement_of_the_predictions(generate, labels, real_dataset):
    config = TemporalConfig(max_move=60.0)
    refined = generate(round_index=2, epoch=20, temporal=config)
    expected = _refinement(real_dataset, labels, config)
    np.testing.assert_array_equal(refined.keypoints, expected.keypoints)
    np.testing.assert_array_equal(refined.substituted, expected.substituted)
    assert refined.substituted.any()  # the fixture run exercises the rule
    first = np.r_[True, labels.shots[1:] != labels.shots[:-1]]
    gap = np.r_[True, np.diff(labels.frames) > 1]
    assert not refined.substituted[first | gap].any()
    assert refined.diagnostics["substituted"] == refined.substituted.sum()


def test_crop_files_flow_through_their_frame_matrices(generate, crop_dataset):
    config = TemporalConfig(max_move=60.0)
    raw = generate(dataset=crop_dataset)
    refined = generate(dataset=crop_dataset, temporal=config)
    n = len(crop_dataset)
    boxes = [crop_dataset.annotation(i) for i in range(n)]
    matrices = np.stack([crop_matrix(b[1], b[2], (64, 64)) for b in boxes])
    expected = _refinement(crop_dataset, raw, config, image_matrices=matrices)
    assert all(p.name.startswith("crop_") for p in map(crop_dataset.image_path, range(n)))
    np.testing.assert_array_equal(refined.keypoints, expected.keypoints)
    np.testing.assert_array_equal(refined.substituted, expected.substituted)
    assert refined.substituted.any()


def test_diagnostics_match_an_independent_pck(labels, real_dataset):
    n = len(real_dataset)
    truth = torch.from_numpy(np.stack([real_dataset.annotation(i)[0] for i in range(n)]))
    sizes = torch.tensor([real_dataset.annotation(i)[2] for i in range(n)])
    hits, valid = pck_hits(torch.from_numpy(labels.keypoints).double(), truth, sizes)
    assert labels.diagnostics["pck_all"] == pytest.approx(float(hits.sum() / valid.sum()))
    np.testing.assert_array_equal(labels.hits == -1, ~valid.numpy())
    chosen = labels.with_selection(0.5)
    expected, threshold = select_top_share(labels.confidence, 0.5)
    np.testing.assert_array_equal(chosen.selected, expected)
    assert chosen.threshold == threshold and chosen.keep_share == 0.5
    assert chosen.diagnostics["kept_share"] == pytest.approx(expected.mean())
    mask = expected & valid.numpy()
    assert chosen.diagnostics["pck_selected"] == pytest.approx(
        float(hits.numpy()[mask].sum() / mask.sum())
    )
    assert not labels.selected.any()  # with_selection returns a copy


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_generation_matches_cpu(generate, labels, model_factory):
    model = model_factory(0).cuda()
    on_gpu = generate(
        model=model, device="cuda", round_index=2, epoch=20, temporal=TemporalConfig(max_move=60.0)
    )
    on_cpu = generate(round_index=2, epoch=20, temporal=TemporalConfig(max_move=60.0))
    np.testing.assert_allclose(on_gpu.confidence, on_cpu.confidence, atol=1e-3)
    # TF32/cuDNN rounding can move an argmax between near-equal neighbours: most keypoints agree.
    close = np.linalg.norm(on_gpu.keypoints - on_cpu.keypoints, axis=-1) < 1e-2
    assert close.mean() > 0.95
