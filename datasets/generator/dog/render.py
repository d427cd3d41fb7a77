"""``DogRenderer``: dm_control's skinned dog rendered headless with MuJoCo (EGL or OSMesa).

Implements ``renderer.AnimalRenderer``. One render pass (``offscreen.py``) gives RGB and depth:
keypoints are projected with the camera MuJoCo rendered with, visibility comes from that depth
buffer, and ``composite.py`` finishes the image (fog, far backdrop, ground cover, camera effects).
Stills also get a part segmentation (``partseg.py``) computed beside the render, which draws no
random numbers and changes nothing rendered.
The model and its tables are in ``model.py``, the GL backend in ``gl.py``, pose/shape/camera
maths in ``motion.py``, ``shape.py``, ``camera.py`` and ``keypoints.py``, appearance in
``styles/``. Build the renderer inside the process that uses it (GL contexts do not survive
``fork``) and call ``close()``. About 0.7 GB RSS per renderer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from animalpose.datasets.generator.dog.camera import (
    MIN_CAMERA_HEIGHT_M,
    CameraPath,
    CameraView,
    FrameGeometry,
    PinholeCamera,
    fit_camera,
    ground_depth,
    sample_camera_path,
    sample_view,
)
from animalpose.datasets.generator.dog.composite import finish_frame
from animalpose.datasets.generator.dog.gl import import_mujoco
from animalpose.datasets.generator.dog.ground_cover import (
    Cover,
    Vegetation,
    get_cover,
    sample_vegetation,
)
from animalpose.datasets.generator.dog.keypoints import visibility
from animalpose.datasets.generator.dog.model import (
    GROUND_HALF_SIZE_M,
    DogTables,
    dog_xml,
    suite_dir,
)
from animalpose.datasets.generator.dog.motion import (
    ShotMotion,
    level_pitch,
    sample_motion,
    sample_pose,
)
from animalpose.datasets.generator.dog.offscreen import OffscreenView
from animalpose.datasets.generator.dog.partseg import reconcile
from animalpose.datasets.generator.dog.shape import ShapeSample, sample_shape, scaled_body_pos
from animalpose.datasets.generator.renderer import RenderedFrame, check_frame_size, check_style
from animalpose.datasets.generator.styles.coats import paint_coat
from animalpose.datasets.generator.styles.light import (
    CameraEffects,
    Lighting,
    sample_effects,
    sample_lighting,
)
from animalpose.datasets.generator.styles.scenery import (
    Backdrop,
    PhotoLibrary,
    paint_backdrop,
    paint_ground,
)

__all__ = ["DogRenderer", "set_render_settings"]

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
#: A pixel shows the dog when its depth is nearer than the ground plane's by this relative
#: margin (plus as many metres): depth-buffer precision and the plane's own tessellation.
DOG_DEPTH_MARGIN = 1e-3


def set_render_settings(m, *, width: int, height: int) -> None:
    """The offscreen settings of every scene model (the dog's and the people's): frame size,
    no multisampling, the shadow map and clip planes above."""
    m.vis.global_.offwidth, m.vis.global_.offheight = width, height
    m.vis.quality.offsamples = 0
    m.vis.quality.shadowsize = SHADOW_SIZE
    m.vis.map.shadowclip = SHADOW_CLIP_M
    m.vis.map.znear, m.vis.map.zfar = ZNEAR_M / m.stat.extent, ZFAR_M / m.stat.extent


class DogRenderer:
    """dm_control's skinned dog with random pose, shape, coat, light, ground, backdrop and camera.

    Args:
        width, height: frame size in pixels.
    """

    name = "dog"

    def __init__(self, *, width: int, height: int) -> None:
        self.width, self.height = check_frame_size(width, height)
        mj = import_mujoco()
        self._mj = mj
        xml, assets = dog_xml(suite_dir())
        m = mj.MjModel.from_xml_string(xml, assets)
        set_render_settings(m, width=self.width, height=self.height)
        self.model, self.data = m, mj.MjData(m)
        self._view = OffscreenView(mj, m, self.data, width=self.width, height=self.height)
        self._camera = self._view.camera  # the free camera every frame is aimed with
        self._tables = DogTables.build(mj, m, self.data)
        self._photos = PhotoLibrary()
        self._active: object | None = None  # the scene being rendered (shots check it)
        self._light: Lighting | None = None
        #: Depth, dog mask, camera and 3-D keypoints of the last rendered frame.
        self.last_geometry: FrameGeometry | None = None

    # --- per-scene state --------------------------------------------------------------------------

    def _apply_shape(self, shape: ShapeSample) -> float:
        """Set body lengths and skin girth; returns the largest girth factor."""
        m = self.model
        m.body_pos[:] = scaled_body_pos(
            self._tables.body_pos0, self._tables.body_names, shape.lengths
        )
        verts = self._tables.girth.apply(shape.girths)
        m.skin_vert[:] = verts.astype(np.float32).reshape(m.skin_vert.shape)
        return float(max(shape.girths.values(), default=1.0))

    def _apply_look(self, rng: np.random.Generator, style: str, horizon_rgb: np.ndarray) -> None:
        """Coat, ground texture and light for ``style``."""
        m = self.model
        self._view.upload_texture(self._tables.skin_tex, paint_coat(rng, style, self._tables.atlas))
        ground, tile_m = paint_ground(rng, style, self._photos)
        self._view.upload_texture(self._tables.ground_tex, ground)
        # mjrContext keeps (u, v) texture repeats per material, read at render time.
        mat = self._tables.ground_mat
        self._view.context.mat_texrepeat[2 * mat : 2 * mat + 2] = 1.0 / tile_m
        light = sample_lighting(rng, style, horizon_rgb)
        self._light = light
        m.light_dir[self._tables.sun] = light.sun_dir
        m.light_diffuse[self._tables.sun] = light.sun_diffuse
        m.light_specular[self._tables.sun] = light.sun_specular
        m.light_castshadow[self._tables.sun] = light.shadow
        m.light_dir[self._tables.fill] = light.fill_dir
        m.light_diffuse[self._tables.fill] = light.fill_diffuse
        m.light_specular[self._tables.fill] = 0.0
        m.vis.headlight.ambient[:] = light.head_ambient
        m.vis.headlight.diffuse[:] = light.head_diffuse
        m.vis.headlight.specular[:] = 0.0
        m.mat_specular[self._tables.skin_mat] = light.skin_specular
        m.mat_shininess[self._tables.skin_mat] = light.skin_shininess

    def _pose(self, angles: np.ndarray, xy: np.ndarray, heading: float) -> np.ndarray:
        """Pose the dog (hinge angles, root position, heading), level it so front and hind paws
        touch the ground together, put its lowest skin vertex on z = 0; returns (V, 3) skin."""
        mj, m, d = self._mj, self.model, self.data
        d.qpos[:] = m.qpos0
        d.qpos[self._tables.hinge_qpos] = angles
        d.qpos[0:3] = (xy[0], xy[1], 1.0)
        yaw = np.array([math.cos(heading / 2), 0.0, 0.0, math.sin(heading / 2)])
        d.qpos[3:7] = yaw
        mj.mj_kinematics(m, d)
        pitch = level_pitch(
            front=d.xpos[self._tables.paw_bodies["front"]],
            hind=d.xpos[self._tables.paw_bodies["hind"]],
            heading=heading,
            limit_deg=LEVEL_LIMIT_DEG,
        )
        quat = np.empty(4)
        mj.mju_mulQuat(quat, yaw, np.array([math.cos(pitch / 2), 0.0, math.sin(pitch / 2), 0.0]))
        d.qpos[3:7] = quat
        mj.mj_kinematics(m, d)
        self._view.update_scene()
        skin = np.array(self._view.scene.skinvert, dtype=np.float64).reshape(-1, 3)
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
    ) -> Backdrop:
        """Backdrop for camera elevations (MuJoCo degrees, lowest, highest) at this fov."""
        focal = self._focal()
        ppd = focal * math.pi / 180.0
        half_v = math.degrees(0.5 * self.height / focal) + 3.0
        half_h = math.degrees(0.5 * self.width / focal) + 3.0
        return paint_backdrop(
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

    def _render(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, PinholeCamera]:
        """One pass with the lights aimed at the ground (``OffscreenView.render``)."""
        m = self.model
        centre = m.geom_pos[self._tables.floor]  # the shadow map square is centred on the ground
        m.light_pos[self._tables.sun] = centre - 6.0 * m.light_dir[self._tables.sun]
        m.light_pos[self._tables.fill] = centre - 6.0 * m.light_dir[self._tables.fill]
        return self._view.render()

    def _frame(
        self,
        rng: np.random.Generator,
        *,
        skin: np.ndarray,
        girth: float,
        backdrop: Backdrop,
        effects: CameraEffects,
        vegetation: Vegetation | None = None,
        partseg: bool = False,
    ) -> RenderedFrame:
        """Render and finish (``composite.finish_frame``) the posed scene; project keypoints and
        vertices; with ``partseg``, label the body parts (``partseg.py``)."""
        rgb, depth, empty, camera = self._render()
        d = self.data
        points = self._tables.keypoints.locate(d.xpos, d.geom_xpos, skin)
        tolerance = self._tables.keypoints.tolerance(girth)
        xy, z = camera.project(points)
        visible = visibility(xy=xy, depth=z, depth_map=depth, tolerance=tolerance)
        vertices, _ = camera.project(skin[self._tables.subsample])
        covered = np.zeros(depth.shape, bool) if partseg and vegetation is not None else None
        image = finish_frame(
            rgb,
            depth=depth,
            empty=empty,
            camera=camera,
            backdrop=backdrop,
            azimuth_deg=self._camera.azimuth,
            focus=float(self._camera.distance),
            haze=None if self._light is None else self._light.haze,
            vegetation=vegetation,
            effects=effects,
            rng=rng,
            covered=covered,
        )
        ground = ground_depth(
            camera,
            ground_z=0.0,
            half_size=GROUND_HALF_SIZE_M,
            centre=self.model.geom_pos[self._tables.floor, :2],
        )
        dog = ~empty & (depth < ground * (1.0 - DOG_DEPTH_MARGIN) - DOG_DEPTH_MARGIN)
        self.last_geometry = FrameGeometry(
            depth=depth, dog=dog, camera=camera, points=points, tolerance=tolerance
        )
        keypoints = np.concatenate([xy, visible[:, None]], axis=1)
        labels = None
        if partseg:
            parts = self._tables.parts
            raster, raster_depth = parts.label_frame(
                skin=skin,
                geom_world=parts.world_geom_vertices(d.geom_xpos, d.geom_xmat),
                project=camera.project,
                size=(self.width, self.height),
            )
            labels = reconcile(raster, raster_depth, depth=depth, dog=dog, covered=covered)
        return RenderedFrame(image=image, keypoints=keypoints, vertices=vertices, partseg=labels)

    def render_view(
        self,
        rng: np.random.Generator,
        style: str,
        *,
        view: CameraView,
        angles: np.ndarray | None = None,
        heading: float = 0.0,
        shape: ShapeSample | None = None,
        effects: bool = True,
    ) -> RenderedFrame:
        """A still of a chosen scene: hinge ``angles`` (J,) radians in ``joint_names`` order
        (None: the standing keyframe), the dog's ``heading`` (radians about +z from +x), camera
        ``view``, ``shape`` (None: the model's own proportions). Coat, ground, light and backdrop
        are drawn from ``rng``; ``effects=False`` skips the camera effects. For checks, masks and
        figures; ``last_geometry`` describes the frame. Stills carry a ``partseg``."""
        check_style(style)
        self._active = object()
        neutral = ShapeSample(lengths={}, girths={})
        girth = self._apply_shape(shape if shape is not None else neutral)
        self.model.geom_pos[self._tables.floor] = 0.0
        pose = (
            np.zeros(len(self._tables.joints.names))
            if angles is None
            else np.asarray(angles, float)
        )
        if pose.shape != (len(self._tables.joints.names),):
            raise ValueError(
                f"angles must have shape ({len(self._tables.joints.names)},), got {pose.shape}"
            )
        skin = self._pose(self._tables.joints.clip(pose), np.zeros(2), heading)
        return self._still(rng, style, skin=skin, girth=girth, view=view, effects=effects)

    @property
    def joint_names(self) -> tuple[str, ...]:
        """The dog's hinge joints in ``render_view``'s ``angles`` order."""
        return self._tables.joints.names

    def _still(
        self,
        rng: np.random.Generator,
        style: str,
        *,
        skin: np.ndarray,
        girth: float,
        view: CameraView,
        effects: bool = True,
        cover: Cover | None = None,
    ) -> RenderedFrame:
        lookat, distance, elevation = fit_camera(
            view=view,
            points=skin[self._tables.subsample],
            aspect=self.width / self.height,
            ground_z=0.0,
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
        fx = sample_effects(rng, style) if effects else CameraEffects(enabled=False)
        grass = None if cover is None else sample_vegetation(rng, cover, centre=np.zeros(2))
        return self._frame(
            rng,
            skin=skin,
            girth=girth,
            backdrop=backdrop,
            effects=fx,
            vegetation=grass,
            partseg=True,
        )

    def render_still(
        self, rng: np.random.Generator, style: str, *, breed: str = "mixed", cover: str = "none"
    ) -> RenderedFrame:
        """An independent sample: random shape (of ``breed``, ``shape.BREEDS``), pose,
        camera, coat, ground, light, backdrop, and ground ``cover`` (``ground_cover.COVERS``)."""
        check_style(style)
        grass = get_cover(cover)
        self._active = object()
        girth = self._apply_shape(sample_shape(rng, breed))
        self.model.geom_pos[self._tables.floor] = 0.0
        skin = self._pose(
            sample_pose(self._tables.joints, rng),
            np.zeros(2),
            float(rng.uniform(-math.pi, math.pi)),
        )
        return self._still(rng, style, skin=skin, girth=girth, view=sample_view(rng), cover=grass)

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
        check_style(style)
        grass = get_cover(cover)
        if num_frames < 1:
            raise ValueError(f"num_frames must be positive, got {num_frames}")
        token = self._active = object()
        girth = self._apply_shape(sample_shape(rng, breed))
        motion = sample_motion(self._tables.joints, rng)
        path = sample_camera_path(rng)
        duration = (num_frames - 1) / SHOT_FPS
        xy0, heading0 = motion.root(0.0)
        middle, _ = motion.root(duration / 2.0)
        self.model.geom_pos[self._tables.floor] = (middle[0], middle[1], 0.0)
        skin = self._pose(motion.angles(0.0), xy0, heading0)
        lookat0, distance0, elevation0 = fit_camera(
            view=path.view,
            points=skin[self._tables.subsample],
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
        effects = sample_effects(rng, style)
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
        motion: ShotMotion,
        path: CameraPath,
        lookat0: np.ndarray,
        distance0: float,
        elevation0: float,
        girth: float,
        backdrop: Backdrop,
        effects: CameraEffects,
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
            highest = (lookat[2] - MIN_CAMERA_HEIGHT_M) / distance
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
        if getattr(self, "_view", None) is not None:
            self._view.close()

    def __enter__(self) -> DogRenderer:  # noqa: PYI034 (Python 3.10 has no typing.Self)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
