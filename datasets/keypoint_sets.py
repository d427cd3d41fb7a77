"""Keypoint specs of public data sets: ``COCO17`` (COCO person), ``MPII16`` (MPII human pose),
``ANIMALPOSE20`` (Animal-Pose, the WS-CDA paper's data set) and ``AP10K17`` (AP-10K).

Names are the data sets' own words and mean the same point wherever they occur (``left_eye``,
``nose``, ``tail_base``), so ``keypoints.keypoint_mapping`` pairs specs by name. All are in
``keypoints.SPECS``; import them from ``animalpose.datasets.keypoints``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from animalpose.datasets.keypoint_spec import KeypointSpec, left_right_pairs, right_left_pairs

__all__ = [
    "ANIMALPOSE20",
    "ANIMALPOSE20_SIGMAS",
    "AP10K17",
    "AP10K17_SIGMAS",
    "COCO17",
    "COCO17_SIGMAS",
    "COCO_SKELETON_1BASED",
    "MPII16",
]

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
    flip_pairs=left_right_pairs(_COCO17_NAMES),
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


MPII16 = KeypointSpec(
    name="mpii16",
    keypoints=_MPII16_NAMES,
    flip_pairs=right_left_pairs(_MPII16_NAMES),
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
    flip_pairs=left_right_pairs(_ANIMALPOSE20_NAMES),
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
#: COCO's values laid over AP-10K's order position by position (its first three, eyes and nose,
#: as 0.025, 0.025, 0.026), so left and right of a pair can
#: differ (left_shoulder 0.079, right_shoulder 0.072). Kept as published so AP
#: numbers compare with mmpose's and the AP-10K paper's.
AP10K17_SIGMAS: tuple[float, ...] = (0.025, 0.025, 0.026, *COCO17_SIGMAS[3:])

AP10K17 = KeypointSpec(
    name="ap10k17",
    keypoints=_AP10K17_NAMES,
    flip_pairs=left_right_pairs(_AP10K17_NAMES),
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
