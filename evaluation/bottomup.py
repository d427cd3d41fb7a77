"""Bottom-up evaluation: Associative Embedding outputs of whole images -> people -> COCO OKS AP
(HigherHRNet's test, HRNet/HigherHRNet-Human-Pose-Estimation ``tools/valid.py``,
``lib/core/inference.py`` ``get_multi_stage_outputs``, ``aggregate_results``).

Per image (``bottomup_maps``, ``image_people``):

1. Forward the normalised input at every test scale (``scales``: HigherHRNet's
   ``TEST.SCALE_FACTOR``, [1] by default, [0.5, 1, 2] for its multi-scale numbers; a scale s
   resizes the S x S input to the nearest multiple of ``INPUT_MULTIPLE`` of s S). With the flip
   test the mirrored input runs in the same call: its heatmaps and tags are un-mirrored by the
   codec's rule with the spec's flip pairs (``inference.flip_rule``), the heatmaps averaged with
   the plain ones, the tags appended as a second tag dimension. A model with several outputs
   (HigherHRNet, ``merge_outputs``): the first output's heatmaps and tags are upsampled to the
   last (finest, stride-2) output's size and the heatmaps averaged with its heatmaps
   (``get_multi_stage_outputs``).
2. ``grouping.multi_scale_merge`` onto one size (mean heatmaps, tags concatenated): the finest
   output's size on the scale-1 input (the codec's heatmap size without a higher head), or with
   ``project_to_input`` the S x S input itself (HigherHRNet's ``TEST.PROJECT2IMAGE``: bilinear,
   so top-k, NMS and the quarter shift work in input pixels); then ``grouping.group`` with
   ``grouping_order(spec)`` (head and torso first), HigherHRNet's thresholds and refinement.
3. Map pixels -> input pixels (``codec.to_input`` of the codec at the maps' size,
   ``transforms.bottomup.codec_at_size``) -> image pixels (the inverse of ``meta["matrix"]``); a
   person's score is the mean of its K keypoint scores (HigherHRNet's; missing keypoints count
   0 and are written at (0, 0)). No rescoring or OKS-NMS.

Resizing maps uses pixel-area alignment (``align_corners=False``), the default codec's; maps
at another size than the codec's are refused for a codec of another alignment.

``bottomup_results`` writes the people as COCO keypoint results in the annotation file's
keypoint order; ``BottomUpEvaluator`` runs a data set through all of it and scores the results
with pycocotools' ``COCOeval`` against the annotation file (``oks.run_keypoint_eval``,
``evaluator.oks_target``). Every AP it prints or writes says "bottom-up, no boxes".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from animalpose.datasets.formats.bottomup import BottomUpKeypoints
from animalpose.datasets.geometry import apply_affine, invert_affine
from animalpose.datasets.keypoints import KeypointSpec
from animalpose.datasets.transforms.bottomup import bottomup_targets, codec_at_size
from animalpose.evaluation.evaluator import KEYPOINT_RESULTS_JSON, OksTarget, oks_target
from animalpose.evaluation.grouping import (
    DETECTION_THRESHOLD,
    MAX_PEOPLE,
    NMS_KERNEL,
    TAG_THRESHOLD,
    group,
    grouping_order,
    multi_scale_merge,
)
from animalpose.evaluation.inference import EvalResult, autocast, eval_mode, flip_rule
from animalpose.evaluation.oks import coco_results, run_keypoint_eval
from animalpose.evaluation.report import (
    check_output_folder,
    output_errors,
    save_keypoint_results,
    save_oks_results,
)
from animalpose.evaluation.score import OKS_RESULTS_JSON, oks_row

__all__ = [
    "BOX_SOURCE",
    "INPUT_MULTIPLE",
    "BottomUpEvaluator",
    "bottomup_maps",
    "bottomup_results",
    "image_people",
    "merge_outputs",
]

#: How every bottom-up AP names its "boxes": there are none, people come from grouping.
BOX_SOURCE = "bottom-up, no boxes"
#: A test scale's input side is rounded to a multiple of this (HRNet's total stride, 32).
INPUT_MULTIPLE = 32


def merge_outputs(
    outputs: list[torch.Tensor], num_keypoints: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A model's outputs -> ``(heatmaps (B, K, h, w), tags (B, K, h, w))``: the first output's
    K heatmaps and K tags; with later outputs (HigherHRNet's higher-resolution heads, heatmaps
    only) h x w is the last output's size, the first output is upsampled to it (bilinear,
    pixel-area alignment) and every output's heatmaps are averaged."""
    k = num_keypoints
    first = outputs[0]
    if len(outputs) == 1:
        return first[:, :k], first[:, k:]
    size = outputs[-1].shape[-2:]

    def resize(maps: torch.Tensor) -> torch.Tensor:
        if maps.shape[-2:] == size:
            return maps
        return F.interpolate(maps, size, mode="bilinear", align_corners=False)

    first = resize(first)
    heat = torch.stack([first[:, :k], *(resize(o[:, :k]) for o in outputs[1:])]).mean(0)
    return heat, first[:, k:]


