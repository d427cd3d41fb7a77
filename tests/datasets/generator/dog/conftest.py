"""A DogRenderer shared by the GL tests of this directory (built once: about 4 s), and the skip
rule of every GL test here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from animalpose.datasets.generator.dog.gl import gl_available
from animalpose.datasets.generator.dog.render import DogRenderer

#: Small frames keep the tests fast; large enough for keypoints a few pixels apart.
FRAME = (128, 96)


def _build_or_skip(build: Callable[[], Any]) -> Any:
    """``build()``, or skip the test with the reason when there is no headless OpenGL."""
    ok, reason = gl_available()
    if not ok:
        pytest.skip(reason)
    try:
        return build()
    except RuntimeError as exc:  # e.g. mujoco imported earlier without MUJOCO_GL
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def gl_or_skip() -> Callable[[Callable[[], Any]], Any]:
    """``gl_or_skip(build)``: ``build()``, or skip when there is no headless OpenGL."""
    return _build_or_skip


@pytest.fixture(scope="session")
def dog(gl_or_skip):
    renderer = gl_or_skip(lambda: DogRenderer(width=FRAME[0], height=FRAME[1]))
    yield renderer
    renderer.close()
