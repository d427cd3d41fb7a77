"""The target training set of an adaptation run: each frame labelled, pseudo-labelled or not.

``TargetMix`` serves the target train split with the strong (invariance) augmentation: the few
labelled frames (``adapt.target_labels``, WS-CDA's small labelled set) with their annotations,
the other frames with the round's selected pseudo-labels (CC-SSL / PPLO), or, without
pseudo-labels, with every keypoint invisible (no pose loss; WS-CDA's discriminator still sees
them). ``meta["labelled"]`` says where a sample's keypoints came from (2 annotations,
1 pseudo-labels, 0 none).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from animalpose.adapt.pseudo_label_dataset import PseudoLabelDataset
from animalpose.datasets.formats.base import KeypointDataset

__all__ = ["ANNOTATED", "NONE", "PSEUDO", "TargetMix", "first_frames"]

#: ``meta["labelled"]`` values.
NONE, PSEUDO, ANNOTATED = 0, 1, 2


def first_frames(dataset: KeypointDataset, count: int) -> np.ndarray:
    """(N,) bool: the first ``count`` samples of ``dataset`` in its (shot, frame) order, so a
    few-label set is whole shots first, as a researcher would annotate them."""
    labelled = np.zeros(len(dataset), dtype=bool)
    labelled[: min(int(count), len(dataset))] = True
    return labelled


class TargetMix(Dataset):
    """Target train split: annotated, pseudo-labelled or unlabelled samples (module docs).

    Args:
        annotated: the target train split with its training augmenter and annotations.
        pseudo: the same split serving pseudo-labels (``PseudoLabelDataset``), or None.
        labelled: (N,) bool, samples that keep their annotations.
    """

    def __init__(
        self,
        annotated: KeypointDataset,
        *,
        pseudo: PseudoLabelDataset | None,
        labelled: np.ndarray,
    ) -> None:
        labelled = np.asarray(labelled, dtype=bool)
        if labelled.shape != (len(annotated),):
            raise ValueError(f"labelled must be ({len(annotated)},), got {labelled.shape}")
        if pseudo is not None and len(pseudo) != len(annotated):
            raise ValueError(
                f"pseudo-labelled set has {len(pseudo)} samples, the target train "
                f"split {len(annotated)}"
            )
        self.annotated, self.pseudo, self.labelled = annotated, pseudo, labelled

    def __len__(self) -> int:
        return len(self.annotated)

    def set_epoch(self, epoch: int) -> None:
        self.annotated.set_epoch(epoch)
        if self.pseudo is not None:
            self.pseudo.set_epoch(epoch)

    def __getitem__(self, index: int) -> dict:
        if self.labelled[index]:
            sample, kind = self.annotated[index], ANNOTATED
        elif self.pseudo is not None:
            sample, kind = self.pseudo[index], PSEUDO
        else:
            sample, kind = self.annotated[index], NONE
            sample["keypoints"] = torch.zeros_like(sample["keypoints"])
        sample["meta"]["labelled"] = kind
        return sample
