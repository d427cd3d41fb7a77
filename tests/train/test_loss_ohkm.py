"""Online hard keypoint mining and per-stage targets: ``ohkm_mse`` / ``KeypointMSELoss`` against
hand-derived values and an independent NumPy computation, the ``--ohkm-topk`` flag, ``build_loss``
and ``Trainer.prepare``'s coarse-to-fine targets (``stage_targets``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.train.build import build_loss
from animalpose.train.config import Config, ConfigError, OptimConfig
from animalpose.train.flag_parser import parse_config
from animalpose.train.loss import KeypointMSELoss, keypoint_losses, keypoint_mse, ohkm_mse
from animalpose.train.trainer import Trainer, mean_batch_accuracy, stage_targets

H, W = 4, 3


def _hand_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(pred, target, weights) of 3 samples x 5 keypoints whose prediction is off by a constant
    ``c`` per keypoint, so a keypoint's loss is ``0.5 * (c * w) ** 2``:

    - sample 0: c = 1, 3, 2, 3, 0.5, all labelled -> losses 0.5, 4.5, 2, 4.5, 0.125 (a tie);
    - sample 1: c = 5, 1, 1, 0, 2, keypoint 0 unlabelled -> 0, 0.5, 0.5, 0, 2;
    - sample 2: only keypoint 3 labelled, c = 2 -> 0, 0, 0, 2, 0.
    """
    c = torch.tensor([[1, 3, 2, 3, 0.5], [5, 1, 1, 0, 2], [1, 1, 1, 2, 1]])
    weights = torch.tensor([[1, 1, 1, 1, 1], [0, 1, 1, 1, 1], [0, 0, 0, 1, 0]]).float()
    target = torch.rand(3, 5, H, W, generator=torch.Generator().manual_seed(0))
    pred = target + c[:, :, None, None]
    return pred, target, weights


def _numpy_ohkm(pred, target, weights, k: int) -> float:
    """Independent reference: per sample the k largest ``0.5 * mean_hw(((p - t) w) ** 2)``
    (float64; equal losses: the lower index first), summed, divided by B * k."""
    p, t = pred.detach().double().numpy(), target.double().numpy()
    w = weights.double().numpy().reshape(p.shape[0], p.shape[1], 1, 1)
    losses = 0.5 * (((p - t) * w) ** 2).mean(axis=(2, 3))
    total = 0.0
    for row in losses:
        order = np.argsort(-row, kind="stable")
        total += row[order[:k]].sum()
    return total / (losses.shape[0] * k)


def test_keypoint_losses_are_the_hand_derived_values():
    pred, target, weights = _hand_batch()
    expected = [[0.5, 4.5, 2, 4.5, 0.125], [0, 0.5, 0.5, 0, 2], [0, 0, 0, 2, 0]]
    assert keypoint_losses(pred, target, weights) == pytest.approx(torch.tensor(expected))


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        # sample 0: 4.5 + 4.5, sample 1: 2 (+ 0.5), sample 2: 2 and zeros; / (3 k)
        (1, (4.5 + 2 + 2) / 3),
        (2, (9 + 2.5 + 2) / 6),
        (3, (11 + 3 + 2) / 9),
    ],
)
def test_ohkm_hand_derived_values(k, expected):
    pred, target, weights = _hand_batch()
    loss = ohkm_mse(pred, target, weights, k)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert loss.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_ohkm_matches_an_independent_numpy_computation(k):
    gen = torch.Generator().manual_seed(k)
    pred = torch.randn(4, 5, 6, 5, generator=gen)
    target = torch.rand(4, 5, 6, 5, generator=gen)
    weights = (torch.rand(4, 5, generator=gen) > 0.3).float()
    expected = _numpy_ohkm(pred, target, weights, k)
    assert ohkm_mse(pred, target, weights, k).item() == pytest.approx(expected, rel=1e-6)
    hand = _hand_batch()
    assert ohkm_mse(*hand, k).item() == pytest.approx(_numpy_ohkm(*hand, k), rel=1e-6)


def test_ties_keep_the_lower_keypoint_and_unlabelled_keypoints_get_no_gradient():
    pred, target, weights = _hand_batch()
    pred.requires_grad_(True)
    ohkm_mse(pred, target, weights, 1).backward()
    touched = (pred.grad.abs().sum(dim=(2, 3)) > 0).int()
    # sample 0: keypoints 1 and 3 tie at 4.5 -> keypoint 1; sample 1: keypoint 4 (2), never the
    # unlabelled keypoint 0 despite its error of 5; sample 2: its one labelled keypoint.
    expected = [[0, 1, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0]]
    assert touched.tolist() == expected
    pred.grad = None
    ohkm_mse(pred, target, weights, 2).backward()
    touched = (pred.grad.abs().sum(dim=(2, 3)) > 0).int()
    # sample 1's tie at 0.5 (keypoints 1, 2) keeps keypoint 1; sample 2's second pick is a
    # zero-loss keypoint, whose weight 0 gives it no gradient either.
    assert touched.tolist() == [[0, 1, 0, 1, 0], [0, 1, 0, 0, 1], [0, 0, 0, 1, 0]]


