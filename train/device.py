"""Where and how a run computes: the torchrun process group, the device and its fast-maths
settings, bfloat16 autocast (CUDA, or a CPU with a bfloat16 fast path) and the memory format."""

from __future__ import annotations

import os
import warnings

import torch

from animalpose.evaluation.inference import CPU_BF16_FLAGS, cpu_bf16_fast_path
from animalpose.train.config import Config, ConfigError

__all__ = ["init_distributed", "memory_format", "resolve_device", "setup_device", "use_amp"]


def init_distributed() -> None:
    """Join the process group when launched by ``torchrun`` with more than one process."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend=backend)


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> the local CUDA device when present, else CPU; ``ConfigError`` for a CUDA
    device this machine lacks."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        return torch.device("cpu")
    device = torch.device(name)
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.type == "cuda" and (device.index or 0) >= count:
        has = f"has {count} (cuda:0 to cuda:{count - 1})" if count else "has no CUDA"
        raise ConfigError(
            f"{name!r} asks for a GPU, but this machine {has}; use --device cpu or auto",
            key="run.device",
        )
    return device


def setup_device(cfg: Config) -> torch.device:
    """The run's device with its fast-maths settings (cuDNN autotune, TF32); seeds torch."""
    device = resolve_device(cfg.run.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.manual_seed(cfg.run.seed)
    return device


def use_amp(cfg: Config, device: torch.device) -> bool:
    """bfloat16 autocast of the forward: ``run.amp`` on CUDA, ``run.cpu_amp`` on a CPU with a
    bfloat16 fast path; a CPU without one trains in float32 after one warning."""
    if device.type == "cuda":
        return cfg.run.amp
    if device.type != "cpu" or not cfg.run.cpu_amp:
        return False
    if cpu_bf16_fast_path():
        return True
    warnings.warn(
        f"run.cpu_amp (--cpu-amp): this CPU has none of {', '.join(CPU_BF16_FLAGS)}, so bfloat16 "
        "would be emulated and slower; running in float32 (drop --cpu-amp to silence this)",
        RuntimeWarning,
        stacklevel=2,
    )
    return False


def memory_format(cfg: Config) -> torch.memory_format:
    return torch.channels_last if cfg.run.channels_last else torch.contiguous_format
