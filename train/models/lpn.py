"""LPN (Zhang, Zhu & Ye, "Simple and Lightweight Human Pose Estimation", 2019), as built by
zhang943/lpn-pytorch (``lib/models/lpn.py``, ``lib/models/lightweight_modules.py``).

SimpleBaseline (``simple_baseline.py``) made light: every ResNet bottleneck becomes a *lightweight
bottleneck* (1x1 conv, 3x3 depthwise conv, 1x1 conv, expansion 1) followed by a *GC block* (Cao et
al., "GCNet", 2019: softmax attention pooling over positions, then 1x1 conv -> LayerNorm -> ReLU ->
1x1 conv, added to every position; ``attention="none"`` leaves it out for the paper's ablation),
``layer4`` keeps stride 1 (trunk stride 16), and the head is two 4x4 stride-2 *group*
deconvolutions (``groups = gcd(in, out)``), each followed by a 1x1 conv that mixes the groups, then
a 1x1 conv to K heatmaps. Module names and creation order are the reference's (``conv1`` ...
``layer4``, ``deconv_layers``, ``final_layer``; ``att.conv_mask``, ``att.channel_add_conv`` in each
block), so its state_dicts load key for key.

Shapes: input (B, 3, H, W) with H and W multiples of ``INPUT_MULTIPLE``; one (B, K, H / 4, W / 4)
heatmap tensor. LPN-50 with K = 17: 2.91 M parameters and 1.07 G multiply-accumulates at
256 x 192 (the paper reports 2.9 M and 1.0 GFLOPs; its "FLOPs" are multiply-accumulates, as in
SimpleBaseline's tables; torch's ``FlopCounterMode`` counts 2 per multiply-accumulate).

The paper's other two ingredients are not modules: its *iterative training* (each stage restarts
from the previous stage's weights with a fresh learning-rate schedule) is ``train/train.py ...
--pretrained <previous run>/model_best.pth.tar``, and its beta-soft-argmax decoding is the
``soft-argmax`` codec (``datasets/codecs``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from animalpose.train.models.simple_baseline import (
    BN_MOMENTUM,
    DECONV_KERNEL,
    DECONV_OUTPUT_PADDING,
    DECONV_PADDING,
    RESNET_LAYERS,
    init_pose_layers,
    make_layer,
)

__all__ = [
    "DECONV_LAYERS",
    "GC_MIN_CHANNELS",
    "GC_RATIO",
    "GlobalContextBlock",
    "INPUT_MULTIPLE",
    "LPN",
    "LPN_ATTENTIONS",
    "LPN_DEPTHS",
    "LightweightBottleneck",
]

#: GC block bottleneck: ``C // GC_RATIO`` channels, but at least ``GC_MIN_CHANNELS`` (the
#: reference's ``LW_Bottleneck``: ``planes // 16 if planes // 16 >= 16 else 16``).
GC_RATIO = 16
GC_MIN_CHANNELS = 16
#: Two deconvolutions (the published configs' ``NUM_DECONV_LAYERS: 2``): trunk stride 16 / 2**2
#: gives heatmaps at 1/4 of the input.
DECONV_LAYERS = 2
#: Deconvolution filters per unit of base width: 256 filters at the paper's width 64
#: (``NUM_DECONV_FILTERS: [256, 256]``).
DECONV_WIDTH_FACTOR = 4
#: Stem (stride 4) x ``layer2`` x ``layer3`` (stride 2 each); ``layer4`` keeps stride 1.
TRUNK_STRIDE = 16
#: Input sides must divide evenly through the trunk.
INPUT_MULTIPLE = TRUNK_STRIDE
#: The reference's depths (``resnet_spec``: lightweight bottlenecks only, no 18 / 34).
LPN_DEPTHS = tuple(d for d in sorted(RESNET_LAYERS) if d >= 50)
#: Per-block attention: ``gc`` (a GC block after ``bn3``, the paper) or ``none`` (the plain
#: lightweight bottleneck).
LPN_ATTENTIONS = ("gc", "none")


class GlobalContextBlock(nn.Module):
    """GC block (GCNet) with the "channel_add" fusion LPN uses:
    ``x + transform(sum_p softmax_p(conv_mask(x)) * x[:, :, p])``.

    The transform is ``channel_add_conv`` = 1x1 conv (C -> hidden) -> LayerNorm -> ReLU ->
    1x1 conv (hidden -> C). Its last conv is zero-initialised (``reset_parameters``), so a new
    block returns its input unchanged and training starts from the plain network.

    Shapes: (B, C, h, w) -> (B, C, h, w).
    """

    def __init__(self, *, channels: int, hidden: int) -> None:
        super().__init__()
        # Creation order and names = the reference's GCBlock (pool "att", fusion "channel_add").
        self.conv_mask = nn.Conv2d(channels, 1, 1)
        self.softmax = nn.Softmax(dim=2)
        self.channel_add_conv = nn.Sequential(
            nn.Conv2d(channels, hidden, 1),
            nn.LayerNorm([hidden, 1, 1]),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``conv_mask`` Kaiming (fan-in), the transform's last conv all zeros (the identity
        start of GCNet and the reference's ``last_zero_init``)."""
        nn.init.kaiming_normal_(self.conv_mask.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_mask.bias)
        last = self.channel_add_conv[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def context(self, x: torch.Tensor) -> torch.Tensor:
        """Attention pooling: (B, C, h, w) -> (B, C, 1, 1), the positions weighted by the
        softmax (over all h * w positions) of the one-channel ``conv_mask``."""
        batch, channels, height, width = x.shape
        weights = self.softmax(self.conv_mask(x).reshape(batch, 1, height * width))
        pooled = torch.bmm(x.reshape(batch, channels, height * width), weights.transpose(1, 2))
        return pooled.reshape(batch, channels, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, C, h, w): the same per-channel term added at every position."""
        return x + self.channel_add_conv(self.context(x))


class LightweightBottleneck(nn.Module):
    """LPN's bottleneck: conv1x1-BN-ReLU, depthwise conv3x3-BN-ReLU, conv1x1-BN, GC block, plus
    the identity, then ReLU (the reference's ``LW_Bottleneck`` with ``attention='GC'``); with
    ``attention="none"`` no GC block (``att`` is an identity without weights).

    ``inplanes`` -> ``planes`` channels (expansion 1); ``stride`` 2 (on the depthwise conv) halves
    the side. Takes ``make_layer``'s keyword arguments, as ``BasicBlock`` and ``Bottleneck``.
    """

    #: Output channels = ``planes * expansion``.
    expansion = 1

    def __init__(
        self,
        *,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        attention: str = "gc",
    ) -> None:
        super().__init__()
        if attention not in LPN_ATTENTIONS:
            raise ValueError(f"LPN attention must be one of {LPN_ATTENTIONS}, got {attention!r}")
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(
            planes, planes, 3, stride=stride, padding=1, groups=planes, bias=False
        )
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        width = planes * self.expansion
        self.att = (
            GlobalContextBlock(channels=width, hidden=max(width // GC_RATIO, GC_MIN_CHANNELS))
            if attention == "gc"
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, inplanes, h, w) -> (B, planes, h / stride, w / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.att(self.bn3(self.conv3(out)))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class LPN(nn.Module):
    """Lightweight Pose Network (Zhang 2019; zhang943/lpn-pytorch ``LPN``).

    Args:
        num_keypoints: heatmap channels K.
        depth: the ResNet block counts of ``layer1``-``layer4`` (``LPN_DEPTHS``: 50, 101, 152).
        width: base width (64: the stem and ``layer1``; stage i has ``width * 2**(i - 1)``
            channels; the deconvolutions ``DECONV_WIDTH_FACTOR * width``, 256). Smaller values
            give tiny CPU models.
        attention: ``LPN_ATTENTIONS``: ``gc`` (a GC block in every bottleneck, the paper) or
            ``none`` (the GC-block ablation: 2,732,689 parameters at LPN-50, K = 17).

    ``forward`` returns a list of one (B, K, H / 4, W / 4) heatmap tensor. LPN-50 (width 64,
    K = 17): 2,911,153 parameters.
    """

    #: No part-segmentation head (callers check this, see ``HourglassMultitask``).
    segmentation: bool = False
    #: Heatmap tensors ``forward`` returns.
    num_outputs: int = 1

    def __init__(
        self, *, num_keypoints: int = 17, depth: int = 50, width: int = 64, attention: str = "gc"
    ) -> None:
        super().__init__()
        if depth not in LPN_DEPTHS:
            raise ValueError(f"LPN depth must be one of {list(LPN_DEPTHS)}, got {depth}")
        if min(num_keypoints, width) < 1:
            raise ValueError(
                f"num_keypoints and width must be >= 1, got {num_keypoints} and {width}"
            )
        self.num_keypoints = num_keypoints
        self.depth = depth
        self.width = width
        self.attention = attention
        _, counts = RESNET_LAYERS[depth]

        # Creation order = reference order (state_dict and optimizer-state order follow it).
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = width
        for i, num_blocks in enumerate(counts):
            planes = width * 2**i
            stride = 2 if i in (1, 2) else 1  # layer1 follows the max-pool; layer4 stride 1
            layer = make_layer(
                LightweightBottleneck,  # takes make_layer's keyword arguments, as Bottleneck
                inplanes=inplanes,
                planes=planes,
                num_blocks=num_blocks,
                stride=stride,
                attention=attention,
            )
            self.add_module(f"layer{i + 1}", layer)
            inplanes = planes * LightweightBottleneck.expansion

        deconv_channels = DECONV_WIDTH_FACTOR * width
        deconvs: list[nn.Module] = []
        for _ in range(DECONV_LAYERS):
            deconvs += [
                nn.ConvTranspose2d(
                    inplanes,
                    deconv_channels,
                    DECONV_KERNEL,
                    stride=2,
                    padding=DECONV_PADDING,
                    output_padding=DECONV_OUTPUT_PADDING,
                    groups=math.gcd(inplanes, deconv_channels),
                    bias=False,  # DECONV_WITH_BIAS: false
                ),
                nn.BatchNorm2d(deconv_channels, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
                # The 1x1 conv mixes the deconvolution's groups.
                nn.Conv2d(deconv_channels, deconv_channels, 1, bias=False),
                nn.BatchNorm2d(deconv_channels, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            ]
            inplanes = deconv_channels
        self.deconv_layers = nn.Sequential(*deconvs)
        self.final_layer = nn.Conv2d(inplanes, num_keypoints, 1)  # FINAL_CONV_KERNEL: 1, bias
        self._init_weights()

    def _init_weights(self) -> None:
        """The reference's ``init_weights`` (LPN trains from scratch): every (transposed) conv
        normal(0, 0.001), BN 1 / 0; then every GC block's own ``reset_parameters`` again
        (Kaiming ``conv_mask``, zero last conv: the identity start that the reference's blanket
        re-initialisation overwrote)."""
        init_pose_layers(self.modules())
        for m in self.modules():
            if isinstance(m, GlobalContextBlock):
                m.reset_parameters()

    def forward(
        self, x: torch.Tensor, *, return_features: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, H, W) normalised images -> [(B, K, H / 4, W / 4) heatmaps].

        With ``return_features=True`` returns ``(heatmaps, features)``, the features being the
        input of ``final_layer`` (B, 4 * width, H / 4, W / 4), as ``SimpleBaseline``.
        """
        height, width = x.shape[-2:]
        if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ValueError(
                f"LPN input sides must be multiples of {INPUT_MULTIPLE}, got {height} x {width}"
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        features = self.deconv_layers(x)
        heatmaps = [self.final_layer(features)]
        if return_features:
            return heatmaps, features
        return heatmaps
