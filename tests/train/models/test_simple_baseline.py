"""SimpleBaseline against microsoft/human-pose-estimation.pytorch ``lib/models/pose_resnet.py``:
its state_dict keys (so ``pose_resnet_*_256x192.pth.tar`` loads strictly), the paper's parameter
counts, output shapes, and ImageNet trunk loading.

The expected keys are derived here from the reference's definitions (``PoseResNet.__init__``,
``_make_layer``, ``_make_deconv_layer``; the 256x192 configs: three 4x4 deconvolutions of 256
filters without bias, ``FINAL_CONV_KERNEL: 1``), not by instantiating our model; torchvision's
ResNet is a second, independent source for the trunk names.
"""

from __future__ import annotations

import pytest
import torch
import torchvision

from animalpose.datasets.fileio import DataError
from animalpose.train.checkpoint import load_model_weights
from animalpose.train.models import build_model
from animalpose.train.models.hourglass import HourglassNet
from animalpose.train.models.pretrained import load_trunk_weights
from animalpose.train.models.simple_baseline import SimpleBaseline

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
#: The reference's ``resnet_spec`` for the Bottleneck depths.
BLOCKS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}
#: State_dict entries by hand: conv1 (1) + bn1 (5) + 18 per bottleneck (3 convs, 3 BNs)
#: + 6 per downsample (one per stage) + deconvs 3 x (1 + 5) + final conv weight and bias (2).
#: R50: 6 + 16 x 18 + 4 x 6 + 18 + 2 = 338; R101: 33 blocks -> 644; R152: 50 blocks -> 950.
ENTRIES = {50: 338, 101: 644, 152: 950}
#: The paper's Table 1 / model zoo: ResNet-50, -101, -152 at 256x192 (M parameters).
PAPER_PARAMS_M = {50: 34.0, 101: 53.0, 152: 68.6}
#: torchvision's resnet50 has 25,557,032 parameters (its documentation), 2,049,000 of them in
#: ``fc`` (2048 x 1000 + 1000).
RESNET50_TRUNK_PARAMS = 25_557_032 - 2_049_000
#: Tiny CPU model (the published key layout needs depth >= 50; depth 18 keeps forwards cheap).
TINY = dict(depth=18, num_keypoints=17, base_channels=8, deconv_channels=16)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread while these tests run (restored after the module), as
    tests/adapt/conftest.py: HRNet's and ResNet's many small convs on 2 shared cores ran 10-100x
    slower with torch's thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def reference_keys(depth: int, *, counters: bool = True) -> list[str]:
    """``PoseResNet``'s state_dict keys in its creation order (Bottleneck depths)."""
    bn = BN_KEYS if counters else BN_KEYS[:-1]
    keys = ["conv1.weight", *(f"bn1.{p}" for p in bn)]
    for stage, count in enumerate(BLOCKS[depth], start=1):
        for b in range(count):
            prefix = f"layer{stage}.{b}"
            for i in (1, 2, 3):
                keys += [f"{prefix}.conv{i}.weight", *(f"{prefix}.bn{i}.{p}" for p in bn)]
            if b == 0:  # stride 2 or 64 -> 256 channels: every stage's first block
                keys += [f"{prefix}.downsample.0.weight"]
                keys += [f"{prefix}.downsample.1.{p}" for p in bn]
    for i in range(3):  # Sequential(ConvTranspose2d, BatchNorm2d, ReLU) x 3
        keys += [f"deconv_layers.{3 * i}.weight"]  # DECONV_WITH_BIAS: false
        keys += [f"deconv_layers.{3 * i + 1}.{p}" for p in bn]
    return keys + ["final_layer.weight", "final_layer.bias"]


def _meta(**kwargs) -> SimpleBaseline:
    with torch.device("meta"):
        return SimpleBaseline(**kwargs)


@pytest.mark.parametrize("depth", sorted(BLOCKS))
def test_keys_equal_the_published_checkpoints(depth):
    keys = list(_meta(depth=depth).state_dict())
    assert len(reference_keys(depth)) == ENTRIES[depth]
    assert keys == reference_keys(depth)


@pytest.mark.parametrize("depth", sorted(BLOCKS))
def test_trunk_is_torchvision_resnet_key_for_key(depth):
    with torch.device("meta"):
        tv = getattr(torchvision.models, f"resnet{depth}")().state_dict()
    ours = _meta(depth=depth).state_dict()
    trunk = {k: v.shape for k, v in tv.items() if not k.startswith("fc.")}
    assert {k: v.shape for k, v in ours.items() if k in trunk} == trunk
    assert [k for k in ours if k in trunk] == list(trunk)  # same order


