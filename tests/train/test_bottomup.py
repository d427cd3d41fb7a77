"""Bottom-up AE training (train/bottomup.py) and its dispatch (build.py, cli.py): the config
checks, what a bottom-up run is built of, a training step on whole images, HigherHRNet's second
head trained on its own stride-2 targets with the loss masks, and a tiny fit through
train/train.py then evaluation/test.py that prints the OKS AP table."""

from __future__ import annotations

import json

import pytest
import torch

from animalpose.datasets.generator.fixtures import make_coco_fixture
from animalpose.evaluation.bottomup import BOX_SOURCE, BottomUpEvaluator
from animalpose.train import cli
from animalpose.train.ae_loss import AELoss
from animalpose.train.bottomup import BottomUpTrainer, check_bottomup
from animalpose.train.build import build_training
from animalpose.train.config import Config, ConfigError
from animalpose.train.config_io import apply_overrides
from animalpose.train.models.associative import HigherHRNet
from animalpose.train.trainer import Trainer

#: A tiny bottom-up run: 64 px whole images, 16 px heatmaps, an HRNet-W4 associative model.
TINY = (
    *("--dataset", "coco_bottomup", "-a", "associative", "--width", "4"),
    *("--keypoint-spec", "coco17", "--inp-res", "64", "--out-res", "16", "--sigma", "2"),
    *("--train-batch", "2", "--test-batch", "2", "--workers", "0", "--epochs", "1"),
    *("--device", "cpu", "--no-progress", "--solver", "adam", "--lr", "1e-3"),
)
SETTINGS = (
    "data.dataset=coco_bottomup", "model.arch=associative", "model.width=4",
    "model.keypoint_spec=coco17", "data.inp_res=64", "data.out_res=16", "data.sigma=2.0",
    "data.train_batch=2", "data.workers=0", "run.device=cpu", "run.progress=false",
    "optim.solver=adam", "optim.lr=1e-3",
)  # fmt: skip


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    make_coco_fixture(root, images=2)
    return root


def config(*overrides: str) -> Config:
    return apply_overrides(Config(), [*SETTINGS, *overrides])


@pytest.mark.parametrize(
    ("overrides", "key", "message"),
    [
        (["model.arch=hrnet"], "model.arch", "needs a model that predicts tags"),
        (["data.dataset=coco"], "model.arch", "train it on a bottom-up data set"),
        (["data.inp_res=80", "data.out_res=20"], "data.inp_res", "divides by 32"),
        (["data.out_res=32"], "data.out_res", "--out-res 16 for --inp-res 64"),
    ],
)
def test_configs_that_cannot_work_are_refused(overrides, key, message):
    with pytest.raises(ConfigError, match=message) as info:
        check_bottomup(config(*overrides))
    assert info.value.key == key
    check_bottomup(config())  # the tiny run itself is fine
    check_bottomup(apply_overrides(Config(), ["data.dataset=coco", "model.arch=hrnet"]))


@pytest.mark.parametrize(
    ("override", "key"),
    [("run.test_scales=[0.5, 1.0]", "run.test_scales"), ("run.project_to_input=true", None)],
)
def test_bottom_up_test_options_are_refused_for_top_down_data(override, key):
    topdown = ["data.dataset=coco", "model.arch=hrnet"]
    with pytest.raises(ConfigError, match="apply to bottom-up data sets") as info:
        check_bottomup(apply_overrides(Config(), [*topdown, override]))
    assert info.value.key == (key or "run.project_to_input")
    check_bottomup(config(override))  # bottom-up: taken


def test_the_trainer_is_picked_by_the_data_set():
    assert cli.select_trainer(config(), multitask=False) is BottomUpTrainer
    assert cli.select_trainer(Config(), multitask=False) is Trainer


def test_a_bottom_up_run_builds_the_ae_loss_and_the_grouping_evaluator(people, tmp_path):
    cfg = config(f"data.image_path={people}", f"run.checkpoint={tmp_path}")
    parts = build_training(cfg, validation_dataset="coco_bottomup")
    assert isinstance(parts.loss_fn, AELoss)
    assert isinstance(parts.evaluator, BottomUpEvaluator)
    assert parts.evaluator.box_source() == BOX_SOURCE
    assert (len(parts.train_set), len(parts.val_set)) == (2, 2)
    batch = next(iter(parts.train_loader))
    assert batch["keypoints"].shape == (2, 30, 17, 3)
    with torch.no_grad():
        out = parts.model(parts.normalize(batch["image"]))
    assert [tuple(o.shape) for o in out] == [(2, 34, 16, 16)]  # K heatmaps + K tags


def test_training_steps_fit_one_batch(people, tmp_path):
    """Steps on one fixed batch of whole images: the AE loss (heatmaps + pull + push) falls,
    its parts are kept for TensorBoard, and train_epoch's accuracy reads heatmaps only."""
    torch.manual_seed(0)
    trainer = BottomUpTrainer(config(f"data.image_path={people}", f"run.checkpoint={tmp_path}"))
    batch = next(iter(trainer.train_loader))
    losses = []
    for _ in range(12):
        loss, outputs, heatmaps = trainer.step(batch, trainer.codec)
        losses.append(float(loss))
    assert losses[-1] < 0.5 * losses[0]
    assert set(trainer.loss_terms) == {"heatmap", "push", "pull"}
    total = sum(float(v) for v in trainer.loss_terms.values())
    assert total == pytest.approx(losses[-1], rel=1e-5)
    assert outputs[0].shape == heatmaps.shape == (2, 17, 16, 16)
    assert heatmaps.amax() == 1.0  # the per-type maximum of peak-1 Gaussians


