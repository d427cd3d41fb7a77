"""Domain gap of a benchmark: source only vs target-supervised oracle on the held-out test split.

    python datasets/generate.py --benchmark dogshift-v1-cpu --image-path animal_data
    python benchmarks/domain_gap.py --benchmark dogshift-v1-cpu --image-path animal_data \\
        --seeds 0 1 2 [--out runs/domain_gap/dogshift-v1-cpu] [--epochs 15] [--device cpu]
    python benchmarks/domain_gap.py --benchmark dogshift-v1 --gpu-full --seeds 0 1 2

For every seed, two models train through the real ``Trainer`` (the config of
``configs/quickstart_cpu.yaml`` by default; ``--gpu-full``: the reference's 4-stack recipe
``configs/hg_synthetic_sp.yaml``):

- source only: ``synthetic_animal_sp`` on the source set. The Trainer selects ``model_best`` on
  the SOURCE valid split (no target labels: the honest unsupervised choice); each epoch the
  weights are also evaluated on the TARGET valid split and the best are kept as
  ``model_best_target_valid.pth.tar`` (what the reference's protocol, which selects on TigDog
  labels, corresponds to). Both are reported, and the last epoch.
- oracle: ``real_animal_sp`` (strong augmentation) on the target TRAIN split with its labels,
  ``model_best`` selected on the target VALID split; reported with the last epoch.

Selection uses the Trainer's rule on every split: the first epoch with the highest legacy mean
PCK. Every checkpoint is evaluated on the target TEST split (``real_animal_sp`` data: centre
crops, normalised with the source set's mean as both models were trained) with both metrics.
Written to ``--out``: ``domain_gap.md`` (per part and mean, mean +- sample std over seeds),
``domain_gap.png``, ``domain_gap.json`` (every number) and one training folder per run
(``<method>/seed<k>/``). A complete run with the same config is not trained again.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from animalpose.datasets.benchmark import (
    BENCHMARKS,
    BenchmarkSpec,
    find_benchmark,
    generate_benchmark,
    get_benchmark,
)
from animalpose.datasets.files import DataError, atomic_write
from animalpose.evaluation.report import METRIC_LABELS, summarize
from animalpose.train.checkpoint import BEST_NAME
from animalpose.train.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_to_dict,
    load_config,
)
from animalpose.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
#: Default recipe: the README's CPU quickstart (1 stack, 64 channels, 128 px, 15 epochs).
CPU_CONFIG = REPO / "configs" / "quickstart_cpu.yaml"
#: ``--gpu-full``: the reference's recipe (4 stacks, 256 px, RMSprop, 100 epochs, batch 6) ...
GPU_CONFIG = REPO / "configs" / "hg_synthetic_sp.yaml"
#: ... with more loader workers for a GPU host.
GPU_OVERRIDES = ("data.workers=8",)
#: The latest epoch's weights (the Trainer writes it every epoch) and our target-selected copy.
LAST_NAME = "checkpoint.pth.tar"
TARGET_BEST_NAME = "model_best_target_valid.pth.tar"
#: Target splits are read as real_animal_sp: centre crops, the source set's (synthetic) mean.
TARGET_DATASET = "real_animal_sp"
METRICS = ("legacy", "precise")
RUN_RECORD = "domain_gap_run.json"


@dataclass(frozen=True)
class Method:
    """label: table name. dataset: training data set. checkpoints: (key, file, label) reported."""

    label: str
    dataset: str
    checkpoints: tuple[tuple[str, str, str], ...]


METHODS: dict[str, Method] = {
    "source": Method("source only", "synthetic_animal_sp", (
        ("selected_source_valid", BEST_NAME, "selected on source valid"),
        ("selected_target_valid", TARGET_BEST_NAME, "selected on target valid"),
        ("last", LAST_NAME, "last epoch"))),
    "oracle": Method("oracle (target train, labels)", "real_animal_sp", (
        ("selected_target_valid", BEST_NAME, "selected on target valid"),
        ("last", LAST_NAME, "last epoch"))),
}  # fmt: skip


def _with(cfg: Config, values: dict[str, object]) -> Config:
    """``cfg`` with the dotted keys of ``values`` replaced (validated, as ``--set``)."""
    return apply_overrides(cfg, [f"{key}={value}" for key, value in values.items()],
                           source="domain_gap")  # fmt: skip


def base_config(args: argparse.Namespace, spec: BenchmarkSpec) -> Config:
    """The shared recipe: YAML file, preset, option flags, then ``--set``."""
    cfg = load_config(args.config or (GPU_CONFIG if args.gpu_full else CPU_CONFIG))
    overrides = list(GPU_OVERRIDES if args.gpu_full else ())
    options = {"epochs": "optim.epochs", "stacks": "model.stacks", "channels": "model.channels",
               "inp_res": "data.inp_res", "out_res": "data.out_res", "lr": "optim.lr",
               "train_batch": "data.train_batch", "test_batch": "data.test_batch",
               "workers": "data.workers", "device": "run.device"}  # fmt: skip
    overrides += [f"{key}={getattr(args, name)}" for name, key in options.items()
                  if getattr(args, name) is not None]  # fmt: skip
    overrides += [f"data.image_path={args.image_path}", f"data.animal={spec.animal}",
                  f"data.seed={spec.split_seed}", f"run.progress={not args.no_progress}",
                  "run.evaluate=false", "run.resume=''", *args.set]  # fmt: skip
    return apply_overrides(cfg, overrides, source="domain_gap options")


# --- training -----------------------------------------------------------------------------------


def _means(val) -> dict:
    return {"legacy": val.legacy_mean, "precise": val.precise_mean}


def train_run(cfg: Config, method: str) -> list[dict]:
    """Train one run into ``cfg.run.checkpoint``; returns its per-epoch validation means."""
    out = Path(cfg.run.checkpoint)
    record_path = out / RUN_RECORD
    settings = config_to_dict(_with(cfg, {"run.progress": True}))  # the run, not its display
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("config") == settings and record.get("complete"):
            print(f"=> {out}: complete run with this config, not trained again")
            return record["epochs"]
    # Built first: a Trainer seeds torch, and the training Trainer must start from its own seed.
    target_valid = None
    if method == "source":
        on_target = {"data.dataset": TARGET_DATASET, "data.eval_split": "valid"}
        target_valid = Trainer(_with(cfg, on_target), train=False)
    trainer = Trainer(cfg)
    epochs: list[dict] = []
    best = {"acc": -1.0}

    def on_epoch_end(epoch: int, val) -> None:
        row = {"epoch": epoch + 1, "valid": _means(val)}
        if target_valid is not None:
            target_valid.model.load_state_dict(trainer.model.state_dict())
            tv = target_valid.validate(epoch)
            row["target_valid"] = _means(tv)
            acc = tv.legacy_mean if np.isfinite(tv.legacy_mean) else 0.0
            if acc > best["acc"]:  # the Trainer's rule: first epoch with the highest legacy mean
                best["acc"] = acc
                with atomic_write(out / TARGET_BEST_NAME) as f:
                    f.write((out / LAST_NAME).read_bytes())
        epochs.append(row)

    trainer.fit(on_epoch_end=on_epoch_end)
    text = json.dumps(_finite({"config": settings, "complete": True, "epochs": epochs}), indent=2)
    with atomic_write(record_path, "w") as f:
        f.write(text + "\n")
    return epochs


def evaluate_checkpoint(cfg: Config, path: Path) -> dict:
    """Both metrics of checkpoint ``path`` on the target test split."""
    trainer = Trainer(_with(cfg, {"data.dataset": TARGET_DATASET, "data.eval_split": "test",
                                  "run.resume": str(path)}), train=False)  # fmt: skip
    val = trainer.validate(trainer.start_epoch)
    summaries = {metric: summarize(getattr(val, metric), trainer.spec) for metric in METRICS}
    return {"epoch": int(trainer.start_epoch), "images": len(val.preds), **summaries}


# --- aggregation and report ---------------------------------------------------------------------


def _stats(values: list[float]) -> dict:
    """mean and sample std (ddof 1; 0 for one value) of the finite values, in percent."""
    arr = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {"mean": None, "std": None, "values": list(values)}
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "values": list(values)}


def aggregate(runs: dict) -> dict:
    """``runs[method][seed]["checkpoints"][key][metric]`` summaries -> mean/std over seeds of
    every part and the mean, plus the epochs, for each (method, checkpoint key)."""
    out: dict = {}
    for method, by_seed in runs.items():
        seeds = sorted(by_seed)
        for key, _, _ in METHODS[method].checkpoints:
            results = [by_seed[s]["checkpoints"][key] for s in seeds]
            entry = {"epochs": [r["epoch"] for r in results]}
            for metric in METRICS:
                parts = list(results[0][metric]["per_part"])
                entry[metric] = {
                    "per_part": {p: _stats([r[metric]["per_part"][p] for r in results])
                                 for p in parts},
                    "mean": _stats([r[metric]["mean"] for r in results]),
                }  # fmt: skip
            out.setdefault(method, {})[key] = entry
    return out


def _cell(stats: dict, seeds: int) -> str:
    if stats["mean"] is None:
        return "n/a"
    return f"{stats['mean']:.2f}" if seeds == 1 else f"{stats['mean']:.2f} ± {stats['std']:.2f}"


def markdown_report(*, record: dict, cfg: Config, seeds: list[int], table: dict) -> str:
    """The Markdown page: header, one table per metric, the gap line."""
    source, official = record["source"], record["official"]
    target = ", ".join(f"{n} {len(v['shots'])} shots / {v['frames']} frames"
                       for n, v in record["splits"].items())  # fmt: skip
    m, d, o = cfg.model, cfg.data, cfg.optim
    spread = "" if len(seeds) == 1 else ", mean ± sample std over seeds"
    lines = [
        f"# Domain gap: {record['name']} (version {record['version']})",
        "",
        (f"- data: renderer `{record['renderer']}` "
         f"({'official data' if official else 'NOT the official renderer'}); source "
         f"{source['images']} stills ({source['train']} train / {source['valid']} valid); "
         f"target {target}"),
        (f"- model: {m.arch} {m.stacks} stack(s), {m.channels} channels, {d.inp_res} px input, "
         f"{o.epochs} epochs, {o.solver} lr {o.lr}, batch {d.train_batch}; seeds "
         f"{', '.join(map(str, seeds))}"),
        f"- evaluated on the target TEST split; PCK@0.05 in percent{spread}",
        ("- source only: synthetic_animal_sp on the source set; oracle: real_animal_sp on the "
         "target train split with labels; epoch = epochs trained, per seed"),
    ]  # fmt: skip
    for metric in METRICS:
        first = next(iter(next(iter(table.values())).values()))
        parts = list(first[metric]["per_part"])
        lines += ["", f"## {METRIC_LABELS[metric]}", "",
                  "| model | checkpoint | epoch | " + " | ".join(parts) + " | mean |",
                  "| --- | --- | --- |" + " ---: |" * len(parts) + " ---: |"]  # fmt: skip
        for method, entries in table.items():
            for key, _, label in METHODS[method].checkpoints:
                e = entries[key][metric]
                cells = [_cell(e["per_part"][p], len(seeds)) for p in parts]
                epochs = ", ".join(map(str, entries[key]["epochs"]))
                lines.append(f"| {METHODS[method].label} | {label} | {epochs} | "
                             + " | ".join(cells) + f" | **{_cell(e['mean'], len(seeds))}** |")
    if {"source", "oracle"} <= set(table):
        gaps = []
        for metric in METRICS:
            oracle = table["oracle"]["selected_target_valid"][metric]["mean"]["mean"]
            source = table["source"]["selected_source_valid"][metric]["mean"]["mean"]
            if oracle is not None and source is not None:
                gaps.append(f"{metric} {oracle - source:+.2f}")
        lines += ["", ("Domain gap (oracle selected on target valid − source only selected on "
                       f"source valid, mean PCK points): {', '.join(gaps) or 'n/a'}")]  # fmt: skip
    return "\n".join(lines) + "\n"


def plot_chart(path: Path, *, title: str, table: dict) -> None:
    """Grouped bars per part and mean (one group per part, one bar per model/checkpoint),
    error bars = std over seeds; one panel per metric."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [(f"{METHODS[m].label}, {label}", entries[key])
            for m, entries in table.items()
            for key, _, label in METHODS[m].checkpoints]  # fmt: skip
    fig = Figure(figsize=(11, 8))
    FigureCanvasAgg(fig)
    for i, metric in enumerate(METRICS):
        ax = fig.add_subplot(len(METRICS), 1, i + 1)
        parts = list(rows[0][1][metric]["per_part"])
        x, width = np.arange(len(parts) + 1), 0.8 / len(rows)
        for j, (label, entry) in enumerate(rows):
            stats = [*(entry[metric]["per_part"][p] for p in parts), entry[metric]["mean"]]
            heights = [s["mean"] if s["mean"] is not None else 0.0 for s in stats]
            errors = [s["std"] if s["std"] is not None else 0.0 for s in stats]
            ax.bar(x + (j - (len(rows) - 1) / 2) * width, heights, width, yerr=errors,
                   capsize=2, label=label)  # fmt: skip
        ax.set_xticks(x, [*parts, "mean"])
        ax.set_ylim(0, 100)
        ax.set_ylabel(f"PCK@0.05 {metric} (%)")
        ax.grid(axis="y", alpha=0.3)
        if i == 0:
            ax.set_title(title)
            handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)


