"""MSPN, the Multi-Stage Pose Network (Li, Wang, Yu, Zhang, Shi, Li, Tian, Sun & Yu,
"Rethinking on Multi-Stage Networks for Human Pose Estimation", arXiv 1901.00148), after
megvii-detection/MSPN and its port in open-mmlab/mmpose (``models/backbones/mspn.py``).

``num_stacks`` single-stage modules, each a CPN-GlobalNet-like encoder-decoder:

- Down path: stage 1 is the ResNet trunk (torchvision's names ``conv1``, ``bn1``,
  ``layer1``-``layer4``, so ImageNet files load through ``animalpose.train.models.pretrained``);
  every later stage (``down``) runs the same four ResNet layers, lighter only in that it has no
  7x7 stem: its input is the previous stage's finest up-path features mapped to 64 channels by a
  1x1 conv + BN + ReLU (``cross[n].stem``, MSPN's ``cross_conv``) at stride 4.
- Up path (``up``): per level a 1x1 lateral conv + BN of the down features to ``channels``; from
  the coarsest level down, the coarser up feature is upsampled bilinearly, put through a
  1x1 conv + BN and added, then ReLU (MSPN's ``Upsample_unit``).
- Prediction (``heads``): on the finest up level (stride 4) a 1x1 conv + BN + ReLU and a 3x3 conv
  to K heatmaps, one output per stage.
- Cross-stage feature aggregation (``cross``): stage n + 1's down level i (the output of its
  ``layer{i+1}``) adds ``cross[n].down_skips[i]`` (1x1 conv + BN + ReLU) of stage n's down level
  i and ``cross[n].up_skips[i]`` of stage n's up level i, before going on down.

Coarse-to-fine supervision: ``stage_sigma_scales`` makes the early stages' targets wider
(MSPN's Gaussian kernels 15, 11, 9, 7 for four stages, as sigmas relative to the last); OHKM,
when the trainer uses it, applies to every stage (``ohkm_stages = "all"``).

Where this differs from MSPN: each stage is supervised on its stride-4 output only (MSPN also
supervises every up level of every stage), bilinear resizing uses half-pixel centres
(``align_corners=False``) and the default trunk is ResNet-18 with two stages, small enough to
train on a CPU at 128 x 96.

Shapes: input (B, 3, H, W) with H and W multiples of ``INPUT_MULTIPLE``; ``forward`` returns
``num_stacks`` (B, K, H / 4, W / 4) tensors, the last the finest. Sizes with K = 17 and
``channels`` 256, GFLOPs at 256 x 192 as ``torch.utils.flop_counter`` counts them (one
multiply-add = 2 FLOPs): the paper's 4-stage ResNet-50 118,913,796 parameters, 46.4 GFLOPs
(23.2 G multiply-adds); 2-stage ResNet-50 56.2 M, 22.1 GFLOPs; the default 2-stage ResNet-18
24.1 M, 10.0 GFLOPs (2.5 at 128 x 96).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from animalpose.train.models.cpn import (
    INPUT_MULTIPLE,
    OUTPUT_STRIDE,
    RESNET_BASE_WIDTH,
    RESNET_TRUNK,
    check_input_size,
    check_sizes,
    conv_bn,
    prediction_head,
    resize_to,
    resnet_layers,
    resnet_level_channels,
    resnet_trunk,
)

__all__ = [
    "INPUT_MULTIPLE",
    "MSPN",
    "OUTPUT_STRIDE",
    "STAGE_KERNELS",
    "CrossStage",
    "DownPath",
    "UpPath",
    "SMALL_KERNEL_SIGMAS",
    "cv2_kernel_sigma",
    "stage_sigma_scales",
]

#: MSPN's Gaussian blur kernel sizes of the four stages' targets, coarse to fine
#: (coarse-to-fine supervision; ``cv2.GaussianBlur`` with sigma 0, which derives the sigma from
#: the size: ``cv2_kernel_sigma``).
STAGE_KERNELS = (15, 11, 9, 7)


#: ``cv2.getGaussianKernel(k, 0)`` for odd k <= 9 returns fixed tables, not sampled Gaussians
#: (3: [1, 2, 1] / 4; 5: [1, 4, 6, 4, 1] / 16; 7: [1, 3.5, 7, 9, 7, 3.5, 1] / 32; 9: [1, 3.25,
#: 7.5, 12.75, 15, 12.75, 7.5, 3.25, 1] / 64): their standard deviations, in pixels.
SMALL_KERNEL_SIGMAS = {
    1: 0.0,
    3: math.sqrt(0.5),
    5: 1.0,
    7: math.sqrt(60 / 32),
    9: math.sqrt(176 / 64),
}


def cv2_kernel_sigma(ksize: int) -> float:
    """The width of the kernel ``cv2.GaussianBlur`` (and ``cv2.getGaussianKernel``) blurs with
    for an odd size ``ksize`` and sigma 0: for ``ksize`` > 9 the Gaussian of sigma ``0.3 *
    ((ksize - 1) / 2 - 1) + 0.8`` (15 -> 2.6, 11 -> 2.0); for ``ksize`` <= 9 the standard
    deviation of OpenCV's fixed table (``SMALL_KERNEL_SIGMAS``: 9 -> 1.658 and 7 -> 1.369, not
    the rule's 1.7 and 1.4)."""
    if ksize in SMALL_KERNEL_SIGMAS:
        return SMALL_KERNEL_SIGMAS[ksize]
    return 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8


