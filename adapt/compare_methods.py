"""The methods a comparison runs (``--methods``), by name: how each trains and what it reports.

``adapt/compare.py`` runs them; adding a method is one entry of ``METHODS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from animalpose.adapt.uda import UDA_SETTINGS
from animalpose.train.checkpoint import BEST_NAME, CHECKPOINT_NAME

__all__ = ["ADAPTATION_METHODS", "GAP_METHODS", "METHODS", "Method"]

#: The latest epoch's weights (the Trainer writes it every epoch) and our target-selected copy.
LAST_NAME = CHECKPOINT_NAME
TARGET_BEST_NAME = "model_best_target_valid.pth.tar"


@dataclass(frozen=True)
class Method:
    """label: table name. dataset: training data set (``train``); adapt: ``adapt.*`` settings
    (adaptation methods); start: the method whose run's selected checkpoint (``BEST_NAME``,
    same seed) an adaptation method starts from. checkpoints: (key, file, label) reported.
    settings: other config values of the method's runs (dotted key, value), e.g. its model.
    humans: WS-CDA's human source joins (``adapt.human_data`` = the comparison's
    ``--human-data``)."""

    label: str
    checkpoints: tuple[tuple[str, str, str], ...]
    dataset: str = "synthetic_animal_sp"
    adapt: tuple[tuple[str, object], ...] = ()
    start: str = "source"
    settings: tuple[tuple[str, object], ...] = ()
    humans: bool = False

    @property
    def adapts(self) -> bool:
        return bool(self.adapt)

    @property
    def selects_on_target(self) -> bool:
        """A source-only method: the comparison also keeps its checkpoint selected on target
        valid (``TARGET_BEST_NAME``), like the adaptation methods are selected."""
        return any(name == TARGET_BEST_NAME for _, name, _ in self.checkpoints)


#: ``adapt.target_labels`` for "every frame of the target train split" (first_frames clips it).
ALL_FRAMES = 1_000_000
#: The weakly supervised methods' labelled target frames: 3 shots of ``dogshift-v2-cpu`` (8 % of
#: its 720 target train frames).
FEW_FRAMES = 60
#: Their settings: the frames, weighted 10 (CC-SSL's gamma_ for its target frames), since the
#: pose loss is a batch mean in which the unlabelled frames count as zero.
_FEW_LABELS = (("target_labels", FEW_FRAMES), ("labelled_weight", 10.0))
_TARGET_SELECTED = (
    ("selected_target_valid", BEST_NAME, "selected on target valid"),
    ("last", LAST_NAME, "last epoch"),
)
_SOURCE_SELECTED = (
    ("selected_source_valid", BEST_NAME, "selected on source valid"),
    ("selected_target_valid", TARGET_BEST_NAME, "selected on target valid"),
    ("last", LAST_NAME, "last epoch"),
)
METHODS: dict[str, Method] = {
    "source": Method("source only", _SOURCE_SELECTED),
    # The reference's multitask source model (its Example 4): keypoints + part segmentation.
    "source_multitask": Method(
        "source only, multitask (+ part segmentation)",
        _SOURCE_SELECTED,
        dataset="synthetic_animal_sp_multitask",
        settings=(("model.arch", "hg_multitask"),),
    ),
    "ccssl": Method(
        "CC-SSL", _TARGET_SELECTED, adapt=(("pseudo_labels", True), ("adversarial", False))
    ),
    "wscda": Method(
        "WS-CDA", _TARGET_SELECTED, adapt=(("pseudo_labels", False), ("adversarial", True))
    ),
    # WS-CDA as published: people as a second labelled source, the species head trained (w1).
    "wscda_humans": Method(
        "WS-CDA + humans",
        _TARGET_SELECTED,
        adapt=(("pseudo_labels", False), ("adversarial", True)),
        humans=True,
    ),
    "ccssl_wscda": Method(
        "CC-SSL + WS-CDA", _TARGET_SELECTED, adapt=(("pseudo_labels", True), ("adversarial", True))
    ),
    "wscda_pplo": Method(
        "WS-CDA + PPLO",
        _TARGET_SELECTED,
        adapt=(
            ("pseudo_labels", True),
            ("adversarial", True),
            ("selection", "pplo"),
            ("views", 0),
            ("temporal", False),
        ),
        start="wscda",  # PPLO refines the WS-CDA model (Cao et al. 2019, docs/adaptation.md)
    ),
    "uda": Method("UDA-Animal", _TARGET_SELECTED, adapt=UDA_SETTINGS),
    "wscda_uda": Method(
        "WS-CDA + UDA-Animal",
        _TARGET_SELECTED,
        adapt=UDA_SETTINGS,
        start="wscda",  # UDA-Animal's stage 2 from the WS-CDA model
    ),
    # Ablations (issue 11): one setting of CC-SSL / UDA-Animal changed.
    "ccssl_epoch": Method(
        "CC-SSL (curriculum by epoch)",
        _TARGET_SELECTED,
        adapt=(("pseudo_labels", True), ("adversarial", False), ("curriculum_by", "epoch")),
    ),
    "ccssl_separate": Method(
        "CC-SSL (a forward per domain)",
        _TARGET_SELECTED,
        adapt=(("pseudo_labels", True), ("adversarial", False), ("forward", "separate")),
    ),
    "wscda_block": Method(
        "WS-CDA (2-layer adaptation block)",
        _TARGET_SELECTED,
        adapt=(("pseudo_labels", False), ("adversarial", True), ("da_block", 2)),
    ),
    "uda_no_teacher": Method(
        "UDA-Animal without mean teacher",
        _TARGET_SELECTED,
        adapt=(*UDA_SETTINGS, ("teacher", False)),
    ),
    "uda_no_mixup": Method(
        "UDA-Animal without mixup", _TARGET_SELECTED, adapt=(*UDA_SETTINGS, ("mixup", False))
    ),
    # Diagnostics (issue 11): they read the target train split's annotations, so they are bounds
    # on what a method could reach, never methods. A perfect correctness check of UDA-Animal's
    # labels (of the kept ones / of all), and fine-tuning on every target train annotation.
    "uda_right_kept": Method(
        "UDA-Animal, only right kept labels (diagnostic: reads target labels)",
        _TARGET_SELECTED,
        adapt=(*UDA_SETTINGS, ("oracle_filter", "kept")),
    ),
    "uda_right_all": Method(
        "UDA-Animal, every right label (diagnostic: reads target labels)",
        _TARGET_SELECTED,
        adapt=(*UDA_SETTINGS, ("oracle_filter", "all")),
    ),
    "finetune_labels": Method(
        "fine-tuned on all target train labels (bound)",
        _TARGET_SELECTED,
        adapt=(
            ("pseudo_labels", False),
            ("adversarial", False),
            ("target_labels", ALL_FRAMES),
        ),
    ),
    # WS-CDA's weakly supervised setting (Cao et al. 2019): a few labelled target frames (the
    # first FEW_FRAMES of the target train split, whole shots first) beside the discriminator;
    # and the same frames without it, the baseline that says what the discriminator adds.
    "wscda_few": Method(
        f"WS-CDA + {FEW_FRAMES} labelled target frames",
        _TARGET_SELECTED,
        adapt=(("pseudo_labels", False), ("adversarial", True), *_FEW_LABELS),
    ),
    "finetune_few": Method(
        f"fine-tuned on {FEW_FRAMES} labelled target frames",
        _TARGET_SELECTED,
        adapt=(("pseudo_labels", False), ("adversarial", False), *_FEW_LABELS),
    ),
    "oracle": Method("oracle (target train, labels)", _TARGET_SELECTED, dataset="real_animal_sp"),
}
#: The methods of benchmarks/domain_gap.py and of benchmarks/adaptation.py, in run order
#: (a method's ``start`` before it: the adaptation methods start from its model).
GAP_METHODS = ("source", "oracle")
ADAPTATION_METHODS = ("source", "ccssl", "wscda", "ccssl_wscda", "uda", "oracle")
