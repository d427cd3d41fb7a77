"""Which score tells right pseudo-labels from wrong ones, on an adaptation run's target split.

    python benchmarks/pseudo_label_scores.py runs/dog_sources/lpn/uda/seed{0,1,2}/config.yaml

Each CONFIG is an adaptation run's saved ``config.yaml``: its starting weights (``run.pretrained``)
label its target train split with its equivariance views, as its first pseudo-label round does
(without the optical flow), and every label is scored four ways (``animalpose.adapt.label_scores``:
the averaged map's peak, which the engine keeps by, the views' mean peak, the views' agreement and
the mirrored crop's agreement). Prints, mean +- sample std over the configs, how well each score
ranks right labels above wrong ones (ROC AUC; right = within PCK@0.05 of the annotation) and the
precision of its top ``--share``. ``--json`` also writes every number.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from animalpose.adapt.config import AdaptConfig
from animalpose.adapt.label_scores import SCORES, LabelScores, score_labels
from animalpose.adapt.pseudo_label_store import hit_fraction
from animalpose.adapt.views import ViewSampler
from animalpose.datasets.fileio import DataError, atomic_write
from animalpose.datasets.formats.registry import build_dataset
from animalpose.datasets.keypoints import get_spec
from animalpose.train.build import (
    build_codec,
    build_network,
    build_normalizer,
    codec_for_epoch,
    dataset_kwargs,
    load_start_weights,
    model_input,
)
from animalpose.train.config import ConfigError
from animalpose.train.config_io import apply_overrides, load_config
from animalpose.train.device import memory_format, setup_device, use_amp

LABELS = {
    "peak": "peak of the view-averaged map (the engine's confidence)",
    "view_peak": "mean of each view's own peak",
    "view_agreement": "views' agreement (minus mean distance to their median)",
    "flip_agreement": "mirrored crop's agreement (minus distance)",
}


def score_run(config: Path, *, limit: int = 0) -> LabelScores:
    """Score the target train labels of the adaptation run saved as ``config``."""
    cfg = load_config(config, config_type=AdaptConfig)
    cfg = apply_overrides(cfg, ["run.resume=''"], source=str(config))
    if not cfg.run.pretrained:
        raise ConfigError(f"{config}: run.pretrained is empty: no starting weights to score")
    a = cfg.adapt
    spec = get_spec(cfg.model.keypoint_spec)
    device = setup_device(cfg)
    plain = "real_animal_crop" if a.target_ssl == "real_animal_crop" else "real_animal"
    dataset = build_dataset(
        plain, split="train", augment=False, limit=limit, **dataset_kwargs(cfg, spec)
    )
    model = build_network(cfg, spec, device)
    load_start_weights(cfg, model, verbose=True)
    return score_labels(
        model,
        dataset,
        codec=codec_for_epoch(build_codec(cfg), 0, cfg.data.sigma_decay),
        normalizer=model_input(build_normalizer(cfg), memory_format(cfg)),
        views=ViewSampler(num_views=a.views, scale_factor=a.view_scale, rot_factor=a.view_rotation),
        flip_index=spec.flip_index,
        seed=cfg.run.seed,
        device=device,
        amp=use_amp(cfg, device),
        batch_size=a.pseudo_batch,
    )


def _mean_std(values: list[float]) -> str:
    arr = np.asarray(values, dtype=np.float64)
    std = arr.std(ddof=1) if arr.size > 1 else 0.0
    return f"{arr.mean():.3f} ± {std:.3f}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("configs", nargs="+", type=Path, help="adaptation runs' config.yaml files")
    p.add_argument("--share", type=float, default=0.4, help="top share for the precision (0.4)")
    p.add_argument("--limit", type=int, default=0, help="first N frames only (0: all)")
    p.add_argument("--json", type=Path, help="write every number to this file")
    args = p.parse_args(argv)
    if not 0 < args.share <= 1:
        p.error(f"--share must be in (0, 1], got {args.share}")
    results = []
    try:
        for config in args.configs:
            scores = score_run(config, limit=args.limit)
            results.append(
                {
                    "config": str(config),
                    "labels": int(scores.hits.size),
                    "right": hit_fraction(np.ones(scores.hits.shape, bool), scores.hits),
                    "auc": {name: scores.auc(name) for name in SCORES},
                    "precision": {name: scores.precision_at(name, args.share) for name in SCORES},
                }
            )
            print(f"=> {config}: {json.dumps(results[-1])}", flush=True)
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    right = _mean_std([r["right"] for r in results])
    lines = [
        f"right among all labels: {right} ({len(results)} runs)",
        "",
        f"| score | ROC AUC | right among the top {args.share:.0%} |",
        "| --- | ---: | ---: |",
    ]
    for name in SCORES:
        auc = _mean_std([r["auc"][name] for r in results])
        precision = _mean_std([r["precision"][name] for r in results])
        lines.append(f"| {LABELS[name]} | {auc} | {precision} |")
    print("\n".join(lines))
    if args.json:
        with atomic_write(args.json, "w") as f:
            f.write(json.dumps({"share": args.share, "runs": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
