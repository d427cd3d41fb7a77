"""dm_control's CMU humanoid as ``HumanRenderer`` uses it: ``MAX_PEOPLE`` copies of
``locomotion/walkers/assets/humanoid_CMU_V2020.xml`` in one scene, edited for rendering, and
``HumanTables``, the per-person index tables built once per MuJoCo model.

The model is the CMU motion-capture skeleton made of capsules (dm-control 1.0.50, Apache-2.0). In
its own frame y is up, the person faces +z and their left side is +x (``lhipjoint``, ``lfemur``,
... sit at +x). Each copy gets a free joint, so ``qpos`` places it; ``ROOT_QUAT_UP`` turns the
model's y-up frame into the world's z-up frame facing +x, which puts the person's left at +y (as
the dog's). Metres and radians.
"""

from __future__ import annotations

import importlib.util
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from animalpose.datasets.generator.dog.gl import INSTALL_HINT
from animalpose.datasets.generator.dog.model import GROUND_HALF_SIZE_M, GROUND_TEXTURE
from animalpose.datasets.generator.dog.motion import JointTable
from animalpose.datasets.generator.scene_xml import add_ground_material, add_world_lights

__all__ = [
    "CLOTHING_REGIONS",
    "HAIR_GEOM",
    "MAX_PEOPLE",
    "MODEL_FILE",
    "ROOT_QUAT_UP",
    "TEXTURE_SIZE",
    "HumanTables",
    "humans_xml",
    "model_path",
    "person_prefix",
    "region_of_body",
]

#: The model file inside the dm_control package.
MODEL_FILE = "locomotion/walkers/assets/humanoid_CMU_V2020.xml"
#: People one scene can hold (copies of the model; unused ones are parked out of view).
MAX_PEOPLE = 4
#: Clothing regions, each one material (and texture) per person.
CLOTHING_REGIONS = ("skin", "hair", "shirt", "trousers", "shoes")
#: Texture side (pixels) of every clothing material; repainted per image.
TEXTURE_SIZE = 64
#: Name of the hair geom added to each head (an ellipsoid over the top and back of the head).
HAIR_GEOM = "hair"
#: Hair ellipsoid in the head body's frame (model y up, z forward): semi-axes and centre. Its
#: front stays behind the face (eyes, nose) and its sides inside the ears' points.
HAIR_SIZE = (0.092, 0.1, 0.1)
HAIR_POS = (0.0, 0.08, -0.008)
#: Quaternion (w, x, y, z) of the root turning the model's frame (y up, facing +z) into the
#: world's (z up, facing +x): a rotation of 120 degrees about (1, 1, 1), mapping x->y, y->z, z->x.
ROOT_QUAT_UP = (0.5, 0.5, 0.5, 0.5)


def person_prefix(index: int) -> str:
    """The name prefix of person ``index``'s bodies, joints and geoms (``"p0/"``, ...)."""
    return f"p{index}/"


def region_of_body(body: str) -> str:
    """Clothing region of a model body (no prefix): the default of its geoms. Forearms
    (``radius``) and shins (``tibia``) are shirt and trousers here; short sleeves and shorts
    switch them to skin per person at render time."""
    if body in ("head", "upperneck", "lowerneck") or body[1:] in (
        "wrist",
        "hand",
        "fingers",
        "thumb",
    ):
        return "skin"
    if body in ("root", "lhipjoint", "rhipjoint") or body[1:] in ("femur", "tibia"):
        return "trousers"
    if body[1:] in ("foot", "toes"):
        return "shoes"
    return "shirt"  # back, thorax, clavicles, upper and lower arms


def model_path() -> Path:
    """The CMU humanoid XML inside the installed dm_control."""
    spec = importlib.util.find_spec("dm_control")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"dm_control is not installed ({INSTALL_HINT})")
    path = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    if not path.is_file():
        raise RuntimeError(f"{path}: dm_control's CMU humanoid is missing ({INSTALL_HINT})")
    return path


