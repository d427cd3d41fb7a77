"""HourglassNet against the reference's naming rules, parameter count and forward structure.

The expected key list and parameter count are derived here from the rules in
docs/reference_compat.md §2, not by instantiating the model.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from animalpose.train.models.hourglass import Hourglass, HourglassNet

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
CONV_KEYS = ("weight", "bias")
#: Reference model, ``--stacks 4 --blocks 1`` with 18 keypoints (docs/reference_compat.md §2).
REFERENCE_PARAMS = 13_022_408
REFERENCE_ENTRIES = 1_298


def bottleneck_keys(prefix: str, *, downsample: bool = False) -> list[str]:
    keys = []
    for layer in ("bn1", "conv1", "bn2", "conv2", "bn3", "conv3"):
        params = BN_KEYS if layer.startswith("bn") else CONV_KEYS
        keys += [f"{prefix}.{layer}.{p}" for p in params]
    if downsample:
        keys += [f"{prefix}.downsample.0.{p}" for p in CONV_KEYS]
    return keys


def reference_keys(*, stacks: int, blocks: int) -> list[str]:
    """State_dict keys in the reference's order (its module-creation order)."""
    keys = [f"conv1.{p}" for p in CONV_KEYS] + [f"bn1.{p}" for p in BN_KEYS]
    keys += bottleneck_keys("layer1.0", downsample=True)
    keys += bottleneck_keys("layer2.0", downsample=True)
    keys += bottleneck_keys("layer3.0")
    for s in range(stacks):
        for i in range(4):  # recursion level, 0 innermost
            for j in range(4 if i == 0 else 3):  # branch; 3 = bottom residual at i = 0 only
                for b in range(blocks):
                    keys += bottleneck_keys(f"hg.{s}.hg.{i}.{j}.{b}")
    for s in range(stacks):
        for b in range(blocks):
            keys += bottleneck_keys(f"res.{s}.{b}")
    for s in range(stacks):
        keys += [f"fc.{s}.0.{p}" for p in CONV_KEYS] + [f"fc.{s}.1.{p}" for p in BN_KEYS]
    for s in range(stacks):
        keys += [f"score.{s}.{p}" for p in CONV_KEYS]
    for s in range(stacks - 1):
        keys += [f"fc_.{s}.{p}" for p in CONV_KEYS]
    for s in range(stacks - 1):
        keys += [f"score_.{s}.{p}" for p in CONV_KEYS]
    return keys


def bottleneck_params(inplanes: int, planes: int) -> int:
    out = 2 * planes
    n = 2 * inplanes + (inplanes * planes + planes)  # bn1, conv1 1x1
    n += 2 * planes + (9 * planes * planes + planes)  # bn2, conv2 3x3
    n += 2 * planes + (planes * out + out)  # bn3, conv3 1x1
    if inplanes != out:
        n += inplanes * out + out  # downsample 1x1
    return n


def expected_params(*, stacks: int, blocks: int, keypoints: int, channels: int) -> int:
    c, stem, feats = channels, channels // 4, channels // 2
    n = 3 * 49 * stem + stem + 2 * stem  # conv1 7x7 + bn1
    n += bottleneck_params(stem, stem) + bottleneck_params(2 * stem, feats)
    n += bottleneck_params(c, feats)
    per_stack = 13 * blocks * bottleneck_params(c, feats)  # hourglass: 4 levels x 3 + bottom
    per_stack += blocks * bottleneck_params(c, feats)  # res
    per_stack += (c * c + c) + 2 * c  # fc conv + bn
    per_stack += c * keypoints + keypoints  # score
    between = (c * c + c) + (keypoints * c + c)  # fc_, score_
    return n + stacks * per_stack + (stacks - 1) * between


@pytest.fixture(scope="module")
def reference_model() -> HourglassNet:
    return HourglassNet()


def test_default_keys_are_the_reference_keys_in_order(reference_model):
    expected = reference_keys(stacks=4, blocks=1)
    assert len(expected) == REFERENCE_ENTRIES
    assert list(reference_model.state_dict()) == expected


def test_default_parameter_count(reference_model):
    assert expected_params(stacks=4, blocks=1, keypoints=18, channels=256) == REFERENCE_PARAMS
    assert sum(p.numel() for p in reference_model.parameters()) == REFERENCE_PARAMS


@pytest.mark.parametrize(
    ("stacks", "blocks", "keypoints", "channels"), [(1, 1, 5, 16), (2, 2, 3, 32), (3, 1, 18, 64)]
)
def test_small_configs_follow_the_same_rules(stacks, blocks, keypoints, channels):
    model = HourglassNet(
        num_stacks=stacks, num_blocks=blocks, num_keypoints=keypoints, channels=channels
    )
    assert list(model.state_dict()) == reference_keys(stacks=stacks, blocks=blocks)
    assert sum(p.numel() for p in model.parameters()) == expected_params(
        stacks=stacks, blocks=blocks, keypoints=keypoints, channels=channels
    )


def test_default_init_is_pytorch_default(reference_model):
    # The reference has no init code: BN weight 1 / bias 0, conv kaiming-uniform(a=sqrt(5)),
    # whose bound for a 1x1 conv with fan_in 256 is 1 / sqrt(256).
    assert torch.equal(reference_model.bn1.weight, torch.ones(64))
    assert torch.equal(reference_model.fc[0][1].bias, torch.zeros(256))
    w = reference_model.fc_[0].weight
    assert w.abs().max() <= 1 / 16 and w.abs().max() > 0.9 / 16


