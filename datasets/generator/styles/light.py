"""Light and camera of the two styles: sun, fill and headlight (``Lighting``), and the target
style's image degradations (``CameraEffects``: defocus of the far background, motion blur,
sensor noise, colour cast, vignetting, JPEG compression). The source style has simple grey light
and sharp, noise-free images.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from animalpose.datasets.fileio import jpeg_round_trip
from animalpose.datasets.generator.renderer import check_style

__all__ = ["CameraEffects", "Lighting", "apply_effects", "sample_effects", "sample_lighting"]


@dataclass(frozen=True)
class Lighting:
    """One scene's light. sun_dir: (3,) unit direction the light travels (world); colours RGB in
    [0, 1]; headlight: camera light (ambient, diffuse); haze: (rgb, onset m) or None: the ground
    fades to ``rgb`` from ``onset`` metres behind the dog to the ground's far edge."""

    sun_dir: np.ndarray
    sun_diffuse: np.ndarray
    sun_specular: float
    fill_dir: np.ndarray
    fill_diffuse: np.ndarray
    head_ambient: np.ndarray
    head_diffuse: np.ndarray
    shadow: bool
    skin_specular: float
    skin_shininess: float
    haze: tuple[np.ndarray, float] | None


def _direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector pointing *down* from a light at (azimuth, elevation) radians."""
    return -np.array(
        [
            math.cos(elevation) * math.cos(azimuth),
            math.cos(elevation) * math.sin(azimuth),
            math.sin(elevation),
        ]
    )


def sample_lighting(rng: np.random.Generator, style: str, horizon_rgb: np.ndarray) -> Lighting:
    """``horizon_rgb`` (3,) in [0, 1]: the background colour at the horizon (target haze)."""
    check_style(style)
    az = rng.uniform(0, 2 * math.pi)
    if style == "source":

        def grey(lo, hi):
            return np.full(3, rng.uniform(lo, hi))

        return Lighting(
            sun_dir=_direction(az, rng.uniform(math.radians(20), math.radians(85))),
            sun_diffuse=grey(0.3, 0.8),
            sun_specular=float(rng.uniform(0.0, 0.4)),
            fill_dir=_direction(az + math.pi, math.radians(40)),
            fill_diffuse=grey(0.0, 0.2),
            head_ambient=grey(0.2, 0.45),
            head_diffuse=grey(0.1, 0.5),
            shadow=bool(rng.random() < 0.6),
            skin_specular=float(rng.uniform(0.0, 0.6)),
            skin_shininess=float(rng.uniform(0.1, 0.8)),
            haze=None,
        )
    sun_el = rng.uniform(math.radians(20), math.radians(70))
    warm = np.array([1.0, rng.uniform(0.9, 0.97), rng.uniform(0.78, 0.9)])
    overcast = rng.random() < 0.25
    sun = warm * (rng.uniform(0.3, 0.5) if overcast else rng.uniform(0.7, 1.0))
    sky_level = rng.uniform(0.45, 0.6) if overcast else rng.uniform(0.28, 0.4)
    sky = np.array([0.78, 0.84, 1.0]) * sky_level
    return Lighting(
        sun_dir=_direction(az, sun_el),
        sun_diffuse=sun,
        sun_specular=float(rng.uniform(0.02, 0.12)),
        fill_dir=np.array([0.0, 0.0, -1.0]),
        fill_diffuse=sky * 0.6,
        head_ambient=sky,
        head_diffuse=np.full(3, rng.uniform(0.05, 0.15)),
        shadow=not overcast or rng.random() < 0.3,
        skin_specular=float(rng.uniform(0.03, 0.15)),
        skin_shininess=float(rng.uniform(0.05, 0.3)),
        haze=(np.asarray(horizon_rgb, dtype=np.float64), float(rng.uniform(0.5, 3.0))),
    )


# --- camera effects -------------------------------------------------------------------------------


@dataclass(frozen=True)
class CameraEffects:
    """Target-style image degradations (lengths in pixels of a 256-px frame, scaled with it).
    A style without effects has ``enabled`` False."""

    enabled: bool
    defocus: float = 0.0  # Gaussian sigma of the most defocused (far) pixels
    motion_length: float = 0.0
    motion_angle: float = 0.0  # radians
    noise: float = 0.0  # sensor noise sigma, in [0, 1] intensity units
    gains: tuple[float, float, float] = (1.0, 1.0, 1.0)  # colour cast
    gamma: float = 1.0
    vignette: float = 0.0
    jpeg_quality: int = 100


def sample_effects(rng: np.random.Generator, style: str) -> CameraEffects:
    check_style(style)
    if style == "source":
        return CameraEffects(enabled=False)
    return CameraEffects(
        enabled=True,
        defocus=float(rng.uniform(0.5, 3.0)),
        motion_length=float(rng.uniform(0.0, 3.0) if rng.random() < 0.5 else 0.0),
        motion_angle=float(rng.uniform(0, math.pi)),
        noise=float(rng.uniform(0.005, 0.03)),
        gains=tuple(float(g) for g in rng.uniform(0.9, 1.1, 3)),
        gamma=float(rng.uniform(0.85, 1.15)),
        vignette=float(rng.uniform(0.0, 0.35)),
        jpeg_quality=int(rng.integers(35, 90)),
    )


@functools.lru_cache(maxsize=8)
def _falloff(h: int, w: int) -> np.ndarray:
    """(h, w) float32 minus the squared normalised distance from the frame centre (vignetting)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return -(((xx - w / 2) / (w / 2)) ** 2 + ((yy - h / 2) / (h / 2)) ** 2)


