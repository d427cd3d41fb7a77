"""Part segmentation of the 3-D dog's stills: which body part (``animalpose.datasets.parts``)
each pixel shows, from the renderer's own skinning.

A skin vertex belongs to the bone it is bound to most strongly (largest skinning weight), a bone
to a part by its name (``bone_part``); the visible meshes that are not skin (claws, eyeballs)
belong to their geom (eyeballs: ``eye``) or to the nearest skin bone above their body. The
triangles are rasterised with a z-buffer in NumPy (``rasterise``), then reconciled with the GL
render (``reconcile``): a pixel of the GL dog mask whose rasterised depth agrees with the depth
buffer takes the nearest triangle's part, other dog pixels are ``IGNORE``, the rest is
background. Rules and timings: docs/generator.md ("Part segmentation").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from animalpose.datasets.parts import IGNORE, PART_CLASSES

__all__ = [
    "PartMeshes",
    "bone_part",
    "face_parts",
    "rasterise",
    "reconcile",
    "vertex_parts",
]

_ID = {name: i for i, name in enumerate(PART_CLASSES)}
#: Skin bone (MuJoCo body) name prefix -> part, first match wins. Side suffixes ``_L`` / ``_R``
#: are the dog's own left / right (dm_control dog.xml); the scapulae lie on the trunk, the legs
#: start at the upper arm (front) and the thigh (back). ``C_*`` are the neck vertebrae,
#: ``L_*`` the lumbar ones, ``Ca_*`` the tail's.
_BONE_PARTS: tuple[tuple[str, str], ...] = (
    ("skull", "head"),
    ("jaw", "head"),
    ("C_", "torso"),
    ("torso", "torso"),
    ("L_", "torso"),
    ("pelvis", "torso"),
    ("scapula_", "torso"),
    ("Ca_", "tail"),
    ("upper_arm_L", "left_front"),
    ("lower_arm_L", "left_front"),
    ("hand_L", "left_front"),
    ("finger_L", "left_front"),
    ("upper_arm_R", "right_front"),
    ("lower_arm_R", "right_front"),
    ("hand_R", "right_front"),
    ("finger_R", "right_front"),
    ("upper_leg_L", "left_back"),
    ("lower_leg_L", "left_back"),
    ("foot_L", "left_back"),
    ("toe_L", "left_back"),
    ("upper_leg_R", "right_back"),
    ("lower_leg_R", "right_back"),
    ("foot_R", "right_back"),
    ("toe_R", "right_back"),
)
#: Visible (rendered) mesh geoms labelled by their own name rather than by their body: the
#: eyeballs. The dog has no ear geometry apart from the skin (the skull bone), so ``ear`` stays
#: unused.
_GEOM_PARTS: dict[str, str] = {"eye_L": "eye", "eye_R": "eye"}
#: MuJoCo geom groups the renderer draws (``mjvOption.geomgroup`` default: 0, 1 and 2).
_DRAWN_GROUPS = (0, 1, 2)
#: A rasterised depth agrees with the GL depth buffer within this share of (the depth + 1 m):
#: 0.5 % + 5 mm, for float32 vertices and depth and GL's own triangle set-up (measured: 99.9 %
#: of the dog pixels differ by under 0.02 mm at 3-4 m; a leg in front of the trunk is cm off).
DEPTH_AGREEMENT = 0.005
#: Triangles with a vertex nearer than this (m) are not rasterised (never for a dog in view).
_NEAR_M = 1e-3


def bone_part(name: str) -> int:
    """The ``PART_CLASSES`` id of skin bone (body) ``name``; ValueError for unknown bones."""
    for prefix, part in _BONE_PARTS:
        if name.startswith(prefix):
            return _ID[part]
    raise ValueError(f"skin bone {name!r} has no body part; add its prefix to _BONE_PARTS")


def vertex_parts(bone_weights: np.ndarray, bone_names: Sequence[str]) -> np.ndarray:
    """(V,) uint8 part of each skin vertex: the part of the bone with its largest weight.

    bone_weights: (V, B) skinning weights; bone_names: the B bones' body names."""
    bone_ids = np.array([bone_part(n) for n in bone_names], dtype=np.uint8)
    return bone_ids[np.argmax(bone_weights, axis=1)]


def face_parts(faces: np.ndarray, vertex_part: np.ndarray) -> np.ndarray:
    """(F,) uint8 part of each triangle ((F, 3) vertex ids): the part two or three of its
    vertices share, ``IGNORE`` when all three differ (a triangle on a three-part seam)."""
    p = vertex_part[faces]
    a, b, c = p[:, 0], p[:, 1], p[:, 2]
    return np.where((a == b) | (a == c), a, np.where(b == c, b, np.uint8(IGNORE))).astype(np.uint8)


