"""Per-channel mean/std files in the reference's format (docs/reference_compat.md §1.1, §1.2).

A mean file is ``torch.save`` of ``{'mean': FloatTensor(3), 'std': FloatTensor(3)}``, RGB in
[0, 1], read with ``weights_only=True``: ``mean.pth.tar`` for the synthetic datasets,
``mean_by_video.pth.tar`` for supervised TigDog training.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from animalpose.datasets.fileio import DataError, atomic_write

__all__ = [
    "KNOWN_SYNTHETIC_MEANS",
    "MEAN_NAME",
    "VIDEO_MEAN_NAME",
    "compute_mean_std",
    "load_or_compute_mean",
    "read_mean",
    "save_mean",
]

log = logging.getLogger(__name__)

#: Reference mean file of the synthetic datasets.
MEAN_NAME = "mean.pth.tar"
#: Reference mean file of supervised real (TigDog) training.
VIDEO_MEAN_NAME = "mean_by_video.pth.tar"
#: The reference's synthetic mean.pth.tar values (docs/reference_compat.md §1.1), used when neither
#: the file nor the synthetic data are available (e.g. evaluating a reference checkpoint on TigDog
#: without the dead synthetic download).
KNOWN_SYNTHETIC_MEANS: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "horse": ((0.4038, 0.3956, 0.3925), (0.2611, 0.2452, 0.2299)),
    "tiger": ((0.3959, 0.3861, 0.3818), (0.2567, 0.2410, 0.2283)),
}


def read_mean(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a reference-format mean file: returns (mean, std), float64 (3,) RGB in [0, 1]."""
    path = Path(path)
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise DataError(f"{path}: mean file not found") from None
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError for foreign pickles
        raise DataError(f"{path}: cannot read mean file ({type(exc).__name__}: {exc})") from exc
    if not isinstance(content, dict) or "mean" not in content or "std" not in content:
        raise DataError(f"{path}: mean file must hold a dict with 'mean' and 'std'")
    out = []
    for key in ("mean", "std"):
        value = np.asarray(torch.as_tensor(content[key]).double().flatten())
        if value.shape != (3,) or not np.isfinite(value).all():
            raise DataError(f"{path}: {key!r} must be 3 finite numbers, got {value.tolist()}")
        out.append(value)
    if (out[1] <= 0).any():
        raise DataError(f"{path}: 'std' must be positive, got {out[1].tolist()}")
    return out[0], out[1]


def save_mean(path: str | os.PathLike, mean: np.ndarray, std: np.ndarray) -> None:
    """Write (mean, std) atomically in the reference's format (FloatTensors of 3)."""
    content = {
        "mean": torch.as_tensor(np.asarray(mean), dtype=torch.float32).reshape(3),
        "std": torch.as_tensor(np.asarray(std), dtype=torch.float32).reshape(3),
    }
    with atomic_write(path) as f:
        torch.save(content, f)


def compute_mean_std(
    read: Callable[[int], np.ndarray], count: int, *, desc: str = "mean/std"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of RGB pixel values / 255, averaged over ``count`` images.

    As the reference, each image contributes its own per-channel mean and (unbiased) std and the
    results are averaged over images. ``read(i)`` returns image ``i`` as (H, W, 3) uint8 RGB.
    """
    if count < 1:
        raise ValueError("compute_mean_std needs at least one image")
    mean_sum = np.zeros(3)
    std_sum = np.zeros(3)
    # disable=None: no bar when stderr is not a terminal (logs of scripted runs stay readable).
    for i in tqdm(range(count), desc=desc, unit="img", leave=False, disable=None):
        pixels = read(i).reshape(-1, 3).astype(np.float64) / 255.0
        mean_sum += pixels.mean(axis=0)
        std_sum += pixels.std(axis=0, ddof=1)
    return mean_sum / count, std_sum / count


def load_or_compute_mean(
    path: str | os.PathLike,
    compute: Callable[[], tuple[np.ndarray, np.ndarray]],
    *,
    search_paths: Iterable[str | os.PathLike] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) from the first existing file of ``search_paths`` then ``path``; otherwise
    ``compute()`` them and save them to ``path`` in the reference's format."""
    for candidate in [*map(Path, search_paths), Path(path)]:
        if candidate.exists():
            log.info("reading mean/std from %s", candidate)
            return read_mean(candidate)
    log.info("computing mean/std (saved to %s)", path)
    mean, std = compute()
    save_mean(path, mean, std)
    return read_mean(path)  # the float32 values a later run reads back