# --- the command --------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Source-only vs oracle PCK on a benchmark's held-out "
                                "target test split (see the module docstring).")  # fmt: skip
    p.add_argument("--benchmark", required=True, help=f"benchmark name (registered: "
                   f"{', '.join(BENCHMARKS)}; or any benchmark.json under --image-path)")
    p.add_argument("--image-path", default="./animal_data", help="data root of the benchmark")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--out", default=None, help="output folder (default runs/domain_gap/<name>)")
    p.add_argument("--config", default=None, help=f"recipe YAML (default {CPU_CONFIG.name})")
    p.add_argument("--gpu-full", action="store_true",
                   help=f"the reference's 4-stack recipe ({GPU_CONFIG.name}, 8 workers)")
    for name, tp in (("epochs", int), ("stacks", int), ("channels", int), ("inp-res", int),
                     ("out-res", int), ("train-batch", int), ("test-batch", int),
                     ("workers", int), ("lr", float), ("device", str)):  # fmt: skip
        p.add_argument(f"--{name}", type=tp, default=None, help="overrides the recipe")
    p.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                   help="override any config key (applied last)")
    p.add_argument("--generate", action="store_true",
                   help="generate the (registered) benchmark first when absent")
    p.add_argument("--renderer", default=None, help="with --generate: renderer (e.g. flat)")
    p.add_argument("--processes", type=int, default=None, help="with --generate: processes")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.generate:
            try:
                find_benchmark(args.image_path, args.benchmark)
            except DataError:
                generate_benchmark(get_benchmark(args.benchmark), args.image_path,
                                   renderer=args.renderer, processes=args.processes,
                                   progress=not args.no_progress)  # fmt: skip
        record = find_benchmark(args.image_path, args.benchmark)
        spec = BenchmarkSpec.from_dict(record["spec"])
        cfg = base_config(args, spec)
    except (DataError, ConfigError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("runs") / "domain_gap" / spec.name)
    start = time.monotonic()
    runs: dict = {}
    try:
        for method in args.methods:
            for seed in args.seeds:
                run_dir = out / method / f"seed{seed}"
                run_cfg = _with(cfg, {"data.dataset": METHODS[method].dataset, "run.seed": seed,
                                      "run.checkpoint": str(run_dir)})  # fmt: skip
                epochs = train_run(run_cfg, method)
                checkpoints = {key: evaluate_checkpoint(run_cfg, run_dir / name)
                               for key, name, _ in METHODS[method].checkpoints}  # fmt: skip
                runs.setdefault(method, {})[seed] = {"epochs": epochs, "checkpoints": checkpoints}
    except (DataError, ConfigError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    table = aggregate(runs)
    page = markdown_report(record=record, cfg=cfg, seeds=list(args.seeds), table=table)
    doc = {"benchmark": {k: record[k] for k in ("name", "version", "renderer", "official",
                                                "spec", "splits", "source", "target")},
           "config": config_to_dict(cfg), "seeds": list(args.seeds), "methods": list(args.methods),
           "command": [sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
           "seconds": round(time.monotonic() - start, 1), "unit": "percent",
           "metric_labels": {m: METRIC_LABELS[m] for m in METRICS},
           "runs": {m: {str(s): r for s, r in by_seed.items()} for m, by_seed in runs.items()},
           "aggregate": table}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / "domain_gap.md", "w") as f:
        f.write(page)
    with atomic_write(out / "domain_gap.json", "w") as f:
        f.write(json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n")
    plot_chart(out / "domain_gap.png", title=f"{spec.name}: target test PCK@0.05", table=table)
    print(page)
    print(f"=> {out / 'domain_gap.md'}, domain_gap.json, domain_gap.png")
    return 0


def _finite(value):
    """``value`` with NaN / inf as None and NumPy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    sys.exit(main())
