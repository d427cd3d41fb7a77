"""The finished image of one MuJoCo render pass: distance fog, the far backdrop where nothing was
drawn, anti-aliased silhouettes, ground cover, then the style's camera effects.

Inputs are the pass's (H, W, 3) uint8 RGB, (H, W) depth in metres (far plane where empty) and
the ``camera.PinholeCamera`` it used; everything here is pure NumPy/OpenCV.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from animalpose.datasets.generator.dog.camera import PinholeCamera
from animalpose.datasets.generator.dog.ground_cover import Vegetation
from animalpose.datasets.generator.dog.model import GROUND_HALF_SIZE_M
from animalpose.datasets.generator.styles.light import CameraEffects, apply_effects
from animalpose.datasets.generator.styles.scenery import Backdrop, apply_fog

__all__ = ["finish_frame", "horizon_row", "smooth_edges"]

#: Relative depth jump between neighbouring pixels that marks a silhouette edge for the
#: edge anti-aliasing pass (the renderer uses no multisampling: 3x faster on llvmpipe).
EDGE_DEPTH_JUMP = 0.03
#: Haze is complete this share of the ground's half-size behind the focus distance, so the
#: ground's far edge fades out.
HAZE_END_SHARE = 0.9


def horizon_row(camera: PinholeCamera) -> float:
    """Image row where a far point straight ahead (level) projects."""
    fwd = camera.rotation[2]
    level = np.array([fwd[0], fwd[1], 0.0]) / max(math.hypot(fwd[0], fwd[1]), 1e-9)
    return camera.cy - camera.focal * (level @ camera.rotation[1]) / max(level @ fwd, 1e-9)


def smooth_edges(image: np.ndarray, depth: np.ndarray) -> np.ndarray:
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


def finish_frame(
    rgb: np.ndarray,
    *,
    depth: np.ndarray,
    empty: np.ndarray,
    camera: PinholeCamera,
    backdrop: Backdrop,
    azimuth_deg: float,
    focus: float,
    haze: tuple[np.ndarray, float] | None,
    vegetation: Vegetation | None,
    effects: CameraEffects,
    rng: np.random.Generator,
    covered: np.ndarray | None = None,
) -> np.ndarray:
    """The (H, W, 3) uint8 frame of a pass. empty: (H, W) pixels where nothing was drawn;
    azimuth_deg: the MuJoCo camera's azimuth; focus: its distance to the dog (m); haze:
    ``Lighting.haze``; covered: optional (H, W) bool set True where ground cover was drawn."""
    height, width = depth.shape
    background = backdrop.view(
        azimuth_deg=azimuth_deg,
        horizon_row=horizon_row(camera),
        size=(width, height),
        px_per_deg=camera.focal * math.pi / 180.0,
    )
    if haze is not None:  # ground fades out far away
        colour, onset = haze
        fog = (colour, focus + onset, focus + HAZE_END_SHARE * GROUND_HALF_SIZE_M)
    else:
        fog = None
    image = apply_fog(rgb, depth=depth, fog=fog)
    image = np.where(empty[..., None], background, image)
    image = smooth_edges(image, depth)
    if vegetation is not None:
        image = vegetation.draw(image, depth, camera, focus=focus, covered=covered)
    return apply_effects(image, depth=depth, focus=focus, effects=effects, rng=rng)
