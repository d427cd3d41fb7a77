"""COCO-style keypoint json (COCO person keypoints, AP-10K, Animal-Pose), COCO detection results
and the MPII json of the HRNet/SimpleBaseline repos, read into one structure.

A keypoint file has ``images`` (``id``, ``file_name``, ``width``, ``height``), ``annotations``
(``id``, ``image_id``, ``category_id``, ``keypoints`` [x, y, v] * K, ``bbox`` [x, y, w, h],
``area``, ``iscrowd``, ``num_keypoints``) and ``categories`` (``id``, ``name``, ``keypoints``
names, ``skeleton``). Keypoints move from the category's name list onto a ``KeypointSpec`` BY
NAME (``KEYPOINT_NAME_ALIASES`` covers the public files that spell a name differently), so the
public Animal-Pose conversions, whatever their order, load into one order. Rules:

- COCO's top-down training rule: crowd annotations and annotations with no labelled keypoint
  (``num_keypoints == 0``, or no v > 0 among the spec's keypoints) are skipped (counted in
  ``CocoKeypointSet.skipped``), as are annotations of categories not asked for.
- Ground-truth boxes are clipped to the image as SimpleBaseline/HRNet do
  (``sanitize_box``); annotations whose ``area`` is 0 are skipped there too.
- Everything else that is wrong is a ``DataError`` naming the file and the annotation id:
  missing fields, keypoint arrays of the wrong length, non-finite numbers, visibility flags
  other than 0/1/2, boxes with w or h <= 0 or wholly outside their image, unknown image or
  category ids, duplicate ids. Structure is checked for every annotation; box geometry only for
  the annotations kept.

Coordinates are used as the files store them (0-based pixels, as the HRNet/SimpleBaseline COCO
readers use them); MPII's 1-based coordinates are converted (``load_mpii``). The json is parsed
once with the standard ``json`` module and the raw dicts are dropped when the reader returns
(COCO train2017's keypoint file is ~240 MB).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Any

import numpy as np

from animalpose.datasets.fileio import DataError, check_regular_file, image_size
from animalpose.datasets.keypoints import MPII16, KeypointSpec

__all__ = [
    "KEYPOINT_NAME_ALIASES",
    "MPII_BOX_SHIFT",
    "MPII_PIXEL_STD",
    "SKIP_REASONS",
    "CocoImage",
    "CocoInstance",
    "CocoKeypointSet",
    "image_path",
    "load_coco_keypoints",
    "load_detections",
    "load_mpii",
    "mpii_box",
    "sanitize_box",
]

#: Spellings of keypoint names in public COCO-style files -> the spec names
#: (``animalpose.datasets.keypoints``). Only names that differ from the spec's are listed:
#: the Animal-Pose ``keypoints.json`` of the authors ("tailbase"), the AP-10K json
#: ("root_of_tail"), and mmpose's Animal-Pose conversion (``parse_animalpose_dataset.py``,
#: names as in its configs/_base_/datasets/animalpose.py).
KEYPOINT_NAME_ALIASES: Mapping[str, str] = MappingProxyType(
    {
        "tailbase": "tail_base",
        "root_of_tail": "tail_base",
        "L_Eye": "left_eye",
        "R_Eye": "right_eye",
        "L_EarBase": "left_ear",
        "R_EarBase": "right_ear",
        "Nose": "nose",
        "Throat": "throat",
        "TailBase": "tail_base",
        "Withers": "withers",
        "L_F_Elbow": "left_front_elbow",
        "R_F_Elbow": "right_front_elbow",
        "L_B_Elbow": "left_back_elbow",
        "R_B_Elbow": "right_back_elbow",
        "L_F_Knee": "left_front_knee",
        "R_F_Knee": "right_front_knee",
        "L_B_Knee": "left_back_knee",
        "R_B_Knee": "right_back_knee",
        "L_F_Paw": "left_front_paw",
        "R_F_Paw": "right_front_paw",
        "L_B_Paw": "left_back_paw",
        "R_B_Paw": "right_back_paw",
    }
)

#: Keys of ``CocoKeypointSet.skipped``: crowd annotations, annotations without a labelled
#: keypoint of the spec, annotations of categories not asked for, zero-area annotations (HRNet
#: drops ``area <= 0``), MPII entries without a person centre (centre -1).
SKIP_REASONS = ("crowd", "no_keypoints", "other_category", "zero_area", "no_center")

#: MPII's ``scale`` is the person's height in units of 200 px (HRNet/SimpleBaseline
#: ``pixel_std``).
MPII_PIXEL_STD = 200.0
#: HRNet/SimpleBaseline lib/dataset/mpii.py move MPII's centre down by 15 x scale pixels
#: ("adjust center/scale slightly to avoid cropping limbs") before cropping.
MPII_BOX_SHIFT = 15.0


@dataclass(frozen=True)
class CocoImage:
    """One ``images`` entry. ``width``/``height`` are 0 where the file does not give them
    (an MPII json read without ``image_root``)."""

    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True, eq=False)
class CocoInstance:
    """One object: a ground-truth annotation, or a detector's box.

    Attributes:
        id: annotation id (detections and MPII entries: position in the file).
        image_id: id of its ``CocoImage``.
        keypoints: (K, 3) float64 x, y, v in the spec's order; COCO's v: 0 not labelled (then
            x = y = 0), 1 labelled but occluded, 2 visible. All zero for detection boxes.
        bbox: (4,) float64 x, y, w, h in image pixels (ground truth: clipped by
            ``sanitize_box``).
        area: the annotation's ``area`` (segment area; w x h where the file has none).
        category: category name.
        score: 1.0 for ground truth, the detector's score for detections.
    """

    id: int
    image_id: int
    keypoints: np.ndarray
    bbox: np.ndarray
    area: float
    category: str
    score: float = 1.0


@dataclass(frozen=True, eq=False)
class CocoKeypointSet:
    """A keypoint file read onto ``spec``.

    Attributes:
        path: the file read.
        spec: the keypoint spec the instances' keypoints are in.
        images: every image of the file by id (also those without kept instances).
        instances: kept annotations, in file order.
        categories: the categories read (id -> name): those asked for, or all of the file's.
        skipped: count of dropped annotations per reason (every key of ``SKIP_REASONS``).
    """

    path: Path
    spec: KeypointSpec
    images: dict[int, CocoImage]
    instances: list[CocoInstance]
    categories: dict[int, str]
    skipped: dict[str, int]

    def __len__(self) -> int:
        return len(self.instances)


def sanitize_box(bbox: Sequence[float], width: int, height: int) -> np.ndarray:
    """Clip a COCO xywh box to its image the way SimpleBaseline/HRNet do.

    ``x1 = max(0, x)``, ``y1 = max(0, y)``, ``x2 = min(width - 1, x1 + max(0, w - 1))``,
    ``y2 = min(height - 1, y1 + max(0, h - 1))``, box ``[x1, y1, x2 - x1, y2 - y1]``
    (lib/dataset/coco.py ``_load_coco_keypoint_annotation_kernal``): the far edge is the last
    pixel inside the box, so an unclipped box loses one pixel of width and height, and a box
    hanging over the left or top edge keeps its width measured from the clipped edge.

    Args:
        bbox: x, y, w, h with w, h > 0, not wholly outside the image.
        width, height: image size in pixels.

    Returns:
        (4,) float64 x, y, w, h (w, h >= 0).
    """
    x, y, w, h = (float(v) for v in bbox)
    x1, y1 = max(0.0, x), max(0.0, y)
    x2 = min(width - 1.0, x1 + max(0.0, w - 1.0))
    y2 = min(height - 1.0, y1 + max(0.0, h - 1.0))
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)


def mpii_box(center: Sequence[float], scale: float) -> np.ndarray:
    """The person box of an MPII entry, 0-based xywh.

    HRNet/SimpleBaseline (lib/dataset/mpii.py) crop a square of side ``1.25 x 200 x scale``
    around ``center + (0, 15 x scale) - 1`` (MPII is 1-based). This is that square before the
    1.25 padding: side ``200 x scale`` centred there, so the top-down crop's usual
    ``box -> centre, size`` step (centre ``x + w / 2``, 1.25 padding, aspect ratio 1) gives
    HRNet's crop.

    Args:
        center: MPII's (x, y), 1-based pixels.
        scale: MPII's person scale (height / 200 px), > 0.

    Returns:
        (4,) float64 x, y, w, h.
    """
    side = MPII_PIXEL_STD * float(scale)
    cx = float(center[0]) - 1.0
    cy = float(center[1]) - 1.0 + MPII_BOX_SHIFT * float(scale)
    return np.array([cx - side / 2, cy - side / 2, side, side], dtype=np.float64)


def image_path(keypoints: CocoKeypointSet, image: CocoImage, image_root: Path) -> Path:
    """The file of ``image`` (an entry of ``keypoints.images``) under ``image_root``, checked.

    Raises:
        DataError: its ``file_name`` leaves ``image_root`` (absolute, ``..``, empty) or the file
            does not exist; the message names the json and the image id.
    """
    name = PurePosixPath(image.file_name.replace("\\", "/"))
    if name.is_absolute() or ".." in name.parts or not name.parts:
        raise DataError(
            f"{keypoints.path}: image {image.id} file_name {image.file_name!r} is not a path "
            f"inside the image folder {image_root}"
        )
    path = image_root / name
    if not path.is_file():
        raise DataError(
            f"{keypoints.path}: image {image.id}: {path} does not exist (check --image-path)"
        )
    return path


def load_coco_keypoints(
    path: str | os.PathLike, *, spec: KeypointSpec, categories: Sequence[str] | None = None
) -> CocoKeypointSet:
    """Read a COCO-style keypoint json onto ``spec``.

    Args:
        path: the json file (COCO ``person_keypoints_*.json``, AP-10K, Animal-Pose).
        spec: keypoint spec; every category read must name all of its keypoints.
        categories: category names to read (None: all of the file's).

    Raises:
        DataError: the file is missing, not JSON, or breaks a rule of the module docstring;
            the message names the file and the annotation (or image/category) id.
    """
    path = Path(path)
    data = _read_json(path, "keypoint annotation file")
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with images, annotations, categories")
    missing = [k for k in ("images", "annotations", "categories") if k not in data]
    if missing:
        raise DataError(f"{path}: missing top-level field(s) {missing}")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data[key], list):
            raise DataError(f"{path}: {key!r} must be a list, got {type(data[key]).__name__}")

    images = _read_images(path, data["images"])
    cats, channels = _read_categories(path, data["categories"], spec, categories)
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    instances: list[CocoInstance] = []
    seen: set[int] = set()
    for entry in data["annotations"]:
        inst = _read_annotation(path, entry, images, cats, channels, seen, skipped)
        if inst is not None:
            instances.append(inst)
    del data
    return CocoKeypointSet(
        path=path,
        spec=spec,
        images=images,
        instances=instances,
        categories={cid: name for cid, (name, _) in cats.items() if cid in channels},
        skipped=skipped,
    )


def load_detections(
    path: str | os.PathLike,
    *,
    images: CocoKeypointSet,
    score_threshold: float = 0.0,
    category_id: int | None = None,
) -> list[CocoInstance]:
    """Read a COCO detection results json (a list of ``image_id``, ``category_id``, ``bbox``
    xywh, ``score``) as boxes for top-down inference.

    Kept: detections of ``category_id`` (None: of any category of ``images``; a detector's file
    holds all its classes, the others are dropped) with ``score >= score_threshold`` (HRNet's
    ``image_thre`` rule). Boxes are not clipped (as HRNet). Instance ids are positions in the
    file; keypoints are all zero.

    Raises:
        DataError: not a JSON list, an entry without one of the four fields, non-finite
            numbers, w or h <= 0, or an ``image_id`` that ``images`` lacks.
        ValueError: ``category_id`` is not a category of ``images``.
    """
    path = Path(path)
    if category_id is not None and category_id not in images.categories:
        raise ValueError(
            f"category_id {category_id} is not a category of {images.path}: {images.categories}"
        )
    wanted = {category_id} if category_id is not None else set(images.categories)
    data = _read_json(path, "detection results file")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of detections")
    k = images.spec.num_keypoints
    out: list[CocoInstance] = []
    for i, entry in enumerate(data):
        where = f"{path}: detection #{i}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object")
        _require_fields(where, entry, ("image_id", "category_id", "bbox", "score"))
        cid = _int(where, entry, "category_id")
        image_id = _int(where, entry, "image_id")
        if image_id not in images.images:
            raise DataError(f"{where}: image_id {image_id} is not an image of {images.path}")
        score = _finite(where, "score", entry["score"])
        bbox = _floats(where, "bbox", entry["bbox"], 4)
        if bbox[2] <= 0 or bbox[3] <= 0:
            raise DataError(f"{where}: bbox {bbox.tolist()} has w or h <= 0")
        if cid not in wanted or score < score_threshold:
            continue
        out.append(
            CocoInstance(
                id=i,
                image_id=image_id,
                keypoints=np.zeros((k, 3), dtype=np.float64),
                bbox=bbox,
                area=float(bbox[2] * bbox[3]),
                category=images.categories[cid],
                score=score,
            )
        )
    return out


def load_mpii(
    path: str | os.PathLike,
    *,
    spec: KeypointSpec = MPII16,
    image_root: str | os.PathLike | None = None,
) -> CocoKeypointSet:
    """Read the MPII json of the HRNet/SimpleBaseline repos (``annot/train.json``,
    ``valid.json``, ``test.json``: a list of ``image``, ``center``, ``scale``, ``joints``,
    ``joints_vis``) into the COCO structure.

    Conversion: joints -1 (1-based -> 0-based); ``joints_vis`` 1 -> v = 2 (labelled: the file
    does not tell occlusion), 0 -> v = 0 with x = y = 0; box ``mpii_box(center, scale)``;
    ``area`` its w x h; category ``person``. Rows are ``MPII16``'s order, moved to ``spec`` by
    name. Image ids number the distinct image names in order of first appearance; instance ids
    are positions in the file. An entry without ``joints`` and ``joints_vis`` (the test split)
    has unlabelled keypoints; entries with centre -1 are skipped (``no_center``), as are
    entries with no labelled joint (``no_keypoints``).

    Args:
        path: the json file.
        spec: keypoint spec whose names MPII16 covers.
        image_root: folder of the images; when given, image sizes are read from the image
            headers (else ``CocoImage.width``/``height`` are 0: the json has no sizes).

    Raises:
        DataError: not a JSON list, missing fields, 16 joints expected, non-finite numbers,
            ``joints_vis`` other than 0/1, scale <= 0, or ``spec`` names a keypoint MPII lacks.
    """
    path = Path(path)
    missing = [n for n in spec.keypoints if n not in MPII16.keypoints]
    if missing:
        raise DataError(f"{path}: MPII has no keypoint(s) {missing} of spec {spec.name!r}")
    rows = np.array([MPII16.index(n) for n in spec.keypoints], dtype=np.int64)
    data = _read_json(path, "MPII annotation file")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of MPII entries")
    n_joints = MPII16.num_keypoints
    image_ids: dict[str, int] = {}
    instances: list[CocoInstance] = []
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    for i, entry in enumerate(data):
        where = f"{path}: entry #{i}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object")
        _require_fields(where, entry, ("image", "center", "scale"))
        name = entry["image"]
        if not isinstance(name, str) or not name:
            raise DataError(f"{where}: 'image' must be a non-empty file name")
        center = _floats(where, "center", entry["center"], 2)
        scale = _finite(where, "scale", entry["scale"])
        has_joints = "joints" in entry, "joints_vis" in entry
        if has_joints[0] != has_joints[1]:
            raise DataError(f"{where}: 'joints' and 'joints_vis' must come together")
        keypoints = np.zeros((n_joints, 3), dtype=np.float64)
        if has_joints[0]:
            joints = _floats(where, "joints", entry["joints"], n_joints * 2).reshape(n_joints, 2)
            vis = _floats(where, "joints_vis", entry["joints_vis"], n_joints)
            if not np.all((vis == 0) | (vis == 1)):
                raise DataError(f"{where}: joints_vis must be 0 or 1, got {vis.tolist()}")
            labelled = vis == 1
            keypoints[labelled, :2] = joints[labelled] - 1.0
            keypoints[labelled, 2] = 2.0
        image_id = image_ids.setdefault(name, len(image_ids))
        if center[0] == -1:  # HRNet leaves such entries' centre unadjusted; they have no box
            skipped["no_center"] += 1
            continue
        if scale <= 0:
            raise DataError(f"{where}: scale {scale} must be > 0")
        keypoints = keypoints[rows]
        if has_joints[0] and not np.any(keypoints[:, 2] > 0):
            skipped["no_keypoints"] += 1
            continue
        bbox = mpii_box(center, scale)
        instances.append(
            CocoInstance(
                id=i,
                image_id=image_id,
                keypoints=keypoints,
                bbox=bbox,
                area=float(bbox[2] * bbox[3]),
                category="person",
            )
        )
    images = {}
    for name, image_id in image_ids.items():
        w, h = image_size(Path(image_root) / name) if image_root is not None else (0, 0)
        images[image_id] = CocoImage(id=image_id, file_name=name, width=w, height=h)
    return CocoKeypointSet(
        path=path,
        spec=spec,
        images=images,
        instances=instances,
        categories={1: "person"},
        skipped=skipped,
    )


# -- helpers ---------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> Any:
    check_regular_file(path, what)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: {what} is not valid JSON ({exc})") from None


def _require_fields(where: str, entry: dict, fields: Sequence[str]) -> None:
    missing = [k for k in fields if k not in entry]
    if missing:
        raise DataError(f"{where}: missing field(s) {missing}")


def _int(where: str, entry: dict, key: str) -> int:
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{where}: {key!r} must be an integer, got {value!r}")
    return value


def _finite(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DataError(f"{where}: {key!r} must be a finite number, got {value!r}")
    return float(value)


def _floats(where: str, key: str, value: Any, count: int) -> np.ndarray:
    """A flat list of ``count`` finite numbers (nested lists are flattened) as float64."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {key!r} must be a list of numbers") from None
    if arr.size != count:
        raise DataError(f"{where}: {key!r} has {arr.size} values, expected {count}")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{where}: {key!r} has non-finite values")
    return arr


