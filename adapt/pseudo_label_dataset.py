"""Pseudo-labelled target frames as training samples: :class:`PseudoLabelDataset`.

Serves a round's selected labels (``pseudo_label_store.PseudoLabels``, frame pixels) through the
target dataset's own image reading, crop box and (strong) augmentation.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from animalpose.adapt.pseudo_label_store import PseudoLabels
from animalpose.datasets.fileio import DataError, read_image
from animalpose.datasets.formats.crops import RealAnimalCrop
from animalpose.datasets.formats.tigdog import RealAnimal
from animalpose.datasets.geometry import crop_matrix

__all__ = ["PseudoLabelDataset"]


class PseudoLabelDataset(Dataset):
    """Training samples of ``base`` labelled by ``labels`` (visible = selected).

    ``base`` is a RealAnimal / RealAnimalCrop over the split the labels were generated on, built
    with a *training* augmenter (CC-SSL's invariance: strongly augmented targets). Row ``i``
    serves dataset index ``labels.indices[i]``: ``base``'s image, crop box, augmentation draw
    (keyed on that index) and ``_sample`` packing, with the pseudo-labels (frame pixels) in place
    of the annotation, so ``meta["keypoints_image"]`` holds the pseudo-labels too.

    Raises:
        DataError: the labels' indices, shots or frames do not match ``base``.
    """

    def __init__(self, base: RealAnimal | RealAnimalCrop, labels: PseudoLabels) -> None:
        if not isinstance(base, (RealAnimal, RealAnimalCrop)):
            raise TypeError(f"base must be a RealAnimal or RealAnimalCrop, got {type(base)}")
        self.base, self.labels = base, labels
        where = f"{base.root} ({base.animal}, split {base.split!r}, {len(base)} samples)"
        idx = np.asarray(labels.indices)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(base)):
            raise DataError(
                f"{where}: pseudo-label indices span {idx.min()}..{idx.max()}, "
                f"outside the dataset's 0..{len(base) - 1}"
            )
        if labels.keypoints.shape[1:] != (base.spec.num_keypoints, 2):
            raise DataError(
                f"{where}: pseudo-labels have {labels.keypoints.shape[1]} keypoints, "
                f"the dataset {base.spec.num_keypoints}"
            )
        for i, j in enumerate(idx):
            shot, frame = base.shot_frame(int(j))
            if (shot, frame) != (int(labels.shots[i]), int(labels.frames[i])):
                raise DataError(
                    f"{where}: pseudo-label row {i} (index {j}) is shot {labels.shots[i]} frame "
                    f"{labels.frames[i]} but the dataset has shot {shot} frame {frame}; the "
                    "labels were generated on another split, animal or split file"
                )

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def epoch(self) -> int:
        return self.base.epoch

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to ``base`` (its augmentation draw of ``epoch``)."""
        self.base.set_epoch(epoch)

    def __getitem__(self, i: int) -> dict:
        j = int(self.labels.indices[i])
        path = self.base.image_path(j)
        image = read_image(path)
        _, center, size = self.base.annotation(j)
        shot, frame = self.base.shot_frame(j)
        keypoints = np.concatenate(
            [
                self.labels.keypoints[i].astype(np.float64),
                self.labels.selected[i, :, None].astype(np.float64),
            ],
            axis=1,
        )
        pre = None
        if isinstance(self.base, RealAnimalCrop):  # the file is a crop of the frame
            pre = crop_matrix(center, size, (image.shape[1], image.shape[0]))
        return self.base._sample(
            j, image, keypoints, center, size, shot, frame, pre_matrix=pre, source=str(path)
        )
