"""``DogRenderer``: dm_control's skinned dog rendered headless with MuJoCo (EGL or OSMesa).

Implements ``render_api.AnimalRenderer``. One render pass gives RGB and depth: keypoints are
projected with the camera MuJoCo rendered with, visibility comes from that depth buffer, and the
far background is composited where nothing was drawn. Pose/shape/camera maths live in
``dog_scene.py``, appearance in ``render_styles.py``.

Build the renderer inside the process that uses it (GL contexts do not survive ``fork``) and call
``close()``. ``MUJOCO_GL`` must be set before mujoco is first imported; when it is unset the
renderer picks ``egl``, then ``osmesa`` (``gl_available`` says which works and why not).
About 0.7 GB RSS per renderer.
"""

from __future__ import annotations

import functools
import importlib.util
import math
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from animalpose.datasets.generator.dog import scene as scene
from animalpose.datasets.generator.dog.ground_cover import (
    Cover,
    Vegetation,
    get_cover,
    sample_vegetation,
)
from animalpose.datasets.generator.renderer import NUM_KEYPOINTS, NUM_VERTEX_ROWS, RenderedFrame
from animalpose.datasets.generator.styles import paint as styles
from animalpose.datasets.keypoints import ANIMAL18

__all__ = ["GL_BACKENDS", "DogRenderer", "gl_available"]

#: Headless OpenGL backends tried in order, with the system packages each needs (Debian/Ubuntu).
GL_BACKENDS: dict[str, str] = {
    "egl": "libegl1 and libgl1-mesa-dri (apt-get install libegl1 libgl1-mesa-dri)",
    "osmesa": "libosmesa6 (apt-get install libosmesa6)",
}
_PROBE = (
    "import mujoco\n"
    "ctx = mujoco.GLContext(16, 16); ctx.make_current()\n"
    "xml = '<mujoco><worldbody><geom size=\".1\"/></worldbody></mujoco>'\n"
    "m = mujoco.MjModel.from_xml_string(xml)\n"
    "con = mujoco.MjrContext(m, mujoco.mjtFontScale.mjFONTSCALE_50)\n"
    "con.free(); ctx.free(); print('gl-ok')\n"
)
_INSTALL_HINT = "pip install dm-control==1.0.50 mujoco==3.17.0"

#: Skin texture atlas size uploaded per scene (the 1024 px original, halved: the dog covers at
#: most a few hundred pixels of a 640x480 frame).
ATLAS_SIZE = 512
#: Ground texture size and plane half-size (m): beyond it the backdrop shows. The plane is
#: centred on the dog (stills) or on the middle of its path (shots).
GROUND_TEXTURE = 512
GROUND_HALF_SIZE_M = 8.0
#: Clip planes (m): nothing is nearer than a few centimetres, the ground ends within 30 m.
ZNEAR_M, ZFAR_M = 0.02, 60.0
#: Directional-light shadow map: texels, and half-size of the square it covers (m), centred on
#: the ground plane. The square must cover the whole plane: MuJoCo shades ground just outside it
#: with a band of false shadow. 2048 texels over 18 m: 9 mm, about a pixel or two on the dog.
SHADOW_SIZE = 2048
SHADOW_CLIP_M = GROUND_HALF_SIZE_M + 1.0
#: Simulated footage frame rate of shots (TigDog's clips are 25-30 fps).
SHOT_FPS = 30.0
#: Largest nose-up / nose-down tilt used to put front and hind paws on the ground (degrees).
LEVEL_LIMIT_DEG = 25.0
#: Relative depth jump between neighbouring pixels that marks a silhouette edge for the
#: edge anti-aliasing pass (the renderer uses no multisampling: 3x faster on llvmpipe).
EDGE_DEPTH_JUMP = 0.03
#: A pixel shows the dog when its depth is nearer than the ground plane's by this relative
#: margin (plus as many metres): depth-buffer precision and the plane's own tessellation.
DOG_DEPTH_MARGIN = 1e-3
#: Bones whose axis runs along the body (x) in the bind pose; others point to their child bone.
_AXIAL_BONES = ("torso", "pelvis", "L_")