def stage_sigma_scales(num_stacks: int) -> tuple[float, ...]:
    """Target sigma of each stage relative to the last one's (``data.sigma``), from
    ``STAGE_KERNELS``: the last ``num_stacks`` kernels when there are at most four stages (two:
    1.658 / 1.369 and 1.0); more stages repeat the widest (15) before those."""
    kernels = STAGE_KERNELS[-num_stacks:]
    kernels = (STAGE_KERNELS[0],) * (num_stacks - len(kernels)) + kernels
    last = cv2_kernel_sigma(kernels[-1])
    return tuple(cv2_kernel_sigma(k) / last for k in kernels)


def _down(
    layers: list[nn.Module], x: torch.Tensor, skips: list[torch.Tensor] | None
) -> list[torch.Tensor]:
    """Run ResNet ``layers`` on the stride-4 stem output ``x``; after layer i add ``skips[i]``
    (the previous stage's aggregated features, same shape). -> [levels 0..3], strides 4..32."""
    levels = []
    for i, layer in enumerate(layers):
        x = layer(x)
        if skips is not None:
            x = x + skips[i]
        levels.append(x)
    return levels


class DownPath(nn.Module):
    """A later stage's down path: ResNet's ``layer1``-``layer4`` for ``depth`` on a 64-channel
    stride-4 input, without the 7x7 stem."""

    def __init__(self, *, depth: int) -> None:
        super().__init__()
        for i, layer in enumerate(resnet_layers(depth)):
            self.add_module(f"layer{i + 1}", layer)

    def forward(self, x: torch.Tensor, skips: list[torch.Tensor]) -> list[torch.Tensor]:
        """(B, 64, H / 4, W / 4) and the four skips -> four levels (strides 4, 8, 16, 32)."""
        layers = [self.layer1, self.layer2, self.layer3, self.layer4]
        return _down(layers, x, skips)


class UpPath(nn.Module):
    """GlobalNet-like up path of one stage: ``levels`` channels (C2-C5) -> ``channels`` at every
    level, coarse information carried up to stride 4 (MSPN's ``Upsample_module``)."""

    def __init__(self, *, levels: tuple[int, ...], channels: int) -> None:
        super().__init__()
        self.laterals = nn.ModuleList(conv_bn(c, channels, relu=False) for c in levels)
        # ups[i] maps the upsampled level i + 1 before the sum at level i.
        self.ups = nn.ModuleList(
            conv_bn(channels, channels, relu=False) for _ in range(len(levels) - 1)
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, levels: list[torch.Tensor]) -> list[torch.Tensor]:
        """Four down levels -> four (B, channels, h_i, w_i) up features, finest first."""
        out: list[torch.Tensor] = list(levels)
        top: torch.Tensor | None = None
        for i in reversed(range(len(levels))):
            merged = self.laterals[i](levels[i])
            if top is not None:
                merged = merged + self.ups[i](resize_to(top, merged.shape[-2:]))
            out[i] = top = self.relu(merged)
        return out


