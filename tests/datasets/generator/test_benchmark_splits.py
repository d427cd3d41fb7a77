"""The split by shot, the split files and record, finding a record, the version pin."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import scipy.io

from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.tigdog import load_tigdog
from animalpose.datasets.generator.benchmark_splits import (
    find_benchmark,
    generate_benchmark,
    split_counts,
    split_shots,
    write_benchmark_splits,
)
from animalpose.datasets.generator.dogshift import BenchmarkSpec, benchmark_settings
from animalpose.datasets.generator.run import generate

FILES = {
    "train": "train_idxs_by_video.npy",
    "valid": "valid_idxs_by_video.npy",
    "test": "test_idxs_by_video.npy",
}


def _files(folder) -> dict[str, np.ndarray]:
    return {name: np.load(folder / file) for name, file in FILES.items()}


@pytest.mark.parametrize(
    ("shots", "expected"),
    [
        (200, (120, 40, 40)),
        (20, (12, 4, 4)),
        (10, (6, 2, 2)),
        (5, (3, 1, 1)),
        (7, (5, 1, 1)),  # 7 x 0.2 = 1.4 rounds to 1
        (8, (4, 2, 2)),  # 8 x 0.2 = 1.6 rounds to 2
        (3, (1, 1, 1)),  # every split keeps a shot
    ],
)
def test_split_counts_known_values(shots, expected):
    assert split_counts(shots, (0.6, 0.2, 0.2)) == expected
    assert sum(expected) == shots


def test_split_counts_refuse_an_empty_train_split():
    with pytest.raises(ValueError, match="cannot split 2 shots"):
        split_counts(2, (0.6, 0.2, 0.2))


def test_split_shots_partition_seeded_and_sorted():
    ids = np.array([9, 3, 3, 41, 7, 12, 5, 5, 5, 30, 2, 8, 11, 19])  # 11 distinct shots
    a = split_shots(ids, fractions=(0.6, 0.2, 0.2), seed=4)
    assert [len(a[n]) for n in ("train", "valid", "test")] == [7, 2, 2]
    together = np.concatenate(list(a.values()))
    assert sorted(together.tolist()) == sorted(set(ids.tolist()))  # a partition of the shots
    assert all((np.diff(v) > 0).all() for v in a.values())
    b = split_shots(ids[::-1], fractions=(0.6, 0.2, 0.2), seed=4)  # input order does not matter
    assert all(np.array_equal(a[n], b[n]) for n in a)
    draws = {tuple(split_shots(ids, fractions=(0.6, 0.2, 0.2), seed=s)["test"]) for s in range(8)}
    assert len(draws) > 1  # the seed chooses the shots
    order = np.random.default_rng(4).permutation(np.unique(ids))  # the documented rule
    assert a["test"].tolist() == sorted(order[:2].tolist())
    assert a["valid"].tolist() == sorted(order[2:4].tolist())


def test_split_files_partition_the_kept_frames_by_shot(bench):
    data = load_tigdog(bench.root, "dog")
    files = _files(bench.folder)
    union = np.sort(np.concatenate(list(files.values())))
    assert np.array_equal(union, data.kept)  # every kept frame, once
    for name, arr in files.items():
        assert arr.dtype == np.int64 and (np.diff(arr) > 0).all(), name
        entry = bench.record["splits"][name]
        assert entry["frames"] == len(arr)
        assert sorted(set(data.shots[arr].tolist())) == entry["shots"]
        # whole shots: every kept frame of the split's shots is in the split
        assert np.array_equal(arr, data.kept[np.isin(data.shots[data.kept], entry["shots"])])
    shot_sets = [set(bench.record["splits"][n]["shots"]) for n in FILES]
    assert not (
        shot_sets[0] & shot_sets[1] or shot_sets[0] & shot_sets[2] or shot_sets[1] & shot_sets[2]
    )
    assert [len(s) for s in shot_sets] == [6, 2, 2]


def test_record_describes_the_data_independently(bench):
    record = json.loads((bench.folder / "benchmark.json").read_text())
    assert record == bench.record
    assert (record["name"], record["version"], record["renderer"], record["official"]) == (
        "tiny-flat",
        1,
        "flat",
        True,
    )
    assert BenchmarkSpec.from_dict(record["spec"]) == bench.spec
    ranges = scipy.io.loadmat(bench.root / "behaviorDiscovery2.0/ranges/dog/ranges.mat")["ranges"]
    assert record["target"]["shots"] == len(ranges) == bench.spec.target_shots
    assert record["target"]["frames"] == int((ranges[:, 2] - ranges[:, 1] + 1).sum())
    source = bench.root / "synthetic_animal/dog_combineds5r5_texture"
    assert record["source"]["images"] == len(list(source.glob("*_img.png"))) == 12
    assert (record["source"]["train"], record["source"]["valid"]) == (10, 2)
    assert len(np.load(source / "valid_idxs.npy")) == 2
    assert record["generator"]["target"]["seed"] == bench.spec.seed
    assert find_benchmark(bench.root, "tiny-flat") == record


def test_rewriting_gives_the_same_bytes(bench_copy, bench):
    before = {p.name: p.read_bytes() for p in bench_copy.folder.iterdir()}
    write_benchmark_splits(bench_copy.root, bench_copy.spec)
    after = {p.name: p.read_bytes() for p in bench_copy.folder.iterdir()}
    assert after == before


def test_another_split_seed_moves_shots_and_drops_the_stale_mean(bench_copy):
    mean = bench_copy.folder / "mean_by_video.pth.tar"
    mean.write_bytes(b"computed over the old training split")
    other = dataclasses.replace(bench_copy.spec, split_seed=bench_copy.spec.split_seed + 1)
    old = _files(bench_copy.folder)
    record = write_benchmark_splits(bench_copy.root, other)
    new = _files(bench_copy.folder)
    assert not all(np.array_equal(old[n], new[n]) for n in FILES)
    assert not mean.exists()
    assert record["spec"]["split_seed"] == other.split_seed


def test_data_of_other_settings_is_refused(bench_copy):
    with pytest.raises(DataError, match="not generated as benchmark tiny-flat .*seed: 5 there"):
        write_benchmark_splits(bench_copy.root, dataclasses.replace(bench_copy.spec, seed=6))
    with pytest.raises(DataError, match=r"no benchmark 'dogshift-v1' here .*found: \['tiny-fl"):
        find_benchmark(bench_copy.root, "dogshift-v1")


def test_missing_or_damaged_manifests_say_what_to_do(bench_copy, tmp_path):
    with pytest.raises(DataError, match="generator.json: not found; the benchmark's data must be"):
        write_benchmark_splits(tmp_path, bench_copy.spec)
    manifest = next(bench_copy.root.rglob("generator.json"))
    manifest.write_text("[1, 2]")
    with pytest.raises(DataError, match="manifest must be a JSON object"):
        write_benchmark_splits(bench_copy.root, bench_copy.spec)


def test_generator_version_is_pinned(tiny_spec, tmp_path):
    with pytest.raises(DataError, match="generator version 99, this is version 1"):
        generate_benchmark(
            dataclasses.replace(tiny_spec, generator_version=99),
            tmp_path,
            processes=1,
            progress=False,
        )
    assert not any(tmp_path.iterdir())  # refused before writing anything


def test_new_generator_jobs_remove_the_test_split_and_record(bench_copy):
    settings = benchmark_settings(bench_copy.spec, bench_copy.root)
    more = dataclasses.replace(settings, target_shots=settings.target_shots + 1)
    generate(more, processes=1, progress=False, force=True)
    remaining = {p.name for p in bench_copy.folder.iterdir()}
    assert not remaining & {"test_idxs_by_video.npy", "benchmark.json", "train_idxs_by_video.npy"}


def test_benchmark_splits_carry_their_fingerprint(bench_copy, caplog):
    """A benchmark's split files are checked against its data from the first load on."""
    from animalpose.datasets.formats.registry import build_dataset
    from animalpose.datasets.formats.split_fingerprint import FINGERPRINT_NAME
    from animalpose.datasets.formats.synthetic import synthetic_dir
    from animalpose.datasets.keypoints import ANIMAL18

    root, animal = bench_copy.root, bench_copy.spec.animal
    assert (bench_copy.folder / FINGERPRINT_NAME).is_file()
    assert (synthetic_dir(root, animal) / FINGERPRINT_NAME).is_file()
    before = {p: p.read_bytes() for p in root.rglob(FINGERPRINT_NAME)}
    options = dict(input_size=64, scale_factor=0.25, rot_factor=30, augment_backend="fused")
    with caplog.at_level("WARNING"):
        for name, splits in (("synthetic_animal", "train valid"), ("real_animal_sp", "valid test")):
            for split in splits.split():
                build_dataset(
                    name, root=root, animal=animal, split=split, spec=ANIMAL18, seed=0, **options
                )
    assert not [r for r in caplog.records if "fingerprint" in r.getMessage().lower()]
    assert {p: p.read_bytes() for p in root.rglob(FINGERPRINT_NAME)} == before