def rasterise(
    xy: np.ndarray, z: np.ndarray, faces: np.ndarray, face_label: np.ndarray, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer rasterisation of labelled triangles at pixel centres.

    xy: (V, 2) projected vertices (0-based pixels, centres on integers); z: (V,) depth along the
    view axis (m); faces: (F, 3) vertex ids, counter-clockwise on screen when seen from the
    front (back faces are culled: closed meshes only); face_label: (F,) uint8; size: (w, h).
    A pixel centre on or inside a triangle is covered by it (no top-left rule: a pixel on a
    shared edge takes either triangle). Depth is interpolated perspective-correctly (1/z is
    affine in the image).

    Returns:
        (labels (H, W) uint8: the nearest covering triangle's label, 0 where none;
        depth (H, W) float32: its depth, inf where none).
    """
    w, h = size
    labels = np.zeros((h, w), np.uint8)
    zbuf = np.full(h * w, np.inf, np.float32)
    x, y = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
    x0, x1, x2 = x[faces[:, 0]], x[faces[:, 1]], x[faces[:, 2]]
    y0, y1, y2 = y[faces[:, 0]], y[faces[:, 1]], y[faces[:, 2]]
    z0, z1, z2 = z[faces[:, 0]], z[faces[:, 1]], z[faces[:, 2]]
    lo_x = np.maximum(np.ceil(np.minimum(np.minimum(x0, x1), x2)), 0)
    lo_y = np.maximum(np.ceil(np.minimum(np.minimum(y0, y1), y2)), 0)
    hi_x = np.minimum(np.floor(np.maximum(np.maximum(x0, x1), x2)), w - 1)
    hi_y = np.minimum(np.floor(np.maximum(np.maximum(y0, y1), y2)), h - 1)
    area = (x1 - x0) * (y2 - y0) - (x2 - x0) * (y1 - y0)
    # Front faces wind counter-clockwise on screen (OpenGL's default, MuJoCo's meshes): a
    # negative signed area in y-down pixel coordinates.
    keep = np.flatnonzero(
        (area < -1e-12)
        & (np.minimum(np.minimum(z0, z1), z2) > _NEAR_M)
        & (lo_x <= hi_x)
        & (lo_y <= hi_y)
    )
    if keep.size == 0:
        return labels, zbuf.reshape(h, w)
    # Barycentric weights of vertices 1 and 2 and the inverse depth as affine functions of the
    # pixel centre relative to the bounding box corner: value = a * dx + b * dy + c.
    x0, y0, x1, y1, x2, y2 = (v[keep] for v in (x0, y0, x1, y1, x2, y2))
    lo_x, lo_y = lo_x[keep].astype(np.int64), lo_y[keep].astype(np.int64)
    hi_x, hi_y = hi_x[keep].astype(np.int64), hi_y[keep].astype(np.int64)
    inv = 1.0 / area[keep]
    ox, oy = lo_x - x0, lo_y - y0
    b1x, b1y = (y2 - y0) * inv, (x0 - x2) * inv  # d(w1)/dx, d(w1)/dy
    b2x, b2y = (y0 - y1) * inv, (x1 - x0) * inv
    iz0 = 1.0 / z0[keep]
    d1, d2 = 1.0 / z1[keep] - iz0, 1.0 / z2[keep] - iz0
    gx, gy = d1 * b1x + d2 * b2x, d1 * b1y + d2 * b2y
    coef = np.stack(
        [
            b1x,
            b1y,
            b1x * ox + b1y * oy,
            b2x,
            b2y,
            b2x * ox + b2y * oy,
            gx,
            gy,
            iz0 + gx * ox + gy * oy,
        ],
        axis=1,
    )
    # One candidate per pixel centre in each triangle's box.
    nx = hi_x - lo_x + 1
    count = nx * (hi_y - lo_y + 1)
    face = np.repeat(np.arange(keep.size), count)
    k = np.arange(face.size) - np.repeat(np.cumsum(count) - count, count)
    dx, dy = np.divmod(k, nx[face])[::-1]
    c = coef[face]
    w1 = c[:, 0] * dx + c[:, 1] * dy + c[:, 2]
    w2 = c[:, 3] * dx + c[:, 4] * dy + c[:, 5]
    inside = np.flatnonzero((w1 >= 0) & (w2 >= 0) & (w1 + w2 <= 1))
    face, dx, dy, c = face[inside], dx[inside], dy[inside], c[inside]
    depth = (1.0 / (c[:, 6] * dx + c[:, 7] * dy + c[:, 8])).astype(np.float32)
    pixel = (lo_y[face] + dy) * w + lo_x[face] + dx
    np.minimum.at(zbuf, pixel, depth)
    nearest = depth == zbuf[pixel]
    labels.reshape(-1)[pixel[nearest]] = face_label[keep][face[nearest]]
    return labels, zbuf.reshape(h, w)


def reconcile(
    raster_labels: np.ndarray,
    raster_depth: np.ndarray,
    *,
    depth: np.ndarray,
    dog: np.ndarray,
    covered: np.ndarray | None = None,
    agreement: float = DEPTH_AGREEMENT,
) -> np.ndarray:
    """(H, W) uint8 part map of a frame from a rasterisation and the GL render.

    raster_labels, raster_depth: ``rasterise``'s output; depth: (H, W) GL depth (m); dog: (H, W)
    bool GL pixels showing the dog; covered: (H, W) bool pixels ground cover hides (background
    whatever is behind them). Dog pixels whose raster depth is within ``agreement`` x depth
    (+ as many metres) of the GL depth take the raster label, other dog pixels ``IGNORE``.
    """
    agrees = np.abs(raster_depth - depth) <= agreement * (depth + 1.0)
    out = np.where(dog, np.where(agrees, raster_labels, np.uint8(IGNORE)), np.uint8(0))
    out = out.astype(np.uint8)
    if covered is not None:
        out[covered] = 0
    return out


@dataclass(frozen=True)
class PartMeshes:
    """The dog's drawn surfaces as labelled triangles: the skin (posed each frame by MuJoCo)
    and the visible mesh geoms (claws, eyeballs: rigid on their bodies).

    skin_faces: (F, 3) skin vertex ids; skin_labels: (F,) uint8 (``face_parts``);
    geoms: (G,) geom ids; geom_vertices: per geom (n_g, 3) mesh vertices in the geom frame;
    geom_faces: (Fg, 3) ids into the concatenated geom vertices; geom_labels: (Fg,) uint8.
    """

    skin_faces: np.ndarray
    skin_labels: np.ndarray
    geoms: np.ndarray
    geom_vertices: list[np.ndarray]
    geom_faces: np.ndarray
    geom_labels: np.ndarray

    @classmethod
    def build(
        cls,
        mj: Any,
        model: Any,
        *,
        bone_weights: np.ndarray,
        bone_names: Sequence[str],
        body_names: Sequence[str],
    ) -> PartMeshes:
        """From a loaded dog model, its (V, B) skinning weights and the bones' body names."""
        m = model
        skin_faces = m.skin_face.reshape(-1, 3).astype(np.int64)
        skin_labels = face_parts(skin_faces, vertex_parts(bone_weights, bone_names))
        geoms, vertices, faces, labels, offset = [], [], [], [], 0
        bones = set(bone_names)
        for g in range(m.ngeom):
            if (
                m.geom_type[g] != mj.mjtGeom.mjGEOM_MESH
                or int(m.geom_group[g]) not in _DRAWN_GROUPS
                or m.geom_rgba[g, 3] <= 0
            ):
                continue
            name = mj.mj_id2name(m, mj.mjtObj.mjOBJ_GEOM, g) or ""
            if name in _GEOM_PARTS:
                part = _ID[_GEOM_PARTS[name]]
            else:
                body = int(m.geom_bodyid[g])
                while body > 0 and body_names[body] not in bones:
                    body = int(m.body_parentid[body])
                if body <= 0:
                    raise ValueError(f"visible geom {name!r} hangs on no skin bone")
                part = bone_part(body_names[body])
            mesh = int(m.geom_dataid[g])
            va, vn = int(m.mesh_vertadr[mesh]), int(m.mesh_vertnum[mesh])
            fa, fn = int(m.mesh_faceadr[mesh]), int(m.mesh_facenum[mesh])
            geoms.append(g)
            vertices.append(m.mesh_vert[va : va + vn].astype(np.float64))
            faces.append(m.mesh_face[fa : fa + fn].astype(np.int64) + offset)
            labels.append(np.full(fn, part, np.uint8))
            offset += vn
        return cls(
            skin_faces=skin_faces,
            skin_labels=skin_labels,
            geoms=np.array(geoms, np.int64),
            geom_vertices=vertices,
            geom_faces=np.concatenate(faces) if faces else np.zeros((0, 3), np.int64),
            geom_labels=np.concatenate(labels) if labels else np.zeros(0, np.uint8),
        )

    def world_geom_vertices(self, geom_xpos: np.ndarray, geom_xmat: np.ndarray) -> np.ndarray:
        """(sum n_g, 3) geom mesh vertices in world coordinates for ``data.geom_xpos`` (ngeom, 3)
        and ``data.geom_xmat`` (ngeom, 9)."""
        if not self.geom_vertices:
            return np.zeros((0, 3))
        return np.concatenate(
            [
                geom_xpos[g] + v @ geom_xmat[g].reshape(3, 3).T
                for g, v in zip(self.geoms, self.geom_vertices)
            ]
        )

    def label_frame(
        self,
        *,
        skin: np.ndarray,
        geom_world: np.ndarray,
        project: Any,
        size: tuple[int, int],
    ) -> tuple[np.ndarray, np.ndarray]:
        """``rasterise`` of skin (V, 3) and geom vertices (world) through ``project`` ((N, 3)
        world -> ((N, 2) pixels, (N,) depth), e.g. ``PinholeCamera.project``)."""
        points = np.concatenate([skin, geom_world])
        xy, z = project(points)
        faces = np.concatenate([self.skin_faces, self.geom_faces + len(skin)])
        labels = np.concatenate([self.skin_labels, self.geom_labels])
        return rasterise(xy, z, faces, labels, size)
