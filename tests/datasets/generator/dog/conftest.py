"""A DogRenderer shared by the GL tests of this directory (built once: about 4 s)."""

from __future__ import annotations

import pytest

from animalpose.datasets.generator.dog.gl import gl_available
from animalpose.datasets.generator.dog.render import DogRenderer

#: Small frames keep the tests fast; large enough for keypoints a few pixels apart.
FRAME = (128, 96)


@pytest.fixture(scope="session")
def dog():
    ok, reason = gl_available()
    if not ok:
        pytest.skip(reason)
    try:
        renderer = DogRenderer(width=FRAME[0], height=FRAME[1])
    except RuntimeError as exc:  # e.g. mujoco imported earlier without MUJOCO_GL
        pytest.skip(str(exc))
    yield renderer
    renderer.close()