def _read_images(path: Path, entries: list) -> dict[int, CocoImage]:
    images: dict[int, CocoImage] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: image #{i}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object")
        _require_fields(where, entry, ("id", "file_name", "width", "height"))
        image_id = _int(where, entry, "id")
        where = f"{path}: image id {image_id}"
        if image_id in images:
            raise DataError(f"{where}: duplicate image id")
        width, height = _int(where, entry, "width"), _int(where, entry, "height")
        if width <= 0 or height <= 0:
            raise DataError(f"{where}: width and height must be > 0, got {width} x {height}")
        if not isinstance(entry["file_name"], str) or not entry["file_name"]:
            raise DataError(f"{where}: 'file_name' must be a non-empty string")
        images[image_id] = CocoImage(image_id, entry["file_name"], width, height)
    return images


def _read_categories(
    path: Path, entries: list, spec: KeypointSpec, wanted: Sequence[str] | None
) -> tuple[dict[int, tuple[str, int]], dict[int, np.ndarray]]:
    """(id -> (name, keypoint count) for every category, id -> (K,) row of each spec keypoint
    in the category's keypoint list for the categories read)."""
    cats: dict[int, tuple[str, int]] = {}
    channels: dict[int, np.ndarray] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: category #{i}"
        if not isinstance(entry, dict):
            raise DataError(f"{where}: expected an object")
        _require_fields(where, entry, ("id", "name"))
        cid = _int(where, entry, "id")
        name = entry["name"]
        where = f"{path}: category id {cid} ({name!r})"
        if cid in cats:
            raise DataError(f"{where}: duplicate category id")
        names = entry.get("keypoints")
        if wanted is not None and name not in wanted:
            count = len(names) if isinstance(names, list) else -1
            cats[cid] = (name, count)
            continue
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise DataError(f"{where}: 'keypoints' must be a list of keypoint names")
        canonical = [KEYPOINT_NAME_ALIASES.get(n, n) for n in names]
        if len(set(canonical)) != len(canonical):
            raise DataError(f"{where}: keypoint names repeat (after aliases): {names}")
        lacking = [n for n in spec.keypoints if n not in canonical]
        if lacking:
            raise DataError(
                f"{where}: keypoints {names} do not cover spec {spec.name!r}; missing {lacking}"
            )
        cats[cid] = (name, len(names))
        channels[cid] = np.array([canonical.index(n) for n in spec.keypoints], dtype=np.int64)
    if wanted is not None:
        absent = sorted(set(wanted) - {name for name, _ in cats.values()})
        if absent:
            raise DataError(
                f"{path}: no category named {absent}; "
                f"categories: {sorted(name for name, _ in cats.values())}"
            )
    return cats, channels


