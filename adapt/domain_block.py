"""WS-CDA's domain-adaptation block: residual 3x3 convs between the trunk and the discriminator
(Cao et al., ICCV 2019, arXiv 1908.05806; where it sits and why: ``animalpose.adapt.domain``).

It reads the trunk features at their own width and keeps their shape, so the discriminator after
it is unchanged. It belongs to the discriminator's side of the gradient reversal: the pose model
never reads its output and its weights are saved with the ``DomainAdversary``, not the model.

Shapes: B batch; features (B, C, h, w).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["LEAKY_SLOPE", "DomainAdaptationBlock"]

#: Negative slope of the discriminator's LeakyReLUs (the DCGAN discriminator's 0.2, Radford et
#: al. 2016): a plain ReLU lets the trunk "win" by pushing features where the discriminator's
#: units are dead, which stops its gradients without removing any domain information.
LEAKY_SLOPE = 0.2


class DomainAdaptationBlock(nn.Module):
    """``layers`` residual layers ``x <- x + LeakyReLU(conv3x3(x))`` at ``channels`` width.

    No normalisation layers (as ``DomainDiscriminator``: batch statistics over a mixed-domain batch
    would leak the domain mix into every sample). Each conv starts at zero, so a fresh block is
    the identity and a fresh adversary starts as the block-less one; the residual form keeps the
    trunk's gradient path through it short. ``layers = 0`` holds no parameters (and adds no
    ``state_dict`` keys): the identity.

    ``forward``: (B, channels, h, w) -> (B, channels, h, w).
    """

    def __init__(self, *, channels: int, layers: int = 0) -> None:
        super().__init__()
        if layers < 0:
            raise ValueError(
                f"the domain-adaptation block's layer count (adapt.da_block) must be >= 0, "
                f"got {layers}; 0 turns the block off"
            )
        if channels < 1:
            raise ValueError(f"channels must be >= 1, got {channels}")
        self.layers = nn.ModuleList(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1) for _ in range(layers)
        )
        for conv in self.layers:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, channels, h, w) -> (B, channels, h, w)."""
        x = features
        for conv in self.layers:
            x = x + self.act(conv(x))
        return x
