"""Keypoint specs: names, flip pairs by name, part groups, skeleton; validated at import.

Specs: ``ANIMAL18`` (TigDog and the reference's synthetic animals), ``COCO17`` (COCO person),
``MPII16`` (MPII human pose), ``ANIMALPOSE20`` (Animal-Pose, the WS-CDA paper's data set) and
``AP10K17`` (AP-10K). A name means the same point in every spec that has it (``left_eye``,
``nose``, ``tail_base``, ...), so ``keypoint_mapping`` pairs keypoints of two specs by name, never
by index. Names are the source data sets' own words: a human's ``left_elbow`` and AP-10K's
front-leg ``left_elbow`` share the word and so pair up; correspondences under different words
(mmpose pairs Animal-Pose's front elbow with AP-10K's shoulder) are not implied by a spec.

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
    "ANIMALPOSE20",
    "AP10K17",
    "COCO17",
    "MPII16",
    "SPECS",
    "TIGER_PERMUTATION",
    "VERTEX_TABLES",
    "get_spec",
    "keypoint_mapping",
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

# COCO's `person` category (person_keypoints_*.json `categories[0]`), in the file's order.
_COCO17_NAMES = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

#: COCO's `person` skeleton exactly as the json stores it: 1-based keypoint indices.
COCO_SKELETON_1BASED: tuple[tuple[int, int], ...] = (
    (16, 14),
    (14, 12),
    (17, 15),
    (15, 13),
    (12, 13),
    (6, 12),
    (7, 13),
    (6, 7),
    (6, 8),
    (7, 9),
    (8, 10),
    (9, 11),
    (2, 3),
    (1, 2),
    (1, 3),
    (2, 4),
    (3, 5),
    (4, 6),
    (5, 7),
)

#: COCO keypoint OKS sigmas (pycocotools cocoeval.py `kpt_oks_sigmas`, there written as
#: [.26, .25, ...] / 10), in ``_COCO17_NAMES`` order.
COCO17_SIGMAS: tuple[float, ...] = (
    0.026,
    0.025,
    0.025,
    0.035,
    0.035,
    0.079,
    0.079,
    0.072,
    0.072,
    0.062,
    0.062,
    0.107,
    0.107,
    0.087,
    0.087,
    0.089,
    0.089,
)

COCO17 = KeypointSpec(
    name="coco17",
    keypoints=_COCO17_NAMES,
    flip_pairs=_left_right_pairs(_COCO17_NAMES),
    parts={
        "head": ("nose", "left_eye", "right_eye", "left_ear", "right_ear"),
        "shoulder": ("left_shoulder", "right_shoulder"),
        "elbow": ("left_elbow", "right_elbow"),
        "wrist": ("left_wrist", "right_wrist"),
        "hip": ("left_hip", "right_hip"),
        "knee": ("left_knee", "right_knee"),
        "ankle": ("left_ankle", "right_ankle"),
    },
    skeleton=tuple((_COCO17_NAMES[a - 1], _COCO17_NAMES[b - 1]) for a, b in COCO_SKELETON_1BASED),
    sigmas=COCO17_SIGMAS,
    # SimpleBaseline/HRNet lib/dataset/coco.py `upper_body_ids` (0..10): head and arms.
    upper_body=_COCO17_NAMES[:11],
)

# MPII's 16 joints in the order of the HRNet/SimpleBaseline MPII json (`joints` rows; HRNet
# lib/dataset/mpii.py flip pairs (0,5) (1,4) (2,3) (10,15) (11,14) (12,13)). Names shared with
# COCO17 where the joint is the same; MPII's own names: r_ankle, r_knee, r_hip, l_hip, l_knee,
# l_ankle, pelvis, thorax, upper_neck, head_top, r_wrist, r_elbow, r_shoulder, l_shoulder,
# l_elbow, l_wrist.
_MPII16_NAMES = (
    "right_ankle",
    "right_knee",
    "right_hip",
    "left_hip",
    "left_knee",
    "left_ankle",
    "pelvis",
    "thorax",
    "upper_neck",
    "head_top",
    "right_wrist",
    "right_elbow",
    "right_shoulder",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
)


def _right_left_pairs(names: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(("left_" + n[6:], n) for n in names if n.startswith("right_"))


MPII16 = KeypointSpec(
    name="mpii16",
    keypoints=_MPII16_NAMES,
    flip_pairs=_right_left_pairs(_MPII16_NAMES),
    parts={
        "ankle": ("right_ankle", "left_ankle"),
        "knee": ("right_knee", "left_knee"),
        "hip": ("right_hip", "left_hip"),
        # PCKh leaves pelvis and thorax out of its mean (HRNet mpii.py masks rows 6:8).
        "torso": ("pelvis", "thorax"),
        "head": ("upper_neck", "head_top"),
        "wrist": ("right_wrist", "left_wrist"),
        "elbow": ("right_elbow", "left_elbow"),
        "shoulder": ("right_shoulder", "left_shoulder"),
    },
    # HRNet mpii.py `parent_ids` [1, 2, 6, 6, 3, 4, 6, 6, 7, 8, 11, 12, 7, 7, 13, 14] as
    # (child, parent) name pairs, the pelvis (its own parent) left out.
    skeleton=(
        ("right_ankle", "right_knee"),
        ("right_knee", "right_hip"),
        ("right_hip", "pelvis"),
        ("left_hip", "pelvis"),
        ("left_knee", "left_hip"),
        ("left_ankle", "left_knee"),
        ("thorax", "pelvis"),
        ("upper_neck", "thorax"),
        ("head_top", "upper_neck"),
        ("right_wrist", "right_elbow"),
        ("right_elbow", "right_shoulder"),
        ("right_shoulder", "thorax"),
        ("left_shoulder", "thorax"),
        ("left_elbow", "left_shoulder"),
        ("left_wrist", "left_elbow"),
    ),
    # HRNet mpii.py `upper_body_ids` (7..15): thorax, neck, head and arms.
    upper_body=_MPII16_NAMES[7:],
)

# Animal-Pose (Cao et al., "Cross-Domain Adaptation for Animal Pose Estimation", ICCV 2019, the
# WS-CDA paper): the order of the `keypoints.json` the authors released
# (https://sites.google.com/view/animal-pose/), whose category lists left_eye, right_eye, nose,
# left_ear, right_ear, left/right front/back elbow, knee and paw, throat, withers, tailbase. Its
# ears are the ear bases (mmpose's L_EarBase); "tailbase" is spelled ``tail_base`` here to share
# the name with AP-10K's root of tail (the reader maps the file's spelling, formats/coco.py).
# mmpose (configs/_base_/datasets/animalpose.py) converts the earlier VOC-xml release into
# another order (L_Eye, R_Eye, L_EarBase, R_EarBase, Nose, Throat, TailBase, Withers, ...):
# readers map by name, so either file loads into this order.
_ANIMALPOSE20_NAMES = (
    "left_eye",
    "right_eye",
    "nose",
    "left_ear",
    "right_ear",
    "left_front_elbow",
    "right_front_elbow",
    "left_back_elbow",
    "right_back_elbow",
    "left_front_knee",
    "right_front_knee",
    "left_back_knee",
    "right_back_knee",
    "left_front_paw",
    "right_front_paw",
    "left_back_paw",
    "right_back_paw",
    "throat",
    "withers",
    "tail_base",
)

#: Animal-Pose OKS sigmas by name. The paper gives none; these are mmpose's
#: (configs/_base_/datasets/animalpose.py, "modified from" COCO's), kept value for value so AP
#: numbers compare with mmpose's, including its unequal left/right ear bases (0.026 / 0.035).
ANIMALPOSE20_SIGMAS: Mapping[str, float] = MappingProxyType(
    {
        "left_eye": 0.025,
        "right_eye": 0.025,
        "left_ear": 0.026,
        "right_ear": 0.035,
        "nose": 0.035,
        "throat": 0.10,
        "tail_base": 0.10,
        "withers": 0.10,
        "left_front_elbow": 0.107,
        "right_front_elbow": 0.107,
        "left_back_elbow": 0.107,
        "right_back_elbow": 0.107,
        "left_front_knee": 0.087,
        "right_front_knee": 0.087,
        "left_back_knee": 0.087,
        "right_back_knee": 0.087,
        "left_front_paw": 0.089,
        "right_front_paw": 0.089,
        "left_back_paw": 0.089,
        "right_back_paw": 0.089,
    }
)

ANIMALPOSE20 = KeypointSpec(
    name="animalpose20",
    keypoints=_ANIMALPOSE20_NAMES,
    flip_pairs=_left_right_pairs(_ANIMALPOSE20_NAMES),
    parts={
        "eye": ("left_eye", "right_eye"),
        "nose": ("nose",),
        "ear": ("left_ear", "right_ear"),
        "elbow": ("left_front_elbow", "right_front_elbow", "left_back_elbow", "right_back_elbow"),
        "knee": ("left_front_knee", "right_front_knee", "left_back_knee", "right_back_knee"),
        "paw": ("left_front_paw", "right_front_paw", "left_back_paw", "right_back_paw"),
        "body": ("throat", "withers", "tail_base"),
    },
    # mmpose's Animal-Pose skeleton, by name.
    skeleton=(
        ("left_eye", "right_eye"),
        ("left_eye", "left_ear"),
        ("right_eye", "right_ear"),
        ("left_eye", "nose"),
        ("right_eye", "nose"),
        ("nose", "throat"),
        ("throat", "withers"),
        ("tail_base", "withers"),
        ("throat", "left_front_elbow"),
        ("left_front_elbow", "left_front_knee"),
        ("left_front_knee", "left_front_paw"),
        ("throat", "right_front_elbow"),
        ("right_front_elbow", "right_front_knee"),
        ("right_front_knee", "right_front_paw"),
        ("tail_base", "left_back_elbow"),
        ("left_back_elbow", "left_back_knee"),
        ("left_back_knee", "left_back_paw"),
        ("tail_base", "right_back_elbow"),
        ("right_back_elbow", "right_back_knee"),
        ("right_back_knee", "right_back_paw"),
    ),
    sigmas=tuple(ANIMALPOSE20_SIGMAS[n] for n in _ANIMALPOSE20_NAMES),
    # mmpose's `type='upper'` keypoints: head, throat, withers and front legs.
    upper_body=(
        "left_eye",
        "right_eye",
        "nose",
        "left_ear",
        "right_ear",
        "throat",
        "withers",
        "left_front_elbow",
        "right_front_elbow",
        "left_front_knee",
        "right_front_knee",
        "left_front_paw",
        "right_front_paw",
    ),
)

# AP-10K (Yu et al., NeurIPS 2021 Datasets and Benchmarks): the order of its COCO-style json
# categories (left_eye, right_eye, nose, neck, root_of_tail, left_shoulder, left_elbow,
# left_front_paw, right_shoulder, ...; mmpose configs/_base_/datasets/ap10k.py lists the same
# order). "root_of_tail" is spelled ``tail_base`` (shared with Animal-Pose).
_AP10K17_NAMES = (
    "left_eye",
    "right_eye",
    "nose",
    "neck",
    "tail_base",
    "left_shoulder",
    "left_elbow",
    "left_front_paw",
    "right_shoulder",
    "right_elbow",
    "right_front_paw",
    "left_hip",
    "left_knee",
    "left_back_paw",
    "right_hip",
    "right_knee",
    "right_back_paw",
)

#: AP-10K OKS sigmas in ``_AP10K17_NAMES`` order: mmpose's (configs/_base_/datasets/ap10k.py),
#: COCO's values laid over AP-10K's order position by position, so left and right of a pair can
#: differ (left_shoulder 0.079, right_shoulder 0.072). Kept as published so AP
#: numbers compare with mmpose's and the AP-10K paper's.
AP10K17_SIGMAS: tuple[float, ...] = (
    0.025,
    0.025,
    0.026,
    0.035,
    0.035,
    0.079,
    0.079,
    0.072,
    0.072,
    0.062,
    0.062,
    0.107,
    0.107,
    0.087,
    0.087,
    0.089,
    0.089,
)

AP10K17 = KeypointSpec(
    name="ap10k17",
    keypoints=_AP10K17_NAMES,
    flip_pairs=_left_right_pairs(_AP10K17_NAMES),
    parts={
        "eye": ("left_eye", "right_eye"),
        "nose": ("nose",),
        "body": ("neck", "tail_base"),
        "shoulder": ("left_shoulder", "right_shoulder"),
        "elbow": ("left_elbow", "right_elbow"),
        "front_paw": ("left_front_paw", "right_front_paw"),
        "hip": ("left_hip", "right_hip"),
        "knee": ("left_knee", "right_knee"),
        "back_paw": ("left_back_paw", "right_back_paw"),
    },
    # mmpose's AP-10K skeleton, by name.
    skeleton=(
        ("left_eye", "right_eye"),
        ("left_eye", "nose"),
        ("right_eye", "nose"),
        ("nose", "neck"),
        ("neck", "tail_base"),
        ("neck", "left_shoulder"),
        ("left_shoulder", "left_elbow"),
        ("left_elbow", "left_front_paw"),
        ("neck", "right_shoulder"),
        ("right_shoulder", "right_elbow"),
        ("right_elbow", "right_front_paw"),
        ("tail_base", "left_hip"),
        ("left_hip", "left_knee"),
        ("left_knee", "left_back_paw"),
        ("tail_base", "right_hip"),
        ("right_hip", "right_knee"),
        ("right_knee", "right_back_paw"),
    ),
    sigmas=AP10K17_SIGMAS,
    # mmpose's `type='upper'` keypoints (its R_F_Paw is marked 'lower', a slip: the front paws
    # go with the front legs here).
    upper_body=(
        "left_eye",
        "right_eye",
        "nose",
        "neck",
        "left_shoulder",
        "left_elbow",
        "left_front_paw",
        "right_shoulder",
        "right_elbow",
        "right_front_paw",
    ),
)

SPECS: dict[str, KeypointSpec] = {
    "animal18": ANIMAL18,
    "coco17": COCO17,
    "mpii16": MPII16,
    "animalpose20": ANIMALPOSE20,
    "ap10k17": AP10K17,
}


def get_spec(name: str) -> KeypointSpec:
    try:
        return SPECS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint spec {name!r}; known: {sorted(SPECS)}") from None


def keypoint_mapping(source: KeypointSpec, target: KeypointSpec) -> tuple[np.ndarray, np.ndarray]:
    """Channels of the keypoints two specs share, paired by name.

    ``target_array[..., tgt, :] = source_array[..., src, :]`` moves every shared keypoint from
    ``source`` order to ``target`` order.

    Returns:
        ``(src, tgt)``: (M,) int64 arrays, source channel and target channel of each of the M
        shared names, in ``target`` order.

    Raises:
        ValueError: the specs share no keypoint name (names both specs).
    """
    pairs = [(source._index[n], j) for j, n in enumerate(target.keypoints) if n in source._index]
    if not pairs:
        raise ValueError(
            f"keypoint specs {source.name!r} and {target.name!r} share no keypoint name: "
            f"{list(source.keypoints)} vs {list(target.keypoints)}"
        )
    src, tgt = zip(*pairs, strict=True)
    return np.asarray(src, dtype=np.int64), np.asarray(tgt, dtype=np.int64)


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
