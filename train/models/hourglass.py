"""Stacked hourglass network (Newell, Yang & Deng, "Stacked Hourglass Networks for Human Pose
Estimation", ECCV 2016), as built by bearpaw/pytorch-pose and the CC-SSL reference.

Module and attribute names, their creation order and the (PyTorch default) initialisation are
the reference's, so its checkpoints and RMSprop state load with ``strict=True``
(docs/reference_compat.md §2).

Shapes: input (B, 3, H, W) with H and W multiples of ``INPUT_MULTIPLE``; each stack outputs
(B, K, H / 4, W / 4) heatmaps, e.g. (B, 18, 64, 64) for a 256 x 256 input.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Bottleneck",
    "Hourglass",
    "HourglassNet",
    "EXPANSION",
    "HOURGLASS_DEPTH",
    "INPUT_MULTIPLE",
    "OUTPUT_STRIDE",
]

#: A bottleneck outputs ``planes * EXPANSION`` channels (pytorch-pose ``Bottleneck.expansion``).
EXPANSION = 2
#: Max-pool levels inside each hourglass: 64 -> 4 px for a 256 input (Newell 2016, pytorch-pose
#: ``Hourglass(block, num_blocks, num_feats, 4)``).
HOURGLASS_DEPTH = 4
#: The stem (7x7 stride-2 conv, then a 2x2 max-pool) makes heatmaps 4x smaller than the input.
OUTPUT_STRIDE = 4
#: Input sides must divide evenly through the stem and every hourglass level.
INPUT_MULTIPLE = OUTPUT_STRIDE * 2**HOURGLASS_DEPTH


class Bottleneck(nn.Module):
    """Pre-activation bottleneck: (BN-ReLU-conv) x 3 with 1x1, 3x3, 1x1 kernels, convs with bias.

    ``inplanes`` -> ``planes * EXPANSION`` channels, spatial size unchanged. ``downsample`` (the
    reference's ``Sequential(conv1x1)``) maps the identity branch when the widths differ.
    """

    def __init__(self, *, inplanes: int, planes: int, downsample: nn.Module | None = None) -> None:
        super().__init__()
        # Creation order = reference order (it fixes state_dict and optimizer-state order).
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=True)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, padding=1, bias=True)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, inplanes, h, w) -> (B, planes * EXPANSION, h, w)."""
        out = self.conv1(self.relu(self.bn1(x)))
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        residual = x if self.downsample is None else self.downsample(x)
        out += residual
        return out


def _residual(*, planes: int, num_blocks: int) -> nn.Sequential:
    """``num_blocks`` width-preserving bottlenecks, ``planes * EXPANSION`` channels in and out."""
    width = planes * EXPANSION
    return nn.Sequential(*[Bottleneck(inplanes=width, planes=planes) for _ in range(num_blocks)])


class Hourglass(nn.Module):
    """One recursive hourglass of ``depth`` levels, ``planes * EXPANSION`` channels throughout.

    ``hg[i][j]`` (reference naming): level ``i`` counts from the innermost (0, the lowest
    resolution) to the outermost (``depth - 1``, full resolution); branch ``j`` is 0 the skip
    branch, 1 the branch after max-pooling, 2 the branch after the inner recursion, and 3 (only at
    ``i = 0``) the bottom residual that replaces the recursion.
    """

    def __init__(self, *, planes: int, num_blocks: int, depth: int = HOURGLASS_DEPTH) -> None:
        super().__init__()
        self.depth = depth
        levels = []
        for i in range(depth):
            branches = 4 if i == 0 else 3
            levels.append(
                nn.ModuleList(
                    _residual(planes=planes, num_blocks=num_blocks) for _ in range(branches)
                )
            )
        self.hg = nn.ModuleList(levels)

    def _level(self, level: int, x: torch.Tensor) -> torch.Tensor:
        branches = self.hg[level]
        skip = branches[0](x)
        low = branches[1](F.max_pool2d(x, kernel_size=2, stride=2))
        low = self._level(level - 1, low) if level > 0 else branches[3](low)
        low = branches[2](low)
        return skip + F.interpolate(low, scale_factor=2, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w); h and w must be divisible by ``2 ** depth``."""
        return self._level(self.depth - 1, x)


class HourglassNet(nn.Module):
    """Stacked hourglass with intermediate supervision (Newell 2016; reference arch ``hg``).

    Args:
        num_stacks: number of hourglass stacks (reference ``--stacks``, 4).
        num_blocks: bottlenecks per residual unit (reference ``--blocks``, 1).
        num_keypoints: heatmap channels K (18 for the animal spec).
        channels: hourglass width; the reference's 256 (``num_feats`` 128 x expansion 2). The stem
            is scaled with it (``channels // 4`` = 64 for 256), so small widths give tiny models.

    ``forward`` returns a list of ``num_stacks`` heatmap tensors (B, K, H / 4, W / 4), the last
    one being the final prediction. With the defaults the model has 13,022,408 parameters and
    1,298 state_dict entries, named exactly as the reference's.
    """

    #: No part-segmentation head (``HourglassMultitask`` has one): callers check this before
    #: asking ``forward`` for segmentation logits.
    segmentation: bool = False

    def __init__(
        self,
        *,
        num_stacks: int = 4,
        num_blocks: int = 1,
        num_keypoints: int = 18,
        channels: int = 256,
    ) -> None:
        super().__init__()
        if num_stacks < 1 or num_blocks < 1 or num_keypoints < 1:
            raise ValueError(
                f"num_stacks, num_blocks and num_keypoints must be >= 1, got "
                f"{num_stacks}, {num_blocks}, {num_keypoints}"
            )
        if channels < 4 or channels % 4:
            raise ValueError(f"channels must be a positive multiple of 4, got {channels}")
        self.num_stacks = num_stacks
        self.num_blocks = num_blocks
        self.num_keypoints = num_keypoints
        self.channels = channels
        stem = channels // 4  # reference inplanes = 64
        feats = channels // 2  # reference num_feats = 128

        # Creation order = reference order (state_dict and optimizer-state order follow it).
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=True)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(_widen(inplanes=stem, planes=stem))
        self.layer2 = nn.Sequential(_widen(inplanes=stem * EXPANSION, planes=feats))
        self.layer3 = nn.Sequential(Bottleneck(inplanes=channels, planes=feats))
        self.maxpool = nn.MaxPool2d(2, stride=2)

        hg, res, fc, score, fc_, score_ = [], [], [], [], [], []
        for s in range(num_stacks):
            hg.append(Hourglass(planes=feats, num_blocks=num_blocks))
            res.append(_residual(planes=feats, num_blocks=num_blocks))
            fc.append(
                nn.Sequential(
                    nn.Conv2d(channels, channels, kernel_size=1, bias=True),
                    nn.BatchNorm2d(channels),
                    nn.ReLU(inplace=True),
                )
            )
            score.append(nn.Conv2d(channels, num_keypoints, kernel_size=1, bias=True))
            if s < num_stacks - 1:
                fc_.append(nn.Conv2d(channels, channels, kernel_size=1, bias=True))
                score_.append(nn.Conv2d(num_keypoints, channels, kernel_size=1, bias=True))
        self.hg = nn.ModuleList(hg)
        self.res = nn.ModuleList(res)
        self.fc = nn.ModuleList(fc)
        self.score = nn.ModuleList(score)
        self.fc_ = nn.ModuleList(fc_)
        self.score_ = nn.ModuleList(score_)

    def forward(
        self, x: torch.Tensor, *, return_features: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, H, W) normalised images -> ``num_stacks`` x (B, K, H / 4, W / 4) heatmaps.

        With ``return_features=True`` (keyword only) returns ``(outputs, features)``: the same
        heatmap list and the last stack's feature map after ``fc`` (B, channels, H / 4, W / 4),
        i.e. the input of the last ``score`` conv (the trunk features that WS-CDA's domain
        discriminator sees, ``animalpose.adapt.domain``). The flag adds no modules or
        parameters, so the state_dict is the same either way.
        """
        outputs, features = self.run_stacks(x)
        if return_features:
            return outputs, features  # nothing modifies the last stack's fc output in place
        return outputs

    def run_stacks(
        self,
        x: torch.Tensor,
        on_stack: Callable[[int, torch.Tensor], None] | None = None,
    ) -> tuple[list[torch.Tensor], torch.Tensor]:
        """The network: ``(outputs, features)`` of ``forward(x, return_features=True)``;
        ``on_stack(s, y)`` sees each stack's ``fc`` output ``y`` (extra heads, e.g.
        ``hg_multitask``'s part segmentation)."""
        height, width = x.shape[-2:]
        if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ValueError(
                f"{type(self).__name__} input sides must be multiples of {INPUT_MULTIPLE}, got "
                f"{height} x {width}"
            )
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer1(x)
        x = self.maxpool(x)
        x = self.layer2(x)
        x = self.layer3(x)

        outputs = []
        for s in range(self.num_stacks):
            y = self.hg[s](x)
            y = self.res[s](y)
            y = self.fc[s](y)
            heatmaps = self.score[s](y)
            outputs.append(heatmaps)
            if on_stack is not None:
                on_stack(s, y)
            if s < self.num_stacks - 1:
                x = x + self.fc_[s](y) + self.score_[s](heatmaps)
        return outputs, y


def _widen(*, inplanes: int, planes: int) -> Bottleneck:
    """A bottleneck whose identity branch is a 1x1 conv (reference ``downsample``, index 0)."""
    downsample = nn.Sequential(nn.Conv2d(inplanes, planes * EXPANSION, kernel_size=1, bias=True))
    return Bottleneck(inplanes=inplanes, planes=planes, downsample=downsample)
