"""HRNet against leoxiaobin/deep-high-resolution-net.pytorch ``lib/models/pose_hrnet.py``: its
state_dict keys (so ``pose_hrnet_w32_256x192.pth`` loads strictly), the paper's parameter counts,
output shapes, the fusion arithmetic and ImageNet trunk loading.

Expected keys and parameter counts are derived here from the reference's definitions
(``PoseHighResolutionNet.__init__``, ``_make_transition_layer``, ``_make_stage``,
``HighResolutionModule._make_branches`` / ``_make_fuse_layers``) and the published configs
(``experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml``: NUM_MODULES 1 / 4 / 3, four BASIC
blocks per branch, FINAL_CONV_KERNEL 1), not by instantiating our model.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from animalpose.datasets.fileio import DataError
from animalpose.train.checkpoint import load_model_weights
from animalpose.train.models import build_model
from animalpose.train.models.hrnet import HighResolutionModule, HRNet
from animalpose.train.models.pretrained import load_trunk_weights

BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
MODULES = (1, 4, 3)  # NUM_MODULES of stages 2, 3, 4
#: By hand: stem 12; layer1 4 x 18 + 6 = 78; transition1 6 + 6; stage2 (2 x 4 x 12 branches +
#: 2 x 6 fusions) = 108; transition2 6; stage3 4 x (144 + 7 x 6) = 744; transition3 6; stage4
#: 2 x (192 + 16 x 6) + (192 + 3 x 6) = 786; final 2: 1,754 entries.
ENTRIES = 1_754
#: The paper's Table 1 (COCO val, 256x192): HRNet-W32 28.5 M, HRNet-W48 63.6 M parameters.
PAPER_PARAMS_M = {32: 28.5, 48: 63.6}
#: Tiny CPU model: same keys as W32 (keys do not depend on widths), small tensors.
TINY = dict(width=4, num_keypoints=17, stem_channels=8)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread while these tests run (restored after the module), as
    tests/adapt/conftest.py: HRNet's and ResNet's many small convs on 2 shared cores ran 10-100x
    slower with torch's thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _bn(prefix: str, counters: bool = True) -> list[str]:
    return [f"{prefix}.{p}" for p in (BN_KEYS if counters else BN_KEYS[:-1])]


def _conv_bn(prefix: str) -> list[str]:
    """``Sequential(Conv2d(bias=False), BatchNorm2d[, ReLU])``."""
    return [f"{prefix}.0.weight", *_bn(f"{prefix}.1")]


def _block(prefix: str, convs: int) -> list[str]:
    keys = []
    for i in range(1, convs + 1):
        keys += [f"{prefix}.conv{i}.weight", *_bn(f"{prefix}.bn{i}")]
    return keys


def reference_keys() -> list[str]:
    """``PoseHighResolutionNet``'s state_dict keys in its creation order."""
    keys = ["conv1.weight", *_bn("bn1"), "conv2.weight", *_bn("bn2")]
    for b in range(4):  # layer1: Bottleneck(64) x 4, downsample 64 -> 256 on the first
        keys += _block(f"layer1.{b}", 3)
        if b == 0:
            keys += _conv_bn("layer1.0.downsample")
    branches_before = 1
    for stage, num_modules in zip((2, 3, 4), MODULES):
        branches = stage
        t = f"transition{stage - 1}"
        for i in range(branches):
            if i < branches_before:
                if stage == 2:  # 256 -> C: Sequential(conv3x3, BN, ReLU); later ones are None
                    keys += _conv_bn(f"{t}.{i}")
            else:  # one stride-2 step from the lowest branch: Sequential(Sequential(...))
                keys += _conv_bn(f"{t}.{i}.0")
        for m in range(num_modules):
            p = f"stage{stage}.{m}"
            for b in range(branches):
                for k in range(4):
                    keys += _block(f"{p}.branches.{b}.{k}", 2)
            last = stage == 4 and m == num_modules - 1  # multi_scale_output=False
            for i in range(1 if last else branches):
                for j in range(branches):
                    if j > i:  # Sequential(conv1x1, BN, Upsample)
                        keys += _conv_bn(f"{p}.fuse_layers.{i}.{j}")
                    elif j < i:  # (i - j) x Sequential(conv3x3 s2, BN[, ReLU])
                        for k in range(i - j):
                            keys += _conv_bn(f"{p}.fuse_layers.{i}.{j}.{k}")
        branches_before = branches
    return keys + ["final_layer.weight", "final_layer.bias"]


