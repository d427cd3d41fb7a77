"""A run folder (``-c``) holds one run: the files of each epoch, the order they are written in,
and what a continued run may change.

After each epoch ``checkpoint.pth.tar`` is committed first, holding the epoch's ``RECORD_KEY``
(its ``log.txt`` row, validation predictions, whether it was the best); its copies (snapshot,
``model_best.pth.tar``, train/checkpoint.py), ``preds.mat``, ``preds_best.mat`` and the log row
(``finish_epoch``) follow, each written atomically. A run killed in between and continued with
``--resume`` rewrites what is stale from the checkpoint (``repair_run_folder``), so the folder ends
as an uninterrupted run's; ``resume_changes`` says which settings a continued run may change.
"""

from __future__ import annotations

import filecmp
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from animalpose.datasets.fileio import atomic_write, remove_temp_files
from animalpose.evaluation.report import save_preds_mat
from animalpose.train.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    SNAPSHOT_TEMPLATE,
    LoadedCheckpoint,
    load_checkpoint,
)
from animalpose.train.config import CONFIG_FILE_NAME, Config, ConfigError
from animalpose.train.config_io import config_to_dict, drop_retired

__all__ = [
    "settings_listing",
    "APPLIED_ON_RESUME",
    "FREE_ON_RESUME",
    "LOG_COLUMNS",
    "MULTITASK_LOG_COLUMNS",
    "RECORD_KEY",
    "ReferenceLog",
    "apply_optim_settings",
    "changed_settings",
    "epoch_record",
    "finish_epoch",
    "peek_checkpoint",
    "remove_interrupted_writes",
    "repair_run_folder",
    "resume_changes",
]

LOG_NAME = "log.txt"
PREDS_NAME = "preds.mat"
PREDS_BEST_NAME = "preds_best.mat"
#: The reference's log.txt columns (its train.py's bearpaw/pytorch-pose Logger), tab separated;
#: Val Auc and Val Mean Error from the legacy distances (evaluation/pck.py ``LegacyPCK``).
LOG_COLUMNS = (
    "Epoch",
    "LR",
    "Train Loss",
    "Val Loss",
    "Train Acc",
    "Val Acc",
    "Val Auc",
    "Val Mean Error",
)
#: The log.txt columns of the reference's train/train_multitask.py: Train Loss and Val Loss are
#: the keypoint losses, Val IOU its mean part IoU in percent (train/multitask.py).
MULTITASK_LOG_COLUMNS = (*LOG_COLUMNS[:6], "Val IOU")
#: ``LOG_COLUMNS`` before Val Auc and Val Mean Error were logged: a folder continued from then
#: has its header and rows widened, the new columns ``nan`` in the old rows.
_OLD_COLUMNS = 6
#: Checkpoint entry with what the rest of the folder derives from the epoch (``epoch_record``).
RECORD_KEY = "epoch_record"
#: Settings a continued run may change: its length, where the data and outputs are, and how it
#: runs and reports (device, loading, logging), none of which changes what is trained.
FREE_ON_RESUME = frozenset(
    {
        "optim.epochs",
        "optim.start_epoch",
        "data.image_path",
        "data.workers",
        "data.test_batch",
        "data.eval_split",
        "run.checkpoint",
        "run.resume",
        "run.pretrained",
        "run.evaluate",
        "run.device",
        "run.compile",
        "run.channels_last",
        "run.progress",
        "run.debug",
        "run.log_every",
        "run.tb_images",
        "run.snapshot",
    }
)
#: Optimisation settings a continued run applies from its next epoch (as the reference's
#: ``--resume`` applies a new ``--lr`` / ``--schedule`` at its next milestone); config.yaml, the
#: checkpoints and log.txt's LR column record them. Any other change is refused.
APPLIED_ON_RESUME = frozenset({"optim.lr", "optim.schedule", "optim.gamma", "optim.weight_decay"})


# -- log.txt -----------------------------------------------------------------------------------
def _row_epoch(line: str) -> float | None:
    try:
        return float(line.split("\t", 1)[0])
    except ValueError:
        return None