@functools.cache
def _probe(backend: str) -> tuple[bool, str]:
    """Create a MuJoCo GL context with ``backend`` in a fresh interpreter (keeps this process
    free of GL state, so it can still fork workers)."""
    env = dict(os.environ, MUJOCO_GL=backend)
    env.pop("PYOPENGL_PLATFORM", None)
    try:
        run = subprocess.run(
            [sys.executable, "-c", _PROBE],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{type(exc).__name__}: {exc}"
    if run.returncode == 0 and "gl-ok" in run.stdout:
        return True, ""
    lines = [ln for ln in run.stderr.strip().splitlines() if ln.strip()]
    return False, lines[-1] if lines else f"exit status {run.returncode}"


def gl_available() -> tuple[bool, str]:
    """(True, "MUJOCO_GL=<backend>") when MuJoCo can render headless here, else (False, reason)
    naming the missing package. Probes in a subprocess; the answer is cached per process."""
    for module in ("mujoco", "dm_control"):
        if importlib.util.find_spec(module) is None:
            return False, f"{module} is not installed ({_INSTALL_HINT})"
    requested = os.environ.get("MUJOCO_GL")
    candidates = [requested] if requested else list(GL_BACKENDS)
    errors = []
    for backend in candidates:
        ok, message = _probe(backend)
        if ok:
            return True, f"MUJOCO_GL={backend}"
        need = GL_BACKENDS.get(backend, "a working OpenGL library")
        errors.append(f"MUJOCO_GL={backend} failed ({message}); it needs {need}")
    return False, "no headless OpenGL for MuJoCo: " + "; ".join(errors)


def _import_mujoco() -> Any:
    """Import mujoco with a headless backend chosen (egl, then osmesa) when MUJOCO_GL is unset."""
    if not os.environ.get("MUJOCO_GL"):
        if "mujoco" in sys.modules:
            raise RuntimeError(
                "mujoco was imported before MUJOCO_GL was set; set MUJOCO_GL=egl (or osmesa) "
                "before the first import of mujoco or dm_control"
            )
        ok, reason = gl_available()
        if not ok:
            raise RuntimeError(reason)
        os.environ["MUJOCO_GL"] = reason.split("=", 1)[1]
    try:
        import mujoco
    except Exception as exc:  # mujoco loads the backend's OpenGL library on import
        _, reason = gl_available()
        raise RuntimeError(
            f"cannot import mujoco with MUJOCO_GL={os.environ['MUJOCO_GL']}: {reason}"
        ) from exc
    return mujoco


def _suite_dir() -> Path:
    spec = importlib.util.find_spec("dm_control")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"dm_control is not installed ({_INSTALL_HINT})")
    suite = Path(next(iter(spec.submodule_search_locations))) / "suite"
    if not (suite / "dog.xml").is_file():
        raise RuntimeError(
            f"{suite / 'dog.xml'}: dm_control's dog model is missing ({_INSTALL_HINT})"
        )
    return suite


def _dog_xml(suite: Path) -> tuple[str, dict[str, bytes]]:
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
    size = str(GROUND_TEXTURE)
    ET.SubElement(
        asset,
        "texture",
        name="ground",
        type="2d",
        builtin="flat",
        width=size,
        height=size,
        rgb1=".5 .5 .5",
    )
    ET.SubElement(
        asset,
        "material",
        name="ground",
        texture="ground",
        texuniform="true",
        texrepeat="1 1",
        reflectance="0",
        specular="0.05",
        shininess="0.05",
    )
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
    ET.SubElement(
        world, "light", name="sun", type="directional", castshadow="true", pos="0 0 5", dir="0 0 -1"
    )
    ET.SubElement(
        world,
        "light",
        name="fill",
        type="directional",
        castshadow="false",
        pos="0 0 5",
        dir="0 0 -1",
    )
    assets = {p.name: p.read_bytes() for p in (suite / "dog_assets").iterdir() if p.is_file()}
    skin = cv2.imdecode(np.frombuffer(assets["skin_texture.png"], np.uint8), cv2.IMREAD_COLOR)
    small = cv2.resize(skin, (ATLAS_SIZE, ATLAS_SIZE), interpolation=cv2.INTER_AREA)
    assets["skin_texture.png"] = cv2.imencode(".png", small)[1].tobytes()
    return ET.tostring(root, encoding="unicode"), assets