def apply_effects(
    image: np.ndarray,
    *,
    depth: np.ndarray,
    focus: float,
    effects: CameraEffects,
    rng: np.random.Generator,
) -> np.ndarray:
    """Apply ``effects`` to an (H, W, 3) uint8 image. depth: (H, W) metres; focus: metres of the
    in-focus plane (the dog). Defocus grows with |1/depth - 1/focus| (thin lens)."""
    if not effects.enabled:
        return image
    h, w = image.shape[:2]
    k = max(h, w) / 256.0
    img = image
    if effects.defocus > 0:
        blurred = cv2.GaussianBlur(img, (0, 0), sigmaX=effects.defocus * k)
        inv = 1.0 / np.maximum(depth.astype(np.float32), np.float32(1e-3))
        amount = np.clip(np.abs(inv - np.float32(1.0 / focus)) * np.float32(focus * 1.5), 0, 1)
        img = cv2.blendLinear(img, blurred, 1.0 - amount, amount)
    if effects.motion_length >= 0.5:
        n = max(3, round(effects.motion_length * k) | 1)
        kernel = np.zeros((n, n), np.float32)
        c = n // 2
        dx, dy = math.cos(effects.motion_angle) * c, math.sin(effects.motion_angle) * c
        cv2.line(kernel, (round(c - dx), round(c - dy)), (round(c + dx), round(c + dy)), 1.0, 1)
        img = cv2.filter2D(img, -1, kernel / kernel.sum())
    # Colour cast and vignetting (one multiply), then the tone curve through a lookup table.
    gain = np.array(effects.gains, dtype=np.float32)
    factor = (_falloff(h, w) * np.float32(effects.vignette * 0.5) + np.float32(1.0))[..., None]
    img = cv2.multiply(img, factor * gain, dtype=cv2.CV_8U)
    lut = np.clip(255.0 * (np.arange(256) / 255.0) ** effects.gamma + 0.5, 0, 255)
    out = cv2.LUT(img, lut.astype(np.uint8))
    if effects.noise > 0:
        # Shot noise grows with the signal; chroma noise is blotchy (demosaicing), so half-res.
        level = np.sqrt(np.maximum(np.arange(256, dtype=np.float32) / 255.0, 0.02))
        sigma = (np.float32(255.0 * effects.noise) * level)[cv2.cvtColor(out, cv2.COLOR_RGB2GRAY)]
        luma = rng.standard_normal((h, w), dtype=np.float32) * sigma
        chroma = rng.standard_normal(((h + 1) // 2, (w + 1) // 2, 3), dtype=np.float32)
        chroma = cv2.resize(chroma, (w, h), interpolation=cv2.INTER_LINEAR)
        noise = chroma * (0.5 * sigma)[..., None] + luma[..., None]
        out = cv2.add(out, noise, dtype=cv2.CV_8U)
    return jpeg_round_trip(out, effects.jpeg_quality)
