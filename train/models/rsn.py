"""RSN (Cai et al., "Learning Delicate Local Representations for Multi-Person Pose Estimation",
ECCV 2020), after caiyuanhao1998/RSN (``exps/*/network.py``).

A ResNet-like trunk (depth 18: 2, 2, 2, 2 blocks; 50: 3, 4, 6, 3) of *residual steps blocks*
(``ResidualStepsBlock``: the bottleneck's middle split into four branches; branch i runs i + 1
3x3 convs, each fed the previous branch's output of the same step, so the receptive fields grow
branch by branch and the concatenated result mixes them), a GlobalNet-like top-down path (CPN /
MSPN: 1x1 laterals, bilinear upsampling, sums) to stride 4, one prediction per stage, and the
*pose refine machine* (``PoseRefineMachine``: a channel-attention and a spatial-attention path
multiplied onto the last stage's features) followed by the final prediction. ``num_stacks`` > 1
chains stages as MSPN does: a stage starts from a 1x1 conv of the previous stage's finest
features, and each of its trunk levels adds 1x1 convs of the previous stage's trunk and top-down
features of that level (cross-stage aggregation).

Shapes: input (B, 3, H, W) with H and W multiples of ``INPUT_MULTIPLE``; ``num_stacks + 1``
(B, K, H / 4, W / 4) heatmap tensors: one per stage, then the PRM's (the prediction to use).
Sizes with K = 17 at 256 x 192: RSN-18 9.64 M parameters, 4.23 G multiply-accumulates (1.81 G of
them the PRM's 3x3 conv at 256 channels; ``channels=128``: 8.70 M, 2.23 G); RSN-50 19.8 M,
6.05 G; 4 x RSN-50 78.7 M, 18.2 G. The authors' own count of their RSN-18 (caiyuanhao1998/RSN
issue 2, where they also correct the public code's expansion 4 to the expansion 1 used here):
13.1 M parameters, 2.45 G multiply-accumulates.

Where this differs from the reference code, and why:
- the PRM refines the last stage's ``channels``-wide features and a 1x1 conv predicts from them;
  the reference code applies it to the K-channel heatmaps, after a BatchNorm, which in a tiny
  overfit here (both outputs supervised) trained far slower and fell apart in eval mode;
- one prediction per stage (from the finest top-down level) instead of one per level: the
  coarse levels still shape the finest one through the top-down path;
- convolutions followed by BatchNorm have no bias (it would be cancelled);
- the PRM's channel path has no BatchNorm (its input is one value per channel and sample, which
  train-mode BatchNorm refuses for a batch of 1) and neither path has the reference's ReLU right
  before its sigmoid (which held every attention weight at 0.5 or more).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animalpose.train.models.mspn import cv2_kernel_sigma
from animalpose.train.models.simple_baseline import (
    BN_MOMENTUM,
    RESNET_LAYERS,
    init_pose_layers,
    make_layer,
)

__all__ = [
    "BRANCH_DIVISOR",
    "BRANCH_MULTIPLIER",
    "EARLY_STAGE_BLUR_SIGMA",
    "EARLY_STAGE_SIGMA_SCALE",
    "INPUT_MULTIPLE",
    "LAST_STAGE_BLUR_SIGMA",
    "NUM_STEPS",
    "PoseRefineMachine",
    "RSN",
    "RSN_LAYERS",
    "RSNStage",
    "ResidualStepsBlock",
]

#: Branches of a residual steps block (the paper's four "steps").
NUM_STEPS = 4
#: Branch width = ``inplanes * BRANCH_MULTIPLIER // BRANCH_DIVISOR`` (the reference's
#: ``in_planes * 26 // 64``: Res2Net's 26w at the 64-channel stem; note it scales with the
#: block's *input* width).
BRANCH_MULTIPLIER = 26
BRANCH_DIVISOR = 64
#: Blocks per trunk stage by depth: ResNet's counts (``RESNET_LAYERS``) with the residual steps
#: block everywhere (the reference's RSN-18 uses ``[2, 2, 2, 2]``, RSN-50 ``[3, 4, 6, 3]``);
#: 34 is left out, its counts being 50's.
RSN_LAYERS: dict[int, tuple[int, int, int, int]] = {
    depth: counts for depth, (_, counts) in RESNET_LAYERS.items() if depth != 34
}
#: Stem and four stages reduce the side 32 times; sides must divide evenly.
INPUT_MULTIPLE = 32
#: Kernel of the spatial-attention path's depthwise conv (the reference's 9x9).
PRM_KERNEL = 9


#: Coarse-to-fine supervision (the reference's ``LOSS.COARSE_TO_FINE``): its targets are a
#: one-pixel impulse blurred by ``cv2.GaussianBlur(heatmap, (k, k), 0)``, k = 7 for the finest
#: unit of every stage but the last and k = 5 for the last (``GAUSSIAN_KERNELS = [15, 11, 9,
#: 7, 5]``). For k <= 9 OpenCV blurs with fixed tables, not its sigma rule (``cv2_kernel_sigma``,
#: shared with MSPN): k = 5 has standard deviation 1, k = 7 sqrt(60 / 32). Early stages' target
#: sigma relative to the last stage's: 1.369.
LAST_STAGE_BLUR_SIGMA = cv2_kernel_sigma(5)
EARLY_STAGE_BLUR_SIGMA = cv2_kernel_sigma(7)
EARLY_STAGE_SIGMA_SCALE = EARLY_STAGE_BLUR_SIGMA / LAST_STAGE_BLUR_SIGMA


def _conv_bn(
    inplanes: int,
    planes: int,
    kernel: int,
    *,
    stride: int = 1,
    groups: int = 1,
    relu: bool = True,
) -> nn.Sequential:
    """conv (no bias, "same" padding) - BN [- ReLU]: the reference's ``conv_bn_relu``."""
    layers: list[nn.Module] = [
        nn.Conv2d(
            inplanes,
            planes,
            kernel,
            stride=stride,
            padding=kernel // 2,
            groups=groups,
            bias=False,
        ),
        nn.BatchNorm2d(planes, momentum=BN_MOMENTUM),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class ResidualStepsBlock(nn.Module):
    """Residual steps block: conv1x1-BN-ReLU to ``NUM_STEPS`` branches of ``branch_channels``;
    branch i (0-based) runs i + 1 conv3x3-BN-ReLU steps, step j taking the branch's input (j = 0)
    or its own previous step, plus step j of branch i - 1 (the dense connections); the last steps
    of all branches are concatenated, conv1x1-BN (to ``planes``), plus the identity, ReLU.

    Takes ``make_layer``'s keyword arguments, as ``Bottleneck``; ``stride`` 2 (on the first 1x1
    conv, as the reference) halves the side. Through the dense connections branch i's output is
    up to 2i + 1 convs deep (step j of branch i follows step j of branch i - 1 and step j - 1 of
    its own): it sees a (4i + 3)-pixel square of the first 1x1 conv's output, 3, 7, 11, 15.
    """

    #: Output channels = ``planes * expansion``.
    expansion = 1

    def __init__(
        self, *, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        branch = inplanes * BRANCH_MULTIPLIER // BRANCH_DIVISOR
        if branch < 1:
            raise ValueError(f"a residual steps block needs >= 3 input channels, got {inplanes}")
        self.branch_channels = branch
        self.conv1 = nn.Conv2d(inplanes, NUM_STEPS * branch, 1, stride=stride, bias=False)
        self.bn1 = nn.BatchNorm2d(NUM_STEPS * branch, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.branches = nn.ModuleList(
            nn.ModuleList(_conv_bn(branch, branch, 3) for _ in range(i + 1))
            for i in range(NUM_STEPS)
        )
        self.conv3 = nn.Conv2d(NUM_STEPS * branch, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def steps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The branches on the first conv's output: (B, NUM_STEPS * branch_channels, h, w) ->
        ``NUM_STEPS`` tensors (B, branch_channels, h, w), each branch's last step."""
        outputs: list[torch.Tensor] = []
        previous: list[torch.Tensor] = []  # every step of the branch before
        for split, convs in zip(torch.split(x, self.branch_channels, dim=1), self.branches):
            current: list[torch.Tensor] = []
            h = split
            for j, conv in enumerate(convs):
                if j < len(previous):
                    h = h + previous[j]
                h = conv(h)
                current.append(h)
            outputs.append(h)
            previous = current
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, inplanes, h, w) -> (B, planes, h / stride, w / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn3(self.conv3(torch.cat(self.steps(out), dim=1)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class RSNStage(nn.Module):
    """One stage: a residual-steps trunk (``layer1``-``layer4``, strides 4 to 32 of the image),
    the top-down path (level i: ``laterals[i]`` of trunk level i, plus ``up_convs[i]`` of the
    bilinearly upsampled level i + 1, ReLU) and a prediction on the finest level (``head``:
    conv1x1-BN-ReLU, conv3x3 to K).

    ``gen_skip`` (every stage but the last) adds what the next stage takes: per level
    ``skip_trunk[i](trunk_i) + skip_up[i](up_i)`` (added after its ``layer{i+1}``) and
    ``cross`` (its input, ``width`` channels at stride 4).
    """

    def __init__(
        self,
        *,
        num_keypoints: int,
        counts: tuple[int, ...],
        width: int,
        channels: int,
        gen_skip: bool,
    ) -> None:
        super().__init__()
        inplanes = width
        levels: list[int] = []
        for i, num_blocks in enumerate(counts):
            planes = width * 2**i
            layer = make_layer(
                ResidualStepsBlock,  # takes make_layer's keyword arguments, as Bottleneck
                inplanes=inplanes,
                planes=planes,
                num_blocks=num_blocks,
                stride=1 if i == 0 else 2,
            )
            self.add_module(f"layer{i + 1}", layer)
            inplanes = planes * ResidualStepsBlock.expansion
            levels.append(inplanes)
        self.laterals = nn.ModuleList(_conv_bn(c, channels, 1, relu=False) for c in levels)
        self.up_convs = nn.ModuleList(
            _conv_bn(channels, channels, 1, relu=False) for _ in levels[:-1]
        )
        self.relu = nn.ReLU(inplace=True)
        self.head = nn.Sequential(
            _conv_bn(channels, channels, 1), nn.Conv2d(channels, num_keypoints, 3, padding=1)
        )
        self.gen_skip = gen_skip
        if gen_skip:
            self.skip_trunk = nn.ModuleList(_conv_bn(c, c, 1) for c in levels)
            self.skip_up = nn.ModuleList(_conv_bn(channels, c, 1) for c in levels)
            self.cross = _conv_bn(channels, width, 1)

    def forward(
        self, x: torch.Tensor, skips: list[torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor] | None, torch.Tensor | None]:
        """(B, width, H / 4, W / 4) -> ``(heatmaps (B, K, H / 4, W / 4), features (B, channels,
        H / 4, W / 4), skips for the next stage or None, its input or None)``; ``skips`` are the
        previous stage's, one per level (finest first)."""
        trunk: list[torch.Tensor] = []
        for i, layer in enumerate((self.layer1, self.layer2, self.layer3, self.layer4)):
            x = layer(x)
            if skips is not None:
                x = x + skips[i]
            trunk.append(x)
        ups: list[torch.Tensor] = []  # the top-down path, coarsest level first
        for i in reversed(range(len(trunk))):
            out = self.laterals[i](trunk[i])
            if ups:
                up = F.interpolate(
                    ups[-1], size=out.shape[-2:], mode="bilinear", align_corners=True
                )
                out = out + self.up_convs[i](up)
            ups.append(self.relu(out))
        ups.reverse()  # finest first, as ``trunk``
        heatmaps = self.head(ups[0])
        if not self.gen_skip:
            return heatmaps, ups[0], None, None
        next_skips = [
            st(t) + su(u) for st, su, t, u in zip(self.skip_trunk, self.skip_up, trunk, ups)
        ]
        return heatmaps, ups[0], next_skips, self.cross(ups[0])


class PoseRefineMachine(nn.Module):
    """PRM: conv3x3-BN-ReLU, then ``f * (1 + channel(f) * spatial(f))`` where ``channel`` is
    global average pooling -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid (B, C, 1, 1) and
    ``spatial`` is conv1x1-BN-ReLU -> 9x9 depthwise conv-BN -> sigmoid (B, C, h, w).

    Shapes: (B, C, h, w) -> (B, C, h, w).
    """

    def __init__(self, *, channels: int) -> None:
        super().__init__()
        self.conv = _conv_bn(channels, channels, 3)
        self.channel_attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 1),
            nn.Sigmoid(),
        )
        self.spatial_attention = nn.Sequential(
            _conv_bn(channels, channels, 1),
            _conv_bn(channels, channels, PRM_KERNEL, groups=channels, relu=False),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w) refined features."""
        features = self.conv(x)
        attention = self.channel_attention(features) * self.spatial_attention(features)
        return features * (1 + attention)


class RSN(nn.Module):
    """Residual Steps Network (Cai 2020) with ``num_stacks`` MSPN-style stages and the PRM.

    Args:
        num_keypoints: heatmap channels K.
        num_stacks: stages (1: RSN; 2-4: the paper's 2x / 4x RSN).
        depth: trunk block counts, a key of ``RSN_LAYERS`` (18, 50; 101, 152).
        channels: top-down path and PRM width (the reference's ``UPSAMPLE_CHANNEL_NUM``, 256).
        width: stem width (64); trunk stage i has ``width * 2**(i - 1)`` channels.
            Smaller values give tiny CPU models.

    ``forward`` returns ``num_stacks + 1`` (B, K, H / 4, W / 4) heatmap tensors: each stage's
    prediction, then the PRM's (``num_outputs``).
    """

    #: No part-segmentation head (callers check this, see ``HourglassMultitask``).
    segmentation: bool = False
    #: OHKM (``--ohkm-topk``) applies to every output, as the reference's loss.
    ohkm_stages: str = "all"

    def __init__(
        self,
        *,
        num_keypoints: int = 17,
        num_stacks: int = 1,
        depth: int = 18,
        channels: int = 256,
        width: int = 64,
    ) -> None:
        super().__init__()
        if depth not in RSN_LAYERS:
            raise ValueError(f"RSN depth must be one of {sorted(RSN_LAYERS)}, got {depth}")
        if min(num_keypoints, num_stacks, channels, width) < 1:
            raise ValueError(
                "num_keypoints, num_stacks, channels and width must be >= 1, got "
                f"{num_keypoints}, {num_stacks}, {channels}, {width}"
            )
        self.num_keypoints = num_keypoints
        self.num_stacks = num_stacks
        self.depth = depth
        self.channels = channels
        self.width = width
        #: Heatmap tensors ``forward`` returns: one per stage and the PRM's.
        self.num_outputs = num_stacks + 1
        #: Target sigma of each output relative to ``data.sigma`` (coarse-to-fine supervision:
        #: wider targets for all stages but the last; the PRM output refines the last).
        self.stage_sigma_scales: tuple[float, ...] = (
            *([EARLY_STAGE_SIGMA_SCALE] * (num_stacks - 1)),
            1.0,
            1.0,
        )

        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.stages = nn.ModuleList(
            RSNStage(
                num_keypoints=num_keypoints,
                counts=RSN_LAYERS[depth],
                width=width,
                channels=channels,
                gen_skip=s < num_stacks - 1,
            )
            for s in range(num_stacks)
        )
        self.prm = PoseRefineMachine(channels=channels)
        self.final_layer = nn.Conv2d(channels, num_keypoints, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        """The prediction convs (each stage's last and ``final_layer``) normal(0, 0.001) with
        zero bias, as SimpleBaseline's head (``init_pose_layers``); the other layers keep
        PyTorch's defaults, as SimpleBaseline's trunk. (The reference's Kaiming fan-out trunk
        trained no better in the tiny overfit, and a fresh model's eval-mode activations grew
        through the blocks until bfloat16 autocast was off by 10-25 % of the output range.)"""
        init_pose_layers([*(stage.head[-1] for stage in self.stages), self.final_layer])

    def forward(
        self, x: torch.Tensor, *, return_features: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, H, W) normalised images -> ``num_stacks + 1`` (B, K, H / 4, W / 4) heatmaps.

        With ``return_features=True`` returns ``(heatmaps, features)``, the features being the
        input of ``final_layer``: the PRM's refinement of the last stage's finest top-down level
        (B, channels, H / 4, W / 4).
        """
        height, width = x.shape[-2:]
        if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ValueError(
                f"RSN input sides must be multiples of {INPUT_MULTIPLE}, got {height} x {width}"
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        heatmaps: list[torch.Tensor] = []
        skips: list[torch.Tensor] | None = None
        features = x
        for stage in self.stages:
            stage_heatmaps, features, skips, next_input = stage(x, skips)
            heatmaps.append(stage_heatmaps)
            if next_input is not None:
                x = next_input
        features = self.prm(features)
        heatmaps.append(self.final_layer(features))
        if return_features:
            return heatmaps, features
        return heatmaps
