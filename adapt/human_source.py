"""WS-CDA's human source domain (Cao et al. 2019): people with keypoint labels as a second
labelled source, beside the synthetic animals.

``adapt.human_data`` names a COCO-layout folder (the built-in humans of ``python
datasets/generate.py --benchmark humans-v1-cpu``, or COCO 2017 with
``annotations/person_keypoints_train2017.json``). Its train split's person boxes are cropped as
the animal crops are (square ``data.inp_res`` crops, box padding 1.25, the run's scale and
rotation jitter and flips; no half-body crops: animals are cropped whole) and labelled in the
model's spec through ``datasets/correspondence.py`` (eyes and shoulders by name, arms as front
legs, legs as back legs); the animal keypoints a person lacks have weight 0, so the human pose
loss L_H trains the shared keypoints only. ``HumanBatches`` draws one human batch per training
step, restarting the loader (a new epoch of its augmentation) when it runs out.
"""

from __future__ import annotations

from collections.abc import Iterator

from animalpose.datasets.correspondence import correspondence_names
from animalpose.datasets.fileio import DataError
from animalpose.datasets.formats.coco_layout import build_topdown_dataset
from animalpose.datasets.formats.topdown import TopDownKeypoints
from animalpose.datasets.keypoints import COCO17, KeypointSpec
from animalpose.train.config import Config
from animalpose.train.loaders import make_loader

__all__ = ["HUMAN_SPEC", "HumanBatches", "build_human_source", "describe_human_source"]

#: Loader passes numbered per training epoch: epoch e's passes are e * this + 0, 1, ..., so an
#: epoch's draws do not depend on the epochs before it (a resumed run draws as an uninterrupted
#: one) as long as no epoch restarts the human loader this many times.
PASSES_PER_EPOCH = 1000
#: The keypoint spec of the person files read (COCO's 17 keypoints).
HUMAN_SPEC = COCO17


def build_human_source(cfg: Config, spec: KeypointSpec, *, seed: int) -> TopDownKeypoints:
    """The human train crops of ``cfg.adapt.human_data`` for a model of ``spec``.

    Raises:
        DataError: the folder is not a COCO layout (names the folder and what it lacks), or
            ``spec`` shares no keypoint with a person (names both specs).
    """
    d, a = cfg.data, cfg.adapt
    try:
        correspondence_names(HUMAN_SPEC, spec)
    except ValueError as exc:
        raise DataError(f"--human-data {a.human_data}: {exc}") from None
    return build_topdown_dataset(
        root=a.human_data,
        split="train",
        input_size=(d.inp_res, d.inp_res),
        spec=spec,
        annotation_spec=HUMAN_SPEC,
        seed=seed,
        augment=True,
        scale_factor=d.scale_factor,
        rot_factor=d.rot_factor,
        limit=a.human_limit,
        detections="",
        det_score=0.0,
        unbiased=False,
        half_body=False,
    )


def describe_human_source(dataset: TopDownKeypoints, spec: KeypointSpec) -> str:
    """One line: how many boxes, and which keypoints they train."""
    pairs = correspondence_names(HUMAN_SPEC, spec)
    shared = ", ".join(s if s == t else f"{s}->{t}" for s, t in pairs)
    n, k = len(pairs), spec.num_keypoints
    return f"{len(dataset)} human boxes train {n} of {k} keypoints ({shared})"


class HumanBatches:
    """An endless stream of human batches, one per ``next()``; each pass over the data is an
    epoch of its loader (``set_epoch``: new augmentation draws and order)."""

    def __init__(self, dataset: TopDownKeypoints, cfg: Config, device, *, seed: int) -> None:
        d = cfg.data
        self.dataset = dataset
        self.loader = make_loader(
            dataset,
            batch_size=d.train_batch,
            shuffle=True,
            workers=d.workers,
            seed=seed,
            device=device,
            drop_last=len(dataset) > d.train_batch,
        )
        self.passes = 0
        self._iter: Iterator | None = None

    def start(self, epoch: int) -> None:
        """Begin training epoch ``epoch``'s draws (a resumed run draws as an uninterrupted one
        from this epoch on)."""
        self.passes = epoch * PASSES_PER_EPOCH
        self._iter = None

    def _restart(self) -> None:
        self.loader.sampler.set_epoch(self.passes)
        self.dataset.set_epoch(self.passes)
        self.passes += 1
        self._iter = iter(self.loader)

    def __next__(self) -> dict:
        if self._iter is None:
            self._restart()
        try:
            return next(self._iter)
        except StopIteration:
            self._restart()
            return next(self._iter)
