"""A MuJoCo model rendered headless: the GL context, a scene seen by one free camera, texture
uploads, and a pass that reads back RGB, metric depth and the ``camera.PinholeCamera`` it used.

No multisampling, skybox, reflections or MuJoCo fog (the renderer composites fog and backdrop
itself, ``composite.py``). Build it inside the process that uses it (GL contexts do not survive
``fork``) and call ``close()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from animalpose.datasets.generator.dog.camera import PinholeCamera
from animalpose.datasets.generator.dog.gl import gl_available

__all__ = ["OffscreenView"]

#: Geoms one scene may hold (the dog, its eyes and the ground need far fewer).
MAX_GEOMS = 400


class OffscreenView:
    """Offscreen rendering of ``model`` posed by ``data`` at ``width`` x ``height`` pixels.

    Attributes:
        camera: the ``MjvCamera`` (free) to aim before ``render``.
        scene: the ``MjvScene`` (``update_scene`` refreshes it, e.g. for its skinned vertices).
        context: the ``MjrContext`` (per-material texture repeats, ...).
    """

    def __init__(self, mj: Any, model: Any, data: Any, *, width: int, height: int) -> None:
        self._mj, self.model, self.data = mj, model, data
        self.width, self.height = width, height
        try:
            self._gl = mj.GLContext(width, height)
            self._gl.make_current()
            self.context = mj.MjrContext(model, mj.mjtFontScale.mjFONTSCALE_50)
        except Exception as exc:  # the backend's own errors are cryptic (e.g. missing libraries)
            _, reason = gl_available()
            raise RuntimeError(f"cannot create an OpenGL context: {reason}") from exc
        mj.mjr_setBuffer(mj.mjtFramebuffer.mjFB_OFFSCREEN, self.context)
        self.context.readDepthMap = mj.mjtDepthMap.mjDEPTH_ZEROFAR
        self.scene = mj.MjvScene(model, maxgeom=MAX_GEOMS)
        self.scene.flags[mj.mjtRndFlag.mjRND_SKYBOX] = 0
        self.scene.flags[mj.mjtRndFlag.mjRND_REFLECTION] = 0
        # Fog is applied from the depth buffer (scenery.apply_fog): MuJoCo applies
        # mjrContext fog settings one frame late.
        self.scene.flags[mj.mjtRndFlag.mjRND_FOG] = 0
        self._option = mj.MjvOption()
        self._option.flags[mj.mjtVisFlag.mjVIS_TENDON] = 0
        self._perturb = mj.MjvPerturb()
        self.camera = mj.MjvCamera()
        self.camera.type = mj.mjtCamera.mjCAMERA_FREE
        self._rect = mj.MjrRect(0, 0, width, height)
        self._rgb = np.empty((height, width, 3), np.uint8)
        self._depth = np.empty((height, width), np.float32)

    def update_scene(self) -> None:
        """Rebuild ``scene`` from the model and data (geoms, skins, lights, camera)."""
        mj = self._mj
        mj.mjv_updateScene(
            self.model,
            self.data,
            self._option,
            self._perturb,
            self.camera,
            mj.mjtCatBit.mjCAT_ALL,
            self.scene,
        )

    def upload_texture(self, texid: int, image: np.ndarray) -> None:
        """Replace texture ``texid``'s pixels with ``image`` (its size) on the model and GPU."""
        m = self.model
        adr, size = int(m.tex_adr[texid]), image.size
        m.tex_data[adr : adr + size] = image.reshape(-1)
        self._gl.make_current()
        self._mj.mjr_uploadTexture(m, self.context, texid)

    def render(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, PinholeCamera]:
        """One pass: (rgb (H, W, 3) uint8, depth (H, W) metres with the far plane where empty,
        empty (H, W) bool, the camera)."""
        mj, m = self._mj, self.model
        mj.mj_camlight(m, self.data)
        self.update_scene()
        self._gl.make_current()
        mj.mjr_render(self._rect, self.scene, self.context)
        mj.mjr_readPixels(self._rgb, self._depth, self._rect, self.context)
        rgb = np.flipud(self._rgb).copy()
        raw = np.flipud(self._depth).astype(np.float64)
        near, far = m.vis.map.znear * m.stat.extent, m.vis.map.zfar * m.stat.extent
        empty = raw <= 0.0
        # Reversed-Z depth buffer (mjDEPTH_ZEROFAR): 1 at the near plane, 0 at the far plane.
        depth = np.where(empty, far, far * near / (raw * (far - near) + near))
        # The scene holds a stereo pair (eyes ipd apart); a mono render uses their average.
        gl = mj.mjv_averageCamera(self.scene.camera[0], self.scene.camera[1])
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

    def close(self) -> None:
        """Free the GL context. Safe to call twice."""
        if getattr(self, "context", None) is not None:
            self._gl.make_current()
            self.context.free()
            self.context = None
        if getattr(self, "_gl", None) is not None:
            self._gl.free()
            self._gl = None
