"""An adaptation run's pseudo-label rounds: made once, stored, and reused only by their run.

``PseudoRounds`` is the part of ``AdaptTrainer`` (adapt/trainer.py) that gives a round's labels:
generated from the current weights (adapt/pseudo_labels.py), selected by the run's schedule
(adapt/selection.py) and stored in ``<checkpoint>/pseudo_labels/round_XX.npz`` before training
on them; a stored round is reused only when it records this run's settings and the weights that
start the round (adapt/run_settings.py), so a killed run resumes inside its round.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import torch

from animalpose.adapt.pseudo_label_store import PseudoLabels, weights_digest
from animalpose.adapt.pseudo_labels import generate_pseudo_labels
from animalpose.adapt.run_settings import round_mismatch, round_path
from animalpose.datasets.fileio import DataError, remove_temp_files
from animalpose.train.checkpoint import unwrap_model
from animalpose.train.config_io import config_to_dict

__all__ = ["PseudoRounds"]


class PseudoRounds:
    """Mixed into ``AdaptTrainer``: reads its model, label set, views, schedule and run folder;
    keeps ``round_weights`` (the digest of the weights that predicted the current round) and
    ``_resumed_round`` (the round a continued run's checkpoint is inside, and its digest)."""

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
        selected = labels.with_selection(
            self.schedule.keep_share(round_index=round_index, epoch=epoch)
        ).with_oracle_filter(a.oracle_filter)
        labels = replace(
            selected,
            settings=settings,
            weights=self.round_weights,
        )
        if self.is_main:
            labels.save(path)
            diag = ", ".join(f"{k} {v:.4g}" for k, v in labels.diagnostics.items())
            print(
                f"=> pseudo-label round {round_index} (epoch {epoch + 1}): kept "
                f"{labels.keep_share:.0%} ({self.schedule.describe()}) above confidence "
                f"{labels.threshold:.4f}"
                + (f", right ones only ({a.oracle_filter})" if a.oracle_filter != "none" else "")
                + f"; {diag}"
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
