"""``--pretrained``: ImageNet trunk files fill a top-down model's trunk; whole pose checkpoints
load whole (``train.build.load_start_weights``)."""

from __future__ import annotations

import pytest
import torch
import torchvision

from animalpose.datasets.fileio import DataError
from animalpose.train.build import imagenet_trunk_file, load_start_weights
from animalpose.train.config import Config
from animalpose.train.config_io import apply_overrides
from animalpose.train.models.hourglass import HourglassNet
from animalpose.train.models.simple_baseline import SimpleBaseline


def _cfg(path) -> Config:
    return apply_overrides(Config(), [f"run.pretrained={path}"], source="test")


def _small() -> SimpleBaseline:
    torch.manual_seed(0)
    return SimpleBaseline(depth=18, num_keypoints=17, deconv_channels=16)


def test_a_torchvision_resnet_fills_the_trunk_and_leaves_the_head(tmp_path, capsys):
    imagenet = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(imagenet, path)
    model = _small()
    head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("final_layer")}
    assert imagenet_trunk_file(model, str(path))
    load_start_weights(_cfg(path), model)
    state = model.state_dict()
    assert torch.equal(state["layer4.1.conv2.weight"], imagenet["layer4.1.conv2.weight"])
    assert torch.equal(state["conv1.weight"], imagenet["conv1.weight"])
    assert all(torch.equal(state[k], v) for k, v in head.items())  # the pose head is untouched
    out = capsys.readouterr().out
    assert "ImageNet trunk from" in out and str(path) in out


def test_a_whole_checkpoint_of_the_model_loads_whole(tmp_path, capsys):
    trained = _small()
    with torch.no_grad():
        trained.final_layer.weight.fill_(0.5)
    path = tmp_path / "model_best.pth.tar"
    torch.save({"state_dict": trained.state_dict(), "epoch": 3}, path)
    model = SimpleBaseline(depth=18, num_keypoints=17, deconv_channels=16)
    assert not imagenet_trunk_file(model, str(path))
    load_start_weights(_cfg(path), model)
    assert torch.equal(model.final_layer.weight, trained.final_layer.weight)
    assert "initial weights from" in capsys.readouterr().out


def test_hourglasses_have_no_imagenet_trunk(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    model = HourglassNet(num_stacks=1, num_keypoints=3, channels=16)
    assert not imagenet_trunk_file(model, str(path))  # loads (and fails) as a whole model
    with pytest.raises(DataError, match="resnet18.pth"):
        load_start_weights(_cfg(path), model)


def test_an_unreadable_file_is_named(tmp_path):
    path = tmp_path / "junk.pth"
    torch.save({"epoch": 1}, path)
    with pytest.raises(DataError, match="junk.pth"):
        imagenet_trunk_file(_small(), str(path))
