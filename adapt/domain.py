"""WS-CDA's domain-adversarial pieces (Cao et al., "Cross-Domain Adaptation for Animal Pose
Estimation", ICCV 2019, arXiv 1908.05806; method and known behaviour: docs/adaptation.md).

A ``DomainDiscriminator`` reads the trunk features (``model(x, return_features=True)``) through
the optional domain-adaptation block (``domain_block.py``) and predicts each sample's domain
(target = real animal = 1). Block and discriminator minimise L_DDL (``ddl_loss``, one Adam); the
trunk maximises it through a gradient reversal placed BEFORE the block: the paper's keypoint
estimator reads the feature extractor, not the block, so a block on the trunk's side could hide
the domain by itself and leave the trunk unchanged. ``DomainAdversary`` runs the min-max in one
of ``ADVERSARY_MODES``. Shapes: B batch; features (B, C, h, w); logits (B, 2), ``DOMAIN`` column.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from animalpose.adapt.domain_block import LEAKY_SLOPE, DomainAdaptationBlock

__all__ = [
    "ADVERSARY_MODES",
    "DDLTerms",
    "DomainAdversary",
    "DomainDiscriminator",
    "dann_ramp",
    "ddl_loss",
    "feature_channels",
    "grad_reverse",
]

#: Logit column of the paper's species head (animal = 1 vs human = 0, y_hat). Its loss term has
#: the weight ``w1`` (``species_weight``); runs without a human source give it 0.
SPECIES = 0
#: Logit column of the domain head (target domain = 1 vs not; the paper's z_hat).
DOMAIN = 1
#: The DANN schedule's gamma (Ganin & Lempitsky 2015 use 10 in all their experiments).
DANN_GAMMA = 10.0
#: The paper's loss weights (Cao et al. 2019): alpha = -1 on L_DDL, beta = 500 on L_pose. Only
#: |alpha| / beta is used: the sign of the min-max is fixed by construction (trunk_loss).
PAPER_ALPHA = -1.0
PAPER_BETA = 500.0
#: Discriminator learning rate (Adam). The paper gives none; a conservative Adam rate.
DISCRIMINATOR_LR = 1e-4
#: Discriminator width; the paper does not describe its discriminator.
DISCRIMINATOR_HIDDEN = 256

#: The min-max schemes ``DomainAdversary`` implements (the config value -> what it does).
ADVERSARY_MODES = {
    "grl": "gradient reversal: one backward pass, discriminator minimises L_DDL, trunk gets "
    "-coeff * dL_DDL",
    "alternating": "discriminator step on detached features, then the trunk minimises "
    "coeff * confusion loss on the frozen discriminator",
}


class _GradReverse(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by ``-coeff``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return grad_output * (-ctx.coeff), None


def grad_reverse(x: torch.Tensor, coeff: float) -> torch.Tensor:
    """Gradient reversal layer: returns ``x`` unchanged; its gradient is ``-coeff * grad``.

    Args:
        x: any tensor (e.g. (B, C, h, w) trunk features).
        coeff: a Python float >= 0, the reversal strength (``DomainAdversary.coeff``).
    """
    return _GradReverse.apply(x, float(coeff))


def dann_ramp(progress: float, gamma: float = DANN_GAMMA) -> float:
    """The DANN schedule ``2 / (1 + exp(-gamma * p)) - 1``: 0 at p = 0, rising towards 1.

    ``progress`` p is the fraction of training done, clipped to [0, 1] (Ganin & Lempitsky 2015).
    """
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


class DomainDiscriminator(nn.Module):
    """The domain-adaptation block (``block`` residual 3x3 convs at ``in_channels`` width, none by
    default), two strided 3x3 convs with LeakyReLU, global average pooling and a linear layer.

    ``forward``: (B, in_channels, h, w) features -> (B, 2) logits, column ``SPECIES`` (animal vs
    human) and column ``DOMAIN`` (target vs not). No normalisation layers: batch statistics
    over a mixed-domain batch would leak the domain mix into every sample. ``block = 0`` keeps the
    ``state_dict`` keys of the block-less discriminator (``conv1``, ``conv2``, ``fc``).
    """

    def __init__(
        self, *, in_channels: int, hidden: int = DISCRIMINATOR_HIDDEN, block: int = 0
    ) -> None:
        super().__init__()
        if in_channels < 1 or hidden < 1:
            raise ValueError(f"in_channels and hidden must be >= 1, got {in_channels}, {hidden}")
        self.block = DomainAdaptationBlock(channels=in_channels, layers=block)
        self.conv1 = nn.Conv2d(in_channels, hidden, kernel_size=3, stride=2, padding=1)
        self.conv2 = nn.Conv2d(hidden, hidden, kernel_size=3, stride=2, padding=1)
        self.act = nn.LeakyReLU(LEAKY_SLOPE, inplace=True)
        self.fc = nn.Linear(hidden, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, in_channels, h, w) -> (B, 2) logits."""
        x = self.act(self.conv1(self.block(features)))
        x = self.act(self.conv2(x))
        return self.fc(x.mean(dim=(2, 3)))


