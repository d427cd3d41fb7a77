"""SimpleBaseline (Xiao, Wu & Wei, "Simple Baselines for Human Pose Estimation and Tracking",
ECCV 2018), as built by microsoft/human-pose-estimation.pytorch (``lib/models/pose_resnet.py``,
``PoseResNet``; its configs call it ``pose_resnet``).

A ResNet trunk (torchvision's layout: ``conv1``, ``bn1``, ``layer1``-``layer4``), three 4x4
stride-2 transposed convolutions with 256 filters, each followed by BN and ReLU
(``deconv_layers``), and a 1x1 convolution to K heatmaps (``final_layer``). Module names and
creation order are the reference's, so its published ``pose_resnet_50_256x192.pth.tar`` (a bare
state_dict, saved with ``model.module.state_dict()``: no ``module.`` prefix) loads with
``strict=True``, and torchvision ImageNet files fit the trunk key for key
(``animalpose.train.models.pretrained``). Files saved by PyTorch 0.4.0, such as that one, have no
BN ``num_batches_tracked`` buffers (microsoft/human-pose-estimation.pytorch issue 11); those
counters are not weights.

Shapes: input (B, 3, H, W) with H and W multiples of ``INPUT_MULTIPLE``; one (B, K, H / 4, W / 4)
heatmap tensor, e.g. (B, 17, 64, 48) for the published 256 x 192 input. ResNet-50 with K = 17:
34.0 M parameters (the paper's figure).

``BasicBlock`` and ``Bottleneck`` are the torchvision / reference ResNet blocks (post-activation,
convs without bias); HRNet (``hrnet.py``) builds its branches from the same two.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = [
    "BN_MOMENTUM",
    "BasicBlock",
    "Bottleneck",
    "DECONV_KERNEL",
    "HEAD_INIT_STD",
    "init_pose_layers",
    "INPUT_MULTIPLE",
    "OUTPUT_STRIDE",
    "RESNET_LAYERS",
    "SimpleBaseline",
]

#: BatchNorm momentum of both reference repositories (``BN_MOMENTUM = 0.1``, PyTorch's default).
BN_MOMENTUM = 0.1
#: Deconvolution kernel of the published configs (``NUM_DECONV_KERNELS: [4, 4, 4]``); with
#: padding 1 and output padding 0 (the reference's ``_get_deconv_cfg`` for kernel 4) each layer
#: exactly doubles the side.
DECONV_KERNEL = 4
DECONV_PADDING = 1
DECONV_OUTPUT_PADDING = 0
#: Standard deviation of the normal initialisation of the deconvolutions and the final 1x1 conv
#: (the reference's ``init_weights``: ``normal_(std=0.001)``, biases 0, BN weight 1 / bias 0).
HEAD_INIT_STD = 0.001
#: ResNet's stem and four stages reduce the side 32 times.
TRUNK_STRIDE = 32
#: Heatmaps are 1/4 of the input: 32 / 2**3 with the default three deconvolutions.
OUTPUT_STRIDE = 4
#: Input sides must divide evenly through the trunk (192 and 256 do).
INPUT_MULTIPLE = TRUNK_STRIDE


class BasicBlock(nn.Module):
    """ResNet basic block: conv3x3-BN-ReLU-conv3x3-BN, plus the identity, then ReLU.

    ``inplanes`` -> ``planes`` channels; ``stride`` 2 halves the side. ``downsample`` (a
    ``Sequential(conv1x1, BN)``) maps the identity branch when the shapes differ.
    """

    #: Output channels = ``planes * expansion`` (torchvision's and the reference's attribute).
    expansion = 1

    def __init__(
        self, *, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        # Creation order = reference order (state_dict order follows it).
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, inplanes, h, w) -> (B, planes, h / stride, w / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    """ResNet bottleneck (torchvision's "v1.5": the stride sits on the 3x3 conv):
    conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1-BN, plus the identity, then ReLU.

    ``inplanes`` -> ``planes * 4`` channels; ``stride`` 2 halves the side.
    """

    expansion = 4

    def __init__(
        self, *, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None
    ) -> None:
        super().__init__()
        width = planes * self.expansion
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, width, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, inplanes, h, w) -> (B, planes * 4, h / stride, w / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu(out + residual)


#: ResNet depth -> (block, blocks per stage): the reference's ``resnet_spec`` (He et al. 2016).
RESNET_LAYERS: dict[int, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


def make_layer(
    block: type[BasicBlock] | type[Bottleneck],
    *,
    inplanes: int,
    planes: int,
    num_blocks: int,
    stride: int = 1,
    **options: object,
) -> nn.Sequential:
    """``num_blocks`` blocks, the first one striding and widening (with a ``downsample`` of
    ``Sequential(conv1x1, BN)`` when the identity needs one), as torchvision and both reference
    repositories name them (``layerN.0.downsample.0`` / ``.1``). ``options`` go to every block
    (LPN's ``attention``)."""
    width = planes * block.expansion
    downsample = None
    if stride != 1 or inplanes != width:
        downsample = nn.Sequential(
            nn.Conv2d(inplanes, width, 1, stride=stride, bias=False),
            nn.BatchNorm2d(width, momentum=BN_MOMENTUM),
        )
    blocks = [
        block(inplanes=inplanes, planes=planes, stride=stride, downsample=downsample, **options)
    ]
    blocks += [block(inplanes=width, planes=planes, **options) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


def init_pose_layers(modules: Iterable[nn.Module]) -> None:
    """The MSRA and HRNet code bases' ``init_weights`` on ``modules``: (transposed)
    convolutions normal(0, ``HEAD_INIT_STD``) with zero bias, BatchNorm weight 1 and bias 0."""
    for m in modules:
        if isinstance(m, (nn.ConvTranspose2d, nn.Conv2d)):
            nn.init.normal_(m.weight, std=HEAD_INIT_STD)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class SimpleBaseline(nn.Module):
    """ResNet + deconvolution head (Xiao 2018; microsoft/human-pose-estimation.pytorch
    ``PoseResNet``).

    Args:
        depth: ResNet depth, a key of ``RESNET_LAYERS`` (the paper's 50, 101, 152; 18 and 34
            as in the reference).
        num_keypoints: heatmap channels K (17 for COCO).
        deconv_channels: filters of every deconvolution (``NUM_DECONV_FILTERS``, 256).
        deconv_layers: number of 4x4 stride-2 deconvolutions (``NUM_DECONV_LAYERS``, 3); the
            heatmaps are ``32 / 2**deconv_layers`` times smaller than the input.
        base_channels: ResNet width (64: the stem and ``layer1``'s planes; stage i has
            ``base_channels * 2**(i - 1)`` planes). Smaller values give tiny CPU models; only 64
            fits torchvision and published files.

    ``forward`` returns a list of one (B, K, H / 4, W / 4) heatmap tensor. ResNet-50 with
    K = 17 has 33,999,697 parameters and 338 state_dict entries (282 weights and BN statistics
    plus 56 ``num_batches_tracked`` counters).
    """

    #: No part-segmentation head (callers check this, see ``HourglassMultitask``).
    segmentation: bool = False
    #: Top-level modules an ImageNet ResNet file initialises (``pretrained.load_trunk_weights``).
    trunk_layers: tuple[str, ...] = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")

    def __init__(
        self,
        *,
        depth: int = 50,
        num_keypoints: int = 17,
        deconv_channels: int = 256,
        deconv_layers: int = 3,
        base_channels: int = 64,
    ) -> None:
        super().__init__()
        if depth not in RESNET_LAYERS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYERS)}, got {depth}")
        if min(num_keypoints, deconv_channels, deconv_layers, base_channels) < 1:
            raise ValueError(
                "num_keypoints, deconv_channels, deconv_layers and base_channels must be >= 1, "
                f"got {num_keypoints}, {deconv_channels}, {deconv_layers}, {base_channels}"
            )
        self.depth = depth
        self.num_keypoints = num_keypoints
        self.num_deconv_layers = deconv_layers
        block, counts = RESNET_LAYERS[depth]

        # Creation order = reference order (state_dict and optimizer-state order follow it).
        self.conv1 = nn.Conv2d(3, base_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = base_channels
        for i, num_blocks in enumerate(counts):
            planes = base_channels * 2**i
            stride = 1 if i == 0 else 2  # layer1 follows the max-pool at full stage width
            layer = make_layer(
                block, inplanes=inplanes, planes=planes, num_blocks=num_blocks, stride=stride
            )
            self.add_module(f"layer{i + 1}", layer)
            inplanes = planes * block.expansion

        deconvs: list[nn.Module] = []
        for _ in range(deconv_layers):
            deconvs += [
                nn.ConvTranspose2d(
                    inplanes,
                    deconv_channels,
                    DECONV_KERNEL,
                    stride=2,
                    padding=DECONV_PADDING,
                    output_padding=DECONV_OUTPUT_PADDING,
                    bias=False,  # DECONV_WITH_BIAS: false
                ),
                nn.BatchNorm2d(deconv_channels, momentum=BN_MOMENTUM),
                nn.ReLU(inplace=True),
            ]
            inplanes = deconv_channels
        self.deconv_layers = nn.Sequential(*deconvs)
        # FINAL_CONV_KERNEL: 1 (padding 0), with bias.
        self.final_layer = nn.Conv2d(inplanes, num_keypoints, 1)
        self._init_head()

    def _init_head(self) -> None:
        """The reference's ``init_weights`` for the layers ImageNet does not provide; the trunk
        keeps PyTorch's default initialisation until ImageNet weights are loaded."""
        init_pose_layers([*self.deconv_layers.modules(), self.final_layer])

    def forward(
        self, x: torch.Tensor, *, return_features: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, H, W) normalised images -> [(B, K, H / 4, W / 4) heatmaps].

        With ``return_features=True`` returns ``(heatmaps, features)``, the features being the
        input of ``final_layer`` (B, deconv_channels, H / 4, W / 4), as ``HourglassNet`` does.
        """
        height, width = x.shape[-2:]
        if height % INPUT_MULTIPLE or width % INPUT_MULTIPLE:
            raise ValueError(
                f"SimpleBaseline input sides must be multiples of {INPUT_MULTIPLE}, got "
                f"{height} x {width}"
            )
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        features = self.deconv_layers(x)
        heatmaps = [self.final_layer(features)]
        if return_features:
            return heatmaps, features
        return heatmaps
