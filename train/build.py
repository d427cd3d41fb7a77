"""The one place that turns a resolved ``Config`` into objects.

Device and seeding, datasets and loaders, normaliser, heatmap codec (and its per-epoch sigma),
model, loss (the codec's own, else heatmap MSE with ``optim.ohkm_topk``), optimiser, LR schedule
and start weights: ``build_training`` assembles what ``Trainer`` trains with, ``build_evaluator``
an ``Evaluator`` of ``data.eval_split``. Objects are built in a fixed order after
``torch.manual_seed(run.seed)``, so runs are reproducible.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from animalpose.datasets.codecs import registry as codecs
from animalpose.datasets.codecs.registry import CODECS_NEEDING_UNBIASED_CROPS, Codec
from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.base import KeypointDataset
from animalpose.datasets.formats.registry import (
    build_dataset,
    coco_paths,
    dataset_mean_std,
    detections_path,
    is_bottomup,
    is_topdown,
)
from animalpose.datasets.keypoints import KeypointSpec, get_spec
from animalpose.datasets.transforms.normalize import Normalizer
from animalpose.evaluation.bottomup import BottomUpEvaluator
from animalpose.evaluation.evaluator import Evaluator
from animalpose.train.ae_loss import AELoss
from animalpose.train.checkpoint import (
    ResumeState,
    load_checkpoint,
    load_model_weights,
    model_state_from_checkpoint,
    restore_training_state,
    unwrap_model,
)
from animalpose.train.config import Config, ConfigError
from animalpose.train.device import memory_format, setup_device, use_amp
from animalpose.train.loaders import distributed_info, make_loader
from animalpose.train.loss import KeypointMSELoss
from animalpose.train.models import build_model, describe_model
from animalpose.train.models.pretrained import load_trunk_weights

__all__ = [
    "TrainingParts",
    "build_codec",
    "build_evaluator",
    "build_loss",
    "build_network",
    "build_normalizer",
    "build_optimizer",
    "build_scheduler",
    "build_training",
    "codec_for_epoch",
    "detection_file",
    "dataset_kwargs",
    "eval_loader",
    "heatmap_size",
    "input_size",
    "load_start_weights",
    "model_description",
    "model_input",
    "wrap_for_training",
]

#: The split that validates (selects) models during training, whatever ``data.eval_split`` says.
VALIDATION_SPLIT = "valid"
#: The reference's RMSprop: torch's default alpha and eps (its train.py passes neither).
RMSPROP_ALPHA = 0.99
RMSPROP_EPS = 1e-8


# -- sizes -----------------------------------------------------------------------------------
def input_size(cfg: Config) -> tuple[int, int]:
    """(w, h) of the model input: ``(data.inp_width or data.inp_res, data.inp_res)``."""
    d = cfg.data
    return d.inp_width or d.inp_res, d.inp_res


def heatmap_size(cfg: Config) -> tuple[int, int]:
    """(w, h) of the heatmaps: the input size times ``data.out_res / data.inp_res`` (whole
    numbers: ``DataConfig.check``)."""
    d = cfg.data
    w, h = input_size(cfg)
    return w * d.out_res // d.inp_res, d.out_res


# -- data ------------------------------------------------------------------------------------
def dataset_kwargs(cfg: Config, spec: KeypointSpec) -> dict[str, Any]:
    """The keyword arguments every dataset of this run is built with (``build_dataset``):
    the animal data sets' square side ``data.inp_res`` as an int; a top-down data set's (w, h)
    ``input_size``, detection boxes and (for UDP) unit-length crops."""
    d = cfg.data
    topdown = is_topdown(d.dataset)
    kw = dict(
        root=d.image_path,
        animal=d.animal,
        input_size=input_size(cfg) if topdown else d.inp_res,
        spec=spec,
        seed=d.seed,
        scale_factor=d.scale_factor,
        rot_factor=d.rot_factor,
        augment_backend=d.augment_backend,
        split_dir=d.split_dir or None,
        vertex_table=d.vertex_table or None,
        legacy=d.legacy,
        heatmap_size=d.out_res,
    )
    if topdown:
        kw.update(
            detections=d.detections,
            det_score=d.det_score,
            unbiased=d.codec in CODECS_NEEDING_UNBIASED_CROPS,
        )
    frames = occluder_frames(cfg, kw)
    return {**kw, "occlusion": d.occlusion, "occluders": d.occluders, "occluder_frames": frames}


#: How many target train frames texture the occluders with ``data.occluder_source: target``.
OCCLUDER_FRAMES = 200


def occluder_frames(cfg: Config, kw: dict[str, Any]) -> tuple[str, ...]:
    """Image files of up to ``OCCLUDER_FRAMES`` target train frames (evenly spaced; never valid
    or test frames) when occluders take target textures, else (). ``kw``: the run's dataset
    keyword arguments without the occlusion ones."""
    d = cfg.data
    if d.occlusion <= 0 or d.occluder_source != "target":
        return ()
    frames = build_dataset("real_animal", split="train", augment=False, **kw)
    picks = np.unique(np.linspace(0, len(frames) - 1, min(OCCLUDER_FRAMES, len(frames))).round())
    return tuple(str(frames.image_path(int(i))) for i in picks)


def detection_file(cfg: Config, name: str, split: str) -> str | None:
    """The detection results file whose boxes data set ``name``'s ``split`` crops
    (``data.detections`` resolved, ``auto`` included: ``registry.detections_path``), or None
    for ground-truth boxes (animal data, the train split, or no ``data.detections``)."""
    d = cfg.data
    if not d.detections or split == "train" or not is_topdown(name):
        return None
    return str(detections_path(coco_paths(d.image_path, split), d.detections))


def build_normalizer(cfg: Config) -> Normalizer:
    """The input normaliser: the training set's mean/std (or the reference's legacy input)."""
    d = cfg.data
    mean, std = dataset_mean_std(
        d.dataset,
        root=d.image_path,
        animal=d.animal,
        split_dir=d.split_dir or None,
        vertex_table=d.vertex_table or None,
        seed=d.seed,
    )
    return Normalizer(mean, std, legacy=d.legacy_input or d.legacy, prescaled=d.legacy)


def eval_loader(
    cfg: Config, dataset: KeypointDataset, device: torch.device
) -> torch.utils.data.DataLoader:
    """Dataset order, every rank the whole set (evaluation runs on rank 0)."""
    d = cfg.data
    return make_loader(
        dataset,
        batch_size=d.test_batch,
        shuffle=False,
        workers=d.workers,
        seed=d.seed,
        device=device,
        shard=False,
    )


# -- codec -----------------------------------------------------------------------------------
def build_codec(cfg: Config) -> Codec:
    """The run's heatmap codec ``data.codec`` (``datasets/codecs/registry.py``) for
    ``input_size(cfg)`` crops, ``heatmap_size(cfg)`` heatmaps and ``data.sigma``;
    ``LegacyHeatmap`` (the reference's targets) with ``data.legacy``."""
    d = cfg.data
    return codecs.build_codec(
        d.codec, input_size(cfg), heatmap_size(cfg), sigma=d.sigma, legacy=d.legacy
    )


def codec_for_epoch(codec: Codec, epoch: int, sigma_decay: float) -> Codec:
    """``data.sigma_decay``: the codec of 0-based ``epoch`` is ``codec`` with sigma
    ``codec.sigma * sigma_decay ** epoch`` (``with_sigma``: same class, sizes and options); with
    ``sigma_decay`` 0 it is ``codec`` at every epoch."""
    if sigma_decay <= 0:
        return codec
    return codec.with_sigma(codec.sigma * sigma_decay**epoch)


# -- model, loss and optimisation ------------------------------------------------------------
def build_network(cfg: Config, spec: KeypointSpec, device: torch.device) -> nn.Module:
    """``model.arch`` from the registry, on ``device`` in the run's memory format, with the
    output channels the codec reads: ``channels_per_keypoint`` per keypoint (3 for G-RMI's disk
    + offsets, ``data.codec offset``; else one heatmap)."""
    per_keypoint = int(getattr(build_codec(cfg), "channels_per_keypoint", 1))
    model = build_model(
        cfg.model.arch,
        num_stacks=cfg.model.stacks,
        num_blocks=cfg.model.blocks,
        num_keypoints=spec.num_keypoints * per_keypoint,
        channels=cfg.model.channels,
        depth=cfg.model.depth,
        width=cfg.model.width,
        attention=cfg.model.attention,
    ).to(device)
    return model.to(memory_format=memory_format(cfg))


def model_description(cfg: Config) -> str:
    """The run's model with the sizes its architecture reads, for reports: e.g. "hg (1 stacks,
    1 blocks, 64 channels)", "simple_baseline (ResNet depth 18)"."""
    m = cfg.model
    return describe_model(
        m.arch,
        num_stacks=m.stacks,
        num_blocks=m.blocks,
        channels=m.channels,
        depth=m.depth,
        width=m.width,
        attention=m.attention,
    )


def build_loss(cfg: Config, codec: Codec, model: nn.Module) -> nn.Module:
    """The training (and validation) loss, ``loss(outputs, heatmaps, weights)`` -> 0-d float32:
    ``codec.make_loss()`` for a codec whose targets need their own loss (G-RMI offsets), else
    ``KeypointMSELoss`` with ``optim.ohkm_topk`` on the outputs the model's ``ohkm_stages``
    names (CPN: "last"; absent: "all"). A bottom-up data set trains ``AELoss`` (heatmaps and
    tags: ``loss(outputs, heatmaps, weights, cells, visible) -> (total, terms)``).

    Raises:
        ConfigError: ``optim.ohkm_topk`` > 0 with a codec that brings its own loss.
    """
    if is_bottomup(cfg.data.dataset):
        return AELoss()
    make_loss = getattr(codec, "make_loss", None)
    topk = cfg.optim.ohkm_topk
    if make_loss is not None:
        if topk > 0:
            raise ConfigError(
                f"--ohkm-topk {topk} mines heatmap MSE losses, but codec {cfg.data.codec!r} "
                "trains with its own loss: leave it 0 with this codec",
                key="optim.ohkm_topk",
            )
        return make_loss()
    stages = getattr(unwrap_model(model), "ohkm_stages", "all")
    return KeypointMSELoss(ohkm_topk=topk, ohkm_stages=stages)


def model_input(
    normalizer: Normalizer, fmt: torch.memory_format
) -> Callable[[torch.Tensor], torch.Tensor]:
    """uint8 (B, 3, H, W) on the device -> the model's normalised input in memory format ``fmt``."""

    def normalize(images: torch.Tensor) -> torch.Tensor:
        return normalizer(images).contiguous(memory_format=fmt)

    return normalize


def build_optimizer(cfg: Config, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
    """The reference's optimisers: RMSprop (alpha 0.99, eps 1e-8) or Adam."""
    o = cfg.optim
    if o.solver == "rms":
        return torch.optim.RMSprop(
            params,
            lr=o.lr,
            alpha=RMSPROP_ALPHA,
            eps=RMSPROP_EPS,
            momentum=o.momentum,
            weight_decay=o.weight_decay,
        )
    if o.solver == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    raise ValueError(f"unknown solver {o.solver!r}; valid: ['rms', 'adam']")


def build_scheduler(cfg: Config, optimizer: torch.optim.Optimizer):
    """Step decay: the LR is multiplied by ``optim.gamma`` at each ``optim.schedule`` epoch."""
    return torch.optim.lr_scheduler.MultiStepLR(
        optimizer, milestones=list(cfg.optim.schedule), gamma=cfg.optim.gamma
    )


def load_start_weights(
    cfg: Config,
    model: nn.Module,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    verbose: bool = True,
) -> ResumeState:
    """``run.resume`` (with ``optimizer``: the whole training state, RNG included) or else
    ``run.pretrained`` weights; returns the next epoch and the best accuracy so far."""
    start = ResumeState(cfg.optim.start_epoch, 0.0)
    if cfg.run.resume:
        path = cfg.run.resume
        ckpt = load_checkpoint(path, map_location="cpu")
        training = optimizer is not None
        start = restore_training_state(
            ckpt, model=model, optimizer=optimizer, scheduler=scheduler, restore_rng=training
        )
        if training and ckpt.get("scheduler") is None:
            # A reference checkpoint has no scheduler: rebuild its position from the epoch.
            scheduler.last_epoch = start.start_epoch
            done = sum(m <= start.start_epoch for m in cfg.optim.schedule)
            for group in optimizer.param_groups:
                group["lr"] = cfg.optim.lr * cfg.optim.gamma**done
        if verbose:
            print(
                f"=> resumed {path} (next epoch {start.start_epoch}, best acc {start.best_acc:.4f})"
            )
    elif cfg.run.pretrained and imagenet_trunk_file(model, cfg.run.pretrained):
        report = load_trunk_weights(model, cfg.run.pretrained)
        if verbose:
            print(f"=> ImageNet trunk from {cfg.run.pretrained}: {report.summary()}")
    elif cfg.run.pretrained:
        load_model_weights(model, cfg.run.pretrained)
        if verbose:
            print(f"=> initial weights from {cfg.run.pretrained}")
    return start


def imagenet_trunk_file(model: nn.Module, path: str) -> bool:
    """Whether ``--pretrained`` ``path`` is ImageNet trunk weights for ``model`` rather than a
    whole pose model: the model has an ImageNet trunk (``trunk_layers``: SimpleBaseline, HRNet)
    and the file lacks some of the model's own weights (its pose head, at least). A complete
    checkpoint of the model loads whole, as for the hourglasses."""
    target = unwrap_model(model)
    if not getattr(target, "trunk_layers", None):
        return False
    try:
        state = model_state_from_checkpoint(load_checkpoint(path, map_location="cpu"))
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    needed = [k for k in target.state_dict() if not k.endswith(".num_batches_tracked")]
    return any(k not in state for k in needed)


def wrap_for_training(model: nn.Module, cfg: Config, device: torch.device) -> nn.Module:
    """``model`` in DDP when several processes train, compiled with ``run.compile``."""
    net = model
    if distributed_info()[1] > 1:
        # A part-segmentation model has parameters some steps never use (hg_multitask's
        # score_seg_, and its whole seg head in keypoint-only training): DDP must look for them.
        net = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=bool(getattr(model, "segmentation", False)),
        )
    if cfg.run.compile:
        net = torch.compile(net)
    return net


# -- assemblies ------------------------------------------------------------------------------
def _is_main() -> bool:
    return distributed_info()[0] == 0


def _evaluator(
    cfg: Config, *, model, loss_fn, dataset, device, spec, codec, normalize, name, split, epoch, amp
) -> Evaluator | BottomUpEvaluator:
    common = dict(
        model=model,
        dataset=dataset,
        loader=eval_loader(cfg, dataset, device),
        codec=codec,
        normalizer=normalize,
        spec=spec,
        device=device,
        name=name,
        split=split,
        flip=cfg.run.flip,
        amp=amp,
        loss_fn=loss_fn,
        progress=cfg.run.progress and _is_main(),
        epoch=epoch,
    )
    if is_bottomup(name):  # whole images: grouped people, OKS AP without boxes
        return BottomUpEvaluator(
            **common,
            scales=tuple(cfg.run.test_scales),
            project_to_input=cfg.run.project_to_input,
        )
    return Evaluator(
        **common,
        max_overlays=cfg.run.tb_images,
        detections=detection_file(cfg, name, split),
        det_score=cfg.data.det_score,
    )


@dataclass
class TrainingParts:
    """Everything ``Trainer`` trains with; ``start`` holds the resumed epoch and best accuracy.
    ``normalize`` is the model-input function (normaliser + memory format); ``evaluator``
    validates on ``val_set`` with the trainer's own ``model``."""

    device: torch.device
    spec: KeypointSpec
    amp: bool
    dataset_kwargs: dict[str, Any]
    train_set: KeypointDataset
    val_set: KeypointDataset
    normalizer: Normalizer
    normalize: Callable[[torch.Tensor], torch.Tensor]
    codec: Codec
    model: nn.Module
    net: nn.Module
    memory_format: torch.memory_format
    loss_fn: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    start: ResumeState
    train_loader: torch.utils.data.DataLoader
    evaluator: Evaluator


def build_training(cfg: Config, *, validation_dataset: str) -> TrainingParts:
    """The objects of a training run that validates on ``validation_dataset``'s valid split."""
    d = cfg.data
    device = setup_device(cfg)
    spec = get_spec(cfg.model.keypoint_spec)
    kw = dataset_kwargs(cfg, spec)
    val_set = build_dataset(validation_dataset, split=VALIDATION_SPLIT, limit=d.val_limit, **kw)
    train_set = build_dataset(
        d.dataset, split="train", limit=d.train_limit, augment_seed=cfg.run.seed, **kw
    )
    normalizer = build_normalizer(cfg)
    model = build_network(cfg, spec, device)
    codec = build_codec(cfg)  # draws no random numbers: the order of the seeded objects holds
    loss_fn = build_loss(cfg, codec, model)
    amp = use_amp(cfg, device)
    optimizer = build_optimizer(cfg, model.parameters())
    scheduler = build_scheduler(cfg, optimizer)
    start = load_start_weights(
        cfg, model, optimizer=optimizer, scheduler=scheduler, verbose=_is_main()
    )
    normalize = model_input(normalizer, memory_format(cfg))
    train_loader = make_loader(
        train_set,
        batch_size=d.train_batch,
        shuffle=True,
        workers=d.workers,
        seed=cfg.run.seed,
        device=device,
        drop_last=len(train_set) > d.train_batch,
    )
    evaluator = _evaluator(
        cfg,
        model=model,
        loss_fn=loss_fn,
        dataset=val_set,
        device=device,
        spec=spec,
        codec=codec,
        normalize=normalize,
        name=validation_dataset,
        split=VALIDATION_SPLIT,
        epoch=start.start_epoch,
        amp=amp,
    )
    return TrainingParts(
        device=device,
        spec=spec,
        amp=amp,
        dataset_kwargs=kw,
        train_set=train_set,
        val_set=val_set,
        normalizer=normalizer,
        normalize=normalize,
        codec=codec,
        model=model,
        net=wrap_for_training(model, cfg, device),
        memory_format=memory_format(cfg),
        loss_fn=loss_fn,
        optimizer=optimizer,
        scheduler=scheduler,
        start=start,
        train_loader=train_loader,
        evaluator=evaluator,
    )


def build_evaluator(cfg: Config) -> Evaluator:
    """An ``Evaluator`` of ``data.dataset``'s ``data.eval_split`` with the ``run.resume`` (else
    ``run.pretrained``) weights, its codec at the checkpoint's epoch."""
    d = cfg.data
    device = setup_device(cfg)
    spec = get_spec(cfg.model.keypoint_spec)
    dataset = build_dataset(
        d.dataset, split=d.eval_split, limit=d.val_limit, **dataset_kwargs(cfg, spec)
    )
    normalizer = build_normalizer(cfg)
    model = build_network(cfg, spec, device)
    start = load_start_weights(cfg, model, verbose=_is_main())
    codec = build_codec(cfg)
    return _evaluator(
        cfg,
        model=model,
        loss_fn=build_loss(cfg, codec, model),
        dataset=dataset,
        device=device,
        spec=spec,
        codec=codec_for_epoch(codec, start.start_epoch, d.sigma_decay),
        normalize=model_input(normalizer, memory_format(cfg)),
        name=d.dataset,
        split=d.eval_split,
        epoch=start.start_epoch,
        amp=use_amp(cfg, device),
    )
