"""HRNet (Sun, Xiao, Liu & Wang, "Deep High-Resolution Representation Learning for Human Pose
Estimation", CVPR 2019), as built by leoxiaobin/deep-high-resolution-net.pytorch
(``lib/models/pose_hrnet.py``, ``PoseHighResolutionNet``; its configs call it ``pose_hrnet``).

A stem of two 3x3 stride-2 convs (``conv1``, ``bn1``, ``conv2``, ``bn2``) and four bottlenecks
(``layer1``), then stages 2-4 with 2, 3 and 4 parallel branches of widths C, 2C, 4C, 8C at 1/4,
1/8, 1/16 and 1/32 of the input (``transition1``-``3`` open each new branch; every
``HighResolutionModule`` runs four basic blocks per branch and fuses all branches into each other:
``branches``, ``fuse_layers``), and a 1x1 conv on the highest-resolution branch (``final_layer``).
The published configs (``experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml``, w48 alike):
``STAGE2-4 NUM_MODULES 1 / 4 / 3``, ``NUM_BLOCKS 4`` per branch, ``BLOCK: BASIC``,
``FUSE_METHOD: SUM``, ``FINAL_CONV_KERNEL: 1``; W32 is C = 32, W48 is C = 48.

Module names and creation order are the reference's, so its published
``pose_hrnet_w32_256x192.pth`` (a bare state_dict saved with ``model.module.state_dict()``, no
``module.`` prefix) loads with ``strict=True``. Where the reference stores ``None`` (a branch that
keeps its width in a transition, the ``j == i`` term of a fusion) this module holds a
parameter-free ``nn.Identity``, so the state_dict keys are the same. The last module of stage 4
fuses into the highest resolution only (``multi_scale_output=False``): it has ``fuse_layers.0``
and no other row.

Shapes: input (B, 3, H, W) with H and W multiples of ``INPUT_MULTIPLE``; one (B, K, H / 4, W / 4)
heatmap tensor, e.g. (B, 17, 64, 48) for the published 256 x 192 input. Parameters with K = 17:
W32 28.5 M, W48 63.6 M (the paper's figures).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animalpose.train.models.simple_baseline import (
    BN_MOMENTUM,
    BasicBlock,
    Bottleneck,
    init_pose_layers,
    make_layer,
)

__all__ = [
    "BLOCKS_PER_BRANCH",
    "HRNet",
    "HighResolutionModule",
    "INPUT_MULTIPLE",
    "OUTPUT_STRIDE",
    "STAGE_MODULES",
]

#: ``NUM_MODULES`` of stages 2, 3 and 4 (2, 3 and 4 branches) in every published config.
STAGE_MODULES = (1, 4, 3)
#: ``NUM_BLOCKS`` per branch (basic blocks) in every module of stages 2-4.
BLOCKS_PER_BRANCH = 4
#: Bottlenecks of ``layer1`` (the reference's ``_make_layer(Bottleneck, 64, 4)``).
LAYER1_BLOCKS = 4
#: The stem halves the side twice: the highest-resolution branch is 1/4 of the input.
OUTPUT_STRIDE = 4
#: The lowest branch is 1/32 of the input; fusions upsample by exact powers of two, so the
#: input sides must divide by 32 (192 and 256 do).
INPUT_MULTIPLE = 32


def _conv_bn(
    in_channels: int, out_channels: int, *, kernel: int, stride: int, relu: bool
) -> nn.Sequential:
    """``Sequential(conv (no bias), BN[, ReLU])`` with the reference's indices 0, 1, 2."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            in_channels, out_channels, kernel, stride=stride, padding=kernel // 2, bias=False
        ),
        nn.BatchNorm2d(out_channels, momentum=BN_MOMENTUM),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class HighResolutionModule(nn.Module):
    """Parallel branches, then a multi-resolution fusion (the reference's class of that name).

    Args:
        channels: width of each branch, highest resolution first (e.g. (32, 64, 128)).
        num_blocks: basic blocks per branch.
        multi_scale_output: fuse into every branch (True) or into the first only (False, the
            last module of the network).

    ``fuse_layers[i][j]`` brings branch j to branch i: j > i a 1x1 conv + BN + nearest
    upsampling by ``2**(j - i)``; j < i a chain of ``i - j`` 3x3 stride-2 conv + BN (ReLU
    between them, not after the last); j == i the identity. Each output is the ReLU of the sum.
    """

    def __init__(
        self, *, channels: tuple[int, ...], num_blocks: int, multi_scale_output: bool = True
    ) -> None:
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            make_layer(BasicBlock, inplanes=c, planes=c, num_blocks=num_blocks) for c in channels
        )
        rows = range(self.num_branches if multi_scale_output else 1)
        self.fuse_layers = nn.ModuleList(
            nn.ModuleList(self._fuse(channels, i, j) for j in range(self.num_branches))
            for i in rows
        )

    @staticmethod
    def _fuse(channels: tuple[int, ...], i: int, j: int) -> nn.Module:
        if j == i:
            return nn.Identity()
        if j > i:
            up = _conv_bn(channels[j], channels[i], kernel=1, stride=1, relu=False)
            up.append(nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"))
            return up
        steps = [
            _conv_bn(channels[j], channels[j], kernel=3, stride=2, relu=True)
            for _ in range(i - j - 1)
        ]
        steps.append(_conv_bn(channels[j], channels[i], kernel=3, stride=2, relu=False))
        return nn.Sequential(*steps)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        """Branch j input (B, channels[j], h / 2**j, w / 2**j) -> the same shapes (the first
        only without ``multi_scale_output``)."""
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        outputs = []
        for row in self.fuse_layers:
            total = row[0](xs[0])
            for j in range(1, self.num_branches):
                total = total + row[j](xs[j])
            outputs.append(F.relu(total))
        return outputs


class HRNet(nn.Module):
    """High-resolution network for top-down pose (Sun 2019; the reference's
    ``PoseHighResolutionNet``).

    Args:
        width: C, the width of the highest-resolution branch; branches have C, 2C, 4C, 8C
            channels (32: HRNet-W32, 48: HRNet-W48; small values give tiny CPU models).
        num_keypoints: heatmap channels K (17 for COCO).
        stem_channels: width of the stem convs and ``layer1``'s bottleneck planes (64; its
            output is 4x that). Smaller values give tiny CPU models; only 64 fits published files.

    ``forward`` returns a list of one (B, K, H / 4, W / 4) heatmap tensor. W32 with K = 17 has
    28,536,113 parameters and 1,754 state_dict entries (1,462 weights and BN statistics plus 292
    ``num_batches_tracked`` counters); W48 63,595,745 parameters.
    """

    #: No part-segmentation head (callers check this, see ``HourglassMultitask``).
    segmentation: bool = False
    #: Top-level modules an ImageNet HRNet file initialises: the reference's
    #: ``PRETRAINED_LAYERS`` (everything but ``final_layer``).
    trunk_layers: tuple[str, ...] = (
        "conv1",
        "bn1",
        "conv2",
        "bn2",
        "layer1",
        "transition1",
        "stage2",
        "transition2",
        "stage3",
        "transition3",
        "stage4",
    )

    def __init__(
        self, *, width: int = 32, num_keypoints: int = 17, stem_channels: int = 64
    ) -> None:
        super().__init__()
        if min(width, num_keypoints, stem_channels) < 1:
            raise ValueError(
                "width, num_keypoints and stem_channels must be >= 1, got "
                f"{width}, {num_keypoints}, {stem_channels}"
            )
        self.width = width
        self.num_keypoints = num_keypoints

        # Creation order = reference order (state_dict and optimizer-state order follow it).
        self.conv1 = nn.Conv2d(3, stem_channels, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_channels, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(stem_channels, stem_channels, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(stem_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = make_layer(
            Bottleneck, inplanes=stem_channels, planes=stem_channels, num_blocks=LAYER1_BLOCKS
        )
        previous = (stem_channels * Bottleneck.expansion,)
        for stage, num_modules in enumerate(STAGE_MODULES, start=2):
            channels = tuple(width * 2**b for b in range(stage))
            self.add_module(f"transition{stage - 1}", _transition(previous, channels))
            modules = [
                HighResolutionModule(
                    channels=channels,
                    num_blocks=BLOCKS_PER_BRANCH,
                    # Only the network's last module fuses into the highest resolution alone.
                    multi_scale_output=not (stage == 4 and m == num_modules - 1),
                )
                for m in range(num_modules)
            ]
            self.add_module(f"stage{stage}", nn.Sequential(*modules))
            previous = channels
        self.final_layer = nn.Conv2d(width, num_keypoints, 1)  # FINAL_CONV_KERNEL: 1, bias
        self._init_weights()

    def _init_weights(self) -> None:
        """The reference's ``init_weights``: every conv normal(0, 0.001), BN 1 / 0."""
        init_pose_layers(self.modules())

    def forward(
        self, x: torch.Tensor, *, return_features: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, H, W) normalised images -> [(B, K, H / 4, W / 4) heatmaps].

        With ``return_features=True`` returns ``(heatmaps, features)``, the features being the
        input of ``final_layer``: the fused highest-resolution branch (B, width, H / 4, W / 4).
        """
        height, width = x.shape[-2:]
        if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ValueError(
                f"HRNet input sides must be multiples of {INPUT_MULTIPLE}, got {height} x {width}"
            )
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        xs = [self.layer1(x)]
        for transition, stage in (
            (self.transition1, self.stage2),
            (self.transition2, self.stage3),
            (self.transition3, self.stage4),
        ):
            # Existing branches pass through (or change width); a new one opens from the lowest.
            xs = [t(xs[min(b, len(xs) - 1)]) for b, t in enumerate(transition)]
            xs = stage(xs)
        features = xs[0]
        heatmaps = [self.final_layer(features)]
        if return_features:
            return heatmaps, features
        return heatmaps


def _transition(previous: tuple[int, ...], channels: tuple[int, ...]) -> nn.ModuleList:
    """The reference's ``_make_transition_layer``: branch b < len(previous) keeps its input (an
    identity, or a 3x3 conv + BN + ReLU when the width changes); a new branch comes from the
    lowest previous one through 3x3 stride-2 conv + BN + ReLU steps, the last one to its width."""
    layers: list[nn.Module] = []
    for b, c in enumerate(channels):
        if b < len(previous):
            same = previous[b] == c
            layers.append(
                nn.Identity() if same else _conv_bn(previous[b], c, kernel=3, stride=1, relu=True)
            )
            continue
        steps = b + 1 - len(previous)
        source = previous[-1]
        layers.append(
            nn.Sequential(
                *[
                    _conv_bn(source, c if s == steps - 1 else source, kernel=3, stride=2, relu=True)
                    for s in range(steps)
                ]
            )
        )
    return nn.ModuleList(layers)