@dataclass
class DDLTerms:
    """The parts of one L_DDL evaluation, all 0-d float32 tensors on the logits' device.

    ``total`` is the loss ``species_weight * species + domain``. ``domain_acc`` and
    ``species_acc`` are measured against the TRUE labels (also for the confusion loss, whose
    targets are flipped) with a logit > 0 meaning target / animal; ``domain_acc`` is NaN when no
    sample is an animal.
    """

    total: torch.Tensor
    domain: torch.Tensor
    domain_acc: torch.Tensor
    species: torch.Tensor
    species_acc: torch.Tensor

    def detach(self) -> DDLTerms:
        """The same terms cut from the graph (for logging)."""
        return DDLTerms(*(getattr(self, name).detach() for name in _TERM_NAMES))

    def scalars(self) -> dict[str, float]:
        """``{name: float}`` for logging; reads the values back (one host sync per term)."""
        return {name: float(getattr(self, name)) for name in _TERM_NAMES}


_TERM_NAMES = ("total", "domain", "domain_acc", "species", "species_acc")


def ddl_loss(
    logits: torch.Tensor,
    *,
    is_animal: torch.Tensor,
    is_target: torch.Tensor,
    flip_labels: bool = False,
    species_weight: float = 0.0,
) -> DDLTerms:
    """The paper's domain discrimination loss L_DDL = w1 * BCE(species) + BCE(domain).

    The species term (animal vs human) covers every sample, the domain term (target vs not) the
    animal samples only (a human sample's ``is_target`` is ignored). Unlike the paper, which
    sums over samples, each term is the MEAN over the samples it covers, so the loss (and the
    weights alpha, beta around it) does not depend on the batch size or on the animal/human
    mix. Computed from logits with ``binary_cross_entropy_with_logits`` in float32, without host
    syncs. Without human samples the species term only teaches the head a constant: runs
    without a human source pass ``species_weight`` 0 (the paper's w1 has no meaning there).

    Args:
        logits: (B, 2) discriminator logits, column ``DOMAIN`` read; B >= 1.
        is_animal: (B,) bool (or 0/1), the paper's y_i.
        is_target: (B,) bool (or 0/1), the paper's z_i.
        flip_labels: score against the flipped labels 1 - z and 1 - y instead (the trunk's
            confusion loss in ``"alternating"`` mode); the accuracies still use the true labels.
        species_weight: the paper's w1 (>= 0) on the species term.

    Returns:
        ``DDLTerms``; ``domain`` is 0 (and ``domain_acc`` NaN) when no sample is an animal.
    """
    if logits.dim() != 2 or logits.shape[1] != 2 or logits.shape[0] < 1:
        raise ValueError(f"logits must be (B, 2) with B >= 1, got {tuple(logits.shape)}")
    batch = logits.shape[0]
    for name, labels in (("is_animal", is_animal), ("is_target", is_target)):
        if tuple(labels.shape) != (batch,):
            raise ValueError(
                f"{name} must be ({batch},) to match logits, got {tuple(labels.shape)}"
            )
    logits = logits.float()
    animal = is_animal.to(device=logits.device, dtype=torch.bool)
    target = is_target.to(device=logits.device, dtype=torch.bool)
    animal_f = animal.float()
    domain_labels = target.float()
    species_labels = animal_f
    if flip_labels:
        domain_labels = 1.0 - domain_labels
        species_labels = 1.0 - species_labels

    domain_logits = logits[:, DOMAIN]
    num_animals = animal_f.sum()
    per_sample = F.binary_cross_entropy_with_logits(domain_logits, domain_labels, reduction="none")
    domain = (per_sample * animal_f).sum() / num_animals.clamp_min(1.0)
    correct = ((domain_logits > 0) == target).float()
    domain_acc = (correct * animal_f).sum() / num_animals  # 0 / 0 = NaN without animals

    species_logits = logits[:, SPECIES]
    species = F.binary_cross_entropy_with_logits(species_logits, species_labels)
    species_acc = ((species_logits > 0) == animal).float().mean()
    total = domain + species_weight * species if species_weight else domain
    return DDLTerms(
        total=total,
        domain=domain,
        domain_acc=domain_acc,
        species=species,
        species_acc=species_acc,
    )