def test_head_shapes_of_the_256x192_config():
    state = _meta().state_dict()
    assert state["deconv_layers.0.weight"].shape == (2048, 256, 4, 4)  # (in, out, k, k)
    assert state["deconv_layers.3.weight"].shape == (256, 256, 4, 4)
    assert state["deconv_layers.7.running_var"].shape == (256,)
    assert state["final_layer.weight"].shape == (17, 256, 1, 1)
    assert state["final_layer.bias"].shape == (17,)
    assert "deconv_layers.0.bias" not in state and "fc.weight" not in state


@pytest.mark.parametrize("depth", sorted(BLOCKS))
def test_parameter_counts_are_the_papers(depth):
    n = sum(p.numel() for p in _meta(depth=depth).parameters())
    assert round(n / 1e6, 1) == PAPER_PARAMS_M[depth]


def test_resnet50_parameter_count_by_hand():
    deconvs = 2048 * 256 * 16 + 2 * 256 * 256 * 16 + 3 * 2 * 256  # kernels + BN affine
    final = 256 * 17 + 17
    expected = RESNET50_TRUNK_PARAMS + deconvs + final
    assert expected == 33_999_697
    assert sum(p.numel() for p in _meta(depth=50).parameters()) == expected


def test_non_square_input_gives_quarter_size_heatmaps():
    torch.manual_seed(0)
    model = SimpleBaseline(**TINY).eval()
    with torch.no_grad():
        outputs = model(torch.randn(2, 3, 256, 192))
        heatmaps, features = model(torch.randn(2, 3, 256, 192), return_features=True)
    assert isinstance(outputs, list) and [o.shape for o in outputs] == [(2, 17, 64, 48)]
    assert features.shape == (2, 16, 64, 48)
    assert torch.allclose(heatmaps[0], model.final_layer(features))
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 256, 200))


def test_head_initialisation_is_the_references():
    torch.manual_seed(0)
    model = SimpleBaseline(depth=18, deconv_channels=64)
    assert model.final_layer.weight.std().item() == pytest.approx(0.001, rel=0.1)
    assert model.deconv_layers[3].weight.std().item() == pytest.approx(0.001, rel=0.05)
    assert model.final_layer.bias.abs().max() == 0
    assert torch.equal(model.deconv_layers[1].weight, torch.ones(64))


def test_constructor_refuses_unknown_depths():
    with pytest.raises(ValueError, match="depth must be one of"):
        SimpleBaseline(depth=42)


def test_build_model_takes_depth_and_ignores_hourglass_options():
    model = build_model(
        "simple_baseline", num_keypoints=5, num_stacks=4, num_blocks=1, channels=256, depth=18
    )
    assert isinstance(model, SimpleBaseline) and model.depth == 18
    assert model.final_layer.out_channels == 5


def _fabricated(model: SimpleBaseline, keys: list[str]) -> dict[str, torch.Tensor]:
    """A checkpoint's tensors for ``keys`` with ``model``'s shapes, distinct random values."""
    shapes = model.state_dict()
    torch.manual_seed(3)
    return {
        k: torch.randint(0, 9, ())
        if k.endswith("num_batches_tracked")
        else torch.randn(shapes[k].shape)
        for k in keys
    }


