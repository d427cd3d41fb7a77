"""Registry-driven tests (timm style): every entry of MODELS gets the same checks."""

from __future__ import annotations

from itertools import chain

import pytest
import torch

from animalpose.datasets.fileio import DataError
from animalpose.datasets.parts import NUM_CLASSES
from animalpose.train import models
from animalpose.train.config import Config, ConfigError
from animalpose.train.config_io import apply_overrides
from animalpose.train.models import (
    MODEL_OPTIONS,
    MODELS,
    build_model,
    describe_model,
    model_kwargs,
    weight_bytes,
)

#: Tiny CPU configurations (constructor arguments); 64 px input is the smallest the hourglass
#: accepts, and a multiple of SimpleBaseline's and HRNet's 32.
TINY_HG = dict(num_stacks=2, num_blocks=1, num_keypoints=3, channels=16)
TINY = {
    "hg": TINY_HG,
    "hg_multitask": TINY_HG,
    "simple_baseline": dict(depth=18, num_keypoints=3, base_channels=8, deconv_channels=16),
    "hrnet": dict(width=4, num_keypoints=3, stem_channels=8),
    "cpn": dict(depth=18, num_keypoints=3, channels=16),
    "mspn": dict(num_stacks=2, depth=18, num_keypoints=3, channels=16),
    "rsn": dict(num_stacks=1, depth=18, num_keypoints=3, width=8, channels=16),
    "lpn": dict(depth=50, num_keypoints=3, width=8),
    "associative": dict(width=4, num_keypoints=3, stem_channels=8),
    "higher_hrnet": dict(width=4, num_keypoints=3, stem_channels=8),
}
#: build_model's options for a small model of each architecture (MODEL_OPTIONS only).
TINY_OPTIONS = {
    "hg": TINY_HG,
    "hg_multitask": TINY_HG,
    "simple_baseline": dict(depth=18, num_keypoints=3),
    "hrnet": dict(width=4, num_keypoints=3),
    "cpn": dict(depth=18, num_keypoints=3, channels=16),
    "mspn": dict(num_stacks=2, depth=18, num_keypoints=3, channels=16),
    "rsn": dict(num_stacks=1, depth=18, num_keypoints=3, channels=16),
    "lpn": dict(depth=50, num_keypoints=3),
    "associative": dict(width=4, num_keypoints=3),
    "higher_hrnet": dict(width=4, num_keypoints=3),
}
#: Outputs of a TINY model where it is not one per stack (``num_stacks``) or one: CPN's four
#: GlobalNet levels and its RefineNet; RSN's stage and its pose refine machine.
#: HigherHRNet: the stride-4 heatmaps and tags, then stride-2 heatmaps.
OUTPUTS = {"cpn": 5, "rsn": 2, "higher_hrnet": 2}


#: Output channels per keypoint where it is not one heatmap: Associative Embedding's K heatmaps
#: then K tags.
CHANNELS_PER_KEYPOINT = {"associative": 2, "higher_hrnet": 2}
#: Outputs whose shape differs from the first one's: HigherHRNet's second output (K heatmaps at
#: stride 2), as (output index, channels per keypoint, stride).
OTHER_OUTPUTS = {"higher_hrnet": {1: (1, 2)}}