class ReferenceLog:
    """The reference's ``log.txt``: a tab-separated header of ``columns`` (``LOG_COLUMNS``, or
    ``MULTITASK_LOG_COLUMNS`` for a multitask run), then one row per epoch, rewritten atomically
    for each row (a kill never leaves half a row)."""

    def __init__(self, path: Path, resume: bool, *, columns: Sequence[str] = LOG_COLUMNS) -> None:
        self.path = path
        self.columns = tuple(columns)
        if not (resume and path.exists()):
            with atomic_write(path, "w") as f:
                f.write("\t".join(self.columns) + "\n")

    def set_row(self, values: Sequence[float]) -> bool:
        """Make ``values`` (epoch first, 1-based) the last row: rows of that epoch or later (a
        run continued from an earlier checkpoint) are dropped. Rows shorter than ``columns``
        (``values`` of an older checkpoint, rows of an older log) are padded with ``nan``, a
        header that is a shorter start of ``columns`` (an older log) widened. Returns whether
        the file changed."""
        epoch = float(values[0])
        width = len(self.columns)
        old = self.path.read_text() if self.path.exists() else ""
        lines = old.splitlines() or ["\t".join(self.columns)]
        kept = [_widen(r, width) for r in lines[1:] if r.strip() and (_row_epoch(r) or 0) < epoch]
        row = _widen("\t".join(f"{float(v):.6f}" for v in values), width)
        header = lines[0]
        names = header.split("\t")
        if len(names) >= _OLD_COLUMNS and names == list(self.columns[: len(names)]):
            header = "\t".join(self.columns)
        text = "\n".join([header, *kept, row]) + "\n"
        if text == old:
            return False
        with atomic_write(self.path, "w") as f:
            f.write(text)
        return True


def _widen(row: str, width: int) -> str:
    """``row`` padded with ``nan`` cells to ``width`` cells."""
    cells = row.split("\t")
    return "\t".join(cells + ["nan"] * (width - len(cells)))


# -- the files of one epoch --------------------------------------------------------------------
def epoch_record(
    row: Sequence[float],
    preds: np.ndarray,
    is_best: bool,
    *,
    columns: Sequence[str] = LOG_COLUMNS,
) -> dict[str, Any]:
    """The ``RECORD_KEY`` entry of an epoch's checkpoint: its log.txt ``row`` under the run's
    log ``columns``, its (N, K, 2) validation ``preds`` (image pixels) and whether it was the
    best epoch so far."""
    if len(row) > len(columns):
        raise ValueError(f"log row of {len(row)} values for {len(columns)} columns {columns}")
    return {
        "log_row": [float(v) for v in row],
        "log_columns": [str(c) for c in columns],
        "preds": torch.from_numpy(np.asarray(preds, dtype=np.float32)),
        "is_best": bool(is_best),
    }


def _same_preds(path: Path, preds: np.ndarray) -> bool:
    import scipy.io

    try:
        return np.array_equal(scipy.io.loadmat(path)["preds"], preds)
    except Exception:  # missing, damaged: rewrite it
        return False


def finish_epoch(directory: Path, record: dict[str, Any], *, only_stale: bool = False) -> list[str]:
    """Write the files that follow an epoch's committed checkpoint: ``preds.mat``,
    ``preds_best.mat`` (best epochs) and the log row; with ``only_stale`` just those that do not
    hold the record already. Returns the names written."""
    preds = record["preds"].numpy()
    written = []
    for name in (PREDS_NAME, PREDS_BEST_NAME) if record["is_best"] else (PREDS_NAME,):
        if not (only_stale and _same_preds(directory / name, preds)):
            save_preds_mat(directory / name, preds)
            written.append(name)
    # Records written before the columns were stored are of keypoint runs.
    columns = record.get("log_columns") or LOG_COLUMNS
    if ReferenceLog(directory / LOG_NAME, resume=True, columns=columns).set_row(record["log_row"]):
        written.append(LOG_NAME)
    return written


