"""CC-SSL + WS-CDA under torchrun: 2 processes on gloo (CPU), sharded pseudo-labels, one result."""

import numpy as np

from animalpose.adapt.pseudo_label_store import PseudoLabels
from animalpose.adapt.run_settings import round_path
from animalpose.train.checkpoint import load_checkpoint


def test_torchrun_two_processes_adapt_with_both_methods(adapt_argv, run_script, tmp_path):
    out = tmp_path / "ddp"
    argv = adapt_argv(out, "--num-epochs", "2", "--round-every", "1", "--adversarial")
    result = run_script("adapt/ccssl.py", *argv, processes=2, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len((out / "log.txt").read_text().splitlines()) == 3  # rank 0 logs each epoch once
    ckpt = load_checkpoint(out / "checkpoint.pth.tar")
    assert ckpt["epoch"] == 2 and ckpt["adapt"]["adversary"] is not None
    assert not any(k.startswith("module.module.") for k in ckpt["state_dict"])
    # Every target frame was labelled once although each rank predicted only its shard.
    labels = PseudoLabels.load(round_path(out, 1))
    assert len(np.unique(labels.indices)) == len(labels.indices)
    assert np.array_equal(labels.indices, np.arange(len(labels.indices)))