@pytest.mark.parametrize("layout", ["bare", "dataparallel"])
def test_published_layout_loads_strictly(tmp_path, layout):
    """``final_state.pth.tar`` / the model zoo file: a bare state_dict (``model.module
    .state_dict()``); ``checkpoint.pth.tar`` / ``model_best.pth.tar``: ``module.`` keys."""
    model = SimpleBaseline(depth=50, num_keypoints=17, deconv_channels=16, base_channels=8)
    state = _fabricated(model, reference_keys(50))
    saved = (
        state if layout == "bare" else {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    )
    path = tmp_path / "pose_resnet_50_256x192.pth.tar"
    torch.save(saved, path)
    missing, unexpected = load_model_weights(model, path, strict=True)
    assert (missing, unexpected) == ([], [])
    for key in ("layer4.2.conv3.weight", "deconv_layers.6.weight", "final_layer.bias"):
        assert torch.equal(model.state_dict()[key], state[key])


def test_pytorch_0_4_0_file_without_bn_counters_loads_strictly_in_torch(tmp_path):
    """The published R50 file predates ``num_batches_tracked`` (microsoft/human-pose-estimation
    .pytorch issue 11); torch fills the counters of such a file under ``strict=True``."""
    model = SimpleBaseline(depth=50, deconv_channels=16, base_channels=8)
    state = _fabricated(model, reference_keys(50, counters=False))
    assert len(state) == ENTRIES[50] - 56  # 56 BatchNorms: 1 + 16 x 3 + 4 + 3
    torch.save(state, tmp_path / "old.pth.tar")
    result = model.load_state_dict(torch.load(tmp_path / "old.pth.tar", weights_only=True))
    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    assert torch.equal(model.bn1.running_var, state["bn1.running_var"])


# -- ImageNet trunk --------------------------------------------------------------------------
def _torchvision_file(tmp_path, *, counters: bool = True):
    torch.manual_seed(4)
    state = torchvision.models.resnet18().state_dict()  # random weights, torchvision's names
    if not counters:  # like resnet*-19c8e357.pth, saved before PyTorch 0.4.1
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    return path, state


@pytest.mark.parametrize("counters", [True, False])
def test_torchvision_trunk_loads_and_the_head_is_kept(tmp_path, counters):
    path, state = _torchvision_file(tmp_path, counters=counters)
    model = SimpleBaseline(depth=18, num_keypoints=3, deconv_channels=16)
    head = model.final_layer.weight.clone()
    report = load_trunk_weights(model, path)
    # resnet18: conv1 + bn1 (6) + 8 basic blocks x 12 + 3 downsamples x 6 = 120 trunk entries,
    # 20 of them BN counters.
    expected = 120 if counters else 100
    assert len(report.loaded) == expected
    assert report.ignored == ("fc.weight", "fc.bias")
    assert report.missing == () and report.mismatched == ()
    assert torch.equal(model.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])
    assert torch.equal(
        model.layer2[0].downsample[1].running_mean, state["layer2.0.downsample.1.running_mean"]
    )
    assert torch.equal(model.final_layer.weight, head)
    assert f"loaded {expected} trunk tensors" in report.summary()


def test_loaded_trunk_computes_torchvisions_features(tmp_path):
    """Block arithmetic (stride on the 3x3 conv, post-activation) equals torchvision's ResNet-50
    with the same weights: the trunk output inside ``forward`` matches ``tv.layer4``'s."""
    torch.manual_seed(6)
    tv = torchvision.models.resnet50().eval()
    for m in tv.modules():  # non-trivial BN statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    torch.save(tv.state_dict(), tmp_path / "resnet50.pth")
    model = SimpleBaseline(depth=50, num_keypoints=3, deconv_channels=16).eval()
    load_trunk_weights(model, tmp_path / "resnet50.pth")
    captured = []
    model.layer4.register_forward_hook(lambda module, args, out: captured.append(out))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        model(x)
        y = tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))
        expected = tv.layer4(tv.layer3(tv.layer2(tv.layer1(y))))
    assert captured[0].shape == (1, 2048, 2, 3)
    assert torch.allclose(captured[0], expected, atol=1e-5)


def test_trunk_of_another_depth_is_refused_or_partly_loaded(tmp_path):
    path, _ = _torchvision_file(tmp_path)
    model = SimpleBaseline(depth=34, num_keypoints=3, deconv_channels=16)
    with pytest.raises(DataError, match=r"resnet18\.pth: does not fit the trunk .* missing"):
        load_trunk_weights(model, path)
    report = load_trunk_weights(model, path, strict=False)
    assert report.loaded and report.missing[0] == "layer1.2.conv1.weight"


def test_a_file_that_fits_nothing_is_refused(tmp_path):
    path = tmp_path / "hrnet.pth"
    torch.save({"stage2.0.branches.0.0.conv1.weight": torch.zeros(32, 32, 3, 3)}, path)
    model = SimpleBaseline(depth=18, num_keypoints=3, deconv_channels=16)
    with pytest.raises(DataError, match=r"hrnet\.pth: no tensor fits the trunk of SimpleBaseline"):
        load_trunk_weights(model, path, strict=False)
    tiny = tmp_path / "tiny.pth"
    torch.save(SimpleBaseline(**TINY).state_dict(), tiny)  # same keys, other widths
    with pytest.raises(DataError, match="no tensor fits"):
        load_trunk_weights(model, tiny)
    with pytest.raises(ValueError, match="no ImageNet trunk"):
        load_trunk_weights(HourglassNet(num_stacks=1, channels=16), path)


@pytest.mark.slow
@pytest.mark.parametrize("depth", sorted(BLOCKS))
def test_published_sizes_forward_256x192(depth):
    model = SimpleBaseline(depth=depth).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 256, 192))
    assert [o.shape for o in outputs] == [(1, 17, 64, 48)]