def test_k_zero_is_the_plain_loss_exactly_and_k_equal_to_keypoints_its_value():
    gen = torch.Generator().manual_seed(3)
    outputs = [torch.randn(2, 5, 6, 5, generator=gen) for _ in range(3)]
    target = torch.rand(2, 5, 6, 5, generator=gen)
    weights = torch.tensor([[1, 0, 1, 1, 1], [1, 1, 1, 0, 0]]).float()
    plain = keypoint_mse(outputs[0], target, weights)
    for out in outputs[1:]:
        plain = plain + keypoint_mse(out, target, weights)
    for loss_fn in (KeypointMSELoss(), KeypointMSELoss(0, "all"), KeypointMSELoss(0, "last")):
        assert torch.equal(loss_fn(outputs, target, weights), plain)
    # k = K: sum of all keypoint losses / (B K) = the mean over (B, K, h, w): the same number.
    every = KeypointMSELoss(ohkm_topk=5)(outputs, target, weights)
    assert every.item() == pytest.approx(plain.item(), rel=1e-6)
    assert not torch.equal(KeypointMSELoss(ohkm_topk=2)(outputs, target, weights), plain)


def test_ohkm_stages_last_mines_only_the_last_output():
    gen = torch.Generator().manual_seed(4)
    s0, s1 = (torch.randn(3, 5, H, W, generator=gen) for _ in range(2))
    target = torch.rand(3, 5, H, W, generator=gen)
    weights = torch.ones(3, 5)
    last = KeypointMSELoss(ohkm_topk=2, ohkm_stages="last")([s0, s1], target, weights)
    every = KeypointMSELoss(ohkm_topk=2, ohkm_stages="all")([s0, s1], target, weights)
    plain0, plain1 = (keypoint_mse(s, target, weights).item() for s in (s0, s1))
    mined0, mined1 = (_numpy_ohkm(s, target, weights, 2) for s in (s0, s1))
    assert last.item() == pytest.approx(plain0 + mined1, rel=1e-6)
    assert every.item() == pytest.approx(mined0 + mined1, rel=1e-6)
    assert mined0 > plain0  # the top 2 of 5 losses are above their mean: the two differ
    single = KeypointMSELoss(ohkm_topk=2, ohkm_stages="last")([s1], target, weights)
    assert single.item() == pytest.approx(mined1, rel=1e-6)  # one output: it is the last


def test_one_target_per_output():
    gen = torch.Generator().manual_seed(5)
    outputs = [torch.randn(2, 4, H, W, generator=gen) for _ in range(2)]
    targets = [torch.rand(2, 4, H, W, generator=gen) for _ in range(2)]
    weights = torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1]]).float()
    expected = keypoint_mse(outputs[0], targets[0], weights) + keypoint_mse(
        outputs[1], targets[1], weights
    )
    assert torch.equal(KeypointMSELoss()(outputs, targets, weights), expected)
    assert torch.equal(
        KeypointMSELoss()(outputs, [targets[1], targets[1]], weights),
        KeypointMSELoss()(outputs, targets[1], weights),
    )
    mined = KeypointMSELoss(ohkm_topk=1, ohkm_stages="last")(outputs, tuple(targets), weights)
    assert mined.item() == pytest.approx(
        keypoint_mse(outputs[0], targets[0], weights).item()
        + _numpy_ohkm(outputs[1], targets[1], weights, 1),
        rel=1e-6,
    )
    with pytest.raises(ValueError, match="3 target heatmap tensors for 2 outputs"):
        KeypointMSELoss()(outputs, [*targets, targets[0]], weights)


def test_bf16_outputs_give_a_float32_loss():
    gen = torch.Generator().manual_seed(6)
    pred = torch.randn(2, 4, H, W, generator=gen)
    target = torch.rand(2, 4, H, W, generator=gen)
    weights = torch.ones(2, 4)
    loss = KeypointMSELoss(ohkm_topk=2)([pred.bfloat16()], target, weights)
    assert loss.dtype == torch.float32
    expected = _numpy_ohkm(pred.bfloat16().float(), target, weights, 2)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_bad_settings_are_clear_errors():
    pred, target, weights = _hand_batch()
    with pytest.raises(ValueError, match=r"top 6 keypoint losses .* 5 keypoints"):
        KeypointMSELoss(ohkm_topk=6)([pred], target, weights)
    for topk in (-1, True, 2.0):
        with pytest.raises(ValueError, match="ohkm_topk must be an int >= 0"):
            KeypointMSELoss(ohkm_topk=topk)
    with pytest.raises(ValueError, match="'first' is not one of"):
        KeypointMSELoss(ohkm_topk=8, ohkm_stages="first")
    assert "ohkm_topk=8, ohkm_stages='last'" in repr(KeypointMSELoss(8, "last"))


# -- configuration ---------------------------------------------------------------------------
def test_the_flag_sets_the_field():
    assert Config().optim.ohkm_topk == 0
    cfg, _ = parse_config(["--ohkm-topk", "8"])
    assert cfg.optim.ohkm_topk == 8
    cfg, _ = parse_config(["--set", "optim.ohkm_topk=3"])
    assert cfg.optim.ohkm_topk == 3
    with pytest.raises(ConfigError, match="ohkm_topk: must be >= 0, got -1"):
        OptimConfig(ohkm_topk=-1)