def _read_annotation(
    path: Path,
    entry: Any,
    images: dict[int, CocoImage],
    cats: dict[int, tuple[str, int]],
    channels: dict[int, np.ndarray],
    seen: set[int],
    skipped: dict[str, int],
) -> CocoInstance | None:
    if not isinstance(entry, dict) or "id" not in entry:
        raise DataError(f"{path}: annotation without an 'id': {str(entry)[:80]}")
    ann_id = _int(f"{path}: annotation", entry, "id")
    where = f"{path}: annotation id {ann_id}"
    if ann_id in seen:
        raise DataError(f"{where}: duplicate annotation id")
    seen.add(ann_id)
    _require_fields(where, entry, ("image_id", "category_id", "keypoints", "bbox"))
    image_id = _int(where, entry, "image_id")
    cid = _int(where, entry, "category_id")
    if image_id not in images:
        raise DataError(f"{where}: unknown image_id {image_id}")
    if cid not in cats:
        raise DataError(f"{where}: unknown category_id {cid}; categories: {sorted(cats)}")
    if cid not in channels:
        skipped["other_category"] += 1
        return None
    name, count = cats[cid]
    raw = _floats(where, "keypoints", entry["keypoints"], 3 * count).reshape(count, 3)
    v = raw[:, 2]
    if not ((v == 0) | (v == 1) | (v == 2)).all():
        raise DataError(f"{where}: keypoint visibility must be 0, 1 or 2")
    bbox = _floats(where, "bbox", entry["bbox"], 4)
    area = _finite(where, "area", entry["area"]) if "area" in entry else bbox[2] * bbox[3]
    if entry.get("iscrowd", 0):
        skipped["crowd"] += 1
        return None
    keypoints = raw[channels[cid]]
    if entry.get("num_keypoints", 1) == 0 or not np.any(keypoints[:, 2] > 0):
        skipped["no_keypoints"] += 1
        return None
    image = images[image_id]
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        raise DataError(f"{where}: bbox {bbox.tolist()} has w or h <= 0")
    if x >= image.width or y >= image.height or x + w <= 0 or y + h <= 0:
        raise DataError(
            f"{where}: bbox {bbox.tolist()} lies wholly outside its image "
            f"{image.file_name!r} ({image.width} x {image.height})"
        )
    if area <= 0:
        skipped["zero_area"] += 1
        return None
    return CocoInstance(
        id=ann_id,
        image_id=image_id,
        keypoints=keypoints,
        bbox=sanitize_box(bbox, image.width, image.height),
        area=float(area),
        category=name,
    )
