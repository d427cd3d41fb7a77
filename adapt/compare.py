"""Method comparison on a domain-gap benchmark: every method, N seeds, one table per metric.

Behind ``benchmarks/domain_gap.py`` (source only vs oracle) and ``benchmarks/adaptation.py``
(source only, CC-SSL, WS-CDA, CC-SSL + WS-CDA, WS-CDA + PPLO, oracle)::

    python datasets/generate.py --benchmark dogshift-v2-cpu --image-path animal_data
    python benchmarks/adaptation.py --benchmark dogshift-v2-cpu --image-path animal_data \\
        --seeds 0 1 2 [--out runs/adaptation/dogshift-v2-cpu] [--epochs 15] [--adapt-epochs 12]
    python benchmarks/adaptation.py --benchmark dogshift-v2 --gpu-full --seeds 0 1 2

For every seed (the recipe is ``configs/quickstart_cpu.yaml`` by default; ``--gpu-full``: the
reference's 4-stack recipe ``configs/hg_synthetic_sp.yaml``):

- source only: ``synthetic_animal_sp`` on the source set through the real ``Trainer``;
  ``model_best`` is selected on the SOURCE valid split (no target labels: the honest unsupervised
  choice); each epoch the weights are also evaluated on the TARGET valid split and the best are
  kept as ``model_best_target_valid.pth.tar`` (the reference's protocol selects on TigDog labels).
- adaptation methods (``AdaptTrainer``, ``adapt/trainer.py``) start from that seed's source-only
  ``model_best`` (selected on source valid) and train ``--adapt-epochs`` epochs with the recipe's
  optimiser at a constant learning rate, pseudo-label rounds every ``--round-every`` epochs
  (default: 6 rounds, as the reference's 60 / 10); ``model_best`` is selected on the target
  valid split; the last epoch is reported too.
- oracle: ``real_animal_sp`` on the target TRAIN split with its labels, selected on target valid.

Every reported checkpoint is evaluated on the held-out target TEST split (``real_animal_sp``
centre crops, normalised with the source set's mean as every model was trained) with both
metrics. Written to ``--out``: ``<report>.md`` (per part and mean, mean +- sample std over
seeds), ``<report>.png``, ``<report>.json`` (every number) and one folder per run
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

from animalpose.adapt.config import AdaptConfig
from animalpose.adapt.trainer import AdaptTrainer, settings_changed
from animalpose.datasets.fileio import DataError, atomic_write
from animalpose.datasets.generator.dogshift import (
    BENCHMARKS,
    BenchmarkSpec,
    find_benchmark,
    generate_benchmark,
    get_benchmark,
)
from animalpose.evaluation.report import METRIC_LABELS, summarize
from animalpose.train.checkpoint import BEST_NAME
from animalpose.train.config import (
    Config,
    ConfigError,
    apply_overrides,
    config_from_dict,
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
#: The record of a complete run (its config and per-epoch numbers) in its folder.
RUN_RECORD = "domain_gap_run.json"


@dataclass(frozen=True)
class Method:
    """label: table name. dataset: training data set (``train``); adapt: ``adapt.*`` settings
    (adaptation methods, which start from the seed's source-only model). checkpoints: (key,
    file, label) reported."""

    label: str
    checkpoints: tuple[tuple[str, str, str], ...]
    dataset: str = "synthetic_animal_sp"
    adapt: tuple[tuple[str, object], ...] = ()

    @property
    def adapts(self) -> bool:
        return bool(self.adapt)


_TARGET_SELECTED = (
    ("selected_target_valid", BEST_NAME, "selected on target valid"),
    ("last", LAST_NAME, "last epoch"),
)
METHODS: dict[str, Method] = {
    "source": Method(
        "source only",
        (
            ("selected_source_valid", BEST_NAME, "selected on source valid"),
            ("selected_target_valid", TARGET_BEST_NAME, "selected on target valid"),
            ("last", LAST_NAME, "last epoch"),
        ),
    ),
    "ccssl": Method(
        "CC-SSL", _TARGET_SELECTED, adapt=(("pseudo_labels", True), ("adversarial", False))
    ),
    "wscda": Method(
        "WS-CDA", _TARGET_SELECTED, adapt=(("pseudo_labels", False), ("adversarial", True))
    ),
    "ccssl_wscda": Method(
        "CC-SSL + WS-CDA", _TARGET_SELECTED, adapt=(("pseudo_labels", True), ("adversarial", True))
    ),
    "wscda_pplo": Method(
        "WS-CDA + PPLO",
        _TARGET_SELECTED,
        adapt=(
            ("pseudo_labels", True),
            ("adversarial", True),
            ("selection", "pplo"),
            ("views", 0),
            ("temporal", False),
        ),
    ),
    "oracle": Method("oracle (target train, labels)", _TARGET_SELECTED, dataset="real_animal_sp"),
}
#: The methods of benchmarks/domain_gap.py and of benchmarks/adaptation.py, in run order
#: (source first: the adaptation methods start from its model).
GAP_METHODS = ("source", "oracle")
ADAPTATION_METHODS = ("source", "ccssl", "wscda", "ccssl_wscda", "oracle")


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
    cfg: Config, method: str, *, init: Path, epochs: int, round_every: int, overrides: list[str]
) -> AdaptConfig:
    """The adaptation config of ``method``: the recipe's data, model and run settings; its
    optimiser at a constant learning rate for ``epochs``; the method's ``adapt.*`` settings;
    initial weights ``init``; then ``overrides`` (``--adapt-set``)."""
    d = config_to_dict(cfg)
    d["optim"].update(epochs=epochs, schedule=[], start_epoch=0)
    d["run"]["pretrained"] = str(init)
    d["adapt"] = {"round_every": round_every, **dict(METHODS[method].adapt)}
    acfg = config_from_dict(d, source=f"adaptation method {method}", config_type=AdaptConfig)
    return apply_overrides(acfg, overrides, source="--adapt-set")


def _record_differs(saved: dict, current: dict) -> bool:
    """Whether a complete run's recorded config trains something else than ``current``: any
    difference but display, loading, device and the run's folder (a copied or moved output
    folder is reused)."""
    epochs = [d.get("optim", {}).get("epochs") for d in (saved, current)]
    return bool(settings_changed(saved, current)) or epochs[0] != epochs[1]


def train_run(cfg: Config, method: str) -> list[dict]:
    """Train one run into ``cfg.run.checkpoint`` (an ``AdaptConfig`` runs ``AdaptTrainer``);
    returns its per-epoch validation means."""
    out = Path(cfg.run.checkpoint)
    record_path = out / RUN_RECORD
    settings = config_to_dict(cfg)
    if record_path.exists():
        record = json.loads(record_path.read_text())
        if record.get("complete") and not _record_differs(record.get("config") or {}, settings):
            print(f"=> {out}: complete run with this config, not trained again")
            return record["epochs"]
    # Built first: a Trainer seeds torch, and the training Trainer must start from its own seed.
    target_valid = None
    if method == "source":
        on_target = {"data.dataset": TARGET_DATASET, "data.eval_split": "valid"}
        target_valid = Trainer(_with(cfg, on_target), train=False)
    trainer = AdaptTrainer(cfg) if isinstance(cfg, AdaptConfig) else Trainer(cfg)
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
    trainer = Trainer(
        _with(
            cfg,
            {"data.dataset": TARGET_DATASET, "data.eval_split": "test", "run.resume": str(path)},
        ),
        train=False,
    )
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
                    "per_part": {
                        p: _stats([r[metric]["per_part"][p] for r in results]) for p in parts
                    },
                    "mean": _stats([r[metric]["mean"] for r in results]),
                }
            out.setdefault(method, {})[key] = entry
    return out


def _cell(stats: dict, seeds: int) -> str:
    if stats["mean"] is None:
        return "n/a"
    return f"{stats['mean']:.2f}" if seeds == 1 else f"{stats['mean']:.2f} ± {stats['std']:.2f}"


def markdown_report(
    *,
    record: dict,
    cfg: Config,
    seeds: list[int],
    table: dict,
    adapt_epochs: int | None = None,
    round_every: int = 10,
) -> str:
    """The Markdown page: header, one table per metric, the gap line (and, with adaptation
    methods, each one's change over source only)."""
    source, official = record["source"], record["official"]
    target = ", ".join(
        f"{n} {len(v['shots'])} shots / {v['frames']} frames" for n, v in record["splits"].items()
    )
    m, d, o = cfg.model, cfg.data, cfg.optim
    spread = "" if len(seeds) == 1 else ", mean ± sample std over seeds"
    lines = [
        (
            f"# {'Adaptation' if adapt_epochs else 'Domain gap'}: {record['name']} "
            f"(version {record['version']})"
        ),
        "",
        (
            f"- data: renderer `{record['renderer']}` "
            f"({'official data' if official else 'NOT the official renderer'}); source "
            f"{source['images']} stills ({source['train']} train / {source['valid']} valid); "
            f"target {target}"
        ),
        (
            f"- model: {m.arch} {m.stacks} stack(s), {m.channels} channels, {d.inp_res} px input, "
            f"{o.epochs} epochs, {o.solver} lr {o.lr}, batch {d.train_batch}; seeds "
            f"{', '.join(map(str, seeds))}"
        ),
        f"- evaluated on the target TEST split; PCK@0.05 in percent{spread}",
        (
            "- source only: synthetic_animal_sp on the source set; oracle: real_animal_sp on the "
            "target train split with labels; epoch = epochs trained, per seed"
        ),
    ]
    if adapt_epochs:
        lines.append(
            f"- adaptation: from each seed's source-only model (selected on source valid), "
            f"{adapt_epochs} epochs, {o.solver} lr {o.lr} constant, pseudo-label rounds every "
            f"{round_every} epochs; selected on target valid"
        )
    for metric in METRICS:
        first = next(iter(next(iter(table.values())).values()))
        parts = list(first[metric]["per_part"])
        lines += [
            "",
            f"## {METRIC_LABELS[metric]}",
            "",
            "| model | checkpoint | epoch | " + " | ".join(parts) + " | mean |",
            "| --- | --- | --- |" + " ---: |" * len(parts) + " ---: |",
        ]
        for method, entries in table.items():
            for key, _, label in METHODS[method].checkpoints:
                e = entries[key][metric]
                cells = [_cell(e["per_part"][p], len(seeds)) for p in parts]
                epochs = ", ".join(map(str, entries[key]["epochs"]))
                lines.append(
                    f"| {METHODS[method].label} | {label} | {epochs} | "
                    + " | ".join(cells)
                    + f" | **{_cell(e['mean'], len(seeds))}** |"
                )
    if {"source", "oracle"} <= set(table):
        gaps = []
        for metric in METRICS:
            oracle = table["oracle"]["selected_target_valid"][metric]["mean"]["mean"]
            source = table["source"]["selected_source_valid"][metric]["mean"]["mean"]
            if oracle is not None and source is not None:
                gaps.append(f"{metric} {oracle - source:+.2f}")
        lines += [
            "",
            (
                "Domain gap (oracle selected on target valid − source only selected on "
                f"source valid, mean PCK points): {', '.join(gaps) or 'n/a'}"
            ),
        ]
    if "source" in table:
        for method in (m for m in table if METHODS[m].adapts):
            deltas = []
            for metric in METRICS:
                got = table[method]["selected_target_valid"][metric]["mean"]["mean"]
                base = table["source"]["selected_target_valid"][metric]["mean"]["mean"]
                if got is not None and base is not None:
                    deltas.append(f"{metric} {got - base:+.2f}")
            lines.append(
                f"\n{METHODS[method].label} − source only (both selected on target "
                f"valid, mean PCK points): {', '.join(deltas) or 'n/a'}"
            )
    return "\n".join(lines) + "\n"


def plot_chart(path: Path, *, title: str, table: dict) -> None:
    """Grouped bars per part and mean (one group per part, one bar per model/checkpoint),
    error bars = std over seeds; one panel per metric."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = [
        (f"{METHODS[m].label}, {label}", entries[key])
        for m, entries in table.items()
        for key, _, label in METHODS[m].checkpoints
    ]
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
            ax.bar(
                x + (j - (len(rows) - 1) / 2) * width,
                heights,
                width,
                yerr=errors,
                capsize=2,
                label=label,
            )
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
        adapting = [m for m in args.methods if METHODS[m].adapts]
        if adapting and "source" not in args.methods[: args.methods.index(adapting[0])]:
            raise ConfigError(
                f"--methods: {adapting[0]} starts from the source-only model; "
                "list 'source' before it"
            )
    except (DataError, ConfigError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    adapt_epochs = args.adapt_epochs or cfg.optim.epochs
    round_every = args.round_every or max(1, adapt_epochs // 6)
    out = Path(args.out or Path("runs") / report / spec.name)
    start = time.monotonic()
    runs: dict = {}
    try:
        for method in args.methods:
            m = METHODS[method]
            for seed in args.seeds:
                run_dir = out / method / f"seed{seed}"
                run_cfg = _with(
                    cfg,
                    {"data.dataset": m.dataset, "run.seed": seed, "run.checkpoint": str(run_dir)},
                )
                train_cfg = run_cfg
                if m.adapts:
                    init = out / "source" / f"seed{seed}" / BEST_NAME
                    train_cfg = adapt_config(
                        run_cfg,
                        method,
                        init=init,
                        epochs=adapt_epochs,
                        round_every=round_every,
                        overrides=args.adapt_set,
                    )
                epochs = train_run(train_cfg, method)
                checkpoints = {
                    key: evaluate_checkpoint(run_cfg, run_dir / name)
                    for key, name, _ in m.checkpoints
                }
                runs.setdefault(method, {})[seed] = {"epochs": epochs, "checkpoints": checkpoints}
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
    )
    doc = {
        "benchmark": {
            k: record[k]
            for k in (
                "name",
                "version",
                "renderer",
                "official",
                "spec",
                "splits",
                "source",
                "target",
            )
        },
        "config": config_to_dict(cfg),
        "seeds": list(args.seeds),
        "methods": list(args.methods),
        "adapt_epochs": adapt_epochs,
        "round_every": round_every,
        "adapt_set": list(args.adapt_set),
        "command": [sys.argv[0], *(argv if argv is not None else sys.argv[1:])],
        "seconds": round(time.monotonic() - start, 1),
        "unit": "percent",
        "metric_labels": {m: METRIC_LABELS[m] for m in METRICS},
        "runs": {m: {str(s): r for s, r in by_seed.items()} for m, by_seed in runs.items()},
        "aggregate": table,
    }
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / f"{report}.md", "w") as f:
        f.write(page)
    with atomic_write(out / f"{report}.json", "w") as f:
        f.write(json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n")
    plot_chart(out / f"{report}.png", title=f"{spec.name}: target test PCK@0.05", table=table)
    print(page)
    print(f"=> {out / (report + '.md')}, {report}.json, {report}.png")
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