def _person(root_body: ET.Element, index: int) -> ET.Element:
    """A copy of the model's ``root`` body for person ``index``: names prefixed, a free joint,
    the hair geom on the head, cameras and sensor sites removed, geoms without the shared
    material (each gets its person's clothing material)."""
    body = ET.fromstring(ET.tostring(root_body))
    prefix = person_prefix(index)
    for parent in body.iter():
        for child in list(parent):
            if child.tag in ("camera", "site"):
                parent.remove(child)
    for element in body.iter():
        if element.tag == "body" and element.get("name") == "head":
            ET.SubElement(
                element,
                "geom",
                name=HAIR_GEOM,
                type="ellipsoid",
                size=" ".join(map(str, HAIR_SIZE)),
                pos=" ".join(map(str, HAIR_POS)),
            )
    for element in body.iter():
        if element.tag == "body":
            region = region_of_body(element.get("name", ""))
            for geom in element.findall("geom"):
                geom.attrib.pop("material", None)
                own = "hair" if geom.get("name") == HAIR_GEOM else region
                geom.set("material", f"{prefix}{own}")
        if element.get("name") is not None:
            element.set("name", prefix + element.get("name"))
    body.insert(0, ET.Element("freejoint", name=f"{prefix}free"))
    body.set("pos", f"{3.0 * index} 0 1")
    body.set("quat", " ".join(map(str, ROOT_QUAT_UP)))
    return body


def humans_xml(source: Path, *, max_people: int = MAX_PEOPLE) -> str:
    """A scene of ``max_people`` CMU humanoids, a textured ground plane (half-size
    ``GROUND_HALF_SIZE_M``, as the dog's: ``composite.finish_frame`` fades it out), a sun and a
    fill light. Dropped from the model: its lights, cameras, sensors, actuators and contacts
    (nothing is simulated: poses are set and forward kinematics run)."""
    root = ET.fromstring(source.read_bytes())
    for section in ("actuator", "sensor", "contact"):
        for element in root.findall(section):
            root.remove(element)
    asset = root.find("asset")
    size = str(TEXTURE_SIZE)
    for p in range(max_people):
        for region in CLOTHING_REGIONS:
            name = f"{person_prefix(p)}{region}"
            ET.SubElement(
                asset,
                "texture",
                name=name,
                type="2d",
                builtin="flat",
                width=size,
                height=size,
                rgb1=".5 .5 .5",
            )
            ET.SubElement(
                asset,
                "material",
                name=name,
                texture=name,
                texrepeat="1 1",
                specular="0.1",
                shininess="0.1",
            )
    add_ground_material(asset, texture_size=GROUND_TEXTURE)
    world = root.find("worldbody")
    person = world.find("body[@name='root']")
    for element in list(world):
        world.remove(element)
    half = f"{GROUND_HALF_SIZE_M} {GROUND_HALF_SIZE_M} 0.1"
    ET.SubElement(
        world, "geom", name="floor", type="plane", size=half, material="ground", group="0"
    )
    add_world_lights(world)
    for p in range(max_people):
        world.append(_person(person, p))
    return ET.tostring(root, encoding="unicode")


