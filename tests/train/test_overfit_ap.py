"""Issue 14's "Done when" for every seed method: a tiny overfit whose OKS AP on the fitted images,
scored by the toolkit's real evaluation path, reaches ~1.0.

Each case parses the training command line into a ``Config`` (``flag_parser.parse_config``, as
train/train.py and evaluation/test.py do) and takes everything from ``train/build.py``:
``build_evaluator`` gives the model (``build_network``), codec (``build_codec``), loss
(``build_loss``: heatmap MSE with ``--ohkm-topk``, G-RMI's own loss, or ``AELoss``) and the
un-augmented ``data.eval_split`` of a COCO-layout fixture (top-down ``TopDownCrop`` crops of the
ground-truth boxes, or whole images for ``coco_bottomup``); ``build_optimizer`` and
``build_scheduler`` the Adam steps. The one batch of every sample of that split is fitted with the
trainer's targets (``Trainer.prepare``: the codec's encoding, MSPN's per-stage sigmas through
``stage_targets``; ``BottomUpTrainer.prepare``: ``bottomup_targets``), then the same evaluator
scores the same split: model in eval mode, COCOeval OKS AP (rescoring and OKS-NMS top-down,
grouping bottom-up).

The fixture (``make_coco_fixture(scale=2, markers=True)``): 80 x 80 person boxes on noise with a
coloured disk on every keypoint. COCO's OKS scale is the box area, s = 80 px, so a nose or an eye
(k = 2 x 0.025) keeps OKS 0.97 at 1 px of error and 0.61 at 4 px; the top-down crops are 96 x 128
(w x h) around 100 x 133 image pixels, so one heatmap pixel (24 x 32) is 4.2 image pixels and
the decoding must be sub-pixel. A shift of one heatmap pixel of every fitted prediction scores
below the 0.9 asserted (checked), as does the untrained model.

BatchNorm: after the fit the running statistics are recomputed over the fitted batch
(``recompute_batchnorm``, "precise BN"): eval-mode BN then normalises with the statistics the
weights were fitted under. The momentum-0.1 running averages trail weights that still move; after
100 steps they cost LPN a third of its AP (0.65 against 1.0).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from animalpose.datasets.generator.fixtures import make_coco_fixture
from animalpose.datasets.transforms.bottomup import bottomup_targets
from animalpose.evaluation.evaluator import OksTarget, keypoint_results
from animalpose.evaluation.oks import run_keypoint_eval
from animalpose.train.build import build_evaluator, build_optimizer, build_scheduler
from animalpose.train.checkpoint import unwrap_model
from animalpose.train.config import Config
from animalpose.train.flag_parser import parse_config
from animalpose.train.trainer import stage_targets

#: COCOeval AP the fitted images must reach (issue 14: "AP on the fitted images reaches ~1.0").
FITTED_AP = 0.9
#: AP the untrained model must stay under: the evaluation is not trivially high.
UNTRAINED_AP = 0.5
#: Images of the fixture split, people on each (4 top-down crops; 2 people per bottom-up image).
IMAGES, PEOPLE = 2, 2
#: Adam steps on the fixed batch (``METHODS`` gives more to the methods that fit slower); the LR
#: drops by ``LR_GAMMA`` for the last ``LR_FINAL`` steps.
STEPS, LR_FINAL, LR_GAMMA = 100, 20, 0.1
#: Top-down flags: 96 x 128 crops, 24 x 32 heatmaps of sigma 2, one batch of every crop.
TOPDOWN = (
    *("--dataset", "coco", "--keypoint-spec", "coco17", "--inp-res", "128", "--inp-width", "96"),
    *("--out-res", "32", "--sigma", "2", "--test-batch", str(IMAGES * PEOPLE)),
)
#: Method -> (its flags, Adam steps): tests/train/test_seed_methods_cli.py's sizes, HRNet at
#: width 16 (W8 stalls near loss 2e-3, AP 0.8, in 100 steps), the codec each fits with.
METHODS = {
    "simple_baseline": (("-a", "simple_baseline", "--depth", "18", "--codec", "msra"), STEPS),
    "hrnet": (("-a", "hrnet", "--width", "16", "--codec", "msra"), 150),
    "cpn": (("-a", "cpn", "--depth", "18", "--channels", "16", "--ohkm-topk", "8"), 150),
    "mspn": (("-a", "mspn", "--stacks", "2", "--depth", "18", "--channels", "16"), STEPS),
    "rsn": (("-a", "rsn", "--stacks", "1", "--depth", "18", "--channels", "16"), 150),
    "lpn": (("-a", "lpn", "--depth", "50", "--codec", "soft-argmax"), STEPS),
    "grmi": (("-a", "simple_baseline", "--depth", "18", "--codec", "offset"), STEPS),
}
#: Bottom-up flags (Associative Embedding on HRNet-W16): whole 160 x 120 images on a 256 x 256
#: input, 64 x 64 heatmaps (2.5 image pixels each), fitted for ``BOTTOMUP_STEPS``. Under-fitted
#: maps group badly: the tag loss trains the tags at the labelled cells only, so a heatmap peak
#: one cell off reads an untrained tag (0.57 from its person's there) and weak spurious peaks
#: (0.1 - 0.3, random tags) pass the 0.1 detection threshold; grouping then splits a person in
#: two and takes wrong keypoints. W8 stalls near loss 1.2e-3 (a third of the peaks on their cell;
#: AP 0.63 in 100 steps, 0.52 in 200), W16 reaches 4e-4 in 100 steps (AP 0.84), 1.7e-4 in 150
#: (AP 0.95; 6 people on the 2 images, 4 annotated). LR 2e-3 diverges (W16, 100 steps: AP 0.12).
BOTTOMUP = (
    *("--dataset", "coco_bottomup", "--keypoint-spec", "coco17", "--inp-res", "256"),
    *("--out-res", "64", "--sigma", "2", "--test-batch", str(IMAGES)),
    *("-a", "associative", "--width", "16"),
)
#: Adam steps of the bottom-up fit (W16 reaches AP 0.84 in 100, 0.90 in 120, 0.95 in 150).
BOTTOMUP_STEPS = 150


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread (restored after the module), as tests/train/models/test_hrnet.py:
    deterministic sums, and small convs on 2 shared cores run faster without thread hand-offs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> Path:
    """The fitted and evaluated split: ``val`` of the scale-2 fixture with keypoint markers."""
    root = tmp_path_factory.mktemp("overfit_people")
    make_coco_fixture(root, splits=("val",), scale=2, images=IMAGES, people=PEOPLE, markers=True)
    return root


@pytest.fixture(scope="module")
def small_people(tmp_path_factory) -> Path:
    """The bottom-up split: scale 1 (160 x 120 images) so that a 256 input holds a whole one."""
    root = tmp_path_factory.mktemp("overfit_people_bottomup")
    make_coco_fixture(root, splits=("val",), scale=1, images=IMAGES, people=PEOPLE, markers=True)
    return root


def overfit_config(root: Path, flags: tuple[str, ...], out: Path, steps: int) -> Config:
    """The run's ``Config`` from training flags, as train.py parses them: ``flags`` on ``root``'s
    valid split, CPU, seed 0, Adam at 1e-3 for ``steps`` steps (``optim.epochs``; one scheduler
    step per optimiser step), times ``LR_GAMMA`` for the last ``LR_FINAL``."""
    cfg, _ = parse_config(
        [
            *flags,
            *("--image-path", str(root), "--eval-split", "valid", "-c", str(out)),
            *("--workers", "0", "--device", "cpu", "--no-progress", "--seed", "0"),
            *("--solver", "adam", "--lr", "1e-3", "--epochs", str(steps)),
            *("--schedule", str(steps - LR_FINAL), "--gamma", str(LR_GAMMA)),
        ]
    )
    return cfg


def recompute_batchnorm(model: nn.Module, x: torch.Tensor) -> None:
    """Set every BatchNorm's running mean and variance to the statistics of one train-mode
    forward of ``x`` (a cumulative average over one batch: the batch's own), leaving the weights
    and the layers' momentum as they were."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        model(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def fit(cfg: Config, evaluator, targets) -> tuple[float, float]:
    """``cfg.optim.epochs`` Adam steps of ``evaluator.model`` on the evaluator's one batch, then
    ``recompute_batchnorm``; ``targets(batch)`` -> the loss's arguments after the outputs.
    Returns (first loss, last loss)."""
    model, loss_fn = evaluator.model, evaluator.loss_fn
    (batch,) = list(evaluator.loader)  # every sample of the split, dataset order
    x = evaluator.normalizer(batch["image"].to(evaluator.device))
    args = targets(batch)
    optimizer = build_optimizer(cfg, model.parameters())
    scheduler = build_scheduler(cfg, optimizer)
    torch.manual_seed(cfg.run.seed)
    model.train()
    losses = []
    for _ in range(cfg.optim.epochs):
        loss = loss_fn(model(x), *args)
        loss = loss[0] if isinstance(loss, tuple) else loss  # AELoss: (total, terms)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(loss.item())
    recompute_batchnorm(model, x)
    return losses[0], losses[-1]


def topdown_targets(evaluator):
    """``Trainer.prepare``'s targets of a top-down batch: the codec's heatmaps (one per output
    with the model's ``stage_sigma_scales``) and (B, K) weights."""
    codec = evaluator.codec

    def targets(batch: dict) -> tuple:
        keypoints = batch["keypoints"].to(evaluator.device).float()
        xy, visible = keypoints[..., :2], keypoints[..., 2]
        heatmaps, weights = codec.encode(xy, visible)
        scales = getattr(unwrap_model(evaluator.model), "stage_sigma_scales", None)
        if scales:
            heatmaps = stage_targets(codec, scales, xy, visible, heatmaps)
        return heatmaps, weights

    return targets


def shifted_ap(evaluator, val, shift: tuple[float, float]) -> float:
    """COCOeval AP of ``val``'s rows with every prediction moved by ``shift`` (x, y) image pixels,
    through the evaluator's own post-processing (``keypoint_results``: rescoring, OKS-NMS)."""
    target = evaluator.oks_target()
    assert isinstance(target, OksTarget)
    moved = dataclasses.replace(val, preds=val.preds + np.asarray(shift))
    results = keypoint_results(moved, target)
    return run_keypoint_eval(target.gt, results, sigmas=target.sigmas).stats["AP"]


@pytest.mark.slow
@pytest.mark.parametrize("method", sorted(METHODS))
def test_topdown_method_overfits_to_ap_near_one(method, people, tmp_path):
    start = time.perf_counter()
    flags, steps = METHODS[method]
    cfg = overfit_config(people, (*TOPDOWN, *flags), tmp_path / method, steps)
    evaluator = build_evaluator(cfg)
    assert evaluator.topdown and evaluator.box_source() == "ground-truth boxes"
    assert len(evaluator.dataset) == IMAGES * PEOPLE and not evaluator.flip
    untrained = evaluator.evaluate().oks["AP"]
    first, last = fit(cfg, evaluator, topdown_targets(evaluator))
    val = evaluator.evaluate()
    ap = val.oks["AP"]
    (w, h), (w_hm, _) = evaluator.codec.input_size, evaluator.codec.heatmap_size
    pixel = float(val.areas[0] * w / h) ** 0.5 / w_hm  # a heatmap pixel in image pixels
    moved = shifted_ap(evaluator, val, (pixel, 0.0))
    print(
        f"{method}: AP {ap:.3f} (untrained {untrained:.3f}, shifted {pixel:.1f} px {moved:.3f}); "
        f"loss {first:.3g} -> {last:.3g}; {time.perf_counter() - start:.0f} s"
    )
    assert last < first / 4  # the push and pull terms stay well above 0
    assert untrained < UNTRAINED_AP
    assert ap >= FITTED_AP
    assert moved < FITTED_AP <= ap


@pytest.mark.slow
def test_associative_embedding_overfits_to_ap_near_one(small_people, tmp_path):
    start = time.perf_counter()
    cfg = overfit_config(small_people, BOTTOMUP, tmp_path / "associative", BOTTOMUP_STEPS)
    evaluator = build_evaluator(cfg)
    assert len(evaluator.dataset) == IMAGES
    untrained = evaluator.evaluate().oks["AP"]

    def targets(batch: dict) -> tuple:
        t = bottomup_targets(evaluator.codec, batch["keypoints"].to(evaluator.device).float())
        return t.heatmaps, t.weights, t.cells, t.visible

    first, last = fit(cfg, evaluator, targets)
    val = evaluator.evaluate()
    ap = val.oks["AP"]
    print(
        f"associative: AP {ap:.3f} (untrained {untrained:.3f}); {len(val.preds)} people; "
        f"loss {first:.3g} -> {last:.3g}; {time.perf_counter() - start:.0f} s"
    )
    assert last < first / 4  # the push and pull terms stay well above 0
    assert untrained < UNTRAINED_AP
    assert ap >= FITTED_AP
