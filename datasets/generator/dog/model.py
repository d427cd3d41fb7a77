"""The dm_control dog as ``DogRenderer`` uses it: its XML edited for rendering, and ``DogTables``,
the index tables, skinning, girth and keypoint models, vertex subsample and coat atlas built once
per MuJoCo model. dm_control 1.0.50 ``suite/dog.xml``; metres.
"""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from animalpose.datasets.generator.dog.gl import INSTALL_HINT
from animalpose.datasets.generator.dog.keypoints import KeypointModel, farthest_point_subsample
from animalpose.datasets.generator.dog.motion import JointTable
from animalpose.datasets.generator.dog.partseg import PartMeshes
from animalpose.datasets.generator.dog.shape import GIRTH_GROUPS, GirthModel
from animalpose.datasets.generator.renderer import NUM_KEYPOINTS, NUM_VERTEX_ROWS
from animalpose.datasets.generator.scene_xml import add_ground_material, add_world_lights
from animalpose.datasets.generator.styles.coats import (
    PARTS,
    CoatAtlas,
    build_coat_atlas,
    part_of_bone,
)
from animalpose.datasets.keypoints import ANIMAL18

__all__ = ["GROUND_HALF_SIZE_M", "DogTables", "dog_xml", "suite_dir"]

#: Skin texture atlas size uploaded per scene (the 1024 px original, halved: the dog covers at
#: most a few hundred pixels of a 640x480 frame).
ATLAS_SIZE = 512
#: Ground texture size and plane half-size (m): beyond it the backdrop shows. The plane is
#: centred on the dog (stills) or on the middle of its path (shots).
GROUND_TEXTURE = 512
GROUND_HALF_SIZE_M = 8.0
#: Bones whose axis runs along the body (x) in the bind pose; others point to their child bone.
_AXIAL_BONES = ("torso", "pelvis", "L_")


def suite_dir() -> Path:
    """dm_control's ``suite`` folder (``dog.xml`` and ``dog_assets/``)."""
    spec = importlib.util.find_spec("dm_control")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"dm_control is not installed ({INSTALL_HINT})")
    suite = Path(next(iter(spec.submodule_search_locations))) / "suite"
    if not (suite / "dog.xml").is_file():
        raise RuntimeError(
            f"{suite / 'dog.xml'}: dm_control's dog model is missing ({INSTALL_HINT})"
        )
    return suite


def dog_xml(suite: Path) -> tuple[str, dict[str, bytes]]:
    """dm_control's dog.xml edited for rendering, and its assets keyed by file name.

    Removed: the ball, target, walls and their cameras, the shared skybox/visual/material
    includes and the light that rides on the torso. Added: a ground plane material with a
    replaceable texture, a sun and a fill light in the world frame.
    """
    root = ET.fromstring((suite / "dog.xml").read_bytes())
    for element in root.findall("include"):
        root.remove(element)
    asset = root.find("asset")
    for element in list(asset):
        if element.get("name") == "tennis_ball":
            asset.remove(element)
    add_ground_material(asset, texture_size=GROUND_TEXTURE)
    world = root.find("worldbody")
    for element in list(world):
        name = element.get("name", "")
        if name in ("ball", "target", "head") or name.startswith("wall_"):  # bodies, geoms, cameras
            world.remove(element)
    floor = world.find("geom[@name='floor']")
    floor.set("material", "ground")
    floor.set("size", f"{GROUND_HALF_SIZE_M} {GROUND_HALF_SIZE_M} 0.1")
    torso = world.find("body[@name='torso']")
    for light in torso.findall("light"):
        torso.remove(light)
    add_world_lights(world)
    assets = {p.name: p.read_bytes() for p in (suite / "dog_assets").iterdir() if p.is_file()}
    skin = cv2.imdecode(np.frombuffer(assets["skin_texture.png"], np.uint8), cv2.IMREAD_COLOR)
    small = cv2.resize(skin, (ATLAS_SIZE, ATLAS_SIZE), interpolation=cv2.INTER_AREA)
    assets["skin_texture.png"] = cv2.imencode(".png", small)[1].tobytes()
    return ET.tostring(root, encoding="unicode"), assets


