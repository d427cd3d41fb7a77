"""CPN (``train/models/cpn.py``) and MSPN (``train/models/mspn.py``): output shapes, parameter
counts derived by hand from the layer sizes (with torchvision's ResNet as the independent count
of the trunk), the wiring of GlobalNet and of MSPN's cross-stage aggregation recomputed from
captured intermediate tensors, coarse-to-fine sigmas against OpenCV, a seeded forward against
checked-in values, ImageNet trunk loading and a tiny overfit.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.train.loss import KeypointMSELoss
from animalpose.train.models.cpn import CPN, REFINE_BOTTLENECKS, RefineBottleneck
from animalpose.train.models.mspn import MSPN, cv2_kernel_sigma, stage_sigma_scales
from animalpose.train.models.pretrained import load_trunk_weights

#: Tiny CPU models (the smallest trunk; narrow pyramid).
TINY_CPN = dict(num_keypoints=3, depth=18, channels=16)
TINY_MSPN = dict(num_keypoints=3, num_stacks=2, depth=18, channels=16)
#: C2-C5 channels by ResNet family: basic blocks (18, 34) and bottlenecks (50, 101, 152).
LEVELS = {18: (64, 128, 256, 512), 50: (256, 512, 1024, 2048)}


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread while these tests run (restored after the module), as
    tests/train/models/test_hrnet.py: many small convs on 2 shared cores ran far slower with
    torch's thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# -- parameter counts by hand ------------------------------------------------------------------
def conv(cin: int, cout: int, k: int, *, bias: bool = False) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def conv_bn(cin: int, cout: int, k: int = 1) -> int:
    return conv(cin, cout, k) + 2 * cout  # BN weight and bias


def bottleneck(inplanes: int, planes: int, expansion: int) -> int:
    out = planes * expansion
    n = conv_bn(inplanes, planes) + conv_bn(planes, planes, 3) + conv_bn(planes, out)
    return n + (conv_bn(inplanes, out) if inplanes != out else 0)  # projection shortcut


def resnet_trunk_params(depth: int) -> int:
    """torchvision's ResNet without ``fc``: the independent count of the trunk."""
    with torch.device("meta"):
        tv = getattr(torchvision.models, f"resnet{depth}")()
    return sum(p.numel() for n, p in tv.named_parameters() if not n.startswith("fc."))


def cpn_params(depth: int, channels: int, keypoints: int) -> int:
    ch, half = channels, channels // 2
    n = resnet_trunk_params(depth)
    n += sum(conv_bn(c, ch) for c in LEVELS[depth])  # laterals
    n += 3 * conv(ch, ch, 1, bias=True)  # merges (tf-cpn: bias, no BN)
    n += 4 * (conv_bn(ch, ch) + conv(ch, keypoints, 3, bias=True))  # GlobalNet predictors
    n += (0 + 1 + 2 + 3) * bottleneck(ch, half, 2)  # RefineNet levels
    n += bottleneck(4 * ch, half, 2)  # after the concatenation (with a projection)
    return n + conv(ch, keypoints, 3, bias=True)


def mspn_params(stacks: int, depth: int, channels: int, keypoints: int) -> int:
    ch, levels = channels, LEVELS[depth]
    stem = conv_bn(3, 64, 7)
    trunk = resnet_trunk_params(depth)
    n = trunk + (stacks - 1) * (trunk - stem)  # later stages: the layers without the stem
    up = sum(conv_bn(c, ch) for c in levels) + 3 * conv_bn(ch, ch)
    head = conv_bn(ch, ch) + conv(ch, keypoints, 3, bias=True)
    cross = sum(conv_bn(c, c) + conv_bn(ch, c) for c in levels) + conv_bn(ch, 64)
    return n + stacks * (up + head) + (stacks - 1) * cross


def _count(cls, **kwargs) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in cls(**kwargs).parameters())


def test_cpn_parameter_counts_by_hand():
    assert _count(CPN, num_keypoints=17) == cpn_params(50, 256, 17) == 27_009_685
    assert _count(CPN, **TINY_CPN) == cpn_params(18, 16, 3)
    assert _count(CPN, num_keypoints=5, depth=101, channels=64) == (
        cpn_params(50, 64, 5) - resnet_trunk_params(50) + resnet_trunk_params(101)
    )