class _Stages(nn.Module):
    ohkm_stages = "last"


class _LossCodec:
    """A codec that brings its own loss (as G-RMI's offset codec)."""

    def make_loss(self) -> nn.Module:
        return nn.Identity()


def test_build_loss_reads_the_flag_the_model_and_the_codec():
    codec = MSRAHeatmap((16, 16), (4, 4), sigma=1.0)
    cfg = Config()
    loss = build_loss(cfg, codec, nn.Identity())
    assert isinstance(loss, KeypointMSELoss) and (loss.ohkm_topk, loss.ohkm_stages) == (0, "all")
    cfg.optim.ohkm_topk = 8
    loss = build_loss(cfg, codec, _Stages())
    assert (loss.ohkm_topk, loss.ohkm_stages) == (8, "last")
    with pytest.raises(ConfigError, match="optim.ohkm_topk: --ohkm-topk 8 mines heatmap MSE"):
        build_loss(cfg, _LossCodec(), nn.Identity())
    cfg.optim.ohkm_topk = 0
    assert isinstance(build_loss(cfg, _LossCodec(), nn.Identity()), nn.Identity)


# -- per-stage targets -----------------------------------------------------------------------
class _CoarseToFine(nn.Module):
    stage_sigma_scales = (2.0, 1.5, 1.0)


def _trainer_for(model: nn.Module) -> Trainer:
    """A ``Trainer`` holding only what ``prepare`` reads (no data, no run folder)."""
    trainer = Trainer.__new__(Trainer)
    trainer.device = torch.device("cpu")
    trainer.model = model
    trainer._normalize = lambda images: images.float() / 255
    return trainer


def _batch() -> dict:
    # keypoints (x, y, visible) in 32 x 32 input pixels; the third is unlabelled.
    keypoints = torch.tensor([[[8.0, 12.0, 1.0], [20.0, 4.0, 1.0], [3.0, 3.0, 0.0]]] * 2)
    keypoints[1, :, :2] += 4
    return {"image": torch.zeros(2, 3, 32, 32, dtype=torch.uint8), "keypoints": keypoints}


def test_prepare_encodes_one_target_per_output_with_scaled_sigma():
    codec = MSRAHeatmap((32, 32), (16, 16), sigma=1.0)
    batch = _batch()
    xy, visible = batch["keypoints"][..., :2], batch["keypoints"][..., 2]
    base, base_weights = codec.encode(xy, visible)
    x, heatmaps, weights = _trainer_for(nn.Identity()).prepare(batch, codec)
    assert x.shape == (2, 3, 32, 32) and torch.equal(heatmaps, base)
    assert torch.equal(weights, base_weights)

    x, targets, weights = _trainer_for(_CoarseToFine()).prepare(batch, codec)
    assert isinstance(targets, list) and len(targets) == 3
    assert torch.equal(weights, base_weights)  # which keypoints count: the codec's own sigma
    for target, sigma in zip(targets, (2.0, 1.5, 1.0), strict=True):
        assert torch.equal(
            target, MSRAHeatmap((32, 32), (16, 16), sigma=sigma).encode(xy, visible)[0]
        )
    # scale 1: the codec's own targets, not encoded again
    assert stage_targets(codec, (2.0, 1.0), xy, visible, base)[1] is base
    # Larger Gaussians early: each labelled keypoint's target mass shrinks stage by stage.
    mass = [t[:, :2].sum(dim=(2, 3)) for t in targets]
    assert (mass[0] > mass[1]).all() and (mass[1] > mass[2]).all()
    assert all(t[:, 2].abs().sum() == 0 for t in targets)  # unlabelled: empty at every stage

    outputs = [torch.zeros_like(base, requires_grad=True) for _ in range(3)]
    loss = KeypointMSELoss()(outputs, targets, weights)
    assert loss.item() == pytest.approx(
        sum(keypoint_mse(o, t, weights).item() for o, t in zip(outputs, targets)), rel=1e-6
    )
    acc = mean_batch_accuracy(base, targets)
    assert torch.equal(acc, mean_batch_accuracy(base, targets[-1]))


def test_stage_targets_follow_the_epoch_codec_and_refuse_sigma_free_codecs():
    codec = MSRAHeatmap((32, 32), (16, 16), sigma=2.0).with_sigma(0.5)  # a decayed epoch
    xy, visible = _batch()["keypoints"][..., :2], _batch()["keypoints"][..., 2]
    targets = stage_targets(codec, (3.0,), xy, visible)
    assert torch.equal(
        targets[0], MSRAHeatmap((32, 32), (16, 16), sigma=1.5).encode(xy, visible)[0]
    )
    with pytest.raises(ValueError, match="positive factors"):
        stage_targets(codec, (1.0, 0.0), xy, visible)
    with pytest.raises(ConfigError, match="codec _LossCodec has no sigma to scale"):
        stage_targets(_LossCodec(), (2.0, 1.0), xy, visible)
