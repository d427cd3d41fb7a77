"""Checkpoints that the CC-SSL reference can read and that read the reference's.

A ``torch.save`` of a plain dict, loadable with ``torch.load(weights_only=True)``, written
atomically: the reference's keys ``REFERENCE_KEYS`` (``epoch`` = the NEXT epoch, ``arch``,
``state_dict`` with the ``module.`` prefix of its ``DataParallel``, ``best_acc``, ``optimizer``;
docs/reference_compat.md §2) plus ours: ``config``, ``scheduler``, ``scaler``, ``rng``
(train/rng_state.py), ``keypoint_spec`` and the trainer's ``epoch_record``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from animalpose.datasets.fileio import DataError, atomic_write, crash_point
from animalpose.train.rng_state import capture_rng_state, restore_rng_state

__all__ = [
    "CHECKPOINT_NAME",
    "BEST_NAME",
    "REFERENCE_KEYS",
    "SNAPSHOT_TEMPLATE",
    "LoadedCheckpoint",
    "ResumeState",
    "build_checkpoint",
    "capture_rng_state",
    "is_reference_checkpoint",
    "load_checkpoint",
    "load_model_weights",
    "model_state_from_checkpoint",
    "non_finite_weights",
    "prefixed_state_dict",
    "restore_rng_state",
    "restore_training_state",
    "save_checkpoint",
    "unwrap_model",
]

#: File names of pytorch-pose ``save_checkpoint``: the latest epoch, the best so far, and the
#: every-``--snapshot``-epochs copies.
CHECKPOINT_NAME = "checkpoint.pth.tar"
BEST_NAME = "model_best.pth.tar"
SNAPSHOT_TEMPLATE = "checkpoint_{epoch}.pth.tar"
#: Keys every reference checkpoint has; reference tools read exactly these.
REFERENCE_KEYS = ("epoch", "arch", "state_dict", "best_acc", "optimizer")
#: ``nn.DataParallel`` / DDP name prefix; the reference's checkpoints (and ours) carry it.
MODULE_PREFIX = "module."
#: ``torch.compile`` wraps a model in an ``OptimizedModule`` whose keys gain this prefix.
COMPILE_PREFIX = "_orig_mod."
#: How many key names an incompatible-weights error lists before summarising.
MAX_LISTED_KEYS = 12
#: What errors about a checkpoint dict that was not read by ``load_checkpoint`` call it.
IN_MEMORY = "<in-memory checkpoint>"


class LoadedCheckpoint(dict):
    """A checkpoint dict that remembers the file it was read from (``source``), so errors about
    its content name that file however deep they are raised."""

    def __init__(self, data: Mapping[str, Any], source: str | os.PathLike) -> None:
        super().__init__(data)
        self.source = str(source)


def _source(ckpt: Mapping[str, Any]) -> str:
    return getattr(ckpt, "source", IN_MEMORY)


# -- model <-> state_dict --------------------------------------------------------------------
def unwrap_model(model: nn.Module) -> nn.Module:
    """Strip ``torch.compile``, ``DataParallel`` and DDP wrappers (any nesting)."""
    while True:
        if hasattr(model, "_orig_mod"):
            model = model._orig_mod
        elif isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            model = model.module
        else:
            return model


def prefixed_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The model's state_dict with reference (``DataParallel``) names: ``module.<key>``."""
    return {MODULE_PREFIX + k: v for k, v in unwrap_model(model).state_dict().items()}


def _strip_prefixes(key: str) -> str:
    while True:
        for prefix in (MODULE_PREFIX, COMPILE_PREFIX):
            if key.startswith(prefix):
                key = key[len(prefix) :]
                break
        else:
            return key


def _is_bare_state_dict(obj: Mapping) -> bool:
    return len(obj) > 0 and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    )


