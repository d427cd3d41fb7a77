"""Stacked hourglass with a part-segmentation head: the CC-SSL reference's multitask model.

The reference's ``HourglassNet_Multitask`` (``pose/models/hourglass_multitask.py``, arch
``hg_multitask``) is the bearpaw hourglass (``HourglassNet``) plus, per stack ``s``, a 1x1 conv
``score_seg[s]`` from the stack's ``fc`` output to ``NUM_CLASSES`` part logits, bilinearly
upsampled to the input size. Its ``score_seg_[s]`` convs (part logits -> channels, between
stacks) exist in its checkpoints but never reach the next stack's input (the reference computes
them and throws the result away), so they get no gradient; they are kept only so reference
checkpoints and RMSprop state load with ``strict=True``. The next stack's input stays
``x + fc_(y) + score_(heatmaps)``, as in ``HourglassNet``.

Parameter order = the reference's ModuleList assignment order (it indexes RMSprop state):
conv1, bn1, layer1, layer2, layer3, hg, res, fc, score, **score_seg**, fc_, score_,
**score_seg_**. The reference's ``upsample`` ModuleList has no parameters; here it is an
``F.interpolate`` to the input size (the reference's fixed 256 x 256 for its 256 input).

Shapes: input (B, 3, H, W); heatmaps (B, K, H / 4, W / 4) per stack; segmentation logits
(B, NUM_CLASSES, H, W) per stack.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animalpose.datasets.parts import NUM_CLASSES
from animalpose.train.models.hourglass import HourglassNet

__all__ = ["HourglassMultitask", "UNUSED_MODULES"]

#: Modules whose parameters never receive a gradient (the reference computes ``score_seg_`` and
#: discards it; here it is not computed at all). Gradient checks and DDP
#: (``find_unused_parameters``) must allow for them.
UNUSED_MODULES: tuple[str, ...] = ("score_seg_",)


class HourglassMultitask(HourglassNet):
    """Stacked hourglass with per-stack part-segmentation logits (reference arch
    ``hg_multitask``).

    Args:
        num_stacks, num_blocks, num_keypoints, channels: as ``HourglassNet``.
        num_classes: segmentation classes (``NUM_CLASSES`` = background + 9 parts, the
            reference's fixed ``1 + 9``).

    ``forward(x)`` returns exactly what ``HourglassNet.forward`` returns (the per-stack heatmap
    list), so every keypoint-only consumer (evaluator, inference, pseudo-labels, adaptation)
    runs a multitask checkpoint unchanged and the segmentation head costs nothing there;
    ``forward(x, with_segmentation=True)`` adds the per-stack segmentation logits.
    """

    #: This model has a part-segmentation head (``forward(..., with_segmentation=True)``).
    segmentation: bool = True
    #: Module-name prefixes whose parameters never get a gradient (``UNUSED_MODULES``).
    unused_modules: tuple[str, ...] = UNUSED_MODULES

    def __init__(
        self,
        *,
        num_stacks: int = 4,
        num_blocks: int = 1,
        num_keypoints: int = 18,
        channels: int = 256,
        num_classes: int = NUM_CLASSES,
    ) -> None:
        super().__init__(
            num_stacks=num_stacks,
            num_blocks=num_blocks,
            num_keypoints=num_keypoints,
            channels=channels,
        )
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        # Re-register fc_ and score_ after score_seg so that the registration (state_dict,
        # parameters(), RMSprop state index) order is the reference's: ..., score, score_seg,
        # fc_, score_, score_seg_.
        fc_, score_ = self.fc_, self.score_
        del self.fc_, self.score_
        self.score_seg = nn.ModuleList(
            nn.Conv2d(channels, num_classes, kernel_size=1, bias=True) for _ in range(num_stacks)
        )
        self.fc_ = fc_
        self.score_ = score_
        self.score_seg_ = nn.ModuleList(
            nn.Conv2d(num_classes, channels, kernel_size=1, bias=True)
            for _ in range(num_stacks - 1)
        )

    def forward(
        self,
        x: torch.Tensor,
        *,
        with_segmentation: bool = False,
        return_features: bool = False,
    ) -> (
        list[torch.Tensor]
        | tuple[list[torch.Tensor], list[torch.Tensor]]
        | tuple[list[torch.Tensor], torch.Tensor]
        | tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]
    ):
        """(B, 3, H, W) normalised images -> per-stack heatmaps [and segmentation logits].

        Returns, by the keyword-only flags:
            default: ``heatmaps``, a list of ``num_stacks`` (B, K, H / 4, W / 4) tensors, the
                same as ``HourglassNet.forward`` (the segmentation head is not run).
            ``with_segmentation=True``: ``(heatmaps, seg_logits)``, ``seg_logits`` a list of
                ``num_stacks`` (B, num_classes, H, W) unnormalised class scores at the input
                resolution (bilinear, ``align_corners=True``, as the reference's
                ``nn.Upsample``).
            ``return_features=True``: ``(heatmaps, features)`` as ``HourglassNet``, or
                ``(heatmaps, seg_logits, features)`` with both flags; ``features`` is the last
                stack's ``fc`` output (B, channels, H / 4, W / 4).
        """
        size = x.shape[-2:]
        seg_outputs: list[torch.Tensor] = []

        def segment(s: int, y: torch.Tensor) -> None:
            logits = self.score_seg[s](y)
            seg_outputs.append(
                F.interpolate(logits, size=size, mode="bilinear", align_corners=True)
            )

        outputs, features = self.run_stacks(x, segment if with_segmentation else None)
        if with_segmentation and return_features:
            return outputs, seg_outputs, features
        if with_segmentation:
            return outputs, seg_outputs
        if return_features:
            return outputs, features
        return outputs
