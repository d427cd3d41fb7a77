"""Which pseudo-labels train: a confidence threshold keeping a scheduled share of the labels.

Two schedules share one rule (pool every keypoint confidence, keep those above a quantile):

- ``"ccssl"``: the reference's curriculum (CCSSL/CCSSL.py, docs/reference_compat.md §5):
  ``p = max(1 - 0.02 (epoch + 10), 0.2)``, keep the top ``1 - p`` share. Keyed by round (default,
  ``curriculum_by="round"``: round r counts as the reference's epoch 10 r, so 20 / 40 / 60 / 80 %
  in rounds 0-3, 80 % after, whatever the round length) or by the epoch the round starts at.
- ``"pplo"``: PPLO's progressive rounds (Cao et al. ICCV 2019; docs/adaptation.md): round ``r``
  keeps ``shares[r]``, the last share repeating.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "CCSSL_EPOCH_OFFSET",
    "CCSSL_P_FLOOR",
    "CCSSL_P_PER_EPOCH",
    "CCSSL_ROUND_EPOCHS",
    "CURRICULA",
    "SELECTION_KINDS",
    "SelectionSchedule",
    "ccssl_keep_share",
    "select_top_share",
]

#: The reference's curriculum ``p = 1.0 - 0.02 * (epoch + 10)``, floored at ``0.2``
#: (CCSSL/CCSSL.py, "modify confidence score based on ranking").
CCSSL_P_PER_EPOCH = 0.02
CCSSL_EPOCH_OFFSET = 10
CCSSL_P_FLOOR = 0.2
#: The reference's epochs per pseudo-label round (CCSSL.py relabels every 10 of its 60 epochs):
#: the curriculum by round takes round r at the reference's epoch 10 r.
CCSSL_ROUND_EPOCHS = 10
#: What keys CC-SSL's curriculum (``adapt.curriculum_by``).
CURRICULA: dict[str, str] = {
    "round": "round r keeps the reference's share of epoch 10 r: 20/40/60/80 %, then 80 %",
    "epoch": "the share of the epoch the round starts at (as CCSSL.py; 10-epoch rounds: same)",
}
#: Shares are rounded to this many decimals so that float noise (``1 - 0.6000000000000001``)
#: never moves the quantile index ``int(p * n)`` by one.
_SHARE_DECIMALS = 12

#: Schedule kind -> what drives it.
SELECTION_KINDS: dict[str, str] = {
    "ccssl": "the reference's curriculum, by round or by epoch (`curriculum_by`)",
    "pplo": "a share per pseudo-label round from `shares`, the last repeating",
}


def ccssl_keep_share(epoch: int) -> float:
    """Share of pseudo-labels kept at ``epoch``: ``1 - max(1 - 0.02 (epoch + 10), 0.2)``.

    Epochs 0 / 10 / 20 / 30 / 40 / 50 -> 0.2 / 0.4 / 0.6 / 0.8 / 0.8 / 0.8.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be non-negative, got {epoch}")
    p = max(1.0 - CCSSL_P_PER_EPOCH * (epoch + CCSSL_EPOCH_OFFSET), CCSSL_P_FLOOR)
    return round(1.0 - p, _SHARE_DECIMALS)


def _check_share(share: float, what: str) -> float:
    share = float(share)
    if not (0.0 < share <= 1.0):
        raise ValueError(f"{what} must be in (0, 1], got {share}")
    return share


@dataclass(frozen=True)
class SelectionSchedule:
    """The keep share of a pseudo-label round.

    Attributes:
        kind: a ``SELECTION_KINDS`` key: ``"ccssl"`` (the curriculum) or ``"pplo"`` (shares).
        shares: PPLO's kept share per round, each in (0, 1]; the last one repeats.
        curriculum_by: a ``CURRICULA`` key: what keys the ``"ccssl"`` curriculum.
    """

    kind: str = "ccssl"
    shares: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8)
    curriculum_by: str = "round"

    def __post_init__(self) -> None:
        if self.kind not in SELECTION_KINDS:
            raise ValueError(
                f"unknown selection kind {self.kind!r}; valid: {sorted(SELECTION_KINDS)}"
            )
        if self.curriculum_by not in CURRICULA:
            raise ValueError(
                f"unknown curriculum_by {self.curriculum_by!r}; valid: {sorted(CURRICULA)}"
            )
        if len(self.shares) == 0:
            raise ValueError("shares must hold at least one share")
        shares = tuple(_check_share(s, f"shares[{i}]") for i, s in enumerate(self.shares))
        object.__setattr__(self, "shares", shares)  # frozen: normalise to a tuple of floats

    @classmethod
    def from_adapt(cls, adapt) -> SelectionSchedule:
        """The schedule an ``AdaptSection`` (``cfg.adapt``) asks for."""
        return cls(
            kind=adapt.selection, shares=tuple(adapt.pplo_shares), curriculum_by=adapt.curriculum_by
        )

    def keep_share(self, *, round_index: int, epoch: int) -> float:
        """Share of labels to keep in pseudo-label round ``round_index`` generated at ``epoch``."""
        if round_index < 0 or epoch < 0:
            raise ValueError(
                f"round_index and epoch must be non-negative, got {round_index}, {epoch}"
            )
        if self.kind == "ccssl":
            if self.curriculum_by == "round":
                return ccssl_keep_share(CCSSL_ROUND_EPOCHS * round_index)
            return ccssl_keep_share(epoch)
        return self.shares[min(round_index, len(self.shares) - 1)]

    def describe(self) -> str:
        """What drives the share, for logs and round records: ``"ccssl by round"``, ..."""
        if self.kind == "ccssl":
            return f"ccssl by {self.curriculum_by}"
        return f"pplo {'/'.join(f'{s:g}' for s in self.shares)}"


def select_top_share(confidence: np.ndarray, keep_share: float) -> tuple[np.ndarray, float]:
    """Keep the most confident ``keep_share`` of all keypoint labels.

    As the reference: pool every (finite) confidence, sort, threshold = the element at
    ``int(p * n)`` with ``p = 1 - keep_share``, keep ``confidence > threshold`` (ties at the
    threshold are dropped, so slightly less than the share may be kept). A share of 1 keeps
    every finite label (threshold just below the minimum; the reference's floor never gets
    there). The reference also pooled one extra 0 (its accumulator's initial value); we do not.

    Args:
        confidence: (N, K) float confidences (heatmap peaks); NaN/inf never count nor pass.
        keep_share: share in (0, 1].

    Returns:
        selected (N, K) bool and the threshold (NaN when no confidence is finite).
    """
    keep_share = _check_share(keep_share, "keep_share")
    conf = np.asarray(confidence, dtype=np.float64)
    if conf.ndim != 2:
        raise ValueError(f"confidence must be (N, K), got shape {conf.shape}")
    finite = np.isfinite(conf)
    values = np.sort(conf[finite])
    if values.size == 0:
        return np.zeros(conf.shape, dtype=bool), float("nan")
    p = round(1.0 - keep_share, _SHARE_DECIMALS)
    threshold = float(values[min(int(p * values.size), values.size - 1)])
    if keep_share >= 1.0:
        threshold = float(np.nextafter(values[0], -np.inf))  # keep everything finite
    selected = finite & (np.where(finite, conf, -np.inf) > threshold)
    return selected, threshold