@dataclass(frozen=True)
class DogTables:
    """What the renderer looks up in the model: names and ids, hinge joints and their ``qpos``
    addresses, paw bodies, bind-pose body offsets, the girth, keypoint, vertex-subsample and
    coat-atlas tables of the skin, and the body-part triangles (``partseg.PartMeshes``)."""

    body_names: list[str]
    joints: JointTable
    hinge_qpos: np.ndarray
    floor: int
    skin_tex: int
    ground_tex: int
    skin_mat: int
    ground_mat: int
    sun: int
    fill: int
    paw_bodies: dict[str, list[int]]
    body_pos0: np.ndarray
    girth: GirthModel
    keypoints: KeypointModel
    subsample: np.ndarray
    atlas: CoatAtlas
    parts: PartMeshes

    @classmethod
    def build(cls, mj: Any, model: Any, data: Any) -> DogTables:
        """From the loaded ``model`` (``mujoco.MjModel`` of ``dog_xml``); runs forward kinematics
        of ``data`` in the standing keyframe."""
        m, d = model, data
        obj = mj.mjtObj
        body_names = [mj.mj_id2name(m, obj.mjOBJ_BODY, i) or "" for i in range(m.nbody)]
        geom_names = [mj.mj_id2name(m, obj.mjOBJ_GEOM, i) or "" for i in range(m.ngeom)]
        hinge = np.flatnonzero(m.jnt_type == mj.mjtJoint.mjJNT_HINGE)
        joints = JointTable(
            names=tuple(mj.mj_id2name(m, obj.mjOBJ_JOINT, int(j)) for j in hinge),
            lower=m.jnt_range[hinge, 0].copy(),
            upper=m.jnt_range[hinge, 1].copy(),
        )
        hinge_qpos = m.jnt_qposadr[hinge].copy()
        floor = geom_names.index("floor")
        skin_tex = mj.mj_name2id(m, obj.mjOBJ_TEXTURE, "skin")
        ground_tex = mj.mj_name2id(m, obj.mjOBJ_TEXTURE, "ground")
        skin_mat = mj.mj_name2id(m, obj.mjOBJ_MATERIAL, "skin")
        ground_mat = mj.mj_name2id(m, obj.mjOBJ_MATERIAL, "ground")
        sun = mj.mj_name2id(m, obj.mjOBJ_LIGHT, "sun")
        fill = mj.mj_name2id(m, obj.mjOBJ_LIGHT, "fill")
        paw_bodies = {
            "front": [body_names.index(n) for n in ("finger_L", "finger_R")],
            "hind": [body_names.index(n) for n in ("toe_L", "toe_R")],
        }
        # Skin: bind pose, skinning pairs, bone axes and girth groups.
        bind_vert = m.skin_vert.reshape(-1, 3).astype(np.float64).copy()
        body_pos0 = m.body_pos.copy()
        nv, nb = len(bind_vert), int(m.skin_bonenum[0])
        # Skinning pairs (vertex, bone, weight) of the model's single skin.
        spans = [
            np.arange(m.skin_bonevertadr[b], m.skin_bonevertadr[b] + m.skin_bonevertnum[b])
            for b in range(nb)
        ]
        pair_bone = np.concatenate([np.full(len(sp), b) for b, sp in enumerate(spans)])
        pair_vertex = m.skin_bonevertid[np.concatenate(spans)].astype(np.int64)
        pair_weight = m.skin_bonevertweight[np.concatenate(spans)].astype(np.float64)
        bone_bodies = m.skin_bonebodyid[:nb]
        bone_names = [body_names[b] for b in bone_bodies]
        groups = [
            next((g for p, g in GIRTH_GROUPS.items() if n.startswith(p)), "") for n in bone_names
        ]
        girth = GirthModel.build(
            vertices=bind_vert,
            pair_vertex=pair_vertex,
            pair_bone=pair_bone,
            pair_weight=pair_weight,
            bone_pos=m.skin_bonebindpos[:nb].astype(np.float64),
            bone_axis=_bone_axes(m, bone_bodies, bone_names),
            bone_group=groups,
        )
        weights = np.zeros((nv, nb))
        weights[pair_vertex, pair_bone] = pair_weight
        mj.mj_kinematics(m, d)
        keypoints = KeypointModel.build(
            keypoint_names=ANIMAL18.keypoints,
            body_names=body_names,
            geom_names=geom_names,
            bone_names=bone_names,
            bind_vertices=bind_vert,
            bone_weights=weights,
            bind_xpos=d.xpos.copy(),
            bind_geom_xpos=d.geom_xpos.copy(),
        )
        subsample = farthest_point_subsample(bind_vert, NUM_VERTEX_ROWS - NUM_KEYPOINTS)
        adr, size = int(m.tex_adr[skin_tex]), ATLAS_SIZE * ATLAS_SIZE * 3
        texture = m.tex_data[adr : adr + size].reshape(ATLAS_SIZE, ATLAS_SIZE, 3).copy()
        bone_part = np.eye(len(PARTS))[[part_of_bone(n) for n in bone_names]]
        atlas = build_coat_atlas(
            texcoords=m.skin_texcoord.reshape(-1, 2).astype(np.float64),
            vertices=bind_vert,
            faces=m.skin_face.reshape(-1, 3).astype(np.int64),
            part_weights=weights @ bone_part,
            texture=texture,
        )
        parts = PartMeshes.build(
            mj, m, bone_weights=weights, bone_names=bone_names, body_names=body_names
        )
        return cls(
            body_names=body_names,
            joints=joints,
            hinge_qpos=hinge_qpos,
            floor=floor,
            skin_tex=skin_tex,
            ground_tex=ground_tex,
            skin_mat=skin_mat,
            ground_mat=ground_mat,
            sun=sun,
            fill=fill,
            paw_bodies=paw_bodies,
            body_pos0=body_pos0,
            girth=girth,
            keypoints=keypoints,
            subsample=subsample,
            atlas=atlas,
            parts=parts,
        )


def _bone_axes(m: Any, bone_bodies: np.ndarray, bone_names: list[str]) -> np.ndarray:
    """(B, 3) unit axis of each skin bone in the bind pose: +x for the trunk, else towards its
    first child bone (or its parent's axis at the end of a chain)."""
    pos = m.skin_bonebindpos[: len(bone_bodies)].astype(np.float64)
    index = {int(b): i for i, b in enumerate(bone_bodies)}
    children = [
        [index[c] for c in range(m.nbody) if m.body_parentid[c] == body and c in index]
        for body in bone_bodies
    ]
    axes = np.tile([1.0, 0.0, 0.0], (len(pos), 1))
    for i, name in enumerate(bone_names):  # parents come before children in body order
        if name.startswith(_AXIAL_BONES):
            continue
        if children[i]:
            axes[i] = pos[children[i][0]] - pos[i]
        elif int(m.body_parentid[bone_bodies[i]]) in index:  # chain end: the parent's axis
            axes[i] = axes[index[int(m.body_parentid[bone_bodies[i]])]]
    return axes / np.maximum(np.linalg.norm(axes, axis=1, keepdims=True), 1e-9)
