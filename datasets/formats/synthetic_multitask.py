"""The reference's multitask synthetic animals: ``synthetic_animal_sp_multitask``.

The stills and keypoints of ``synthetic_animal_sp`` (``formats/synthetic.py``) plus a per-pixel
body-part map: ``<base>_partseg.png`` beside every ``<base>_img.png`` (the reference finds it as
``img_path[:-7] + 'partseg.png'``), an 8-bit single-channel image of the frame's size holding the
class ids of ``datasets/parts.py`` (0 background, 1..9 parts, 255 ignore). The map follows the
sample's geometry exactly: it is warped by ``meta["matrix"]`` (nearest neighbour, background
outside the frame) into the crop, so every crop pixel and its label come from the same source
point. Reference: its ``pose/datasets/synthetic_animal_sp_multitask.py`` (Example 4 of its README).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import torch

from animalpose.datasets.fileio import (
    MAX_IMAGE_BYTES,
    DataError,
    check_complete,
    image_size,
    read_file_bytes,
)
from animalpose.datasets.formats.base import Augmenter
from animalpose.datasets.formats.synthetic import IMAGE_SUFFIX, SyntheticAnimal
from animalpose.datasets.geometry import crop_matrix
from animalpose.datasets.keypoints import KeypointSpec
from animalpose.datasets.parts import check_partseg, flip_labels

__all__ = [
    "OUTSIDE_LABEL",
    "PARTSEG_SUFFIX",
    "SyntheticAnimalMultitask",
    "partseg_path",
    "read_partseg",
    "warp_partseg",
]

#: Part map of a sample: ``<base>_partseg.png`` beside ``<base>_img.png`` (the reference
#: replaces the trailing ``img.png`` of the image path by ``partseg.png``).
PARTSEG_SUFFIX = "partseg.png"
#: Label of crop pixels whose source lies outside the frame: background, as the reference pads
#: its crops (and imgaug its affine-warped segmentation maps) with zeros.
OUTSIDE_LABEL = 0
#: PNG header bytes: the signature (8), the IHDR length and type (8), width and height (8), bit
#: depth (1); then the colour type, 3 for an indexed (palette) image.
_PNG_COLOUR_TYPE_OFFSET = 25
_PNG_PALETTE = 3

_HOW_TO_GET = (
    "synthetic_animal_sp_multitask needs a <base>_partseg.png part map beside every "
    "<base>_img.png: `python datasets/generate.py --image-path ...` writes one beside every "
    "synthetic still it renders; for the reference's own renders run its "
    "data_generation/generate_partseg.py; or train keypoints only with synthetic_animal_sp"
)


def partseg_path(image_path: str | os.PathLike) -> Path:
    """The ``_partseg.png`` file of an ``_img.png`` image."""
    image_path = Path(image_path)
    if not image_path.name.endswith(IMAGE_SUFFIX):
        raise ValueError(f"{image_path}: a synthetic still's name ends with {IMAGE_SUFFIX!r}")
    return image_path.with_name(image_path.name[: -len(IMAGE_SUFFIX)] + PARTSEG_SUFFIX)


def read_partseg(path: str | os.PathLike, *, size: tuple[int, int] | None = None) -> np.ndarray:
    """The (H, W) uint8 part map stored in the PNG ``path``, read as stored (no conversion).

    A 3-channel PNG whose channels are equal is accepted (its one channel is taken), as the
    reference reshapes the decoded file to one channel. ``size`` (w, h): the image's size.

    Raises:
        DataError naming ``path``: the file is missing, not a regular file, cut short or not a
        decodable image; it is an indexed (palette) PNG, whose decoded colours are not the
        stored ids; it is not one 8-bit channel (or three equal ones); its size is not ``size``;
        or it holds labels other than the class ids of ``datasets/parts.py`` and 255.
    """
    path = Path(path)
    data = read_file_bytes(path, "part segmentation", limit=MAX_IMAGE_BYTES)
    if not data:
        raise DataError(f"{path}: part segmentation file is empty")
    check_complete(data, path)
    if data.startswith(b"\x89PNG") and len(data) > _PNG_COLOUR_TYPE_OFFSET:
        if data[_PNG_COLOUR_TYPE_OFFSET] == _PNG_PALETTE:
            raise DataError(
                f"{path}: part segmentation is an indexed (palette) PNG; OpenCV decodes its "
                "colours, not its ids: save the class ids as a single-channel 8-bit (greyscale) PNG"
            )
    try:
        labels = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as exc:
        raise DataError(f"{path}: OpenCV cannot decode the part segmentation ({exc})") from None
    if labels is None:
        raise DataError(f"{path}: cannot decode part segmentation (not an image or corrupt data)")
    if labels.ndim == 3 and labels.shape[2] == 1:
        labels = labels[:, :, 0]
    elif labels.ndim == 3 and labels.shape[2] == 3:
        if (labels[:, :, 1:] == labels[:, :, :1]).all():
            labels = labels[:, :, 0]
        else:
            raise DataError(
                f"{path}: part segmentation has 3 different colour channels; it must hold one "
                "class id per pixel (a single-channel 8-bit PNG)"
            )
    labels = np.ascontiguousarray(labels)
    check_partseg(labels, source=str(path), size=size)
    return labels


def warp_partseg(
    labels: np.ndarray,
    matrix: np.ndarray,
    output_size: int,
    *,
    flipped: bool,
    swap_sides: bool = True,
    frame_matrix: np.ndarray | None = None,
) -> np.ndarray:
    """(S, S) uint8 crop of the (H, W) part map ``labels`` by the 2x3 source -> crop ``matrix``.

    Nearest neighbour, ``OUTSIDE_LABEL`` (background) where the source point lies outside the
    frame. ``flipped``: the crop is mirrored (``matrix`` already mirrors it); with ``swap_sides``
    its left and right classes are exchanged (``parts.flip_labels``), without it they keep their
    ids (the reference's quirk). ``frame_matrix``: when the frame was warped before the crop
    (the ``_sp`` affine), the 2x3 matrix from that warped frame to the crop; crop pixels outside
    the warped frame are background, as in the image (``transforms/strong.py`` pads them black).
    """
    s = int(output_size)
    out = cv2.warpAffine(
        np.ascontiguousarray(labels, dtype=np.uint8),
        np.asarray(matrix, dtype=np.float64),
        (s, s),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=OUTSIDE_LABEL,
    )
    if frame_matrix is not None:
        h, w = labels.shape[:2]
        inside = cv2.warpAffine(
            np.ones((h, w), dtype=np.uint8),
            np.asarray(frame_matrix, dtype=np.float64),
            (s, s),
            flags=cv2.INTER_NEAREST,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        out[inside == 0] = OUTSIDE_LABEL
    return flip_labels(out) if flipped and swap_sides else out


def _frame_cut_matrix(augmenter: Augmenter, meta: dict, output_size: int) -> np.ndarray | None:
    """The warped-frame -> crop matrix of a strong (``_sp``) sample, None for other augmenters
    (their crop samples the source frame directly). ``Occluded`` wrappers are looked through."""
    from animalpose.datasets.transforms.strong import StrongAugment  # lazy: scipy on use

    while (inner := getattr(augmenter, "inner", None)) is not None:
        augmenter = inner
    if not isinstance(augmenter, StrongAugment):
        return None
    s = int(output_size)
    return crop_matrix(meta["center"], float(meta["size"][0]), (s, s), flip=meta["flipped"])


class SyntheticAnimalMultitask(SyntheticAnimal):
    """Synthetic animals with keypoints and body-part labels (``synthetic_animal_sp_multitask``).

    Each sample is ``SyntheticAnimal``'s plus ``sample["segmentation"]``: torch uint8 (S, S),
    S the crop side, the ``_partseg.png`` map cropped with the sample's own ``meta["matrix"]``
    (``warp_partseg``). On a mirrored crop the left and right classes are exchanged, except in
    ``legacy`` mode, where the reference mirrors the pixels without swapping their ids
    (docs/reference_compat.md). Occluders pasted by ``transforms.occlusion.Occluded`` do not
    change the map: the hidden pixels keep their part labels, as hidden keypoints keep theirs.

    Args: as ``SyntheticAnimal``. Every part map of the split must exist (checked here, cheaply);
    a map's content is read and validated (``read_partseg``) when its sample is loaded.
    """

    def __init__(
        self,
        *,
        root: str | os.PathLike,
        animal: str,
        split: str,
        augmenter: Augmenter,
        spec: KeypointSpec,
        seed: int,
        split_dir: str | os.PathLike | None = None,
        vertex_table: str | os.PathLike | Sequence[int] | None = None,
        limit: int = 0,
        legacy: bool = False,
        heatmap_size: int = 64,
    ) -> None:
        super().__init__(
            root=root,
            animal=animal,
            split=split,
            augmenter=augmenter,
            spec=spec,
            seed=seed,
            split_dir=split_dir,
            vertex_table=vertex_table,
            limit=limit,
            legacy=legacy,
            heatmap_size=heatmap_size,
        )
        missing = [
            path
            for path in (partseg_path(self.images[i]) for i in self.indices)
            if not path.is_file()
        ]
        if missing:
            more = f" (and {len(missing) - 1} more of the split)" if len(missing) > 1 else ""
            raise DataError(
                f"{missing[0]}: part segmentation not found{more}; the data set has no part "
                f"segmentations. {_HOW_TO_GET}"
            )

    def partseg_path(self, index: int) -> Path:
        """The ``_partseg.png`` file of sample ``index``."""
        return partseg_path(self.image_path(index))

    def __getitem__(self, index: int) -> dict:
        sample = super().__getitem__(index)
        labels = read_partseg(self.partseg_path(index), size=image_size(self.image_path(index)))
        meta = sample["meta"]
        s = int(sample["image"].shape[-1])
        segmentation = warp_partseg(
            labels,
            meta["matrix"],
            s,
            flipped=meta["flipped"],
            swap_sides=not self.legacy,
            frame_matrix=_frame_cut_matrix(self.augmenter, meta, s),
        )
        sample["segmentation"] = torch.from_numpy(segmentation)
        return sample
