"""Shared helpers for the config tests."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from animalpose.train.config import Config


def _leaf_paths(cfg: object, prefix: str = "") -> list[str]:
    paths = []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        dotted = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            paths += _leaf_paths(value, dotted + ".")
        else:
            paths.append(dotted)
    return paths


@pytest.fixture(scope="session")
def leaf_paths() -> list[str]:
    """Every dotted leaf field of the default Config, e.g. "data.animal"."""
    return _leaf_paths(Config())


@pytest.fixture(scope="session")
def configs_dir() -> Path:
    """The repository's configs/ folder."""
    return Path(__file__).resolve().parents[2] / "configs"


def get_path(cfg: object, dotted: str) -> object:
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


@pytest.fixture(scope="session")
def getp():
    """``getp(cfg, "data.animal")`` reads a dotted field."""
    return get_path