# -- continuing a run --------------------------------------------------------------------------
def peek_checkpoint(path: str | Path) -> dict[str, Any]:
    """``load_checkpoint`` with the tensors memory-mapped, not read: cheap for the small entries
    (epoch, config, record). The legacy (non-zip) torch format is read whole."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return load_checkpoint(path)  # the clear error, or the legacy format
    return LoadedCheckpoint(ckpt, path) if isinstance(ckpt, dict) else load_checkpoint(path)


def repair_run_folder(directory: Path, *, snapshot: int) -> list[str]:
    """Rewrite the files of the epoch that ``directory/checkpoint.pth.tar`` committed that a kill
    left missing or stale (its snapshot and ``model_best`` copies, preds, log row) from it.
    Checkpoints without a record (the reference's, older ones) are left as they are. Returns the
    names rewritten."""
    path = directory / CHECKPOINT_NAME
    ckpt = peek_checkpoint(path)
    record = ckpt.get(RECORD_KEY)
    if not isinstance(record, dict):
        return []
    epoch = int(ckpt["epoch"])
    copies = (
        [SNAPSHOT_TEMPLATE.format(epoch=epoch)] if snapshot > 0 and epoch % snapshot == 0 else []
    )
    copies += [BEST_NAME] if record["is_best"] else []
    repaired = []
    for name in copies:
        target = directory / name
        if not (target.is_file() and filecmp.cmp(path, target, shallow=False)):
            with open(path, "rb") as src, atomic_write(target) as dst:
                shutil.copyfileobj(src, dst)
            repaired.append(name)
    return repaired + finish_epoch(directory, record, only_stale=True)


def remove_interrupted_writes(directory: Path) -> list[Path]:
    """Delete the temporary files that killed atomic writes of the run's files left."""
    names = {CHECKPOINT_NAME, BEST_NAME, PREDS_NAME, PREDS_BEST_NAME, LOG_NAME, CONFIG_FILE_NAME}
    # Snapshots: ".checkpoint_<n>.pth.tar.<random>.tmp" -> "checkpoint_<n>.pth.tar".
    stem = SNAPSHOT_TEMPLATE.format(epoch="*")
    names |= {t.name[1 : -len(".tmp")].rsplit(".", 1)[0] for t in directory.glob(f".{stem}.*.tmp")}
    return [tmp for name in sorted(names) for tmp in remove_temp_files(directory / name)]


def _flat(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def changed_settings(saved: dict, current: dict, *, defaults: dict) -> list[tuple[str, Any, Any]]:
    """(dotted key, saved value, current value) for every setting that differs between two
    ``config_to_dict`` dicts; a key the saved config lacks (an older version) has its default."""
    a = {**_flat(drop_retired(defaults)), **_flat(drop_retired(saved))}
    b = _flat(drop_retired(current))
    return [(k, a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def settings_listing(changed: list[tuple[str, Any, Any]]) -> str:
    """``key: saved there, current now`` for the first four of ``changed_settings``' rows."""
    shown = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, a, b in changed[:4])
    return shown + (", ..." if len(changed) > 4 else "")


def resume_changes(cfg: Config, ckpt: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The ``APPLIED_ON_RESUME`` settings in which ``cfg`` differs from the config saved in
    ``ckpt`` (none saved, as in the reference's checkpoints: nothing to compare).

    Raises:
        ConfigError: any other difference but ``FREE_ON_RESUME``, naming the keys.
    """
    saved = ckpt.get("config")
    if not isinstance(saved, dict) or not saved:
        return []
    defaults = config_to_dict(type(cfg)())
    changed = [
        c
        for c in changed_settings(saved, config_to_dict(cfg), defaults=defaults)
        if c[0] not in FREE_ON_RESUME
    ]
    refused = [c for c in changed if c[0] not in APPLIED_ON_RESUME]
    if refused:
        source = getattr(ckpt, "source", cfg.run.resume)
        raise ConfigError(
            f"{source} was trained with other settings ({settings_listing(refused)}). A resumed "
            f"run may change {', '.join(sorted(APPLIED_ON_RESUME))} (applied from its next epoch), "
            "optim.epochs and how it runs (device, workers, logging); resume with the "
            f"checkpoint's own settings (its config.yaml), or start a new run from its weights "
            f"with --pretrained {source} in another -c/--checkpoint folder"
        )
    return changed


def apply_optim_settings(cfg: Config, optimizer: Any, scheduler: Any, start_epoch: int) -> None:
    """Give a restored optimiser and ``MultiStepLR`` the learning rate, schedule and weight decay
    of ``cfg`` at 0-based ``start_epoch``: ``optim.lr`` decayed by ``optim.gamma`` for every
    ``optim.schedule`` milestone already passed."""
    o = cfg.optim
    lr = o.lr * o.gamma ** sum(m <= start_epoch for m in o.schedule)
    for group in optimizer.param_groups:
        group.update(lr=lr, initial_lr=o.lr, weight_decay=o.weight_decay)
    scheduler.base_lrs = [o.lr] * len(optimizer.param_groups)
    scheduler.milestones = Counter(o.schedule)
    scheduler.gamma = o.gamma
    scheduler._last_lr = [lr] * len(optimizer.param_groups)
