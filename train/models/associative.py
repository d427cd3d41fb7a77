"""Bottom-up Associative Embedding on HRNet (Newell, Huang & Deng 2017, "Associative Embedding";
Cheng et al. 2020, "HigherHRNet"), as HRNet/HigherHRNet-Human-Pose-Estimation builds it
(``lib/models/pose_higher_hrnet.py``, ``PoseHigherResolutionNet``).

The trunk is ``HRNet``'s (stem, ``layer1``, stages 2-4, the same module names), so an HRNet
ImageNet file initialises it (``trunk_layers``). Its 1x1 head is replaced by the reference's
``final_layers``:

- ``final_layers.0``: a 1x1 conv on the highest-resolution branch (stride 4) to 2K channels,
  K detection heatmaps then K tag maps (``TAG_PER_JOINT: True``, 1-D tags). With ``higher``
  off this is the paper's "HRNet + AE" baseline (``NUM_DECONVS: 0``).
- ``higher=True`` adds HigherHRNet's deconvolution module (``DECONV`` of
  ``experiments/coco/higher_hrnet/w32_512_adam_lr1e-3.yaml``: one 4x4 stride-2 transposed conv
  on the features concatenated with the first output (``CAT_OUTPUT: True``), BN, ReLU, then
  ``NUM_BASIC_BLOCKS`` 4 basic blocks, all ``width`` channels), and ``final_layers.1``: a
  1x1 conv to K heatmaps at stride 2 (no tags: ``WITH_AE_LOSS: [True, False]``).

``HigherHRNet`` is the class with ``higher`` always on (a registry name for HigherHRNet runs).

Module names and creation order are the reference's (``final_layers`` before
``deconv_layers``; a basic block sits alone in a ``Sequential`` as there), so a published
``pose_higher_hrnet_w32_512.pth`` loads with ``strict=True``. Parameters with K = 17: W32
28,536,674 (HRNet + AE), 28,645,331 with ``higher`` (the paper's 28.6 M).
"""

from __future__ import annotations

import torch
from torch import nn

from animalpose.train.models.hrnet import OUTPUT_STRIDE, HRNet
from animalpose.train.models.simple_baseline import (
    BN_MOMENTUM,
    BasicBlock,
    init_pose_layers,
)

__all__ = ["AssociativeEmbedding", "DECONV_BLOCKS", "DECONV_KERNEL", "HigherHRNet"]

#: HigherHRNet's ``DECONV.NUM_BASIC_BLOCKS``: basic blocks after the transposed conv.
DECONV_BLOCKS = 4
#: HigherHRNet's ``DECONV.KERNEL_SIZE``: 4x4, stride 2, padding 1 doubles the side exactly.
DECONV_KERNEL = 4


class AssociativeEmbedding(HRNet):
    """HRNet with an Associative Embedding head, optionally HigherHRNet's (module docs).

    Args:
        num_keypoints: keypoint types K (17 for COCO).
        width: C, HRNet's highest-resolution width (32: W32, 48: W48; small values give tiny
            CPU models); also the width of the deconvolution module.
        higher: add HigherHRNet's stride-2 deconvolution head (a second output).
        stem_channels: HRNet's stem width (64; only 64 fits published files).

    ``forward`` returns ``[(B, 2K, H / 4, W / 4)]`` (K heatmaps, then K tags), and with
    ``higher`` also ``(B, K, H / 2, W / 2)`` heatmaps. H and W must divide by 32.
    """

    def __init__(
        self,
        *,
        num_keypoints: int = 17,
        width: int = 32,
        higher: bool = False,
        stem_channels: int = 64,
    ) -> None:
        super().__init__(width=width, num_keypoints=num_keypoints, stem_channels=stem_channels)
        # HRNet's own head goes: with a parameter-free identity in its place, HRNet.forward
        # returns the trunk's features and the state_dict holds no ``final_layer`` entry.
        self.final_layer = nn.Identity()
        self.higher = higher
        tagged = 2 * num_keypoints  # K heatmaps + K one-dimensional tags
        self.final_layers = nn.ModuleList([nn.Conv2d(width, tagged, 1)])
        if higher:
            self.final_layers.append(nn.Conv2d(width, num_keypoints, 1))
            self.deconv_layers = nn.ModuleList([_deconv_module(width + tagged, width)])
        init_pose_layers(self.final_layers.modules())
        if higher:
            init_pose_layers(self.deconv_layers.modules())

    @property
    def output_strides(self) -> tuple[int, ...]:
        """Input pixels per output pixel of each output: (4,) or (4, 2) with ``higher``."""
        return (OUTPUT_STRIDE, OUTPUT_STRIDE // 2) if self.higher else (OUTPUT_STRIDE,)

    def forward(
        self, x: torch.Tensor, *, return_features: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], torch.Tensor]:
        """(B, 3, H, W) normalised images -> the list of outputs (class docs).

        With ``return_features=True`` returns ``(outputs, features)``, the features being the
        input of the last prediction layer: the trunk's (B, width, H / 4, W / 4), or with
        ``higher`` the deconvolution module's (B, width, H / 2, W / 2).
        """
        _, features = super().forward(x, return_features=True)
        outputs = [self.final_layers[0](features)]
        if self.higher:
            features = self.deconv_layers[0](torch.cat([features, outputs[0]], dim=1))
            outputs.append(self.final_layers[1](features))
        if return_features:
            return outputs, features
        return outputs


class HigherHRNet(AssociativeEmbedding):
    """HigherHRNet (Cheng et al. 2020): ``AssociativeEmbedding`` with ``higher=True``, outputs
    ``[(B, 2K, H / 4, W / 4), (B, K, H / 2, W / 2)]`` (the same modules, so the same files
    load).

    Args:
        num_keypoints, width, stem_channels: ``AssociativeEmbedding``'s.
    """

    def __init__(self, *, num_keypoints: int = 17, width: int = 32, stem_channels: int = 64):
        super().__init__(
            num_keypoints=num_keypoints, width=width, higher=True, stem_channels=stem_channels
        )


def _deconv_module(in_channels: int, channels: int) -> nn.Sequential:
    """The reference's ``deconv_layers[i]``: ``Sequential(Sequential(ConvTranspose2d 4x4 s2
    (no bias), BN, ReLU), Sequential(BasicBlock) x DECONV_BLOCKS)``."""
    upsample = nn.Sequential(
        nn.ConvTranspose2d(
            in_channels, channels, DECONV_KERNEL, stride=2, padding=1, output_padding=0, bias=False
        ),
        nn.BatchNorm2d(channels, momentum=BN_MOMENTUM),
        nn.ReLU(inplace=True),
    )
    blocks = [
        nn.Sequential(BasicBlock(inplanes=channels, planes=channels)) for _ in range(DECONV_BLOCKS)
    ]
    return nn.Sequential(upsample, *blocks)
