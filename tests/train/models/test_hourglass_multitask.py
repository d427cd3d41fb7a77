"""HourglassMultitask against the reference's ``HourglassNet_Multitask``: key and parameter order,
parameter count, output shapes, and a default forward identical to ``HourglassNet``'s.

The expected keys are ``HourglassNet``'s (checked against the reference's rules in
test_hourglass.py) with the segmentation convs inserted where the reference's ModuleList
assignment order puts them: ``score_seg.*`` after ``score.*``, ``score_seg_.*`` after
``score_.*`` (its ``upsample`` list has no parameters).
"""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from animalpose.datasets.parts import NUM_CLASSES
from animalpose.train.models import MODELS, build_model
from animalpose.train.models.hourglass import HourglassNet
from animalpose.train.models.hourglass_multitask import UNUSED_MODULES, HourglassMultitask

CONV_KEYS = ("weight", "bias")
#: Reference ``HourglassNet`` (4 stacks, 1 block, 18 keypoints): parameters, state_dict entries.
HG_PARAMS = 13_022_408
HG_ENTRIES = 1_298
#: + 4 x score_seg (256 x 10 + 10) + 3 x score_seg_ (10 x 256 + 256) = 13,041,136;
#: + 4 x 2 + 3 x 2 conv entries = 1,312.
REFERENCE_PARAMS = HG_PARAMS + 4 * (256 * 10 + 10) + 3 * (10 * 256 + 256)
REFERENCE_ENTRIES = HG_ENTRIES + 4 * 2 + 3 * 2
TINY = dict(num_stacks=2, num_blocks=1, num_keypoints=3, channels=16)


def multitask_keys(hg_keys: list[str], *, stacks: int) -> list[str]:
    """Insert the segmentation convs into ``HourglassNet``'s key list in the reference order."""
    seg = [f"score_seg.{s}.{p}" for s in range(stacks) for p in CONV_KEYS]
    seg_ = [f"score_seg_.{s}.{p}" for s in range(stacks - 1) for p in CONV_KEYS]
    last_score = max(i for i, k in enumerate(hg_keys) if k.startswith("score."))
    # score_ is HourglassNet's last ModuleList (fc_ when there is one stack only and both are
    # empty), so score_seg_ goes at the very end.
    return hg_keys[: last_score + 1] + seg + hg_keys[last_score + 1 :] + seg_


def hg_of(**kwargs) -> list[str]:
    """``HourglassNet``'s keys (built on the meta device: shapes only)."""
    with torch.device("meta"):
        return list(HourglassNet(**kwargs).state_dict())


def test_two_stack_tail_written_out():
    """The tail of a 2-stack model's key list, written out by hand from the reference order."""
    model = HourglassMultitask(**TINY)
    keys = list(model.state_dict())
    assert keys[-15:] == [
        "fc.1.1.num_batches_tracked",
        "score.0.weight",
        "score.0.bias",
        "score.1.weight",
        "score.1.bias",
        "score_seg.0.weight",
        "score_seg.0.bias",
        "score_seg.1.weight",
        "score_seg.1.bias",
        "fc_.0.weight",
        "fc_.0.bias",
        "score_.0.weight",
        "score_.0.bias",
        "score_seg_.0.weight",
        "score_seg_.0.bias",
    ]
    assert keys[0] == "conv1.weight" and keys[2].startswith("bn1.")


@pytest.mark.parametrize(("stacks", "blocks"), [(1, 1), (2, 2), (3, 1)])
def test_keys_and_parameter_order_are_the_references(stacks, blocks):
    kw = dict(num_stacks=stacks, num_blocks=blocks, num_keypoints=5, channels=16)
    expected = multitask_keys(hg_of(**kw), stacks=stacks)
    model = HourglassMultitask(**kw)
    assert list(model.state_dict()) == expected
    # parameters() (the RMSprop state index) follows the same order, buffers left out.
    buffers = {name for name, _ in model.named_buffers()}
    assert [n for n, _ in model.named_parameters()] == [k for k in expected if k not in buffers]


def test_default_size_matches_the_reference_counts():
    with torch.device("meta"):
        model = HourglassMultitask()
    assert len(model.state_dict()) == REFERENCE_ENTRIES == 1_312
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_PARAMS == 13_041_136
    assert list(model.state_dict()) == multitask_keys(hg_of(), stacks=4)


@pytest.mark.parametrize(
    ("stacks", "keypoints", "channels", "classes"), [(1, 5, 16, 10), (3, 2, 8, 4)]
)
def test_parameter_count_is_hourglass_plus_seg_convs(stacks, keypoints, channels, classes):
    kw = dict(num_stacks=stacks, num_keypoints=keypoints, channels=channels)
    hg = sum(p.numel() for p in HourglassNet(**kw).parameters())
    model = HourglassMultitask(**kw, num_classes=classes)
    seg = stacks * (channels * classes + classes) + (stacks - 1) * (classes * channels + channels)
    assert sum(p.numel() for p in model.parameters()) == hg + seg


def test_strict_load_of_a_state_dict_in_reference_order():
    torch.manual_seed(0)
    model = HourglassMultitask(**TINY)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    expected = multitask_keys(hg_of(**TINY), stacks=2)
    state = OrderedDict(
        (k, torch.randn(shapes[k]) if shapes[k] else torch.tensor(7)) for k in expected
    )
    model.load_state_dict(state, strict=True)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key].to(value.dtype)), key
    # A keypoint-only checkpoint lacks the segmentation convs: strict loading refuses it.
    with pytest.raises(RuntimeError, match="score_seg"):
        model.load_state_dict(HourglassNet(**TINY).state_dict(), strict=True)


