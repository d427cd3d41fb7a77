"""Headless OpenGL for MuJoCo: which backend works here (EGL, then OSMesa), and importing mujoco.

``MUJOCO_GL`` must be set before mujoco is first imported. ``gl_available`` probes each backend
in a fresh interpreter (this process stays free of GL state and can still fork) and names the
system package a failing backend needs.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from typing import Any

__all__ = ["GL_BACKENDS", "INSTALL_HINT", "gl_available", "import_mujoco"]

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
INSTALL_HINT = "pip install dm-control==1.0.50 mujoco==3.17.0"


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
            return False, f"{module} is not installed ({INSTALL_HINT})"
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


def import_mujoco() -> Any:
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