def output_shapes(arch: str, batch: int, height: int, width: int) -> list[tuple[int, ...]]:
    """The (B, C, h, w) of each output of ``TINY[arch]`` for a (B, 3, height, width) input."""
    shapes = []
    for i in range(num_outputs(arch)):
        per, stride = OTHER_OUTPUTS.get(arch, {}).get(
            i, (CHANNELS_PER_KEYPOINT.get(arch, 1), HEATMAP_STRIDE)
        )
        shapes.append((batch, TINY[arch]["num_keypoints"] * per, height // stride, width // stride))
    return shapes


def num_outputs(arch: str) -> int:
    return OUTPUTS.get(arch, TINY[arch].get("num_stacks", 1))


INPUT = (2, 3, 64, 64)  # batch 2: train-mode BN needs > 1 value at the 1 x 1 bottom
#: Every registered model predicts heatmaps at a quarter of the input side (inp_res / out_res).
HEATMAP_STRIDE = 4


def test_every_arch_name_is_a_valid_arch_flag_value():
    """The registry is what ``-a/--arch`` accepts: the default and every key validate."""
    assert Config().model.arch in MODELS
    for arch in MODELS:
        assert apply_overrides(Config(), [f"model.arch={arch}"]).model.arch == arch
    with pytest.raises(ConfigError, match="model.arch"):
        apply_overrides(Config(), ["model.arch=resnet"])


def test_registry_and_options_agree():
    assert set(MODEL_OPTIONS) == set(MODELS)
    assert set(TINY) == set(MODELS) == set(TINY_OPTIONS)


def test_unknown_arch_lists_valid_names():
    with pytest.raises(KeyError, match="'hg'") as info:
        build_model("resnet", **TINY_HG)
    assert "resnet" in str(info.value)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_every_model_builds_runs_forward_and_backward(arch):
    """timm style: every MODELS entry takes build_model's arguments, returns one (B, K, h, w)
    heatmap tensor per stack at 1 / HEATMAP_STRIDE of the input, and every parameter gets a
    finite gradient."""
    torch.manual_seed(0)
    model = MODELS[arch](**TINY[arch]).train()
    batch, _, height, width = INPUT
    x = torch.randn(*INPUT)
    outputs = model(x)
    stages = num_outputs(arch)
    assert isinstance(outputs, list) and len(outputs) == stages
    assert [tuple(o.shape) for o in outputs] == output_shapes(arch, batch, height, width)
    loss = sum(o.square().mean() for o in outputs)
    if model.segmentation:  # the part head runs only when asked for
        _, seg = model(x, with_segmentation=True)
        assert [tuple(s.shape) for s in seg] == [(batch, NUM_CLASSES, height, width)] * len(seg)
        loss = loss + sum(s.square().mean() for s in seg)
    loss.backward()
    # Reference modules that forward never runs (hg_multitask's score_seg_) get no gradient.
    unused = getattr(model, "unused_modules", ())
    named = [(n, p) for n, p in model.named_parameters() if not n.startswith(unused)]
    no_grad = [n for n, p in model.named_parameters() if p.grad is None]
    assert no_grad == [n for n, _ in model.named_parameters() if n.startswith(unused)]
    bad = [n for n, p in named if not torch.isfinite(p.grad).all()]
    assert bad == []
    # Conv biases before a train-mode BN get ~0 gradients; the weights as a whole must not.
    assert sum(p.grad.abs().sum() for _, p in named) > 0


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_channels_last_matches_contiguous(arch):
    torch.manual_seed(1)
    model = MODELS[arch](**TINY[arch]).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        reference = model(x)
        model = model.to(memory_format=torch.channels_last)
        outputs = model(x.contiguous(memory_format=torch.channels_last))
    for out, ref in zip(outputs, reference):
        assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_bf16_autocast_channels_last_forward(arch):
    torch.manual_seed(2)
    model = MODELS[arch](**TINY[arch]).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outputs = model(x)
    assert len(outputs) == num_outputs(arch)
    for out, ref in zip(outputs, reference):
        assert out.dtype == torch.bfloat16
        assert out.shape == ref.shape
        assert torch.isfinite(out).all()
        # bf16 keeps ~3 significant digits; errors stay a small fraction of the output range.
        assert (out.float() - ref).abs().max() <= 0.05 * ref.abs().max()


def test_absurd_sizes_are_refused_before_allocating():
    """A config (or a checkpoint's saved config) asking for 1,000,000 channels tried to
    allocate 500 GB for one layer; the weights are counted on the meta device first."""
    kw = dict(num_stacks=1, num_blocks=1, num_keypoints=18, channels=1_000_000)
    with pytest.raises(DataError, match=r"1000000 channels .* GB for its weights alone, more"):
        build_model("hg", **kw)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_the_size_bound_is_the_memory_available(arch, monkeypatch):
    options = TINY_OPTIONS[arch]
    model = build_model(arch, **options)
    assert isinstance(model, MODELS[arch])
    tensors = chain(model.parameters(), model.buffers())
    needed = sum(t.numel() * t.element_size() for t in tensors)
    assert weight_bytes(MODELS[arch], **options) == needed
    monkeypatch.setattr(models, "available_memory", lambda: needed)
    build_model(arch, **options)
    monkeypatch.setattr(models, "available_memory", lambda: needed - 1)
    with pytest.raises(DataError, match="memory available"):
        build_model(arch, **options)


def test_each_arch_takes_only_its_options():
    """build.py passes every model option of the config; each class gets its own only."""
    every = dict(num_stacks=1, num_blocks=1, channels=16, depth=18, width=4)
    assert build_model("hg", num_keypoints=3, **every).num_stacks == 1
    assert build_model("simple_baseline", num_keypoints=3, **every).depth == 18
    assert build_model("hrnet", num_keypoints=3, **every).width == 4
    assert model_kwargs("hrnet", num_keypoints=3, **every) == dict(num_keypoints=3, width=4)
    assert model_kwargs("hrnet", num_keypoints=3, width=None) == dict(num_keypoints=3)
    with pytest.raises(TypeError, match="unknown model options"):
        model_kwargs("hg", num_keypoints=3, stacks=2)


def test_describe_model_names_only_the_sizes_the_architecture_takes():
    sizes = dict(num_stacks=1, num_blocks=1, channels=64, depth=18, width=32)
    assert describe_model("hg", **sizes) == "hg (1 stacks, 1 blocks, 64 channels)"
    assert describe_model("simple_baseline", **sizes) == "simple_baseline (ResNet depth 18)"
    assert describe_model("mspn", **sizes) == "mspn (1 stacks, ResNet depth 18, 64 channels)"
    assert describe_model("hrnet", **sizes) == "hrnet (width 32)"
    assert describe_model("lpn", depth=None) == "lpn"  # None: the class default, not named
    with pytest.raises(KeyError, match="unknown model arch"):
        describe_model("resnet", **sizes)
