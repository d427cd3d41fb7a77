"""Checkpoints that the CC-SSL reference can read and that read the reference's.

A ``torch.save`` of a plain dict, loadable with ``torch.load(weights_only=True)``, written
atomically: the reference's keys ``REFERENCE_KEYS`` (``epoch`` = the NEXT epoch, ``arch``,
``state_dict`` with the ``module.`` prefix of its ``DataParallel``, ``best_acc``, ``optimizer``;
docs/reference_compat.md §2) plus ours: ``config``, ``scheduler``, ``scaler``, ``rng``
(``capture_rng_state``) and ``keypoint_spec``.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from animalpose.datasets.fileio import DataError, atomic_write

__all__ = [
    "CHECKPOINT_NAME",
    "BEST_NAME",
    "REFERENCE_KEYS",
    "ResumeState",
    "build_checkpoint",
    "capture_rng_state",
    "load_checkpoint",
    "load_model_weights",
    "model_state_from_checkpoint",
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
        source, ckpt = "<in-memory checkpoint>", path_or_ckpt
    else:
        source, ckpt = str(path_or_ckpt), load_checkpoint(path_or_ckpt)
    try:
        state = model_state_from_checkpoint(ckpt)
    except DataError as err:
        raise DataError(f"{source}: {err}") from None
    target = unwrap_model(model)
    expected = target.state_dict()
    missing = [k for k in expected if k not in state]
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


# -- RNG state ---------------------------------------------------------------------------------
def capture_rng_state() -> dict[str, Any]:
    """Global RNG states (torch CPU, torch CUDA if available, NumPy legacy, Python ``random``).

    Everything is stored as tensors, numbers and strings so ``torch.load(weights_only=True)``
    accepts it: NumPy's MT19937 keys and Python's 625-word state become int64 tensors.
    """
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "bit_generator": str(name),
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {
            "version": int(version),
            "internal": torch.tensor(internal, dtype=torch.int64),
            "gauss_next": gauss_next,
        },
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what ``capture_rng_state`` returned; absent entries are left alone.

    CUDA states are restored for as many devices as both the state and this machine have.
    """
    try:
        if "torch" in state:
            torch.set_rng_state(state["torch"].cpu())
        cuda_states = state.get("cuda") or []
        if cuda_states and torch.cuda.is_available():
            for device, cuda_state in enumerate(cuda_states[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(cuda_state.cpu(), device)
        if "numpy" in state:
            np_state = state["numpy"]
            np.random.set_state(
                (
                    np_state["bit_generator"],
                    np_state["keys"].cpu().numpy().astype(np.uint32),
                    int(np_state["pos"]),
                    int(np_state["has_gauss"]),
                    float(np_state["cached_gaussian"]),
                )
            )
        if "python" in state:
            py_state = state["python"]
            internal = tuple(int(v) for v in py_state["internal"].tolist())
            random.setstate((int(py_state["version"]), internal, py_state["gauss_next"]))
    except (KeyError, TypeError, ValueError, AttributeError, RuntimeError) as err:
        raise ValueError(f"malformed RNG state ({type(err).__name__}: {err})") from err


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
    ``snapshot > 0`` and ``state['epoch'] % snapshot == 0``. Everything but the weights and
    optimizer state is checked to load with ``torch.load(weights_only=True)`` before anything is
    written, so an unloadable state (a
    ``Path`` or NumPy array in ``config``, say) raises ``ValueError`` and leaves old files intact.

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
    targets = [path]
    if snapshot > 0 and state["epoch"] % snapshot == 0:
        targets.append(directory / SNAPSHOT_TEMPLATE.format(epoch=state["epoch"]))
    if is_best:
        targets.append(directory / BEST_NAME)
    for target in targets:
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
    return ckpt


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
    """
    load_model_weights(model, ckpt, strict=True)
    if optimizer is not None and ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    if scheduler is not None and ckpt.get("scheduler") is not None:
        scheduler.load_state_dict(ckpt["scheduler"])
    if scaler is not None and ckpt.get("scaler") is not None:
        scaler.load_state_dict(ckpt["scaler"])
    if restore_rng and ckpt.get("rng") is not None:
        restore_rng_state(ckpt["rng"])
    best = ckpt.get("best_acc", 0.0)
    return ResumeState(start_epoch=int(ckpt.get("epoch", 0)), best_acc=float(best))
