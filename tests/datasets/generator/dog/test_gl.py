"""Headless OpenGL backend probing."""

from __future__ import annotations

from animalpose.datasets.generator.dog.gl import gl_available


def test_gl_available_reports_a_backend():
    ok, reason = gl_available()
    assert isinstance(ok, bool) and reason
    if ok:
        assert reason.startswith("MUJOCO_GL=")
