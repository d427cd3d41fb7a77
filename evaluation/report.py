"""PCK reports: text tables, JSON/CSV result files, the reference's ``preds.mat``, bar charts;
for top-down data also the OKS AP statistics and the COCO keypoint results file.

Inputs are (K,) per-keypoint fractions in [0, 1] (NaN = keypoint never evaluated); every
output is in percent and says which metric it holds (legacy = the reference's, precise = ours).
``check_output_folder`` and ``output_errors`` turn an unwritable or full output folder into a
one-line ``DataError`` (before the work, and while writing).
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from animalpose.datasets.fileio import DataError, atomic_write
from animalpose.datasets.keypoints import KeypointSpec

__all__ = [
    "METRIC_LABELS",
    "check_output_folder",
    "output_errors",
    "nanmean",
    "summarize",
    "pck_table",
    "save_results",
    "save_preds_mat",
    "plot_pck",
    "save_oks_results",
    "save_keypoint_results",
]

#: Labels written beside every number so legacy and precise PCK are never confused.
METRIC_LABELS: dict[str, str] = {
    "legacy": "PCK@0.05 legacy (reference metric: heatmap argmax vs target argmax, "
    "mean of per-batch fractions)",
    "precise": "PCK@0.05 precise (sub-pixel predictions vs annotations in image pixels, "
    "pooled over samples)",
}
RESULTS_JSON = "pck_results.json"
RESULTS_CSV = "pck_results.csv"
#: How ``oks_results.json`` describes its numbers.
OKS_METRIC_LABEL = (
    "pycocotools COCOeval iouType=keypoints (OKS), maxDets 20, fractions; -1: nothing to average "
    "(COCOeval's marker)"
)
#: Key of the predictions array in the reference's ``preds*.mat`` files.
PREDS_MAT_KEY = "preds"
PERCENT = 100.0
#: The flag that names the output folder of training and evaluation.
OUTPUT_FLAG = "-c/--checkpoint"
#: Bytes written (and fsynced) by ``check_output_folder``'s probe: one block, so that a full
#: disk fails there rather than after the evaluation or the first epoch.
_PROBE_BYTES = 4096
#: Failures that only writing causes; with no file name attached they are blamed on the folder.
_WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _describe(err: OSError) -> str:
    name = errno.errorcode.get(err.errno or 0)
    return f"{err.strerror or err}" + (f" ({name})" if name else "")


def _file_in_the_way(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` (itself included) when it is not a folder."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return None if candidate.is_dir() else candidate
    return None


def check_output_folder(path: str | os.PathLike, *, flag: str = OUTPUT_FLAG) -> Path:
    """Create the output folder ``path`` and write (and fsync) a probe file in it, so that a
    folder that cannot hold results fails before any work is done, not after.

    Raises:
        DataError: ``path`` (or a parent) is a file, or the folder cannot be created or written
            (read-only, full, forbidden); the message names the folder and the flag.
    """
    path = Path(path)
    blocker = _file_in_the_way(path)
    if blocker is not None:
        raise DataError(
            f"{flag} {path}: {blocker} is a file, not a folder; choose another {flag} folder"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_probe.", suffix=".tmp", dir=path)
        try:
            os.write(fd, bytes(_PROBE_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as err:
        raise DataError(
            f"{flag} {path}: cannot write this folder: {_describe(err)}; make it writable (or "
            f"free space) or choose another {flag} folder"
        ) from None
    return path


@contextlib.contextmanager
def output_errors(folder: str | os.PathLike, *, flag: str = OUTPUT_FLAG) -> Iterator[None]:
    """Turn an ``OSError`` of writing into ``folder`` (a full, read-only or forbidden disk) into a
    one-line ``DataError`` naming the file (or, when the error names none, the folder). Errors
    about files elsewhere (inputs) pass through unchanged."""
    folder = Path(folder)
    root = folder.resolve()
    try:
        yield
    except OSError as err:
        name = err.filename
        target = None if name is None else Path(os.fsdecode(name)).resolve()
        inside = target is not None and (target == root or root in target.parents)
        if not inside and not (name is None and err.errno in _WRITE_ERRNOS):
            raise
        where = os.fsdecode(name) if name is not None else f"writing into {folder}"
        raise DataError(
            f"{where}: {_describe(err)}; free space or make the {flag} folder writable, or "
            f"choose another {flag} folder"
        ) from err


def nanmean(values: np.ndarray) -> float:
    """Mean of the finite entries of ``values``; NaN (no warning) when there are none."""
    values = np.asarray(values)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _check(per_keypoint: np.ndarray, spec: KeypointSpec) -> np.ndarray:
    values = np.asarray(per_keypoint, dtype=np.float64)
    if values.shape != (spec.num_keypoints,):
        raise ValueError(
            f"expected ({spec.num_keypoints},) per-keypoint values for spec {spec.name!r}, "
            f"got shape {values.shape}"
        )
    return values


def summarize(per_keypoint: np.ndarray, spec: KeypointSpec) -> dict[str, Any]:
    """(K,) fractions -> percent per keypoint, per part (mean of its keypoints) and the mean
    over keypoints; NaN entries are ignored by the means (a mean of nothing is NaN)."""
    values = _check(per_keypoint, spec) * PERCENT
    return {
        "per_keypoint": dict(zip(spec.keypoints, values.tolist())),
        "per_part": {part: nanmean(values[idx]) for part, idx in spec.part_indices.items()},
        "mean": nanmean(values),
    }


def _fmt(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value:.2f}"


def pck_table(per_keypoint: np.ndarray, spec: KeypointSpec, *, title: str) -> str:
    """A text table: one row per keypoint, one per part, then the mean, in percent.

    ``title`` should name the metric (see :data:`METRIC_LABELS`).
    """
    summary = summarize(per_keypoint, spec)
    width = max(len(n) for n in (*spec.keypoints, *spec.part_indices, "keypoint"))
    rule = "-" * (width + 12)
    lines = [title, rule, f"{'keypoint':<{width}}  {'PCK (%)':>8}", rule]
    lines += [f"{n:<{width}}  {_fmt(v):>8}" for n, v in summary["per_keypoint"].items()]
    lines += [rule, f"{'part':<{width}}  {'PCK (%)':>8}", rule]
    lines += [f"{n:<{width}}  {_fmt(v):>8}" for n, v in summary["per_part"].items()]
    lines += [rule, f"{'mean':<{width}}  {_fmt(summary['mean']):>8}", rule]
    return "\n".join(lines)


@contextlib.contextmanager
def _written(path: Path, mode: str) -> Iterator:
    """``atomic_write(path, mode)`` whose ``OSError`` names ``path`` (a failed ``write`` or
    ``fsync``, on a full disk say, names no file)."""
    try:
        with atomic_write(path, mode) as f:
            yield f
    except OSError as err:
        if err.filename is None:
            err.filename = str(path)
        raise


def _json_number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def save_results(
    directory: str | os.PathLike,
    *,
    spec: KeypointSpec,
    legacy: np.ndarray | None,
    precise: np.ndarray | None,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``pck_results.json`` and ``pck_results.csv`` atomically into ``directory``.

    JSON: ``{"spec", "unit": "percent", "metrics": {name: {"label", "per_keypoint",
    "per_part", "mean"}}, "extra"}`` with NaN written as null. CSV columns: metric, group
    (keypoint / part / mean), name, pck_percent (empty for NaN). ``extra`` must be
    JSON-serialisable (e.g. checkpoint path, dataset, counts as lists).

    Returns:
        (json path, csv path).
    """
    metrics = {
        name: values
        for name, values in (("legacy", legacy), ("precise", precise))
        if values is not None
    }
    if not metrics:
        raise ValueError("save_results needs at least one of legacy / precise")
    summaries = {name: summarize(values, spec) for name, values in metrics.items()}
    doc = {
        "spec": spec.name,
        "unit": "percent",
        "metrics": {
            name: {
                "label": METRIC_LABELS[name],
                "per_keypoint": {k: _json_number(v) for k, v in s["per_keypoint"].items()},
                "per_part": {k: _json_number(v) for k, v in s["per_part"].items()},
                "mean": _json_number(s["mean"]),
            }
            for name, s in summaries.items()
        },
        "extra": extra or {},
    }
    text = json.dumps(doc, indent=2, allow_nan=False)
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(["metric", "group", "name", "pck_percent"])
    for name, s in summaries.items():
        for group, entries in (
            ("keypoint", s["per_keypoint"]),
            ("part", s["per_part"]),
            ("mean", {"mean": s["mean"]}),
        ):
            for key, value in entries.items():
                writer.writerow([name, group, key, f"{value:.4f}" if math.isfinite(value) else ""])
    directory = Path(directory)
    json_path, csv_path = directory / RESULTS_JSON, directory / RESULTS_CSV
    with _written(json_path, "w") as f:
        f.write(text + "\n")
    with _written(csv_path, "w") as f:
        f.write(rows.getvalue())
    return json_path, csv_path


