"""Method comparison on a domain-gap benchmark: every method, N seeds, one table per metric.

Behind ``benchmarks/domain_gap.py`` (source only vs oracle) and ``benchmarks/adaptation.py``
(source only, CC-SSL, WS-CDA, CC-SSL + WS-CDA, WS-CDA + PPLO, oracle); the protocol (recipes,
model selection, the held-out target TEST split) is in docs/adaptation.md. Every run trains into
``<out>/<method>/seed<k>/`` (a complete run with the same config is not trained again); the
report (``compare_report.py``) is ``<report>.md``, ``.json`` and ``.png`` in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from animalpose.adapt.compare_methods import (
    GAP_METHODS,
    LAST_NAME,
    METHODS,
    TARGET_BEST_NAME,
)
from animalpose.adapt.compare_report import (
    METRICS,
    aggregate,
    gap_closed,
    markdown_report,
    pseudo_label_lines,
    report_document,
    strict_json,
    write_report,
)
from animalpose.adapt.config import AdaptConfig
from animalpose.adapt.pseudo_label_store import PseudoLabels, confidence_auc, hit_fraction
from animalpose.adapt.run_settings import PSEUDO_FOLDER, settings_changed
from animalpose.adapt.selection import SelectionSchedule
from animalpose.adapt.trainer import AdaptTrainer
from animalpose.datasets.fileio import DataError, atomic_write
from animalpose.datasets.generator.benchmark_splits import find_benchmark, generate_benchmark
from animalpose.datasets.generator.dogshift import BENCHMARKS, BenchmarkSpec, get_benchmark
from animalpose.datasets.keypoints import get_spec
from animalpose.evaluation.report import summarize
from animalpose.train.build import build_evaluator
from animalpose.train.checkpoint import BEST_NAME
from animalpose.train.config import Config, ConfigError
from animalpose.train.config_io import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
)
from animalpose.train.multitask import MultitaskTrainer, trains_segmentation
from animalpose.train.run_folder import settings_listing
from animalpose.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
#: Default recipe: the README's CPU quickstart (1 stack, 64 channels, 128 px, 15 epochs).
CPU_CONFIG = REPO / "configs" / "quickstart_cpu.yaml"
#: ``--gpu-full``: the reference's recipe (4 stacks, 256 px, RMSprop, 100 epochs, batch 6) ...
GPU_CONFIG = REPO / "configs" / "hg_synthetic_sp.yaml"
#: ... with more loader workers for a GPU host.
GPU_OVERRIDES = ("data.workers=8",)
#: Target splits are read as real_animal_sp: centre crops, the source set's (synthetic) mean.
TARGET_DATASET = "real_animal_sp"
#: The record of a complete run (its config and per-epoch numbers) in its folder.
RUN_RECORD = "domain_gap_run.json"


def _with(cfg: Config, values: dict[str, object]) -> Config:
    """``cfg`` with the dotted keys of ``values`` replaced (validated, as ``--set``)."""
    return apply_overrides(
        cfg, [f"{key}={value}" for key, value in values.items()], source="compare"
    )


def base_config(args: argparse.Namespace, spec: BenchmarkSpec) -> Config:
    """The shared recipe: YAML file, preset, option flags, then ``--set``."""
    cfg = load_config(args.config or (GPU_CONFIG if args.gpu_full else CPU_CONFIG))
    overrides = list(GPU_OVERRIDES if args.gpu_full else ())
    options = {
        "epochs": "optim.epochs",
        "stacks": "model.stacks",
        "channels": "model.channels",
        "inp_res": "data.inp_res",
        "out_res": "data.out_res",
        "lr": "optim.lr",
        "train_batch": "data.train_batch",
        "test_batch": "data.test_batch",
        "workers": "data.workers",
        "device": "run.device",
    }
    overrides += [
        f"{key}={getattr(args, name)}"
        for name, key in options.items()
        if getattr(args, name) is not None
    ]
    overrides += [
        f"data.image_path={args.image_path}",
        f"data.animal={spec.animal}",
        f"data.seed={spec.split_seed}",
        f"run.progress={not args.no_progress}",
        "run.evaluate=false",
        "run.resume=''",
        *args.set,
    ]
    return apply_overrides(cfg, overrides, source="domain_gap options")


# --- training -----------------------------------------------------------------------------------


def _means(val) -> dict:
    return {"legacy": val.legacy_mean, "precise": val.precise_mean}


def adapt_config(
    cfg: Config,
    method: str,
    *,
    init: Path,
    epochs: int,
    round_every: int,
    overrides: list[str],
    human_data: str = "",
) -> AdaptConfig:
    """The adaptation config of ``method``: the recipe's data, model and run settings; its
    optimiser at a constant learning rate for ``epochs``; the method's ``adapt.*`` settings
    (and ``human_data`` as its human source when it has one); initial weights ``init``; then
    ``overrides`` (``--adapt-set``)."""
    d = config_to_dict(cfg)
    d["optim"].update(epochs=epochs, schedule=[], start_epoch=0)
    d["run"]["pretrained"] = str(init)
    d["adapt"] = {"round_every": round_every, **dict(METHODS[method].adapt)}
    if METHODS[method].humans:
        d["adapt"]["human_data"] = human_data
    acfg = config_from_dict(d, source=f"adaptation method {method}", config_type=AdaptConfig)
    return apply_overrides(acfg, overrides, source="--adapt-set")


def _record_differs(saved: dict, current: dict) -> bool:
    """Whether a complete run's recorded config trains something else than ``current``: any
    difference but display, loading, device and the run's folder (a copied or moved output
    folder is reused)."""
    epochs = [d.get("optim", {}).get("epochs") for d in (saved, current)]
    return bool(settings_changed(saved, current)) or epochs[0] != epochs[1]


def train_run(cfg: Config, method: str) -> list[dict]:
    """Train one run into ``cfg.run.checkpoint`` (an ``AdaptConfig`` runs ``AdaptTrainer``, a
    segmentation model on part masks ``MultitaskTrainer``); returns its per-epoch validation
    means."""
    out = Path(cfg.run.checkpoint)
    record_path = out / RUN_RECORD
    settings = config_to_dict(cfg)
    if record_path.exists():
        record = json.loads(record_path.read_text())
        saved = record.get("config") or {}
        if record.get("complete") and not _record_differs(saved, settings):
            print(f"=> {out}: complete run with this config, not trained again")
            return record["epochs"]
        if record.get("complete"):  # never trained over: a folder holds one run
            changed = settings_changed(saved, settings)
            epochs = [d.get("optim", {}).get("epochs") for d in (saved, settings)]
            if epochs[0] != epochs[1]:
                changed.append(("optim.epochs", *epochs))
            raise DataError(
                f"{out}: holds a complete {method} run with other settings "
                f"({settings_listing(changed)}); choose another --out, or delete that folder "
                "to train the run again"
            )
    # Built first: building seeds torch, and the Trainer must start from its own seed.
    target_valid = None
    if METHODS[method].selects_on_target:
        on_target = {"data.dataset": TARGET_DATASET, "data.eval_split": "valid"}
        target_valid = build_evaluator(_with(cfg, on_target))
    if isinstance(cfg, AdaptConfig):
        trainer = AdaptTrainer(cfg)
    else:
        trainer = (MultitaskTrainer if trains_segmentation(cfg) else Trainer)(cfg)
    epochs: list[dict] = []
    best = {"acc": -1.0}

    def on_epoch_end(epoch: int, val) -> None:
        row = {"epoch": epoch + 1, "valid": _means(val)}
        if target_valid is not None:
            target_valid.model.load_state_dict(trainer.model.state_dict())
            tv = target_valid.evaluate(trainer.codec_at(epoch))
            row["target_valid"] = _means(tv)
            acc = tv.legacy_mean if math.isfinite(tv.legacy_mean) else 0.0
            if acc > best["acc"]:  # the Trainer's rule: first epoch with the highest legacy mean
                best["acc"] = acc
                with atomic_write(out / TARGET_BEST_NAME) as f:
                    f.write((out / LAST_NAME).read_bytes())
        epochs.append(row)

    trainer.fit(on_epoch_end=on_epoch_end)
    text = json.dumps(
        strict_json({"config": settings, "complete": True, "epochs": epochs}), indent=2
    )
    with atomic_write(record_path, "w") as f:
        f.write(text + "\n")
    return epochs


def pseudo_label_rounds(run_dir: Path, parts: dict[str, list[int]] | None = None) -> list[dict]:
    """Each stored pseudo-label round of a run: its index, epoch, share kept and precision
    (``pck_selected``, ``pck_all``: fractions of judged labels within PCK@0.05), how well
    confidence ranks right labels above wrong ones (``confidence_auc``) and, per part of
    ``parts`` (name -> keypoint indices), the share kept and the fraction of those right."""
    rounds = []
    for path in sorted((run_dir / PSEUDO_FOLDER).glob("round_*.npz")):
        labels = PseudoLabels.load(path)
        d = labels.diagnostics
        hits = labels.hits_or_unjudged()
        rounds.append(
            {
                "round": labels.round,
                "epoch": labels.epoch,
                "keep_share": labels.keep_share,
                "pck_selected": d.get("pck_selected"),
                "pck_all": d.get("pck_all"),
                "confidence_auc": confidence_auc(labels.confidence, hits),
                "parts": {
                    part: {
                        "kept": float(labels.selected[:, idx].mean()),
                        "correct": hit_fraction(labels.selected[:, idx], hits[:, idx]),
                    }
                    for part, idx in (parts or {}).items()
                },
            }
        )
    return rounds


def evaluate_checkpoint(cfg: Config, path: Path) -> dict:
    """Both metrics of checkpoint ``path`` on the target test split."""
    on_test = {"data.dataset": TARGET_DATASET, "data.eval_split": "test", "run.resume": str(path)}
    evaluator = build_evaluator(_with(cfg, on_test))
    val = evaluator.evaluate()
    summaries = {metric: summarize(getattr(val, metric), evaluator.spec) for metric in METRICS}
    return {"epoch": int(evaluator.epoch), "images": len(val.preds), **summaries}


# --- the command --------------------------------------------------------------------------------


def _parser(*, report: str, methods: tuple[str, ...]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=f"{report}: PCK of {', '.join(methods)} on a "
        "benchmark's held-out target test split (docs/adaptation.md)."
    )
    p.add_argument(
        "--benchmark",
        required=True,
        help=f"benchmark name (registered: "
        f"{', '.join(BENCHMARKS)}; or any benchmark.json under --image-path)",
    )
    p.add_argument("--image-path", default="./animal_data", help="data root of the benchmark")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        default=list(methods),
        help="methods, run in this order (adaptation needs source first)",
    )
    p.add_argument("--out", default=None, help=f"output folder (default runs/{report}/<name>)")
    p.add_argument("--config", default=None, help=f"recipe YAML (default {CPU_CONFIG.name})")
    p.add_argument(
        "--gpu-full",
        action="store_true",
        help=f"the reference's 4-stack recipe ({GPU_CONFIG.name}, 8 workers)",
    )
    for name, tp in (
        ("epochs", int),
        ("stacks", int),
        ("channels", int),
        ("inp-res", int),
        ("out-res", int),
        ("train-batch", int),
        ("test-batch", int),
        ("workers", int),
        ("lr", float),
        ("device", str),
    ):
        p.add_argument(f"--{name}", type=tp, default=None, help="overrides the recipe")
    p.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override any config key (applied last)",
    )
    p.add_argument(
        "--adapt-epochs",
        type=int,
        default=None,
        help="adaptation epochs (default: the recipe's epochs)",
    )
    p.add_argument(
        "--round-every",
        type=int,
        default=None,
        help="epochs per pseudo-label round (default: adapt epochs / 6, at least 1)",
    )
    p.add_argument(
        "--adapt-set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override adaptation config keys, e.g. adapt.target_weight=5",
    )
    p.add_argument(
        "--human-data",
        default="./human_data",
        help="WS-CDA's human source of methods with people (wscda_humans): a COCO-layout "
        "folder (python datasets/generate.py --benchmark humans-v1-cpu --image-path human_data)",
    )
    p.add_argument(
        "--generate",
        action="store_true",
        help="generate the (registered) benchmark first when absent",
    )
    p.add_argument("--renderer", default=None, help="with --generate: renderer (e.g. flat)")
    p.add_argument("--processes", type=int, default=None, help="with --generate: processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(
    argv: list[str] | None = None,
    *,
    report: str = "domain_gap",
    methods: tuple[str, ...] = GAP_METHODS,
) -> int:
    """Run ``methods`` (``--methods`` overrides) and write ``<report>.md/.json/.png``."""
    args = _parser(report=report, methods=methods).parse_args(argv)
    try:
        if args.generate:
            try:
                find_benchmark(args.image_path, args.benchmark)
            except DataError:
                generate_benchmark(
                    get_benchmark(args.benchmark),
                    args.image_path,
                    renderer=args.renderer,
                    processes=args.processes,
                    progress=not args.no_progress,
                )
        record = find_benchmark(args.image_path, args.benchmark)
        spec = BenchmarkSpec.from_dict(record["spec"])
        cfg = base_config(args, spec)
        parts = {p: list(i) for p, i in get_spec(cfg.model.keypoint_spec).part_indices.items()}
        adapting = [m for m in args.methods if METHODS[m].adapts]
        for method in adapting:
            start = METHODS[method].start
            if start not in args.methods[: args.methods.index(method)]:
                raise ConfigError(
                    f"--methods: {method} starts from the {METHODS[start].label} model; "
                    f"list '{start}' before it"
                )
    except (DataError, ConfigError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    adapt_epochs = args.adapt_epochs or cfg.optim.epochs
    round_every = args.round_every or max(1, adapt_epochs // 6)
    out = Path(args.out or Path("runs") / report / spec.name)
    start = time.monotonic()
    runs: dict = {}
    rounds: dict = {}  # method -> seed -> pseudo-label rounds (share kept, precision)
    adapt_lr = None  # the adaptation runs' learning rate (--adapt-set may change it)
    schedules: dict[str, str] = {}  # method -> its pseudo-label selection (ccssl by round, ...)
    try:
        for method in args.methods:
            m = METHODS[method]
            for seed in args.seeds:
                run_dir = out / method / f"seed{seed}"
                run_cfg = _with(
                    cfg,
                    {
                        "data.dataset": m.dataset,
                        **dict(m.settings),
                        "run.seed": seed,
                        "run.checkpoint": str(run_dir),
                    },
                )
                train_cfg = run_cfg
                if m.adapts:
                    init = out / m.start / f"seed{seed}" / BEST_NAME
                    train_cfg = adapt_config(
                        run_cfg,
                        method,
                        init=init,
                        epochs=adapt_epochs,
                        round_every=round_every,
                        overrides=args.adapt_set,
                        human_data=args.human_data,
                    )
                    adapt_lr = train_cfg.optim.lr
                    if train_cfg.adapt.pseudo_labels:
                        schedules[method] = SelectionSchedule.from_adapt(train_cfg.adapt).describe()
                epochs = train_run(train_cfg, method)
                checkpoints = {
                    key: evaluate_checkpoint(run_cfg, run_dir / name)
                    for key, name, _ in m.checkpoints
                }
                runs.setdefault(method, {})[seed] = {"epochs": epochs, "checkpoints": checkpoints}
                if m.adapts and train_cfg.adapt.pseudo_labels:
                    rounds.setdefault(method, {})[seed] = pseudo_label_rounds(run_dir, parts)
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = aggregate(runs)
    page = markdown_report(
        record=record,
        cfg=cfg,
        seeds=list(args.seeds),
        table=table,
        adapt_epochs=adapt_epochs if adapting else None,
        round_every=round_every,
        schedules={METHODS[k].label: v for k, v in schedules.items()},
        closed=gap_closed(runs),
        adapt_lr=adapt_lr,
        adapt_set=list(args.adapt_set),
    )
    page += "\n".join(pseudo_label_lines(rounds)) + ("\n" if rounds else "")
    settings = {
        "config": config_to_dict(cfg),
        "seeds": list(args.seeds),
        "methods": list(args.methods),
        "adapt_epochs": adapt_epochs,
        "round_every": round_every,
        "schedules": schedules,
        "adapt_set": list(args.adapt_set),
        "command": [sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
        "seconds": round(time.monotonic() - start, 1),
    }
    write_report(
        out,
        report,
        page=page,
        doc=report_document(
            record=record, settings=settings, runs=runs, table=table, rounds=rounds
        ),
        table=table,
        rounds=rounds,
        rounds_title=f"{spec.name}: pseudo-label precision on the target train split",
        title=f"{spec.name}: target test PCK@0.05",
    )
    print(page)
    print(f"=> {out / (report + '.md')}, {report}.json, {report}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
