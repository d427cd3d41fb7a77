"""What surrounds the dog: ground textures, the far backdrop (sky and distant vegetation) and
distance fog, in both styles.

Source: random procedural images. Target: photographs shipped offline (``PhotoLibrary``:
dm_control's outdoor grass and sky textures, scikit-image's bundled grass/gravel/moon/brick
photos when installed), a 360-degree sky above a band of distant vegetation, haze.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from animalpose.datasets.generator.renderer import check_style
from animalpose.datasets.generator.styles.procedural import (
    noise2,
    palette_map,
    random_colour,
    smoothstep,
)

__all__ = ["Backdrop", "PhotoLibrary", "apply_fog", "paint_backdrop", "paint_ground"]


# --- photographs shipped offline ------------------------------------------------------------------


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _read_rgb(path: Path) -> np.ndarray | None:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


#: Ground photos: (package, path inside it, tints applied to greyscale photos as RGB gains).
GROUND_PHOTOS: dict[str, tuple[str, str, tuple[tuple[float, float, float], ...]]] = {
    "meadow": ("dm_control", "locomotion/arenas/assets/outdoor_natural/OutdoorGrassFloorD.png", ()),
    "grass": ("skimage", "data/grass.png", ((0.55, 0.75, 0.35), (0.8, 0.75, 0.45))),
    "gravel": ("skimage", "data/gravel.png", ((0.95, 0.9, 0.8), (0.8, 0.8, 0.8))),
    "dirt": ("skimage", "data/moon.png", ((1.0, 0.82, 0.62), (0.9, 0.78, 0.6))),
    "paving": ("skimage", "data/brick.png", ((0.85, 0.8, 0.75),)),
}
#: Ground photos that pass for distant vegetation in backdrops.
FOLIAGE_PHOTOS = ("meadow", "grass")
#: dm_control's outdoor skybox: a 4 x 3 cube-map cross of 512 px faces. Its middle row, the four
#: side faces side by side, is a 360-degree sky: clouds at the top fading to a pale haze at the
#: bottom row, which we put on the horizon; it is mapped to SKY_TOP_DEG..0 degrees of elevation.
SKYBOX = ("dm_control", "locomotion/arenas/assets/outdoor_natural/OutdoorSkybox2048.png")
SKYBOX_FACE = 512
SKY_TOP_DEG = 50.0


class PhotoLibrary:
    """Photographic textures that ship with the installed packages (no network): ground
    textures (uint8 RGB, greyscale photos tinted on use) and a 360-degree sky strip."""

    def __init__(self) -> None:
        self.ground: dict[str, tuple[np.ndarray, tuple]] = {}
        self.grey: dict[str, np.ndarray] = {}  # (512, 512) float32 in [0, 1]
        for name, (package, rel, tints) in GROUND_PHOTOS.items():
            root = _package_dir(package)
            image = None if root is None else _read_rgb(root / rel)
            if image is not None:
                image = cv2.resize(image, (512, 512), interpolation=cv2.INTER_AREA)
                self.ground[name] = (image, tints)
                self.grey[name] = image.astype(np.float32).mean(axis=2) / 255.0
        root = _package_dir(SKYBOX[0])
        sky = None if root is None else _read_rgb(root / SKYBOX[1])
        f = SKYBOX_FACE
        self.sky = None if sky is None else np.ascontiguousarray(sky[f : 2 * f, :])
        if not self.ground:
            raise FileNotFoundError(
                "no ground photo found: dm_control's outdoor_natural textures are missing "
                "(pip install dm-control==1.0.50)"
            )


# --- ground and backgrounds -----------------------------------------------------------------------


def _procedural(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(h, w, 3) float random procedural image in [0, 1]: flat, gradient, noise, checker,
    stripes or random shapes."""
    kind = rng.choice(["flat", "gradient", "noise", "checker", "stripes", "shapes"])
    a, b = random_colour(rng), random_colour(rng)
    if kind == "flat":
        return np.broadcast_to(a, (h, w, 3)).astype(np.float32).copy()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t_ang = rng.uniform(0, 2 * math.pi)
    proj = (xx * math.cos(t_ang) + yy * math.sin(t_ang)) / max(h, w)
    if kind == "gradient":
        t = (proj - proj.min()) / max(np.ptp(proj), 1e-6)
    elif kind == "noise":
        colours = np.stack([random_colour(rng) for _ in range(rng.integers(2, 5))])
        return palette_map(noise2(rng, h, w, rng.uniform(2, 12)), colours).astype(np.float32)
    elif kind == "checker":
        n = rng.uniform(3, 20)
        perp = (-xx * math.sin(t_ang) + yy * math.cos(t_ang)) / max(h, w)
        t = ((np.floor(proj * n) + np.floor(perp * n)) % 2).astype(np.float32)
    elif kind == "stripes":
        t = (np.sin(2 * math.pi * proj * rng.uniform(3, 30)) > 0).astype(np.float32)
    else:
        img = np.broadcast_to(a, (h, w, 3)).astype(np.float32).copy()
        for _ in range(rng.integers(5, 25)):
            colour = tuple(float(c) for c in random_colour(rng))
            cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
            r = int(rng.integers(max(h, w) // 30 + 1, max(h, w) // 4 + 2))
            if rng.random() < 0.5:
                cv2.circle(img, (cx, cy), r, colour, -1)
            else:
                cv2.rectangle(img, (cx - r, cy - r // 2), (cx + r, cy + r // 2), colour, -1)
        return img
    return (a + (b - a) * t[..., None]).astype(np.float32)


def paint_ground(
    rng: np.random.Generator, style: str, photos: PhotoLibrary
) -> tuple[np.ndarray, float]:
    """(512, 512, 3) uint8 ground texture and the metres one texture tile covers."""
    check_style(style)
    if style == "source":
        return (_procedural(rng, 512, 512) * 255).astype(np.uint8), float(rng.uniform(0.5, 4.0))
    name = str(rng.choice(sorted(photos.ground)))
    image, tints = photos.ground[name]
    gain = rng.uniform(0.75, 1.15) * rng.uniform(0.93, 1.07, 3)
    if tints:
        gain = gain * np.array(tints[int(rng.integers(len(tints)))]) * 1.1
        img = photos.grey[name][..., None] * (gain * 255).astype(np.float32)
    else:
        img = image * gain.astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8), float(rng.uniform(1.0, 3.0))


@dataclass(frozen=True)
class Backdrop:
    """The far background: an image on a cylinder around the camera.

    image: (Hb, Wb, 3) uint8; column c looks towards azimuth ``azimuth0 - c / px_per_deg``
    (degrees, decreasing to the right as in the camera image); row ``horizon`` is the horizon.
    ``wrap``: the image spans 360 degrees (shots that orbit) rather than one view.
    """

    image: np.ndarray
    horizon: float
    px_per_deg: float
    azimuth0: float
    wrap: bool

    def view(
        self, *, azimuth_deg: float, horizon_row: float, size: tuple[int, int], px_per_deg: float
    ) -> np.ndarray:
        """(h, w, 3) uint8 background of a frame of ``size`` (w, h) whose centre column looks
        towards ``azimuth_deg`` and whose horizon is at ``horizon_row``."""
        w, h = size
        k = self.px_per_deg / px_per_deg
        col0 = (self.azimuth0 - azimuth_deg) * self.px_per_deg - k * (w - 1) / 2.0
        row0 = self.horizon - k * horizon_row
        hb, wb = self.image.shape[:2]
        xs = col0 + k * np.arange(w, dtype=np.float64)
        xs = np.mod(xs, wb) if self.wrap else np.clip(xs, 0, wb - 1)
        ys = np.clip(row0 + k * np.arange(h, dtype=np.float64), 0, hb - 1)
        map_x = np.broadcast_to(xs.astype(np.float32)[None, :], (h, w))
        map_y = np.broadcast_to(ys.astype(np.float32)[:, None], (h, w))
        border = cv2.BORDER_WRAP if self.wrap else cv2.BORDER_REPLICATE
        return _remap(self.image, map_x, map_y, border=border)

    def horizon_colour(self) -> np.ndarray:
        """(3,) mean colour in [0, 1] just below the horizon (the haze colour of far ground)."""
        r = int(np.clip(self.horizon + 2 * self.px_per_deg, 0, self.image.shape[0] - 1))
        return self.image[r].reshape(-1, 3).mean(0) / 255.0


def _remap(
    image: np.ndarray, map_x: np.ndarray, map_y: np.ndarray, *, border: int = cv2.BORDER_WRAP
) -> np.ndarray:
    """``image`` sampled bilinearly at pixel coordinates (``map_x``, ``map_y``), (h, w) each;
    ``border`` beyond its edges (by default it wraps around)."""
    return cv2.remap(
        image,
        np.ascontiguousarray(map_x, dtype=np.float32),
        np.ascontiguousarray(map_y, dtype=np.float32),
        cv2.INTER_LINEAR,
        borderMode=border,
    )


def paint_backdrop(
    rng: np.random.Generator,
    style: str,
    photos: PhotoLibrary,
    *,
    azimuth_deg: float,
    span_deg: float,
    top_deg: float,
    bottom_deg: float,
    px_per_deg: float,
) -> Backdrop:
    """A backdrop covering ``span_deg`` of azimuth centred on ``azimuth_deg`` (360 or more: the
    whole circle, for orbiting shots) and elevations ``bottom_deg``..``top_deg`` (above the
    horizon positive), sampled at ``px_per_deg``.

    Source: a random procedural image. Target: sky (dm_control's 360-degree skybox, or a gradient
    sky with clouds) above a band of distant vegetation with an irregular top edge.
    """
    check_style(style)
    wrap = span_deg >= 360.0
    if wrap:  # a whole number of columns must make exactly 360 degrees
        span, w = 360.0, round(360.0 * px_per_deg)
        px_per_deg = w / 360.0
    else:
        span, w = span_deg, math.ceil(span_deg * px_per_deg) + 1
    h = math.ceil((top_deg - bottom_deg) * px_per_deg) + 2
    horizon = top_deg * px_per_deg
    azimuth0 = azimuth_deg + span / 2.0
    if style == "source":
        image = (_procedural(rng, h, w) * 255).astype(np.uint8)
        return Backdrop(image, float(horizon), px_per_deg, azimuth0, wrap)
    elev = ((horizon - np.arange(h)) / px_per_deg).astype(np.float32)[:, None]  # (h, 1) degrees
    az = (azimuth0 - np.arange(w) / px_per_deg).astype(np.float32)[None, :]  # (1, w) degrees
    ones_w, ones_h = np.ones_like(az), np.ones_like(elev)
    brightness = rng.uniform(0.85, 1.1)
    if photos.sky is not None and rng.random() < 0.75:
        strip = photos.sky  # 360 degrees wide; rows span SKY_TOP_DEG..0 degrees of elevation
        sh, sw = strip.shape[:2]
        sign = 1.0 if rng.random() < 0.5 else -1.0
        map_x = np.mod(sign * (az - rng.uniform(0, 360)) / 360.0 * sw, sw) * ones_h
        map_y = np.clip((1.0 - elev / SKY_TOP_DEG) * (sh - 1), 0, sh - 1) * ones_w
        sky = _remap(strip, map_x, map_y)
        sky = cv2.convertScaleAbs(sky, alpha=brightness)
    else:
        top, low = np.array([0.42, 0.6, 0.85]), np.array([0.85, 0.88, 0.9])
        if rng.random() < 0.3:  # overcast
            top, low = np.array([0.62, 0.64, 0.66]), np.array([0.85, 0.85, 0.86])
        t = np.clip(1.0 - elev / 50.0, 0, 1)[..., None] ** 2
        column = (top + (low - top) * t) * brightness * 255.0  # (h, 1, 3)
        sky = np.ascontiguousarray(np.broadcast_to(column, (h, w, 3)), dtype=np.float32)
        clouds = smoothstep(noise2(rng, h, w, w / (8 * px_per_deg)), 0.5, 0.8)
        cover = (clouds * np.float32(rng.uniform(0.0, 0.8))).astype(np.float32)
        white = np.full_like(sky, 240.0)
        sky = cv2.blendLinear(sky, white, 1.0 - cover, cover).astype(np.uint8)
    # Distant vegetation: a greyscale ground photo tinted green-brown, tiled on the cylinder.
    plants = [n for n in FOLIAGE_PHOTOS if n in photos.ground]
    photo = photos.grey[str(rng.choice(plants))]
    scale = px_per_deg * rng.uniform(1.0, 2.5)  # photo pixels per degree: distant, fine texture
    map_x = np.mod(az * scale, photo.shape[1]) * ones_h
    map_y = np.mod(-elev * scale * 2.0, photo.shape[0]) * ones_w
    grey = _remap(photo, map_x, map_y)
    tint = np.array([rng.uniform(0.15, 0.4), rng.uniform(0.25, 0.45), rng.uniform(0.1, 0.25)])
    foliage = cv2.merge([grey * np.float32(255 * 1.6 * c) for c in tint])
    band_deg = rng.uniform(0.5, 6.0)
    profile = noise2(rng, 1, w, max(2.0, rng.uniform(4, 20) * span / 90.0), octaves=3)
    edge_deg = band_deg * (0.3 + 0.7 * profile)  # (1, w) top of the vegetation, degrees
    alpha = np.clip((edge_deg - elev) * px_per_deg + 0.5, 0.0, 1.0).astype(np.float32)
    image = cv2.blendLinear(sky.astype(np.float32), foliage, 1.0 - alpha, alpha)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return Backdrop(image, float(horizon), px_per_deg, azimuth0, wrap)


# --- fog ------------------------------------------------------------------------------------------


def apply_fog(
    image: np.ndarray, *, depth: np.ndarray, fog: tuple[np.ndarray, float, float] | None
) -> np.ndarray:
    """Linear distance fog (OpenGL's GL_LINEAR on eye depth): (H, W, 3) uint8 image, (H, W)
    depth in metres, fog = (rgb in [0, 1], start m, end m) or None."""
    if fog is None:
        return image
    rgb, start, end = fog
    t = np.clip((depth.astype(np.float32) - start) / np.float32(end - start), 0.0, 1.0)
    colour = np.empty_like(image)
    colour[:] = np.clip(np.asarray(rgb) * 255.0, 0, 255).astype(np.uint8)
    return cv2.blendLinear(image, colour, 1.0 - t, t)
