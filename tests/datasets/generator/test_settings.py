"""Generator settings are checked when built."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_layouts_and_renderer_are_checked(gen):
    with pytest.raises(ValueError, match="share the synthetic layout"):
        gen.settings(Path("unused"), target_layout="synthetic")
    with pytest.raises(ValueError, match="unknown renderer 'povray'"):
        gen.settings(Path("unused"), renderer="povray")


def test_breed_and_cover_settings_are_checked(gen, tmp_path):
    for field, value, message in (
        ("target_breed", "corgi", "target_breed must be one of"),
        ("source_cover", "snow", "source_cover must be one of"),
        ("target_cover", "grass", "flat renderer draws no ground"),
    ):
        with pytest.raises(ValueError, match=message):
            gen.settings(tmp_path, **{field: value})
