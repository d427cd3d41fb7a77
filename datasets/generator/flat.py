"""The generator's fallback renderer: a flat 2-D cartoon dog drawn with NumPy/OpenCV (no OpenGL).

It draws ``cartoon.py``'s quadruped without keypoint markers in the two ``renderer.STYLES``:
``source`` paints every part a random colour on a random smooth texture, without camera effects;
``target`` a natural coat (far-side limbs in shadow) on a sky-and-ground scene, with blur, sensor
noise and JPEG compression. Shots trot (``cartoon.walk``) while the camera pans over a background
larger than the frame. A keypoint is visible when it is in the frame and not on the far side
behind the trunk (the far eye always hidden by the head); ``vertices`` are ``cartoon.body_points``
drawn with the same generator in every frame of a shot, so they move with the animal. Every
frame carries a ``partseg``: ``cartoon.draw_part_labels`` of the shapes it painted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from animalpose.datasets.fileio import jpeg_round_trip
from animalpose.datasets.generator.cartoon import (
    CartoonAnimal,
    Palette,
    background,
    body_ellipse,
    body_points,
    draw_animal,
    draw_part_labels,
    keypoint_array,
    walk,
)
from animalpose.datasets.generator.dog.shape import BREEDS, get_breed
from animalpose.datasets.generator.renderer import (
    NUM_KEYPOINTS,
    NUM_VERTEX_ROWS,
    RenderedFrame,
    check_frame_size,
    check_style,
)
from animalpose.datasets.keypoints import ANIMAL18

__all__ = ["FlatRenderer", "flat_visibility"]

#: Natural coat colours (RGB) of the target style: brown, tan, black, white, grey, golden, red.
NATURAL_COATS = (
    (120, 80, 45),
    (190, 150, 100),
    (35, 30, 28),
    (225, 220, 210),
    (130, 125, 120),
    (200, 160, 80),
    (150, 70, 35),
)
#: Per-channel jitter of a coat colour, and the brightness of far-side limbs (in shadow).
COAT_JITTER, FAR_SHADE = 15, 0.65
#: Sky (top, horizon) and ground (grass, dry grass, dirt, gravel) base colours of the target
#: scenes (RGB).
SKY = ((110, 160, 215), (200, 215, 230))
GROUNDS = ((70, 110, 45), (150, 140, 80), (120, 95, 70), (140, 135, 125))
#: Background margin around the frame for camera pans, as a fraction of the frame width.
PAN_MARGIN = 0.08
#: Target-style camera effects: blur sigma (px), noise std (grey levels), JPEG quality.
BLUR_SIGMA, NOISE_STD, JPEG_QUALITY = (0.5, 1.5), (2.0, 8.0), (35, 75)


def flat_visibility(
    animal: CartoonAnimal, points: dict[str, np.ndarray], frame_size: tuple[int, int]
) -> np.ndarray:
    """(18,) 0/1 model-order visibility: inside the (w, h) frame (pixel centres on integers)
    and not hidden. Hidden: far-side keypoints inside the trunk ellipse, and the far eye."""
    w, h = frame_size
    xy = keypoint_array(points)
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] < h - 0.5)
    centre, (half, height), angle = body_ellipse(animal, points)
    t = np.radians(angle)
    d = xy - centre
    u = d[:, 0] * np.cos(t) + d[:, 1] * np.sin(t)
    v = -d[:, 0] * np.sin(t) + d[:, 1] * np.cos(t)
    in_trunk = (u / half) ** 2 + (v / height) ** 2 <= 1.0
    far = "left_" if animal.near == "right" else "right_"
    is_far = np.array([n.startswith(far) for n in ANIMAL18.keypoints])
    far_eye = np.array([n == f"{far}eye" for n in ANIMAL18.keypoints])
    return (inside & ~(is_far & in_trunk) & ~far_eye).astype(np.float64)


@dataclass
class _Look:
    """Appearance of one shot: colours, a background larger than the frame, the camera pan
    (window offset per frame) and the target style's effect strengths (None: no effects)."""

    palette: Palette
    scene: np.ndarray
    pan_start: np.ndarray
    pan_step: np.ndarray
    effects: tuple[float, float, int] | None


def _random_palette(rng: np.random.Generator) -> Palette:
    c = [tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(4)]
    return Palette(left=c[0], right=c[1], body=c[2], head=c[3])


def _coat_palette(rng: np.random.Generator, near: str) -> Palette:
    coat = np.array(NATURAL_COATS[int(rng.integers(len(NATURAL_COATS)))], dtype=np.float64)
    coat = np.clip(coat + rng.integers(-COAT_JITTER, COAT_JITTER + 1, 3), 0, 255)
    head = np.clip(coat * rng.uniform(0.85, 1.1), 0, 255)

    def rgb(c):
        return tuple(int(v) for v in c)

    shade = rgb(coat * FAR_SHADE)
    return Palette(
        left=rgb(coat) if near == "left" else shade,
        right=rgb(coat) if near == "right" else shade,
        body=rgb(coat),
        head=rgb(head),
    )


