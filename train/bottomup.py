"""Bottom-up Associative Embedding training (Newell et al. 2017; HigherHRNet's recipe,
HRNet/HigherHRNet-Human-Pose-Estimation ``lib/core/trainer.py``) on the ``Trainer`` machinery.

``BottomUpTrainer`` is a ``Trainer`` (optimiser, schedule, checkpoints, resume, TensorBoard,
``log.txt``, divergence guard) that differs where whole images differ from crops:

- a batch carries (B, M, K, 3) people and (B, S, S) loss masks (0 over crowds and people
  without keypoints); ``prepare`` turns them into ``bottomup_targets`` (per-type maximum of the
  people's Gaussians at every output resolution of the model, ``heatmap_sizes``: HigherHRNet's
  stride-2 head gets its own targets; the masks at each resolution; every person's keypoint
  cells for the tags of the first output);
- ``step`` trains ``AELoss`` (``train/ae_loss.py``: heatmap MSE plus the tags' pull and push;
  ``build.build_loss`` makes it for a bottom-up data set); the push, pull and heatmap parts go to
  TensorBoard as ``train/heatmap_loss``, ``train/push_loss``, ``train/pull_loss``;
- validation is ``evaluation/bottomup.py``'s ``BottomUpEvaluator`` (``build.py`` makes it): OKS
  AP of the grouped people through COCOeval, which selects ``model_best``; no PCK.

The training "acc" column stays the reference's heatmap accuracy, on the K heatmap channels
against the multi-person targets (argmax per type: a rough figure with several people).

``check_bottomup`` refuses configs that cannot work: a bottom-up data set with a model that
predicts no tags, an associative model on crops, and sizes off the model's strides.
"""

from __future__ import annotations

import numpy as np
import torch

from animalpose.datasets.formats.registry import BOTTOMUP_DATASETS, is_bottomup
from animalpose.datasets.transforms.bottomup import BottomUpTargets, bottomup_targets
from animalpose.evaluation.bottomup import INPUT_MULTIPLE
from animalpose.evaluation.inference import autocast
from animalpose.evaluation.visualize import GT_COLOR, draw_keypoints
from animalpose.train.checkpoint import unwrap_model
from animalpose.train.config import Config, ConfigError
from animalpose.train.trainer import Trainer

__all__ = ["BOTTOMUP_ARCHS", "HEATMAP_STRIDE", "BottomUpTrainer", "check_bottomup"]

#: Architectures that predict K heatmaps and K tags (``train/models/__init__.py`` names):
#: ``associative`` (HRNet + AE) and ``higher_hrnet`` (its stride-2 head on, ``HigherHRNet``).
BOTTOMUP_ARCHS = ("associative", "higher_hrnet")
#: Input pixels per heatmap pixel of an associative model's first output (HRNet's stride 4).
HEATMAP_STRIDE = 4


def check_bottomup(cfg: Config) -> None:
    """Raise ``ConfigError`` unless data set and model agree: a bottom-up data set
    (``BOTTOMUP_DATASETS``) needs a ``BOTTOMUP_ARCHS`` model, a square input that divides by
    ``INPUT_MULTIPLE`` and ``data.out_res`` = ``data.inp_res`` / ``HEATMAP_STRIDE``; a
    ``BOTTOMUP_ARCHS`` model needs a bottom-up data set, and only a bottom-up data set takes
    ``run.test_scales`` other than [1.0] or ``run.project_to_input``. Nothing to check
    otherwise."""
    d, arch = cfg.data, cfg.model.arch
    bottomup, tagged = is_bottomup(d.dataset), arch in BOTTOMUP_ARCHS
    if tagged and not bottomup:
        raise ConfigError(
            f"-a {arch} predicts heatmaps and tags of whole images: train it on a bottom-up "
            f"data set ({', '.join(BOTTOMUP_DATASETS)}), not {d.dataset}",
            key="model.arch",
        )
    if not bottomup:
        if cfg.run.test_scales != [1.0] or cfg.run.project_to_input:
            raise ConfigError(
                "--test-scales and --project-to-input apply to bottom-up data sets "
                f"({', '.join(BOTTOMUP_DATASETS)}), not {d.dataset}",
                key="run.test_scales" if cfg.run.test_scales != [1.0] else "run.project_to_input",
            )
        return
    if not tagged:
        raise ConfigError(
            f"the bottom-up data set {d.dataset} needs a model that predicts tags "
            f"({', '.join(BOTTOMUP_ARCHS)}), not -a {arch}",
            key="model.arch",
        )
    if d.inp_res % INPUT_MULTIPLE:
        raise ConfigError(
            f"--inp-res {d.inp_res}: -a {arch} needs an input side that divides by "
            f"{INPUT_MULTIPLE} (e.g. 256 or 512)",
            key="data.inp_res",
        )
    if d.out_res * HEATMAP_STRIDE != d.inp_res:
        raise ConfigError(
            f"--out-res {d.out_res}: -a {arch} predicts heatmaps at 1/{HEATMAP_STRIDE} of the "
            f"input: --out-res {d.inp_res // HEATMAP_STRIDE} for --inp-res {d.inp_res}",
            key="data.out_res",
        )