def feature_channels(model: nn.Module, size: tuple[int, int]) -> int:
    """Channels C of the features ``model(x, return_features=True)`` returns, the
    discriminator's input: the hourglass's are ``model.channels`` wide, SimpleBaseline's and
    LPN's are their deconvolution head's (256 at the published widths). Measured by one
    eval-mode forward of a zero (1, 3, h, w) batch on the model's device, ``size`` = (w, h)
    the run's input; the model's training mode is restored and no statistic changes."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            x = torch.zeros(1, 3, size[1], size[0], device=device)
            _, features = model(x, return_features=True)
    finally:
        model.train(was_training)
    return int(features.shape[1])


class DomainAdversary(nn.Module):
    """A ``DomainDiscriminator``, its Adam optimiser and the min-max bookkeeping of WS-CDA.

    Args:
        in_channels: channels C of the trunk features (``feature_channels``; the hourglass's
            ``channels``).
        mode: a key of ``ADVERSARY_MODES``.
        alpha, beta: the paper's loss weights; the trunk sees the adversarial term with weight
            ``coeff(progress) = (|alpha| / beta) * dann_ramp(progress, ramp_gamma)`` relative to
            its pose loss. ``alpha`` of either sign: the paper's -1, or |alpha| as configs saved
            before that sign was accepted. ``alpha = 0`` turns adaptation off for the trunk.
        ramp_gamma: the DANN schedule's gamma.
        hidden: discriminator width.
        lr: the discriminator's (and block's) Adam learning rate.
        block: layers of WS-CDA's domain-adaptation block between the (reversed) features and
            the discriminator; 0 = none, the ``state_dict`` of adversaries saved before it.
        species_weight: the paper's w1 on the species (animal vs human) term of L_DDL; 0 for
            runs without a human source.
            A deeper discriminator wins sooner, and under "grl" (the saturating min-max) one
            that is sure of every sample leaves the trunk no gradient (seen in the sign test's
            toy at lr 1e-2): lower ``lr`` or use "alternating" with a block.

    Use, per training step (``progress`` = fraction of training done; features from
    ``model(x, return_features=True)``)::

        # mode "grl"
        adv_loss, terms = adversary.trunk_loss(features, is_animal=a, is_target=t, progress=p)
        (pose_loss + adv_loss).backward(); optimizer.step(); adversary.step()

        # mode "alternating"
        terms = adversary.discriminator_step(features.detach(), is_animal=a, is_target=t)
        adv_loss, _ = adversary.trunk_loss(features, is_animal=a, is_target=t, progress=p)
        (pose_loss + adv_loss).backward(); optimizer.step(); adversary.step()  # a no-op

    The discriminator runs in float32 with autocast off, so the trunk may run under bf16
    autocast. Move the adversary with ``.to(device)`` before its first step (the optimiser
    holds its parameters). ``state_dict()`` holds the discriminator's parameters and, as extra
    state, its optimiser's state, so a run resumes exactly. Under DistributedDataParallel call
    ``distribute(...)`` once so the discriminator's gradients are averaged across processes.
    In "grl" mode the joint backward leaves gradients on the discriminator: call ``step()``
    after every such backward, and log terms of extra forwards under ``torch.no_grad()``.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        mode: str = "grl",
        alpha: float = PAPER_ALPHA,
        beta: float = PAPER_BETA,
        ramp_gamma: float = DANN_GAMMA,
        hidden: int = DISCRIMINATOR_HIDDEN,
        lr: float = DISCRIMINATOR_LR,
        block: int = 0,
        species_weight: float = 0.0,
    ) -> None:
        super().__init__()
        if mode not in ADVERSARY_MODES:
            raise ValueError(f"unknown adversary mode {mode!r}; valid: {sorted(ADVERSARY_MODES)}")
        if beta <= 0:
            raise ValueError(f"beta (the pose-loss weight) must be > 0, got {beta}")
        if not species_weight >= 0:
            raise ValueError(f"species_weight (w1) must be >= 0, got {species_weight}")
        self.species_weight = float(species_weight)
        self.mode = mode
        self.alpha = alpha
        self.beta = beta
        self.ramp_gamma = ramp_gamma
        self.block_layers = block
        self.discriminator = DomainDiscriminator(
            in_channels=in_channels, hidden=hidden, block=block
        )
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr)
        # What the discriminator's trainable forward goes through (DDP-wrapped by distribute()).
        # A tuple, so it is not registered as a submodule: state_dict holds the weights once.
        self._trainable: tuple[nn.Module] = (self.discriminator,)

    def distribute(self, *, device_ids: list[int] | None = None) -> None:
        """Wrap the discriminator in DistributedDataParallel (call after ``.to(device)``)."""
        ddp = nn.parallel.DistributedDataParallel(self.discriminator, device_ids=device_ids)
        self._trainable = (ddp,)

    def coeff(self, progress: float) -> float:
        """The adversarial weight relative to the pose loss at ``progress`` in [0, 1]."""
        return abs(self.alpha) / self.beta * dann_ramp(progress, self.ramp_gamma)

    def _logits(
        self, features: torch.Tensor, net: Callable[[torch.Tensor], torch.Tensor]
    ) -> torch.Tensor:
        """(B, C, h, w) features of any float dtype -> (B, 2) float32 logits, autocast off."""
        if features.dim() != 4:
            raise ValueError(f"features must be (B, C, h, w), got {tuple(features.shape)}")
        with torch.autocast(device_type=features.device.type, enabled=False):
            return net(features.float())

    def _ddl(
        self,
        logits: torch.Tensor,
        is_animal: torch.Tensor,
        is_target: torch.Tensor,
        *,
        flip: bool = False,
    ) -> DDLTerms:
        return ddl_loss(
            logits,
            is_animal=is_animal,
            is_target=is_target,
            flip_labels=flip,
            species_weight=self.species_weight,
        )

    def trunk_loss(
        self,
        features: torch.Tensor,
        *,
        is_animal: torch.Tensor,
        is_target: torch.Tensor,
        progress: float,
    ) -> tuple[torch.Tensor, DDLTerms]:
        """The adversarial loss to add (unscaled) to the pose loss before ``backward``.

        ``"grl"``: returns L_DDL of the discriminator on ``grad_reverse(features, coeff)``; its
        backward gives the discriminator d L_DDL and the trunk ``-coeff * d L_DDL / d features``.
        ``"alternating"``: returns ``coeff * L_conf`` where L_conf is ``ddl_loss`` with flipped
        labels (BCE of the domain head against 1 - z, the non-saturating GAN form of "fool the
        discriminator"; it keeps useful gradients when the discriminator is confident, where
        maximising L_DDL directly would saturate). The discriminator is evaluated with detached
        parameters, so no gradient reaches them.

        Args:
            features: (B, C, h, w) trunk features, attached to the trunk's graph.
            is_animal, is_target: (B,) labels as in ``ddl_loss``.
            progress: fraction of training done, for the ramp.

        Returns:
            ``(loss, terms)``: ``loss`` a 0-d float32 tensor; ``terms`` the detached L_DDL parts
            ("grl") or confusion-loss parts ("alternating"), accuracies w.r.t. the true labels.
        """
        coeff = self.coeff(progress)
        if self.mode == "grl":
            reversed_features = grad_reverse(features, coeff)
            terms = self._ddl(
                self._logits(reversed_features, self._trainable[0]), is_animal, is_target
            )
            return terms.total, terms.detach()
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}

        def frozen_forward(x: torch.Tensor) -> torch.Tensor:
            return torch.func.functional_call(self.discriminator, frozen, (x,))

        logits = self._logits(features, frozen_forward)
        terms = self._ddl(logits, is_animal, is_target, flip=True)
        return coeff * terms.total, terms.detach()

    def discriminator_step(
        self, features: torch.Tensor, *, is_animal: torch.Tensor, is_target: torch.Tensor
    ) -> DDLTerms:
        """One Adam step of the discriminator on L_DDL of ``features`` (detached here).

        The ``"alternating"`` mode's first half; in any mode also a way to train a discriminator
        on a frozen trunk. Returns the detached L_DDL terms before the step.
        """
        self.optimizer.zero_grad(set_to_none=True)
        terms = self._ddl(self._logits(features.detach(), self._trainable[0]), is_animal, is_target)
        terms.total.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return terms.detach()

    def step(self) -> None:
        """``"grl"``: step the discriminator on the gradients the joint backward left, then zero
        them. ``"alternating"``: nothing (``discriminator_step`` already stepped)."""
        if self.mode == "grl":
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)

    def get_extra_state(self) -> dict:
        """Saved with ``state_dict()``: the discriminator optimiser's state."""
        return {"optimizer": self.optimizer.state_dict()}

    def set_extra_state(self, state: dict) -> None:
        """Restores the optimiser state written by ``get_extra_state``."""
        if not isinstance(state, dict) or "optimizer" not in state:
            raise ValueError("DomainAdversary state: '_extra_state' must hold {'optimizer': ...}")
        saved = sum(len(group["params"]) for group in state["optimizer"]["param_groups"])
        ours = sum(len(group["params"]) for group in self.optimizer.param_groups)
        if saved != ours:
            raise ValueError(
                f"DomainAdversary state: the saved discriminator optimiser holds {saved} "
                f"parameter tensors, this adversary {ours} (domain-adaptation block of "
                f"{self.block_layers} layers); load it with the adapt.da_block it was saved with"
            )
        self.optimizer.load_state_dict(state["optimizer"])