def model_state_from_checkpoint(ckpt: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Model weights from a checkpoint dict (ours or the reference's) or a bare state_dict.

    ``module.`` (DataParallel) and ``_orig_mod.`` (torch.compile) prefixes are stripped.
    """
    if "state_dict" in ckpt:
        state = ckpt["state_dict"]
        if not isinstance(state, Mapping):
            raise DataError(f"checkpoint 'state_dict' is a {type(state).__name__}, not a dict")
    elif _is_bare_state_dict(ckpt):
        state = ckpt
    else:
        raise DataError(
            f"not a checkpoint: no 'state_dict' key and not a bare state_dict "
            f"(keys: {sorted(map(str, ckpt))[:MAX_LISTED_KEYS]})"
        )
    return {_strip_prefixes(k): v for k, v in state.items()}


def _listing(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_LISTED_KEYS])
    more = len(keys) - MAX_LISTED_KEYS
    return f"{shown}, ... ({more} more)" if more > 0 else shown


def load_model_weights(
    model: nn.Module, path_or_ckpt: str | os.PathLike | Mapping[str, Any], *, strict: bool = True
) -> tuple[list[str], list[str]]:
    """Load weights into ``model`` (wrappers are looked through) from a file or checkpoint dict.

    Raises:
        DataError: with ``strict``, any missing or unexpected key; always, any shape mismatch.
            The message names the file and lists the offending keys.

    Returns:
        The named tuple ``(missing_keys, unexpected_keys)`` of ``Module.load_state_dict``.
    """
    if isinstance(path_or_ckpt, Mapping):
        source, ckpt = _source(path_or_ckpt), path_or_ckpt
    else:
        source, ckpt = str(path_or_ckpt), load_checkpoint(path_or_ckpt)
    try:
        state = model_state_from_checkpoint(ckpt)
    except DataError as err:
        raise DataError(f"{source}: {err}") from None
    target = unwrap_model(model)
    expected = target.state_dict()
    # BatchNorm step counters count as present: checkpoints from before torch 0.4.1 (the
    # published SimpleBaseline ResNet files) have none, and load_state_dict fills them.
    missing = [k for k in expected if k not in state and not k.endswith(".num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    problems = []
    if strict and missing:
        problems.append(f"missing keys ({len(missing)}): {_listing(missing)}")
    if strict and unexpected:
        problems.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches (file != model): {_listing(mismatched)}")
    if problems:
        raise DataError(
            f"{source}: weights do not fit {type(target).__name__}: " + "; ".join(problems)
        )
    return target.load_state_dict(state, strict=strict)


# -- building, saving and loading --------------------------------------------------------------
def build_checkpoint(
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    best_acc: float | torch.Tensor,
    keypoint_spec: str,
    arch: str = "hg",
    config: Mapping[str, Any] | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    rng: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the checkpoint dict (reference keys plus ours).

    Args:
        model: the model, possibly wrapped (compile / DataParallel / DDP).
        optimizer: its optimizer.
        epoch: the NEXT epoch to run (reference convention).
        best_acc: best validation accuracy so far (stored as a 0-d float64 tensor).
        keypoint_spec: name of the keypoint spec (``"animal18"``).
        arch: architecture name (``MODELS`` key).
        config: the resolved config as a plain nested dict.
        scheduler: an LR scheduler (its ``state_dict()`` is stored) or None.
        scaler: a ``GradScaler`` (its ``state_dict()`` is stored) or None.
        rng: RNG states; ``capture_rng_state()`` when None.
    """
    return {
        "epoch": int(epoch),
        "arch": str(arch),
        "state_dict": prefixed_state_dict(model),
        "best_acc": torch.as_tensor(best_acc, dtype=torch.float64).detach().cpu().reshape(()),
        "optimizer": optimizer.state_dict(),
        "config": dict(config) if config is not None else {},
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": dict(rng) if rng is not None else capture_rng_state(),
        "keypoint_spec": str(keypoint_spec),
    }


def _check_state(state: Mapping[str, Any], path: Path) -> None:
    missing = [k for k in REFERENCE_KEYS if k not in state]
    if missing:
        raise ValueError(f"{path}: checkpoint state lacks the reference keys {missing}")
    if not isinstance(state["epoch"], int):
        raise ValueError(f"{path}: 'epoch' must be an int, got {type(state['epoch']).__name__}")
    bare = [k for k in state["state_dict"] if not k.startswith(MODULE_PREFIX)]
    if bare:
        raise ValueError(
            f"{path}: state_dict keys must carry the reference's {MODULE_PREFIX!r} prefix "
            f"(use prefixed_state_dict); first bare key {bare[0]!r}"
        )


#: Entries that are module / optimizer ``state_dict()`` output (always weights_only-loadable).
_TENSOR_ENTRIES = ("state_dict", "optimizer")


def save_checkpoint(
    state: Mapping[str, Any],
    directory: str | os.PathLike,
    *,
    is_best: bool,
    filename: str = CHECKPOINT_NAME,
    snapshot: int = 0,
) -> Path:
    """Write ``state`` to ``directory/filename`` atomically, plus the reference's copies.

    ``model_best.pth.tar`` is written too when ``is_best``; ``checkpoint_<epoch>.pth.tar`` when
    ``snapshot > 0`` and ``state['epoch'] % snapshot == 0``. The main file is the commit point and
    comes first (crash point ``checkpoint:committed`` right after it); the copies hold the same
    bytes, so a run killed before them rewrites them from it (train/run_folder.py). Everything but
    the weights and optimizer state is checked to load with ``torch.load(weights_only=True)``
    before anything is written, so an unloadable state (a ``Path`` or NumPy array in ``config``,
    say) raises ``ValueError`` and leaves old files intact.

    Returns:
        The path of the main file.
    """
    directory = Path(directory)
    path = directory / filename
    _check_state(state, path)
    # Module and optimizer state dicts hold only tensors and plain values; an object that
    # weights_only refuses can hide in the other entries (config, rng, scheduler). Checking just
    # those avoids deserialising the weights a second time on every save.
    metadata = io.BytesIO()
    torch.save({k: v for k, v in state.items() if k not in _TENSOR_ENTRIES}, metadata)
    metadata.seek(0)
    try:
        torch.load(metadata, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"{path}: checkpoint state would not load with torch.load(weights_only=True); store "
            f"only tensors, numbers, strings, None, lists and dicts ({err})"
        ) from err
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    data = buffer.getbuffer()
    with atomic_write(path) as f:
        f.write(data)
    crash_point("checkpoint:committed")
    copies = []
    if snapshot > 0 and state["epoch"] % snapshot == 0:
        copies.append(directory / SNAPSHOT_TEMPLATE.format(epoch=state["epoch"]))
    if is_best:
        copies.append(directory / BEST_NAME)
    for target in copies:
        with atomic_write(target) as f:
            f.write(data)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """``torch.load(path, weights_only=True)`` with clear errors.

    Accepts our checkpoints, the reference's, and bare state_dicts.

    Raises:
        DataError: the file is missing, unreadable or corrupt, or holds no checkpoint dict.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise DataError(f"{path}: cannot read checkpoint ({type(err).__name__}: {err})") from err
    if not isinstance(ckpt, dict):
        raise DataError(f"{path}: not a checkpoint: holds a {type(ckpt).__name__}, not a dict")
    if "state_dict" not in ckpt and not _is_bare_state_dict(ckpt):
        raise DataError(
            f"{path}: not a checkpoint: no 'state_dict' key and not a bare state_dict "
            f"(keys: {sorted(map(str, ckpt))[:MAX_LISTED_KEYS]})"
        )
    return LoadedCheckpoint(ckpt, path)


def is_reference_checkpoint(ckpt: Mapping[str, Any]) -> bool:
    """Whether ``ckpt`` was written by the reference: a ``state_dict`` whose keys all carry the
    ``module.`` prefix of its ``DataParallel`` and no saved ``config`` (ours always hold one).
    Its model expects the reference's input normalisation (docs/reference_compat.md §7.3)."""
    state = ckpt.get("state_dict")
    return (
        not ckpt.get("config")
        and isinstance(state, Mapping)
        and len(state) > 0
        and all(isinstance(k, str) and k.startswith(MODULE_PREFIX) for k in state)
    )


def non_finite_weights(state: Mapping[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold NaN or inf."""
    names = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()]
    if not names:
        return []
    finite = torch.stack([torch.isfinite(state[k]).all() for k in names]).tolist()
    return [k for k, ok in zip(names, finite) if not ok]


#: Optimiser hyper-parameters that torch versions add or drop; they do not tell solvers apart.
_VERSION_KEYS = frozenset(
    {"foreach", "maximize", "capturable", "differentiable", "fused", "decoupled_weight_decay"}
)


def _check_optimizer_state(saved: Any, optimizer: torch.optim.Optimizer, source: str) -> None:
    """Refuse another solver's state: loading Adam's into RMSprop (say) would fail only at the
    first step (``KeyError: 'square_avg'``)."""
    name = type(optimizer).__name__
    if not isinstance(saved, Mapping) or not isinstance(saved.get("param_groups"), list):
        raise DataError(f"{source}: 'optimizer' is not an optimizer state_dict")
    known = set(optimizer.defaults) | {"params", "initial_lr"} | _VERSION_KEYS
    foreign = sorted({str(k) for g in saved["param_groups"] for k in g} - known)
    if foreign:
        raise DataError(
            f"{source}: its optimizer state is not {name}'s (it has {', '.join(foreign)}): the "
            "run was trained with another --solver; resume with that solver, or start a new run "
            "from its weights with --pretrained"
        )


class ResumeState(NamedTuple):
    """Where training continues: the next epoch and the best accuracy so far."""

    start_epoch: int
    best_acc: float


def restore_training_state(
    ckpt: Mapping[str, Any],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    restore_rng: bool = True,
) -> ResumeState:
    """Resume from a checkpoint (ours or the reference's): weights strictly, then whatever of
    optimizer, scheduler, scaler and RNG states the checkpoint holds and the caller passes.

    Raises:
        DataError: naming the checkpoint's file (``LoadedCheckpoint``): weights that hold NaN or
            inf (the run had diverged), weights that do not fit ``model``, another solver's
            optimizer state, or a state that does not load.
    """
    source = _source(ckpt)
    try:
        bad = non_finite_weights(model_state_from_checkpoint(ckpt))
    except DataError as err:
        raise DataError(f"{source}: {err}") from None
    if bad:
        raise DataError(
            f"{source}: the weights hold NaN or inf ({_listing(bad)}): the run had diverged "
            "when this checkpoint was written; resume from an earlier checkpoint (a "
            "--snapshot copy) with a lower --lr, or start over"
        )
    load_model_weights(model, ckpt, strict=True)
    if optimizer is not None and ckpt.get("optimizer") is not None:
        _check_optimizer_state(ckpt["optimizer"], optimizer, source)
    parts = (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler))
    for key, target in parts:
        if target is not None and ckpt.get(key) is not None:
            try:
                target.load_state_dict(ckpt[key])
            except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as err:
                raise DataError(
                    f"{source}: its {key} state does not fit this run's "
                    f"{type(target).__name__} ({type(err).__name__}: {err})"
                ) from err
    if restore_rng and ckpt.get("rng") is not None:
        try:
            restore_rng_state(ckpt["rng"])
        except ValueError as err:
            raise DataError(f"{source}: {err}") from err
    best = ckpt.get("best_acc", 0.0)
    return ResumeState(start_epoch=int(ckpt.get("epoch", 0)), best_acc=float(best))
