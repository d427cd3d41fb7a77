"""The registered benchmark specs."""

from __future__ import annotations

import dataclasses
import json

import pytest

from animalpose.datasets.generator.benchmark_splits import split_counts
from animalpose.datasets.generator.dogshift import (
    BENCHMARKS,
    BenchmarkSpec,
    benchmark_settings,
    get_benchmark,
)


def test_registered_benchmarks():
    assert all(name == spec.name for name, spec in BENCHMARKS.items())
    full, cpu = BENCHMARKS["dogshift-v1"], BENCHMARKS["dogshift-v1-cpu"]
    assert (full.renderer, full.animal, full.size) == ("dog", "dog", (640, 480))
    assert (full.source_images, full.target_shots, full.frames_per_shot) == (10000, 200, 50)
    assert split_counts(full.target_shots, full.split_fractions) == (120, 40, 40)
    assert "cpu" in cpu.description.lower() and cpu.size == (320, 240)
    assert cpu.source_images + cpu.target_shots * cpu.frames_per_shot <= 2000  # minutes on 2 cores
    # The oracle trains on about as many target frames as source only on source stills.
    train_frames = split_counts(cpu.target_shots, cpu.split_fractions)[0] * cpu.frames_per_shot
    assert 0.8 <= train_frames / (0.8 * cpu.source_images) <= 1.5
    assert cpu.version == 2 and cpu.split_fractions == full.split_fractions
    for spec in BENCHMARKS.values():
        assert BenchmarkSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
        settings = benchmark_settings(spec, "unused")
        names = ("source_images", "target_shots", "frames_per_shot", "size", "seed")
        assert [getattr(settings, n) for n in names] == [getattr(spec, n) for n in names]
    assert benchmark_settings(cpu, "unused", renderer="flat").renderer == "flat"
    # v2 is v1 with basset targets in grass: every other setting equal, so its source data is
    # v1's and the gap comes from the target scenes alone.
    for v1, v2 in (("dogshift-v1", "dogshift-v2"), ("dogshift-v1-cpu", "dogshift-v2-cpu")):
        old, new = BENCHMARKS[v1].to_dict(), BENCHMARKS[v2].to_dict()
        assert (old["target_breed"], old["target_cover"]) == ("mixed", "none")
        assert (new["target_breed"], new["target_cover"]) == ("basset", "grass")
        same = ("name", "version", "description", "target_breed", "target_cover")
        assert {k: v for k, v in old.items() if k not in same} == {
            k: v for k, v in new.items() if k not in same
        }
        settings = benchmark_settings(BENCHMARKS[v2], "unused")
        assert (settings.source_breed, settings.target_breed) == ("mixed", "basset")
        assert (settings.source_cover, settings.target_cover) == ("none", "grass")
    with pytest.raises(ValueError, match="unknown target_cover 'snow'"):
        dataclasses.replace(cpu, target_cover="snow")
    with pytest.raises(ValueError, match="summing to 1"):
        dataclasses.replace(cpu, split_fractions=(0.5, 0.2, 0.2))
    with pytest.raises(KeyError, match="dogshift-v1-cpu"):
        get_benchmark("dogshift-v0")
