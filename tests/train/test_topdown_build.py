"""Top-down data in the training build: the data.inp_width / codec / detections settings, the
codec chosen by name (and kept, options and all, by the sigma decay), the top-down dataset
arguments, and a training batch of 128x96 crops; the animal path stays as it was."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from animalpose.datasets.codecs.dark import DarkHeatmap
from animalpose.datasets.codecs.legacy import LegacyHeatmap
from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.codecs.offset import OffsetHeatmap
from animalpose.datasets.codecs.soft_argmax import SoftArgmaxHeatmap
from animalpose.datasets.codecs.udp import UDPHeatmap
from animalpose.datasets.generator.fixtures import make_coco_fixture
from animalpose.datasets.keypoints import ANIMAL18, COCO17
from animalpose.datasets.transforms.topdown import TopDownAugment, TopDownCrop
from animalpose.train.build import (
    build_codec,
    build_training,
    codec_for_epoch,
    dataset_kwargs,
    detection_file,
    heatmap_size,
    input_size,
)
from animalpose.train.config import CODEC_NAMES, Config, ConfigError
from animalpose.train.config_io import apply_overrides, load_config

#: The 128x96 top-down settings of configs/human_cpu.yaml.
TOPDOWN = [
    "data.dataset=coco",
    "data.inp_res=128",
    "data.inp_width=96",
    "data.out_res=32",
    "model.keypoint_spec=coco17",
]


def _cfg(*overrides: str) -> Config:
    return apply_overrides(Config(), list(overrides))


# -- config ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        (["data.inp_width=90", "data.dataset=coco"], "data.inp_width", "is not divisible"),
        (["data.inp_width=-4"], "data.inp_width", ">= 0"),
        (["data.inp_width=192"], "data.inp_width", "non-square input needs a top-down"),
        (["data.detections=auto"], "data.detections", "needs a top-down data set"),
        (["data.codec=udp"], "data.codec", "'udp' needs unit-length crops"),
        (["data.codec=gauss"], "data.codec", "'gauss' is not one of pixel-area, msra, dark"),
        (["data.codec=msra", "data.legacy=true"], "data.codec", "does not combine with"),
        ([*TOPDOWN, "data.legacy=true"], "data.legacy", "do not apply to the top-down"),
        ([*TOPDOWN, "data.occlusion=0.5"], "data.occlusion", "not implemented"),
        ([*TOPDOWN, "data.augment_backend=imgaug"], "data.augment_backend", "TopDownAugment"),
        ([*TOPDOWN, "data.scale_factor=1.0"], "data.scale_factor", "must be < 1"),
        ([*TOPDOWN, "data.det_score=-0.1"], "data.det_score", ">= 0"),
    ],
)
def test_config_refuses(overrides, key, message):
    with pytest.raises(ConfigError, match=message) as err:
        _cfg(*overrides)
    assert err.value.key == key


def test_config_accepts_topdown_settings():
    cfg = _cfg(*TOPDOWN, "data.codec=udp", "data.detections=auto", "data.det_score=0.3")
    assert (cfg.data.codec, cfg.data.detections, cfg.data.det_score) == ("udp", "auto", 0.3)
    assert _cfg("data.inp_width=256").data.inp_width == 256  # a square: fine for animals
    assert _cfg("data.codec=dark").data.codec == "dark"  # DARK on animal crops too


def test_sizes_are_w_h():
    assert (input_size(Config()), heatmap_size(Config())) == ((256, 256), (64, 64))
    cfg = _cfg(*TOPDOWN)
    assert (input_size(cfg), heatmap_size(cfg)) == ((96, 128), (24, 32))
    cfg = _cfg(*TOPDOWN, "data.inp_res=256", "data.inp_width=192", "data.out_res=64")
    assert (input_size(cfg), heatmap_size(cfg)) == ((192, 256), (48, 64))


def test_human_cpu_config_loads(configs_dir):
    cfg = load_config(configs_dir / "human_cpu.yaml")
    assert (cfg.data.dataset, cfg.model.arch, cfg.model.depth) == ("coco", "simple_baseline", 18)
    assert (input_size(cfg), heatmap_size(cfg)) == ((96, 128), (24, 32))
    assert (cfg.data.scale_factor, cfg.data.rot_factor) == (0.35, 45.0)
    assert (cfg.optim.solver, cfg.optim.lr, cfg.model.keypoint_spec) == ("adam", 1e-3, "coco17")


# -- codec -------------------------------------------------------------------------------------
#: data.codec -> (class, attribute values that must survive the sigma decay).
EXPECTED_CODECS = {
    "pixel-area": (MSRAHeatmap, {"convention": "pixel-area"}),
    "msra": (MSRAHeatmap, {"convention": "msra"}),
    "dark": (DarkHeatmap, {"convention": "msra", "blur_kernel": 11}),
    "udp": (UDPHeatmap, {"target": "gaussian", "blur_kernel": 11}),
    "offset": (OffsetHeatmap, {"target": "combined", "radius": 4.5}),
    "soft-argmax": (SoftArgmaxHeatmap, {"convention": "msra", "beta": 160.0}),
}


def test_every_codec_name_is_tested():
    assert sorted(CODEC_NAMES) == sorted(EXPECTED_CODECS)


@pytest.mark.parametrize("name", sorted(EXPECTED_CODECS))
def test_codec_by_name_and_its_sigma_decay(name):
    cls, options = EXPECTED_CODECS[name]
    codec = build_codec(_cfg(*TOPDOWN, f"data.codec={name}", "data.sigma=2.0"))
    assert type(codec) is cls
    assert (codec.input_size, codec.heatmap_size, codec.sigma) == ((96, 128), (24, 32), 2.0)
    assert {k: getattr(codec, k) for k in options} == options
    later = codec_for_epoch(codec, 2, 0.5)
    assert type(later) is cls and later.sigma == pytest.approx(0.5)
    assert {k: getattr(later, k) for k in options} == options
    assert codec.sigma == 2.0  # the run's codec is not changed
    # The decayed codec encodes exactly as one built with that sigma and the same options.
    settings = {k: v for k, v in options.items() if k != "target"}  # OffsetHeatmap's is fixed
    fresh = cls((96, 128), (24, 32), sigma=0.5, **settings)
    keypoints = np.array([[10.3, 20.7], [50.0, 64.2], [95.0, 127.0]])
    visible = np.ones(3)
    for got, want in zip(later.encode(keypoints, visible), fresh.encode(keypoints, visible)):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(ValueError, match="sigma must be positive"):
        codec.with_sigma(0.0)


def test_legacy_codec_keeps_its_type():
    codec = build_codec(_cfg("data.legacy=true", "data.sigma=1.0"))
    assert type(codec) is LegacyHeatmap
    assert type(codec_for_epoch(codec, 3, 0.9)) is LegacyHeatmap


# -- datasets ----------------------------------------------------------------------------------
def test_animal_dataset_kwargs_are_unchanged():
    kw = dataset_kwargs(Config(), ANIMAL18)
    assert set(kw) == {
        "root", "animal", "input_size", "spec", "seed", "scale_factor", "rot_factor",
        "augment_backend", "split_dir", "vertex_table", "legacy", "heatmap_size", "occlusion",
        "occluders", "occluder_frames",
    }  # fmt: skip
    assert kw["input_size"] == 256 and type(kw["input_size"]) is int
    assert repr(build_codec(Config())) == (
        "MSRAHeatmap(input_size=(256, 256), heatmap_size=(64, 64), sigma=1.0)"
    )


@pytest.mark.parametrize(("codec", "unbiased"), [("pixel-area", False), ("udp", True)])
def test_topdown_dataset_kwargs(codec, unbiased):
    cfg = _cfg(*TOPDOWN, f"data.codec={codec}", "data.detections=d.json", "data.det_score=0.2")
    kw = dataset_kwargs(cfg, COCO17)
    assert kw["input_size"] == (96, 128)
    assert (kw["detections"], kw["det_score"], kw["unbiased"]) == ("d.json", 0.2, unbiased)


@pytest.mark.parametrize("codec", ["pixel-area", "udp", "offset"])
def test_training_batch_is_128_by_96(tmp_path, codec):
    make_coco_fixture(tmp_path)
    cfg = _cfg(
        *TOPDOWN,
        f"data.image_path={tmp_path}",
        f"data.codec={codec}",
        "data.sigma=2.0",
        "data.train_batch=3",
        "data.workers=0",
        "model.arch=simple_baseline",
        "model.depth=18",
        "run.device=cpu",
        "run.progress=false",
        f"run.checkpoint={tmp_path / 'run'}",
        "data.detections=auto",
        "data.det_score=0.5",
    )
    parts = build_training(cfg, validation_dataset="coco")
    assert (len(parts.train_set), len(parts.val_set)) == (4, 4)
    # Validation crops the detections beside the annotations, training the ground truth.
    dets = str(tmp_path / "annotations" / "val_detections.json")
    assert detection_file(cfg, "coco", "valid") == dets
    assert (detection_file(cfg, "coco", "train"), detection_file(cfg, "real_animal", "valid")) == (
        None,
        None,
    )
    assert (parts.evaluator.detections, parts.evaluator.det_score) == (dets, 0.5)
    assert (parts.val_set.box_source, parts.train_set.box_source) == ("detections", "ground truth")
    assert isinstance(parts.train_set.augmenter, TopDownAugment)
    assert isinstance(parts.val_set.augmenter, TopDownCrop)
    unbiased = codec in ("udp", "offset")
    assert parts.train_set.augmenter.unbiased is parts.val_set.augmenter.unbiased is unbiased
    np.testing.assert_allclose(parts.normalizer.mean.reshape(-1), [0.485, 0.456, 0.406])
    batch = next(iter(parts.train_loader))
    assert batch["image"].shape == (3, 3, 128, 96) and batch["image"].dtype == torch.uint8
    assert batch["keypoints"].shape == (3, 17, 3)
    heatmaps, weights = parts.codec.encode(batch["keypoints"][..., :2], batch["keypoints"][..., 2])
    channels = 17 * (3 if codec == "offset" else 1)  # G-RMI: disk logits, x and y offsets
    assert heatmaps.shape == (3, channels, 32, 24) and weights.shape == (3, 17)
    parts.model.eval()
    with torch.no_grad():
        out = parts.model(parts.normalize(batch["image"]))
    assert out[-1].shape == heatmaps.shape
    loss = parts.loss_fn(out, heatmaps, weights)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert type(parts.loss_fn).__name__ == (
        "OffsetLoss" if codec == "offset" else "KeypointMSELoss"
    )
