"""The 17 COCO keypoints of the CMU humanoid: where each comes from on the posed model, and its
COCO visibility flag from the render's depth buffer and person segmentation.

Limb keypoints are joint centres (body origins: a body's origin is the joint to its parent).
The face has no geometry of its own (the head is one capsule), so nose, eyes and ears are fixed
points on the head capsule's surface, given in the head body's frame (``FACE_POINTS``). Metres;
the table is in docs/generator.md ("Built-in humans"). Pure NumPy.
"""

from __future__ import annotations

import numpy as np

from animalpose.datasets.keypoints import COCO17, COCO_SKELETON_1BASED

__all__ = [
    "COCO_KEYPOINTS",
    "COCO_SKELETON",
    "FACE_RADIUS_M",
    "FACE_POINTS",
    "JOINT_BODIES",
    "VISIBILITY_MARGIN_M",
    "VISIBILITY_RADIUS_SCALE",
    "coco_visibility",
    "keypoint_radius",
]

#: COCO's 17 person keypoints in COCO order (``person_keypoints_*.json`` categories) and its
#: skeleton as 1-based pairs, as the COCO 2017 annotation files write them: the ``COCO17`` spec's.
COCO_KEYPOINTS: tuple[str, ...] = COCO17.keypoints
COCO_SKELETON: tuple[tuple[int, int], ...] = COCO_SKELETON_1BASED
#: Limb keypoint -> the model body whose origin (the joint with its parent) it is. The model's
#: ``l*`` bodies are the person's own left (they sit at the model's +x with the person facing +z).
JOINT_BODIES: dict[str, str] = {
    "left_shoulder": "lhumerus",
    "right_shoulder": "rhumerus",
    "left_elbow": "lradius",
    "right_elbow": "rradius",
    "left_wrist": "lwrist",
    "right_wrist": "rwrist",
    "left_hip": "lfemur",
    "right_hip": "rfemur",
    "left_knee": "ltibia",
    "right_knee": "rtibia",
    "left_ankle": "lfoot",
    "right_ankle": "rfoot",
}
#: Face keypoint -> point in the ``head`` body's frame (model axes: x the person's left, y up,
#: z forward). The head capsule (``head`` geom): axis along y through (0, 0.048, 0.025), radius
#: 0.095, y from 0.024 to 0.072 between its caps; the neck joint (the body origin) is at y = 0.
#: Eyes at y = 0.055 (about mid-height of the head), 3.2 cm either side of the midline, on the
#: front surface; the nose 4 cm lower on the midline; ears on the sides at y = 0.045, 2 cm in
#: front of the capsule's axis (so the head's silhouette does not cut them off in a front
#: view, and the head hides them from behind). Each point lies on the capsule surface (tested).
FACE_POINTS: dict[str, tuple[float, float, float]] = {
    "nose": (0.0, 0.015, 0.1196),
    "left_eye": (0.032, 0.055, 0.1145),
    "right_eye": (-0.032, 0.055, 0.1145),
    "left_ear": (0.0929, 0.045, 0.045),
    "right_ear": (-0.0929, 0.045, 0.045),
}
#: Body radius (m) around each limb keypoint: the capsule radii there (clavicle 0.075 at the
#: shoulder, upper arm 0.042, forearm 0.03, pelvis/femur 0.085, thigh 0.07, shin 0.04), a little
#: less where the joint sits off the capsule's centre line.
_RADIUS_M: dict[str, float] = {
    "shoulder": 0.06,
    "elbow": 0.042,
    "wrist": 0.03,
    "hip": 0.085,
    "knee": 0.06,
    "ankle": 0.045,
}
#: "Radius" of the face points, which lie on the head's curved surface: a ray grazing the head
#: meets it up to about 3 cm in front of a point near the silhouette (the nose in profile,
#: measured 2.8 cm), while the far eye in profile lies 6 cm and the far ear 18 cm behind it.
FACE_RADIUS_M = 0.02
#: Visibility tolerance = scale x radius + margin, as for the dog (dog/keypoints.py): the near
#: surface of a limb lies about one radius in front of its joint centre. The margin covers depth
#: quantisation and the capsules' tessellation (a face point's own surface).
VISIBILITY_RADIUS_SCALE = 1.5
VISIBILITY_MARGIN_M = 0.015


def keypoint_radius() -> np.ndarray:
    """(17,) body radius (m) at each keypoint, COCO order."""
    return np.array(
        [
            _RADIUS_M[name.split("_", 1)[-1]] if name in JOINT_BODIES else FACE_RADIUS_M
            for name in COCO_KEYPOINTS
        ]
    )


def coco_visibility(
    *,
    xy: np.ndarray,
    depth: np.ndarray,
    depth_map: np.ndarray,
    owner: np.ndarray,
    person: int,
    tolerance: np.ndarray,
) -> np.ndarray:
    """(K,) COCO flags of one person's keypoints: 2 visible, 1 in the frame but hidden, 0 outside.

    xy: (K, 2) pixels; depth: (K,) metres along the view axis; depth_map: (H, W) metres;
    owner: (H, W) the person each pixel shows (-1: ground or background); tolerance: (K,) m.
    A keypoint is visible when its pixel (rounded) shows this person, at most ``tolerance`` in
    front of the keypoint: another person, or this person's other limbs further in front, hide it.
    """
    h, w = depth_map.shape
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)
    inside &= depth > 0
    col = np.clip(np.rint(xy[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.rint(xy[:, 1]).astype(int), 0, h - 1)
    seen = depth_map[row, col]
    visible = inside & (owner[row, col] == person) & (depth - tolerance <= seen)
    return np.where(inside, np.where(visible, 2.0, 1.0), 0.0)