class CrossStage(nn.Module):
    """What stage n hands to stage n + 1: the cross-stage aggregation skips (MSPN's
    ``out_skip1`` from the down level, ``out_skip2`` from the up level; 1x1 conv + BN + ReLU to
    the down level's channels) and the next stage's input (``stem``, MSPN's ``cross_conv``)."""

    def __init__(self, *, levels: tuple[int, ...], channels: int) -> None:
        super().__init__()
        self.down_skips = nn.ModuleList(conv_bn(c, c) for c in levels)
        self.up_skips = nn.ModuleList(conv_bn(channels, c) for c in levels)
        self.stem = conv_bn(channels, RESNET_BASE_WIDTH)

    def forward(
        self, down: list[torch.Tensor], up: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Stage n's down and up levels -> (stage n + 1's input (B, 64, H / 4, W / 4), the four
        skips to add to its down levels)."""
        skips = [
            down_skip(d) + up_skip(u)
            for down_skip, up_skip, d, u in zip(self.down_skips, self.up_skips, down, up)
        ]
        return self.stem(up[0]), skips


class MSPN(nn.Module):
    """Multi-Stage Pose Network (Li et al. 2019): stacked ResNet + GlobalNet-like stages with
    cross-stage feature aggregation and coarse-to-fine supervision.

    Args:
        num_keypoints: heatmap channels K.
        num_stacks: number of stages (the paper: 2 to 4).
        depth: ResNet depth of every stage's down path, a key of ``RESNET_LAYERS`` (the paper's
            50; 18 by default for CPU training).
        channels: up-path width (256 in the paper); even.

    ``forward`` returns ``num_stacks`` (B, K, H / 4, W / 4) tensors, one per stage.
    """

    #: No part-segmentation head.
    segmentation: bool = False
    #: Top-level modules an ImageNet ResNet file initialises: stage 1's down path
    #: (``pretrained.load_trunk_weights``); the later stages start from scratch.
    trunk_layers: tuple[str, ...] = RESNET_TRUNK
    #: OHKM in every stage (the paper).
    ohkm_stages: str = "all"

    def __init__(
        self,
        *,
        num_keypoints: int = 17,
        num_stacks: int = 2,
        depth: int = 18,
        channels: int = 256,
    ) -> None:
        super().__init__()
        check_sizes("MSPN", depth=depth, channels=channels, num_keypoints=num_keypoints)
        if num_stacks < 1:
            raise ValueError(f"MSPN: num_stacks must be >= 1, got {num_stacks}")
        self.num_keypoints = num_keypoints
        self.num_stacks = num_stacks
        self.depth = depth
        self.channels = channels
        #: Output i's target sigma is ``data.sigma * stage_sigma_scales[i]``.
        self.stage_sigma_scales: tuple[float, ...] = stage_sigma_scales(num_stacks)
        levels = resnet_level_channels(depth)
        for name, module in resnet_trunk(depth).items():
            self.add_module(name, module)
        self.down = nn.ModuleList(DownPath(depth=depth) for _ in range(num_stacks - 1))
        self.up = nn.ModuleList(UpPath(levels=levels, channels=channels) for _ in range(num_stacks))
        self.heads = nn.ModuleList(
            prediction_head(channels, num_keypoints) for _ in range(num_stacks)
        )
        self.cross = nn.ModuleList(
            CrossStage(levels=levels, channels=channels) for _ in range(num_stacks - 1)
        )

    def forward(
        self, x: torch.Tensor, *, return_features: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, H, W) normalised images -> ``num_stacks`` (B, K, H / 4, W / 4) heatmap
        tensors, stage 1 first.

        With ``return_features=True`` returns ``(heatmaps, features)``, the features being the
        input of the last stage's 3x3 prediction conv (B, channels, H / 4, W / 4).
        """
        check_input_size("MSPN", x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        down = _down([self.layer1, self.layer2, self.layer3, self.layer4], x, None)
        up = self.up[0](down)
        features = self.heads[0][0](up[0])
        heatmaps = [self.heads[0][1](features)]
        for stage in range(1, self.num_stacks):
            x, skips = self.cross[stage - 1](down, up)
            down = self.down[stage - 1](x, skips)
            up = self.up[stage](down)
            features = self.heads[stage][0](up[0])
            heatmaps.append(self.heads[stage][1](features))
        if return_features:
            return heatmaps, features
        return heatmaps
