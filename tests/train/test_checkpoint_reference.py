"""A checkpoint saved exactly as the reference's train.py saves it (its five keys, a
``module.``-prefixed state_dict, ``.pth.tar``, zip and legacy torch formats) loads with
``weights_only`` and ``strict=True`` into HourglassNet and predicts what the saved model did."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from animalpose.datasets.fileio import DataError
from animalpose.train.checkpoint import (
    REFERENCE_KEYS,
    load_checkpoint,
    load_model_weights,
    restore_training_state,
)
from animalpose.train.models import build_model
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
    raw = torch.load(paths[which], map_location="cpu", weights_only=True)
    assert tuple(raw) == REFERENCE_KEYS
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


def test_reference_checkpoint_predicts_what_the_saved_model_did(reference_files):
    """The legacy (pre-1.6) torch format the reference wrote; both formats hold equal weights."""
    original, _, paths = reference_files
    model = build_model("hg", num_stacks=4, num_blocks=1, num_keypoints=18, channels=256)
    load_model_weights(model, paths[1], strict=True)
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    original.eval(), model.eval()
    with torch.no_grad():
        expected, got = original(x), model(x)
    assert len(got) == len(expected) == 4
    for stack, (a, b) in enumerate(zip(got, expected)):
        assert torch.equal(a, b), f"stack {stack}"


def test_reference_checkpoint_refuses_another_architecture(reference_files):
    _, _, paths = reference_files
    with pytest.raises(DataError, match="shape mismatches") as info:
        load_model_weights(HourglassNet(num_stacks=4, num_keypoints=17), paths[0])
    assert str(paths[0]) in str(info.value)
    with pytest.raises(DataError, match="unexpected keys"):
        load_model_weights(HourglassNet(num_stacks=2), paths[0])
