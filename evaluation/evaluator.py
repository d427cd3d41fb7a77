"""Evaluate a model on one split of a data set: both PCK metrics, tables and report files.

An ``Evaluator`` is built from explicit objects (``animalpose.train.build.build_evaluator``
makes one from a config; the trainer validates through one). ``report`` writes the reference's
``preds_<split>.mat``, ``pck_results.json/.csv``, ``pck.png`` and optional overlay crops, into a
folder it checks for writing before it evaluates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.fileio import DataError
from animalpose.datasets.keypoints import KeypointSpec
from animalpose.evaluation.inference import EvalResult, LossFn, evaluate
from animalpose.evaluation.report import (
    check_output_folder,
    output_errors,
    pck_table,
    plot_pck,
    save_preds_mat,
    save_results,
)
from animalpose.evaluation.visualize import draw_overlay

__all__ = ["Evaluator"]

#: Sub-folder of the report folder with the overlay crops.
OVERLAY_FOLDER = "overlays"


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
    """

    model: nn.Module
    dataset: Sized
    loader: Iterable[dict]
    codec: MSRAHeatmap
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

    def evaluate(self, codec: MSRAHeatmap | None = None) -> EvalResult:
        """Both metrics of the current weights (``codec`` defaults to the evaluator's)."""
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
        """Print the legacy and the precise per-keypoint PCK tables of ``val``."""
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
    ) -> tuple[Path, Path]:
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

    def _write_overlays(self, over_dir: Path, val: EvalResult, overlays: int) -> None:
        """The first ``overlays`` crops of ``val`` with both keypoint sets, as PNGs."""
        import cv2

        over_dir.mkdir(exist_ok=True)
        for i, (crop, pred, gt) in enumerate(val.overlays[:overlays]):
            img = draw_overlay(crop, pred, gt, self.spec)
            path = over_dir / f"{i:04d}.png"
            if not cv2.imwrite(str(path), img[..., ::-1]):  # OpenCV reports failure by value
                raise DataError(f"{path}: could not be written; check the disk and the folder")