def save_preds_mat(path: str | os.PathLike, preds: np.ndarray) -> Path:
    """Write (N, K, 2) image-pixel predictions as the reference's ``preds*.mat`` (key ``preds``,
    float32 like the reference's torch tensor), atomically."""
    import scipy.io

    array = np.asarray(preds, dtype=np.float32)
    if array.ndim != 3 or array.shape[-1] != 2:
        raise ValueError(f"preds must be (N, K, 2), got shape {array.shape}")
    path = Path(path)
    with _written(path, "wb") as f:
        scipy.io.savemat(f, {PREDS_MAT_KEY: array})
    return path


def plot_pck(
    path_png: str | os.PathLike, *, spec: KeypointSpec, results: dict[str, np.ndarray]
) -> Path:
    """Grouped bar chart of per-keypoint PCK (percent) for labelled result sets, plus the mean.

    ``results`` maps a label (e.g. ``"legacy"``, ``"precise"`` or a run name) to (K,) fractions.
    NaN values get an empty (zero-height) bar.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not results:
        raise ValueError("plot_pck needs at least one result set")
    names = [*spec.keypoints, "mean"]
    x = np.arange(len(names))
    width = 0.8 / len(results)
    fig = Figure(figsize=(max(8.0, 0.55 * len(names) * max(1, len(results)) ** 0.5), 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, (label, values) in enumerate(results.items()):
        summary = summarize(values, spec)
        heights = np.array([*summary["per_keypoint"].values(), summary["mean"]])
        ax.bar(
            x + (i - (len(results) - 1) / 2) * width,
            np.nan_to_num(heights, nan=0.0),
            width,
            label=f"{label} (mean {_fmt(summary['mean'])})",
        )
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("PCK@0.05 (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path_png)
    with _written(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return path


def save_oks_results(
    path: str | os.PathLike, stats: dict[str, float], *, extra: dict[str, Any] | None = None
) -> Path:
    """Write the COCOeval statistics ``stats`` (AP, AP50, ... by name, fractions) atomically as
    ``path`` (``oks_results.json``): the statistics at the top level, as the results-file scorer
    (``evaluation/score.py``) writes them, then ``metric`` and the JSON-serialisable ``extra``
    (box source, annotation and results files, spec)."""
    values = {name: float(value) for name, value in stats.items()}
    if not all(math.isfinite(v) for v in values.values()):
        raise ValueError(f"OKS statistics must be finite, got {values}")
    doc = {**values, "metric": OKS_METRIC_LABEL, **(extra or {})}
    path = Path(path)
    with _written(path, "w") as f:
        f.write(json.dumps(doc, indent=2, allow_nan=False) + "\n")
    return path


def save_keypoint_results(path: str | os.PathLike, results: list[dict[str, Any]]) -> Path:
    """Write COCO keypoint results entries (``evaluation/oks.py`` ``coco_results``) atomically as
    the json list pycocotools' ``loadRes`` and ``evaluation/test.py --results`` read."""
    path = Path(path)
    with _written(path, "w") as f:
        f.write(json.dumps(results, allow_nan=False) + "\n")
    return path
