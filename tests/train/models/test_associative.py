"""Associative Embedding model (HRNet + AE head, optionally HigherHRNet's deconvolution head)
against HRNet/HigherHRNet-Human-Pose-Estimation ``lib/models/pose_higher_hrnet.py``: the head's
state_dict keys and shapes (``final_layers``, ``deconv_layers``), parameter counts by hand and
the paper's, output shapes and layout, the trunk being HRNet's, a seeded forward against
checked-in values, gradients reaching every parameter, and a tiny overfit."""

from __future__ import annotations

import pytest
import torch

from animalpose.train.ae_loss import AELoss
from animalpose.train.models.associative import AssociativeEmbedding, HigherHRNet
from animalpose.train.models.hrnet import HRNet

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
#: HRNet-W32 with K = 17 (tests/train/models/test_hrnet.py derives it from the reference).
HRNET_W32_PARAMS = 28_536_113
#: HigherHRNet paper, Table 2 (COCO val): HigherHRNet-W32 28.6 M parameters.
PAPER_HIGHER_W32_M = 28.6
#: A tiny CPU model.
TINY = dict(num_keypoints=3, width=4, stem_channels=8)
#: ``abs().mean()`` of each output of ``_seeded_outputs`` (computed once, checked in): the
#: forward must not drift (tolerance 1e-4 relative).
SEEDED_ABS_MEANS = {False: (0.00664450,), True: (0.00620749, 0.00221127)}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread (as tests/train/models/test_hrnet.py): HRNet's many small convs on
    2 shared cores run much faster without torch's thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _meta(**kwargs) -> AssociativeEmbedding:
    with torch.device("meta"):
        return AssociativeEmbedding(**kwargs)


def _head_keys(higher: bool) -> list[str]:
    """The reference's head keys in creation order (``final_layers`` then ``deconv_layers``;
    each basic block wrapped in its own ``Sequential``)."""
    keys = ["final_layers.0.weight", "final_layers.0.bias"]
    if not higher:
        return keys
    keys += ["final_layers.1.weight", "final_layers.1.bias", "deconv_layers.0.0.0.weight"]
    keys += [f"deconv_layers.0.0.1.{p}" for p in BN_KEYS]
    for b in range(1, 5):
        for i in (1, 2):
            keys += [f"deconv_layers.0.{b}.0.conv{i}.weight"]
            keys += [f"deconv_layers.0.{b}.0.bn{i}.{p}" for p in BN_KEYS]
    return keys


@pytest.mark.parametrize("higher", [False, True])
def test_keys_are_hrnets_trunk_then_the_references_head(higher):
    """Keys do not depend on the widths: a tiny model has W32's (and the published files')."""
    with torch.device("meta"):
        hrnet = HRNet(width=4, num_keypoints=3, stem_channels=8)
    trunk = [k for k in hrnet.state_dict() if not k.startswith("final_layer.")]
    assert list(_meta(**TINY, higher=higher).state_dict()) == trunk + _head_keys(higher)


