"""``HumanRenderer``: 1-4 CMU humanoids in a scene, rendered headless with MuJoCo (EGL or
OSMesa), with their COCO keypoints, visibility flags, masks and boxes.

One pass (``dog/offscreen.py``'s ``OffscreenView``) gives RGB and depth, a second the geom
segmentation (``mjRND_SEGMENT``), turned into the person each pixel shows. Keypoints
(``keypoints.py``) are projected with the camera MuJoCo rendered with; their flags come from the
depth buffer and the segmentation, so people hide each other. Scenery, light and camera effects
are the dog's (``styles/``, ``dog/composite.py``), the camera framing too (``dog/camera.py``).
Build it inside the process that uses it (GL contexts do not survive ``fork``); ``close()`` it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from animalpose.datasets.generator.dog.camera import (
    CameraView,
    PinholeCamera,
    fit_camera,
    sample_view,
)
from animalpose.datasets.generator.dog.composite import finish_frame
from animalpose.datasets.generator.dog.gl import import_mujoco
from animalpose.datasets.generator.dog.offscreen import OffscreenView
from animalpose.datasets.generator.dog.render import set_render_settings
from animalpose.datasets.generator.human.appearance import Outfit, sample_outfit
from animalpose.datasets.generator.human.keypoints import (
    COCO_KEYPOINTS,
    FACE_POINTS,
    JOINT_BODIES,
    VISIBILITY_MARGIN_M,
    VISIBILITY_RADIUS_SCALE,
    coco_visibility,
    keypoint_radius,
)
from animalpose.datasets.generator.human.model import (
    CLOTHING_REGIONS,
    MAX_PEOPLE,
    ROOT_QUAT_UP,
    HumanTables,
    humans_xml,
    model_path,
)
from animalpose.datasets.generator.human.pose import ArmFrames, quat_to_matrix, sample_pose
from animalpose.datasets.generator.renderer import check_frame_size, check_style
from animalpose.datasets.generator.styles.light import (
    CameraEffects,
    sample_effects,
    sample_lighting,
)
from animalpose.datasets.generator.styles.scenery import (
    PhotoLibrary,
    paint_backdrop,
    paint_ground,
)

__all__ = ["HumanFrame", "HumanRenderer", "PersonPlacement", "HumanView"]

#: Where unused people wait: below the ground, beyond the far clip plane.
PARKED_Z_M = -500.0
#: Share of images with 1, 2, 3 and 4 people.
PEOPLE_SHARES = (0.3, 0.3, 0.2, 0.2)
#: Placement: people stand within this radius (m) of the first one, their roots at least this
#: far apart (shoulders are 0.36 m wide: closer people would intersect).
GROUP_RADIUS_M = 2.2
MIN_SEPARATION_M = 0.75


@dataclass(frozen=True)
class PersonPlacement:
    """One person of a scene: hinge ``angles`` (J,) radians in ``HumanRenderer.joint_names``
    order, ground position ``xy`` (2,) metres, ``heading`` (radians about +z from +x: the
    direction the person faces), and what they wear (None: drawn from the scene's rng)."""

    angles: np.ndarray
    xy: tuple[float, float]
    heading: float
    outfit: Outfit | None = None
    kind: str = "placed"


@dataclass
class HumanFrame:
    """One rendered image and its people (P of them, in placement order).

    image: (H, W, 3) uint8 RGB.
    keypoints: (P, 17, 3) float64, COCO order: x, y (0-based pixels, centres on integers) and
        the COCO flag v (2 visible, 1 in the frame but hidden, 0 outside the frame).
    owner: (H, W) int8, the person each pixel shows (-1: ground or background).
    boxes: (P, 4) float64 COCO xywh of each person's visible pixels (``x`` = first column, ``w``
        = columns covered, as pycocotools' ``toBbox`` of the mask); zeros when none shows.
    areas: (P,) visible pixel counts.
    depth: (H, W) metres along the view axis. camera: the projection used.
    points: (P, 17, 3) world keypoints. kinds: the pose kind of each person.
    """

    image: np.ndarray
    keypoints: np.ndarray
    owner: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    depth: np.ndarray
    camera: PinholeCamera
    points: np.ndarray
    kinds: tuple[str, ...]


class HumanView(OffscreenView):
    """``OffscreenView`` plus a segmentation pass of the scene last rendered."""

    def segmentation(self) -> np.ndarray:
        """(H, W) int64 model geom id shown at each pixel, -1 where nothing was drawn. Reuses
        the scene and camera of the last ``render``."""
        mj = self._mj
        flags = self.scene.flags
        flags[mj.mjtRndFlag.mjRND_SEGMENT] = 1
        flags[mj.mjtRndFlag.mjRND_IDCOLOR] = 1
        try:
            self._gl.make_current()
            mj.mjr_render(self._rect, self.scene, self.context)
            colour = np.empty((self.height, self.width, 3), np.uint8)
            mj.mjr_readPixels(colour, None, self._rect, self.context)
        finally:
            flags[mj.mjtRndFlag.mjRND_SEGMENT] = 0
            flags[mj.mjtRndFlag.mjRND_IDCOLOR] = 0
        colour = np.flipud(colour).astype(np.int64)
        segid = colour[..., 0] + (colour[..., 1] << 8) + (colour[..., 2] << 16)  # segid + 1
        table = np.full(self.scene.ngeom + 1, -1, dtype=np.int64)
        geom = int(mj.mjtObj.mjOBJ_GEOM)
        for i in range(self.scene.ngeom):
            g = self.scene.geoms[i]
            if g.segid >= 0 and int(g.objtype) == geom:
                table[g.segid + 1] = g.objid
        return table[np.clip(segid, 0, self.scene.ngeom)]


def _lowest_offsets(model: Any, data: Any, geoms: np.ndarray) -> np.ndarray:
    """(G,) how far each geom reaches below its centre (m): capsules, spheres, ellipsoids."""
    size = model.geom_size[geoms]
    xmat = data.geom_xmat[geoms].reshape(-1, 3, 3)
    kind = model.geom_type[geoms]
    out = size[:, 0].copy()  # spheres
    capsule = kind == 3  # mjGEOM_CAPSULE
    out[capsule] += np.abs(xmat[capsule, 2, 2]) * size[capsule, 1]
    ellipsoid = kind == 4  # mjGEOM_ELLIPSOID
    out[ellipsoid] = np.sqrt(((xmat[ellipsoid, 2, :] * size[ellipsoid]) ** 2).sum(-1))
    return out


def heading_quat(heading: float) -> np.ndarray:
    """(4,) root quaternion of a person facing ``heading`` (about +z from +x), upright."""
    yaw = np.array([math.cos(heading / 2), 0.0, 0.0, math.sin(heading / 2)])
    up = np.array(ROOT_QUAT_UP)
    w1, x1, y1, z1 = yaw
    w2, x2, y2, z2 = up
    return np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )


class HumanRenderer:
    """dm_control's CMU humanoid, 1-``MAX_PEOPLE`` people per image, with random poses,
    clothes, ground, light, backdrop and camera.

    Args:
        width, height: frame size in pixels.
    """

    name = "human"

    def __init__(self, *, width: int, height: int) -> None:
        self.width, self.height = check_frame_size(width, height)
        mj = import_mujoco()
        self._mj = mj
        m = mj.MjModel.from_xml_string(humans_xml(model_path()))
        set_render_settings(m, width=self.width, height=self.height)
        self.model, self.data = m, mj.MjData(m)
        self._view = HumanView(mj, m, self.data, width=self.width, height=self.height)
        self._tables = HumanTables.build(mj, m)
        t = self._tables
        self._arms = ArmFrames(
            left=quat_to_matrix(m.body_quat[t.body(0, "lhumerus")]),
            right=quat_to_matrix(m.body_quat[t.body(0, "rhumerus")]),
        )
        self._joint_rows = [
            t.body_names.index(JOINT_BODIES[n]) for n in COCO_KEYPOINTS if n in JOINT_BODIES
        ]
        self._joint_kp = [k for k, n in enumerate(COCO_KEYPOINTS) if n in JOINT_BODIES]
        self._face_kp = [k for k, n in enumerate(COCO_KEYPOINTS) if n in FACE_POINTS]
        self._face_offsets = np.array([FACE_POINTS[COCO_KEYPOINTS[k]] for k in self._face_kp])
        self._tolerance = VISIBILITY_RADIUS_SCALE * keypoint_radius() + VISIBILITY_MARGIN_M
        self._hair_size = m.geom_size[t.hair[0]].copy()
        self._photos = PhotoLibrary()
        self._haze: tuple[np.ndarray, float] | None = None
        region = {r: i for i, r in enumerate(CLOTHING_REGIONS)}
        self._sleeves = [
            np.array([g for g, b in zip(t.geom_ids[p], t.geom_bodies[p]) if b[1:] == "radius"])
            for p in range(t.num_people)
        ]
        self._shins = [
            np.array([g for g, b in zip(t.geom_ids[p], t.geom_bodies[p]) if b[1:] == "tibia"])
            for p in range(t.num_people)
        ]
        self._region = region

    @property
    def joint_names(self) -> tuple[str, ...]:
        """One person's hinge joints, in ``PersonPlacement.angles`` order."""
        return self._tables.joints.names

    # --- scene ------------------------------------------------------------------------------------

    def _dress(self, person: int, outfit: Outfit) -> None:
        t, m = self._tables, self.model
        for r, region in enumerate(CLOTHING_REGIONS):
            self._view.upload_texture(int(t.textures[person, r]), outfit.textures[region])
        skin, shirt, trousers = (
            t.materials[person, self._region[r]] for r in ("skin", "shirt", "trousers")
        )
        m.geom_matid[self._sleeves[person]] = skin if outfit.short_sleeves else shirt
        m.geom_matid[self._shins[person]] = skin if outfit.shorts else trousers
        m.geom_size[t.hair[person]] = 0.01 if outfit.bald else self._hair_size

    def _place(self, people: list[PersonPlacement]) -> None:
        """Pose everyone, feet (the lowest point of each person) on the ground z = 0; park the
        unused copies out of view."""
        mj, m, d, t = self._mj, self.model, self.data, self._tables
        d.qpos[:] = m.qpos0
        for p in range(t.num_people):
            adr = t.free_qpos[p]
            if p < len(people):
                person = people[p]
                d.qpos[t.hinge_qpos[p]] = t.joints.clip(np.asarray(person.angles, float))
                d.qpos[adr : adr + 3] = (person.xy[0], person.xy[1], 1.0)
                d.qpos[adr + 3 : adr + 7] = heading_quat(person.heading)
            else:
                d.qpos[adr : adr + 3] = (0.0, 0.0, PARKED_Z_M)
        mj.mj_kinematics(m, d)
        for p in range(len(people)):
            geoms = t.geom_ids[p]
            low = float((d.geom_xpos[geoms, 2] - _lowest_offsets(m, d, geoms)).min())
            d.qpos[t.free_qpos[p] + 2] -= low
        mj.mj_kinematics(m, d)

    def _keypoints_3d(self, person: int) -> np.ndarray:
        """(17, 3) world keypoints of ``person``: joint centres and head-frame face points."""
        t, d = self._tables, self.data
        out = np.zeros((len(COCO_KEYPOINTS), 3))
        out[self._joint_kp] = d.xpos[t.body_ids[person, self._joint_rows]]
        head = t.body(person, "head")
        out[self._face_kp] = d.xpos[head] + self._face_offsets @ d.xmat[head].reshape(3, 3).T
        return out

    def sample_people(self, rng: np.random.Generator, count: int) -> list[PersonPlacement]:
        """``count`` random people: poses (``pose.sample_pose``), positions in a group at least
        ``MIN_SEPARATION_M`` apart, random headings, outfits."""
        people: list[PersonPlacement] = []
        spots: list[np.ndarray] = []
        for _ in range(count):
            angles, kind = sample_pose(self._tables.joints, self._arms, rng)
            for _ in range(50):
                r = GROUP_RADIUS_M * math.sqrt(rng.random()) if spots else 0.0
                a = rng.uniform(0.0, 2 * math.pi)
                xy = np.array([r * math.cos(a), r * math.sin(a)])
                if all(np.linalg.norm(xy - s) >= MIN_SEPARATION_M for s in spots):
                    break
            spots.append(xy)
            heading = float(rng.uniform(-math.pi, math.pi))
            people.append(
                PersonPlacement(
                    angles, (float(xy[0]), float(xy[1])), heading, sample_outfit(rng), kind
                )
            )
        return people

    # --- rendering --------------------------------------------------------------------------------

    def render_image(self, rng: np.random.Generator, style: str = "target") -> HumanFrame:
        """A random image: 1-4 people (``PEOPLE_SHARES``), camera (``camera.sample_view``), ground,
        light, backdrop and the ``style``'s camera effects (``renderer.STYLES``)."""
        check_style(style)
        count = 1 + int(rng.choice(len(PEOPLE_SHARES), p=PEOPLE_SHARES))
        people = self.sample_people(rng, count)
        return self.render_scene(rng, style, people=people, view=sample_view(rng))

    def render_scene(
        self,
        rng: np.random.Generator,
        style: str,
        *,
        people: list[PersonPlacement],
        view: CameraView,
        effects: bool = True,
    ) -> HumanFrame:
        """An image of chosen ``people`` (1-``MAX_PEOPLE``) seen from ``view`` (framing the
        whole group); outfits left None, ground, light and backdrop come from ``rng``;
        ``effects=False`` skips the camera effects."""
        check_style(style)
        if not 1 <= len(people) <= MAX_PEOPLE:
            raise ValueError(f"a scene holds 1 to {MAX_PEOPLE} people, got {len(people)}")
        m, d, t = self.model, self.data, self._tables
        for p, person in enumerate(people):
            self._dress(p, person.outfit if person.outfit is not None else sample_outfit(rng))
        self._place(people)
        ids = np.concatenate([t.geom_ids[p] for p in range(len(people))])
        reach = _lowest_offsets(m, d, ids)[:, None] * np.array([0.0, 0.0, 1.0])
        centres = d.geom_xpos[ids]
        points = np.concatenate([centres, centres + reach, centres - reach])
        lookat, distance, elevation = fit_camera(
            view=view, points=points, aspect=self.width / self.height, ground_z=0.0
        )
        cam = self._view.camera
        cam.lookat[:] = lookat
        cam.distance, cam.azimuth, cam.elevation = distance, view.azimuth_deg, elevation
        m.vis.global_.fovy = view.fovy_deg
        focal = 0.5 * self.height / math.tan(math.radians(view.fovy_deg) / 2.0)
        half_v = math.degrees(0.5 * self.height / focal) + 3.0
        half_h = math.degrees(0.5 * self.width / focal) + 3.0
        backdrop = paint_backdrop(
            rng,
            style,
            self._photos,
            azimuth_deg=view.azimuth_deg,
            span_deg=2 * half_h,
            top_deg=elevation + half_v,
            bottom_deg=elevation - half_v,
            px_per_deg=focal * math.pi / 180.0,
        )
        self._apply_look(rng, style, backdrop.horizon_colour())
        fx = sample_effects(rng, style) if effects else CameraEffects(enabled=False)
        centre = m.geom_pos[t.floor]
        for light in (t.sun, t.fill):
            m.light_pos[light] = centre - 6.0 * m.light_dir[light]
        rgb, depth, empty, camera = self._view.render()
        geom = self._view.segmentation()
        owner = np.where(geom >= 0, t.geom_person[np.clip(geom, 0, None)], -1).astype(np.int8)
        image = finish_frame(
            rgb,
            depth=depth,
            empty=empty,
            camera=camera,
            backdrop=backdrop,
            azimuth_deg=view.azimuth_deg,
            focus=float(distance),
            haze=self._haze,
            vegetation=None,
            effects=fx,
            rng=rng,
        )
        count = len(people)
        keypoints = np.zeros((count, len(COCO_KEYPOINTS), 3))
        points3d = np.zeros((count, len(COCO_KEYPOINTS), 3))
        boxes, areas = np.zeros((count, 4)), np.zeros(count)
        for p in range(count):
            points3d[p] = self._keypoints_3d(p)
            xy, z = camera.project(points3d[p])
            flags = coco_visibility(
                xy=xy, depth=z, depth_map=depth, owner=owner, person=p, tolerance=self._tolerance
            )
            keypoints[p] = np.concatenate([xy, flags[:, None]], axis=1)
            mask = owner == p
            areas[p] = float(mask.sum())
            if areas[p] > 0:
                rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
                boxes[p] = (cols[0], rows[0], cols[-1] - cols[0] + 1, rows[-1] - rows[0] + 1)
        return HumanFrame(
            image=image,
            keypoints=keypoints,
            owner=owner,
            boxes=boxes,
            areas=areas,
            depth=depth,
            camera=camera,
            points=points3d,
            kinds=tuple(person.kind for person in people),
        )

    def _apply_look(self, rng: np.random.Generator, style: str, horizon_rgb: np.ndarray) -> None:
        """Ground texture and light for ``style`` (as the dog's scenes)."""
        m, t = self.model, self._tables
        ground, tile_m = paint_ground(rng, style, self._photos)
        self._view.upload_texture(t.ground_tex, ground)
        self._view.context.mat_texrepeat[2 * t.ground_mat : 2 * t.ground_mat + 2] = 1.0 / tile_m
        light = sample_lighting(rng, style, horizon_rgb)
        self._haze = light.haze
        m.light_dir[t.sun] = light.sun_dir
        m.light_diffuse[t.sun] = light.sun_diffuse
        m.light_specular[t.sun] = light.sun_specular
        m.light_castshadow[t.sun] = light.shadow
        m.light_dir[t.fill] = light.fill_dir
        m.light_diffuse[t.fill] = light.fill_diffuse
        m.light_specular[t.fill] = 0.0
        m.vis.headlight.ambient[:] = light.head_ambient
        m.vis.headlight.diffuse[:] = light.head_diffuse
        m.vis.headlight.specular[:] = 0.0

    def close(self) -> None:
        """Free the GL context. Safe to call twice."""
        if getattr(self, "_view", None) is not None:
            self._view.close()

    def __enter__(self) -> HumanRenderer:  # noqa: PYI034 (Python 3.10 has no typing.Self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