def test_train_then_evaluate_through_both_entry_points(people, tmp_path, capsys):
    run = tmp_path / "run"
    flags = (*TINY, "--image-path", str(people))
    assert cli.train_main([*flags, "-c", str(run)]) == 0
    text = capsys.readouterr().out
    assert "coco_bottomup (bottom-up): 2 train / 2 valid images" in text
    assert f"({BOX_SOURCE})" in text  # the epoch line's AP
    assert (run / "model_best.pth.tar").is_file()
    out = tmp_path / "eval"
    argv = [*flags, "--evaluate", "--resume", str(run / "model_best.pth.tar"), "-c", str(out)]
    assert cli.test_main([*argv, "--flip"]) == 0
    text = capsys.readouterr().out
    assert f"OKS AP {BOX_SOURCE}" in text and "AP50" in text
    scores = json.loads((out / "oks_results.json").read_text())
    assert 0.0 <= scores["AP"] <= 1.0 and scores["boxes"] == BOX_SOURCE
    assert scores["flip_test"] is True and scores["spec"] == "coco17"
    results = json.loads((out / "keypoints_valid_results.json").read_text())
    assert isinstance(results, list)


def test_higher_hrnet_trains_and_evaluates_multi_scale_at_input_resolution(people, tmp_path):
    """``-a higher_hrnet`` through both entry points, evaluated at test scales 0.5 and 1 with
    grouping on maps resized to the input: the saved config and the AP file say so."""
    run = tmp_path / "run"
    flags = (*TINY, "--image-path", str(people))
    flags = tuple("higher_hrnet" if f == "associative" else f for f in flags)
    assert cli.train_main([*flags, "-c", str(run)]) == 0
    out = tmp_path / "eval"
    argv = [*flags, "--evaluate", "--resume", str(run / "model_best.pth.tar"), "-c", str(out)]
    assert cli.test_main([*argv, "--test-scales", "0.5", "1", "--project-to-input"]) == 0
    scores = json.loads((out / "oks_results.json").read_text())
    assert scores["project_to_input"] is True and 0.0 <= scores["AP"] <= 1.0
    saved = (run / "config.yaml").read_text()
    assert "arch: higher_hrnet" in saved and "test_scales:\n  - 1.0" in saved


def higher_trainer(people, tmp_path) -> BottomUpTrainer:
    """The tiny run's trainer with HigherHRNet's model in place of the associative one."""
    torch.manual_seed(0)
    trainer = BottomUpTrainer(config(f"data.image_path={people}", f"run.checkpoint={tmp_path}"))
    assert trainer.heatmap_sizes(trainer.codec) == [(16, 16)]
    model = HigherHRNet(num_keypoints=17, width=4, stem_channels=8)
    trainer.model = trainer.net = model
    trainer.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    return trainer


def test_higher_hrnet_batches_get_targets_and_masks_at_both_strides(people, tmp_path):
    """With HigherHRNet's model the batch's targets come at 16 and 32 px (the model's strides 4
    and 2) with the loss mask at both; a batch wholly masked out has a heatmap loss of exactly
    0 whatever the prediction, its tag loss untouched."""
    trainer = higher_trainer(people, tmp_path)
    assert trainer.heatmap_sizes(trainer.codec) == [(16, 16), (32, 32)]
    batch = next(iter(trainer.train_loader))
    assert batch["mask"].shape == (2, 64, 64)
    _, targets = trainer.prepare(batch, trainer.codec)
    assert [tuple(t.shape) for t in targets.heatmaps_per_output] == [
        (2, 17, 16, 16),
        (2, 17, 32, 32),
    ]
    assert [tuple(w.shape) for w in targets.weights_per_output] == [(2, 16, 16), (2, 32, 32)]
    assert targets.higher_heatmaps[0].amax() == 1.0  # Gaussians at stride 2 too
    assert all(w.all() for w in targets.weights_per_output)  # no crowd in the fixture
    outputs = [torch.rand(2, 34, 16, 16), torch.rand(2, 17, 32, 32)]
    cells, visible = targets.cells, targets.visible
    _, terms = trainer.loss_fn(
        outputs, targets.heatmaps_per_output, targets.weights_per_output, cells, visible
    )
    batch["mask"] = torch.zeros_like(batch["mask"])
    _, masked = trainer.prepare(batch, trainer.codec)
    _, masked_terms = trainer.loss_fn(
        outputs, masked.heatmaps_per_output, masked.weights_per_output, cells, visible
    )
    assert terms["heatmap"] > 0 and masked_terms["heatmap"].item() == 0.0
    assert torch.equal(masked_terms["pull"], terms["pull"])


@pytest.mark.slow
def test_higher_hrnet_steps_train_its_second_head(people, tmp_path):
    """A training step of HigherHRNet through the trainer reaches its stride-2 head and the
    deconvolution module."""
    trainer = higher_trainer(people, tmp_path)
    batch = next(iter(trainer.train_loader))
    loss, outputs, heatmaps = trainer.step(batch, trainer.codec)
    assert torch.isfinite(loss) and outputs[0].shape == heatmaps.shape == (2, 17, 16, 16)
    model = trainer.model
    assert model.final_layers[1].weight.grad.abs().sum() > 0
    assert model.deconv_layers[0][0][0].weight.grad.abs().sum() > 0