def test_head_shapes_of_w32():
    state = _meta(num_keypoints=17, width=32, higher=True).state_dict()
    shapes = {
        "final_layers.0.weight": (34, 32, 1, 1),  # 17 heatmaps + 17 tags
        "final_layers.1.weight": (17, 32, 1, 1),
        "deconv_layers.0.0.0.weight": (66, 32, 4, 4),  # ConvTranspose2d(32 + 34 -> 32)
        "deconv_layers.0.4.0.conv2.weight": (32, 32, 3, 3),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes


def test_parameter_counts_by_hand_and_the_papers():
    head = 32 * 34 + 34  # final_layers.0
    ae = HRNET_W32_PARAMS - (32 * 17 + 17) + head
    deconv = 66 * 32 * 16 + 2 * 32  # transposed conv (no bias) + BN
    blocks = 4 * 2 * (32 * 32 * 9 + 2 * 32)
    higher = ae + deconv + blocks + 32 * 17 + 17
    assert (ae, higher) == (28_536_674, 28_645_331)
    assert sum(p.numel() for p in _meta(num_keypoints=17).parameters()) == ae
    n = sum(p.numel() for p in _meta(num_keypoints=17, higher=True).parameters())
    assert n == higher and round(n / 1e6, 1) == PAPER_HIGHER_W32_M


def test_output_shapes_layout_and_features():
    torch.manual_seed(0)
    model = AssociativeEmbedding(**TINY, higher=True).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        outputs, features = model(x, return_features=True)
        trunk = model.final_layer(HRNet.forward(model, x, return_features=True)[1])
    assert isinstance(outputs, list)
    assert [o.shape for o in outputs] == [(2, 6, 16, 24), (2, 3, 32, 48)]
    assert model.output_strides == (4, 2)
    assert features.shape == (2, 4, 32, 48)  # the input of the last prediction layer
    torch.testing.assert_close(outputs[1], model.final_layers[1](features))
    torch.testing.assert_close(outputs[0], model.final_layers[0](trunk))
    plain = AssociativeEmbedding(**TINY).eval()
    with torch.no_grad():
        outputs, features = plain(x, return_features=True)
    assert [o.shape for o in outputs] == [(2, 6, 16, 24)] and features.shape == (2, 4, 16, 24)
    assert plain.output_strides == (4,)
    with pytest.raises(ValueError, match="multiples of 32"):
        plain(torch.randn(1, 3, 64, 80))


def test_higher_hrnet_is_the_higher_model_with_the_same_state_dict():
    """``HigherHRNet`` builds exactly ``AssociativeEmbedding(higher=True)``: the same keys and
    shapes, so the same seed gives the same weights and one's file loads into the other."""
    torch.manual_seed(3)
    higher = HigherHRNet(**TINY)
    torch.manual_seed(3)
    reference = AssociativeEmbedding(**TINY, higher=True)
    assert higher.higher and higher.output_strides == (4, 2)
    a, b = higher.state_dict(), reference.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    AssociativeEmbedding(**TINY, higher=True).load_state_dict(a, strict=True)


def test_trunk_is_hrnets():
    """HRNet's weights (its head aside) load into the AE model, which then computes HRNet's
    features."""
    torch.manual_seed(1)
    hrnet = HRNet(width=4, num_keypoints=3, stem_channels=8).eval()
    model = AssociativeEmbedding(**TINY).eval()
    missing, unexpected = model.load_state_dict(hrnet.state_dict(), strict=False)
    assert sorted(missing) == ["final_layers.0.bias", "final_layers.0.weight"]
    assert unexpected == ["final_layer.weight", "final_layer.bias"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        _, expected = hrnet(x, return_features=True)
        _, features = model(x, return_features=True)
    torch.testing.assert_close(features, expected)
    assert model.trunk_layers == hrnet.trunk_layers


def test_head_initialisation_is_the_references():
    torch.manual_seed(0)
    model = AssociativeEmbedding(num_keypoints=17, width=32, stem_channels=8, higher=True)
    deconv = model.deconv_layers[0][0][0]
    assert deconv.weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert model.final_layers[0].weight.std().item() == pytest.approx(0.001, rel=0.1)
    assert model.final_layers[1].bias.abs().max() == 0


def _seeded_outputs(higher: bool) -> list[torch.Tensor]:
    """Train mode: batch statistics keep every layer's activations at unit scale (in eval mode
    the 0.001-std initialisation shrinks the outputs to about 1e-13)."""
    torch.manual_seed(0)
    model = AssociativeEmbedding(**TINY, higher=higher).train()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        return model(x)


@pytest.mark.parametrize("higher", [False, True])
def test_seeded_forward_is_stable(higher):
    outputs = _seeded_outputs(higher)
    got = tuple(o.double().abs().mean().item() for o in outputs)
    for value, expected in zip(got, SEEDED_ABS_MEANS[higher]):
        assert value == pytest.approx(expected, rel=1e-4)


def _batch(k: int = 3):
    """Two fixed 64 x 64 crops and their targets: (images, heatmaps at stride 4 and 2,
    keypoints (B, M, K, 2) at stride 4, visible)."""
    g = torch.Generator().manual_seed(5)
    images = torch.randn(2, 3, 64, 64, generator=g)
    keypoints = torch.randint(1, 15, (2, 2, k, 2), generator=g)
    visible = torch.ones(2, 2, k)
    heatmaps = []
    for stride in (1, 2):  # 16 x 16 and 32 x 32 maps
        maps = torch.zeros(2, k, 16 * stride, 16 * stride)
        for b in range(2):
            for m in range(2):
                for j in range(k):
                    x, y = keypoints[b, m, j] * stride
                    maps[b, j, y, x] = 1.0
        heatmaps.append(maps)
    return images, heatmaps, keypoints, visible


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = AssociativeEmbedding(**TINY, higher=True).train()
    images, heatmaps, keypoints, visible = _batch()
    total, _ = AELoss()(model(images), heatmaps, torch.ones(2, 3), keypoints, visible)
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert missing == []


@pytest.mark.slow
def test_tiny_overfit_lowers_the_loss():
    torch.manual_seed(0)
    model = AssociativeEmbedding(**TINY, higher=True).train()
    images, heatmaps, keypoints, visible = _batch()
    loss_fn = AELoss(push_weight=1.0, pull_weight=1.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        optimizer.zero_grad()
        total, _ = loss_fn(model(images), heatmaps, torch.ones(2, 3), keypoints, visible)
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < 0.5 * losses[0]
