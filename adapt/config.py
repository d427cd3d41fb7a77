"""The adaptation config: the training config plus one ``adapt`` section, and the flag table.

One config drives every method (presets in ``configs/``, docs/adaptation.md): CC-SSL turns on
``adapt.pseudo_labels`` (``selection: ccssl``), WS-CDA ``adapt.adversarial``, PPLO is
``selection: pplo``, UDA-Animal its own keys (``relabel``, ``teacher``, ``small_loss``, ...;
configs/uda_animal.yaml). ``data.dataset`` is the labelled source (the reference's ``--source``),
``adapt.target`` the target set whose labelled valid split selects models, ``adapt.target_ssl``
the target images the model trains on (pseudo-labelled, few-labelled or unlabelled).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from animalpose.adapt.pseudo_label_store import ORACLE_FILTERS
from animalpose.datasets.formats.registry import BOTTOMUP_DATASETS, TOPDOWN_DATASETS
from animalpose.train.config import (
    DATASET_NAMES,
    Config,
    ConfigError,
    OptimConfig,
    Section,
    _at_least,
    _one_of,
    _require,
)
from animalpose.train.flags import REFERENCE_ONLY, TRAIN_FLAGS, Flag, _flag

__all__ = [
    "ADAPT_FLAGS",
    "ADVERSARY_MODES",
    "CURRICULA",
    "FORWARDS",
    "SELECTIONS",
    "TARGET_DATASETS",
    "AdaptConfig",
    "AdaptSection",
]

#: Pseudo-label selection schedules (adapt/selection.py): the reference's curriculum by epoch,
#: or PPLO's share per round.
SELECTIONS = ("ccssl", "pplo")
#: What keys CC-SSL's curriculum (adapt/selection.py ``CURRICULA``): the pseudo-label round
#: (round r = the reference's epoch 10 r: 20/40/60/80 %) or the epoch the round starts at.
CURRICULA = ("round", "epoch")
#: WS-CDA min-max implementations (adapt/domain.py).
ADVERSARY_MODES = ("grl", "alternating")
#: Source + target in one forward pass (BatchNorm sees both domains) or two (the references').
FORWARDS = ("joint", "separate")
#: How the pseudo-label weight moves: fixed ``target_weight``, or UDA-Animal's cosine ramp down
#: from ``target_weight`` to ``target_weight_end`` (adapt/uda.py).
TARGET_WEIGHT_RAMPS = ("constant", "cosine")
#: Target data sets: TigDog-layout frames or their pre-cropped copies.
TARGET_DATASETS = ("real_animal", "real_animal_sp", "real_animal_crop")


@dataclass(kw_only=True)
class AdaptSection(Section):
    target: str = "real_animal"  # --target: labelled target set; its valid split selects models
    target_ssl: str = "real_animal_sp"  # --target-ssl: target images trained on (train split)
    target_weight: float = 10.0  # --gamma_: weight of the pseudo-labelled target pose loss (10)
    # --target-labels: labelled target frames (few-label WS-CDA): the first N of the train split,
    # whole shots first; they train with their annotations. 0 = none (unsupervised).
    target_labels: int = 0
    # --labelled-weight: weight of those labelled target frames' pose loss (x w2, as the paper's
    # w2 * L_A; gamma_ weights only pseudo-labelled frames). Runs saved before this key gave them
    # gamma_ (adapt/run_settings.py reads a missing key so).
    labelled_weight: float = 1.0
    # Pseudo-labels (CC-SSL / PPLO); keys without a flag are set with --set or a config file ----
    pseudo_labels: bool = True  # --no-pseudo-labels turns off: pseudo-label rounds
    round_every: int = 10  # --round-every: epochs per pseudo-label round (reference 10)
    selection: str = "ccssl"  # --selection: ccssl (the curriculum) | pplo (pplo_shares)
    # --curriculum-by: round (round r keeps the reference's share of its epoch 10 r: 20/40/60/80 %)
    # | epoch (the share of the epoch the round starts at; runs saved before this key did so)
    curriculum_by: str = "round"
    pplo_shares: list[float] = field(default_factory=lambda: [0.2, 0.4, 0.6, 0.8])  # --pplo-shares
    views: int = 4  # --views: random equivariance views besides the identity (reference 4)
    view_scale: float = 0.25  # view scale 1 + N(0, .) clipped to 1 -+ this
    view_rotation: float = 30.0  # view rotation N(0, .) deg clipped to -+2x
    temporal: bool = True  # --no-temporal turns off: Lucas-Kanade temporal consistency
    flow_max_move: float = 15.0  # reject flows longer than this (256-px crop)
    flow_ratio: float = 0.9  # substitute when conf / flowed conf < this
    # Diagnostic, reads the target train split's annotations (so never a method): none | kept
    # (of the selected labels, only the right ones) | all (every right label, any confidence)
    oracle_filter: str = "none"
    pseudo_batch: int = 32  # frames per pseudo-labelling forward (x views + 1)
    pseudo_workers: int = 2  # --pseudo-workers: threads of the optical-flow pass (0: inline)
    # WS-CDA -------------------------------------------------------------------------------------
    adversarial: bool = False  # --adversarial: domain discriminator on trunk features (WS-CDA)
    adversary: str = "grl"  # --adversary: grl (gradient reversal) | alternating updates
    # --alpha: the paper's alpha on L_DDL (-1 there, alpha * beta < 0). Only |alpha| counts: the
    # min-max's sign is built in (adapt/domain.py), so a positive alpha (configs saved before the
    # paper's sign was accepted hold 1.0 = |alpha|) means the same as its negative.
    alpha: float = -1.0
    beta: float = 500.0  # --beta: the paper's pose weight; trunk sees L_DDL x alpha / beta
    w2: float = 1.0  # --w2: the paper's weight of the animal pose losses (source and target)
    disc_lr: float = 1.0e-4  # the discriminator's Adam learning rate
    disc_hidden: int = 256  # the discriminator's width
    ramp_gamma: float = 10.0  # DANN ramp 2 / (1 + exp(-gamma p)) - 1
    # --da-block: residual blocks of WS-CDA's domain-adaptation block before the discriminator
    da_block: int = 0
    # WS-CDA's human source (adapt/human_source.py): --human-data, a COCO-layout folder of person
    # keypoints (the built-in humans or COCO 2017) trained through the keypoints humans and
    # animals share (datasets/correspondence.py); "" = none.
    human_data: str = ""
    human_weight: float = 1.0  # --human-weight: weight of the human pose loss L_H (paper 1)
    w1: float = 1.0  # --w1: weight of L_DDL's species term (human vs animal; human runs only)
    human_limit: int = 0  # --human-limit: the first N human boxes (0: all)
    # --forward: joint (one pass over source + target) | separate (one per domain, as the
    # references: BatchNorm normalises each domain by its own batch statistics)
    forward: str = "joint"
    # UDA-Animal-Pose (Li & Lee 2021, adapt/uda.py): off by default, on in adapt/uda_animal.py --
    relabel: bool = True  # false: pseudo-labels of round 0 only, never relabelled (UDA-Animal)
    # the pseudo-label weight: constant target_weight | cosine from it to target_weight_end
    target_weight_ramp: str = "constant"
    target_weight_end: float = 8.0  # UDA-Animal: 15 -> 8
    target_weight_ramp_epochs: float = 15.0  # over this many paper epochs (uda_paper_epochs)
    small_loss: bool = False  # per image only the k smallest-loss keypoints count
    teacher: bool = False  # mean teacher (EMA) on the plain target crop
    teacher_decay: float = 0.999  # its EMA decay
    teacher_weight: float = 90.0  # teacher -> student's last stack MSE weight (x ramp-up)
    distill: bool = False  # last stack (detached) -> previous stack (x ramp-up)
    distill_weight: float = 90.0
    consistency_ramp_epochs: float = 10.0  # sigmoid ramp-up of both, in paper epochs
    mixup: bool = False  # Beta(0.8, 0.8) mixup of the target crops within the batch
    # The paper's stage-2 length the run's epochs map onto for the UDA schedules (0: epochs as
    # they are); run epoch e of E counts as paper epoch e * uda_paper_epochs / E.
    uda_paper_epochs: int = 80

    def check(self) -> None:
        _one_of(self, "target", TARGET_DATASETS)
        _one_of(self, "target_ssl", TARGET_DATASETS)
        _one_of(self, "selection", SELECTIONS)
        _one_of(self, "curriculum_by", CURRICULA)
        _one_of(self, "adversary", ADVERSARY_MODES)
        _one_of(self, "forward", FORWARDS)
        _one_of(self, "target_weight_ramp", TARGET_WEIGHT_RAMPS)
        _one_of(self, "oracle_filter", ORACLE_FILTERS)
        _at_least(
            self,
            0,
            "target_weight",
            "target_labels",
            "labelled_weight",
            "views",
            "view_scale",
            "view_rotation",
            "flow_max_move",
            "pseudo_workers",
            "w2",
            "da_block",
            "human_weight",
            "w1",
            "human_limit",
            "target_weight_end",
            "target_weight_ramp_epochs",
            "teacher_weight",
            "distill_weight",
            "consistency_ramp_epochs",
            "uda_paper_epochs",
        )
        _at_least(
            self,
            0,
            "round_every",
            "pseudo_batch",
            "beta",
            "disc_lr",
            "disc_hidden",
            "ramp_gamma",
            "flow_ratio",
            strict=True,
        )
        _require(self.view_scale < 1, "view_scale", f"must be < 1, got {self.view_scale}")
        _require(
            0 <= self.teacher_decay < 1,
            "teacher_decay",
            f"must be in [0, 1), got {self.teacher_decay}",
        )
        _require(math.isfinite(self.alpha), "alpha", f"must be a number, got {self.alpha}")
        _require(
            bool(self.pplo_shares) and all(0 < s <= 1 for s in self.pplo_shares),
            "pplo_shares",
            f"shares must be in (0, 1], got {self.pplo_shares}",
        )
        _require(
            self.oracle_filter == "none" or self.pseudo_labels,
            "oracle_filter",
            f"{self.oracle_filter!r} filters pseudo-labels: turn on adapt.pseudo_labels",
        )
        _require(
            self.pseudo_labels
            or self.adversarial
            or self.teacher
            or self.target_labels > 0
            or bool(self.human_data),
            "pseudo_labels",
            "nothing adapts: turn on adapt.pseudo_labels, adapt.adversarial, adapt.teacher or "
            "adapt.target_labels",
        )


def _adapt_optim() -> OptimConfig:
    """CC-SSL's optimiser (docs/reference_compat.md §5): RMSprop 2.5e-4, constant, 60 epochs."""
    return OptimConfig(solver="rms", lr=2.5e-4, epochs=60, schedule=[])