@dataclass(frozen=True)
class HumanTables:
    """What the renderer looks up in the scene model, per person p (rows of the arrays).

    joints: one person's hinge joints (names without prefix, limits), the same for everyone.
    hinge_qpos: (P, J) ``qpos`` addresses of each person's hinges, ``joints`` order.
    free_qpos: (P,) ``qpos`` address of each person's free joint (position, then quaternion).
    body_ids: (P, B) body ids of each person's bodies in ``body_names`` order.
    body_names: one person's body names without prefix.
    geom_person: (ngeom,) person of each geom, -1 for the ground.
    geom_ids: per person, the ids of its geoms; geom_bodies: their body names (no prefix).
    materials: (P, len(CLOTHING_REGIONS)) material ids; textures: the same for textures.
    hair: (P,) the hair geom of each person.
    floor, ground_tex, ground_mat, sun, fill: ids of the scene's ground and lights.
    """

    joints: JointTable
    hinge_qpos: np.ndarray
    free_qpos: np.ndarray
    body_ids: np.ndarray
    body_names: tuple[str, ...]
    geom_person: np.ndarray
    geom_ids: tuple[np.ndarray, ...]
    geom_bodies: tuple[tuple[str, ...], ...]
    materials: np.ndarray
    textures: np.ndarray
    hair: np.ndarray
    floor: int
    ground_tex: int
    ground_mat: int
    sun: int
    fill: int

    @property
    def num_people(self) -> int:
        return len(self.free_qpos)

    def body(self, person: int, name: str) -> int:
        """Body id of ``name`` (no prefix) of ``person``."""
        return int(self.body_ids[person, self.body_names.index(name)])

    @classmethod
    def build(cls, mj: Any, model: Any) -> HumanTables:
        """From the loaded ``model`` (``mujoco.MjModel`` of ``humans_xml``)."""
        m, obj = model, mj.mjtObj

        def name(kind, i: int) -> str:
            return mj.mj_id2name(m, kind, i) or ""

        people = sum(1 for i in range(m.njnt) if name(obj.mjOBJ_JOINT, i).endswith("/free"))
        prefixes = [person_prefix(p) for p in range(people)]
        hinge = [i for i in range(m.njnt) if m.jnt_type[i] == mj.mjtJoint.mjJNT_HINGE]
        own = [i for i in hinge if name(obj.mjOBJ_JOINT, i).startswith(prefixes[0])]
        joint_names = tuple(name(obj.mjOBJ_JOINT, i)[len(prefixes[0]) :] for i in own)
        joints = JointTable(
            names=joint_names,
            lower=m.jnt_range[own, 0].copy(),
            upper=m.jnt_range[own, 1].copy(),
        )
        hinge_qpos = np.array(
            [
                [m.jnt_qposadr[mj.mj_name2id(m, obj.mjOBJ_JOINT, pre + j)] for j in joint_names]
                for pre in prefixes
            ],
            dtype=np.int64,
        )
        free_qpos = np.array(
            [m.jnt_qposadr[mj.mj_name2id(m, obj.mjOBJ_JOINT, pre + "free")] for pre in prefixes]
        )
        all_bodies = [name(obj.mjOBJ_BODY, i) for i in range(m.nbody)]
        body_names = tuple(n[len(prefixes[0]) :] for n in all_bodies if n.startswith(prefixes[0]))
        body_ids = np.array([[all_bodies.index(pre + b) for b in body_names] for pre in prefixes])
        geom_person = np.full(m.ngeom, -1, dtype=np.int64)
        geom_ids, geom_bodies = [], []
        for p, pre in enumerate(prefixes):
            ids = [g for g in range(m.ngeom) if all_bodies[m.geom_bodyid[g]].startswith(pre)]
            geom_person[ids] = p
            geom_ids.append(np.array(ids, dtype=np.int64))
            geom_bodies.append(tuple(all_bodies[m.geom_bodyid[g]][len(pre) :] for g in ids))
        materials = np.array(
            [
                [mj.mj_name2id(m, obj.mjOBJ_MATERIAL, pre + r) for r in CLOTHING_REGIONS]
                for pre in prefixes
            ]
        )
        textures = np.array(
            [
                [mj.mj_name2id(m, obj.mjOBJ_TEXTURE, pre + r) for r in CLOTHING_REGIONS]
                for pre in prefixes
            ]
        )
        hair = np.array([mj.mj_name2id(m, obj.mjOBJ_GEOM, pre + HAIR_GEOM) for pre in prefixes])
        return cls(
            joints=joints,
            hinge_qpos=hinge_qpos,
            free_qpos=free_qpos,
            body_ids=body_ids,
            body_names=body_names,
            geom_person=geom_person,
            geom_ids=tuple(geom_ids),
            geom_bodies=tuple(geom_bodies),
            materials=materials,
            textures=textures,
            hair=hair,
            floor=mj.mj_name2id(m, obj.mjOBJ_GEOM, "floor"),
            ground_tex=mj.mj_name2id(m, obj.mjOBJ_TEXTURE, "ground"),
            ground_mat=mj.mj_name2id(m, obj.mjOBJ_MATERIAL, "ground"),
            sun=mj.mj_name2id(m, obj.mjOBJ_LIGHT, "sun"),
            fill=mj.mj_name2id(m, obj.mjOBJ_LIGHT, "fill"),
        )
