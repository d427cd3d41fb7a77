"""A HumanRenderer shared by the GL tests of this directory (built once), skipped with the
reason where there is no headless OpenGL."""

from __future__ import annotations

import pytest

from animalpose.datasets.generator.dog.gl import gl_available

#: Small frames keep the tests fast; large enough for keypoints a few pixels apart.
FRAME = (160, 120)


@pytest.fixture(scope="session")
def humans():
    ok, reason = gl_available()
    if not ok:
        pytest.skip(reason)
    from animalpose.datasets.generator.human.render import HumanRenderer

    try:
        renderer = HumanRenderer(width=FRAME[0], height=FRAME[1])
    except RuntimeError as exc:  # e.g. mujoco imported earlier without MUJOCO_GL
        pytest.skip(str(exc))
    yield renderer
    renderer.close()