def _natural_scene(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 sky over textured ground, horizon at a random height."""
    w, h = size
    horizon = int(rng.uniform(0.15, 0.5) * h)
    rows = np.linspace(0.0, 1.0, max(horizon, 1))[:, None]
    sky = (1 - rows) * np.array(SKY[0]) + rows * np.array(SKY[1])
    image = np.empty((h, w, 3), dtype=np.float32)
    image[:horizon] = sky[:horizon, None, :]
    ground = np.array(GROUNDS[int(rng.integers(len(GROUNDS)))], dtype=np.float32)
    texture = np.zeros((h - horizon, w), dtype=np.float32)
    for cells, amplitude in ((6, 30.0), (40, 15.0), (160, 10.0)):
        noise = rng.standard_normal((max(2, cells * (h - horizon) // w), cells), np.float32)
        texture += amplitude * cv2.resize(noise, (w, h - horizon), interpolation=cv2.INTER_CUBIC)
    depth = np.linspace(0.8, 1.1, h - horizon, dtype=np.float32)[:, None, None]
    image[horizon:] = ground * depth + texture[:, :, None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _camera_effects(
    image: np.ndarray, rng: np.random.Generator, effects: tuple[float, float, int]
) -> np.ndarray:
    """Blur (sigma px), additive Gaussian noise (std grey levels), then a JPEG round trip."""
    sigma, noise_std, quality = effects
    out = cv2.GaussianBlur(image, (0, 0), sigma).astype(np.float32)
    out += noise_std * rng.standard_normal(out.shape, np.float32)
    out = np.clip(out, 0, 255).astype(np.uint8)
    return jpeg_round_trip(out, quality)


class FlatRenderer:
    """``renderer.AnimalRenderer`` drawing a flat cartoon dog (no OpenGL).

    Args:
        width, height: frame size in pixels.
    """

    name = "dog"

    def __init__(self, *, width: int, height: int) -> None:
        self.width, self.height = check_frame_size(width, height)

    def _look(self, rng: np.random.Generator, style: str, near: str, count: int) -> _Look:
        margin = np.array([round(PAN_MARGIN * self.width)] * 2)
        size = (self.width + 2 * int(margin[0]), self.height + 2 * int(margin[1]))
        start, end = rng.uniform(0, 2 * margin), rng.uniform(0, 2 * margin)
        step = (end - start) / max(count - 1, 1)
        if style == "source":
            return _Look(_random_palette(rng), background(rng, size), start, step, None)
        effects = (
            float(rng.uniform(*BLUR_SIGMA)),
            float(rng.uniform(*NOISE_STD)),
            int(rng.integers(JPEG_QUALITY[0], JPEG_QUALITY[1] + 1)),
        )
        return _Look(_coat_palette(rng, near), _natural_scene(rng, size), start, step, effects)

    def render_shot(
        self,
        rng: np.random.Generator,
        style: str,
        num_frames: int,
        *,
        breed: str = "mixed",
        cover: str = "none",
    ) -> Iterator[RenderedFrame]:
        """``num_frames`` frames of one animal trotting while the camera pans. ``breed`` scales
        the legs by its mean leg factor over "mixed"'s (the cartoon has no other shape knobs);
        the cartoon has no ground ``cover`` ("none" only)."""
        if cover != "none":
            raise ValueError(f"the flat renderer draws no ground cover, got {cover!r}")
        check_style(style)
        if num_frames < 1:
            raise ValueError(f"a shot needs at least one frame, got {num_frames}")
        size = (self.width, self.height)
        legs = get_breed(breed).mean_leg() / BREEDS["mixed"].mean_leg()
        beast, frames = walk(rng, size, num_frames, legs=legs)
        look = self._look(rng, style, beast.near, num_frames)
        vertex_seed = int(rng.integers(2**63))
        for t, points in enumerate(frames):
            x0, y0 = np.round(look.pan_start + t * look.pan_step).astype(int)
            image = look.scene[y0 : y0 + self.height, x0 : x0 + self.width].copy()
            draw_animal(image, beast, points, palette=look.palette, markers=False)
            if look.effects is not None:
                image = _camera_effects(image, rng, look.effects)
            keypoints = np.zeros((NUM_KEYPOINTS, 3))
            keypoints[:, :2] = keypoint_array(points)
            keypoints[:, 2] = flat_visibility(beast, points, size)
            cloud = body_points(
                beast, points, np.random.default_rng(vertex_seed), NUM_VERTEX_ROWS - NUM_KEYPOINTS
            )
            labels = draw_part_labels(beast, points, size, markers=False)
            yield RenderedFrame(
                image=image, keypoints=keypoints, vertices=cloud[:, :2], partseg=labels
            )

    def render_still(
        self, rng: np.random.Generator, style: str, *, breed: str = "mixed", cover: str = "none"
    ) -> RenderedFrame:
        """An independent sample: a one-frame shot (random animal, phase, place and look)."""
        return next(iter(self.render_shot(rng, style, 1, breed=breed, cover=cover)))

    def close(self) -> None:
        """Nothing to release (no GL context)."""
