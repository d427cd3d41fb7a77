"""Global RNG states (torch CPU and CUDA, NumPy's legacy generator, Python ``random``) as
``torch.load(weights_only=True)``-loadable values, stored in checkpoints so a resumed run draws
what an uninterrupted one would (train/checkpoint.py)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

__all__ = ["capture_rng_state", "restore_rng_state"]


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
