"""The comparison's report: mean and std over seeds, the Markdown page, the chart, the JSON.

Pure functions of the per-seed results that ``adapt/compare.py`` collects; every number is PCK@0.05
in percent, per part and mean, for each (method, reported checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from animalpose.adapt.compare_methods import METHODS
from animalpose.datasets.fileio import atomic_write
from animalpose.evaluation.report import METRIC_LABELS
from animalpose.train.build import model_description
from animalpose.train.config import Config

__all__ = [
    "BASELINES",
    "METRICS",
    "aggregate",
    "gap_closed",
    "markdown_report",
    "plot_chart",
    "plot_pseudo_labels",
    "pseudo_label_lines",
    "report_document",
    "strict_json",
    "write_report",
]

#: Both metric variants, in report order.
METRICS = ("legacy", "precise")
#: The benchmark.json entries copied into the report's JSON.
BENCHMARK_KEYS = ("name", "version", "renderer", "official", "spec", "splits", "source", "target")


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


def _seed_means(by_seed: dict, key: str, metric: str) -> dict:
    return {s: r["checkpoints"][key][metric]["mean"] for s, r in by_seed.items()}


#: The source-only checkpoints an adaptation method (selected on target valid) is compared with:
#: the one selected the same way, and the one an unsupervised user picks (on source valid, as the
#: domain-gap line).
BASELINES = {
    "selected_target_valid": "target valid",
    "selected_source_valid": "source valid",
}


def gap_closed(runs: dict) -> dict:
    """Each adaptation method against source only and the oracle, per baseline and metric,
    seeds paired.

    Per seed s: gain = method (selected on target valid) - source only (checkpoint ``baseline``,
    a ``BASELINES`` key), gap = oracle (selected on target valid) - that source only, closed =
    100 gain / gap. Returns ``{method: {baseline: {metric: {"gain", "closed": _stats, "spread",
    "clear"}}}}``: spread = the larger sample std over seeds of the method's and the source's
    mean PCK; clear = the mean gain exceeds twice that spread. Methods or seeds without a source
    (or oracle, for ``closed``) run are left out."""
    key = "selected_target_valid"
    if "source" not in runs:
        return {}
    out: dict = {}
    for method, by_seed in runs.items():
        if not METHODS[method].adapts:
            continue
        for baseline in BASELINES:
            for metric in METRICS:
                got = _seed_means(by_seed, key, metric)
                base = _seed_means(runs["source"], baseline, metric)
                oracle = _seed_means(runs.get("oracle", {}), key, metric)
                seeds = [s for s in sorted(got) if s in base]
                gains = [got[s] - base[s] for s in seeds]
                closed = [
                    100 * (got[s] - base[s]) / (oracle[s] - base[s])
                    for s in seeds
                    if s in oracle and oracle[s] - base[s] > 0
                ]
                spread = max(
                    _stats([got[s] for s in seeds])["std"] or 0.0,
                    _stats([base[s] for s in seeds])["std"] or 0.0,
                )
                gain = _stats(gains)
                clear = gain["mean"] is not None and len(seeds) > 1 and gain["mean"] > 2 * spread
                out.setdefault(method, {}).setdefault(baseline, {})[metric] = {
                    "gain": gain,
                    "closed": _stats(closed),
                    "spread": spread,
                    "clear": clear,
                }
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
    schedules: dict[str, str] | None = None,
    closed: dict | None = None,
    adapt_lr: float | None = None,
    adapt_set: list[str] | None = None,
) -> str:
    """The Markdown page: header, one table per metric, the gap line and, with adaptation
    methods, ``closed`` (``gap_closed``) as a table. ``schedules``: method label -> the
    pseudo-label schedule that ran, listed under the adaptation line; ``adapt_lr``: the
    adaptation runs' learning rate (default the recipe's); ``adapt_set``: their overrides."""
    source, official = record["source"], record["official"]
    target = ", ".join(
        f"{n} {len(v['shots'])} shots / {v['frames']} frames" for n, v in record["splits"].items()
    )
    d, o = cfg.data, cfg.optim
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
            f"- model: {model_description(cfg)}, {d.inp_res} px input, "
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
            f"{adapt_epochs} epochs, {o.solver} lr {adapt_lr if adapt_lr is not None else o.lr} "
            f"constant, pseudo-label rounds every {round_every} epochs; selected on target valid"
            + (f"; adaptation settings {', '.join(adapt_set)}" if adapt_set else "")
        )
        if schedules:  # which curriculum ran (by round or by epoch)
            shown = "; ".join(f"{label}: {text}" for label, text in schedules.items())
            lines.append(f"- pseudo-labels kept: {shown}")
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
    if closed:
        lines += [
            "",
            "## Against source only (seeds paired)",
            "",
            "gain = method (selected on target valid) − source only (selected on the split named); "
            "gap closed = gain / (oracle − source only), per seed; clear = the mean gain is more "
            "than twice the seed spread (the larger std over seeds of the method and of source "
            "only).",
            "",
            "| method | source only selected on | metric | gain (points) | gap closed (%) "
            "| seed spread | clear |",
            "| --- | --- | --- | ---: | ---: | ---: | --- |",
        ]
        for method, by_baseline in closed.items():
            for baseline, by_metric in by_baseline.items():
                for metric, c in by_metric.items():
                    lines.append(
                        f"| {METHODS[method].label} | {BASELINES[baseline]} | {metric} | "
                        f"{_cell(c['gain'], len(seeds))} | {_cell(c['closed'], len(seeds))} | "
                        f"{c['spread']:.2f} | {'yes' if c['clear'] else 'no'} |"
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


def _round_means(by_seed: dict) -> list[dict]:
    """Per round index: mean over seeds of keep_share, pck_selected, pck_all, confidence_auc
    and each part's kept share and precision (NaN-free; None where no seed has the value)."""
    by_round: dict[int, list[dict]] = {}
    for rounds in by_seed.values():
        for r in rounds:
            by_round.setdefault(int(r["round"]), []).append(r)
    out = []
    for index in sorted(by_round):
        rows = by_round[index]
        entry = {"round": index, "seeds": len(rows)}
        for name in ("keep_share", "pck_selected", "pck_all", "confidence_auc"):
            entry[name] = _stats([r.get(name) for r in rows])["mean"]
        names = [p for r in rows for p in r.get("parts", {})]
        entry["parts"] = {
            part: {
                key: _stats([r["parts"][part][key] for r in rows if part in r.get("parts", {})])[
                    "mean"
                ]
                for key in ("kept", "correct")
            }
            for part in dict.fromkeys(names)
        }
        out.append(entry)
    return out


