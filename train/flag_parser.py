"""The parser that applies a flag table (``train/flags.py``) to a config, and its docs table.

Precedence (lowest first): dataclass defaults < ``--config file.yaml`` < flags given on the
command line < ``--set key=value``::

    cfg, args = parse_config(argv, flags=CCSSL_FLAGS, config_type=CCSSLConfig, description=...)
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable
from typing import Any

from animalpose.train.config import Config, ConfigError, _check_value, _type_name
from animalpose.train.config_io import (
    _field_type,
    _parse_override,
    _set_leaf,
    config_from_dict,
    config_to_dict,
    load_config,
)
from animalpose.train.flags import REFERENCE_ONLY, TRAIN_FLAGS, Flag

__all__ = ["build_parser", "config_table_markdown", "parse_config", "print_reference_notes"]


#: Kind of flag each field type allows (``kind=None`` picks the first).
_KINDS_BY_TYPE = {bool: ("store_true", "store_false"), "list": ("list",), "scalar": ("value",)}


def _flag_kind(flag: Flag, tp: Any) -> str:
    allowed = _KINDS_BY_TYPE[
        bool if tp is bool else "list" if typing.get_origin(tp) is list else "scalar"
    ]
    if flag.kind is not None and flag.kind not in allowed:
        raise ValueError(
            f"flag {flag.names}: kind {flag.kind!r} does not fit {flag.field}'s "
            f"type {_type_name(tp)} (allowed: {allowed})"
        )
    return flag.kind or allowed[0]


def _default_text(defaults: dict[str, Any], dotted: str) -> str:
    value: Any = defaults
    for part in dotted.split("."):
        value = value[part]
    if isinstance(value, list):
        return " ".join(map(str, value))
    return '""' if value == "" else str(value)


def _reference_dest(flag: Flag) -> str:
    return flag.names[-1].lstrip("-").replace("-", "_")


def _add_reference_only(parser: argparse.ArgumentParser, flag: Flag) -> None:
    """An option that sets nothing (``REFERENCE_ONLY``): a switch, or a value of
    ``flag.value_type`` limited to ``flag.choices`` when there are any."""
    accepted = ", ".join(map(str, flag.choices)) if flag.choices else "any value"
    kwargs: dict[str, Any] = {
        "dest": _reference_dest(flag),
        "default": argparse.SUPPRESS,
        "help": f"{flag.help} [sets nothing; {accepted}]".replace("%", "%%"),
    }
    if flag.kind == "store_true":
        kwargs["action"] = "store_true"
        kwargs["help"] = f"{flag.help} [sets nothing]".replace("%", "%%")
    else:
        kwargs["type"] = flag.value_type
        if flag.choices:
            kwargs["choices"] = flag.choices
    parser.add_argument(*flag.names, **kwargs)


def print_reference_notes(flags: tuple[Flag, ...], args: argparse.Namespace) -> list[str]:
    """Print (and return) the one-line ``note`` of every ``REFERENCE_ONLY`` flag in ``args``."""
    notes = [
        f"note: {flag.note}"
        for flag in flags
        if flag.field == REFERENCE_ONLY and flag.note and hasattr(args, _reference_dest(flag))
    ]
    for line in notes:
        print(line)
    return notes


def build_parser(
    *,
    flags: tuple[Flag, ...] = TRAIN_FLAGS,
    config_type: type = Config,
    description: str = "",
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """An ArgumentParser with ``--config``, ``--set`` and one option per flag.

    Flag options default to ``argparse.SUPPRESS``: only flags given on the command line appear
    in the namespace, under their dotted field path (``getattr(args, "model.stacks")``).
    """
    defaults = config_to_dict(config_type())
    parser = argparse.ArgumentParser(description=description, allow_abbrev=False)
    parser.add_argument(
        "--config",
        metavar="FILE.yaml",
        default=None,
        help="YAML config file (overrides the defaults; flags override it)",
    )
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        nargs="+",
        action="extend",
        default=[],
        help="override config keys (applied last), e.g. optim.schedule=[30,40]",
    )
    for flag in flags:
        if flag.field == REFERENCE_ONLY:
            _add_reference_only(parser, flag)
            continue
        tp = _field_type(config_type, flag.field, source=f"flag {flag.names[-1]}")
        kind = _flag_kind(flag, tp)
        help_text = f"{flag.help} [{flag.field}, default: {_default_text(defaults, flag.field)}]"
        kwargs: dict[str, Any] = {
            "dest": flag.field,
            "default": argparse.SUPPRESS,
            # argparse %-formats help strings
            "help": help_text.replace("%", "%%"),
        }
        if kind in ("store_true", "store_false"):
            kwargs["action"] = kind
        else:
            kwargs["metavar"] = flag.field.rsplit(".", 1)[-1].upper()
            kwargs["type"] = typing.get_args(tp)[0] if kind == "list" else tp
            if kind == "list":
                kwargs["nargs"] = "+"
            if flag.choices:
                kwargs["choices"], kwargs["metavar"] = flag.choices, None
        parser.add_argument(*flag.names, **kwargs)
    if extra is not None:
        extra(parser)
    return parser


def parse_config(
    argv: list[str] | None,
    *,
    flags: tuple[Flag, ...] = TRAIN_FLAGS,
    config_type: type = Config,
    description: str = "animalpose",
    extra: Callable[[argparse.ArgumentParser], None] | None = None,
) -> tuple[Any, argparse.Namespace]:
    """Parse ``argv`` (None: ``sys.argv[1:]``) into a validated config and the namespace.

    Precedence: defaults < ``--config`` < given flags < ``--set``. A bad config is a usage error
    (argparse prints it and exits with status 2). The namespace holds ``config``, ``set``, the
    given flags (by dotted field) and whatever ``extra`` added.
    """
    parser = build_parser(
        flags=flags, config_type=config_type, description=description, extra=extra
    )
    args = parser.parse_args(argv)
    print_reference_notes(flags, args)
    # field -> a name for errors
    flag_names = {flag.field: flag.names[-1] for flag in flags if flag.field != REFERENCE_ONLY}
    try:
        base = (
            config_type()
            if args.config is None
            else load_config(args.config, config_type=config_type)
        )
        d = config_to_dict(base)
        for dotted, name in flag_names.items():
            if hasattr(args, dotted):
                tp = _field_type(config_type, dotted, source=f"flag {name}")
                _set_leaf(
                    d,
                    dotted,
                    _check_value(getattr(args, dotted), tp, key=dotted, source=f"flag {name}"),
                )
        for item in args.set:
            _set_leaf(d, *_parse_override(item, config_type, source="--set"))
        source = "command line" if args.config is None else f"{args.config} + command line"
        return config_from_dict(d, source=source, config_type=config_type), args
    except ConfigError as err:
        parser.error(str(err))


def config_table_markdown(
    flags: tuple[Flag, ...] = TRAIN_FLAGS, *, config_type: type = Config
) -> str:
    """A Markdown table (flag, field, default, help) of ``flags``, for the docs."""
    defaults = config_to_dict(config_type())
    rows = [
        "| flag | field | default | help |",
        "| --- | --- | --- | --- |",
        "| `--config FILE.yaml` | | | YAML config file (defaults < file < flags < --set) |",
        "| `--set KEY=VALUE ...` | any | | override any field; value parsed as YAML |",
    ]
    for flag in flags:
        names = ", ".join(f"`{name}`" for name in flag.names)
        if flag.field == REFERENCE_ONLY:
            accepted = (
                "a switch"
                if flag.kind == "store_true"
                else "one of " + ", ".join(map(str, flag.choices))
                if flag.choices
                else "any value"
            )
            help_text = (
                f"{flag.help} (sets nothing; {accepted}){': ' + flag.note if flag.note else ''}"
            )
            only = f"`{flag.choices[0]}`" if len(flag.choices) == 1 else ""
            rows.append(f"| {names} | (none) | {only} | {help_text.replace('|', '/')} |")
            continue
        _field_type(config_type, flag.field, source=f"flag {flag.names[-1]}")
        help_text = flag.help + (f" (one of {', '.join(flag.choices)})" if flag.choices else "")
        default = _default_text(defaults, flag.field)
        rows.append(f"| {names} | `{flag.field}` | `{default}` | {help_text.replace('|', '/')} |")
    return "\n".join(rows) + "\n"
