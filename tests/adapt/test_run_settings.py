"""What a continued adaptation run may change (adapt/run_settings.py)."""


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
    assert settings_changed(saved, other) == [
        ("adapt.alpha", -1.0, None),
        ("adapt.beta", None, 2.0),
        ("run.seed", 0, 1),
    ]
    # A run saved before w1 / human_data / label_type were retired continues unchanged.
    old_run = {**saved, "adapt": {**saved["adapt"], "w1": 0.5, "human_data": ""}}
    old_run["data"] = {"label_type": "Gaussian"}
    assert settings_changed(old_run, moved) == []
    old_run["adapt"]["human_data"] = "/coco"
    assert settings_changed(old_run, moved) == [("adapt.human_data", "/coco", None)]
    # The comparison reuses a complete run from a moved folder, not one of another length.
    assert not _record_differs(saved, {**saved, "run": moved["run"]})
    assert _record_differs(saved, moved)
