"""The COCO keypoint layout the built-in humans are written in, as COCO 2017 ships it:

    <root>/annotations/person_keypoints_<split>.json     images, annotations, categories
    <root>/annotations/<split>_detections.json           detector-style boxes (COCO results)
    <root>/<split>/<image id, 12 digits>.jpg             JPEG images
    <root>/generator.json                                the settings (manifest)
    <root>/.records/<split>/<image id>.json              per-image records (resume)

Each image is one job: its JPEG, then its record (the image's COCO entries and detections),
each written atomically; an image is complete when both are whole. The split's json files are
assembled from the records once every image of the split is complete (``HumanLayout.assemble``),
so a killed run resumes by rerunning it. Conventions (docs/generator.md, "Built-in humans"):
keypoints (x, y) are 0-based pixels with centres on integers; ``bbox`` is pycocotools' box of
the person's visible pixels (x = first column, w = columns covered); ``area`` their count.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from animalpose.datasets.fileio import DataError, atomic_write, write_image
from animalpose.datasets.generator.human.keypoints import COCO_KEYPOINTS, COCO_SKELETON
from animalpose.datasets.generator.human.render import HumanFrame
from animalpose.datasets.generator.writers import image_complete

__all__ = [
    "CATEGORY",
    "HUMAN_SPLITS",
    "MIN_PERSON_AREA_SHARE",
    "HumanLayout",
    "coco_annotations",
    "simulate_detections",
]

#: Splits of a human data set, in image-id order.
HUMAN_SPLITS = ("train", "val", "test")
#: COCO's person category, with the keypoint names and 1-based skeleton.
CATEGORY = {
    "id": 1,
    "name": "person",
    "supercategory": "person",
    "keypoints": list(COCO_KEYPOINTS),
    "skeleton": [list(pair) for pair in COCO_SKELETON],
}
#: A person is annotated when its visible pixels cover at least this share of the frame (0.15 %:
#: 115 pixels at 320x240, a person about 6 x 20 pixels) and one keypoint is in the frame;
#: smaller or fully hidden people get no annotation (COCO leaves out people too small to label).
MIN_PERSON_AREA_SHARE = 0.0015
#: Simulated person detector (``simulate_detections``): miss rate, box jitter (centre shift as
#: a share of the box size, log size change; 1 sigma), score of true boxes (mean, sigma), mean
#: false positives per image and their score range.
DETECTOR_MISS = 0.05
DETECTOR_SHIFT = 0.06
DETECTOR_LOG_SCALE = 0.08
DETECTOR_SCORE = (0.85, 0.1)
DETECTOR_FALSE_POSITIVES = 0.3
DETECTOR_FALSE_SCORE = (0.05, 0.5)
#: JPEG quality of the images (COCO's photos are typical web JPEGs).
JPEG_QUALITY = 92


def coco_annotations(frame: HumanFrame, *, image_id: int) -> list[dict]:
    """COCO ``annotations`` of the annotated people of ``frame`` (``MIN_PERSON_AREA_SHARE``);
    ids ``image_id * 10 + person``. Keypoints with v = 0 are written (0, 0, 0), as COCO."""
    h, w = frame.owner.shape
    out = []
    for p in range(len(frame.keypoints)):
        kp = frame.keypoints[p].copy()
        kp[kp[:, 2] == 0] = 0.0
        num = int((kp[:, 2] > 0).sum())
        if frame.areas[p] < MIN_PERSON_AREA_SHARE * w * h or num == 0:
            continue
        out.append(
            {
                "id": int(image_id) * 10 + p,
                "image_id": int(image_id),
                "category_id": 1,
                "keypoints": [round(float(v), 2) for v in kp.reshape(-1)],
                "num_keypoints": num,
                "bbox": [float(v) for v in frame.boxes[p]],
                "area": float(frame.areas[p]),
                "iscrowd": 0,
            }
        )
    return out


def simulate_detections(
    annotations: list[dict], *, image_id: int, size: tuple[int, int], rng: np.random.Generator
) -> list[dict]:
    """Detector-style boxes of one image (COCO results format: image_id, category_id, bbox,
    score): each annotated person found with probability 1 - ``DETECTOR_MISS``, its box jittered
    and clipped to the frame; Poisson(``DETECTOR_FALSE_POSITIVES``) false boxes with low scores."""
    w, h = size
    out = []

    def clipped(x0: float, y0: float, x1: float, y1: float) -> list[float] | None:
        x0, x1 = max(0.0, x0), min(float(w), x1)
        y0, y1 = max(0.0, y0), min(float(h), y1)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        return [round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2)]

    for ann in annotations:
        found = rng.random() >= DETECTOR_MISS
        bx, by, bw, bh = ann["bbox"]
        shift = rng.normal(0.0, DETECTOR_SHIFT, 2) * (bw, bh)
        scale = np.exp(rng.normal(0.0, DETECTOR_LOG_SCALE, 2))
        score = float(np.clip(rng.normal(*DETECTOR_SCORE), 0.3, 1.0))
        cx, cy = bx + bw / 2 + shift[0], by + bh / 2 + shift[1]
        box = clipped(
            cx - bw * scale[0] / 2,
            cy - bh * scale[1] / 2,
            cx + bw * scale[0] / 2,
            cy + bh * scale[1] / 2,
        )
        if found and box is not None:
            out.append(
                {"image_id": int(image_id), "category_id": 1, "bbox": box, "score": round(score, 4)}
            )
    for _ in range(int(rng.poisson(DETECTOR_FALSE_POSITIVES))):
        bh = rng.uniform(0.1, 0.45) * h
        bw = bh * rng.uniform(0.3, 0.7)
        x0, y0 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        box = clipped(x0, y0, x0 + bw, y0 + bh)
        score = float(rng.uniform(*DETECTOR_FALSE_SCORE))
        if box is not None:
            out.append(
                {"image_id": int(image_id), "category_id": 1, "bbox": box, "score": round(score, 4)}
            )
    return out


def _write_json(path: Path, value: object, *, indent: int | None = None) -> None:
    with atomic_write(path) as f:
        f.write((json.dumps(value, indent=indent, sort_keys=True) + "\n").encode())


class HumanLayout:
    """The COCO layout under ``root`` (module docstring).

    Args:
        root: the data set's folder. counts: images per split (``HUMAN_SPLITS`` keys).
    """

    def __init__(self, *, root: str | os.PathLike, counts: dict[str, int]) -> None:
        self.root = Path(root)
        unknown = sorted(set(counts) - set(HUMAN_SPLITS))
        if unknown:
            raise ValueError(f"unknown splits {unknown}; known: {list(HUMAN_SPLITS)}")
        self.counts = {s: int(counts.get(s, 0)) for s in HUMAN_SPLITS}
        if min(self.counts.values()) < 0:
            raise ValueError(f"image counts must be non-negative, got {self.counts}")

    # --- paths ------------------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.root / "generator.json"

    def annotation_path(self, split: str) -> Path:
        return self.root / "annotations" / f"person_keypoints_{split}.json"

    def detections_path(self, split: str) -> Path:
        return self.root / "annotations" / f"{split}_detections.json"

    def image_id(self, split: str, index: int) -> int:
        """Image ids run from 1 through the splits in ``HUMAN_SPLITS`` order."""
        before = sum(self.counts[s] for s in HUMAN_SPLITS[: HUMAN_SPLITS.index(split)])
        return before + index + 1

    def file_name(self, split: str, index: int) -> str:
        return f"{self.image_id(split, index):012d}.jpg"

    def image_path(self, split: str, index: int) -> Path:
        return self.root / split / self.file_name(split, index)

    def record_path(self, split: str, index: int) -> Path:
        return self.root / ".records" / split / f"{self.image_id(split, index):012d}.json"

    def temp_folders(self) -> list[Path]:
        return [self.root, self.root / "annotations"] + [
            p for s in HUMAN_SPLITS for p in (self.root / s, self.root / ".records" / s)
        ]

    def has_data(self) -> bool:
        return (self.root / "annotations").is_dir() or any(
            (self.root / s).is_dir() and any((self.root / s).glob("*.jpg")) for s in HUMAN_SPLITS
        )

    # --- jobs -------------------------------------------------------------------------------------

    def _read_record(self, split: str, index: int) -> dict | None:
        try:
            record = json.loads(self.record_path(split, index).read_text())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    def is_complete(self, split: str, index: int) -> bool:
        """The image is whole and its record readable."""
        return image_complete(self.image_path(split, index)) and (
            self._read_record(split, index) is not None
        )

    def write_image(
        self, split: str, index: int, frame: HumanFrame, detections_rng: np.random.Generator
    ) -> None:
        """Write image ``index`` of ``split`` (JPEG), then its record, each atomically."""
        image_id = self.image_id(split, index)
        h, w = frame.image.shape[:2]
        write_image(self.image_path(split, index), frame.image)
        annotations = coco_annotations(frame, image_id=image_id)
        record = {
            "image": {
                "id": image_id,
                "file_name": self.file_name(split, index),
                "width": w,
                "height": h,
            },
            "annotations": annotations,
            "detections": simulate_detections(
                annotations, image_id=image_id, size=(w, h), rng=detections_rng
            ),
        }
        _write_json(self.record_path(split, index), record)

    def assemble(self, split: str) -> dict[str, int]:
        """Write ``split``'s annotation and detection json files from the image records.

        Returns:
            images, annotations and detections counts.
        Raises:
            DataError: an image of the split is missing or incomplete (naming it).
        """
        images, annotations, detections = [], [], []
        for index in range(self.counts[split]):
            record = self._read_record(split, index)
            if record is None or not image_complete(self.image_path(split, index)):
                raise DataError(
                    f"{self.image_path(split, index)}: image or its record "
                    f"({self.record_path(split, index)}) missing or incomplete; rerun the "
                    "generator to finish the split"
                )
            images.append(record["image"])
            annotations += record["annotations"]
            detections += record["detections"]
        document = {
            "info": {
                "description": "animalpose built-in humans (CMU humanoid, MuJoCo)",
                "version": "1.0",
            },
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": [CATEGORY],
        }
        _write_json(self.annotation_path(split), document)
        _write_json(self.detections_path(split), detections)
        return {
            "images": len(images),
            "annotations": len(annotations),
            "detections": len(detections),
        }
