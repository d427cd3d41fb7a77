"""``KeypointSpec``: an ordered keypoint set declared by name (flip pairs, parts, skeleton, OKS
sigmas, half-body sets), validated on construction. The specs themselves: ``keypoints.py``
(``ANIMAL18``, ``SPECS``) and ``keypoint_sets.py`` (the public data sets').
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

__all__ = ["KeypointSpec", "left_right_pairs", "right_left_pairs"]


@dataclass(frozen=True)
class KeypointSpec:
    """An ordered keypoint set, declared once by name and checked on construction.

    Args:
        name: short identifier saved in checkpoints (``"animal18"``).
        keypoints: names in model (channel) order.
        flip_pairs: left/right name pairs swapped by a horizontal flip; unpaired names map to
            themselves.
        parts: reporting groups, part name -> keypoint names (each keypoint in exactly one part).
        skeleton: name pairs drawn as limbs.
        sigmas: optional per-keypoint OKS sigmas (one per keypoint).
        upper_body: names of the upper-body keypoints for half-body augmentation (the rest is
            the lower body); empty when the spec has no such split.
    """

    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[str, str], ...]
    parts: Mapping[str, tuple[str, ...]]
    skeleton: tuple[tuple[str, str], ...]
    sigmas: tuple[float, ...] | None = None
    upper_body: tuple[str, ...] = ()
    _index: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = self.keypoints
        if len(set(names)) != len(names):
            dupes = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"spec {self.name!r}: duplicate keypoint names {dupes}")
        index = {n: i for i, n in enumerate(names)}
        object.__setattr__(self, "_index", MappingProxyType(index))
        object.__setattr__(self, "parts", MappingProxyType(dict(self.parts)))
        seen: set[str] = set()
        for a, b in self.flip_pairs:
            for n in (a, b):
                if n not in index:
                    raise ValueError(f"spec {self.name!r}: flip pair names unknown keypoint {n!r}")
                if n in seen:
                    raise ValueError(f"spec {self.name!r}: keypoint {n!r} is in two flip pairs")
                seen.add(n)
            if a == b:
                raise ValueError(
                    f"spec {self.name!r}: flip pair ({a!r}, {b!r}) pairs a name with itself"
                )
        perm = self.flip_index
        if not np.array_equal(perm[perm], np.arange(len(names))):
            raise ValueError(f"spec {self.name!r}: flip map is not an involution")
        in_parts = [n for members in self.parts.values() for n in members]
        for n in in_parts:
            if n not in index:
                raise ValueError(f"spec {self.name!r}: part lists unknown keypoint {n!r}")
        if sorted(in_parts) != sorted(names):
            raise ValueError(f"spec {self.name!r}: parts must cover every keypoint exactly once")
        for a, b in self.skeleton:
            for n in (a, b):
                if n not in index:
                    raise ValueError(f"spec {self.name!r}: skeleton names unknown keypoint {n!r}")
        if self.sigmas is not None and len(self.sigmas) != len(names):
            raise ValueError(
                f"spec {self.name!r}: {len(self.sigmas)} sigmas for {len(names)} keypoints"
            )
        if self.sigmas is not None and not all(np.isfinite(s) and s > 0 for s in self.sigmas):
            raise ValueError(f"spec {self.name!r}: sigmas must be finite and > 0")
        for n in self.upper_body:
            if n not in index:
                raise ValueError(f"spec {self.name!r}: upper_body names unknown keypoint {n!r}")
        if len(set(self.upper_body)) != len(self.upper_body):
            raise ValueError(f"spec {self.name!r}: upper_body lists a keypoint twice")

    @property
    def num_keypoints(self) -> int:
        return len(self.keypoints)

    def index(self, name: str) -> int:
        """Channel of keypoint ``name``; raises KeyError listing the valid names."""
        try:
            return self._index[name]
        except KeyError:
            raise KeyError(
                f"{name!r} is not a keypoint of {self.name!r}: {list(self.keypoints)}"
            ) from None

    @property
    def flip_index(self) -> np.ndarray:
        """(K,) int64 permutation: channel i of a flipped image holds keypoint ``flip_index[i]``."""
        perm = np.arange(len(self.keypoints), dtype=np.int64)
        for a, b in self.flip_pairs:
            ia, ib = self._index[a], self._index[b]
            perm[ia], perm[ib] = ib, ia
        return perm

    @property
    def part_indices(self) -> dict[str, list[int]]:
        """Part name -> channel indices, in declaration order."""
        return {part: [self._index[n] for n in members] for part, members in self.parts.items()}

    @property
    def skeleton_index(self) -> list[tuple[int, int]]:
        return [(self._index[a], self._index[b]) for a, b in self.skeleton]

    @property
    def upper_body_index(self) -> list[int]:
        """Channels of ``upper_body``, ascending (empty when the spec declares none)."""
        return sorted(self._index[n] for n in self.upper_body)

    @property
    def lower_body_index(self) -> list[int]:
        """Channels not in ``upper_body``, ascending (empty when the spec declares none)."""
        if not self.upper_body:
            return []
        upper = set(self.upper_body_index)
        return [i for i in range(len(self.keypoints)) if i not in upper]


def left_right_pairs(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The (left_x, right_x) flip pairs of the ``left_``-prefixed ``names``."""
    return tuple((n, "right_" + n[5:]) for n in names if n.startswith("left_"))


def right_left_pairs(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """The (left_x, right_x) flip pairs of the ``right_``-prefixed ``names`` (in their order)."""
    return tuple(("left_" + n[6:], n) for n in names if n.startswith("right_"))
