"""What a continued adaptation run may change, and whether a stored pseudo-label round is this
run's: a folder holds one run, so any other changed setting refuses to continue (naming the
keys), and a round file is reused only when it records this run's settings and weights."""

from __future__ import annotations

from pathlib import Path

from animalpose.adapt.config import AdaptConfig, AdaptSection
from animalpose.adapt.pseudo_label_store import PseudoLabels
from animalpose.adapt.selection import CCSSL_ROUND_EPOCHS
from animalpose.train.config_io import config_to_dict
from animalpose.train.run_folder import changed_settings, settings_listing

__all__ = [
    "CONTINUE_FREE_KEYS",
    "PSEUDO_FOLDER",
    "round_mismatch",
    "round_path",
    "settings_changed",
]

#: Pseudo-label rounds, under the run's checkpoint folder.
PSEUDO_FOLDER = "pseudo_labels"


def round_path(out_dir: str | Path, round_index: int) -> Path:
    return Path(out_dir) / PSEUDO_FOLDER / f"round_{round_index:02d}.npz"


#: Settings a continued run may change: its length (``optim.epochs``: running the same command
#: with more epochs extends a run) and display, loading and device, which do not change what is
#: trained. Any other difference from the checkpoint's config refuses to continue: a folder holds
#: one run.
CONTINUE_FREE_KEYS = frozenset(
    {
        "optim.epochs",
        "run.progress",
        "run.device",
        "run.checkpoint",
        "run.evaluate",
        "data.workers",
        "data.test_batch",
        "adapt.pseudo_batch",
        "adapt.pseudo_workers",
    }
)


def _as_run(settings: dict) -> dict:
    """``settings`` with what a key saved before it existed meant, and values that train the
    same written one way, so that only differences in what is trained are compared:

    - ``adapt.curriculum_by`` missing: ``"epoch"`` (the curriculum was keyed by epoch); its
      value is moot without the ccssl curriculum or with 10-epoch rounds (both keyings agree).
    - ``adapt.labelled_weight`` missing: ``adapt.target_weight`` (gamma_ weighted the labelled
      target frames too); moot without labelled target frames.
    - ``adapt.alpha`` positive: its negative, the paper's sign (only |alpha| counts; configs
      saved before the paper's sign was accepted hold |alpha|).
    - ``adapt.w1``, ``human_weight``, ``human_limit``: moot without ``adapt.human_data`` (read
      as their defaults).
    """
    adapt = settings.get("adapt")
    if not isinstance(adapt, dict):
        return settings
    a = dict(adapt)
    a.setdefault("curriculum_by", "epoch")
    a.setdefault("labelled_weight", a.get("target_weight"))
    ccssl = a.get("pseudo_labels", True) and a.get("selection", "ccssl") == "ccssl"
    if not ccssl or a.get("round_every") == CCSSL_ROUND_EPOCHS:
        a["curriculum_by"] = "(either: same curriculum)"
    if not a.get("target_labels"):
        a["labelled_weight"] = "(moot: no labelled target frames)"
    if not a.get("human_data"):  # moot: read as the defaults, so only human_data differs
        defaults = AdaptSection()
        for key in ("w1", "human_weight", "human_limit"):
            a[key] = getattr(defaults, key)
    if isinstance(a.get("alpha"), int | float):
        a["alpha"] = -abs(a["alpha"])
    return {**settings, "adapt": a}


#: Keys whose absence means something else than their default (``_as_run`` reads them).
_MISSING_MEANS = {"adapt": {"curriculum_by", "labelled_weight"}}


def _with_defaults(settings: dict, sections: set[str]) -> dict:
    """``settings`` with the ``AdaptConfig`` default of every key it lacks in ``sections``
    (but ``_MISSING_MEANS``)."""
    out = dict(settings)
    for name, defaults in config_to_dict(AdaptConfig()).items():
        if name not in sections or not isinstance(defaults, dict):
            continue
        given = settings.get(name)
        if not isinstance(given, dict):
            given = {}
        skip = _MISSING_MEANS.get(name, set())
        out[name] = {**{k: v for k, v in defaults.items() if k not in skip}, **given}
    return out


def settings_changed(saved: dict, current: dict) -> list[tuple[str, object, object]]:
    """(dotted key, saved value, current value) for every setting that differs between two
    ``config_to_dict`` dicts in what it trains (``_as_run``), except ``CONTINUE_FREE_KEYS``. A
    key either side lacks (saved before the key existed) has its default, in the sections
    ``current`` has (a training config has no ``adapt``); other missing keys count as None.
    Retired keys that an older run saved with their inert value are ignored."""
    sections = set(current)
    changed = changed_settings(
        _as_run(_with_defaults(saved, sections)),
        _as_run(_with_defaults(current, sections)),
        defaults={},
    )
    return [c for c in changed if c[0] not in CONTINUE_FREE_KEYS]


def round_mismatch(labels: PseudoLabels, settings: dict, weights: str | None) -> str | None:
    """Why a stored round is not the one a run with ``settings`` makes from the weights of
    digest ``weights`` (None: this run's, nothing to say). ``weights`` None (a checkpoint from
    before rounds recorded them) trusts the file."""
    if weights is None:
        return None
    if labels.settings is None or labels.weights is None:
        return "without a record of the settings and weights that made it"
    changed = settings_changed(labels.settings, settings)
    if changed:
        return f"by a run with other settings ({settings_listing(changed)})"
    if labels.weights != weights:
        return "from other weights than this run's"
    return None
