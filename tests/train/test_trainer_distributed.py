"""Multi-process training: torchrun with the gloo backend on CPU, and the epoch sampler's shards."""

import os
import subprocess
import sys
from pathlib import Path

import torch

from animalpose.datasets.generator.fixtures import make_synthetic_fixture
from animalpose.train.loaders import EpochSampler

REPO = Path(__file__).resolve().parents[2]


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


def test_torchrun_two_processes_on_gloo(tmp_path):
    make_synthetic_fixture(
        tmp_path / "data", animal="horse", num_images=24, seed=0, frame_size=(160, 120)
    )
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "train/train.py"),
        "--image-path",
        str(tmp_path / "data"),
        "--stacks",
        "1",
        "--channels",
        "16",
        "--inp-res",
        "64",
        "--out-res",
        "16",
        "--train-batch",
        "4",
        "--test-batch",
        "8",
        "-j",
        "0",
        "--epochs",
        "2",
        "-c",
        str(tmp_path / "out"),
        "--no-progress",
        "--device",
        "cpu",
    ]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_"))
    }
    out = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    log = (tmp_path / "out" / "log.txt").read_text().splitlines()
    assert len(log) == 3, "rank 0 alone validates and logs, once per epoch"
    ckpt = torch.load(tmp_path / "out" / "checkpoint.pth.tar", weights_only=True)
    assert ckpt["epoch"] == 2
    assert not any(k.startswith("module.module.") for k in ckpt["state_dict"])
