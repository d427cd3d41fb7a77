"""Reading and writing configs: nested dicts, YAML files and ``--set key=value`` overrides.

Generic over the root type (``Config`` by default; ``adapt/config.py`` extends it). Unknown keys
and wrongly typed values raise ``ConfigError`` naming the source (a file, ``--set``, a flag) and
the dotted key, with the valid keys and the closest match. Keys that older versions saved but
that never changed a run are dropped while loading (``RETIRED_KEYS``).
"""

from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any

import yaml

from animalpose.datasets.fileio import atomic_write
from animalpose.train.config import (
    Config,
    ConfigError,
    _check_value,
    _hints,
    _is_section,
    _join,
    _type_name,
)

__all__ = [
    "RETIRED_KEYS",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "drop_retired",
    "load_config",
    "save_config",
]


# -- keys -------------------------------------------------------------------------------------
def _field_type(config_type: type, dotted: str, *, source: str) -> Any:
    """The annotation of the leaf field at ``dotted``; ConfigError listing valid keys otherwise."""
    tp, path = config_type, ""
    for part in dotted.split("."):
        if not _is_section(tp):
            raise ConfigError(
                f"{path} is a {_type_name(tp)}, not a section", key=dotted, source=source
            )
        hints = _hints(tp)
        if part not in hints:
            raise ConfigError(_unknown_message(part, hints, path), key=dotted, source=source)
        tp, path = hints[part], _join(path, part)
    if _is_section(tp):
        raise ConfigError(
            f"is a section; set its keys instead ({', '.join(_hints(tp))})",
            key=dotted,
            source=source,
        )
    return tp


def _unknown_message(key: object, hints: dict[str, Any], path: str) -> str:
    close = difflib.get_close_matches(str(key), list(hints), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    return f"unknown key{hint} Valid keys in {path or 'the top level'}: {', '.join(hints)}"


# -- dict <-> config ----------------------------------------------------------------------------
def config_from_dict(d: dict, *, source: str, config_type: type = Config) -> Any:
    """Build ``config_type`` from a nested dict; missing keys keep their defaults.

    Raises ConfigError naming ``source`` and the dotted key for unknown sections or keys, values
    of the wrong type and values that fail a section's checks.
    """
    return _build(config_type, d, path="", source=source)


#: Keys that earlier versions saved but that never changed a run, with the one value they could
#: hold: a saved config or checkpoint holding that value still loads (the key is dropped, see
#: ``drop_retired``); any other value is refused as an unknown key.
RETIRED_KEYS: dict[str, object] = {
    "data.label_type": "Gaussian",  # the one target shape
}


def _retired(dotted: str, value: object) -> bool:
    if dotted not in RETIRED_KEYS:
        return False
    inert = RETIRED_KEYS[dotted]
    return inert is None or value == inert


def drop_retired(d: dict, path: str = "") -> dict:
    """Copy of a nested config dict without the ``RETIRED_KEYS`` that hold their inert value."""
    out = {}
    for key, value in d.items():
        dotted = _join(path, str(key))
        if isinstance(value, dict):
            out[key] = drop_retired(value, dotted)
        elif not _retired(dotted, value):
            out[key] = value
    return out


def _build(cls: type, d: Any, *, path: str, source: str) -> Any:
    if not isinstance(d, dict):
        raise ConfigError(f"expected a mapping of keys, got {d!r}", key=path, source=source)
    hints = _hints(cls)
    kwargs = {}
    for key, value in d.items():
        dotted = _join(path, str(key))
        if key not in hints and _retired(dotted, value):
            continue
        if key not in hints:
            raise ConfigError(_unknown_message(key, hints, path), key=dotted, source=source)
        tp = hints[key]
        if _is_section(tp):
            kwargs[key] = _build(tp, value, path=dotted, source=source)
        else:
            kwargs[key] = _check_value(value, tp, key=dotted, source=source)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise err.within(path, source) from None


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Nested plain dict of ``cfg`` (a fresh copy; lists are copied)."""
    return dataclasses.asdict(cfg)


def load_config(path: str | Path, *, config_type: type = Config) -> Any:
    """Read a YAML config file (a mapping of sections; missing keys keep their defaults)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config file: {err.strerror}", source=str(path)) from None
    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML: {err}", source=str(path)) from None
    return config_from_dict({} if d is None else d, source=str(path), config_type=config_type)


def save_config(cfg: Any, path: str | Path) -> None:
    """Write ``cfg`` as YAML, atomically; ``load_config(path) == cfg`` afterwards."""
    text = yaml.safe_dump(config_to_dict(cfg), sort_keys=False, default_flow_style=False)
    with atomic_write(path, "w") as f:
        f.write(f"# animalpose {type(cfg).__name__}, resolved (load with load_config)\n{text}")


def _set_leaf(d: dict, dotted: str, value: Any) -> None:
    *sections, leaf = dotted.split(".")
    for part in sections:
        d = d[part]
    d[leaf] = value


def _parse_override(item: str, config_type: type, *, source: str) -> tuple[str, Any]:
    """``"a.b=value"`` -> (``"a.b"``, type-checked value). Values are YAML; for ``str`` fields a
    value that YAML reads as something else (``no``, ``123``, empty) is taken verbatim."""
    key, sep, text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"expected KEY=VALUE, got {item!r}", source=source)
    tp = _field_type(config_type, key, source=source)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(f"invalid YAML value {text!r}: {err}", key=key, source=source) from None
    if tp is str and not isinstance(value, str):
        value = text
    return key, _check_value(value, tp, key=key, source=source)


def apply_overrides(cfg: Any, overrides: list[str], *, source: str = "--set") -> Any:
    """A new config with ``["data.animal=tiger", "optim.schedule=[5, 7]", ...]`` applied.

    All overrides are applied before validation, so related keys may change together.
    """
    d = config_to_dict(cfg)
    for item in overrides:
        _set_leaf(d, *_parse_override(item, type(cfg), source=source))
    return config_from_dict(d, source=source, config_type=type(cfg))
