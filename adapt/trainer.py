"""Joint source + target training: the loop behind CC-SSL, WS-CDA, PPLO, UDA-Animal and mixes.

Each iteration runs one forward pass over a labelled source batch, a target batch
(``TargetMix``) and, with ``adapt.human_data``, a human batch (adapt/human_source.py;
``adapt.forward separate``: one pass per domain) and minimises ``w2 * (L_pose(source) + gamma_ *
L_pose(pseudo-labelled target) + labelled_weight * L_pose(labelled target))`` [+ ``human_weight
* L_pose(human)``, WS-CDA's L_H] [+ WS-CDA's ``DomainAdversary.trunk_loss``] [+ UDA-Animal's
teacher and self-distillation terms, adapt/uda.py]. Every ``adapt.round_every`` epochs a
pseudo-label round (adapt/pseudo_rounds.py) labels the target train split; a killed run resumes
inside it.
Models are selected on the target valid split; where this differs from CCSSL.py:
docs/reference_compat.md §7.8.
"""

from __future__ import annotations

import filecmp
import shutil

import numpy as np
import torch

from animalpose.adapt.config import AdaptConfig
from animalpose.adapt.domain import DomainAdversary, feature_channels
from animalpose.adapt.human_source import HumanBatches, build_human_source, describe_human_source
from animalpose.adapt.mean_teacher import MeanTeacher, WithPlainView
from animalpose.adapt.pseudo_label_dataset import PseudoLabelDataset
from animalpose.adapt.pseudo_label_store import PseudoLabels
from animalpose.adapt.pseudo_rounds import PseudoRounds
from animalpose.adapt.run_settings import (
    settings_changed,
)
from animalpose.adapt.selection import SelectionSchedule
from animalpose.adapt.target_data import ANNOTATED, TargetMix, first_frames
from animalpose.adapt.temporal import TemporalConfig
from animalpose.adapt.uda import (
    UDASchedule,
    consistency_losses,
    describe_uda,
    mix_batch,
    small_loss_mse,
)
from animalpose.adapt.views import ViewSampler
from animalpose.datasets.fileio import DataError, atomic_write, remove_temp_files
from animalpose.datasets.formats.registry import build_dataset
from animalpose.evaluation.inference import autocast
from animalpose.train.checkpoint import (
    BEST_NAME,
    CHECKPOINT_NAME,
    load_checkpoint,
    restore_training_state,
    unwrap_model,
)
from animalpose.train.config import ConfigError
from animalpose.train.config_io import config_to_dict
from animalpose.train.loaders import make_loader
from animalpose.train.run_folder import settings_listing
from animalpose.train.trainer import EpochStats, Trainer, device_clock, mean_batch_accuracy

__all__ = ["AdaptTrainer"]

#: Checkpoint entry holding the adaptation state (its presence marks an adaptation checkpoint).
ADAPT_KEY = "adapt"


