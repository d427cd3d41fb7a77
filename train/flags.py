"""The reference's command-line flags as one table (``train/flag_parser.py`` applies them).

Every flag sets exactly one config field, whose type it takes (the exceptions,
``REFERENCE_ONLY``, keep the reference's command lines running and set nothing). Later scripts
extend the table::

    CCSSL_FLAGS = TRAIN_FLAGS + (Flag(names=("--gamma_",), field="adapt.target_weight", help=...),)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from animalpose.datasets.keypoints import SPECS
from animalpose.train.config import (
    AUGMENT_BACKENDS,
    CODEC_NAMES,
    DATASET_NAMES,
    EVAL_SPLITS,
    OCCLUDER_SOURCES,
    SOLVERS,
)
from animalpose.train.models import MODELS
from animalpose.train.models.lpn import LPN_ATTENTIONS

__all__ = ["DATASET1_CHOICES", "REFERENCE_ONLY", "Flag", "TEST_FLAGS", "TRAIN_FLAGS"]

#: ``Flag.field`` of a reference flag kept only so the reference's command lines run: it sets
#: nothing. Its ``choices`` (if any) hold the values accepted here, any other is a usage error;
#: its ``note`` (if any) is printed when it is given: what the flag did in the reference (nothing,
#: for most) and what does that here.
REFERENCE_ONLY = ""
#: The training sets the reference's evaluation/test.py knows as ``--dataset1`` (the data the
#: model was trained on; it asserts on any other name), and the multitask training set its
#: TRAINING.md names there (Example 4, whose test.py line the reference's assertion refuses).
DATASET1_CHOICES = (
    "real_animal",
    "real_animal_sp",
    "synthetic_animal",
    "synthetic_animal_sp",
    "synthetic_animal_sp_multitask",
)


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
        help="data root holding synthetic_animal/, behaviorDiscovery2.0/, real_animal_crop/ "
        "(coco: annotations/person_keypoints_<split>[2017].json and the image folders)",
    ),
    _flag(
        "--animal",
        field="data.animal",
        help="animal (synthetic animals other than horse and tiger need a vertex table; "
        "coco ignores it)",
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
    _flag(
        "--test-scales",
        field="run.test_scales",
        help="bottom-up test scales, factors on the input side (HigherHRNet: 0.5 1 2)",
    ),
    _flag(
        "--project-to-input",
        field="run.project_to_input",
        help="bottom-up: group on heatmaps and tags resized to the input (HigherHRNet)",
    ),
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
        help="initial weights only (fresh optimiser), e.g. to fine-tune an adapted model; "
        "for simple_baseline / hrnet also an ImageNet file (torchvision, HRNet, timm) for the "
        "trunk",
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
    _flag(
        "--seg-weight",
        field="optim.seg_weight",
        help="multitask training: part-segmentation loss weight, divided by (epoch + 1) "
        "(the reference's 0.01)",
    ),
    _flag(
        "--ohkm-topk",
        field="optim.ohkm_topk",
        help="online hard keypoint mining: per sample keep the top-k keypoint losses "
        "(CPN/MSPN 8; 0 = off)",
    ),
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
        "--occluder-source",
        field="data.occluder_source",
        choices=OCCLUDER_SOURCES,
        help="occluder textures: the crop's own pixels, or unlabelled target train frames",
    ),
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
    _flag(
        "--inp-width",
        field="data.inp_width",
        help="input width in pixels of non-square (top-down) models; 0 = square --inp-res",
    ),
    _flag(
        "--codec",
        field="data.codec",
        choices=CODEC_NAMES,
        help="heatmap codec: pixel-area (the animal side's), msra (SimpleBaseline/HRNet), dark, "
        "udp (top-down data, unit-length crops), soft-argmax (LPN's decoding), offset (G-RMI "
        "disks + offsets, 3 channels per keypoint)",
    ),
    _flag(
        "--detections",
        field="data.detections",
        help="top-down evaluation boxes: a COCO detection results json, or auto (the file "
        "beside the annotations); empty = ground-truth boxes",
    ),
    _flag("--det-score", field="data.det_score", help="keep detections with score >= this"),
    _flag("--channels", field="model.channels", help="hourglass width"),
    _flag("--depth", field="model.depth", help="-a simple_baseline: ResNet depth (50, 101, 152)"),
    _flag("--width", field="model.width", help="-a hrnet: high-resolution branch width (W32, W48)"),
    _flag(
        "--attention",
        field="model.attention",
        choices=LPN_ATTENTIONS,
        help="-a lpn: per-block attention (gc: the paper's GC block; none: its ablation)",
    ),
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