def bottomup_maps(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    num_keypoints: int,
    heatmap_size: tuple[int, int] | None = None,
    scales: Sequence[float] = (1.0,),
    flip_index: Sequence[int] | np.ndarray | None = None,
    codec: object | None = None,
    amp: bool = False,
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor] | None]:
    """Steps 1-2 of the module docs for a batch, in the model's current mode.

    Args:
        model: maps (B, 3, H, W) to a list whose first output is (B, 2K, H / 4, W / 4), K
            heatmaps then K tags (``AssociativeEmbedding``).
        inputs: (B, 3, S, S) normalised images.
        num_keypoints: K.
        heatmap_size: (w, h) the merged maps are resized to (the input's (W, H) to group at
            input resolution); None: the finest output's size on the scale-1 input (the
            codec's heatmap size for a model with one output).
        scales: test scales (factors on S), positive.
        flip_index: (K,) the spec's flip permutation: turns the flip test on.
        codec: the run's codec, whose ``flip_back`` rule un-mirrors (``inference.flip_rule``).
        amp: bfloat16 autocast of the forward.

    Returns:
        ``(maps, plain)``: per image ``(heatmaps (K, h, w), tags (K, h, w, T))`` float32 on the
        inputs' device (T = number of scales, times 2 with the flip test), and the model's
        outputs on the un-flipped scale-1 input (float32; None when 1 is not a scale).
    """
    batch, _, height, width = inputs.shape
    k = num_keypoints
    if len(scales) == 0 or not all(s > 0 for s in scales):
        raise ValueError(f"test scales must be positive and at least one, got {list(scales)}")
    unflip_tagged = unflip_heat = None
    if flip_index is not None:
        index = np.asarray(flip_index, dtype=np.int64)
        unflip_tagged = flip_rule(codec, np.concatenate([index, index + k]), device=inputs.device)
        unflip_heat = flip_rule(codec, index, device=inputs.device)
    per_scale: list[tuple[torch.Tensor, torch.Tensor]] = []
    plain = None
    for scale in scales:
        x = inputs
        if scale != 1:
            size_hw = (
                max(1, round(height * scale / INPUT_MULTIPLE)) * INPUT_MULTIPLE,
                max(1, round(width * scale / INPUT_MULTIPLE)) * INPUT_MULTIPLE,
            )
            x = F.interpolate(inputs, size_hw, mode="bilinear", align_corners=False)
        if flip_index is not None:
            x = torch.cat([x, torch.flip(x, dims=(-1,))])
        with autocast(inputs.device, amp):
            outputs = [o.float() for o in model(x)]
        if outputs[0].shape[1] != 2 * k:
            raise ValueError(
                f"the model's first output has {outputs[0].shape[1]} channels: bottom-up "
                f"evaluation needs K = {k} heatmaps then K tags (an associative model)"
            )
        mine = [o[:batch] for o in outputs]
        if scale == 1:
            plain = mine
        heat, tags = merge_outputs(mine, k)
        tags = tags[..., None]  # (B, K, h, w, 1)
        if flip_index is not None:
            mirrored = [o[batch:] for o in outputs]
            back = [unflip_tagged(mirrored[0]), *(unflip_heat(o) for o in mirrored[1:])]
            back_heat, back_tags = merge_outputs(back, k)
            heat = 0.5 * (heat + back_heat)
            tags = torch.cat([tags, back_tags[..., None]], dim=-1)
        if heatmap_size is None:  # the finest output's size on the scale-1 input
            stride_x, stride_y = x.shape[-1] / heat.shape[-1], x.shape[-2] / heat.shape[-2]
            heatmap_size = (round(width / stride_x), round(height / stride_y))
        per_scale.append((heat, tags))
    maps = [
        multi_scale_merge([(heat[i], tags[i]) for heat, tags in per_scale], size=heatmap_size)
        for i in range(batch)
    ]
    return maps, plain


