"""A checkpoint saved exactly as the reference's train.py saves it loads into HourglassNet."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from animalpose.train.checkpoint import load_checkpoint, restore_training_state
from animalpose.train.models.hourglass import HourglassNet


@pytest.fixture(scope="module")
def reference_files(tmp_path_factory):
    """A checkpoint saved exactly as the reference's train.py saves it, in both torch formats."""
    torch.manual_seed(0)
    model = nn.DataParallel(HourglassNet())  # the reference wraps; keys gain "module."
    optimizer = torch.optim.RMSprop(model.parameters(), lr=2.5e-4, foreach=False)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    state = {
        "epoch": 7,
        "arch": "hg",
        "state_dict": model.state_dict(),
        "best_acc": torch.tensor(0.5),
        "optimizer": optimizer.state_dict(),
    }
    directory = tmp_path_factory.mktemp("reference")
    zip_path, legacy_path = directory / "x.pth.tar", directory / "legacy.pth.tar"
    torch.save(state, zip_path)
    torch.save(state, legacy_path, _use_new_zipfile_serialization=False)
    return model.module, optimizer, (zip_path, legacy_path)


@pytest.mark.parametrize("which", [0, 1], ids=["zip", "legacy"])
def test_reference_checkpoint_loads_weights_only_and_strict(reference_files, which):
    original, original_optimizer, paths = reference_files
    ckpt = load_checkpoint(paths[which])
    assert all(k.startswith("module.") for k in ckpt["state_dict"])
    model = HourglassNet()
    optimizer = torch.optim.RMSprop(model.parameters(), lr=2.5e-4)
    resume = restore_training_state(ckpt, model=model, optimizer=optimizer)
    assert resume.start_epoch == 7 and resume.best_acc == 0.5
    for (name, ours), theirs in zip(model.state_dict().items(), original.state_dict().values()):
        assert torch.equal(ours, theirs), name
    # The optimizer state maps onto our parameters in the same order.
    params = list(model.parameters())
    for index in (0, len(params) // 2, len(params) - 1):
        ours = optimizer.state[params[index]]["square_avg"]
        theirs = original_optimizer.state[list(original.parameters())[index]]["square_avg"]
        assert ours.shape == params[index].shape and torch.equal(ours, theirs)
