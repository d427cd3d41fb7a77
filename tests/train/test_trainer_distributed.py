"""Multi-process training: torchrun with the gloo backend on CPU, and the epoch sampler's shards."""

import torch

from animalpose.datasets.generator.fixtures import make_synthetic_fixture
from animalpose.train.loaders import EpochSampler


def test_sampler_shards_are_disjoint_and_cover_the_epoch():
    full = list(EpochSampler(10, shuffle=True, seed=3))
    shards = [list(EpochSampler(10, shuffle=True, seed=3, rank=r, world_size=3)) for r in range(3)]
    assert all(len(s) == 4 for s in shards)  # ceil(10 / 3), padded by wrapping
    assert sorted(set().union(*shards)) == sorted(full) == list(range(10))
    # Order is a function of (seed, epoch) only: resuming reproduces it.
    s = EpochSampler(10, shuffle=True, seed=3)
    s.set_epoch(1)
    assert list(s) != full
    s.set_epoch(0)
    assert list(s) == full
    assert list(EpochSampler(5, shuffle=False)) == [0, 1, 2, 3, 4]


def test_torchrun_two_processes_on_gloo(tiny_flags, run_script, tmp_path):
    make_synthetic_fixture(
        tmp_path / "data", animal="horse", num_images=24, seed=0, frame_size=(160, 120)
    )
    argv = ["--image-path", str(tmp_path / "data"), "--epochs", "2", "-c", str(tmp_path / "out")]
    argv += [*tiny_flags, "--test-batch", "8"]
    out = run_script("train/train.py", *argv, processes=2, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    log = (tmp_path / "out" / "log.txt").read_text().splitlines()
    assert len(log) == 3, "rank 0 alone validates and logs, once per epoch"
    ckpt = torch.load(tmp_path / "out" / "checkpoint.pth.tar", weights_only=True)
    assert ckpt["epoch"] == 2
    assert not any(k.startswith("module.module.") for k in ckpt["state_dict"])