def image_people(
    heatmaps: torch.Tensor | np.ndarray,
    tags: torch.Tensor | np.ndarray,
    *,
    codec: Any,
    matrix: np.ndarray,
    order: Sequence[int] | None = None,
    max_people: int = MAX_PEOPLE,
    detection_threshold: float = DETECTION_THRESHOLD,
    tag_threshold: float = TAG_THRESHOLD,
    nms_kernel: int = NMS_KERNEL,
    fill_missing: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """One image's people in image pixels (steps 2-3 of the module docs).

    Args:
        heatmaps: (K, h, w) detection heatmaps; tags: (K, h, w) or (K, h, w, T).
        codec: the codec whose ``to_input`` maps heatmap pixels to input pixels.
        matrix: (2, 3) image -> input affine of the sample (``meta["matrix"]``).
        order: ``group``'s visiting order (``grouping_order(spec)``).
        max_people, detection_threshold, tag_threshold, nms_kernel, fill_missing: ``group``'s.

    Returns:
        ``(keypoints (P, K, 3) float64 image x, y and score, scores (P,))``: a missing
        keypoint has score 0 at (0, 0); a person's score is the mean of its K keypoint scores.
    """
    people = group(
        heatmaps,
        tags,
        max_people=max_people,
        detection_threshold=detection_threshold,
        tag_threshold=tag_threshold,
        order=order,
        nms_kernel=nms_kernel,
        fill_missing=fill_missing,
    )
    score = people[..., 2]
    xy = apply_affine(codec.to_input(people[..., :2]), invert_affine(matrix))
    xy = np.where(score[..., None] > 0, xy, 0.0)
    keypoints = np.concatenate([xy, score[..., None]], axis=-1)
    return keypoints, score.mean(axis=-1) if len(score) else np.zeros(0)


def bottomup_results(
    image_ids: np.ndarray,
    keypoints: np.ndarray,
    scores: np.ndarray,
    target: OksTarget,
    category_id: int,
) -> list[dict[str, Any]]:
    """COCO keypoint results of bottom-up people: (P,) image ids, (P, K, 3) model-order image
    pixels + score, (P,) person scores, written in ``target``'s file order as ``category_id``."""
    kp = np.asarray(keypoints, dtype=np.float64)
    if kp.ndim != 3 or kp.shape[-1] != 3:
        raise ValueError(f"keypoints must be (P, K, 3), got {kp.shape}")
    return coco_results(image_ids, kp[:, target.order], scores, category_id)


@dataclass
class BottomUpEvaluator:
    """Groups the people of every image of ``dataset`` and scores them with COCOeval.

    Built like ``evaluation/evaluator.py``'s ``Evaluator`` (``train/build.py`` picks this one for
    a bottom-up data set) and used the same way: ``evaluate(codec)`` (validation, model
    selection by AP), ``report(out_dir, ...)`` (``evaluation/test.py``), ``box_source()``.

    Attributes:
        model: on ``device``; an associative model (first output K heatmaps + K tags).
        dataset: the ``BottomUpKeypoints`` split ``loader`` reads (dataset order).
        codec: the run's heatmap codec (targets, ``to_input``, the flip rule).
        normalizer: uint8 (B, 3, S, S) on the device -> model input.
        name, split: the data set's name and split, for titles and result files.
        flip: flip test. amp: bfloat16 autocast. loss_fn: also report the mean validation loss
            (``AELoss``: ``(outputs, heatmaps, weights, cells, visible) -> (total, terms)``).
        scales: test scales (module docs; HigherHRNet's multi-scale test: (0.5, 1, 2)).
        project_to_input: group on maps resized to the S x S input (module docs, step 2;
            HigherHRNet's ``PROJECT2IMAGE``); off: at the finest output's resolution.
        max_people, detection_threshold, tag_threshold, fill_missing: ``grouping.group``'s
            (HigherHRNet's ``TEST`` values by default).
        epoch: the epochs of training behind the weights.
    """

    model: nn.Module
    dataset: BottomUpKeypoints
    loader: Iterable[dict]
    codec: Any
    normalizer: Callable[[torch.Tensor], torch.Tensor]
    spec: KeypointSpec
    device: torch.device
    name: str
    split: str
    flip: bool = False
    amp: bool = False
    loss_fn: Callable[..., Any] | None = None
    progress: bool = True
    epoch: int = 0
    scales: tuple[float, ...] = (1.0,)
    project_to_input: bool = False
    max_people: int = MAX_PEOPLE
    detection_threshold: float = DETECTION_THRESHOLD
    tag_threshold: float = TAG_THRESHOLD
    fill_missing: bool = True
    _target: OksTarget | str | None = field(default=None, init=False, repr=False)

    def box_source(self) -> str:
        """What every AP line says about boxes (``BOX_SOURCE``)."""
        return BOX_SOURCE

    def oks_target(self) -> OksTarget | str:
        """The annotation file's ``OksTarget`` for the images of ``dataset`` (or why there is
        none), worked out once."""
        if self._target is None:
            self._target = oks_target(self.dataset, self.spec)
        return self._target

    def category_id(self) -> int:
        """The category the results are written as: the data set's one category (person)."""
        categories = sorted(self.dataset.annotations.categories)
        if len(categories) != 1:
            raise ValueError(f"bottom-up results need one category, the data set read {categories}")
        return categories[0]

    def __post_init__(self) -> None:
        self.scales = tuple(float(s) for s in self.scales)
        if not self.scales or not all(s > 0 for s in self.scales):
            raise ValueError(f"test scales must be positive and at least one, got {self.scales}")

    def _loss(
        self,
        plain: list[torch.Tensor],
        keypoints: torch.Tensor,
        masks: torch.Tensor | None,
        codec,
    ) -> torch.Tensor:
        """``loss_fn`` on the scale-1 outputs, with targets (and loss masks) at every output's
        resolution."""
        sizes = [(o.shape[-1], o.shape[-2]) for o in plain]
        targets = bottomup_targets(codec, keypoints, masks=masks, heatmap_sizes=sizes)
        out = self.loss_fn(
            plain,
            targets.heatmaps_per_output,
            targets.weights_per_output,
            targets.cells,
            targets.visible,
        )
        return out[0] if isinstance(out, tuple) else out

    def _map_codec(self, codec, maps: list[tuple[torch.Tensor, torch.Tensor]]):
        """The codec whose ``to_input`` reads the grouped maps: ``codec`` at their size."""
        height, width = maps[0][0].shape[-2:]
        if (width, height) == tuple(codec.heatmap_size):
            return codec
        convention = getattr(codec, "convention", None)
        if convention != "pixel-area":
            raise ValueError(
                f"grouping on {width} x {height} maps (the codec's are {codec.heatmap_size}) "
                "resizes them with pixel-area alignment: use the pixel-area codec, not "
                f"{type(codec).__name__} with alignment {convention!r}"
            )
        return codec_at_size(codec, (width, height))

    def predict(self, codec=None) -> EvalResult:
        """People of every image and the mean loss, not scored yet: an ``EvalResult`` whose rows
        are people (``preds`` (P, K, 2) image pixels, ``scores`` (P, K), ``indices`` the sample
        of each, ``image_ids``, ``box_scores`` the person scores; PCK: NaN, not computed;
        ``loss`` None without ``loss_fn`` or without the scale 1)."""
        codec = self.codec if codec is None else codec
        k = self.spec.num_keypoints
        order = grouping_order(self.spec)
        flip_index = self.spec.flip_index if self.flip else None
        rows: dict[str, list[np.ndarray]] = {"kp": [], "score": [], "index": [], "image": []}
        loss_sum, samples, losses = 0.0, 0, 0
        with eval_mode(self.model), torch.inference_mode():
            for batch in tqdm(self.loader, desc="eval", disable=not self.progress):
                meta = batch["meta"]
                x = self.normalizer(batch["image"].to(self.device, non_blocking=True))
                maps, plain = bottomup_maps(
                    self.model,
                    x,
                    num_keypoints=k,
                    heatmap_size=(x.shape[-1], x.shape[-2]) if self.project_to_input else None,
                    scales=self.scales,
                    flip_index=flip_index,
                    codec=codec,
                    amp=self.amp,
                )
                samples += x.shape[0]
                if self.loss_fn is not None and plain is not None:
                    keypoints = batch["keypoints"].to(self.device).float()
                    masks = batch.get("mask")
                    masks = None if masks is None else masks.to(self.device)
                    loss_sum += float(self._loss(plain, keypoints, masks, codec)) * x.shape[0]
                    losses += x.shape[0]
                map_codec = self._map_codec(codec, maps)
                for i, (heatmaps, tags) in enumerate(maps):
                    kp, score = image_people(
                        heatmaps,
                        tags,
                        codec=map_codec,
                        matrix=meta["matrix"][i].numpy(),
                        order=order,
                        max_people=self.max_people,
                        detection_threshold=self.detection_threshold,
                        tag_threshold=self.tag_threshold,
                        fill_missing=self.fill_missing,
                    )
                    rows["kp"].append(kp)
                    rows["score"].append(score)
                    rows["index"].append(np.full(len(kp), int(meta["index"][i])))
                    rows["image"].append(np.full(len(kp), int(meta["image_id"][i])))
        if samples == 0:
            raise ValueError("bottom-up evaluation: the loader yielded no batches")
        kp = np.concatenate(rows["kp"]) if rows["kp"] else np.zeros((0, k, 3))
        kp = kp.reshape(-1, k, 3)
        nan = np.full(k, np.nan)
        return EvalResult(
            legacy=nan,
            precise=nan.copy(),
            precise_counts=np.zeros(k, dtype=np.int64),
            preds=kp[..., :2],
            scores=kp[..., 2].astype(np.float32),
            indices=np.concatenate(rows["index"]).astype(np.int64),
            loss=loss_sum / losses if losses else None,
            image_ids=np.concatenate(rows["image"]).astype(np.int64),
            box_scores=np.concatenate(rows["score"]).astype(np.float64),
        )

    def results(self, val: EvalResult) -> list[dict[str, Any]]:
        """COCO keypoint results of ``val``'s people (``bottomup_results``); [] without a target."""
        target = self.oks_target()
        if not isinstance(target, OksTarget):
            return []
        keypoints = np.concatenate([val.preds, val.scores[..., None]], axis=-1)
        return bottomup_results(
            val.image_ids, keypoints, val.box_scores, target, self.category_id()
        )

    def evaluate(self, codec=None) -> EvalResult:
        """The people of the current weights (``codec`` defaults to the evaluator's) and their
        OKS AP statistics (``EvalResult.oks``) when the data set has a target (``oks_target``)."""
        val = self.predict(codec)
        target = self.oks_target()
        if isinstance(target, OksTarget):
            val.oks = run_keypoint_eval(
                target.gt,
                self.results(val),
                sigmas=target.sigmas,
                results_name=f"predictions on {self.name} {self.split}",
            ).stats
        return val

    def print_tables(self, val: EvalResult) -> None:
        """The OKS AP row of ``val`` (as the top-down one, saying ``BOX_SOURCE``), or why none."""
        if val.oks is None:
            target = self.oks_target()
            reason = target if isinstance(target, str) else "nothing was scored"
            print(f"OKS AP {BOX_SOURCE}: not computed ({reason})")
            return
        print(
            f"OKS AP {BOX_SOURCE} (pycocotools COCOeval; people grouped by their tags, score = "
            f"mean keypoint score); {self.name} {self.split} split, {len(val.preds)} people on "
            f"{len(self.dataset)} images"
        )
        print(oks_row(val.oks))

    def report(
        self,
        out_dir: Path,
        *,
        checkpoint: str,
        animal: str = "",
        legacy_input: bool = False,
        legacy: bool = False,
        overlays: int = 0,
    ) -> EvalResult:
        """Evaluate, print the AP row, write ``keypoints_<split>_results.json`` and
        ``oks_results.json`` into ``out_dir`` (created and test-written first). The arguments
        after ``checkpoint`` are ``Evaluator.report``'s; they do not apply (no overlays)."""
        out_dir = check_output_folder(out_dir)
        val = self.evaluate()
        self.print_tables(val)
        if val.oks is None:
            return val
        results_path = out_dir / KEYPOINT_RESULTS_JSON.format(split=self.split)
        target = self.oks_target()
        assert isinstance(target, OksTarget)  # val.oks is set only with one
        extra = {
            "boxes": BOX_SOURCE,
            "box_source": BOX_SOURCE,
            "annotations": str(Path(self.dataset.annotations.path).resolve()),
            "results": str(results_path.resolve()),
            "checkpoint": checkpoint,
            "dataset": self.name,
            "split": self.split,
            "spec": self.spec.name,
            "sigmas": target.sigmas.tolist(),
            "num_images": len(self.dataset),
            "num_people": int(len(val.preds)),
            "flip_test": bool(self.flip),
            "scales": [float(s) for s in self.scales],
            "project_to_input": bool(self.project_to_input),
        }
        with output_errors(out_dir):
            save_keypoint_results(results_path, self.results(val))
            save_oks_results(out_dir / OKS_RESULTS_JSON, val.oks, extra=extra)
        print(
            f"=> {self.split} split results in {out_dir} ({results_path.name}, {OKS_RESULTS_JSON})"
        )
        return val