@dataclass(kw_only=True)
class AdaptConfig(Config):
    optim: OptimConfig = field(default_factory=_adapt_optim)
    adapt: AdaptSection = field(default_factory=AdaptSection)

    def check(self) -> None:
        if self.data.dataset not in DATASET_NAMES:  # pragma: no cover - DataConfig checks it
            raise ConfigError(f"{self.data.dataset!r} is not a dataset", key="data.dataset")
        if self.data.dataset in TARGET_DATASETS:
            raise ConfigError(
                f"the source must be a labelled source data set, got the target set "
                f"{self.data.dataset!r} (train on target labels with train/train.py: the oracle)",
                key="data.dataset",
            )


#: The reference's CCSSL/options/train_options.py flags first (same names), then ours. Training
#: flags of train/train.py are accepted too (``--dataset`` is the source; ``--resume`` means the
#: initial weights here, as in the reference's CCSSL.py).
_RENAMED = {
    "--resume",
    "--pretrained",
    "--dataset",
    "--train-batch",
    "--lr",
    "--epochs",
    "--log-every",
}
#: Training flags that mean nothing here: evaluate with evaluation/test.py; the adaptation loop
#: has no -d/--debug batch dump; CCSSL.py's parser has none of train.py's --year, --features or
#: --target-weight.
_NOT_ADAPT = {
    "--evaluate",
    "--start-epoch",
    "--eval-split",
    "--debug",
    "--year",
    "--features",
    "--target-weight",
    "--seg-weight",  # adaptation trains no part segmentation
    "--test-scales",  # bottom-up evaluation options: adaptation sources are top-down animals
    "--project-to-input",
}
ADAPT_FLAGS: tuple[Flag, ...] = (
    _flag(
        "--source",
        "--dataset",
        field="data.dataset",
        # People join as a second source with --human-data (WS-CDA), beside this animal one.
        choices=tuple(
            d
            for d in DATASET_NAMES
            if d not in TARGET_DATASETS and d not in TOPDOWN_DATASETS + BOTTOMUP_DATASETS
        ),
        help="labelled source data set (the reference's --source)",
    ),
    _flag(
        "--target-ssl",
        field="adapt.target_ssl",
        choices=TARGET_DATASETS,
        help="target images trained on with pseudo-labels",
    ),
    _flag(
        "--target",
        field="adapt.target",
        choices=TARGET_DATASETS,
        help="target data set with labels for validation / model selection",
    ),
    _flag(
        "--batch-size", "--train-batch", field="data.train_batch", help="batch size of each domain"
    ),
    _flag("--learning-rate", "--lr", field="optim.lr", help="learning rate"),
    _flag("--num-epochs", "--epochs", field="optim.epochs", help="training epochs"),
    _flag("--gamma_", field="adapt.target_weight", help="pseudo-labelled target loss weight"),
    _flag(
        "--resume",
        "--pretrained",
        field="run.pretrained",
        help="source checkpoint to start from (weights only, as the reference's CCSSL.py); an "
        "interrupted adaptation run continues from its own -c folder regardless",
    ),
    _flag(
        "--print-freq",
        "--log-every",
        field="run.log_every",
        help="iterations between logged training losses (the reference's --print-freq)",
    ),
    _flag(
        "--model",
        field=REFERENCE_ONLY,
        help="CCSSL.py's model name, accepted for its command lines",
        note="--model had no effect in the reference (CCSSL.py always built hg); -a/--arch "
        "chooses the model here",
    ),
    _flag(
        "--num-classes",
        field=REFERENCE_ONLY,
        value_type=int,
        choices=(18,),
        help="CCSSL.py's keypoint count (the keypoints it scored); the keypoint spec has 18",
    ),
    _flag(
        "--init-weights",
        field=REFERENCE_ONLY,
        help="CCSSL.py's initial-model path, accepted for its command lines",
        note="--init-weights had no effect in the reference (CCSSL.py never read it); --resume "
        "gives the initial weights",
    ),
    _flag(
        "--data-label-folder-target",
        field=REFERENCE_ONLY,
        help="CCSSL.py's soft-label folder, accepted for its command lines",
        note="--data-label-folder-target had no effect in the reference (CCSSL.py never read "
        "it); pseudo-labels are kept in <checkpoint>/pseudo_labels/",
    ),
    _flag(
        "--target-labels",
        field="adapt.target_labels",
        help="labelled target training frames (few-label); 0 = unsupervised",
    ),
    _flag(
        "--labelled-weight",
        field="adapt.labelled_weight",
        help="pose loss weight of the --target-labels frames (x w2)",
    ),
    _flag(
        "--no-pseudo-labels",
        field="adapt.pseudo_labels",
        kind="store_false",
        help="no pseudo-label rounds",
    ),
    _flag("--round-every", field="adapt.round_every", help="epochs per pseudo-label round"),
    _flag(
        "--selection",
        field="adapt.selection",
        choices=SELECTIONS,
        help="pseudo-label selection schedule",
    ),
    _flag(
        "--curriculum-by",
        field="adapt.curriculum_by",
        choices=CURRICULA,
        help="what keys the ccssl curriculum: the round (default) or the epoch",
    ),
    _flag("--pplo-shares", field="adapt.pplo_shares", help="PPLO kept share per round"),
    _flag("--views", field="adapt.views", help="random equivariance views (0 = identity only)"),
    _flag(
        "--no-temporal",
        field="adapt.temporal",
        kind="store_false",
        help="no optical-flow temporal consistency",
    ),
    _flag(
        "--pseudo-workers",
        field="adapt.pseudo_workers",
        help="threads for the optical-flow pass (0: inline)",
    ),
    _flag("--adversarial", field="adapt.adversarial", help="WS-CDA domain discriminator on"),
    _flag(
        "--adversary",
        field="adapt.adversary",
        choices=ADVERSARY_MODES,
        help="min-max implementation",
    ),
    _flag(
        "--alpha",
        field="adapt.alpha",
        help="WS-CDA alpha, the paper's -1 (only |alpha| counts: the min-max's sign is built in)",
    ),
    _flag("--beta", field="adapt.beta", help="WS-CDA beta (pose loss weight)"),
    _flag("--w2", field="adapt.w2", help="WS-CDA animal pose loss weight"),
    _flag(
        "--human-data",
        field="adapt.human_data",
        help="WS-CDA's human source: a COCO-layout person keypoint folder (built-in humans or "
        "COCO 2017); empty = none",
    ),
    _flag("--human-weight", field="adapt.human_weight", help="human pose loss weight (L_H)"),
    _flag("--w1", field="adapt.w1", help="WS-CDA species (human vs animal) term weight"),
    _flag("--human-limit", field="adapt.human_limit", help="use the first N human boxes"),
    _flag(
        "--da-block",
        field="adapt.da_block",
        help="residual blocks of WS-CDA's domain-adaptation block (0 = none)",
    ),
    _flag(
        "--forward",
        field="adapt.forward",
        choices=FORWARDS,
        help="joint: one pass over source + target; separate: one pass per domain",
    ),
) + tuple(f for f in TRAIN_FLAGS if not set(f.names) & (_RENAMED | _NOT_ADAPT))