def test_output_shapes_heatmaps_quarter_size_seg_full_size():
    torch.manual_seed(0)
    model = HourglassMultitask(**TINY).eval()
    with torch.no_grad():
        heatmaps, seg = model(torch.randn(2, 3, 64, 128), with_segmentation=True)
    assert [tuple(h.shape) for h in heatmaps] == [(2, 3, 16, 32)] * 2
    assert [tuple(s.shape) for s in seg] == [(2, NUM_CLASSES, 64, 128)] * 2
    assert all(torch.isfinite(s).all() for s in seg)


def test_default_forward_equals_hourglassnet_with_shared_weights():
    torch.manual_seed(1)
    model = HourglassMultitask(**TINY).eval()
    hg = HourglassNet(**TINY).eval()
    hg_state = {k: v for k, v in model.state_dict().items() if not k.startswith("score_seg")}
    hg.load_state_dict(hg_state, strict=True)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected, features = hg(x, return_features=True)
        plain = model(x)
        with_seg, _ = model(x, with_segmentation=True)
        feat_out, feat = model(x, return_features=True)
        all_out, _, all_feat = model(x, with_segmentation=True, return_features=True)
    assert isinstance(plain, list) and len(plain) == 2
    for outs in (plain, with_seg, feat_out, all_out):
        for out, ref in zip(outs, expected, strict=True):
            assert torch.equal(out, ref)
    assert torch.equal(feat, features) and torch.equal(all_feat, features)


def test_seg_logits_are_the_upsampled_score_seg_of_the_fc_output():
    torch.manual_seed(2)
    model = HourglassMultitask(num_stacks=1, num_keypoints=3, channels=16).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        _, seg, features = model(x, with_segmentation=True, return_features=True)
        low = model.score_seg[0](features)  # (1, 10, 16, 16)
    assert torch.allclose(
        seg[0], F.interpolate(low, size=(64, 64), mode="bilinear", align_corners=True)
    )
    # align_corners=True: the corner pixels are the low-resolution corners exactly.
    for i, j in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
        assert torch.allclose(seg[0][..., i, j], low[..., i, j], atol=1e-6)
    # Bilinear along a row: the midpoint between low columns 0 and 1 (63 / 15 / 2 px) is
    # not a grid point at 64 px, but pixel 0 -> 0, 63 -> 15: pixel 21 maps to 5.0 exactly.
    assert torch.allclose(seg[0][..., 0, 21], low[..., 0, 5], atol=1e-6)


def test_seg_logits_are_not_fed_back_and_score_seg_underscore_is_unused():
    torch.manual_seed(3)
    model = HourglassMultitask(**TINY).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        heat0, seg0 = model(x, with_segmentation=True)
        model.score_seg[0].bias.add_(1.0)
        model.score_seg_[0].weight.add_(1.0)
        heat1, seg1 = model(x, with_segmentation=True)
    for a, b in zip(heat0, heat1):
        assert torch.equal(a, b)  # neither conv reaches the next stack's input
    assert torch.allclose(seg1[0], seg0[0] + 1.0, atol=1e-5)
    assert torch.equal(seg1[1], seg0[1])


def test_every_used_parameter_gets_a_gradient_and_score_seg_underscore_none():
    torch.manual_seed(4)
    model = HourglassMultitask(**TINY).train()
    heatmaps, seg = model(torch.randn(2, 3, 64, 64), with_segmentation=True)
    (sum(h.square().mean() for h in heatmaps) + sum(s.square().mean() for s in seg)).backward()
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == ["score_seg_.0.weight", "score_seg_.0.bias"]
    assert all(n.startswith(UNUSED_MODULES) for n in no_grad)
    assert all(head.weight.grad.abs().sum() > 0 for head in model.score_seg)


def test_registry_and_segmentation_flag():
    assert MODELS["hg_multitask"] is HourglassMultitask
    model = build_model("hg_multitask", **TINY)
    assert isinstance(model, HourglassMultitask) and model.num_classes == NUM_CLASSES
    assert HourglassMultitask.segmentation is True and HourglassNet.segmentation is False
    assert MODELS["hg"].segmentation is False


def test_rejects_bad_input_and_classes():
    with pytest.raises(ValueError, match="num_classes"):
        HourglassMultitask(**TINY, num_classes=0)
    model = HourglassMultitask(**TINY)
    with pytest.raises(ValueError, match="multiples of 64"):
        model(torch.randn(1, 3, 96, 64), with_segmentation=True)


def test_bf16_autocast_channels_last_segmentation():
    torch.manual_seed(5)
    model = HourglassMultitask(**TINY).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        _, reference = model(x, with_segmentation=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, seg = model(x, with_segmentation=True)
    for out, ref in zip(seg, reference, strict=True):
        assert out.shape == ref.shape == (1, NUM_CLASSES, 64, 64)
        assert torch.isfinite(out).all()
        # bf16 keeps ~3 significant digits; errors stay a small fraction of the output range.
        assert (out.float() - ref).abs().max() <= 0.05 * ref.abs().max()
