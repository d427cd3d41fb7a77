"""Entry points behind ``adapt/ccssl.py``, ``adapt/wscda.py`` and ``adapt/uda_animal.py``.

The scripts run the same ``AdaptTrainer``; they differ only in their defaults (CC-SSL:
pseudo-label rounds on, discriminator off; WS-CDA: discriminator on, pseudo-labels off;
UDA-Animal: ``adapt.uda.UDA_SETTINGS``). A config file that sets both pseudo-labels and the
discriminator (``configs/ccssl_wscda.yaml``) runs the combination through any of them.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from animalpose.adapt.config import ADAPT_FLAGS, AdaptConfig, AdaptSection
from animalpose.adapt.uda import UDA_SETTINGS
from animalpose.train.cli import checked_output, reference_input, run_training
from animalpose.train.device import init_distributed
from animalpose.train.flag_parser import parse_config

__all__ = ["UDAConfig", "WSCDAConfig", "ccssl_main", "uda_main", "wscda_main"]


def _wscda_section() -> AdaptSection:
    return AdaptSection(pseudo_labels=False, adversarial=True)


@dataclass(kw_only=True)
class WSCDAConfig(AdaptConfig):
    """WS-CDA's defaults: the discriminator on, no pseudo-labels (PPLO: configs/wscda_pplo.yaml)."""

    adapt: AdaptSection = field(default_factory=_wscda_section)


def _uda_section() -> AdaptSection:
    return AdaptSection(**dict(UDA_SETTINGS))


@dataclass(kw_only=True)
class UDAConfig(AdaptConfig):
    """UDA-Animal's defaults (``UDA_SETTINGS``; the full preset: configs/uda_animal.yaml)."""

    adapt: AdaptSection = field(default_factory=_uda_section)


def _run(argv: list[str] | None, *, config_type: type, description: str) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from animalpose.adapt.trainer import AdaptTrainer  # after argument parsing: fast --help

    def body() -> None:
        cfg, ns = parse_config(
            argv, flags=ADAPT_FLAGS, config_type=config_type, description=description
        )
        init_distributed()
        cfg = reference_input(cfg, ns)  # a reference source model: its input normalisation
        # No used-folder check here: an adaptation folder continues its own run by itself and
        # refuses one with other settings (adapt/trainer.py); --resume names the source model.
        with checked_output(cfg):
            AdaptTrainer(cfg).fit()

    return run_training(body)


def ccssl_main(argv: list[str] | None = None) -> int:
    """``python adapt/ccssl.py --resume SOURCE_CKPT ...`` (the reference's CCSSL.py flags)."""
    return _run(
        argv,
        config_type=AdaptConfig,
        description=(
            "CC-SSL: adapt a source model to target frames with consistency-checked pseudo-labels "
            "(flags of the reference's CCSSL.py; see docs/adaptation.md)."
        ),
    )


def wscda_main(argv: list[str] | None = None) -> int:
    """``python adapt/wscda.py --resume SOURCE_CKPT ...``."""
    return _run(
        argv,
        config_type=WSCDAConfig,
        description=(
            "WS-CDA: adapt a source model with a domain discriminator on trunk features "
            "(+ PPLO pseudo-label rounds with configs/wscda_pplo.yaml; see docs/adaptation.md)."
        ),
    )


def uda_main(argv: list[str] | None = None) -> int:
    """``python adapt/uda_animal.py --resume SOURCE_CKPT ...``."""
    return _run(
        argv,
        config_type=UDAConfig,
        description=(
            "UDA-Animal-Pose (Li & Lee 2021): pseudo-labels once, small-loss keypoints, a mean "
            "teacher, self-distillation and mixup (see docs/adaptation.md)."
        ),
    )
