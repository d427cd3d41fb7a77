"""The dog's 18 keypoints: where each comes from on the posed model, and whether it is visible.

``KeypointModel`` resolves ``KEYPOINT_SOURCES`` (geom centres, body origins, one jaw skin vertex,
paw vertex centroids) against the dm_control model; ``visibility`` compares keypoint depths with
the render's depth buffer. Metres; the table of sources and the visibility rule are in
docs/generator.md ("Keypoints of the dog").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "KEYPOINT_SOURCES",
    "KeypointModel",
    "farthest_point_subsample",
    "visibility",
]

#: ANIMAL18 keypoint -> (kind, model element). Kinds: "geom" (geom centre), "body" (body origin,
#: i.e. the joint there), "jaw_vertex" (the chin rule: CHIN_* below), "paw" (centroid of the skin
#: vertices bound to that body). The table in docs/generator.md names the anatomy.
KEYPOINT_SOURCES: dict[str, tuple[str, str]] = {
    "left_eye": ("geom", "pupil_L"),
    "right_eye": ("geom", "pupil_R"),
    "chin": ("jaw_vertex", "jaw"),
    "left_front_hoof": ("paw", "finger_L"),
    "right_front_hoof": ("paw", "finger_R"),
    "left_back_hoof": ("paw", "toe_L"),
    "right_back_hoof": ("paw", "toe_R"),
    "hip": ("body", "Ca_1"),
    "left_front_knee": ("body", "hand_L"),
    "right_front_knee": ("body", "hand_R"),
    "left_back_knee": ("body", "foot_L"),
    "right_back_knee": ("body", "foot_R"),
    "left_shoulder": ("body", "upper_arm_L"),
    "right_shoulder": ("body", "upper_arm_R"),
    "left_front_elbow": ("body", "lower_arm_L"),
    "right_front_elbow": ("body", "lower_arm_R"),
    "left_back_elbow": ("body", "lower_leg_L"),
    "right_back_elbow": ("body", "lower_leg_R"),
}
#: A skin vertex is "bound to" a bone when its skinning weight exceeds this.
BOUND_WEIGHT = 0.5
#: Chin rule: of the midline (|y| < CHIN_MIDLINE_M) skin vertices with jaw weight above
#: CHIN_JAW_WEIGHT, the one furthest along (x - z): the front-bottom corner of the mandible.
CHIN_MIDLINE_M = 0.006
CHIN_JAW_WEIGHT = 0.9
#: Keypoints on the body's midline (hip, chin) lie deep under the flank when seen from the side:
#: their radius is the body's half-width there (largest |y| of the skin vertices within
#: LATERAL_WINDOW_M in x and z), not the distance to the nearest surface above them.
MIDLINE_M = 0.01
LATERAL_WINDOW_M = 0.02
#: Visibility tolerance = scale x (distance from the keypoint to the nearest skin vertex in the
#: bind pose, times the largest girth factor) + margin. The near surface of a limb lies about one
#: radius in front of a joint centre; 1.5 leaves room for elliptic cross-sections, the margin
#: covers depth quantisation and skinning bulges. Checked on overlay images (side views: near
#: limbs visible, far limbs hidden behind the trunk).
VISIBILITY_RADIUS_SCALE = 1.5
VISIBILITY_MARGIN_M = 0.01


@dataclass(frozen=True)
class KeypointModel:
    """Index tables that turn a posed model into the 18 keypoints, plus per-keypoint radii.

    body_rows / body_ids: keypoint rows read from body origins (``xpos``) and their body ids.
    geom_rows / geom_ids: rows read from geom centres (``geom_xpos``).
    vertex_rows / vertex_ids: rows read from one skin vertex.
    paw_rows / paw_vertices: rows averaged over a set of skin vertices (one index array each).
    radius: (18,) metres, the distance from each keypoint to the nearest skin vertex in the bind
        pose (midline keypoints: the body's half-width there).
    """

    body_rows: np.ndarray
    body_ids: np.ndarray
    geom_rows: np.ndarray
    geom_ids: np.ndarray
    vertex_rows: np.ndarray
    vertex_ids: np.ndarray
    paw_rows: tuple[int, ...]
    paw_vertices: tuple[np.ndarray, ...]
    radius: np.ndarray

    @classmethod
    def build(
        cls,
        *,
        keypoint_names: tuple[str, ...],
        body_names: list[str],
        geom_names: list[str],
        bone_names: list[str],
        bind_vertices: np.ndarray,
        bone_weights: np.ndarray,
        bind_xpos: np.ndarray,
        bind_geom_xpos: np.ndarray,
    ) -> KeypointModel:
        """Resolve ``KEYPOINT_SOURCES`` against a model.

        Args:
            keypoint_names: model order (ANIMAL18.keypoints).
            body_names, geom_names: names by id.
            bone_names: body name of each skin bone (B,).
            bind_vertices: (V, 3) skin vertices in the bind pose.
            bone_weights: (V, B) skinning weights.
            bind_xpos, bind_geom_xpos: body origins / geom centres in the bind pose.
        """
        rows: dict[str, list] = {"body": [], "geom": [], "vertex": [], "paw": []}
        ids: dict[str, list] = {"body": [], "geom": [], "vertex": [], "paw": []}
        bind_points = np.zeros((len(keypoint_names), 3))
        for k, name in enumerate(keypoint_names):
            kind, element = KEYPOINT_SOURCES[name]
            if kind == "body":
                rows["body"].append(k)
                ids["body"].append(body_names.index(element))
                bind_points[k] = bind_xpos[ids["body"][-1]]
            elif kind == "geom":
                rows["geom"].append(k)
                ids["geom"].append(geom_names.index(element))
                bind_points[k] = bind_geom_xpos[ids["geom"][-1]]
            elif kind == "jaw_vertex":
                w = bone_weights[:, bone_names.index(element)]
                v = bind_vertices
                cand = np.flatnonzero((w > CHIN_JAW_WEIGHT) & (np.abs(v[:, 1]) < CHIN_MIDLINE_M))
                if len(cand) == 0:
                    raise ValueError(f"no midline skin vertex bound to {element!r} for the chin")
                best = cand[np.argmax(v[cand, 0] - v[cand, 2])]
                rows["vertex"].append(k)
                ids["vertex"].append(int(best))
                bind_points[k] = v[best]
            elif kind == "paw":
                sel = np.flatnonzero(bone_weights[:, bone_names.index(element)] > BOUND_WEIGHT)
                if len(sel) == 0:
                    raise ValueError(f"no skin vertex bound to {element!r} for {name}")
                rows["paw"].append(k)
                ids["paw"].append(sel)
                bind_points[k] = bind_vertices[sel].mean(axis=0)
            else:
                raise ValueError(f"unknown keypoint source kind {kind!r} for {name}")
        d2 = ((bind_points[:, None, :] - bind_vertices[None, ::4, :]) ** 2).sum(-1)
        radius = np.sqrt(d2.min(axis=1))
        for k, p in enumerate(bind_points):
            if abs(p[1]) < MIDLINE_M:  # hip, chin: seen from the side through the flank
                near = np.all(np.abs(bind_vertices[:, [0, 2]] - p[[0, 2]]) < LATERAL_WINDOW_M, 1)
                if near.any():
                    radius[k] = max(radius[k], float(np.abs(bind_vertices[near, 1]).max()))
        return cls(
            body_rows=np.array(rows["body"], dtype=np.int64),
            body_ids=np.array(ids["body"], dtype=np.int64),
            geom_rows=np.array(rows["geom"], dtype=np.int64),
            geom_ids=np.array(ids["geom"], dtype=np.int64),
            vertex_rows=np.array(rows["vertex"], dtype=np.int64),
            vertex_ids=np.array(ids["vertex"], dtype=np.int64),
            paw_rows=tuple(rows["paw"]),
            paw_vertices=tuple(ids["paw"]),
            radius=radius,
        )

    def locate(self, xpos: np.ndarray, geom_xpos: np.ndarray, skin: np.ndarray) -> np.ndarray:
        """(18, 3) world positions from body origins, geom centres and the posed skin (V, 3)."""
        out = np.zeros((len(self.radius), 3))
        out[self.body_rows] = xpos[self.body_ids]
        out[self.geom_rows] = geom_xpos[self.geom_ids]
        out[self.vertex_rows] = skin[self.vertex_ids]
        for row, verts in zip(self.paw_rows, self.paw_vertices):
            out[row] = skin[verts].mean(axis=0)
        return out

    def tolerance(self, girth: float) -> np.ndarray:
        """(18,) depth tolerance in metres for ``visibility`` at a given largest girth factor."""
        return VISIBILITY_RADIUS_SCALE * self.radius * max(girth, 1.0) + VISIBILITY_MARGIN_M


def visibility(
    *, xy: np.ndarray, depth: np.ndarray, depth_map: np.ndarray, tolerance: np.ndarray
) -> np.ndarray:
    """(K,) 1.0 where a keypoint is in the frame and not hidden, else 0.0.

    xy: (K, 2) pixels; depth: (K,) metres along the view axis; depth_map: (H, W) metres (empty
    pixels hold the far plane); tolerance: (K,) metres. A keypoint is hidden when the surface seen
    at its pixel is more than ``tolerance`` in front of it.
    """
    h, w = depth_map.shape
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)
    inside &= depth > 0
    col = np.clip(np.rint(xy[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.rint(xy[:, 1]).astype(int), 0, h - 1)
    seen = depth_map[row, col]
    return (inside & (depth - tolerance <= seen)).astype(np.float64)


def farthest_point_subsample(points: np.ndarray, count: int) -> np.ndarray:
    """(count,) sorted indices of a farthest-point subsample of (N, 3) ``points``, starting at the
    point with the largest x (deterministic; extremities such as the nose, tail tip and paws come
    first, so the subsample's box matches the full mesh's)."""
    pts = np.asarray(points, dtype=np.float32)
    if count > len(pts):
        raise ValueError(f"cannot pick {count} of {len(pts)} points")
    chosen = np.empty(count, dtype=np.int64)
    chosen[0] = int(np.argmax(pts[:, 0]))
    dist = ((pts - pts[chosen[0]]) ** 2).sum(1)
    for i in range(1, count):
        chosen[i] = int(np.argmax(dist))
        np.minimum(dist, ((pts - pts[chosen[i]]) ** 2).sum(1), out=dist)
    return np.sort(chosen)
