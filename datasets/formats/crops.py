"""The reference's pre-cropped TigDog frames (``real_animal_crop``) and the script that writes them.

Each file ``real_animal_crop/real_<animal>_crop/crop_<8-digit frame>.jpg`` under the image path
is the 256 x 256 annotation-box crop of a kept TigDog frame (layout: animal_data/README.md;
reference: docs/reference_compat.md §1.2, §7.2).
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from tqdm import tqdm

from animalpose.datasets.fileio import image_size, read_image, write_image
from animalpose.datasets.formats.base import check_animal
from animalpose.datasets.formats.tigdog import TigDogBase, load_tigdog, tigdog_box
from animalpose.datasets.geometry import crop_matrix
from animalpose.datasets.transforms.crop import CenterCrop

__all__ = [
    "CROP_FOLDER",
    "CROP_SIZE",
    "RealAnimalCrop",
    "crop_path",
    "crop_real_main",
    "write_real_crops",
]

log = logging.getLogger(__name__)

#: Side of the reference's pre-cropped frames (get_cropped_TigDog.py).
CROP_SIZE = 256
CROP_FOLDER = "real_animal_crop"


def crop_path(root: str | os.PathLike, animal: str, frame: int) -> Path:
    """real_animal_crop/real_<animal>_crop/crop_<8-digit frame>.jpg under the image path."""
    folder = f"real_{check_animal(animal)}_crop"
    return Path(root) / CROP_FOLDER / folder / f"crop_{int(frame):08d}.jpg"


class RealAnimalCrop(TigDogBase):
    """The pre-cropped TigDog frames (``real_animal_crop``) with the same annotations.

    Each file ``crop_<frame>.jpg`` is the annotation box crop of its frame (written by
    ``datasets/crop_real.py`` or the reference's get_cropped_TigDog.py). The augmenter works on
    the whole file; ``meta`` still refers to the original frame (``matrix`` maps frame pixels
    to the output crop, ``center``/``size`` are the frame's box), so predictions map back to
    frame pixels as for ``real_animal``. Files are found by frame number (the reference relied on
    the sorted file list matching the frame list). Landmarks outside the frame are not visible,
    as in ``real_animal``, when the frame file is there to give the frame's size (its header).
    """

    _missing_hint = "; write the crops with `python datasets/crop_real.py`"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        #: frame number -> (w, h) from its header, or None without the frame file; read once
        #: per frame (per loader worker), not on every visit of the sample.
        self._frame_sizes: dict[int, tuple[int, int] | None] = {}

    def frame_size(self, index: int) -> tuple[int, int] | None:
        """(w, h) of sample ``index``'s original frame, or None when the file is absent."""
        i = int(self.indices[index])
        if i not in self._frame_sizes:
            path = self.data.frame_path(i)
            self._frame_sizes[i] = image_size(path) if path.exists() else None
        return self._frame_sizes[i]

    def image_path(self, index: int) -> Path:
        return crop_path(self.root, self.animal, self.data.frames[self.indices[index]])

    def __getitem__(self, index: int) -> dict:
        path = self.image_path(index)
        image = read_image(path)
        keypoints, center, size = self.annotation(index, self.frame_size(index))
        shot, frame = self.shot_frame(index)
        to_file = crop_matrix(center, size, (image.shape[1], image.shape[0]))
        legacy = self.legacy_targets(index) if self.legacy else None
        return self._sample(
            index,
            image,
            keypoints,
            center,
            size,
            shot,
            frame,
            pre_matrix=to_file,
            source=str(path),
            legacy=legacy,
        )


def write_real_crops(
    root: str | os.PathLike, animal: str, *, output_size: int = CROP_SIZE, progress: bool = True
) -> int:
    """Write the annotation-box crop of every kept frame to the real_animal_crop layout.

    Crops are ``transforms.crop.CenterCrop(output_size)`` of the frame (the validation crop),
    written atomically as JPEG; files already present are skipped. Returns the number written.
    """
    data = load_tigdog(root, animal)
    crop = CenterCrop(output_size)
    written = 0
    for j in tqdm(data.kept, desc=f"cropping {animal}", unit="img", disable=not progress):
        target = crop_path(root, animal, data.frames[j])
        if target.exists():
            continue
        center, size = tigdog_box(data.keypoints[j])
        result = crop(read_image(data.frame_path(j)), data.keypoints[j], center, size)
        write_image(target, result.image)
        written += 1
    log.info("wrote %d crops of %d kept %s frames", written, len(data.kept), animal)
    return written


def crop_real_main(argv: list[str] | None = None) -> int:
    """``python datasets/crop_real.py --image-path animal_data --animal horse``."""
    parser = argparse.ArgumentParser(
        description="Write the 256x256 annotation-box crops of TigDog frames "
        "(real_animal_crop/real_<animal>_crop/crop_<frame>.jpg)."
    )
    parser.add_argument("--image-path", default="./animal_data", help="data root")
    parser.add_argument("--animal", nargs="+", default=["horse"], help="animal(s) to crop")
    parser.add_argument("--size", type=int, default=CROP_SIZE, help="crop side in pixels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    for animal in args.animal:
        count = write_real_crops(args.image_path, animal, output_size=args.size)
        print(f"{animal}: wrote {count} crops under {Path(args.image_path) / CROP_FOLDER}")
    return 0