def reference_params(width: int, keypoints: int = 17) -> int:
    """Parameter count of the reference model by its layer sizes."""

    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k

    def conv_bn(cin: int, cout: int, k: int) -> int:
        return conv(cin, cout, k) + 2 * cout

    n = conv_bn(3, 64, 3) + conv_bn(64, 64, 3)
    for b in range(4):  # layer1 bottlenecks
        n += conv_bn(64 if b == 0 else 256, 64, 1) + conv_bn(64, 64, 3) + conv_bn(64, 256, 1)
    n += conv_bn(64, 256, 1)  # downsample
    previous = [256]
    for stage, num_modules in zip((2, 3, 4), MODULES):
        chs = [width * 2**b for b in range(stage)]
        if stage == 2:
            n += conv_bn(256, chs[0], 3)
        n += conv_bn(previous[-1], chs[-1], 3)  # the new branch
        for m in range(num_modules):
            n += sum(4 * 2 * conv_bn(c, c, 3) for c in chs)
            rows = 1 if stage == 4 and m == num_modules - 1 else stage
            for i in range(rows):
                for j in range(stage):
                    if j > i:
                        n += conv_bn(chs[j], chs[i], 1)
                    elif j < i:
                        n += (i - j - 1) * conv_bn(chs[j], chs[j], 3) + conv_bn(chs[j], chs[i], 3)
        previous = chs
    return n + width * keypoints + keypoints


def _meta(**kwargs) -> HRNet:
    with torch.device("meta"):
        return HRNet(**kwargs)


def test_keys_equal_the_published_checkpoints():
    expected = reference_keys()
    assert len(expected) == ENTRIES
    assert list(_meta(width=32).state_dict()) == expected
    assert list(_meta(width=48).state_dict()) == expected