class AdaptTrainer(PseudoRounds, Trainer):
    """``Trainer`` for adaptation (module docs); ``fit()`` runs it, resuming where it stopped."""

    def __init__(self, cfg: AdaptConfig) -> None:
        super().__init__(cfg)
        if self.stage_sigma_scales:
            raise ConfigError(
                f"model {cfg.model.arch} trains each stage on its own target Gaussian "
                f"(stage_sigma_scales {self.stage_sigma_scales}); adaptation supervises every "
                "output with data.sigma targets and does not take it",
                key="model.arch",
            )
        a = cfg.adapt
        kw = self.dataset_kwargs
        # Target frames trained on (strong augmentation = CC-SSL's invariance) ...
        self.target_set = build_dataset(
            a.target_ssl, split="train", augment_seed=cfg.run.seed + 1, **kw
        )
        # ... and the same frames as plain crops, for pseudo-labelling.
        plain = "real_animal_crop" if a.target_ssl == "real_animal_crop" else "real_animal"
        self.label_set = build_dataset(plain, split="train", augment=False, **kw)
        self.labelled = first_frames(self.target_set, a.target_labels)
        self.views = ViewSampler(
            num_views=a.views, scale_factor=a.view_scale, rot_factor=a.view_rotation
        )
        self.temporal = (
            TemporalConfig(max_move=a.flow_max_move, ratio=a.flow_ratio) if a.temporal else None
        )
        self.schedule = SelectionSchedule.from_adapt(a)
        #: WS-CDA's human source: one human batch per step (None without adapt.human_data).
        self.humans: HumanBatches | None = None
        if a.human_data:
            human_set = build_human_source(cfg, self.spec, seed=cfg.run.seed + 2)
            self.humans = HumanBatches(human_set, cfg, self.device, seed=cfg.run.seed + 2)
        self.adversary: DomainAdversary | None = None
        if a.adversarial:
            self.adversary = DomainAdversary(
                in_channels=feature_channels(unwrap_model(self.model), self.codec.input_size),
                mode=a.adversary,
                alpha=a.alpha,
                beta=a.beta,
                ramp_gamma=a.ramp_gamma,
                hidden=a.disc_hidden,
                lr=a.disc_lr,
                block=a.da_block,
                species_weight=a.w1 if self.humans is not None else 0.0,
            ).to(self.device)
            if self.world_size > 1:
                self.adversary.distribute(
                    device_ids=[self.device.index] if self.device.type == "cuda" else None
                )
        self.uda = UDASchedule(a, cfg.optim.epochs, self.spec.num_keypoints)
        #: UDA-Animal's mean teacher: an EMA of the (source-initialised) student.
        self.teacher: MeanTeacher | None = None
        if a.teacher:
            self.teacher = MeanTeacher(unwrap_model(self.model), decay=a.teacher_decay)
        self.labels: PseudoLabels | None = None
        self.round_index = -1
        #: ``weights_digest`` of the weights that predicted the current round.
        self.round_weights: str | None = None
        #: The round a continued run's checkpoint is inside, and that round's weights digest.
        self._resumed_round: tuple[int, str | None] | None = None
        self.target_loader = None
        self._start()

    # -- start / resume -----------------------------------------------------------------------
    def _start(self) -> None:
        """Continue from this run's checkpoint (else ``Trainer`` loaded ``run.pretrained``)."""
        own = self.out_dir / CHECKPOINT_NAME
        if own.is_file():
            ckpt = load_checkpoint(own)
            if ADAPT_KEY not in ckpt:
                raise DataError(
                    f"{own}: not an adaptation checkpoint; choose another "
                    "-c/--checkpoint folder for this run"
                )
            changed = settings_changed(ckpt.get("config") or {}, config_to_dict(self.cfg))
            if changed:
                raise DataError(
                    f"{own}: this folder holds an adaptation run with other settings "
                    f"({settings_listing(changed)}); run it with its own settings to continue "
                    "it, or choose another -c/--checkpoint folder"
                )
            state = restore_training_state(
                ckpt, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler
            )
            self.start_epoch, self.best_acc = state.start_epoch, state.best_acc
            if self.adversary is not None and ckpt[ADAPT_KEY].get("adversary") is not None:
                self.adversary.load_state_dict(ckpt[ADAPT_KEY]["adversary"])
            if self.teacher is not None:
                self.teacher.load_state_dict(ckpt[ADAPT_KEY]["teacher"])
            saved = ckpt[ADAPT_KEY]
            self._resumed_round = (int(saved.get("round", -1)), saved.get("round_weights"))
            if self.is_main:
                print(
                    f"=> continuing {own} at epoch {self.start_epoch + 1} (best target-valid "
                    f"PCK {100 * self.best_acc:.2f})"
                )
            self._resumed = True
            return
        self._resumed = False
        if not self.cfg.run.pretrained and self.is_main:
            print("=> no --resume checkpoint: adapting from random weights")

    @property
    def validation_dataset(self) -> str:
        """Models are selected on the labelled target set's valid split."""
        return self.cfg.adapt.target

    def checkpoint_state(self, epoch: int) -> dict:
        state = super().checkpoint_state(epoch)
        state[ADAPT_KEY] = {
            "round": self.round_index,
            "round_weights": self.round_weights,
            "adversary": self.adversary.state_dict() if self.adversary is not None else None,
            "teacher": self.teacher.state_dict() if self.teacher is not None else None,
        }
        return state

    # -- the reference's output file ---------------------------------------------------------
    @property
    def source_copy(self):
        """``<checkpoint>/<source data set>.pth.tar``: where the reference's CCSSL.py saved the
        model of its best target-valid epoch and its next command (test.py) looks; a copy of
        ``model_best.pth.tar``, rewritten atomically after each best epoch."""
        return self.out_dir / f"{self.cfg.data.dataset}.pth.tar"

    def _sync_source_copy(self, *, compare: bool) -> None:
        best, copy = self.out_dir / BEST_NAME, self.source_copy
        remove_temp_files(copy)  # of a run killed while writing it
        if not best.is_file():
            return
        if compare and copy.is_file() and filecmp.cmp(best, copy, shallow=False):
            return
        with open(best, "rb") as src, atomic_write(copy) as dst:
            shutil.copyfileobj(src, dst)

    def _save(self, epoch, val, is_best, row) -> None:
        super()._save(epoch, val, is_best, row)
        if is_best:
            self._sync_source_copy(compare=False)

    def _continue_folder(self) -> None:
        super()._continue_folder()
        self._sync_source_copy(compare=True)  # a run killed before the copy was written

    def _target_loader(self):
        pseudo = (
            PseudoLabelDataset(self.target_set, self.labels) if self.labels is not None else None
        )
        mix = TargetMix(self.target_set, pseudo=pseudo, labelled=self.labelled)
        if self.teacher is not None:  # the teacher's plain crop of each frame
            mix = WithPlainView(mix, self.label_set)
        d = self.cfg.data
        return make_loader(
            mix,
            batch_size=d.train_batch,
            shuffle=True,
            workers=d.workers,
            seed=self.cfg.run.seed + 1,
            device=self.device,
            drop_last=len(mix) > d.train_batch,
        )

    # -- one epoch ----------------------------------------------------------------------------
    def forward_domains(self, inputs: list[torch.Tensor], features: bool):
        """(per-stack outputs, features or None) of the rows of ``inputs`` (source, target[,
        human]) in that order: one pass over all (``adapt.forward`` joint) or one per domain
        (separate: BatchNorm normalises each domain by its own statistics)."""
        joint = self.cfg.adapt.forward == "joint"
        with autocast(self.device, self.amp):
            parts = [
                self.net(x, return_features=True) if features else self.net(x)
                for x in ([torch.cat(inputs)] if joint else inputs)
            ]
        if not features:
            parts = [(p, None) for p in parts]
        if len(parts) == 1:
            return parts[0]
        outputs = [torch.cat(stack) for stack in zip(*(out for out, _ in parts), strict=True)]
        return outputs, (torch.cat([f for _, f in parts]) if features else None)

    def joint_step(
        self,
        source: dict,
        target: dict,
        codec,
        progress: float,
        *,
        key: tuple[int, ...] = (),
        human: dict | None = None,
    ) -> dict:
        """One optimisation step on a source, a target [and a human] batch -> loss terms
        (device tensors). ``key`` (epoch, iteration) seeds the step's mixup draw."""
        a = self.cfg.adapt
        xs, hs, ws = self.prepare(source, codec)
        xt, ht, wt = self.prepare(target, codec)
        n = xs.shape[0]
        uda = self.uda.at(progress)
        # Each target frame's own weight: gamma_ for pseudo-labels, labelled_weight for the few
        # annotated frames. 0/1 masks on the keypoint weights split the batch mean exactly.
        annotated = (target["meta"]["labelled"] == ANNOTATED).to(wt.device)
        annotated = annotated.reshape(-1, *([1] * (wt.dim() - 1))).to(wt.dtype)
        w_pseudo, w_labelled = wt * (1 - annotated), wt * annotated
        teacher = None
        if self.teacher is not None:
            teacher = self.teacher.heatmaps_for(
                target, self._normalize, self.spec.flip_index, self.codec.input_size, self.amp
            )
        if a.mixup:  # UDA-Animal: targets mixed within the batch, with their labels
            rng = np.random.default_rng([self.cfg.run.seed, *key])
            xt, ht, w_pseudo, w_labelled, teacher = mix_batch(
                rng, xt, ht, w_pseudo, w_labelled, teacher
            )
        adversarial = self.adversary is not None
        inputs = [xs, xt]
        if human is not None:
            xh, hh, wh = self.prepare(human, codec)
            inputs.append(xh)
        outputs, features = self.forward_domains(inputs, adversarial)
        loss_source = a.w2 * self.loss_fn([o[:n] for o in outputs], hs, ws)
        nt = xt.shape[0]
        out_t = [o[n : n + nt] for o in outputs]
        if uda.keep < ht.shape[1]:  # UDA-Animal's small-loss keypoints
            pose = small_loss_mse(out_t, ht, w_pseudo, uda.keep)
        else:
            pose = self.loss_fn(out_t, ht, w_pseudo)
        loss_pseudo = uda.pseudo * a.w2 * pose
        loss_labelled = a.labelled_weight * a.w2 * self.loss_fn(out_t, ht, w_labelled)
        loss_target = loss_pseudo + loss_labelled
        total = loss_source + loss_target
        terms = {
            "loss_source": loss_source.detach(),
            "loss_target": loss_target.detach(),
            "loss_target_pseudo": loss_pseudo.detach(),
            "loss_target_labelled": loss_labelled.detach(),
        }
        for name, loss in consistency_losses(out_t, teacher, uda, distill=a.distill).items():
            total = total + loss
            terms[name] = loss.detach()
        nh = 0
        if human is not None:  # WS-CDA's L_H on the keypoints people and animals share
            nh = xh.shape[0]
            loss_human = a.human_weight * self.loss_fn([o[n + nt :] for o in outputs], hh, wh)
            total = total + loss_human
            terms["loss_human"] = loss_human.detach()
        if adversarial:
            is_target = torch.cat([torch.zeros(n), torch.ones(nt), torch.zeros(nh)])
            is_target = is_target.to(self.device)
            is_animal = torch.cat([torch.ones(n + nt), torch.zeros(nh)]).to(self.device)
            kw = {"is_animal": is_animal, "is_target": is_target}
            ddl = None
            if a.adversary == "alternating":  # the discriminator's step, then the trunk's
                ddl = self.adversary.discriminator_step(features.detach(), **kw)
            adv_loss, trunk_terms = self.adversary.trunk_loss(features, progress=progress, **kw)
            if ddl is None:  # grl: the trunk's forward is the discriminator's L_DDL
                ddl = trunk_terms
            total = total + adv_loss
            terms.update(
                loss_adversarial=adv_loss.detach(),
                ddl=ddl.total.detach(),
                domain_acc=ddl.domain_acc.detach(),
            )
            if human is not None:  # the species head (human vs animal) trains
                terms.update(ddl_species=ddl.species.detach(), species_acc=ddl.species_acc.detach())
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if adversarial:
            self.adversary.step()
        if self.teacher is not None:
            self.teacher.update(unwrap_model(self.model))
        terms["loss"] = total.detach()
        terms["_outputs"], terms["_heatmaps"] = outputs[-1][:n].detach(), hs
        return terms

    def train_epoch(self, epoch: int) -> EpochStats:
        codec = self.codec_at(epoch)
        self.net.train()
        if self.adversary is not None:
            self.adversary.train()
        # (the mean teacher stays in eval mode)
        for loader, dataset in (
            (self.train_loader, self.train_set),
            (self.target_loader, self.target_loader.dataset),
        ):
            loader.sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
        steps = min(len(self.train_loader), len(self.target_loader))
        total_steps = max(1, steps * self.cfg.optim.epochs)
        if self.humans is not None:
            self.humans.start(epoch)
        domains = 2 if self.humans is None else 3
        sums: dict[str, torch.Tensor] = {}
        acc_sum = torch.zeros((), device=self.device)
        log_every = max(1, self.cfg.run.log_every)
        batch = self.cfg.data.train_batch
        bar = self.progress_bar(steps * domains * batch * self.world_size, epoch)
        start = device_clock(self.device)
        images = 0
        for it, (source, target) in enumerate(zip(self.train_loader, self.target_loader)):
            if it >= steps:
                break
            progress = (epoch * steps + it) / total_steps
            human = next(self.humans) if self.humans is not None else None
            terms = self.joint_step(source, target, codec, progress, key=(epoch, it), human=human)
            acc_sum += mean_batch_accuracy(terms.pop("_outputs"), terms.pop("_heatmaps"))
            for key, value in terms.items():
                sums[key] = sums.get(key, 0) + value.float()
            n = source["image"].shape[0] + target["image"].shape[0]
            n += human["image"].shape[0] if human is not None else 0
            images += n
            bar.update(n * self.world_size)
            if (it + 1) % log_every == 0 or it + 1 == steps:
                means = {k: (v / (it + 1)).item() for k, v in sums.items()}  # one host sync
                bar.set_postfix(loss=f"{means['loss']:.3e}")
                if self.writer is not None:
                    step = epoch * steps + it + 1
                    for key, value in means.items():
                        self.writer.add_scalar(f"train/{key}", value, step)
                    self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"], step)
        bar.close()
        seconds = device_clock(self.device) - start
        steps = max(steps, 1)
        return EpochStats(
            (sums["loss"] / steps).item() if sums else 0.0,
            (acc_sum / steps).item(),
            images * self.world_size,
            seconds,
        )

    # -- the run (Trainer.fit with these hooks) ---------------------------------------------
    val_label = "target valid"

    @property
    def continues_run(self) -> bool:
        return self._resumed

    def describe(self) -> str:
        a = self.cfg.adapt
        pseudo = f"on ({self.schedule.describe()})" if a.pseudo_labels else "off"
        humans = ""
        if self.humans is not None:
            humans = (
                f"; human source {a.human_data}: "
                f"{describe_human_source(self.humans.dataset, self.spec)}, "
                f"L_H x {a.human_weight:g}"
                + (f", species head w1 {a.w1:g}" if a.adversarial else "")
            )
        return (
            f"=> adapting {self.cfg.data.dataset} -> {a.target_ssl} ({self.cfg.data.animal}): "
            f"{len(self.train_set)} source / {len(self.target_set)} target train "
            f"({int(self.labelled.sum())} labelled), {len(self.val_set)} target valid; "
            f"pseudo-labels {pseudo}, "
            f"adversarial {'on (' + a.adversary + ')' if a.adversarial else 'off'}"
            f"{describe_uda(a, self.cfg.model.stacks)}{humans}"
        )

    def before_epoch(self, epoch: int) -> None:
        """A new pseudo-label round when one starts (or the run resumes), and its target loader."""
        a = self.cfg.adapt
        round_index = epoch // a.round_every if a.pseudo_labels else -1
        if a.pseudo_labels and not a.relabel:  # UDA-Animal: the first round's labels throughout
            round_index = 0
        if round_index != self.round_index or self.target_loader is None:
            if a.pseudo_labels:
                self.labels = self.pseudo_round(round_index, epoch)
            self.round_index = round_index
            self.target_loader = self._target_loader()
