"""Joint source + target training: the one loop behind CC-SSL, WS-CDA, PPLO and their mixes.

Each iteration runs ONE forward pass over a labelled source batch and a target batch
(``TargetMix``) and minimises ``w2 * (L_pose(source) + gamma_ * L_pose(pseudo-labelled target)
+ labelled_weight * L_pose(labelled target))`` [+ WS-CDA's ``DomainAdversary.trunk_loss`` on the
last stack's features]. Every ``adapt.round_every`` epochs a pseudo-label round labels the target
train split with the current weights and is stored in ``<checkpoint>/pseudo_labels/round_XX.npz``
before training on it, so a killed run resumes inside its round; a stored round is reused only
when it records this run's settings and the weights that start the round. Models are selected on
the target valid split; where this differs from CCSSL.py: docs/reference_compat.md §7.8.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import torch

from animalpose.adapt.config import AdaptConfig
from animalpose.adapt.domain import DomainAdversary
from animalpose.adapt.pseudo_label_dataset import PseudoLabelDataset
from animalpose.adapt.pseudo_label_store import PseudoLabels, weights_digest
from animalpose.adapt.pseudo_labels import generate_pseudo_labels
from animalpose.adapt.run_settings import (
    round_mismatch,
    round_path,
    settings_changed,
)
from animalpose.adapt.selection import SelectionSchedule
from animalpose.adapt.target_data import ANNOTATED, TargetMix, first_frames
from animalpose.adapt.temporal import TemporalConfig
from animalpose.adapt.views import ViewSampler
from animalpose.datasets.fileio import DataError, remove_temp_files
from animalpose.datasets.formats.registry import build_dataset
from animalpose.evaluation.inference import autocast
from animalpose.train.checkpoint import (
    CHECKPOINT_NAME,
    load_checkpoint,
    restore_training_state,
    unwrap_model,
)
from animalpose.train.config_io import config_to_dict
from animalpose.train.loaders import make_loader
from animalpose.train.run_folder import settings_listing
from animalpose.train.trainer import EpochStats, Trainer, device_clock, mean_batch_accuracy

__all__ = ["AdaptTrainer"]

#: Checkpoint entry holding the adaptation state (its presence marks an adaptation checkpoint).
ADAPT_KEY = "adapt"


class AdaptTrainer(Trainer):
    """``Trainer`` for adaptation (module docs); ``fit()`` runs it, resuming where it stopped."""

    def __init__(self, cfg: AdaptConfig) -> None:
        super().__init__(cfg)
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
        self.adversary: DomainAdversary | None = None
        if a.adversarial:
            self.adversary = DomainAdversary(
                in_channels=cfg.model.channels,
                mode=a.adversary,
                alpha=a.alpha,
                beta=a.beta,
                ramp_gamma=a.ramp_gamma,
                hidden=a.disc_hidden,
                lr=a.disc_lr,
            ).to(self.device)
            if self.world_size > 1:
                self.adversary.distribute(
                    device_ids=[self.device.index] if self.device.type == "cuda" else None
                )
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
        }
        return state

    # -- pseudo-labels ------------------------------------------------------------------------
    def pseudo_round(self, round_index: int, epoch: int) -> PseudoLabels:
        """The labels of ``round_index``: read when this run stored them (``round_mismatch``),
        else generated from the current weights, selected, stored."""
        path = round_path(self.out_dir, round_index)
        settings = json.loads(json.dumps(config_to_dict(self.cfg)))  # as the file gives it back
        inside = self._resumed_round is not None and self._resumed_round[0] == round_index
        if inside:  # a continued run: the weights that made the round are the checkpoint's record
            self.round_weights = self._resumed_round[1]
        elif self.is_main:  # the round starts now
            self.round_weights = weights_digest(unwrap_model(self.model).state_dict())
        stored, problem = None, None
        if self.is_main and path.is_file():
            stored = PseudoLabels.load(path)
            problem = round_mismatch(stored, settings, self.round_weights)
        # The main process decides for all: 0 make the round, 1 reuse the file, 2 refuse (inside
        # the round its weights are gone: it cannot be made again).
        action = 0 if stored is None or (problem and not inside) else 2 if problem else 1
        if self.world_size > 1:
            nccl = torch.distributed.get_backend() == "nccl"
            flag = torch.tensor(action, device=self.device if nccl else "cpu")
            torch.distributed.broadcast(flag, 0)
            action = int(flag.item())
        if action == 2:
            why = f"made {problem}" if problem else "the main process says why"
            raise DataError(
                f"{path}: not the pseudo-labels this run trained on ({why}); restore that file, "
                "or start the run in another -c/--checkpoint folder"
            )
        if action == 1:
            if self.is_main:
                print(f"=> pseudo-label round {round_index}: reusing {path}")
            return stored if stored is not None else PseudoLabels.load(path)
        if problem and self.is_main:
            print(f"=> pseudo-label round {round_index}: {path} was made {problem}; redoing it")
        if self.is_main:
            remove_temp_files(path)  # left by a run killed while writing it
        a = self.cfg.adapt
        labels = generate_pseudo_labels(
            self.model,
            self.label_set,
            codec=self.codec,
            normalizer=self._normalize,
            device=self.device,
            views=self.views,
            seed=self.cfg.run.seed,
            temporal=self.temporal,
            batch_size=a.pseudo_batch,
            workers=self.cfg.data.workers,
            flow_workers=a.pseudo_workers,
            amp=self.amp,
            progress=self.cfg.run.progress and self.is_main,
            round_index=round_index,
            epoch=epoch,
        )
        labels = replace(
            labels.with_selection(self.schedule.keep_share(round_index=round_index, epoch=epoch)),
            settings=settings,
            weights=self.round_weights,
        )
        if self.is_main:
            labels.save(path)
            diag = ", ".join(f"{k} {v:.4g}" for k, v in labels.diagnostics.items())
            print(
                f"=> pseudo-label round {round_index} (epoch {epoch + 1}): kept "
                f"{labels.keep_share:.0%} ({self.schedule.describe()}) above confidence "
                f"{labels.threshold:.4f}; {diag}"
            )
            if self.writer is not None:
                for key, value in labels.diagnostics.items():
                    if math.isfinite(float(value)):
                        self.writer.add_scalar(f"pseudo/{key}", float(value), epoch + 1)
                self.writer.add_scalar("pseudo/threshold", labels.threshold, epoch + 1)
                self.writer.add_scalar("pseudo/keep_share", labels.keep_share, epoch + 1)
        if self.world_size > 1:
            torch.distributed.barrier()
        return labels

    def _target_loader(self):
        pseudo = (
            PseudoLabelDataset(self.target_set, self.labels) if self.labels is not None else None
        )
        mix = TargetMix(self.target_set, pseudo=pseudo, labelled=self.labelled)
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
    def joint_step(self, source: dict, target: dict, codec, progress: float) -> dict:
        """One optimisation step on a source and a target batch -> loss terms (device tensors)."""
        a = self.cfg.adapt
        xs, hs, ws = self.prepare(source, codec)
        xt, ht, wt = self.prepare(target, codec)
        n = xs.shape[0]
        x = torch.cat([xs, xt])
        adversarial = self.adversary is not None
        with autocast(self.device, self.amp):
            out = self.net(x, return_features=True) if adversarial else self.net(x)
        outputs, features = out if adversarial else (out, None)
        loss_source = a.w2 * self.loss_fn([o[:n] for o in outputs], hs, ws)
        # Each target frame's own weight: gamma_ for pseudo-labels, labelled_weight for the few
        # annotated frames. 0/1 masks on the keypoint weights split the batch mean exactly.
        annotated = (target["meta"]["labelled"] == ANNOTATED).to(wt.device)
        annotated = annotated.reshape(-1, *([1] * (wt.dim() - 1))).to(wt.dtype)
        out_t = [o[n:] for o in outputs]
        loss_pseudo = a.target_weight * a.w2 * self.loss_fn(out_t, ht, wt * (1 - annotated))
        loss_labelled = a.labelled_weight * a.w2 * self.loss_fn(out_t, ht, wt * annotated)
        loss_target = loss_pseudo + loss_labelled
        total = loss_source + loss_target
        terms = {
            "loss_source": loss_source.detach(),
            "loss_target": loss_target.detach(),
            "loss_target_pseudo": loss_pseudo.detach(),
            "loss_target_labelled": loss_labelled.detach(),
        }
        if adversarial:
            is_target = torch.cat([torch.zeros(n), torch.ones(xt.shape[0])]).to(self.device)
            is_animal = torch.ones_like(is_target)
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
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        self.optimizer.step()
        if adversarial:
            self.adversary.step()
        terms["loss"] = total.detach()
        terms["_outputs"], terms["_heatmaps"] = outputs[-1][:n].detach(), hs
        return terms

    def train_epoch(self, epoch: int) -> EpochStats:
        codec = self.codec_at(epoch)
        self.net.train()
        if self.adversary is not None:
            self.adversary.train()
        for loader, dataset in (
            (self.train_loader, self.train_set),
            (self.target_loader, self.target_loader.dataset),
        ):
            loader.sampler.set_epoch(epoch)
            dataset.set_epoch(epoch)
        steps = min(len(self.train_loader), len(self.target_loader))
        total_steps = max(1, steps * self.cfg.optim.epochs)
        sums: dict[str, torch.Tensor] = {}
        acc_sum = torch.zeros((), device=self.device)
        log_every = max(1, self.cfg.run.log_every)
        batch = self.cfg.data.train_batch
        bar = self.progress_bar(steps * 2 * batch * self.world_size, epoch)
        start = device_clock(self.device)
        images = 0
        for it, (source, target) in enumerate(zip(self.train_loader, self.target_loader)):
            if it >= steps:
                break
            progress = (epoch * steps + it) / total_steps
            terms = self.joint_step(source, target, codec, progress)
            acc_sum += mean_batch_accuracy(terms.pop("_outputs"), terms.pop("_heatmaps"))
            for key, value in terms.items():
                sums[key] = sums.get(key, 0) + value.float()
            n = source["image"].shape[0] + target["image"].shape[0]
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
        return (
            f"=> adapting {self.cfg.data.dataset} -> {a.target_ssl} ({self.cfg.data.animal}): "
            f"{len(self.train_set)} source / {len(self.target_set)} target train "
            f"({int(self.labelled.sum())} labelled), {len(self.val_set)} target valid; "
            f"pseudo-labels {pseudo}, "
            f"adversarial {'on (' + a.adversary + ')' if a.adversarial else 'off'}"
        )

    def before_epoch(self, epoch: int) -> None:
        """A new pseudo-label round when one starts (or the run resumes), and its target loader."""
        a = self.cfg.adapt
        round_index = epoch // a.round_every if a.pseudo_labels else -1
        if round_index != self.round_index or self.target_loader is None:
            if a.pseudo_labels:
                self.labels = self.pseudo_round(round_index, epoch)
            self.round_index = round_index
            self.target_loader = self._target_loader()
