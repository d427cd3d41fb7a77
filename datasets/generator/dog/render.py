"""``DogRenderer``: dm_control's skinned dog rendered headless with MuJoCo (EGL or OSMesa).

Implements ``renderer.AnimalRenderer``. One render pass gives RGB and depth: keypoints are
projected with the camera MuJoCo rendered with, visibility comes from that depth buffer, and the
far background is composited where nothing was drawn. The model and its tables are in
``model.py``, the GL backend in ``gl.py``, pose/shape/camera maths in ``motion.py``,
``shape.py``, ``camera.py`` and ``keypoints.py``, appearance in ``styles/``. Build the renderer
inside the process that uses it (GL contexts do not survive ``fork``) and call ``close()``.
About 0.7 GB RSS per renderer.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
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
from animalpose.datasets.generator.dog.gl import gl_available, import_mujoco
from animalpose.datasets.generator.dog.ground_cover import (
    Cover,
    Vegetation,
    get_cover,
    sample_vegetation,
)
from animalpose.datasets.generator.dog.keypoints import (
    visibility,
)
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
from animalpose.datasets.generator.dog.shape import (
    ShapeSample,
    sample_shape,
    scaled_body_pos,
)
from animalpose.datasets.generator.renderer import RenderedFrame, check_style
from animalpose.datasets.generator.styles.coats import paint_coat
from animalpose.datasets.generator.styles.light import (
    CameraEffects,
    Lighting,
    apply_effects,
    sample_effects,
    sample_lighting,
)
from animalpose.datasets.generator.styles.scenery import (
    Backdrop,
    PhotoLibrary,
    apply_fog,
    paint_backdrop,
    paint_ground,
)

__all__ = ["DogRenderer"]

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
        mj = import_mujoco()
        self._mj = mj
        xml, assets = dog_xml(suite_dir())
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
        # Fog is applied from the depth buffer (scenery.apply_fog): MuJoCo applies
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

    def _upload(self, texid: int, image: np.ndarray) -> None:
        m = self.model
        adr, size = int(m.tex_adr[texid]), image.size
        m.tex_data[adr : adr + size] = image.reshape(-1)
        self._gl.make_current()
        self._mj.mjr_uploadTexture(m, self._con, texid)

    def _apply_look(self, rng: np.random.Generator, style: str, horizon_rgb: np.ndarray) -> None:
        """Coat, ground texture and light for ``style``."""
        m = self.model
        self._upload(self._tables.skin_tex, paint_coat(rng, style, self._tables.atlas))
        ground, tile_m = paint_ground(rng, style, self._photos)
        self._upload(self._tables.ground_tex, ground)
        # mjrContext keeps (u, v) texture repeats per material, read at render time.
        self._con.mat_texrepeat[2 * self._tables.ground_mat : 2 * self._tables.ground_mat + 2] = (
            1.0 / tile_m
        )
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
        """One pass: (rgb (H, W, 3) uint8, depth (H, W) metres with ZFAR where empty,
        empty (H, W) bool, the camera)."""
        mj, m, d = self._mj, self.model, self.data
        centre = m.geom_pos[self._tables.floor]  # the shadow map square is centred on the ground
        m.light_pos[self._tables.sun] = centre - 6.0 * m.light_dir[self._tables.sun]
        m.light_pos[self._tables.fill] = centre - 6.0 * m.light_dir[self._tables.fill]
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
        camera = PinholeCamera.from_frustum(
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
        backdrop: Backdrop,
        effects: CameraEffects,
        vegetation: Vegetation | None = None,
    ) -> RenderedFrame:
        """Render, composite (backdrop, then ground cover) and degrade the posed scene; project
        keypoints and vertices."""
        rgb, depth, empty, camera = self._render()
        d = self.data
        points = self._tables.keypoints.locate(d.xpos, d.geom_xpos, skin)
        tolerance = self._tables.keypoints.tolerance(girth)
        xy, z = camera.project(points)
        visible = visibility(xy=xy, depth=z, depth_map=depth, tolerance=tolerance)
        vertices, _ = camera.project(skin[self._tables.subsample])
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
        image = apply_fog(rgb, depth=depth, fog=fog)
        image = np.where(empty[..., None], background, image)
        image = _smooth_edges(image, depth)
        if vegetation is not None:
            image = vegetation.draw(image, depth, camera, focus=distance)
        image = apply_effects(image, depth=depth, focus=distance, effects=effects, rng=rng)
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
        return RenderedFrame(image=image, keypoints=keypoints, vertices=vertices)

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
        figures; ``last_geometry`` describes the frame."""
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
            rng, skin=skin, girth=girth, backdrop=backdrop, effects=fx, vegetation=grass
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
