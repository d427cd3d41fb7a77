"""OKS, rescoring, OKS-NMS and COCO keypoint AP through pycocotools' ``COCOeval``.

The human top-down metric (docs: ../shared/spec/human-topdown.md, "Data and metric"):

- ``oks``: object keypoint similarity of one prediction against one annotation, computed exactly
  as ``COCOeval.computeOks`` does (same formula, same order of operations, same box-distance rule
  for an annotation without labelled keypoints), so ``oks`` equals ``COCOeval``'s value bit for bit.
- ``rescore`` and ``oks_nms``: the SimpleBaseline/HRNet post-processing (HRNet
  ``lib/dataset/coco.py`` ``evaluate`` and ``lib/nms/nms.py`` ``oks_nms``): box score x mean of the
  keypoint confidences above 0.2, then greedy OKS non-maximum suppression at 0.9 per image.
- ``coco_results``: predictions -> COCO results entries (``image_id``, ``category_id``, flat
  ``keypoints`` x, y, score, ``score``).
- ``evaluate_keypoints``: the ten ``COCOeval(..., "keypoints")`` statistics (AP, AP50, AP75, APm,
  APl, AR, AR50, AR75, ARm, ARl) of a results list against a COCO keypoint json. pycocotools itself
  does the matching and averaging (it is what users and papers run); this module only checks the
  inputs first, so that a bad file fails with one line naming it instead of an assertion or a
  KeyError deep inside pycocotools, and captures pycocotools' chatter on stdout.

Shape legend: N predictions, K keypoints; keypoints (x, y, v or score) in image pixels.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from numbers import Real
from typing import Any

import numpy as np

from animalpose.datasets.fileio import DataError, read_file_bytes
from animalpose.datasets.keypoints import KeypointSpec

__all__ = [
    "COCO_SIGMAS",
    "IN_VIS_THRE",
    "OKS_THRE",
    "STAT_NAMES",
    "KeypointEval",
    "oks",
    "rescore",
    "oks_nms",
    "coco_results",
    "load_json",
    "run_keypoint_eval",
    "evaluate_keypoints",
]

#: COCO's per-keypoint OKS sigmas (nose, eyes, ears, shoulders, elbows, wrists, hips, knees,
#: ankles), written as pycocotools' ``Params.setKpParams`` writes them (``/ 10.0``), so the values
#: are bitwise the ones ``COCOeval`` uses by default.
# fmt: off
COCO_SIGMAS = np.array(
    [.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]
) / 10.0
# fmt: on
#: HRNet/SimpleBaseline ``TEST.IN_VIS_THRE``: keypoint confidences at or below it are left out of
#: the rescoring mean.
IN_VIS_THRE = 0.2
#: HRNet/SimpleBaseline ``TEST.OKS_THRE``: OKS-NMS drops a prediction whose OKS with a
#: higher-scored one of the same image exceeds it.
OKS_THRE = 0.9
#: ``COCOeval.stats`` for ``iouType="keypoints"``, in order (``summarize``'s ``_summarizeKps``):
#: AP over OKS 0.50:0.05:0.95, at 0.5, at 0.75, medium (32^2..96^2 px^2) and large areas, then the
#: same five for recall; all at maxDets 20.
STAT_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
#: Largest annotation or results json read (COCO's train2017 person keypoints file is 240 MB).
MAX_JSON_BYTES = 1 << 31


def _sigmas(sigmas: Sequence[float] | np.ndarray | None, num_keypoints: int) -> np.ndarray:
    values = COCO_SIGMAS if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if values.shape != (num_keypoints,):
        source = "the default COCO sigmas" if sigmas is None else "sigmas"
        raise ValueError(f"{source} have shape {values.shape}, expected ({num_keypoints},)")
    return values


def oks(
    pred: np.ndarray,
    gt: np.ndarray,
    *,
    area: float,
    sigmas: Sequence[float] | np.ndarray | None = None,
    bbox: Sequence[float] | np.ndarray | None = None,
) -> float:
    """Object keypoint similarity of one prediction with one annotation (``COCOeval``'s).

    OKS = mean over labelled keypoints (v > 0) of exp(-d^2 / (2 s^2 k^2)), s^2 = ``area`` (plus
    float64 epsilon, as pycocotools), k = 2 sigma. For an annotation with no labelled keypoint
    ``COCOeval`` measures d as the distance of each predicted keypoint outside the annotation's box
    grown by its own size on every side, averaged over all K; ``bbox`` is needed then.

    Args:
        pred: (K, 2) or (K, 3) predicted (x, y[, score]) in image pixels; a score is ignored.
        gt: (K, 3) annotated (x, y, v) in image pixels.
        area: the annotation's ``area`` (pixels^2; the segment area in COCO).
        sigmas: (K,) per-keypoint sigmas; None: COCO's 17.
        bbox: the annotation's (x, y, w, h) box, used only when no keypoint is labelled.

    Returns:
        OKS in [0, 1].
    """
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    k = gt.shape[0]
    if gt.shape != (k, 3) or pred.shape[0] != k or pred.shape[1:] not in ((2,), (3,)):
        raise ValueError(f"pred must be (K, 2|3) and gt (K, 3), got {pred.shape} and {gt.shape}")
    variances = (_sigmas(sigmas, k) * 2) ** 2
    labelled = gt[:, 2] > 0
    if labelled.any():
        dx = pred[:, 0] - gt[:, 0]
        dy = pred[:, 1] - gt[:, 1]
    else:
        if bbox is None:
            raise ValueError("the annotation has no labelled keypoint: oks needs its bbox")
        bx, by, bw, bh = (float(v) for v in bbox)
        zero = np.zeros(k)
        # COCOeval: distance to the box [x - w, x + 2w] x [y - h, y + 2h], 0 inside it.
        dx = np.max((zero, bx - bw - pred[:, 0]), axis=0) + np.max(
            (zero, pred[:, 0] - (bx + bw * 2)), axis=0
        )
        dy = np.max((zero, by - bh - pred[:, 1]), axis=0) + np.max(
            (zero, pred[:, 1] - (by + bh * 2)), axis=0
        )
    # Same operations in the same order as COCOeval.computeOks, so the result is bitwise equal.
    e = (dx**2 + dy**2) / variances / (area + np.spacing(1)) / 2
    if labelled.any():
        e = e[labelled]
    return float(np.sum(np.exp(-e)) / e.shape[0])


def rescore(
    box_scores: float | np.ndarray,
    keypoint_scores: np.ndarray,
    *,
    in_vis_thre: float = IN_VIS_THRE,
) -> np.ndarray:
    """SimpleBaseline/HRNet rescoring: box score x mean of the keypoint confidences above
    ``in_vis_thre`` (0 when none is above it).

    Args:
        box_scores: () or (N,) detector scores (1 for ground-truth boxes).
        keypoint_scores: (K,) or (N, K) keypoint confidences (heatmap maxima).

    Returns:
        () or (N,) float64 instance scores.
    """
    kp = np.asarray(keypoint_scores, dtype=np.float64)
    confident = kp > in_vis_thre
    count = confident.sum(axis=-1)
    total = np.where(confident, kp, 0.0).sum(axis=-1)
    mean = np.divide(total, count, out=np.zeros_like(total), where=count > 0)
    return np.asarray(box_scores, dtype=np.float64) * mean


def _pairwise_oks(
    first: np.ndarray,
    others: np.ndarray,
    first_area: float,
    other_areas: np.ndarray,
    variances: np.ndarray,
    in_vis_thre: float | None,
) -> np.ndarray:
    """HRNet's ``oks_iou``: OKS of (K, 3) ``first`` with each of (M, K, 3) ``others``, scaled by
    the mean of the two areas; with ``in_vis_thre`` only keypoints confident in both count."""
    d2 = ((others[..., :2] - first[:, :2]) ** 2).sum(axis=-1)
    e = d2 / variances / ((first_area + other_areas[:, None]) / 2 + np.spacing(1)) / 2
    used = np.ones(e.shape, dtype=bool)
    if in_vis_thre is not None:
        # HRNet writes `list(vg > t) and list(vd > t)`, which Python evaluates to the second list
        # alone; mmpose's fix (both confident) is used here. HRNet's evaluate() passes no
        # threshold at all, so its published numbers take the default (None) branch.
        used = (first[:, 2] > in_vis_thre) & (others[..., 2] > in_vis_thre)
    count = used.sum(axis=-1)
    total = np.where(used, np.exp(-e), 0.0).sum(axis=-1)
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


def oks_nms(
    keypoints: np.ndarray,
    scores: np.ndarray,
    areas: np.ndarray,
    *,
    threshold: float = OKS_THRE,
    sigmas: Sequence[float] | np.ndarray | None = None,
    in_vis_thre: float | None = None,
) -> np.ndarray:
    """Greedy OKS non-maximum suppression of one image's predictions (HRNet's ``oks_nms``).

    Take the highest-scored prediction, drop every remaining one whose OKS with it exceeds
    ``threshold`` (OKS scaled by the mean of the two areas), repeat. Equal scores are taken in
    HRNet's order (``scores.argsort()[::-1]``, made stable: the later index first).

    Args:
        keypoints: (N, K, 3) predicted (x, y, score) in image pixels.
        scores: (N,) instance scores (after ``rescore``).
        areas: (N,) instance areas in pixels^2 (HRNet: the padded box's w x h).
        threshold: OKS above which the lower-scored prediction is dropped.
        sigmas: (K,) OKS sigmas; None: COCO's 17.
        in_vis_thre: when given, only keypoints whose scores exceed it in both predictions count;
            None (HRNet's evaluate) uses all K.

    Returns:
        (M,) int64 indices of the kept predictions, highest score first.
    """
    keypoints = np.asarray(keypoints, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    areas = np.asarray(areas, dtype=np.float64)
    n = scores.shape[0] if scores.ndim == 1 else -1
    if keypoints.ndim != 3 or keypoints.shape[0] != n or keypoints.shape[2] != 3:
        raise ValueError(
            f"keypoints must be (N, K, 3) and scores (N,), got {keypoints.shape} and {scores.shape}"
        )
    if areas.shape != (n,):
        raise ValueError(f"areas must be ({n},), got {areas.shape}")
    variances = (_sigmas(sigmas, keypoints.shape[1]) * 2) ** 2
    order = np.argsort(scores, kind="stable")[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        overlap = _pairwise_oks(
            keypoints[i], keypoints[rest], areas[i], areas[rest], variances, in_vis_thre
        )
        order = rest[overlap <= threshold]
    return np.asarray(keep, dtype=np.int64)


def coco_results(
    image_ids: Sequence[int] | np.ndarray,
    keypoints: np.ndarray,
    scores: Sequence[float] | np.ndarray,
    category_id: int | Sequence[int] | np.ndarray = 1,
) -> list[dict[str, Any]]:
    """COCO keypoint results entries, ready for ``json.dump`` and ``evaluate_keypoints``.

    Args:
        image_ids: (N,) COCO image ids.
        keypoints: (N, K, 3) predicted (x, y, score) in image pixels.
        scores: (N,) instance scores.
        category_id: one category for all (1 = COCO's person) or (N,) per prediction.

    Returns:
        N dicts ``{"image_id", "category_id", "keypoints": [x1, y1, s1, ...], "score"}`` of plain
        Python numbers.
    """
    kp = np.asarray(keypoints, dtype=np.float64)
    ids = np.asarray(image_ids)
    sc = np.asarray(scores, dtype=np.float64)
    n = kp.shape[0] if kp.ndim == 3 else -1
    if kp.ndim != 3 or kp.shape[2] != 3 or ids.shape != (n,) or sc.shape != (n,):
        raise ValueError(
            f"expected image_ids (N,), keypoints (N, K, 3), scores (N,), got {ids.shape}, "
            f"{kp.shape}, {sc.shape}"
        )
    cats = np.broadcast_to(np.asarray(category_id), (n,))
    if not (np.isfinite(kp).all() and np.isfinite(sc).all()):
        raise ValueError("keypoints and scores must be finite")
    return [
        {
            "image_id": int(ids[i]),
            "category_id": int(cats[i]),
            "keypoints": kp[i].reshape(-1).tolist(),
            "score": float(sc[i]),
        }
        for i in range(n)
    ]


def load_json(path: str | os.PathLike, what: str) -> Any:
    """Parse the json file ``path``; DataError naming it when missing, unreadable or invalid."""
    data = read_file_bytes(path, what, limit=MAX_JSON_BYTES)
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: {what} is not valid json ({err})") from None


# --- checking inputs before pycocotools sees them ------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)


def _numbers(value: Any, length: int) -> bool:
    return isinstance(value, list) and len(value) == length and all(map(_is_number, value))


def _records(data: dict, key: str, name: str) -> list:
    records = data.get(key)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise DataError(f"{name}: {key!r} must be a list of objects")
    return records


def _ids(records: list[dict], key: str, name: str) -> set[int]:
    ids: set[int] = set()
    for i, record in enumerate(records):
        value = record.get("id")
        if not _is_int(value):
            raise DataError(f"{name}: {key}[{i}] has no integer 'id'")
        if value in ids:
            raise DataError(f"{name}: {key} id {value} appears twice")
        ids.add(int(value))
    return ids


def _check_gt(data: Any, name: str, num_keypoints: int | None) -> tuple[set, set, int]:
    """Check what COCOeval reads of a ground-truth dataset; returns (image ids, category ids, K)."""
    if not isinstance(data, dict):
        raise DataError(f"{name}: expected a COCO json object, got {type(data).__name__}")
    images = _ids(_records(data, "images", name), "images", name)
    categories = _ids(_records(data, "categories", name), "categories", name)
    annotations = _records(data, "annotations", name)
    _ids(annotations, "annotations", name)
    k = num_keypoints
    if k is None and annotations:  # K from the first annotation; all others must agree
        first = annotations[0].get("keypoints")
        if isinstance(first, list) and first and len(first) % 3 == 0:
            k = len(first) // 3
        else:
            raise DataError(
                f"{name}: annotation id {annotations[0]['id']}: 'keypoints' must be a list of "
                f"(x, y, v) * K numbers"
            )
    for ann in annotations:
        where = f"{name}: annotation id {ann['id']}"
        if ann["id"] == 0:
            # COCOeval stores matches as gt ids with 0 meaning "unmatched": id 0 can never match.
            raise DataError(f"{where}: pycocotools cannot match annotation id 0; number from 1")
        if not _is_int(ann.get("image_id")) or ann["image_id"] not in images:
            raise DataError(f"{where}: image_id {ann.get('image_id')!r} is not in 'images'")
        if not _is_int(ann.get("category_id")) or ann["category_id"] not in categories:
            raise DataError(f"{where}: category_id {ann.get('category_id')!r} is not a category")
        if not _numbers(ann.get("keypoints"), 3 * k):
            raise DataError(f"{where}: 'keypoints' must be {3 * k} numbers (x, y, v) * {k}")
        if not _is_int(ann.get("num_keypoints")):
            raise DataError(f"{where}: 'num_keypoints' must be an integer")
        if not _is_number(ann.get("area")) or ann["area"] < 0:
            raise DataError(f"{where}: 'area' must be a number >= 0")
        if not _numbers(ann.get("bbox"), 4):
            raise DataError(f"{where}: 'bbox' must be 4 numbers x, y, w, h")
        if not _is_int(ann.get("iscrowd")) or ann["iscrowd"] not in (0, 1):
            raise DataError(f"{where}: 'iscrowd' must be 0 or 1")
    return images, categories, k if k is not None else len(COCO_SIGMAS)


def _check_results(results: Any, name: str, images: set[int], categories: set[int], k: int) -> None:
    if not isinstance(results, list):
        raise DataError(f"{name}: expected a list of COCO keypoint results")
    for i, res in enumerate(results):
        if not isinstance(res, dict):
            raise DataError(f"{name}: result {i} is not an object")
        image_id = res.get("image_id")
        where = f"{name}: result {i} (image_id {image_id!r})"
        if not _is_int(image_id) or image_id not in images:
            raise DataError(f"{where}: image_id is not an image of the annotations")
        if not _is_int(res.get("category_id")) or res["category_id"] not in categories:
            raise DataError(f"{where}: category_id {res.get('category_id')!r} is not a category")
        if not _numbers(res.get("keypoints"), 3 * k):
            raise DataError(f"{where}: 'keypoints' must be {3 * k} numbers (x, y, score) * {k}")
        if not _is_number(res.get("score")):
            raise DataError(f"{where}: 'score' must be a finite number")


# --- COCOeval ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeypointEval:
    """One ``COCOeval(..., "keypoints")`` run.

    Attributes:
        stats: the ten statistics under ``STAT_NAMES`` (fractions in [0, 1]; -1 where COCOeval
            has nothing to average, e.g. APm with no medium-sized annotation).
        summary: ``COCOeval.summarize``'s table, as it prints it.
        sigmas: (K,) the OKS sigmas used.
        num_images: images evaluated (all images of the annotations).
        num_results: results entries evaluated.
    """

    stats: dict[str, float]
    summary: str
    sigmas: tuple[float, ...]
    num_images: int
    num_results: int


def run_keypoint_eval(
    gt: str | os.PathLike | dict,
    results: list[dict],
    *,
    spec: KeypointSpec | None = None,
    sigmas: Sequence[float] | np.ndarray | None = None,
    results_name: str = "results",
) -> KeypointEval:
    """Score ``results`` against ``gt`` with pycocotools' ``COCOeval(gt, dt, "keypoints")``.

    The inputs are checked first (DataError naming the file and the entry): gt fields COCOeval
    reads, unique ids, every result on an image and category of ``gt`` with 3K finite keypoint
    numbers and a score. Neither ``gt`` nor ``results`` is modified. An empty ``results`` list is
    scored as no predictions (0 where there are annotations). pycocotools' stdout is captured.

    Args:
        gt: COCO keypoint annotations: a json path or the loaded dict.
        results: COCO results entries (``coco_results``).
        spec: the keypoint spec whose ``sigmas`` to use (AP-10K, Animal-Pose, ...).
        sigmas: (K,) OKS sigmas, instead of ``spec``; neither: COCO's 17 (pycocotools' default).
        results_name: how errors name ``results`` (its file).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if spec is not None and sigmas is not None:
        raise ValueError("give spec or sigmas, not both")
    if spec is not None:
        if spec.sigmas is None:
            raise ValueError(f"spec {spec.name!r} has no OKS sigmas")
        sigmas = spec.sigmas
    chosen = None if sigmas is None else np.asarray(sigmas, dtype=np.float64)
    if isinstance(gt, dict):
        name, data = "annotations", copy.deepcopy(gt)
    else:
        name, data = str(gt), load_json(gt, "annotations json")
    num_keypoints = None if chosen is None else chosen.shape[0]
    images, categories, k = _check_gt(data, name, num_keypoints)
    if chosen is None and k != len(COCO_SIGMAS):
        raise DataError(
            f"{name}: annotations have {k} keypoints, the default OKS sigmas are COCO's "
            f"{len(COCO_SIGMAS)}; give the spec (--spec) whose sigmas to use"
        )
    _check_results(results, results_name, images, categories, k)

    chatter = io.StringIO()
    with contextlib.redirect_stdout(chatter):
        coco_gt = COCO()
        coco_gt.dataset = data
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        else:  # loadRes reads results[0]; no predictions is an empty result set
            coco_dt = COCO()
            coco_dt.dataset = {
                "images": list(data["images"]),
                "categories": copy.deepcopy(data["categories"]),
                "annotations": [],
            }
            coco_dt.createIndex()
        evaluator = COCOeval(coco_gt, coco_dt, "keypoints")
        if chosen is not None:
            evaluator.params.kpt_oks_sigmas = chosen
        evaluator.evaluate()
        evaluator.accumulate()
    summary = io.StringIO()
    with contextlib.redirect_stdout(summary):
        evaluator.summarize()
    used = evaluator.params.kpt_oks_sigmas
    return KeypointEval(
        stats={n: float(v) for n, v in zip(STAT_NAMES, evaluator.stats)},
        summary=summary.getvalue().rstrip("\n"),
        sigmas=tuple(float(s) for s in used),
        num_images=len(images),
        num_results=len(results),
    )


def evaluate_keypoints(
    gt: str | os.PathLike | dict,
    results: list[dict],
    *,
    spec: KeypointSpec | None = None,
    sigmas: Sequence[float] | np.ndarray | None = None,
    results_name: str = "results",
) -> dict[str, float]:
    """The ten ``COCOeval`` keypoint statistics of ``results`` against ``gt`` (AP, AP50, AP75,
    APm, APl, AR, AR50, AR75, ARm, ARl); see ``run_keypoint_eval`` for the arguments."""
    return run_keypoint_eval(gt, results, spec=spec, sigmas=sigmas, results_name=results_name).stats
