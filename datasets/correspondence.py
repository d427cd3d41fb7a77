"""Cross-species keypoint correspondences: which keypoint of a human spec stands in for which
keypoint of an animal spec (WS-CDA's human source domain, adapt/human_source.py).

``keypoint_mapping`` pairs two specs by equal names only (a COCO person and ``animal18`` share
the eyes and shoulders). ``CORRESPONDENCES`` adds, per (source spec, target spec), the pairs
whose names differ, from limb anatomy: a human arm is an animal's front leg and a human leg its
back leg, joint for joint from the body outwards as a quadruped's joints are homologous to ours
(shoulder -> shoulder, elbow -> front elbow, wrist -> front knee, the carpus; knee -> back elbow,
the stifle, ankle -> back knee, the hock). The animal's hooves (our fingertips and toes) have
no human keypoint in COCO or MPII, and ``animal18``'s single ``hip`` (on the croup) is no human
hip joint; MPII's ``pelvis`` is the nearest point and stands in for it. Left stays left: the
human's own left arm is the animal's own left front leg.

Checked at import: every name exists in its spec, no keypoint is used twice on either side, and
the pairing commutes with both specs' flips (a left/right mirror of the source maps onto the
mirror of the target), so a flip augmentation of human crops stays a correct label.
"""

from __future__ import annotations

import numpy as np

from animalpose.datasets.keypoint_spec import KeypointSpec
from animalpose.datasets.keypoints import SPECS

__all__ = ["CORRESPONDENCES", "correspondence", "correspondence_names"]

_ARM_LEG = (
    ("left_elbow", "left_front_elbow"),
    ("right_elbow", "right_front_elbow"),
    ("left_wrist", "left_front_knee"),
    ("right_wrist", "right_front_knee"),
    ("left_knee", "left_back_elbow"),
    ("right_knee", "right_back_elbow"),
    ("left_ankle", "left_back_knee"),
    ("right_ankle", "right_back_knee"),
)

#: (source spec name, target spec name) -> (source keypoint, target keypoint) pairs whose names
#: differ (equal names always pair; module docs).
CORRESPONDENCES: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("coco17", "animal18"): _ARM_LEG,
    ("mpii16", "animal18"): (*_ARM_LEG, ("pelvis", "hip")),
}


def correspondence_names(source: KeypointSpec, target: KeypointSpec) -> list[tuple[str, str]]:
    """(source name, target name) of every corresponding keypoint, in ``target`` order.

    Raises:
        ValueError: the specs share no keypoint (naming both specs and their keypoints).
    """
    extra = dict(CORRESPONDENCES.get((source.name, target.name), ()))
    inverse = {t: s for s, t in extra.items()}
    pairs = []
    for name in target.keypoints:
        if name in inverse:
            pairs.append((inverse[name], name))
        elif name in source.keypoints and name not in extra:
            pairs.append((name, name))
    if not pairs:
        raise ValueError(
            f"keypoint specs {source.name!r} and {target.name!r} share no keypoint (no equal "
            f"names and no entry in animalpose.datasets.correspondence.CORRESPONDENCES): "
            f"{list(source.keypoints)} vs {list(target.keypoints)}"
        )
    return pairs


def correspondence(source: KeypointSpec, target: KeypointSpec) -> tuple[np.ndarray, np.ndarray]:
    """``(src, tgt)``: (M,) int64 channel indices; ``target_array[..., tgt, :] =
    source_array[..., src, :]`` moves the M corresponding keypoints into ``target`` order."""
    pairs = correspondence_names(source, target)
    src = np.asarray([source.keypoints.index(s) for s, _ in pairs], dtype=np.int64)
    tgt = np.asarray([target.keypoints.index(t) for _, t in pairs], dtype=np.int64)
    return src, tgt


def _check(key: tuple[str, str], pairs: tuple[tuple[str, str], ...]) -> None:
    source, target = (SPECS[name] for name in key)
    for side, spec, names in (
        ("source", source, [s for s, _ in pairs]),
        ("target", target, [t for _, t in pairs]),
    ):
        unknown = [n for n in names if n not in spec.keypoints]
        if unknown:
            raise AssertionError(f"CORRESPONDENCES{key}: {side} names {unknown} not in {spec.name}")
        if len(set(names)) != len(names):
            raise AssertionError(f"CORRESPONDENCES{key}: a {side} keypoint is used twice")
    src, tgt = correspondence(source, target)
    mapping = dict(zip(src.tolist(), tgt.tolist(), strict=True))
    if len(set(mapping.values())) != len(mapping):
        raise AssertionError(f"CORRESPONDENCES{key}: a target keypoint has two sources")
    for s, t in mapping.items():
        if mapping.get(int(source.flip_index[s])) != int(target.flip_index[t]):
            raise AssertionError(
                f"CORRESPONDENCES{key}: {source.keypoints[s]} -> {target.keypoints[t]} does not "
                "commute with the flips"
            )


for _key, _pairs in CORRESPONDENCES.items():
    _check(_key, _pairs)