def test_mspn_parameter_counts_by_hand():
    assert _count(MSPN, num_keypoints=17, num_stacks=4, depth=50) == mspn_params(4, 50, 256, 17)
    assert mspn_params(4, 50, 256, 17) == 118_913_796
    assert _count(MSPN, **TINY_MSPN) == mspn_params(2, 18, 16, 3)
    assert _count(MSPN, num_keypoints=3, num_stacks=1, channels=8) == mspn_params(1, 18, 8, 3)


# -- shapes and features -----------------------------------------------------------------------
def test_cpn_outputs_five_quarter_size_heatmaps_and_the_refine_features():
    torch.manual_seed(0)
    model = CPN(**TINY_CPN).eval()
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 64, 96))
        again, features = model(torch.randn(2, 3, 64, 96), return_features=True)
    assert isinstance(outputs, list)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 16, 24)] * 5
    assert features.shape == (2, 16, 16, 24)
    assert torch.allclose(again[-1], model.refine_head(features))
    assert model.ohkm_stages == "last" and model.segmentation is False
    with pytest.raises(ValueError, match="CPN input sides must be multiples of 32"):
        model(torch.randn(1, 3, 64, 80))


@pytest.mark.parametrize("stacks", [1, 3])
def test_mspn_outputs_one_quarter_size_heatmap_per_stage(stacks):
    torch.manual_seed(0)
    model = MSPN(**{**TINY_MSPN, "num_stacks": stacks}).eval()
    with torch.no_grad():
        outputs, features = model(torch.randn(2, 3, 96, 64), return_features=True)
    assert [tuple(o.shape) for o in outputs] == [(2, 3, 24, 16)] * stacks
    assert features.shape == (2, 16, 24, 16)
    assert torch.allclose(outputs[-1], model.heads[-1][1](features))
    assert len(model.stage_sigma_scales) == len(outputs) == stacks
    assert model.ohkm_stages == "all" and model.segmentation is False
    with pytest.raises(ValueError, match="MSPN input sides must be multiples of 32"):
        model(torch.randn(1, 3, 48, 64))


def test_constructors_refuse_bad_sizes():
    with pytest.raises(ValueError, match="CPN: ResNet depth must be one of"):
        CPN(num_keypoints=3, depth=42)
    with pytest.raises(ValueError, match="channels even"):
        CPN(num_keypoints=3, depth=18, channels=15)
    with pytest.raises(ValueError, match="num_stacks must be >= 1"):
        MSPN(num_keypoints=3, num_stacks=0)
    with pytest.raises(ValueError, match="num_keypoints must be >= 1"):
        MSPN(num_keypoints=0)


# -- wiring ------------------------------------------------------------------------------------
def _capture(module: torch.nn.Module, store: dict, key: str, *, inputs: bool = False) -> None:
    """Record a clone of ``module``'s output (or first input) under ``key``."""
    if inputs:
        module.register_forward_pre_hook(lambda m, args: store.__setitem__(key, args[0].clone()))
    else:
        module.register_forward_hook(lambda m, args, out: store.__setitem__(key, out.clone()))


def test_cpn_globalnet_and_refinenet_recomputed_from_the_trunk_levels():
    torch.manual_seed(1)
    model = CPN(**TINY_CPN).eval()
    seen: dict[str, torch.Tensor] = {}
    for i in range(4):
        _capture(getattr(model, f"layer{i + 1}"), seen, f"C{i + 2}")
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outputs = model(x)
        c = [seen[f"C{i}"] for i in (2, 3, 4, 5)]
        assert [t.shape[-1] for t in c] == [16, 8, 4, 2]  # strides 4, 8, 16, 32

        def up(t, like):
            return F.interpolate(t, size=like.shape[-2:], mode="bilinear", align_corners=False)

        p5 = model.laterals[3](c[3])
        p4 = model.laterals[2](c[2]) + model.merges[2](up(p5, c[2]))
        p3 = model.laterals[1](c[1]) + model.merges[1](up(p4, c[1]))
        p2 = model.laterals[0](c[0]) + model.merges[0](up(p3, c[0]))
        pyramid = [p2, p3, p4, p5]
        for i, p in enumerate(pyramid):
            assert torch.allclose(outputs[i], up(model.global_heads[i](p), c[0]), atol=1e-6)
        refined = [up(model.refine_levels[i](p), c[0]) for i, p in enumerate(pyramid)]
        final = model.refine_head(model.refine_bottleneck(torch.cat(refined, 1)))
    assert torch.allclose(outputs[4], final, atol=1e-6)
    # C5 went through the most bottlenecks (tf-cpn: level i gets i), C2 through none.
    assert [len(s) for s in model.refine_levels] == list(REFINE_BOTTLENECKS) == [0, 1, 2, 3]
    assert all(isinstance(b, RefineBottleneck) for s in model.refine_levels for b in s)
    assert model.refine_levels[3][0].conv1.out_channels == 8  # inner width = half of 16