class DogRenderer:
    """dm_control's skinned dog with random pose, shape, coat, light, ground, backdrop and camera.

    Args:
        width, height: frame size in pixels.
    """

    name = "dog"

    def __init__(self, *, width: int, height: int) -> None:
        if width < 16 or height < 16:
            raise ValueError(f"frame size must be at least 16x16, got {width}x{height}")
        self.width, self.height = int(width), int(height)
        mj = _import_mujoco()
        self._mj = mj
        xml, assets = _dog_xml(_suite_dir())
        m = mj.MjModel.from_xml_string(xml, assets)
        m.vis.global_.offwidth, m.vis.global_.offheight = self.width, self.height
        m.vis.quality.offsamples = 0
        m.vis.quality.shadowsize = SHADOW_SIZE
        m.vis.map.shadowclip = SHADOW_CLIP_M
        m.vis.map.znear, m.vis.map.zfar = ZNEAR_M / m.stat.extent, ZFAR_M / m.stat.extent
        self.model, self.data = m, mj.MjData(m)
        try:
            self._gl = mj.GLContext(self.width, self.height)
            self._gl.make_current()
            self._con = mj.MjrContext(m, mj.mjtFontScale.mjFONTSCALE_50)
        except Exception as exc:  # the backend's own errors are cryptic (e.g. missing libraries)
            _, reason = gl_available()
            raise RuntimeError(f"cannot create an OpenGL context: {reason}") from exc
        mj.mjr_setBuffer(mj.mjtFramebuffer.mjFB_OFFSCREEN, self._con)
        self._con.readDepthMap = mj.mjtDepthMap.mjDEPTH_ZEROFAR
        self._scene = mj.MjvScene(m, maxgeom=400)
        self._scene.flags[mj.mjtRndFlag.mjRND_SKYBOX] = 0
        self._scene.flags[mj.mjtRndFlag.mjRND_REFLECTION] = 0
        # Fog is applied from the depth buffer (render_styles.apply_fog): MuJoCo applies
        # mjrContext fog settings one frame late.
        self._scene.flags[mj.mjtRndFlag.mjRND_FOG] = 0
        self._option = mj.MjvOption()
        self._option.flags[mj.mjtVisFlag.mjVIS_TENDON] = 0
        self._perturb = mj.MjvPerturb()
        self._camera = mj.MjvCamera()
        self._camera.type = mj.mjtCamera.mjCAMERA_FREE
        self._rect = mj.MjrRect(0, 0, self.width, self.height)
        self._rgb = np.empty((self.height, self.width, 3), np.uint8)
        self._depth = np.empty((self.height, self.width), np.float32)
        self._setup_tables()
        self._photos = styles.PhotoLibrary()
        self._active: object | None = None  # the scene being rendered (shots check it)
        self._light: styles.Lighting | None = None
        #: Depth, dog mask, camera and 3-D keypoints of the last rendered frame.
        self.last_geometry: scene.FrameGeometry | None = None

    # --- static tables ----------------------------------------------------------------------------

    def _setup_tables(self) -> None:
        mj, m, d = self._mj, self.model, self.data
        obj = mj.mjtObj
        self._body_names = [mj.mj_id2name(m, obj.mjOBJ_BODY, i) or "" for i in range(m.nbody)]
        geom_names = [mj.mj_id2name(m, obj.mjOBJ_GEOM, i) or "" for i in range(m.ngeom)]
        hinge = np.flatnonzero(m.jnt_type == mj.mjtJoint.mjJNT_HINGE)
        self._joints = scene.JointTable(
            names=tuple(mj.mj_id2name(m, obj.mjOBJ_JOINT, int(j)) for j in hinge),
            lower=m.jnt_range[hinge, 0].copy(),
            upper=m.jnt_range[hinge, 1].copy(),
        )
        self._hinge_qpos = m.jnt_qposadr[hinge].copy()
        self._floor = geom_names.index("floor")
        self._skin_tex = mj.mj_name2id(m, obj.mjOBJ_TEXTURE, "skin")
        self._ground_tex = mj.mj_name2id(m, obj.mjOBJ_TEXTURE, "ground")
        self._skin_mat = mj.mj_name2id(m, obj.mjOBJ_MATERIAL, "skin")
        self._ground_mat = mj.mj_name2id(m, obj.mjOBJ_MATERIAL, "ground")
        self._sun = mj.mj_name2id(m, obj.mjOBJ_LIGHT, "sun")
        self._fill = mj.mj_name2id(m, obj.mjOBJ_LIGHT, "fill")
        self._paw_bodies = {
            "front": [self._body_names.index(n) for n in ("finger_L", "finger_R")],
            "hind": [self._body_names.index(n) for n in ("toe_L", "toe_R")],
        }
        # Skin: bind pose, skinning pairs, bone axes and girth groups.
        self._bind_vert = m.skin_vert.reshape(-1, 3).astype(np.float64).copy()
        self._body_pos0 = m.body_pos.copy()
        nv, nb = len(self._bind_vert), int(m.skin_bonenum[0])
        # Skinning pairs (vertex, bone, weight) of the model's single skin.
        spans = [
            np.arange(m.skin_bonevertadr[b], m.skin_bonevertadr[b] + m.skin_bonevertnum[b])
            for b in range(nb)
        ]
        pair_bone = np.concatenate([np.full(len(sp), b) for b, sp in enumerate(spans)])
        pair_vertex = m.skin_bonevertid[np.concatenate(spans)].astype(np.int64)
        pair_weight = m.skin_bonevertweight[np.concatenate(spans)].astype(np.float64)
        bone_bodies = m.skin_bonebodyid[:nb]
        bone_names = [self._body_names[b] for b in bone_bodies]
        groups = [
            next((g for p, g in scene.GIRTH_GROUPS.items() if n.startswith(p)), "")
            for n in bone_names
        ]
        self._girth = scene.GirthModel.build(
            vertices=self._bind_vert,
            pair_vertex=pair_vertex,
            pair_bone=pair_bone,
            pair_weight=pair_weight,
            bone_pos=m.skin_bonebindpos[:nb].astype(np.float64),
            bone_axis=self._bone_axes(bone_bodies, bone_names),
            bone_group=groups,
        )
        weights = np.zeros((nv, nb))
        weights[pair_vertex, pair_bone] = pair_weight
        mj.mj_kinematics(m, d)
        self._keypoints = scene.KeypointModel.build(
            keypoint_names=ANIMAL18.keypoints,
            body_names=self._body_names,
            geom_names=geom_names,
            bone_names=bone_names,
            bind_vertices=self._bind_vert,
            bone_weights=weights,
            bind_xpos=d.xpos.copy(),
            bind_geom_xpos=d.geom_xpos.copy(),
        )
        self._subsample = scene.farthest_point_subsample(
            self._bind_vert, NUM_VERTEX_ROWS - NUM_KEYPOINTS
        )
        adr, size = int(m.tex_adr[self._skin_tex]), ATLAS_SIZE * ATLAS_SIZE * 3
        texture = m.tex_data[adr : adr + size].reshape(ATLAS_SIZE, ATLAS_SIZE, 3).copy()
        bone_part = np.eye(len(styles.PARTS))[[styles.part_of_bone(n) for n in bone_names]]
        self._atlas = styles.build_coat_atlas(
            texcoords=m.skin_texcoord.reshape(-1, 2).astype(np.float64),
            vertices=self._bind_vert,
            faces=m.skin_face.reshape(-1, 3).astype(np.int64),
            part_weights=weights @ bone_part,
            texture=texture,
        )

    def _bone_axes(self, bone_bodies: np.ndarray, bone_names: list[str]) -> np.ndarray:
        """(B, 3) unit axis of each skin bone in the bind pose: +x for the trunk, else towards its
        first child bone (or its parent's axis at the end of a chain)."""
        m = self.model
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

    # --- per-scene state --------------------------------------------------------------------------

    def _apply_shape(self, shape: scene.ShapeSample) -> float:
        """Set body lengths and skin girth; returns the largest girth factor."""
        m = self.model
        m.body_pos[:] = scene.scaled_body_pos(self._body_pos0, self._body_names, shape.lengths)
        verts = self._girth.apply(shape.girths)
        m.skin_vert[:] = verts.astype(np.float32).reshape(m.skin_vert.shape)
        return float(max(shape.girths.values(), default=1.0))

    def _upload(self, texid: int, image: np.ndarray) -> None:
        m = self.model
        adr, size = int(m.tex_adr[texid]), image.size
        m.tex_data[adr : adr + size] = image.reshape(-1)
        self._gl.make_current()
        self._mj.mjr_uploadTexture(m, self._con, texid)

    def _apply_look(self, rng: np.random.Generator, style: str, horizon_rgb: np.ndarray) -> None:
        """Coat, ground texture and light for ``style``."""
        m = self.model
        self._upload(self._skin_tex, styles.paint_coat(rng, style, self._atlas))
        ground, tile_m = styles.paint_ground(rng, style, self._photos)
        self._upload(self._ground_tex, ground)
        # mjrContext keeps (u, v) texture repeats per material, read at render time.
        self._con.mat_texrepeat[2 * self._ground_mat : 2 * self._ground_mat + 2] = 1.0 / tile_m
        light = styles.sample_lighting(rng, style, horizon_rgb)
        self._light = light
        m.light_dir[self._sun] = light.sun_dir
        m.light_diffuse[self._sun] = light.sun_diffuse
        m.light_specular[self._sun] = light.sun_specular
        m.light_castshadow[self._sun] = light.shadow
        m.light_dir[self._fill] = light.fill_dir
        m.light_diffuse[self._fill] = light.fill_diffuse
        m.light_specular[self._fill] = 0.0
        m.vis.headlight.ambient[:] = light.head_ambient
        m.vis.headlight.diffuse[:] = light.head_diffuse
        m.vis.headlight.specular[:] = 0.0
        m.mat_specular[self._skin_mat] = light.skin_specular
        m.mat_shininess[self._skin_mat] = light.skin_shininess

    def _pose(self, angles: np.ndarray, xy: np.ndarray, heading: float) -> np.ndarray:
        """Pose the dog (hinge angles, root position, heading), level it so front and hind paws
        touch the ground together, put its lowest skin vertex on z = 0; returns (V, 3) skin."""
        mj, m, d = self._mj, self.model, self.data
        d.qpos[:] = m.qpos0
        d.qpos[self._hinge_qpos] = angles
        d.qpos[0:3] = (xy[0], xy[1], 1.0)
        yaw = np.array([math.cos(heading / 2), 0.0, 0.0, math.sin(heading / 2)])
        d.qpos[3:7] = yaw
        mj.mj_kinematics(m, d)
        pitch = scene.level_pitch(
            front=d.xpos[self._paw_bodies["front"]],
            hind=d.xpos[self._paw_bodies["hind"]],
            heading=heading,
            limit_deg=LEVEL_LIMIT_DEG,
        )
        quat = np.empty(4)
        mj.mju_mulQuat(quat, yaw, np.array([math.cos(pitch / 2), 0.0, math.sin(pitch / 2), 0.0]))
        d.qpos[3:7] = quat
        mj.mj_kinematics(m, d)
        mj.mjv_updateScene(
            m, d, self._option, self._perturb, self._camera, mj.mjtCatBit.mjCAT_ALL, self._scene
        )
        skin = np.array(self._scene.skinvert, dtype=np.float64).reshape(-1, 3)
        lowest = skin[:, 2].min()
        d.qpos[2] -= lowest
        mj.mj_kinematics(m, d)
        skin[:, 2] -= lowest
        return skin

    def _set_camera(
        self, *, lookat: np.ndarray, distance: float, azimuth: float, elevation: float, fovy: float
    ) -> None:
        cam = self._camera
        cam.lookat[:] = lookat
        cam.distance, cam.azimuth, cam.elevation = distance, azimuth, elevation
        self.model.vis.global_.fovy = fovy

    def _focal(self) -> float:
        return 0.5 * self.height / math.tan(math.radians(self.model.vis.global_.fovy) / 2.0)

    def _backdrop(
        self, rng: np.random.Generator, style: str, *, elevations: tuple[float, float], wrap: bool
    ) -> styles.Backdrop:
        """Backdrop for camera elevations (MuJoCo degrees, lowest, highest) at this fov."""
        focal = self._focal()
        ppd = focal * math.pi / 180.0
        half_v = math.degrees(0.5 * self.height / focal) + 3.0
        half_h = math.degrees(0.5 * self.width / focal) + 3.0
        return styles.paint_backdrop(
            rng,
            style,
            self._photos,
            azimuth_deg=self._camera.azimuth,
            span_deg=360.0 if wrap else 2 * half_h,
            top_deg=elevations[1] + half_v,
            bottom_deg=elevations[0] - half_v,
            px_per_deg=ppd,
        )

    # --- rendering --------------------------------------------------------------------------------

    def _render(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, scene.PinholeCamera]:
        """One pass: (rgb (H, W, 3) uint8, depth (H, W) metres with ZFAR where empty,
        empty (H, W) bool, the camera)."""
        mj, m, d = self._mj, self.model, self.data
        centre = m.geom_pos[self._floor]  # the shadow map square is centred on the ground
        m.light_pos[self._sun] = centre - 6.0 * m.light_dir[self._sun]
        m.light_pos[self._fill] = centre - 6.0 * m.light_dir[self._fill]
        mj.mj_camlight(m, d)
        mj.mjv_updateScene(
            m, d, self._option, self._perturb, self._camera, mj.mjtCatBit.mjCAT_ALL, self._scene
        )
        self._gl.make_current()
        mj.mjr_render(self._rect, self._scene, self._con)
        mj.mjr_readPixels(self._rgb, self._depth, self._rect, self._con)
        rgb = np.flipud(self._rgb).copy()
        raw = np.flipud(self._depth).astype(np.float64)
        near, far = m.vis.map.znear * m.stat.extent, m.vis.map.zfar * m.stat.extent
        empty = raw <= 0.0
        # Reversed-Z depth buffer (mjDEPTH_ZEROFAR): 1 at the near plane, 0 at the far plane.
        depth = np.where(empty, far, far * near / (raw * (far - near) + near))
        # The scene holds a stereo pair (eyes ipd apart); a mono render uses their average.
        gl = mj.mjv_averageCamera(self._scene.camera[0], self._scene.camera[1])
        camera = scene.PinholeCamera.from_frustum(
            position=np.array(gl.pos),
            forward=np.array(gl.forward),
            up=np.array(gl.up),
            near=gl.frustum_near,
            bottom=gl.frustum_bottom,
            top=gl.frustum_top,
            center=gl.frustum_center,
            width=self.width,
            height=self.height,
        )
        return rgb, depth, empty, camera

    def _frame(
        self,
        rng: np.random.Generator,
        *,
        skin: np.ndarray,
        girth: float,
        backdrop: styles.Backdrop,
        effects: styles.CameraEffects,
        vegetation: Vegetation | None = None,
    ) -> RenderedFrame:
        """Render, composite (backdrop, then ground cover) and degrade the posed scene; project
        keypoints and vertices."""
        rgb, depth, empty, camera = self._render()
        d = self.data
        points = self._keypoints.locate(d.xpos, d.geom_xpos, skin)
        tolerance = self._keypoints.tolerance(girth)
        xy, z = camera.project(points)
        visible = scene.visibility(xy=xy, depth=z, depth_map=depth, tolerance=tolerance)
        vertices, _ = camera.project(skin[self._subsample])
        # Horizon row: where a far point straight ahead (level) projects.
        fwd = camera.rotation[2]
        level = np.array([fwd[0], fwd[1], 0.0]) / max(math.hypot(fwd[0], fwd[1]), 1e-9)
        horizon = camera.cy - camera.focal * (level @ camera.rotation[1]) / max(level @ fwd, 1e-9)
        background = backdrop.view(
            azimuth_deg=self._camera.azimuth,
            horizon_row=horizon,
            size=(self.width, self.height),
            px_per_deg=camera.focal * math.pi / 180.0,
        )
        distance = float(self._camera.distance)
        if self._light is not None and self._light.haze is not None:  # ground fades out far away
            colour, onset = self._light.haze
            fog = (colour, distance + onset, distance + 0.9 * GROUND_HALF_SIZE_M)
        else:
            fog = None
        image = styles.apply_fog(rgb, depth=depth, fog=fog)
        image = np.where(empty[..., None], background, image)
        image = _smooth_edges(image, depth)
        if vegetation is not None:
            image = vegetation.draw(image, depth, camera, focus=distance)
        image = styles.apply_effects(image, depth=depth, focus=distance, effects=effects, rng=rng)
        ground = scene.ground_depth(
            camera,
            ground_z=0.0,
            half_size=GROUND_HALF_SIZE_M,
            centre=self.model.geom_pos[self._floor, :2],
        )
        dog = ~empty & (depth < ground * (1.0 - DOG_DEPTH_MARGIN) - DOG_DEPTH_MARGIN)
        self.last_geometry = scene.FrameGeometry(
            depth=depth, dog=dog, camera=camera, points=points, tolerance=tolerance
        )
        keypoints = np.concatenate([xy, visible[:, None]], axis=1)
        return RenderedFrame(image=image, keypoints=keypoints, vertices=vertices)

    def render_view(
        self,
        rng: np.random.Generator,
        style: str,
        *,
        view: scene.CameraView,
        angles: np.ndarray | None = None,
        heading: float = 0.0,
        shape: scene.ShapeSample | None = None,
        effects: bool = True,
    ) -> RenderedFrame:
        """A still of a chosen scene: hinge ``angles`` (J,) radians in ``joint_names`` order
        (None: the standing keyframe), the dog's ``heading`` (radians about +z from +x), camera
        ``view``, ``shape`` (None: the model's own proportions). Coat, ground, light and backdrop
        are drawn from ``rng``; ``effects=False`` skips the camera effects. For checks, masks and
        figures; ``last_geometry`` describes the frame."""
        styles.check_style(style)
        self._active = object()
        neutral = scene.ShapeSample(lengths={}, girths={})
        girth = self._apply_shape(shape if shape is not None else neutral)
        self.model.geom_pos[self._floor] = 0.0
        pose = np.zeros(len(self._joints.names)) if angles is None else np.asarray(angles, float)
        if pose.shape != (len(self._joints.names),):
            raise ValueError(
                f"angles must have shape ({len(self._joints.names)},), got {pose.shape}"
            )
        skin = self._pose(self._joints.clip(pose), np.zeros(2), heading)
        return self._still(rng, style, skin=skin, girth=girth, view=view, effects=effects)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """The dog's hinge joints in ``render_view``'s ``angles`` order."""
        return self._joints.names

    def _still(
        self,
        rng: np.random.Generator,
        style: str,
        *,
        skin: np.ndarray,
        girth: float,
        view: scene.CameraView,
        effects: bool = True,
        cover: Cover | None = None,
    ) -> RenderedFrame:
        lookat, distance, elevation = scene.fit_camera(
            view=view, points=skin[self._subsample], aspect=self.width / self.height, ground_z=0.0
        )
        self._set_camera(
            lookat=lookat,
            distance=distance,
            azimuth=view.azimuth_deg,
            elevation=elevation,
            fovy=view.fovy_deg,
        )
        backdrop = self._backdrop(rng, style, elevations=(elevation, elevation), wrap=False)
        self._apply_look(rng, style, backdrop.horizon_colour())
        fx = styles.sample_effects(rng, style) if effects else styles.CameraEffects(enabled=False)
        grass = None if cover is None else sample_vegetation(rng, cover, centre=np.zeros(2))
        return self._frame(
            rng, skin=skin, girth=girth, backdrop=backdrop, effects=fx, vegetation=grass
        )

    def render_still(
        self, rng: np.random.Generator, style: str, *, breed: str = "mixed", cover: str = "none"
    ) -> RenderedFrame:
        """An independent sample: random shape (of ``breed``, ``dog_scene.BREEDS``), pose,
        camera, coat, ground, light, backdrop, and ground ``cover`` (``ground_cover.COVERS``)."""
        styles.check_style(style)
        grass = get_cover(cover)
        self._active = object()
        girth = self._apply_shape(scene.sample_shape(rng, breed))
        self.model.geom_pos[self._floor] = 0.0
        skin = self._pose(
            scene.sample_pose(self._joints, rng), np.zeros(2), float(rng.uniform(-math.pi, math.pi))
        )
        return self._still(
            rng, style, skin=skin, girth=girth, view=scene.sample_view(rng), cover=grass
        )

    def render_shot(
        self,
        rng: np.random.Generator,
        style: str,
        num_frames: int,
        *,
        breed: str = "mixed",
        cover: str = "none",
    ) -> Iterator[RenderedFrame]:
        """``num_frames`` frames at ``SHOT_FPS`` of one dog (of ``breed``) walking, trotting or
        standing in ground ``cover``, filmed by a camera that follows it while orbiting, tilting
        and zooming smoothly. Consume one shot at a time: rendering anything else with this
        renderer ends the shot (RuntimeError)."""
        styles.check_style(style)
        grass = get_cover(cover)
        if num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        token = self._active = object()
        girth = self._apply_shape(scene.sample_shape(rng, breed))
        motion = scene.sample_motion(self._joints, rng)
        path = scene.sample_camera_path(rng)
        duration = (num_frames - 1) / SHOT_FPS
        xy0, heading0 = motion.root(0.0)
        middle, _ = motion.root(duration / 2.0)
        self.model.geom_pos[self._floor] = (middle[0], middle[1], 0.0)
        skin = self._pose(motion.angles(0.0), xy0, heading0)
        lookat0, distance0, elevation0 = scene.fit_camera(
            view=path.view,
            points=skin[self._subsample],
            aspect=self.width / self.height,
            ground_z=0.0,
        )
        elevations = sorted([elevation0, elevation0 + path.elevation_rate * duration])
        self._set_camera(
            lookat=lookat0,
            distance=distance0,
            azimuth=path.view.azimuth_deg,
            elevation=elevation0,
            fovy=path.view.fovy_deg,
        )
        backdrop = self._backdrop(rng, style, elevations=(elevations[0], elevations[1]), wrap=True)
        self._apply_look(rng, style, backdrop.horizon_colour())
        effects = styles.sample_effects(rng, style)
        vegetation = None
        if grass is not None:
            reach = max(
                float(np.linalg.norm(motion.root(t)[0] - middle))
                for t in np.linspace(0.0, duration, 5)
            )
            vegetation = sample_vegetation(rng, grass, centre=middle, path_half_length=reach)
        return self._shot_frames(
            rng,
            token,
            motion,
            path,
            lookat0,
            distance0,
            elevation0,
            girth,
            backdrop,
            effects,
            num_frames,
            vegetation,
        )

    def _shot_frames(
        self,
        rng: np.random.Generator,
        token: object,
        motion: scene.ShotMotion,
        path: scene.CameraPath,
        lookat0: np.ndarray,
        distance0: float,
        elevation0: float,
        girth: float,
        backdrop: styles.Backdrop,
        effects: styles.CameraEffects,
        num_frames: int,
        vegetation: Vegetation | None,
    ) -> Iterator[RenderedFrame]:
        xy0, _ = motion.root(0.0)
        for k in range(num_frames):
            if self._active is not token:
                raise RuntimeError("another scene was rendered while this shot was in progress")
            t = k / SHOT_FPS
            xy, heading = motion.root(t)
            skin = self._pose(motion.angles(t), xy, heading)
            lookat = lookat0.copy()
            lookat[:2] += path.follow * (xy - xy0)
            distance = distance0 * math.exp(path.zoom_rate * t)
            elevation = elevation0 + path.elevation_rate * t
            # Keep the camera above the ground.
            highest = (lookat[2] - scene.MIN_CAMERA_HEIGHT_M) / distance
            elevation = min(elevation, math.degrees(math.asin(float(np.clip(highest, -1, 1)))))
            self._set_camera(
                lookat=lookat,
                distance=distance,
                azimuth=path.view.azimuth_deg + path.azimuth_rate * t,
                elevation=elevation,
                fovy=path.view.fovy_deg,
            )
            yield self._frame(
                rng,
                skin=skin,
                girth=girth,
                backdrop=backdrop,
                effects=effects,
                vegetation=vegetation,
            )

    def close(self) -> None:
        """Free the GL context. Safe to call twice."""
        if getattr(self, "_con", None) is not None:
            self._gl.make_current()
            self._con.free()
            self._con = None
        if getattr(self, "_gl", None) is not None:
            self._gl.free()
            self._gl = None

    def __enter__(self) -> DogRenderer:  # noqa: PYI034 (Python 3.10 has no typing.Self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _smooth_edges(image: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Anti-alias depth discontinuities (silhouettes): pixels next to a relative depth jump of
    more than ``EDGE_DEPTH_JUMP`` take their 3x3 box average."""
    near_x = np.minimum(depth[:, 1:], depth[:, :-1])
    jump_x = np.abs(np.diff(depth, axis=1)) > EDGE_DEPTH_JUMP * near_x
    jump_y = np.abs(np.diff(depth, axis=0)) > EDGE_DEPTH_JUMP * np.minimum(depth[1:], depth[:-1])
    edge = np.zeros(depth.shape, bool)
    edge[:, 1:] |= jump_x
    edge[:, :-1] |= jump_x
    edge[1:] |= jump_y
    edge[:-1] |= jump_y
    out = image.copy()
    out[edge] = cv2.blur(image, (3, 3))[edge]
    return out
