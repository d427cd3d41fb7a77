"""CC-SSL + WS-CDA under torchrun: 2 processes on gloo (CPU), sharded pseudo-labels, one result."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from animalpose.adapt.pseudo_label_store import PseudoLabels
from animalpose.adapt.trainer import round_path
from animalpose.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_torchrun_two_processes_adapt_with_both_methods(tiny, adapt_argv, tmp_path):
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node",
        "2",
        str(REPO / "adapt/ccssl.py"),
        *adapt_argv(out, "--num-epochs", "2", "--round-every", "1", "--adversarial"),
    ]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_"))
    }
    result = subprocess.run(
        cmd, cwd=tmp_path, capture_output=True, text=True, env=env, check=False, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert len((out / "log.txt").read_text().splitlines()) == 3  # rank 0 logs each epoch once
    ckpt = load_checkpoint(out / "checkpoint.pth.tar")
    assert ckpt["epoch"] == 2 and ckpt["adapt"]["adversary"] is not None
    assert not any(k.startswith("module.module.") for k in ckpt["state_dict"])
    # Every target frame was labelled once although each rank predicted only its shard.
    labels = PseudoLabels.load(round_path(out, 1))
    assert len(np.unique(labels.indices)) == len(labels.indices)
    assert np.array_equal(labels.indices, np.arange(len(labels.indices)))