def test_mspn_cross_stage_aggregation_adds_both_skips_to_every_down_level():
    """Stage 2's down level i (its ``layer{i+1}`` output) + down_skip(stage 1 down level i)
    + up_skip(stage 1 up level i) is what stage 2 carries on with: the next layer's input, and
    for the coarsest level the input of stage 2's lateral conv."""
    torch.manual_seed(2)
    model = MSPN(**TINY_MSPN).eval()
    seen: dict[str, torch.Tensor] = {}
    for i in range(4):
        _capture(getattr(model, f"layer{i + 1}"), seen, f"down1.{i}")
        _capture(getattr(model.down[0], f"layer{i + 1}"), seen, f"layer2.{i}")
        _capture(model.up[0].laterals[i], seen, f"up1_in.{i}", inputs=True)
        _capture(model.up[1].laterals[i], seen, f"down2.{i}", inputs=True)
    up1: list[torch.Tensor] = []
    model.up[0].register_forward_hook(lambda m, args, out: up1.extend(t.clone() for t in out))
    _capture(model.down[0].layer1, seen, "stage2_input", inputs=True)
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 64))
        cross = model.cross[0]
        for i in range(4):
            assert torch.equal(seen[f"up1_in.{i}"], seen[f"down1.{i}"])  # stage 1: no skips
            expected = (
                seen[f"layer2.{i}"] + cross.down_skips[i](seen[f"down1.{i}"])
            ) + cross.up_skips[i](up1[i])
            assert torch.allclose(seen[f"down2.{i}"], expected, atol=1e-6)
            assert cross.down_skips[i](seen[f"down1.{i}"]).abs().sum() > 0  # not vacuous
        assert torch.allclose(seen["stage2_input"], cross.stem(up1[0]), atol=1e-6)


def test_mspn_zeroing_the_aggregation_convs_changes_stage_2_only():
    torch.manual_seed(3)
    model = MSPN(**TINY_MSPN).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        for skip in (*model.cross[0].down_skips, *model.cross[0].up_skips):
            skip[0].weight.zero_()  # conv -> 0; eval BN (mean 0, bias 0) and ReLU keep 0
        after = model(x)
    assert torch.equal(before[0], after[0])
    change = (before[1] - after[1]).abs().max()
    assert change > 1e-3 * before[1].abs().max()


# -- coarse-to-fine supervision ----------------------------------------------------------------
def test_stage_sigma_scales_are_opencv_kernel_sigmas_relative_to_the_last():
    for ksize, sigma in ((15, 2.6), (11, 2.0)):
        assert cv2_kernel_sigma(ksize) == pytest.approx(sigma)
        # OpenCV derives exactly this sigma when given 0.
        derived = cv2.getGaussianKernel(ksize, 0, ktype=cv2.CV_64F)
        explicit = cv2.getGaussianKernel(ksize, sigma, ktype=cv2.CV_64F)
        assert np.allclose(derived, explicit, atol=1e-12)
        assert not np.allclose(derived, cv2.getGaussianKernel(ksize, sigma + 0.1), atol=1e-4)
    for ksize in (3, 5, 7, 9):
        # Small sizes: OpenCV's fixed tables (not its sigma rule), measured by their spread.
        weights = cv2.getGaussianKernel(ksize, 0, ktype=cv2.CV_64F)[:, 0]
        x = np.arange(ksize) - (ksize - 1) / 2
        rule = cv2.getGaussianKernel(ksize, 0.3 * ((ksize - 1) / 2 - 1) + 0.8, ktype=cv2.CV_64F)
        assert not np.allclose(weights, rule[:, 0], atol=1e-4)
        assert cv2_kernel_sigma(ksize) == pytest.approx(np.sqrt((weights * x**2).sum()))
    assert cv2_kernel_sigma(7) == pytest.approx(1.3693, abs=1e-4)
    # The 9- and 7-tap tables' standard deviations.
    nine, last = np.sqrt(2.75), np.sqrt(60 / 32)
    assert stage_sigma_scales(4) == pytest.approx((2.6 / last, 2.0 / last, nine / last, 1.0))
    assert stage_sigma_scales(2) == pytest.approx((nine / last, 1.0))
    assert stage_sigma_scales(1) == (1.0,)
    assert stage_sigma_scales(6) == pytest.approx(
        (2.6 / last,) * 3 + (2.0 / last, nine / last, 1.0)
    )
    with torch.device("meta"):
        assert MSPN(num_keypoints=3, num_stacks=3).stage_sigma_scales == stage_sigma_scales(3)