def test_named_keys_and_shapes_of_w32():
    state = _meta(width=32).state_dict()
    shapes = {
        "layer1.0.downsample.0.weight": (256, 64, 1, 1),
        "transition1.0.0.weight": (32, 256, 3, 3),
        "transition1.1.0.0.weight": (64, 256, 3, 3),
        "transition2.2.0.0.weight": (128, 64, 3, 3),
        "transition3.3.0.0.weight": (256, 128, 3, 3),
        "stage2.0.fuse_layers.0.1.0.weight": (32, 64, 1, 1),
        "stage4.1.fuse_layers.3.0.0.0.weight": (32, 32, 3, 3),  # 1/4 -> 1/8, ReLU follows
        "stage4.1.fuse_layers.3.0.2.0.weight": (256, 32, 3, 3),  # -> 1/32, no ReLU
        "stage4.1.fuse_layers.3.2.0.0.weight": (256, 128, 3, 3),
        "stage4.2.fuse_layers.0.3.0.weight": (32, 256, 1, 1),  # 1/32 -> 1/4 (x8 upsampling)
        "stage4.2.branches.3.3.conv2.weight": (256, 256, 3, 3),
        "final_layer.weight": (17, 32, 1, 1),
        "final_layer.bias": (17,),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    # The last module fuses into the highest resolution only; transitions 2 and 3 keep the
    # existing branches (None in the reference: no keys).
    assert not any(k.startswith("stage4.2.fuse_layers.1.") for k in state)
    assert not any(k.startswith(("transition2.0.", "transition3.2.")) for k in state)


@pytest.mark.parametrize("width", sorted(PAPER_PARAMS_M))
def test_parameter_counts_are_the_papers(width):
    n = sum(p.numel() for p in _meta(width=width).parameters())
    assert n == reference_params(width)
    assert round(n / 1e6, 1) == PAPER_PARAMS_M[width]


def test_non_square_input_gives_quarter_size_heatmaps():
    torch.manual_seed(0)
    model = HRNet(**TINY).eval()
    x = torch.randn(2, 3, 256, 192)
    with torch.no_grad():
        outputs = model(x)
        heatmaps, features = model(x, return_features=True)
    assert isinstance(outputs, list) and [o.shape for o in outputs] == [(2, 17, 64, 48)]
    assert features.shape == (2, 4, 64, 48)
    assert torch.allclose(heatmaps[0], model.final_layer(features))
    assert torch.allclose(heatmaps[0], outputs[0])
    with pytest.raises(ValueError, match="multiples of 32"):
        model(torch.randn(1, 3, 256, 176))


def test_fusion_sums_every_branch_brought_to_each_resolution():
    """Output i = ReLU(sum over j of branch j brought to resolution i), computed by hand."""
    torch.manual_seed(1)
    module = HighResolutionModule(channels=(4, 8, 16), num_blocks=1).eval()
    xs = [torch.randn(1, c, 16 // 2**b, 12 // 2**b) for b, c in enumerate((4, 8, 16))]
    with torch.no_grad():
        outputs = module([x.clone() for x in xs])
        ys = [branch(x) for branch, x in zip(module.branches, xs)]
        f = module.fuse_layers

        def up(i: int, j: int) -> torch.Tensor:  # 1x1 conv + BN, nearest upsampling
            z = f[i][j][1](f[i][j][0](ys[j]))
            return F.interpolate(z, scale_factor=2 ** (j - i), mode="nearest")

        def down(step: torch.nn.Module, z: torch.Tensor, relu: bool) -> torch.Tensor:
            z = step[1](step[0](z))
            return F.relu(z) if relu else z

        expected0 = F.relu(ys[0] + up(0, 1) + up(0, 2))
        expected2 = F.relu(
            down(f[2][0][1], down(f[2][0][0], ys[0], True), False)
            + down(f[2][1][0], ys[1], False)
            + ys[2]
        )
    assert [o.shape for o in outputs] == [y.shape for y in ys]
    assert torch.allclose(outputs[0], expected0, atol=1e-6)
    assert torch.allclose(outputs[2], expected2, atol=1e-6)
    single = HighResolutionModule(channels=(4, 8, 16), num_blocks=1, multi_scale_output=False)
    assert len(single.eval()([x.clone() for x in xs])) == 1


def test_initialisation_is_the_references():
    torch.manual_seed(0)
    model = HRNet(width=8, stem_channels=16)
    assert model.conv1.weight.std().item() == pytest.approx(0.001, rel=0.2)
    assert model.stage3[0].branches[2][0].conv1.weight.std().item() == pytest.approx(0.001, rel=0.1)
    assert model.final_layer.bias.abs().max() == 0
    assert torch.equal(model.bn2.weight, torch.ones(16))


def test_build_model_takes_width_and_ignores_hourglass_options():
    model = build_model("hrnet", num_keypoints=5, num_stacks=4, channels=256, width=4)
    assert isinstance(model, HRNet) and model.width == 4
    assert model.final_layer.weight.shape == (5, 4, 1, 1)


@pytest.mark.parametrize("layout", ["bare", "dataparallel"])
def test_published_layout_loads_strictly(tmp_path, layout):
    """``final_state.pth`` / the model zoo's ``pose_hrnet_w32_256x192.pth`` (a bare
    ``model.module.state_dict()``) and a ``module.``-prefixed training checkpoint."""
    model = HRNet(**TINY)
    shapes = model.state_dict()
    torch.manual_seed(2)
    state = {
        k: torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(shapes[k].shape)
        for k in reference_keys()
    }
    saved = (
        state if layout == "bare" else {"state_dict": {f"module.{k}": v for k, v in state.items()}}
    )
    torch.save(saved, tmp_path / "pose_hrnet_w32_256x192.pth")
    assert load_model_weights(model, tmp_path / "pose_hrnet_w32_256x192.pth") == ([], [])
    for key in ("stage4.2.fuse_layers.0.3.1.running_var", "transition1.1.0.0.weight"):
        assert torch.equal(model.state_dict()[key], state[key])


# -- ImageNet trunk --------------------------------------------------------------------------
def _imagenet_file(tmp_path, model: HRNet) -> tuple[object, dict[str, torch.Tensor]]:
    """An HRNet ImageNet classification file (HRNet-Image-Classification / timm ``hrnet_w32``
    names): the pose trunk's keys, plus the fusions of stage 4's last module into every branch
    (multi-scale there) and the classification head."""
    torch.manual_seed(5)
    state = {
        k: torch.randn(v.shape) if v.is_floating_point() else v.clone()
        for k, v in model.state_dict().items()
        if not k.startswith("final_layer.")
    }
    c = model.width
    extra = {
        "stage4.2.fuse_layers.1.0.0.0.weight": torch.randn(2 * c, c, 3, 3),
        "incre_modules.0.0.conv1.weight": torch.randn(32, c, 1, 1),
        "downsamp_modules.0.0.weight": torch.randn(256, 128, 3, 3),
        "final_layer.0.weight": torch.randn(2048, 1024, 1, 1),
        "classifier.weight": torch.randn(1000, 2048),
        "classifier.bias": torch.randn(1000),
    }
    path = tmp_path / "hrnetv2_w4_imagenet_pretrained.pth"
    torch.save({**state, **extra}, path)
    return path, state


def test_imagenet_trunk_loads_and_the_head_is_kept(tmp_path):
    model = HRNet(**TINY)
    path, state = _imagenet_file(tmp_path, HRNet(**TINY))
    head = model.final_layer.weight.clone()
    report = load_trunk_weights(model, path)
    assert len(report.loaded) == ENTRIES - 2  # everything but final_layer's weight and bias
    assert report.missing == () and report.mismatched == ()
    assert set(report.ignored) == {
        "stage4.2.fuse_layers.1.0.0.0.weight",
        "incre_modules.0.0.conv1.weight",
        "downsamp_modules.0.0.weight",
        "final_layer.0.weight",
        "classifier.weight",
        "classifier.bias",
    }
    assert torch.equal(
        model.stage3[3].branches[1][2].conv2.weight, state["stage3.3.branches.1.2.conv2.weight"]
    )
    assert torch.equal(model.final_layer.weight, head)


def test_imagenet_file_of_another_width_is_refused(tmp_path):
    path, _ = _imagenet_file(tmp_path, HRNet(width=8, stem_channels=16))
    with pytest.raises(
        DataError, match=r"w4_imagenet_pretrained\.pth: no tensor fits the trunk of HRNet"
    ):
        load_trunk_weights(HRNet(**TINY), path, strict=False)
    path, _ = _imagenet_file(tmp_path, HRNet(width=8, stem_channels=8))  # stem fits, rest not
    with pytest.raises(DataError, match=r"does not fit the trunk of HRNet: 0 trunk keys missing"):
        load_trunk_weights(HRNet(**TINY), path)


@pytest.mark.slow
@pytest.mark.parametrize("width", sorted(PAPER_PARAMS_M))
def test_published_sizes_forward_256x192(width):
    model = HRNet(width=width).eval()
    with torch.no_grad():
        outputs = model(torch.randn(1, 3, 256, 192))
    assert [o.shape for o in outputs] == [(1, 17, 64, 48)]
