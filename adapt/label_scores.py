"""Which score tells right pseudo-labels from wrong ones: :func:`score_labels`.

CC-SSL, PPLO and UDA-Animal keep the pseudo-labels with the highest confidence, the peak of the
view-averaged heatmap (``pseudo_labels.py``). This module predicts a target split the same way
(the same views, drawn from the same seeds) and scores every label four ways, so a benchmark can
measure, against the annotations, how well each ranks right labels above wrong ones
(``pseudo_label_store.confidence_auc``) and how precise its top share is:

- ``peak``: the averaged map's peak (the engine's confidence);
- ``view_peak``: the mean over views of each view's own peak;
- ``view_agreement``: minus the mean distance (crop pixels) of each view's decoded keypoint to the
  views' median, in the identity frame;
- ``flip_agreement``: minus the distance between the plain crop's keypoint and the mirrored
  crop's, un-mirrored by the codec's flip rule.

``benchmarks/pseudo_label_scores.py`` runs it on adaptation runs' starting models.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from animalpose.adapt.pseudo_label_store import confidence_auc, hit_fraction
from animalpose.adapt.pseudo_labels import draw_views, label_hits, ordered_loader
from animalpose.adapt.views import ViewSampler, view_heatmaps, view_theta
from animalpose.evaluation.inference import autocast, crop_to_image, eval_mode, flip_rule

__all__ = ["SCORES", "LabelScores", "score_labels"]

#: The scores, in table order (module docs).
SCORES = ("peak", "view_peak", "view_agreement", "flip_agreement")


@dataclass
class LabelScores:
    """keypoints: (N, K, 2) frame pixels of the view-averaged prediction; hits: (N, K) int8
    (``pseudo_label_store`` convention: 1 right, 0 wrong, -1 not annotated); scores: name ->
    (N, K) float64, higher = more trusted."""

    keypoints: np.ndarray
    hits: np.ndarray
    scores: dict[str, np.ndarray]

    def auc(self, name: str) -> float:
        """How well score ``name`` ranks right labels above wrong ones (ROC AUC)."""
        return confidence_auc(self.scores[name], self.hits)

    def precision_at(self, name: str, share: float) -> float:
        """Fraction right of the judged labels among the top ``share`` by score ``name``."""
        score = self.scores[name]
        top = np.zeros(score.size, dtype=bool)
        top[np.argsort(-score.ravel(), kind="stable")[: int(round(share * score.size))]] = True
        return hit_fraction(top.reshape(score.shape), self.hits)


def _last(out) -> torch.Tensor:
    """The last stack's heatmaps, float32."""
    return (out[-1] if isinstance(out, (list, tuple)) else out).float()


def score_labels(
    model: nn.Module,
    dataset,
    *,
    codec,
    normalizer,
    views: ViewSampler,
    flip_index,
    seed: int,
    device: torch.device | str = "cpu",
    amp: bool = False,
    batch_size: int = 32,
    workers: int = 0,
    round_index: int = 0,
) -> LabelScores:
    """Predict every frame of ``dataset`` (a plain ``real_animal`` split, loader order) as
    ``generate_pseudo_labels`` does without temporal refinement (same view draws for ``seed`` and
    ``round_index``), and score each label (module docs)."""
    device = torch.device(device)
    unflip = flip_rule(codec, flip_index, device=device)
    loader = ordered_loader(
        dataset, batch_size=batch_size, workers=workers, seed=seed, device=device
    )
    rows: dict[str, list[torch.Tensor]] = {k: [] for k in ("keypoints", *SCORES)}
    with eval_mode(model), torch.no_grad():
        for batch in loader:
            images = batch["image"].to(device)
            x = normalizer(images)
            scales, degrees = draw_views(views, seed, round_index, batch["meta"]["index"].tolist())
            theta = view_theta(
                scales, degrees, device=device, aspect=images.shape[-1] / images.shape[-2]
            )
            back = view_heatmaps(model, x, theta, amp=amp)  # (V + 1, B, K, h, w)
            with autocast(device, amp):
                mirrored = model(torch.flip(x, dims=(-1,)))
            crop_xy, peak = codec.decode(back.mean(dim=0))
            per_view = [codec.decode(v) for v in back]
            view_xy = torch.stack([xy for xy, _ in per_view]).float()
            median = view_xy.median(dim=0).values
            flip_xy, _ = codec.decode(unflip(_last(mirrored)))
            matrix = batch["meta"]["matrix"].to(device)
            rows["keypoints"].append(crop_to_image(crop_xy, matrix).float())
            rows["peak"].append(peak.float())
            rows["view_peak"].append(torch.stack([p for _, p in per_view]).float().mean(dim=0))
            rows["view_agreement"].append(-(view_xy - median).norm(dim=-1).mean(dim=0))
            rows["flip_agreement"].append(-(flip_xy.float() - view_xy[0]).norm(dim=-1))
    out = {k: torch.cat(v).cpu().numpy() for k, v in rows.items()}
    annotations = [dataset.annotation(i) for i in range(len(dataset))]
    truth = np.stack([a[0] for a in annotations])
    box_sizes = np.array([a[2] for a in annotations], dtype=np.float64)
    keypoints = np.ascontiguousarray(out["keypoints"], dtype=np.float32)
    return LabelScores(
        keypoints=keypoints,
        hits=label_hits(keypoints, truth, box_sizes),
        scores={name: out[name].astype(np.float64) for name in SCORES},
    )