class BottomUpTrainer(Trainer):
    """Trains an associative model on a bottom-up data set (module docs)."""

    def __init__(self, cfg: Config) -> None:
        check_bottomup(cfg)
        super().__init__(cfg)
        #: The last step's weighted loss parts (0-d tensors on the device), for TensorBoard.
        self.loss_terms: dict[str, torch.Tensor] = {}

    def heatmap_sizes(self, codec) -> list[tuple[int, int]]:
        """(w, h) of every output of the model: the codec's heatmaps, then one per later
        output at the input size over its stride (the model's ``output_strides``; HigherHRNet:
        stride 2)."""
        strides = getattr(unwrap_model(self.model), "output_strides", None) or (HEATMAP_STRIDE,)
        w_in, h_in = codec.input_size
        return [tuple(codec.heatmap_size), *((w_in // s, h_in // s) for s in strides[1:])]

    def prepare(self, batch: dict, codec) -> tuple[torch.Tensor, BottomUpTargets]:
        """Batch -> (normalised images, ``bottomup_targets`` of its people and loss masks at
        every output resolution), on the device."""
        images = batch["image"].to(self.device, non_blocking=True)
        keypoints = batch["keypoints"].to(self.device, non_blocking=True)
        masks = batch.get("mask")
        if masks is not None:
            masks = masks.to(self.device, non_blocking=True)
        targets = bottomup_targets(
            codec, keypoints, masks=masks, heatmap_sizes=self.heatmap_sizes(codec)
        )
        return self._normalize(images), targets

    def step(self, batch: dict, codec):
        """One optimisation step -> (loss, [the first output's K heatmaps], target heatmaps):
        what ``Trainer.train_epoch`` reads (its accuracy compares heatmaps only)."""
        x, targets = self.prepare(batch, codec)
        with autocast(self.device, self.amp):
            outputs = self.net(x)
        loss, terms = self.loss_fn(
            outputs,
            targets.heatmaps_per_output,
            targets.weights_per_output,
            targets.cells,
            targets.visible,
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.loss_terms = {name: value.detach() for name, value in terms.items()}
        num_keypoints = targets.heatmaps.shape[1]
        return loss.detach(), [outputs[0][:, :num_keypoints].detach()], targets.heatmaps

    def log_step(self, step: int) -> None:
        for name, value in self.loss_terms.items():
            self.writer.add_scalar(f"train/{name}_loss", value.item(), step)

    def describe(self) -> str:
        cfg = self.cfg
        params = f"{sum(p.numel() for p in self.model.parameters()) / 1e6:.2f} M parameters"
        return (
            f"=> {cfg.data.dataset} (bottom-up): {len(self.train_set)} train / "
            f"{len(self.val_set)} valid images; {cfg.model.arch}, {params}; device {self.device}"
        )

    def epoch_line(self, summary: dict) -> str:
        """The epoch line: losses, OKS AP and AP50 (in percent) of the grouped people."""
        ap = self.ap_text(summary)
        return (
            f"epoch {summary['epoch']}: train loss {summary['train_loss']:.3e} | "
            f"{self.val_label} loss {(summary['val_loss'] or 0):.3e}{ap} | "
            f"{summary['train_img_per_s']:.1f} img/s"
        )

    def _debug_batch(self, batch: dict) -> None:
        """-d/--debug: the first training batch with every person's keypoints drawn."""
        import cv2

        tiles = []
        for img, people in zip(batch["image"][:8], batch["keypoints"][:8]):
            tile = np.ascontiguousarray(img.permute(1, 2, 0).numpy())
            for person in people.numpy():
                if person[:, 2].max() > 0:
                    k = person.copy()
                    k[k[:, 2] <= 0, :2] = np.nan
                    tile = draw_keypoints(tile, k, self.spec, color=GT_COLOR)
            tiles.append(tile)
        cv2.imwrite(
            str(self.out_dir / "debug_train_batch.png"), np.concatenate(tiles, 1)[..., ::-1]
        )
