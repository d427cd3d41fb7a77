"""Evaluate a model on one split of a data set: both PCK metrics, OKS AP for top-down data,
tables and report files.

An ``Evaluator`` is built from explicit objects (``animalpose.train.build.build_evaluator``
makes one from a config; the trainer validates through one). ``report`` writes the reference's
``preds_<split>.mat``, ``pck_results.json/.csv``, ``pck.png`` and optional overlay crops, into a
folder it checks for writing before it evaluates.

Top-down data (``TopDownKeypoints``) also gets the human metric of SimpleBaseline/HRNet (issue 13,
"Metric"): each box's keypoints in image pixels with their heatmap peaks, rescored (box score x
mean confident keypoint score), OKS-NMS per image at the padded box's area, scored by pycocotools'
``COCOeval`` against the annotation file (``evaluation/oks.py``). Every printed and written AP
names its boxes (ground truth, or the detection file and score threshold); ``report`` adds
``oks_results.json`` and the COCO results file ``keypoints_<split>_results.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.codecs.udp import UDPHeatmap
from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.topdown import BOX_SOURCES, TopDownKeypoints
from animalpose.datasets.keypoints import KeypointSpec
from animalpose.evaluation.inference import EvalResult, LossFn, evaluate
from animalpose.evaluation.oks import coco_results, load_json, oks_nms, rescore, run_keypoint_eval
from animalpose.evaluation.report import (
    check_output_folder,
    output_errors,
    pck_table,
    plot_pck,
    save_keypoint_results,
    save_oks_results,
    save_preds_mat,
    save_results,
)
from animalpose.evaluation.score import OKS_RESULTS_JSON, oks_row
from animalpose.evaluation.visualize import draw_overlay

__all__ = ["Evaluator", "OksTarget", "keypoint_results", "oks_target"]

#: Sub-folder of the report folder with the overlay crops.
OVERLAY_FOLDER = "overlays"
#: ``report``'s COCO keypoint results file of a split (``evaluation/test.py --results`` reads it).
KEYPOINT_RESULTS_JSON = "keypoints_{split}_results.json"


@dataclass(frozen=True)
class OksTarget:
    """What the OKS AP of a top-down data set is scored against (``oks_target``).

    Attributes:
        gt: the annotation file, or its json limited to the images and categories the data set
            read (``data.val_limit`` keeps whole images; annotations of the others would count as
            missed).
        order: (K_file,) the model keypoint of each keypoint of the file's categories, in the
            file's order (results are written in that order; COCOeval matches by position).
        sigmas: (K_file,) OKS sigmas in the file's order (the model spec's, by name).
        category_ids: (N,) the category id of each sample of the data set.
    """

    gt: Path | dict
    order: np.ndarray
    sigmas: np.ndarray
    category_ids: np.ndarray


def oks_target(dataset: TopDownKeypoints, spec: KeypointSpec) -> OksTarget | str:
    """The ``OksTarget`` of ``dataset`` for a model of ``spec``, or why OKS AP cannot be computed
    (the spec has no sigmas, the file is not COCO json (MPII's: PCK only), its categories'
    keypoints differ or are not all in ``spec``)."""
    path = dataset.annotations.path
    if spec.sigmas is None:
        return f"keypoint spec {spec.name!r} has no OKS sigmas"
    data = load_json(path, "keypoint annotation file")
    if not isinstance(data, dict) or not isinstance(data.get("categories"), list):
        return f"{path} is not a COCO keypoint json (OKS AP needs one; MPII's format: PCK only)"
    read = dataset.annotations.categories
    cats = [c for c in data["categories"] if isinstance(c, dict) and c.get("id") in read]
    lists = {tuple(c.get("keypoints") or ()) for c in cats}
    if len(lists) != 1:
        return f"{path}: the categories read ({sorted(read.values())}) name different keypoints"
    names = lists.pop()
    absent = [n for n in names if n not in spec.keypoints]
    if not names or absent:
        return f"{path}: keypoints {absent or 'none'} are not in the model's spec {spec.name!r}"
    order = np.array([spec.index(n) for n in names], dtype=np.int64)
    gt: Path | dict = path
    images = dataset.annotations.images
    file_images = data.get("images")
    every_image = isinstance(file_images, list) and len(file_images) == len(images)
    if len(cats) != len(data["categories"]) or not every_image:
        gt = {
            **data,
            "images": [im for im in file_images or () if im.get("id") in images],
            "categories": cats,
            "annotations": [
                a
                for a in data.get("annotations") or ()
                if a.get("category_id") in read and a.get("image_id") in images
            ],
        }
    ids_by_name = {name: cid for cid, name in read.items()}
    return OksTarget(
        gt=gt,
        order=order,
        sigmas=np.asarray(spec.sigmas, dtype=np.float64)[order],
        category_ids=np.array([ids_by_name[inst.category] for inst in dataset.instances]),
    )


def keypoint_results(val: EvalResult, target: OksTarget) -> list[dict[str, Any]]:
    """COCO keypoint results of ``val`` (rows of a top-down pass) after SimpleBaseline/HRNet's
    post-processing (HRNet ``lib/dataset/coco.py`` ``evaluate``): each row's keypoints (x, y,
    heatmap peak) in the file's order, its score rescored (``rescore``: box score x mean peak
    above 0.2), then greedy OKS-NMS at 0.9 among the rows of each image with the padded box
    areas (``oks_nms``). Returns ``coco_results`` entries, image by image, best first."""
    if val.image_ids is None or val.box_scores is None or val.areas is None:
        raise ValueError("keypoint_results needs the top-down rows' image_ids, box_scores, areas")
    keypoints = np.concatenate([val.preds, val.scores[..., None]], axis=-1)[:, target.order]
    scores = rescore(val.box_scores, keypoints[..., 2])
    by_image = np.argsort(val.image_ids, kind="stable")
    starts = np.flatnonzero(np.diff(val.image_ids[by_image], prepend=-1) != 0)
    keep: list[np.ndarray] = []
    for rows in np.split(by_image, starts[1:]):
        kept = oks_nms(keypoints[rows], scores[rows], val.areas[rows], sigmas=target.sigmas)
        keep.append(rows[kept])
    kept_rows = np.concatenate(keep) if keep else np.zeros(0, dtype=np.int64)
    return coco_results(
        val.image_ids[kept_rows],
        keypoints[kept_rows],
        scores[kept_rows],
        target.category_ids[val.indices[kept_rows]],
    )


@dataclass
class Evaluator:
    """Runs :func:`~animalpose.evaluation.inference.evaluate` on ``loader`` and reports it.

    Attributes:
        model: on ``device``; maps the normalised batch to per-stack (B, K, h, w) heatmaps.
        dataset: the data set ``loader`` reads (its ``indices``, when present, are written).
        codec: heatmap codec (targets and decoding); ``evaluate(codec)`` may pass another.
        normalizer: uint8 (B, 3, H, W) on the device -> model input.
        name, split: the data set's name and split, for titles and result files.
        flip: flip test with the spec's flip map. amp: bfloat16 autocast on CUDA.
        loss_fn: also report the mean loss. max_overlays: crops kept for visualisation.
        epoch: the epochs of training behind the weights (a checkpoint's ``epoch``).
        detections, det_score: the detection results file of a top-down data set's boxes and
            its score threshold (``data.detections``, ``data.det_score``), named beside its AP.
    """

    model: nn.Module
    dataset: Sized
    loader: Iterable[dict]
    codec: MSRAHeatmap | UDPHeatmap
    normalizer: Callable[[torch.Tensor], torch.Tensor]
    spec: KeypointSpec
    device: torch.device
    name: str
    split: str
    flip: bool = False
    amp: bool = False
    loss_fn: LossFn | None = None
    progress: bool = True
    max_overlays: int = 0
    epoch: int = 0
    detections: str | None = None
    det_score: float = 0.0
    _target: OksTarget | str | None = field(default=None, init=False, repr=False)

    @property
    def topdown(self) -> bool:
        """The data set is top-down (``TopDownKeypoints``): OKS AP is computed too."""
        return isinstance(self.dataset, TopDownKeypoints)

    def oks_target(self) -> OksTarget | str:
        """The data set's ``OksTarget`` (or why there is none), worked out once."""
        if self._target is None:
            self._target = oks_target(self.dataset, self.spec)
        return self._target

    def box_source(self) -> str:
        """Which boxes the top-down crops come from, as every AP line names them."""
        if self.dataset.box_source == BOX_SOURCES[0]:
            return "ground-truth boxes"
        where = (
            f"{self.detections}, score >= {self.det_score:g}"
            if self.detections
            else "file not recorded"
        )
        return f"detection boxes ({where})"

    def evaluate(self, codec: MSRAHeatmap | UDPHeatmap | None = None) -> EvalResult:
        """Both PCK metrics of the current weights (``codec`` defaults to the evaluator's), and on
        top-down data the OKS AP statistics (``EvalResult.oks``) when the data set has a target
        (``oks_target``)."""
        val = self._evaluate(codec)
        if self.topdown and val.image_ids is not None:
            target = self.oks_target()
            if isinstance(target, OksTarget):
                val.oks = run_keypoint_eval(
                    target.gt,
                    keypoint_results(val, target),
                    sigmas=target.sigmas,
                    results_name=f"predictions on {self.name} {self.split}",
                ).stats
        return val

    def _evaluate(self, codec: MSRAHeatmap | UDPHeatmap | None) -> EvalResult:
        return evaluate(
            self.model,
            self.loader,
            codec=self.codec if codec is None else codec,
            normalizer=self.normalizer,
            device=self.device,
            flip_index=self.spec.flip_index if self.flip else None,
            permutation=None,  # datasets return model order
            loss_fn=self.loss_fn,
            amp=self.amp,
            progress=self.progress,
            max_images_for_overlay=self.max_overlays,
        )

    def print_tables(self, val: EvalResult) -> None:
        """Print the legacy and the precise per-keypoint PCK tables of ``val``, then on top-down
        data its OKS AP row, naming the boxes (or why there is no AP)."""
        on = f"{self.name} {self.split} split, {len(self.dataset)} images"
        print(
            pck_table(
                val.legacy,
                self.spec,
                title=f"PCK@0.05, legacy metric (reference, paper-comparable); {on}",
            )
        )
        print(
            pck_table(
                val.precise,
                self.spec,
                title=f"PCK@0.05, precise metric (annotation coordinates, sub-pixel); {on}",
            )
        )
        if not self.topdown:
            return
        boxes = self.box_source()
        if val.oks is None:
            target = self.oks_target()
            reason = target if isinstance(target, str) else "the rows carry no box meta"
            print(f"OKS AP with {boxes}: not computed ({reason})")
            return
        images = len(np.unique(val.image_ids)) if val.image_ids is not None else 0
        print(
            f"OKS AP with {boxes} (pycocotools COCOeval; rescored, OKS-NMS 0.9); {self.name} "
            f"{self.split} split, {len(val.preds)} boxes on {images} images"
        )
        print(oks_row(val.oks))

    def report(
        self,
        out_dir: Path,
        *,
        checkpoint: str,
        animal: str,
        legacy_input: bool,
        legacy: bool = False,
        overlays: int = 0,
    ) -> EvalResult:
        """Evaluate, print both tables, write ``preds_<split>.mat`` (the reference's
        ``preds_valid.mat`` for the valid split), JSON/CSV results, the chart and ``overlays``
        crops; ``checkpoint``, ``animal``, ``legacy_input`` and ``legacy`` (the data set's legacy
        mode) are recorded in the results.

        ``out_dir`` is created and test-written first: a folder that cannot take the results
        raises ``DataError`` before the evaluation, a write that fails later (a full disk) one
        that names the file."""
        check_output_folder(out_dir)
        val = self.evaluate()
        self.print_tables(val)
        preds_name = f"preds_{self.split}.mat"
        with output_errors(out_dir):
            paths = self._write(out_dir, val, preds_name, checkpoint, animal, legacy_input, legacy)
            if val.oks is not None:
                paths += self._write_oks(out_dir, val, checkpoint)
            if overlays:
                self._write_overlays(out_dir / OVERLAY_FOLDER, val, overlays)
        print(
            f"=> {self.split} split results in {out_dir} "
            f"({', '.join(Path(p).name for p in paths)}, pck.png, {preds_name})"
        )
        return val

    def _write(
        self,
        out_dir: Path,
        val: EvalResult,
        preds_name: str,
        checkpoint: str,
        animal: str,
        legacy_input: bool,
        legacy: bool,
    ) -> tuple[Path, ...]:
        """``preds_name``, the JSON/CSV results and the chart of ``val``; the result paths."""
        save_preds_mat(out_dir / preds_name, val.preds)
        extra = {
            "checkpoint": checkpoint,
            "dataset": self.name,
            "animal": animal,
            "split": self.split,
            "images": int(len(val.preds)),
            "flip_test": bool(self.flip),
            "legacy_input": bool(legacy_input),
            "legacy": bool(legacy),
        }
        split_indices = getattr(self.dataset, "indices", None)
        if split_indices is not None:  # which samples: indices into the full sample list, in order
            extra["sample_indices"] = np.asarray(split_indices)[val.indices].tolist()
        paths = save_results(
            out_dir, spec=self.spec, legacy=val.legacy, precise=val.precise, extra=extra
        )
        plot_pck(
            out_dir / "pck.png",
            spec=self.spec,
            results={"legacy (reference metric)": val.legacy, "precise": val.precise},
        )
        return paths

    def _write_oks(self, out_dir: Path, val: EvalResult, checkpoint: str) -> tuple[Path, Path]:
        """The COCO results file of ``val`` and ``oks_results.json`` (its statistics, the boxes,
        the files); the two paths."""
        target = self.oks_target()
        assert isinstance(target, OksTarget)  # val.oks is set only with one
        results_path = out_dir / KEYPOINT_RESULTS_JSON.format(split=self.split)
        save_keypoint_results(results_path, keypoint_results(val, target))
        annotations = Path(self.dataset.annotations.path).resolve()
        extra = {
            "boxes": self.box_source(),
            "box_source": self.dataset.box_source,
            "detections": None if self.detections is None else str(self.detections),
            "det_score": float(self.det_score) if self.detections else None,
            "annotations": str(annotations),
            "results": str(results_path.resolve()),
            "checkpoint": checkpoint,
            "dataset": self.name,
            "split": self.split,
            "spec": self.spec.name,
            "sigmas": target.sigmas.tolist(),
            "num_boxes": int(len(val.preds)),
            "flip_test": bool(self.flip),
        }
        oks_path = save_oks_results(out_dir / OKS_RESULTS_JSON, val.oks, extra=extra)
        return results_path, oks_path

    def _write_overlays(self, over_dir: Path, val: EvalResult, overlays: int) -> None:
        """The first ``overlays`` crops of ``val`` with both keypoint sets, as PNGs."""
        import cv2

        over_dir.mkdir(exist_ok=True)
        for i, (crop, pred, gt) in enumerate(val.overlays[:overlays]):
            img = draw_overlay(crop, pred, gt, self.spec)
            path = over_dir / f"{i:04d}.png"
            if not cv2.imwrite(str(path), img[..., ::-1]):  # OpenCV reports failure by value
                raise DataError(f"{path}: could not be written; check the disk and the folder")
