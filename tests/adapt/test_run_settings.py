"""What a continued adaptation run may change (adapt/run_settings.py)."""

import copy

from animalpose.adapt.config import AdaptConfig
from animalpose.adapt.run_settings import settings_changed
from animalpose.train.config_io import config_to_dict


def test_settings_changed_ignores_only_display_loading_device_and_length():
    from animalpose.adapt.compare import _record_differs
    from animalpose.adapt.run_settings import settings_changed

    saved = {
        "optim": {"lr": 1e-3, "epochs": 6, "schedule": [3]},
        "run": {"checkpoint": "a", "progress": True, "seed": 0},
        "adapt": {"alpha": -1.0, "pseudo_batch": 64},
    }
    moved = {
        "optim": {"lr": 1e-3, "epochs": 12, "schedule": [3]},
        "run": {"checkpoint": "b", "progress": False, "seed": 0},
        "adapt": {"alpha": -1.0, "pseudo_batch": 8},
    }
    assert settings_changed(saved, moved) == []
    other = {**moved, "run": {**moved["run"], "seed": 1}, "adapt": {"beta": 2.0}}
    assert settings_changed(saved, other) == [  # a key left out has its default (alpha -1)
        ("adapt.beta", 500.0, 2.0),
        ("run.seed", 0, 1),
    ]
    # A run saved with the retired label_type, and with w1 while it weighted nothing (no human
    # source: moot), continues unchanged.
    old_run = {**saved, "adapt": {**saved["adapt"], "w1": 0.5, "human_data": ""}}
    old_run["data"] = {"label_type": "Gaussian"}
    assert settings_changed(old_run, moved) == []
    old_run["adapt"]["human_data"] = "/coco"  # with people, w1 counts
    assert sorted(settings_changed(old_run, moved)) == [
        ("adapt.human_data", "/coco", ""),
        ("adapt.w1", 0.5, 1.0),  # the moot side reads as the default
    ]
    # The comparison reuses a complete run from a moved folder, not one of another length.
    assert not _record_differs(saved, {**saved, "run": moved["run"]})
    assert _record_differs(saved, moved)


def _full(**adapt):
    from animalpose.adapt.config import AdaptConfig
    from animalpose.train.config_io import config_to_dict

    d = config_to_dict(AdaptConfig())
    d["adapt"].update(adapt)
    return d


def _before_keys(d: dict) -> dict:
    """``d`` as a run saved before curriculum_by / labelled_weight existed, with |alpha|."""
    a = {k: v for k, v in d["adapt"].items() if k not in ("curriculum_by", "labelled_weight")}
    return {**d, "adapt": {**a, "alpha": abs(a["alpha"])}}


def test_a_run_saved_before_curriculum_by_continues_where_it_trains_the_same():
    from animalpose.adapt.run_settings import settings_changed

    # 10-epoch rounds: by epoch and by round agree, the old run continues with the new default.
    assert settings_changed(_before_keys(_full(round_every=10)), _full(round_every=10)) == []
    # The curriculum off (PPLO, or no pseudo-labels): the key is moot.
    pplo = _full(round_every=2, selection="pplo")
    assert settings_changed(_before_keys(pplo), pplo) == []
    wscda = _full(round_every=2, pseudo_labels=False, adversarial=True)
    assert settings_changed(_before_keys(wscda), wscda) == []
    # Other rounds: it ran by epoch, so only --curriculum-by epoch continues it.
    old = _before_keys(_full(round_every=2))
    assert settings_changed(old, _full(round_every=2)) == [
        ("adapt.curriculum_by", "epoch", "round")
    ]
    assert settings_changed(old, _full(round_every=2, curriculum_by="epoch")) == []


def test_a_run_saved_before_labelled_weight_gave_its_labelled_frames_gamma():
    from animalpose.adapt.run_settings import settings_changed

    # No labelled target frames: the weight is moot.
    assert settings_changed(_before_keys(_full(round_every=10)), _full(round_every=10)) == []
    old = _before_keys(_full(round_every=10, target_labels=8, target_weight=10.0))
    assert settings_changed(old, _full(round_every=10, target_labels=8)) == [
        ("adapt.labelled_weight", 10.0, 1.0)
    ]
    same = _full(round_every=10, target_labels=8, labelled_weight=10.0)
    assert settings_changed(old, same) == []


def test_alpha_of_either_sign_is_the_same_run():
    from animalpose.adapt.run_settings import settings_changed

    # Configs saved before the paper's sign was accepted hold alpha: 1.0 (= |alpha|).
    assert settings_changed(_full(alpha=1.0), _full(alpha=-1.0)) == []
    assert settings_changed(_full(alpha=-1.0), _full(alpha=1.0)) == []
    assert settings_changed(_full(alpha=1.0), _full(alpha=-2.0)) == [("adapt.alpha", -1.0, -2.0)]


def test_a_key_added_later_takes_its_default_in_older_records():
    # A source run's record (training config, no adapt section) written before data.occlusion
    # existed is the same run as today's default; a non-default value is a different run.
    from animalpose.train.config import Config

    current = config_to_dict(Config())
    saved = copy.deepcopy(current)
    del saved["data"]["occlusion"]
    assert settings_changed(saved, current) == []
    current["data"]["occlusion"] = 0.5
    assert settings_changed(saved, current) == [("data.occlusion", 0.0, 0.5)]
    # An adaptation record gets the adapt section's defaults too.
    adapt_now = config_to_dict(AdaptConfig())
    adapt_saved = copy.deepcopy(adapt_now)
    del adapt_saved["adapt"]["da_block"], adapt_saved["data"]["occluders"]
    assert settings_changed(adapt_saved, adapt_now) == []
