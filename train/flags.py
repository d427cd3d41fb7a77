"""The reference's command-line flags as one table, and the parser that applies them to a config.

Every flag sets exactly one config field, whose type it takes (the exceptions,
``REFERENCE_ONLY``, keep the reference's command lines running and set nothing). Precedence
(lowest first): dataclass defaults < ``--config file.yaml`` < flags given on the command line <
``--set key=value``. Later scripts extend the table::

    CCSSL_FLAGS = TRAIN_FLAGS + (Flag(names=("--gamma_",), field="adapt.target_weight", help=...),)
    cfg, args = parse_config(argv, flags=CCSSL_FLAGS, config_type=CCSSLConfig, description=...)
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from animalpose.datasets.keypoints import SPECS
from animalpose.train.config import (
    AUGMENT_BACKENDS,
    DATASET_NAMES,
    EVAL_SPLITS,
    SOLVERS,
    Config,
    ConfigError,
    _check_value,
    _type_name,
)
from animalpose.train.config_io import (
    _field_type,
    _parse_override,
    _set_leaf,
    config_from_dict,
    config_to_dict,
    load_config,
)
from animalpose.train.models import MODELS

__all__ = [
    "DATASET1_CHOICES",
    "REFERENCE_ONLY",
    "Flag",
    "TEST_FLAGS",
    "TRAIN_FLAGS",
    "build_parser",
    "parse_config",
    "config_table_markdown",
]

#: ``Flag.field`` of a reference flag kept only so the reference's command lines run: it sets
#: nothing. Its ``choices`` (if any) hold the values accepted here, any other is a usage error;
#: its ``note`` (if any) is printed when it is given: what the flag did in the reference (nothing,
#: for most) and what does that here.
REFERENCE_ONLY = ""
#: The training sets the reference's evaluation/test.py knows as ``--dataset1`` (the data the
#: model was trained on; it asserts on any other name).
DATASET1_CHOICES = ("real_animal", "real_animal_sp", "synthetic_animal", "synthetic_animal_sp")


@dataclass(frozen=True, kw_only=True)
class Flag:
    """One command-line flag that sets one config field. Its type is the field's type.

    ``kind`` None derives the argparse action from the field type: bool -> "store_true",
    list -> "list" (``nargs="+"``), anything else -> "value". "store_false" is for ``--no-x``.
    """

    names: tuple[str, ...]  # option strings, e.g. ("-a", "--arch")
    field: str  # dotted config path, e.g. "model.arch"; REFERENCE_ONLY: sets nothing
    help: str  # what it does (the default is appended from the dataclass)
    kind: Literal["value", "store_true", "store_false", "list"] | None = None
    choices: tuple[Any, ...] = ()  # allowed values (argparse checks them too)
    value_type: type = str  # REFERENCE_ONLY flags only: the type of their value
    note: str = ""  # REFERENCE_ONLY flags only: printed (one line) when the flag is given


def _flag(*names: str, field: str, help: str, **kwargs: Any) -> Flag:
    return Flag(names=names, field=field, help=help, **kwargs)


#: Every flag of the reference's train/train.py (docs/reference_compat.md §3), then ours.
TRAIN_FLAGS: tuple[Flag, ...] = (
    _flag(
        "--dataset",
        field="data.dataset",
        choices=DATASET_NAMES,
        help="dataset (the reference's names; _sp = strong augmentation)",
    ),
    _flag(
        "--image-path",
        field="data.image_path",
        help="data root holding synthetic_animal/, behaviorDiscovery2.0/, real_animal_crop/",
    ),
    _flag(
        "--animal",
        field="data.animal",
        help="animal (synthetic animals other than horse and tiger need a vertex table)",
    ),
    _flag("--inp-res", field="data.inp_res", help="input crop side in pixels"),
    _flag("--out-res", field="data.out_res", help="heatmap side in pixels"),
    _flag("-a", "--arch", field="model.arch", choices=tuple(MODELS), help="model architecture"),
    _flag("-s", "--stacks", field="model.stacks", help="number of stacked hourglasses"),
    _flag(
        "-b", "--blocks", field="model.blocks", help="residual blocks at each hourglass location"
    ),
    _flag("--solver", field="optim.solver", choices=SOLVERS, help="optimiser: RMSprop or Adam"),
    _flag("-j", "--workers", field="data.workers", help="data-loading worker processes"),
    _flag("--epochs", field="optim.epochs", help="total number of epochs"),
    _flag("--start-epoch", field="optim.start_epoch", help="first epoch index (restarts)"),
    _flag("--train-batch", field="data.train_batch", help="training batch size"),
    _flag("--test-batch", field="data.test_batch", help="validation batch size"),
    _flag("--lr", "--learning-rate", field="optim.lr", help="initial learning rate"),
    _flag("--momentum", field="optim.momentum", help="momentum"),
    _flag("--weight-decay", "--wd", field="optim.weight_decay", help="weight decay"),
    _flag("--schedule", field="optim.schedule", help="epochs at which lr is multiplied by gamma"),
    _flag("--gamma", field="optim.gamma", help="lr factor at each schedule epoch"),
    _flag("-f", "--flip", field="run.flip", help="flip test during validation"),
    _flag("--sigma", field="data.sigma", help="target Gaussian sigma (heatmap pixels)"),
    _flag("--scale-factor", field="data.scale_factor", help="scale jitter (non-_sp datasets)"),
    _flag("--rot-factor", field="data.rot_factor", help="rotation jitter, degrees (non-_sp)"),
    _flag(
        "--sigma-decay",
        field="data.sigma_decay",
        help="if > 0, sigma is multiplied by it before every epoch",
    ),
    _flag(
        "--label-type",
        field=REFERENCE_ONLY,
        choices=("Gaussian",),
        help="the reference's target shape, accepted for its command lines (its Cauchy targets "
        "are not implemented)",
    ),
    _flag(
        "--year",
        field=REFERENCE_ONLY,
        value_type=int,
        help="the reference's COCO edition, accepted for its command lines",
        note="--year chose a COCO edition in the reference, which its animal data sets ignore: "
        "no effect",
    ),
    _flag(
        "--features",
        field=REFERENCE_ONLY,
        value_type=int,
        help="the reference's hourglass feature count, accepted for its command lines",
        note="--features had no effect in the reference either (its hg has a fixed width of "
        "256); --channels sets the width here",
    ),
    _flag(
        "--resnet-layers",
        field=REFERENCE_ONLY,
        value_type=int,
        choices=(18, 34, 50, 101, 152),
        help="the depth of the reference's pose_resnet, accepted for its command lines",
        note="--resnet-layers sized only the reference's pose_resnet; hg (the model here, as in "
        "its commands) ignores it: no effect",
    ),
    _flag(
        "--target-weight",
        field=REFERENCE_ONLY,
        kind="store_true",
        help="the reference's 'loss with target_weight' switch, accepted for its command lines",
        note="--target-weight: the loss always weights keypoints, as the reference's did "
        "(it never read this flag): no effect",
    ),
    _flag("-c", "--checkpoint", field="run.checkpoint", help="output folder for checkpoints"),
    _flag("--snapshot", field="run.snapshot", help="also keep a checkpoint every N epochs (0: no)"),
    _flag("--resume", field="run.resume", help="checkpoint to resume from"),
    _flag(
        "--pretrained",
        field="run.pretrained",
        help="initial weights only (fresh optimiser), e.g. to fine-tune an adapted model",
    ),
    _flag(
        "-e",
        "--evaluate",
        field="run.evaluate",
        help="evaluate only, on the --eval-split split (default: the validation split)",
    ),
    _flag("-d", "--debug", field="run.debug", help="show intermediate results"),
    # -- animalpose's own ---------------------------------------------------------------------
    _flag("--seed", field="run.seed", help="seed of weights, augmentation and workers"),
    _flag("--split-seed", field="data.seed", help="seed of generated train/val splits"),
    _flag(
        "--eval-split",
        field="data.eval_split",
        choices=EVAL_SPLITS,
        help="split that -e and evaluation/test.py report on; test = a benchmark's held-out "
        "TigDog shots (datasets/generate.py --benchmark); training selects on valid",
    ),
    _flag("--device", field="run.device", help="auto, cpu, cuda or cuda:N"),
    _flag("--no-amp", field="run.amp", kind="store_false", help="no bf16 autocast on CUDA"),
    _flag(
        "--cpu-amp",
        field="run.cpu_amp",
        help="bf16 autocast on a CPU with AMX or AVX-512 BF16 (float32 with a warning elsewhere)",
    ),
    _flag(
        "--no-channels-last",
        field="run.channels_last",
        kind="store_false",
        help="keep the default (channels-first) memory format",
    ),
    _flag("--compile", field="run.compile", help="torch.compile the model"),
    _flag("--log-every", field="run.log_every", help="iterations between logged scalars"),
    _flag("--tb-images", field="run.tb_images", help="validation crops drawn to TensorBoard"),
    _flag("--no-progress", field="run.progress", kind="store_false", help="no progress bars"),
    _flag(
        "--augment-backend",
        field="data.augment_backend",
        choices=AUGMENT_BACKENDS,
        help="augmentation implementation",
    ),
    _flag(
        "--occlusion",
        field="data.occlusion",
        help="probability of built-in occluders on a training crop (0 = off; UDA-Animal 0.5)",
    ),
    _flag("--occluders", field="data.occluders", help="at most this many occluders per crop"),
    _flag(
        "--legacy",
        field="data.legacy",
        help="the reference's crop boxes, loader quirks and heatmap targets "
        "(docs/reference_compat.md §8)",
    ),
    _flag(
        "--legacy-input",
        field="data.legacy_input",
        help="the reference's min-max stretch + mean-only input (its checkpoints)",
    ),
    _flag(
        "--split-dir",
        field="data.split_dir",
        help="the reference's data/ folder with split and mean files",
    ),
    _flag(
        "--vertex-table",
        field="data.vertex_table",
        help="JSON file of 18 vertex rows for a synthetic animal without a packaged table",
    ),
    _flag("--train-limit", field="data.train_limit", help="use the first N training samples"),
    _flag("--val-limit", field="data.val_limit", help="use the first N validation samples"),
    _flag("--channels", field="model.channels", help="hourglass width"),
    _flag(
        "--keypoint-spec",
        field="model.keypoint_spec",
        choices=tuple(SPECS),
        help="keypoint spec name",
    ),
)


def _evaluated_dataset(flag: Flag) -> Flag:
    if flag.names != ("--dataset",):
        return flag
    return _flag(
        "--dataset",
        "--dataset2",
        field=flag.field,
        choices=flag.choices,
        help="data set evaluated (the reference's --dataset2)",
    )


#: evaluation/test.py's flags: the reference's test.py pair ``--dataset1`` (the training set)
#: and ``--dataset2`` (the data evaluated, our ``--dataset``), then the training flags.
TEST_FLAGS: tuple[Flag, ...] = (
    _flag(
        "--dataset1",
        field=REFERENCE_ONLY,
        choices=DATASET1_CHOICES,
        help="the set the model was trained on (the reference's test.py)",
        note="--dataset1 names the training set, which in the reference only fixed the model's "
        "18 keypoints: the data evaluated is --dataset2 (--dataset), with its own mean file",
    ),
    *(_evaluated_dataset(flag) for flag in TRAIN_FLAGS),
)

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
