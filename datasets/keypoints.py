"""Keypoint specs: names, flip pairs by name, part groups, skeleton; validated at import.

Shape legend used across animalpose: B batch, K keypoints, H x W heatmap, coordinates (x, y),
sizes (w, h), 0-based pixels with pixel centres on integer coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np

__all__ = [
    "KeypointSpec",
    "ANIMAL18",
    "SPECS",
    "TIGER_PERMUTATION",
    "VERTEX_TABLES",
    "get_spec",
]


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
    """

    name: str
    keypoints: tuple[str, ...]
    flip_pairs: tuple[tuple[str, str], ...]
    parts: Mapping[str, tuple[str, ...]]
    skeleton: tuple[tuple[str, str], ...]
    sigmas: tuple[float, ...] | None = None
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


# The 18 keypoints of TigDog and the reference's synthetic animals, in the reference's model
# order (docs/reference_compat.md §1.3). "hip" is the single root of the tail; the "back elbow"
# is anatomically the stifle and the "back knee" the hock, kept under the reference's names.
_ANIMAL18_NAMES = (
    "left_eye",
    "right_eye",
    "chin",
    "left_front_hoof",
    "right_front_hoof",
    "left_back_hoof",
    "right_back_hoof",
    "hip",
    "left_front_knee",
    "right_front_knee",
    "left_back_knee",
    "right_back_knee",
    "left_shoulder",
    "right_shoulder",
    "left_front_elbow",
    "right_front_elbow",
    "left_back_elbow",
    "right_back_elbow",
)


def _left_right_pairs(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple((n, "right_" + n[5:]) for n in names if n.startswith("left_"))


ANIMAL18 = KeypointSpec(
    name="animal18",
    keypoints=_ANIMAL18_NAMES,
    flip_pairs=_left_right_pairs(_ANIMAL18_NAMES),
    parts={
        "eye": ("left_eye", "right_eye"),
        "chin": ("chin",),
        "hoof": ("left_front_hoof", "right_front_hoof", "left_back_hoof", "right_back_hoof"),
        "hip": ("hip",),
        "knee": ("left_front_knee", "right_front_knee", "left_back_knee", "right_back_knee"),
        "shoulder": ("left_shoulder", "right_shoulder"),
        "elbow": ("left_front_elbow", "right_front_elbow", "left_back_elbow", "right_back_elbow"),
    },
    skeleton=(
        ("left_eye", "right_eye"),
        ("left_eye", "chin"),
        ("right_eye", "chin"),
        ("chin", "left_shoulder"),
        ("chin", "right_shoulder"),
        ("left_shoulder", "right_shoulder"),
        ("left_shoulder", "hip"),
        ("right_shoulder", "hip"),
        ("left_shoulder", "left_front_elbow"),
        ("left_front_elbow", "left_front_knee"),
        ("left_front_knee", "left_front_hoof"),
        ("right_shoulder", "right_front_elbow"),
        ("right_front_elbow", "right_front_knee"),
        ("right_front_knee", "right_front_hoof"),
        ("hip", "left_back_elbow"),
        ("left_back_elbow", "left_back_knee"),
        ("left_back_knee", "left_back_hoof"),
        ("hip", "right_back_elbow"),
        ("right_back_elbow", "right_back_knee"),
        ("right_back_knee", "right_back_hoof"),
    ),
)

SPECS: dict[str, KeypointSpec] = {"animal18": ANIMAL18}


def get_spec(name: str) -> KeypointSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint spec {name!r}; known: {sorted(SPECS)}") from None


# TigDog stores the tiger's slots 8-11 and 14-17 swapped relative to the model order
# (docs/reference_compat.md §1.2). Applying it to TigDog tiger landmarks gives model order; it is
# its own inverse.
TIGER_PERMUTATION: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7, 14, 15, 16, 17, 12, 13, 8, 9, 10, 11)
if sorted(TIGER_PERMUTATION) != list(range(18)) or any(
    TIGER_PERMUTATION[TIGER_PERMUTATION[i]] != i for i in range(18)
):
    raise AssertionError("TIGER_PERMUTATION must be an involution of 0..17")

# Rows of the reference's (3299, 3) per-vertex `_kpts.npy` arrays that are the 18 keypoints,
# in model order (docs/reference_compat.md §1.1). Other animals: pass a table of 18 rows
# (see animalpose.datasets.formats.synthetic).
VERTEX_TABLES: dict[str, tuple[int, ...]] = {
    "horse": (
        1718,
        1684,
        1271,
        1634,
        1650,
        1643,
        1659,
        925,
        392,
        564,
        993,
        726,
        1585,
        1556,
        427,
        1548,
        967,
        877,
    ),
    "tiger": (
        2753,
        2679,
        2032,
        1451,
        1287,
        3085,
        1632,
        229,
        1441,
        1280,
        2201,
        1662,
        266,
        158,
        270,
        152,
        219,
        129,
    ),
    # The built-in generator's dm_control dog (datasets/generate.py) writes its 18 keypoints in
    # rows 0..17 of each _kpts.npy, followed by projected skin vertices.
    "dog": tuple(range(18)),
}
for _animal, _rows in VERTEX_TABLES.items():
    if len(_rows) != ANIMAL18.num_keypoints or len(set(_rows)) != len(_rows):
        raise AssertionError(f"vertex table for {_animal} must list 18 distinct rows")
