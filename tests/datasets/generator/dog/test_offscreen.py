"""The MuJoCo render pass: metric depth, empty pixels and the camera it reports (skipped with
the reason when no headless OpenGL is available)."""

from __future__ import annotations

import numpy as np
import pytest

from animalpose.datasets.generator.dog.gl import import_mujoco
from animalpose.datasets.generator.dog.offscreen import OffscreenView

#: A 1 m wall facing the camera 4 m away (along +x), nothing else.
WALL_XML = """
<mujoco>
  <visual><global offwidth="64" offheight="48"/><map znear="0.01" zfar="50"/></visual>
  <worldbody><geom type="box" pos="4 0 0" size="0.05 0.5 0.5" rgba="1 0 0 1"/></worldbody>
</mujoco>
"""


def _wall_view() -> OffscreenView:
    mj = import_mujoco()
    model = mj.MjModel.from_xml_string(WALL_XML)
    data = mj.MjData(model)
    mj.mj_kinematics(model, data)  # place the wall
    return OffscreenView(mj, model, data, width=64, height=48)


@pytest.fixture(scope="module")
def view(gl_or_skip):
    view = gl_or_skip(_wall_view)
    yield view
    view.close()
    view.close()  # safe twice


def test_a_pass_gives_metric_depth_empty_pixels_and_its_camera(view):
    cam = view.camera
    cam.lookat[:] = (4.0, 0.0, 0.0)
    cam.distance, cam.azimuth, cam.elevation = 4.0, 0.0, 0.0
    rgb, depth, empty, camera = view.render()
    assert rgb.shape == (48, 64, 3) and depth.shape == empty.shape == (48, 64)
    # The wall's front face is 3.95 m from the camera; the corners see nothing.
    assert depth[24, 32] == pytest.approx(3.95, rel=1e-3)
    assert empty[0, 0] and not empty[24, 32] and rgb[24, 32, 0] > rgb[24, 32, 2]
    assert depth[0, 0] == depth.max()  # the far plane where nothing was drawn
    # The reported camera projects the wall's centre to the frame centre at that depth.
    xy, z = camera.project(np.array([[3.95, 0.0, 0.0]]))
    np.testing.assert_allclose(xy[0], [31.5, 23.5], atol=0.5)
    assert z[0] == pytest.approx(3.95)