@pytest.mark.parametrize("stacks", [1, 2])
def test_output_is_a_list_of_per_stack_heatmaps(stacks):
    torch.manual_seed(0)
    model = HourglassNet(num_stacks=stacks, num_keypoints=5, channels=16)
    outputs = model(torch.randn(2, 3, 64, 128))
    assert isinstance(outputs, list) and len(outputs) == stacks
    for out in outputs:
        assert out.shape == (2, 5, 16, 32)
        assert torch.isfinite(out).all()


def test_every_score_head_gets_a_gradient():
    """Intermediate supervision: each stack's heatmap head is trained (the registry test checks
    that every parameter gets a gradient; conv biases before BN may get ~0)."""
    torch.manual_seed(0)
    model = HourglassNet(num_stacks=2, num_keypoints=3, channels=16).train()
    outputs = model(torch.randn(2, 3, 64, 64))
    sum(o.square().mean() for o in outputs).backward()
    assert len(model.score) == 2
    assert all(head.weight.grad.abs().sum() > 0 for head in model.score)


def test_full_width_four_stacks_forward(reference_model):
    reference_model.eval()
    with torch.no_grad():
        outputs = reference_model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outputs] == [(1, 18, 16, 16)] * 4


def test_rejects_input_sides_not_multiple_of_64():
    model = HourglassNet(num_stacks=1, num_keypoints=2, channels=8)
    with pytest.raises(ValueError, match="multiples of 64"):
        model(torch.randn(1, 3, 96, 64))


@pytest.mark.parametrize("channels", [0, 6, -4])
def test_rejects_bad_channels(channels):
    with pytest.raises(ValueError, match="channels"):
        HourglassNet(channels=channels)


def test_earlier_stacks_do_not_depend_on_later_heads():
    torch.manual_seed(1)
    model = HourglassNet(num_stacks=2, num_keypoints=3, channels=16).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.score[1].weight.add_(1.0)
        after = model(x)
    assert torch.equal(before[0], after[0])
    assert not torch.allclose(before[1], after[1])


def test_stacks_feed_forward_through_fc_and_score_links():
    torch.manual_seed(2)
    model = HourglassNet(num_stacks=2, num_keypoints=3, channels=16).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)[1]
        model.score_[0].bias.add_(1.0)  # x = x + fc_(y) + score_(score) changes stack 2
        after = model(x)[1]
    assert not torch.allclose(before, after)


def test_bottleneck_matches_preactivation_formula():
    torch.manual_seed(3)
    block = HourglassNet(num_stacks=1, num_keypoints=1, channels=16).layer2[0].eval()
    for bn in (block.bn1, block.bn2, block.bn3):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 8, 5, 5)

    def pre(bn: nn.BatchNorm2d, conv: nn.Conv2d, t: torch.Tensor) -> torch.Tensor:
        t = (t - bn.running_mean[:, None, None]) / torch.sqrt(
            bn.running_var[:, None, None] + bn.eps
        )
        t = torch.clamp(t * bn.weight[:, None, None] + bn.bias[:, None, None], min=0)
        return conv(t)

    out = pre(block.bn1, block.conv1, x)
    out = pre(block.bn2, block.conv2, out)
    expected = pre(block.bn3, block.conv3, out) + block.downsample[0](x)
    with torch.no_grad():
        assert torch.allclose(block(x), expected, atol=1e-5)


class _Affine(nn.Module):
    """Stand-in residual branch: x -> a * x + b, with a tag per (level, branch)."""

    def __init__(self, a: float, b: float) -> None:
        super().__init__()
        self.a, self.b = a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a * x + self.b


def _pool(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    return x.reshape(b, c, h // 2, 2, w // 2, 2).amax(dim=(3, 5))


def _upsample(x: torch.Tensor) -> torch.Tensor:
    return x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)


def test_hourglass_recursion_levels_and_branches():
    hourglass = Hourglass(planes=2, num_blocks=1)
    coeffs = {}
    for i, level in enumerate(hourglass.hg):
        for j in range(len(level)):
            coeffs[i, j] = (1.0 + 0.1 * i + 0.37 * j, 0.05 * (i + 1) - 0.11 * j)
            level[j] = _Affine(*coeffs[i, j])

    def f(i: int, j: int, x: torch.Tensor) -> torch.Tensor:
        a, b = coeffs[i, j]
        return a * x + b

    def expected(i: int, x: torch.Tensor) -> torch.Tensor:
        # Spec: level 3 outermost; branch 0 skip, 1 after max-pool, 2 after the inner
        # recursion, 3 the bottom residual (level 0 only); nearest x2 upsampling.
        low = f(i, 1, _pool(x))
        low = expected(i - 1, low) if i > 0 else f(0, 3, low)
        return f(i, 0, x) + _upsample(f(i, 2, low))

    torch.manual_seed(4)
    x = torch.randn(1, 4, 16, 16)
    assert [len(level) for level in hourglass.hg] == [4, 3, 3, 3]
    assert torch.allclose(hourglass(x), expected(3, x), atol=1e-5)