def pseudo_label_lines(rounds: dict) -> list[str]:
    """Markdown lines: per method and round, the share of pseudo-labels kept, the fraction of
    kept (and of all) labels within PCK@0.05 of the annotation and how well confidence ranks
    right labels above wrong ones (ROC AUC), mean over seeds; then the same per part."""
    if not rounds:
        return []
    lines = [
        "",
        "## Pseudo-label precision per round (target train split, mean over seeds)",
        "",
        "confidence AUC: the chance that a right label is more confident than a wrong one "
        "(0.5 = confidence does not tell them apart).",
        "",
        "| method | round | kept (%) | correct among kept (%) | correct among all (%) "
        "| confidence AUC |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]

    def pct(v):
        return "n/a" if v is None else f"{100 * v:.1f}"

    means = {method: _round_means(by_seed) for method, by_seed in rounds.items()}
    for method, rows in means.items():
        for r in rows:
            auc = "n/a" if r["confidence_auc"] is None else f"{r['confidence_auc']:.3f}"
            lines.append(
                f"| {METHODS[method].label} | {r['round']} | {pct(r['keep_share'])} | "
                f"{pct(r['pck_selected'])} | {pct(r['pck_all'])} | {auc} |"
            )
    parts = list(dict.fromkeys(p for rows in means.values() for r in rows for p in r["parts"]))
    if parts:
        lines += [
            "",
            "Per part: correct among kept (%), and in brackets the share of the part's labels "
            "kept (%).",
            "",
            "| method | round | " + " | ".join(parts) + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in parts) + " |",
        ]
        for method, rows in means.items():
            for r in rows:
                cells = []
                for part in parts:
                    v = r["parts"].get(part, {"kept": None, "correct": None})
                    cells.append(f"{pct(v['correct'])} ({pct(v['kept'])})")
                lines.append(
                    f"| {METHODS[method].label} | {r['round']} | " + " | ".join(cells) + " |"
                )
    return lines