# -- seeded forward ----------------------------------------------------------------------------
#: mean |output| per output (and of the features) of the tiny models built after
#: torch.manual_seed(0) on the torch.manual_seed(0) input (1, 3, 64, 64), eval mode; recorded
#: with torch 2.14 on CPU.
CPN_REFERENCE = (0.00155533, 0.000881948, 0.000417569, 8.3538e-05, 0.000583893, 0.0679058)
MSPN_REFERENCE = (0.00158992, 0.000653839, 0.0394427)


def _seeded(cls, kwargs) -> tuple[float, ...]:
    torch.manual_seed(0)
    model = cls(**kwargs).eval()
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        outputs, features = model(x, return_features=True)
    return tuple(t.abs().mean().item() for t in (*outputs, features))


@pytest.mark.parametrize(
    ("cls", "kwargs", "reference"),
    [(CPN, TINY_CPN, CPN_REFERENCE), (MSPN, TINY_MSPN, MSPN_REFERENCE)],
)
def test_seeded_forward_is_stable(cls, kwargs, reference):
    assert _seeded(cls, kwargs) == pytest.approx(reference, rel=1e-4)


# -- ImageNet trunk ----------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [CPN, MSPN])
def test_torchvision_resnet_fills_the_trunk(tmp_path, cls):
    torch.manual_seed(4)
    state = torchvision.models.resnet18().state_dict()
    torch.save(state, tmp_path / "resnet18.pth")
    model = cls(num_keypoints=3, depth=18, channels=16)
    report = load_trunk_weights(model, tmp_path / "resnet18.pth")
    assert report.missing == () and report.mismatched == ()
    assert report.ignored == ("fc.weight", "fc.bias")
    assert torch.equal(model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


# -- tiny overfit ------------------------------------------------------------------------------
def _overfit(model: torch.nn.Module, *, steps: int) -> tuple[float, float, float]:
    """Fit 2 fixed random 64 x 64 crops with 3 keypoints each; returns (first loss, last loss,
    mean decoded error in input pixels on the fitted crops)."""
    torch.manual_seed(5)
    images = torch.randn(2, 3, 64, 64)
    keypoints = torch.tensor(
        [[[12.0, 20.0], [40.0, 44.0], [52.0, 10.0]], [[30.0, 30.0], [8.0, 50.0], [56.0, 36.0]]]
    )
    visible = torch.ones(2, 3)
    codec = MSRAHeatmap((64, 64), (16, 16), sigma=1.0)
    scales = getattr(model, "stage_sigma_scales", None)
    targets = (
        [codec.with_sigma(s).encode(keypoints, visible)[0] for s in scales] if scales else None
    )
    heatmaps, weights = codec.encode(keypoints, visible)
    loss_fn = KeypointMSELoss()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    model.train()
    losses = []
    for _ in range(steps):
        outputs = model(images)
        if targets is None:
            loss = loss_fn(outputs, heatmaps, weights)
        else:
            loss = sum(loss_fn([o], t, weights) for o, t in zip(outputs, targets))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    with torch.no_grad():  # train-mode BN: the statistics of the same fixed batch
        decoded, _ = codec.decode(model(images)[-1])
    return losses[0], losses[-1], (decoded - keypoints).norm(dim=-1).mean().item()


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "kwargs"), [(CPN, TINY_CPN), (MSPN, TINY_MSPN)])
def test_tiny_overfit(cls, kwargs):
    torch.manual_seed(6)
    first, last, error = _overfit(cls(**kwargs), steps=30)
    assert last < 0.5 * first
    assert error < 4.0  # within one heatmap pixel
