"""The renderer interface of the built-in animal generator (see docs/generator.md).

A renderer turns random draws into frames with exact keypoints. Two implementations exist:
``dog/render.py``'s ``DogRenderer`` (dm_control's skinned 3-D dog, the real generator) and
``flat.py``'s ``FlatRenderer`` (a NumPy/OpenCV drawing for machines without OpenGL, used by unit
tests); ``RENDERERS`` names them. The pipeline (``run.py``) only talks to this interface.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "RENDERERS",
    "STYLES",
    "RenderedFrame",
    "AnimalRenderer",
    "NUM_KEYPOINTS",
    "NUM_VERTEX_ROWS",
    "MIN_FRAME_SIDE",
    "check_frame_size",
    "check_style",
]

#: Appearance domains: "source" looks like the reference's CAD renders (random textures and
#: backgrounds); "target" is meant to look like real footage (natural coats, photographic ground
#: and backgrounds, natural light, blur / noise / JPEG).
STYLES = ("source", "target")
#: The 18 TigDog keypoints, model order (animalpose.datasets.keypoints.ANIMAL18).
NUM_KEYPOINTS = 18
#: Rows of a synthetic-layout ``_kpts.npy`` (the reference's 3299 projected mesh vertices). The
#: generator writes the 18 keypoints in rows 0..17 and projected skin vertices after them.
NUM_VERTEX_ROWS = 3299
#: Smallest frame side (pixels) a renderer draws.
MIN_FRAME_SIDE = 16


def check_style(style: str) -> None:
    """ValueError naming ``STYLES`` unless ``style`` is one of them."""
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; known: {list(STYLES)}")


def check_frame_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) as ints; ValueError when a side is under ``MIN_FRAME_SIDE`` pixels."""
    if width < MIN_FRAME_SIDE or height < MIN_FRAME_SIDE:
        raise ValueError(
            f"frame size must be at least {MIN_FRAME_SIDE}x{MIN_FRAME_SIDE}, got {width}x{height}"
        )
    return int(width), int(height)


@dataclass
class RenderedFrame:
    """One rendered frame.

    image: (H, W, 3) uint8 RGB, style effects applied.
    keypoints: (18, 3) float64, model order: x, y in 0-based pixels and visible (1 when the
        keypoint is in the frame and not occluded by the body, from the depth buffer; else 0).
    vertices: (NUM_VERTEX_ROWS - 18, 2) float64 projected skin vertices (a fixed subsample), for
        the animal's box.
    partseg: (H, W) uint8 body-part label of each pixel of ``image`` (``animalpose.datasets.
        parts``: 0 background, part ids, ``IGNORE`` where unknown), or None. Stills carry it
        (the synthetic layout writes it as ``_partseg.png``); shot frames may leave it out.
    """

    image: np.ndarray
    keypoints: np.ndarray
    vertices: np.ndarray
    partseg: np.ndarray | None = None


class AnimalRenderer(Protocol):
    """What the generator pipeline needs from a renderer. All randomness comes from ``rng``:
    equal seeds give identical frames."""

    name: str  # animal name used in the layouts, e.g. "dog"
    width: int
    height: int

    def render_still(
        self, rng: np.random.Generator, style: str, *, breed: str = "mixed", cover: str = "none"
    ) -> RenderedFrame:
        """An independent sample: random pose, shape (of ``breed``, ``shape.BREEDS``), coat,
        light, camera, ground, ground ``cover`` (``ground_cover.COVERS``), background."""
        ...

    def render_shot(
        self,
        rng: np.random.Generator,
        style: str,
        num_frames: int,
        *,
        breed: str = "mixed",
        cover: str = "none",
    ) -> Iterator[RenderedFrame]:
        """A shot: one animal and scene, smooth gait-like motion and a smoothly moving camera,
        so optical flow between consecutive frames is meaningful."""
        ...

    def close(self) -> None:
        """Release the GL context (renderers are built inside each worker process)."""
        ...


def _dog_renderer(check: bool) -> type:
    """The 3-D dm_control dog (needs headless OpenGL: EGL or OSMesa)."""
    from animalpose.datasets.generator.dog.gl import gl_available
    from animalpose.datasets.generator.dog.render import DogRenderer

    if check:
        ok, reason = gl_available()
        if not ok:
            raise RuntimeError(
                f"the 'dog' renderer needs headless OpenGL, which is not available"
                f" here ({reason}); use --renderer flat"
            )
        if reason.startswith("MUJOCO_GL="):  # spawned workers inherit it and skip the probe
            os.environ.setdefault("MUJOCO_GL", reason.split("=", 1)[1])
    return DogRenderer


def _flat_renderer(check: bool) -> type:
    """The NumPy/OpenCV cartoon dog (no OpenGL; fallback and unit tests)."""
    from animalpose.datasets.generator.flat import FlatRenderer

    return FlatRenderer


#: Renderer name -> function importing its class lazily (``check``: verify it can run here).
RENDERERS: dict[str, Callable[[bool], type]] = {"dog": _dog_renderer, "flat": _flat_renderer}
