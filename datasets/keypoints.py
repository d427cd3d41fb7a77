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

import numpy as np

from animalpose.datasets.keypoint_sets import (
    ANIMALPOSE20,
    AP10K17,
    COCO17,
    COCO_SKELETON_1BASED,
    MPII16,
)
from animalpose.datasets.keypoint_spec import KeypointSpec, left_right_pairs

__all__ = [
    "KeypointSpec",
    "ANIMAL18",
    "ANIMALPOSE20",
    "AP10K17",
    "COCO17",
    "MPII16",
    "SPECS",
    "COCO_SKELETON_1BASED",
    "TIGER_PERMUTATION",
    "VERTEX_TABLES",
    "get_spec",
    "keypoint_mapping",
]


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

ANIMAL18 = KeypointSpec(
    name="animal18",
    keypoints=_ANIMAL18_NAMES,
    flip_pairs=left_right_pairs(_ANIMAL18_NAMES),
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
