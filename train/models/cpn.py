"""CPN, the Cascaded Pyramid Network (Chen, Wang, Peng, Zhang, Yu & Sun, "Cascaded Pyramid
Network for Multi-Person Pose Estimation", CVPR 2018), after chenyilun95/tf-cpn
(``models/COCO.res50.256x192.CPN/network.py``: ``create_global_net``, ``create_refine_net``).

A ResNet trunk (torchvision's names ``conv1``, ``bn1``, ``layer1``-``layer4``, so ImageNet files
load through ``animalpose.train.models.pretrained``) gives C2-C5 at strides 4, 8, 16 and 32.

- GlobalNet (``laterals``, ``merges``, ``global_heads``): a feature pyramid. Each Ci gets a 1x1
  lateral conv (+ BN + ReLU) to ``channels``; from C5 down, the coarser pyramid level is upsampled
  bilinearly, passed through a 1x1 conv (tf-cpn's ``merge``, with bias, no BN) and added to the
  lateral. Every level predicts K heatmaps (1x1 conv + BN + ReLU, then a 3x3 conv to K), upsampled
  to the C2 resolution (stride 4).
- RefineNet (``refine_levels``, ``refine_bottleneck``, ``refine_head``): pyramid level i (C2 = 0)
  goes through i bottlenecks (C5 the most: 3), is upsampled to stride 4, the four are
  concatenated, then one bottleneck (with a projection shortcut) and a 3x3 conv predict the final
  K heatmaps. The paper trains this output with online hard keypoint mining (OHKM, top 8 of K per
  sample), hence ``ohkm_stages = "last"``.

Where this differs from tf-cpn: bilinear resizing uses half-pixel centres
(``align_corners=False``, the heatmap codecs' pixel-centre convention) where TF1's
``resize_bilinear`` used corner-aligned-at-zero sampling; the 3x3 prediction convs have a bias and
no BatchNorm (tf-cpn's ``resnet_arg_scope`` also normalised its prediction layers); every output
of ``forward`` has the stride-4 size (tf-cpn too), and all of them are supervised with the same
target sigma unless the trainer is told otherwise (tf-cpn blurred the four GlobalNet targets with
kernels 15, 11, 9, 7 from C2 to C5, its own comment calls that order reversed, and the RefineNet
target with 7).

Shapes: input (B, 3, H, W) with H and W multiples of ``INPUT_MULTIPLE``; ``forward`` returns five
(B, K, H / 4, W / 4) tensors: the GlobalNet predictions of C2, C3, C4, C5, then RefineNet's.
The paper's ResNet-50 with ``channels`` 256 and K = 17: 27,009,685 parameters (23.5 M of them
the trunk) and, at 256 x 192, 14.5 GFLOPs as ``torch.utils.flop_counter`` counts them (one
multiply-add = 2 FLOPs: 7.2 G multiply-adds); 3.6 GFLOPs at 128 x 96. ResNet-18: 13.9 M
parameters, 9.4 GFLOPs at 256 x 192, 2.4 at 128 x 96 (RefineNet's stride-4 bottlenecks on
4 x 256 concatenated channels cost as much as the trunk).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animalpose.train.models.simple_baseline import (
    BN_MOMENTUM,
    RESNET_LAYERS,
    Bottleneck,
    init_pose_layers,
    make_layer,
)

__all__ = [
    "CPN",
    "INPUT_MULTIPLE",
    "NUM_LEVELS",
    "OUTPUT_STRIDE",
    "REFINE_BOTTLENECKS",
    "RESNET_BASE_WIDTH",
    "RESNET_TRUNK",
    "RefineBottleneck",
    "check_input_size",
    "check_sizes",
    "conv_bn",
    "prediction_head",
    "resize_to",
    "resnet_layers",
    "resnet_level_channels",
    "resnet_trunk",
]

#: ResNet's stem width and ``layer1``'s planes (torchvision; ImageNet files need 64).
RESNET_BASE_WIDTH = 64
#: Pyramid levels C2-C5 (ResNet's ``layer1``-``layer4``).
NUM_LEVELS = 4
#: Bottlenecks each pyramid level goes through in RefineNet, C2 to C5 (tf-cpn
#: ``create_refine_net``: level i gets i of them, the coarsest the most).
REFINE_BOTTLENECKS = (0, 1, 2, 3)
#: Heatmaps are at C2's resolution, a quarter of the input.
OUTPUT_STRIDE = 4
#: C5 is 1/32 of the input; the pyramid upsamples by exact factors of two only when the input
#: sides divide by 32 (192 and 256 do).
INPUT_MULTIPLE = 32
#: The top-level module names of a torchvision ResNet trunk, in creation order (also the
#: ``trunk_layers`` that ``load_trunk_weights`` fills from an ImageNet file).
RESNET_TRUNK = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")


class RefineBottleneck(Bottleneck):
    """CPN's bottleneck: the ResNet bottleneck with an inner width of half its output
    (tf-cpn's ``bottleneck(x, depth=256, depth_bottleneck=128)``), ``planes`` -> ``planes * 2``
    channels."""

    expansion = 2


def conv_bn(
    in_channels: int, out_channels: int, *, kernel: int = 1, relu: bool = True
) -> nn.Sequential:
    """``Sequential(conv (no bias, "same" padding), BN[, ReLU])``:
    (B, in_channels, h, w) -> (B, out_channels, h, w)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def prediction_head(channels: int, num_keypoints: int) -> nn.Sequential:
    """tf-cpn's per-level predictor: a 1x1 conv + BN + ReLU (index 0, whose output is the
    ``features`` of ``return_features``) and a 3x3 conv to K heatmaps (index 1, with bias,
    initialised like SimpleBaseline's ``final_layer``): (B, channels, h, w) -> (B, K, h, w)."""
    predict = nn.Conv2d(channels, num_keypoints, 3, padding=1)
    init_pose_layers([predict])
    return nn.Sequential(conv_bn(channels, channels), predict)


def resize_to(x: torch.Tensor, size: torch.Size | tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of (B, C, h, w) to ``size`` (h', w'), half-pixel centres; a no-op at
    the same size."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)


def resnet_level_channels(depth: int) -> tuple[int, int, int, int]:
    """Channels of C2-C5 for a ResNet of ``depth``: (64, 128, 256, 512) for the basic-block
    depths 18 and 34, four times that for the bottleneck depths 50, 101, 152."""
    block, _ = RESNET_LAYERS[depth]
    widths = [RESNET_BASE_WIDTH * 2**i * block.expansion for i in range(NUM_LEVELS)]
    return (widths[0], widths[1], widths[2], widths[3])


def resnet_layers(depth: int) -> list[nn.Sequential]:
    """ResNet's ``layer1``-``layer4`` for ``depth`` (``layer1`` at stride 1 on the 64-channel
    stem output, the others halving the side), built with SimpleBaseline's ``make_layer``."""
    block, counts = RESNET_LAYERS[depth]
    layers, inplanes = [], RESNET_BASE_WIDTH
    for i, num_blocks in enumerate(counts):
        planes = RESNET_BASE_WIDTH * 2**i
        layers.append(
            make_layer(
                block,
                inplanes=inplanes,
                planes=planes,
                num_blocks=num_blocks,
                stride=1 if i == 0 else 2,
            )
        )
        inplanes = planes * block.expansion
    return layers


def resnet_trunk(depth: int) -> dict[str, nn.Module]:
    """The modules of a torchvision ResNet trunk by attribute name, in creation order: ``conv1``
    (7x7 stride 2), ``bn1``, ``relu``, ``maxpool`` (stride 2), ``layer1``-``layer4``. A model
    that adds them under these names takes ImageNet ResNet files key for key."""
    modules: dict[str, nn.Module] = {
        "conv1": nn.Conv2d(3, RESNET_BASE_WIDTH, 7, stride=2, padding=3, bias=False),
        "bn1": nn.BatchNorm2d(RESNET_BASE_WIDTH, momentum=BN_MOMENTUM),
        "relu": nn.ReLU(inplace=True),
        "maxpool": nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    }
    for i, layer in enumerate(resnet_layers(depth)):
        modules[f"layer{i + 1}"] = layer
    return modules


def check_input_size(name: str, x: torch.Tensor) -> None:
    """Raise ValueError naming ``name`` unless the sides of ``x`` divide by ``INPUT_MULTIPLE``."""
    height, width = x.shape[-2:]
    if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
        raise ValueError(
            f"{name} input sides must be multiples of {INPUT_MULTIPLE}, got {height} x {width}"
        )


def check_sizes(name: str, *, depth: int, channels: int, num_keypoints: int) -> None:
    """The constructor checks CPN and MSPN share (``channels`` even: ``RefineBottleneck`` and
    the config's ``model.channels`` rule)."""
    if depth not in RESNET_LAYERS:
        raise ValueError(
            f"{name}: ResNet depth must be one of {sorted(RESNET_LAYERS)}, got {depth}"
        )
    if num_keypoints < 1 or channels < 2 or channels % 2:
        raise ValueError(
            f"{name}: num_keypoints must be >= 1 and channels even and >= 2, got "
            f"{num_keypoints} and {channels}"
        )


class CPN(nn.Module):
    """Cascaded Pyramid Network: ResNet + GlobalNet + RefineNet (Chen et al. 2018).

    Args:
        num_keypoints: heatmap channels K.
        depth: ResNet depth of the trunk, a key of ``RESNET_LAYERS`` (the paper's 50 and 101;
            18 and 34 for small CPU models).
        channels: pyramid (GlobalNet) and RefineNet width (256 in the paper); even.

    ``forward`` returns five (B, K, H / 4, W / 4) tensors: GlobalNet's predictions from C2, C3,
    C4 and C5 (each upsampled to stride 4), then RefineNet's final prediction.
    """

    #: No part-segmentation head.
    segmentation: bool = False
    #: Top-level modules an ImageNet ResNet file initialises (``pretrained.load_trunk_weights``).
    trunk_layers: tuple[str, ...] = RESNET_TRUNK
    #: OHKM applies to RefineNet's output only; GlobalNet's four keep the plain loss (the paper).
    ohkm_stages: str = "last"

    def __init__(self, *, num_keypoints: int = 17, depth: int = 50, channels: int = 256) -> None:
        super().__init__()
        check_sizes("CPN", depth=depth, channels=channels, num_keypoints=num_keypoints)
        self.num_keypoints = num_keypoints
        self.depth = depth
        self.channels = channels
        for name, module in resnet_trunk(depth).items():
            self.add_module(name, module)
        levels = resnet_level_channels(depth)

        # GlobalNet. merges[i] maps the upsampled level i + 1 before the sum at level i.
        self.laterals = nn.ModuleList(conv_bn(c, channels) for c in levels)
        self.merges = nn.ModuleList(nn.Conv2d(channels, channels, 1) for _ in range(NUM_LEVELS - 1))
        self.global_heads = nn.ModuleList(
            prediction_head(channels, num_keypoints) for _ in range(NUM_LEVELS)
        )
        # RefineNet.
        half = channels // RefineBottleneck.expansion
        self.refine_levels = nn.ModuleList(
            nn.Sequential(*(RefineBottleneck(inplanes=channels, planes=half) for _ in range(n)))
            for n in REFINE_BOTTLENECKS
        )
        self.refine_bottleneck = make_layer(
            RefineBottleneck, inplanes=NUM_LEVELS * channels, planes=half, num_blocks=1
        )
        self.refine_head = nn.Conv2d(channels, num_keypoints, 3, padding=1)
        init_pose_layers([self.refine_head])

    def _levels(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> [C2, C3, C4, C5] (strides 4, 8, 16, 32)."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        levels = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = layer(x)
            levels.append(x)
        return levels

    def forward(
        self, x: torch.Tensor, *, return_features: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, H, W) normalised images -> five (B, K, H / 4, W / 4) heatmap tensors
        (GlobalNet C2, C3, C4, C5, RefineNet).

        With ``return_features=True`` returns ``(heatmaps, features)``, the features being the
        input of ``refine_head`` (B, channels, H / 4, W / 4).
        """
        check_input_size("CPN", x)
        levels = self._levels(x)
        size = levels[0].shape[-2:]
        pyramid: list[torch.Tensor] = [levels[0]] * NUM_LEVELS
        top: torch.Tensor | None = None
        for i in reversed(range(NUM_LEVELS)):
            lateral = self.laterals[i](levels[i])
            if top is not None:
                lateral = lateral + self.merges[i](resize_to(top, lateral.shape[-2:]))
            pyramid[i] = top = lateral
        heatmaps = [resize_to(head(p), size) for head, p in zip(self.global_heads, pyramid)]
        refined = [resize_to(refine(p), size) for refine, p in zip(self.refine_levels, pyramid)]
        features = self.refine_bottleneck(torch.cat(refined, dim=1))
        heatmaps.append(self.refine_head(features))
        if return_features:
            return heatmaps, features
        return heatmaps