def plot_pseudo_labels(path: Path, *, title: str, rounds: dict) -> None:
    """Share of pseudo-labels kept (x) against the fraction of them that is correct (y), one
    line per method (mean over seeds, one marker per round, labelled), and each method's
    all-labels precision as a dotted line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for method, by_seed in rounds.items():
        means = [r for r in _round_means(by_seed) if r["pck_selected"] is not None]
        if not means:
            continue
        xs = [100 * r["keep_share"] for r in means]
        ys = [100 * r["pck_selected"] for r in means]
        (line,) = ax.plot(xs, ys, marker="o", label=METHODS[method].label)
        for r, x, y in zip(means, xs, ys):
            ax.annotate(str(r["round"]), (x, y), textcoords="offset points", xytext=(4, 4))
        alls = [100 * r["pck_all"] for r in means if r["pck_all"] is not None]
        if alls:
            ax.axhline(float(np.mean(alls)), color=line.get_color(), linestyle=":", alpha=0.6)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("pseudo-labels kept (%)")
    ax.set_ylabel("kept labels within PCK@0.05 (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)


def strict_json(value):
    """``value`` with NaN / inf as None and NumPy scalars as Python numbers (strict JSON)."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def report_document(
    *, record: dict, settings: dict, runs: dict, table: dict, rounds: dict | None = None
) -> dict:
    """The ``<report>.json`` document: the benchmark, the comparison's ``settings`` (config,
    seeds, methods, ...), every run's results, the ``aggregate`` table, ``gap_closed`` and the
    pseudo-label ``rounds`` (method -> seed -> rounds)."""
    return {
        "benchmark": {k: record[k] for k in BENCHMARK_KEYS},
        **settings,
        "unit": "percent",
        "metric_labels": {m: METRIC_LABELS[m] for m in METRICS},
        "runs": {m: {str(s): r for s, r in by_seed.items()} for m, by_seed in runs.items()},
        "aggregate": table,
        "gap_closed": gap_closed(runs),
        "pseudo_label_rounds": {
            m: {str(s): r for s, r in by_seed.items()} for m, by_seed in (rounds or {}).items()
        },
    }


def write_report(
    out: Path,
    report: str,
    *,
    page: str,
    doc: dict,
    table: dict,
    title: str,
    rounds: dict | None = None,
    rounds_title: str = "pseudo-labels",
) -> None:
    """Write ``<report>.md`` (``page``), ``<report>.json`` (``doc``, strict JSON), the chart
    ``<report>.png`` and, with pseudo-label ``rounds``, ``<report>_pseudo_labels.png`` into
    ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / f"{report}.md", "w") as f:
        f.write(page)
    with atomic_write(out / f"{report}.json", "w") as f:
        f.write(json.dumps(strict_json(doc), indent=2, allow_nan=False) + "\n")
    plot_chart(out / f"{report}.png", title=title, table=table)
    if rounds:
        plot_pseudo_labels(out / f"{report}_pseudo_labels.png", title=rounds_title, rounds=rounds)
