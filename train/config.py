"""Typed configuration: the training ``Config``, one dataclass per section (docs/configs.md).

Field types: ``bool``, ``int``, ``float``, ``str``, ``list[<one of those>]`` and nested
dataclasses (sections); every ``Section`` type-checks its fields on construction and validates
its values in ``check``. A script extends ``Config`` with a section of its own
(``adapt/config.py``). Files, dicts and ``--set`` overrides: ``animalpose.train.config_io``;
precedence of defaults, files and flags: ``animalpose.train.flags`` and ``flag_parser``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from animalpose.datasets.codecs.registry import (
    CODECS,
    CODECS_NEEDING_UNBIASED_CROPS,
    DEFAULT_CODEC,
)
from animalpose.datasets.formats.base import ANIMAL_NAME, EVAL_SPLITS
from animalpose.datasets.formats.registry import DATASETS, TOPDOWN_DATASETS
from animalpose.datasets.keypoints import SPECS
from animalpose.train.loss import SEG_WEIGHT
from animalpose.train.models import MODELS
from animalpose.train.models.lpn import LPN_ATTENTIONS
from animalpose.train.models.simple_baseline import RESNET_LAYERS

__all__ = [
    "AUGMENT_BACKENDS",
    "CODEC_NAMES",
    "CONFIG_FILE_NAME",
    "Config",
    "ConfigError",
    "DATASET_NAMES",
    "DataConfig",
    "EVAL_SPLITS",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "SOLVERS",
    "Section",
]

#: File name of the resolved config written beside every checkpoint.
CONFIG_FILE_NAME = "config.yaml"
#: The reference's ``--dataset`` names (docs/reference_compat.md §1.4), from the dataset registry.
DATASET_NAMES: tuple[str, ...] = tuple(DATASETS)
#: ``data.codec`` choices: the heatmap codecs by name (``datasets/codecs/registry.py``).
CODEC_NAMES: tuple[str, ...] = tuple(CODECS)
#: The reference's ``--solver`` choices: RMSprop (its default) or Adam.
SOLVERS = ("rms", "adam")
#: "fused": our OpenCV single-warp augmenter; "imgaug": the reference's imgaug pipeline.
AUGMENT_BACKENDS = ("fused", "imgaug")
#: Where occluders take their textures (``data.occluder_source``): patches of the crop itself, or
#: of unlabelled frames of the target train split (then training uses target images: an
#: adaptation, not source only).
OCCLUDER_SOURCES = ("crop", "target")
#: The reference's learning-rate drops (train/train.py ``--schedule 60 90``).
REFERENCE_SCHEDULE = (60, 90)
_DEVICE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")
# PyYAML implements YAML 1.1, whose floats need a dot and a signed exponent: it reads ``1e-3`` and
# ``1.0e3`` as *strings*. Float fields accept such strings (and only those) so ``lr: 1e-3`` means
# what it says.
_EXPONENT_FLOAT = re.compile(r"[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+")


class ConfigError(ValueError):
    """A bad config value or key. ``str()`` reads ``<source>: <dotted key>: <what is wrong>``."""

    def __init__(self, message: str, *, key: str = "", source: str = "") -> None:
        super().__init__(message)
        self.message, self.key, self.source = message, key, source

    def __str__(self) -> str:
        where = ": ".join(part for part in (self.source, self.key) if part)
        return f"{where}: {self.message}" if where else self.message

    def within(self, path: str, source: str) -> ConfigError:
        """The same error for a section at dotted ``path`` of a config read from ``source``."""
        return ConfigError(self.message, key=_join(path, self.key), source=self.source or source)


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(message, key=key)


def _at_least(section: object, bound: float, *names: str, strict: bool = False) -> None:
    """Each named field is finite and >= bound (> bound when ``strict``)."""
    for name in names:
        value = getattr(section, name)
        ok = math.isfinite(value) and (value > bound if strict else value >= bound)
        _require(ok, name, f"must be {'>' if strict else '>='} {bound}, got {value}")


def _one_of(section: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(section, name)
    _require(value in choices, name, f"{value!r} is not one of {', '.join(choices)}")


class Section:
    """Base of every config dataclass: type-checks all fields, then runs ``check()``."""

    def __post_init__(self) -> None:
        for name, tp in _hints(type(self)).items():
            value = getattr(self, name)
            if _is_section(tp):
                _require(isinstance(value, tp), name, f"expected a {tp.__name__}, got {value!r}")
            else:  # normalises int -> float for float fields, copies lists
                setattr(self, name, _check_value(value, tp, key=name, source=""))
        self.check()

    def check(self) -> None:
        """Value checks beyond types; raise ``ConfigError(message, key=<field name>)``."""


@dataclass(kw_only=True)
class DataConfig(Section):
    dataset: str = "synthetic_animal_sp"  # --dataset: a DATASET_NAMES name (_sp: strong augment)
    image_path: str = "./animal_data"  # --image-path: data root (synthetic_animal/, TigDog, ...)
    animal: str = "horse"  # --animal: horse, tiger, or a synthetic animal with a vertex table
    inp_res: int = 256  # --inp-res: input crop side (the height of a non-square input), pixels
    out_res: int = 64  # --out-res: heatmap side (height), pixels
    # --inp-width: input width of non-square (top-down) models, pixels; 0 = square inp_res. The
    # input is (inp_width or inp_res) x inp_res (w x h), the heatmaps
    # (inp_width * out_res / inp_res) x out_res
    inp_width: int = 0
    sigma: float = 1.0  # --sigma: target Gaussian sigma, heatmap pixels
    sigma_decay: float = 0.0  # --sigma-decay: if > 0, sigma *= sigma_decay before every epoch
    # --codec: heatmap codec, one of CODEC_NAMES: pixel-area (the animal side's MSRA heatmaps),
    # msra (SimpleBaseline/HRNet's convention), dark (DARK), udp (UDP, Gaussian target, with
    # unit-length crops; top-down data sets only), offset (G-RMI disks + offsets, unit-length
    # crops), soft-argmax (MSRA targets, LPN's beta-soft-argmax decoding)
    codec: str = DEFAULT_CODEC
    scale_factor: float = 0.25  # --scale-factor: non-_sp scale jitter, 1 + N(0, .) clamped
    rot_factor: float = 30.0  # --rot-factor: non-_sp rotation jitter, degrees
    workers: int = 4  # -j/--workers: DataLoader worker processes
    train_batch: int = 6  # --train-batch: training batch size
    test_batch: int = 6  # --test-batch: validation / test batch size
    augment_backend: str = "fused"  # --augment-backend: one of AUGMENT_BACKENDS
    # --occlusion: probability that a training crop gets built-in occluders pasted over it
    # (UDA-Animal's occlusion augmentation with procedural objects; 0 = off, UDA-Animal: 0.5)
    occlusion: float = 0.0
    occluders: int = 7  # --occluders: at most this many occluders per crop (1..N, UDA-Animal: 7)
    # --occluder-source: crop (patches of the crop itself) | target (of target train frames)
    occluder_source: str = "crop"
    # --legacy-input: the reference's min-max stretch + mean-only normalisation (its checkpoints)
    legacy_input: bool = False
    # --legacy: the reference's crop boxes, loader quirks and heatmap targets, for its numbers
    # to the last digit (docs/reference_compat.md §8; datasets/formats/legacy.py)
    legacy: bool = False
    split_dir: str = ""  # --split-dir: the reference's data/ folder (splits, means); "": auto
    vertex_table: str = ""  # --vertex-table: JSON file of 18 vertex rows; "": built in / packaged
    train_limit: int = 0  # --train-limit: use only the first N training samples; 0 = all
    val_limit: int = 0  # --val-limit: use only the first N validation samples; 0 = all
    seed: int = 0  # --split-seed: seed of generated train/val splits
    # --eval-split: split that -e/--evaluate and evaluation/test.py report on: "valid", or "test"
    # (a benchmark's held-out TigDog shots, datasets/generator/dogshift.py); training validates
    # on "valid"
    eval_split: str = "valid"
    # --detections: person boxes of the evaluation splits of a top-down data set: "" = ground
    # truth; a COCO detection results json; "auto" = the file beside the annotations
    # (annotations/<split>_detections.json of the built-in humans). Training crops ground truth
    detections: str = ""
    det_score: float = 0.0  # --det-score: keep detections with score >= this

    def check(self) -> None:
        _one_of(self, "dataset", DATASET_NAMES)
        _one_of(self, "codec", CODEC_NAMES)
        _one_of(self, "eval_split", EVAL_SPLITS)
        _require(bool(self.image_path), "image_path", "must not be empty")
        _require(
            ANIMAL_NAME.fullmatch(self.animal) is not None,
            "animal",
            f"must be a plain name (letters, digits, _ and -), got {self.animal!r}",
        )
        _at_least(self, 0, "inp_res", "out_res", "train_batch", "test_batch", "sigma", strict=True)
        _require(
            self.inp_res % self.out_res == 0,
            "inp_res",
            f"{self.inp_res} is not divisible by data.out_res {self.out_res}",
        )
        _at_least(
            self,
            0,
            "sigma_decay",
            "scale_factor",
            "rot_factor",
            "workers",
            "train_limit",
            "val_limit",
            "seed",
        )
        _one_of(self, "augment_backend", AUGMENT_BACKENDS)
        _require(0 <= self.occlusion <= 1, "occlusion", f"must be in [0, 1], got {self.occlusion}")
        _at_least(self, 1, "occluders")
        _one_of(self, "occluder_source", OCCLUDER_SOURCES)
        _at_least(self, 0, "inp_width", "det_score")
        _require(
            self.inp_width * self.out_res % self.inp_res == 0,
            "inp_width",
            f"{self.inp_width} x data.out_res {self.out_res} is not divisible by data.inp_res "
            f"{self.inp_res} (the heatmap width inp_width * out_res / inp_res must be whole)",
        )
        _require(
            not (self.legacy and self.codec != DEFAULT_CODEC),
            "codec",
            f"{self.codec!r} does not combine with data.legacy (the reference's targets are "
            f"{DEFAULT_CODEC!r} heatmaps)",
        )
        self._check_topdown()

    def _check_topdown(self) -> None:
        """Settings that only one kind of data set (top-down or animal) takes."""
        topdown = self.dataset in TOPDOWN_DATASETS
        if not topdown:
            only = f"needs a top-down data set ({', '.join(TOPDOWN_DATASETS)}), not {self.dataset}"
            _require(self.inp_width in (0, self.inp_res), "inp_width", f"non-square input {only}")
            _require(not self.detections, "detections", only)
            _require(
                self.codec not in CODECS_NEEDING_UNBIASED_CROPS,
                "codec",
                f"{self.codec!r} needs unit-length crops: it {only}",
            )
            return
        name = f"the top-down data set {self.dataset}"
        _require(not self.legacy, "legacy", f"the reference's crops do not apply to {name}")
        _require(self.occlusion == 0, "occlusion", f"occluders are not implemented for {name}")
        _require(
            self.augment_backend == AUGMENT_BACKENDS[0],
            "augment_backend",
            f"{name} has one augmentation (TopDownAugment), not {self.augment_backend!r}",
        )
        _require(
            self.scale_factor < 1,
            "scale_factor",
            f"must be < 1 for {name} (crop sizes 1 -+ scale_factor), got {self.scale_factor}",
        )


@dataclass(kw_only=True)
class ModelConfig(Section):
    arch: str = "hg"  # -a/--arch: a name in animalpose.train.models.MODELS
    stacks: int = 4  # -s/--stacks: stacked hourglasses
    blocks: int = 1  # -b/--blocks: residual blocks at each hourglass location
    channels: int = 256  # --channels: hourglass width (the reference's 256); even
    depth: int = 50  # --depth: simple_baseline's ResNet depth (18, 34, 50, 101, 152)
    width: int = 32  # --width: hrnet's highest-resolution width (32: HRNet-W32, 48: W48)
    attention: str = "gc"  # --attention: lpn's per-block attention: gc (GC block) | none
    keypoint_spec: str = "animal18"  # --keypoint-spec: a name in datasets.keypoints.SPECS

    def check(self) -> None:
        _one_of(self, "arch", tuple(MODELS))
        _at_least(self, 0, "stacks", "blocks", "channels", strict=True)
        # Bottlenecks have expansion 2: their inner width is channels / 2
        # (docs/reference_compat.md §2).
        _require(self.channels % 2 == 0, "channels", f"must be even, got {self.channels}")
        depths = ", ".join(map(str, RESNET_LAYERS))
        _require(self.depth in RESNET_LAYERS, "depth", f"{self.depth} is not one of {depths}")
        _at_least(self, 0, "width", strict=True)
        _one_of(self, "attention", LPN_ATTENTIONS)
        _one_of(self, "keypoint_spec", tuple(SPECS))


@dataclass(kw_only=True)
class OptimConfig(Section):
    solver: str = "rms"  # --solver: rms (RMSprop) | adam
    lr: float = 2.5e-4  # --lr/--learning-rate: initial learning rate
    momentum: float = 0.0  # --momentum: RMSprop momentum (the reference's Adam ignores it)
    weight_decay: float = 0.0  # --weight-decay/--wd: L2 weight decay (RMSprop in the reference)
    epochs: int = 100  # --epochs: training runs epochs start_epoch .. epochs - 1
    start_epoch: int = 0  # --start-epoch: first epoch index (resume sets it from the checkpoint)
    # --schedule: epoch indices at which the learning rate is multiplied by gamma (ascending)
    schedule: list[int] = field(default_factory=lambda: list(REFERENCE_SCHEDULE))
    gamma: float = 0.1  # --gamma: learning-rate factor at each schedule epoch
    # --seg-weight: part-segmentation loss weight of multitask training, divided by (epoch + 1)
    # each epoch (the reference's train_multitask.py ``loss_kpt + 0.01 / (epoch + 1) * loss_seg``;
    # read only when the model has a segmentation head and the data set has part masks)
    seg_weight: float = SEG_WEIGHT
    # --ohkm-topk: online hard keypoint mining (CPN, MSPN: 8): per sample only the top-k keypoint
    # losses count, on the outputs the model's ohkm_stages names (train/loss.py); 0 = off
    ohkm_topk: int = 0

    def check(self) -> None:
        _one_of(self, "solver", SOLVERS)
        _at_least(self, 0, "lr", "epochs", "gamma", strict=True)
        _at_least(self, 0, "momentum", "weight_decay", "start_epoch", "seg_weight", "ohkm_topk")
        _require(
            self.start_epoch <= self.epochs,
            "start_epoch",
            f"{self.start_epoch} is past optim.epochs {self.epochs}",
        )
        _require(
            all(epoch > 0 for epoch in self.schedule),
            "schedule",
            f"epochs must be positive, got {self.schedule}",
        )
        _require(
            all(a < b for a, b in zip(self.schedule, self.schedule[1:])),
            "schedule",
            f"must be strictly ascending, got {self.schedule}",
        )


@dataclass(kw_only=True)
class RunConfig(Section):
    checkpoint: str = "checkpoint"  # -c/--checkpoint: output folder (checkpoints, logs, config)
    snapshot: int = 0  # --snapshot: also keep a checkpoint every N epochs; 0 = never
    resume: str = ""  # --resume: checkpoint file to resume from / evaluate; "" = none
    # --pretrained: start from these weights only (fresh optimiser, epoch 0), e.g. CC-SSL-R's
    # fine-tuning of an adapted model; ignored when resuming; "" = random initialisation
    pretrained: str = ""
    evaluate: bool = False  # -e/--evaluate: only evaluate (on data.eval_split)
    debug: bool = False  # -d/--debug: show intermediate results (ground truth vs predictions)
    flip: bool = False  # -f/--flip: flip test (average with the mirrored crop's heatmaps)
    # --test-scales: bottom-up test scales, factors on the input side, heatmaps averaged and tags
    # concatenated over them (HigherHRNet's multi-scale test: 0.5 1 2)
    test_scales: list[float] = field(default_factory=lambda: [1.0])
    # --project-to-input: bottom-up grouping on heatmaps and tags resized to the input
    # (HigherHRNet's PROJECT2IMAGE; pixel-area codec)
    project_to_input: bool = False
    seed: int = 0  # --seed: seed of weights, augmentation and loader workers
    device: str = "auto"  # --device: auto | cpu | cuda | cuda:N
    amp: bool = True  # --no-amp turns off: bf16 autocast on CUDA
    # --cpu-amp: bf16 autocast on a CPU with AMX or AVX-512 BF16 (float32 and a warning on
    # others); off by default, so CPU results stay float32
    cpu_amp: bool = False
    channels_last: bool = True  # --no-channels-last turns off: channels-last memory format
    compile: bool = False  # --compile: torch.compile the model
    log_every: int = 50  # --log-every: iterations between logged training scalars
    tb_images: int = 8  # --tb-images: validation crops drawn to TensorBoard each epoch
    progress: bool = True  # --no-progress turns off: tqdm progress bars

    def check(self) -> None:
        _require(bool(self.checkpoint), "checkpoint", "must not be empty")
        _require(
            _DEVICE.fullmatch(self.device) is not None,
            "device",
            f"{self.device!r} is not auto, cpu, cuda or cuda:N",
        )
        _at_least(self, 0, "snapshot", "seed", "tb_images")
        _at_least(self, 0, "log_every", strict=True)
        _require(
            len(self.test_scales) > 0 and all(s > 0 for s in self.test_scales),
            "test_scales",
            f"must be one or more positive factors, got {self.test_scales}",
        )


@dataclass(kw_only=True)
class Config(Section):
    """The training configuration: one section per concern."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


# -- types ------------------------------------------------------------------------------------
def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path and key else path or key


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved annotation, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp)) if typing.get_origin(tp) is None else str(tp)


def _check_value(value: Any, tp: Any, *, key: str, source: str) -> Any:
    """Return ``value`` as a ``tp`` (int -> float for floats, lists copied) or raise ConfigError."""
    if typing.get_origin(tp) is list:
        (item_type,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(
                f"expected a list of {_type_name(item_type)}, got {value!r}", key=key, source=source
            )
        return [
            _check_value(v, item_type, key=f"{key}[{i}]", source=source)
            for i, v in enumerate(value)
        ]
    if tp is float and isinstance(value, str) and _EXPONENT_FLOAT.fullmatch(value):
        value = float(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if tp not in (bool, int, float, str):
        raise TypeError(f"config field {key} has unsupported type {tp!r}")
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(
            f"expected {tp.__name__}, got {type(value).__name__} {value!r}", key=key, source=source
        )
    return value
