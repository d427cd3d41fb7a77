"""The two appearance domains of the built-in generator: coats, ground, backgrounds, light, camera
effects. Pure NumPy / OpenCV; the renderer (``dog_render.py``) uploads and composites the results.

- ``"source"`` looks like the reference's CAD renders with random textures: random, often
  unnatural coat colours and procedural coat textures, procedural or flat random-colour
  backgrounds and ground, simple lighting, sharp images without noise.
- ``"target"`` is meant to look like real footage: natural coat colours and markings (browns,
  black, white, tan, brindle, merle, black-and-tan), photographic ground and sky shipped offline
  (dm_control's outdoor grass and sky textures, scikit-image's bundled grass/gravel/moon/brick
  photos when installed), warm sun with a cool sky fill and haze, then camera effects: defocus
  of the far background, motion blur, sensor noise, colour cast, vignetting, JPEG compression.

Coats are painted on a per-texel table of the skin's bind-pose 3-D positions (``CoatAtlas``), so
patterns such as spots and stripes are continuous across the texture atlas' seams.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from animalpose.datasets.fileio import jpeg_round_trip
from animalpose.datasets.generator.renderer import STYLES

__all__ = [
    "PARTS",
    "Backdrop",
    "CameraEffects",
    "CoatAtlas",
    "Lighting",
    "PhotoLibrary",
    "apply_effects",
    "apply_fog",
    "build_coat_atlas",
    "check_style",
    "paint_backdrop",
    "paint_coat",
    "paint_ground",
    "part_of_bone",
    "sample_effects",
    "sample_lighting",
]

# --- coat atlas -----------------------------------------------------------------------------------

#: Body parts used by coat markings, and the skin bones (by name prefix, first match) in each.
PARTS = ("trunk", "neck", "head", "upper_leg", "lower_leg", "paw", "tail")
_BONE_PARTS: dict[str, str] = {
    "torso": "trunk",
    "L_": "trunk",
    "pelvis": "trunk",
    "scapula": "trunk",
    "C_": "neck",
    "skull": "head",
    "jaw": "head",
    "upper_": "upper_leg",
    "lower_": "lower_leg",
    "hand": "paw",
    "finger": "paw",
    "foot": "paw",
    "toe": "paw",
    "Ca_": "tail",
}
#: Neighbours averaged into the smoothed skin normals that coat markings follow.
NORMAL_SMOOTHING = 48
#: Coats are painted on a GRID x GRID table and resized to the atlas (patterns are smooth).
COAT_GRID = 256


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ValueError(f"unknown style {style!r}; known: {list(STYLES)}")


def part_of_bone(name: str) -> int:
    for prefix, part in _BONE_PARTS.items():
        if name.startswith(prefix):
            return PARTS.index(part)
    raise ValueError(f"skin bone {name!r} has no coat part")


@dataclass(frozen=True)
class CoatAtlas:
    """Per-texel facts of the skin's texture atlas.

    position, normal: (G, G, 3) float32 bind-pose position (m) / unit normal of the skin at each
    texel of a G x G grid over the atlas (row = v, column = u); part_weight: (G, G, P) float32
    share of each of the P PARTS (skinning weights, summing to 1); part: (G, G) its argmax;
    uv: (G, G, 2) texel centres; detail: (S, S) float32 fur detail of the original texture
    (luminance over its local mean, about 1), S the atlas size; bounds: (lo, hi) (3,) box of
    ``position``.
    """

    position: np.ndarray
    normal: np.ndarray
    part_weight: np.ndarray
    part: np.ndarray
    uv: np.ndarray
    detail: np.ndarray
    bounds: tuple[np.ndarray, np.ndarray]


def _rasterize_uv(
    texcoords: np.ndarray, faces: np.ndarray, values: np.ndarray, grid: int, span: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate per-vertex ``values`` (V, C) over the skin's triangles in texture space.

    Returns ((grid, grid, C) values at texel centres, (grid, grid) bool covered). Texel (row, col)
    has its centre at u = (col + 0.5) / grid, v = (row + 0.5) / grid. Triangles whose texel box
    exceeds ``span`` are done one by one (rare at this resolution).
    """
    out = np.zeros((grid, grid, values.shape[1]), np.float64)
    covered = np.zeros((grid, grid), bool)
    tri = texcoords[faces] * grid - 0.5  # (F, 3, 2) texel coordinates (x = col, y = row)
    lo = np.ceil(tri.min(axis=1)).astype(np.int64)
    size = np.floor(tri.max(axis=1)).astype(np.int64) - lo + 1

    def fill(idx: np.ndarray, ox: np.ndarray, oy: np.ndarray) -> None:
        px, py = lo[idx, 0, None] + ox, lo[idx, 1, None] + oy  # (T, N) candidate texels
        a, b, c = tri[idx, 0], tri[idx, 1], tri[idx, 2]
        det = (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (c[:, 0] - a[:, 0]) * (b[:, 1] - a[:, 1])
        ok = np.abs(det) > 1e-12
        det = np.where(ok, det, 1.0)[:, None]
        dx, dy = px - a[:, 0, None], py - a[:, 1, None]
        w1 = (dx * (c[:, 1, None] - a[:, 1, None]) - dy * (c[:, 0, None] - a[:, 0, None])) / det
        w2 = (dy * (b[:, 0, None] - a[:, 0, None]) - dx * (b[:, 1, None] - a[:, 1, None])) / det
        w0 = 1.0 - w1 - w2
        inside = ok[:, None] & (w0 >= -1e-6) & (w1 >= -1e-6) & (w2 >= -1e-6)
        inside &= (px >= 0) & (px < grid) & (py >= 0) & (py < grid)
        t, n = np.nonzero(inside)
        f = faces[idx[t]]
        val = (
            w0[t, n, None] * values[f[:, 0]]
            + w1[t, n, None] * values[f[:, 1]]
            + w2[t, n, None] * values[f[:, 2]]
        )
        out[py[t, n], px[t, n]] = val
        covered[py[t, n], px[t, n]] = True

    small = np.flatnonzero((size <= span).all(axis=1) & (size > 0).all(axis=1))
    oy, ox = np.divmod(np.arange(span * span), span)
    for chunk in np.array_split(small, max(1, len(small) // 4096)):
        fill(chunk, ox[None, :], oy[None, :])
    for i in np.flatnonzero((size > span).any(axis=1)):
        yy, xx = np.mgrid[0 : size[i, 1], 0 : size[i, 0]]
        fill(np.array([i]), xx.reshape(1, -1), yy.reshape(1, -1))
    return out, covered


def build_coat_atlas(
    *,
    texcoords: np.ndarray,
    vertices: np.ndarray,
    faces: np.ndarray,
    part_weights: np.ndarray,
    texture: np.ndarray,
    grid: int = COAT_GRID,
) -> CoatAtlas:
    """Rasterize the skin's bind-pose positions, normals and parts into texture space.

    texcoords: (V, 2) skin (u, v); vertices with coordinates outside [0, 1] are unmapped (the
    inside of the mouth) and their triangles skipped; vertices: (V, 3) bind pose; faces: (F, 3);
    part_weights: (V, P) share of each PARTS entry per vertex; texture: (S, S, 3) uint8.
    Texels no triangle covers take the value of the nearest covered texel (so bilinear lookups
    at island borders stay on the body).
    """
    # Vertex normals, welded: texture seams duplicate vertices, and each copy must get the
    # normal of the whole surface around the point or markings break along the seams.
    _, weld = np.unique(np.round(vertices, 6), axis=0, return_inverse=True)
    weld = weld.reshape(-1)
    tri = vertices[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # area-weighted
    welded = np.zeros((weld.max() + 1, 3))
    for i in range(3):
        np.add.at(welded, weld[faces[:, i]], face_n)
    welded /= np.maximum(np.linalg.norm(welded, axis=1, keepdims=True), 1e-12)
    # Markings follow the body's shape, not skin folds: average each normal over its
    # NORMAL_SMOOTHING nearest surface points (about 2-3 cm on this skin).
    points = np.zeros_like(welded)
    np.add.at(points, weld, vertices)
    points /= np.bincount(weld, minlength=len(points))[:, None]
    _, near = cKDTree(points).query(points, k=min(NORMAL_SMOOTHING, len(points)))
    smooth = welded[near].mean(axis=1)
    normals = smooth[weld]
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
    mapped = np.all((texcoords >= 0.0) & (texcoords <= 1.0), axis=1)
    keep = mapped[faces].all(axis=1)
    values = np.concatenate([vertices, normals, part_weights], axis=1)
    raster, covered = _rasterize_uv(texcoords, faces[keep], values, grid)
    _, (rows, cols) = distance_transform_edt(~covered, return_indices=True)
    raster = raster[rows, cols]
    normal = raster[..., 3:6]
    normal /= np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-12)
    centres = (np.arange(grid) + 0.5) / grid
    uu, vv = np.meshgrid(centres, centres)
    # Fur detail: luminance over its local mean, the mean taken over the skin's own texels only
    # (normalised convolution), so island borders do not darken against the atlas background.
    size = texture.shape[0]
    inside = cv2.resize(covered.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)
    lum = texture.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    sigma = size / 128.0
    local = cv2.GaussianBlur(lum * inside, (0, 0), sigmaX=sigma)
    local /= np.maximum(cv2.GaussianBlur(inside, (0, 0), sigmaX=sigma), 1e-3)
    detail = np.where(inside > 0, np.clip(lum / np.maximum(local, 1.0), 0.4, 1.8), 1.0)
    detail = detail.astype(np.float32)
    position = raster[..., :3].astype(np.float32)
    return CoatAtlas(
        position=position,
        normal=normal.astype(np.float32),
        part_weight=raster[..., 6:].astype(np.float32),
        part=raster[..., 6:].argmax(axis=-1),
        uv=np.stack([uu, vv], axis=-1).astype(np.float32),
        detail=detail,
        bounds=(position.reshape(-1, 3).min(0), position.reshape(-1, 3).max(0)),
    )


# --- noise ----------------------------------------------------------------------------------------


def _noise3(atlas: CoatAtlas, cell: float, rng: np.random.Generator) -> np.ndarray:
    """(G, G) smooth value noise in [0, 1] at the atlas positions, lattice spacing ``cell`` (m).
    Evaluated on every other texel and upsampled (features are several texels wide)."""
    lo, hi = atlas.bounds
    g = (atlas.position[::2, ::2] - lo) / np.float32(cell)
    i = g.astype(np.int64)  # positions are >= lo, so truncation is floor
    f = g - i
    f = f * f * (3.0 - 2.0 * f)
    shape = tuple(int(n) for n in np.floor((hi - lo) / cell).astype(np.int64) + 2)
    values = rng.random(shape, dtype=np.float32).reshape(-1)
    base = (i[..., 0] * shape[1] + i[..., 1]) * shape[2] + i[..., 2]
    sy, sx = shape[2], shape[1] * shape[2]
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]

    def along_z(index: np.ndarray) -> np.ndarray:
        a, b = values[index], values[index + 1]
        return a + (b - a) * fz

    def along_y(index: np.ndarray) -> np.ndarray:
        a, b = along_z(index), along_z(index + sy)
        return a + (b - a) * fy

    a, b = along_y(base), along_y(base + sx)
    half = a + (b - a) * fx
    size = atlas.position.shape[1], atlas.position.shape[0]
    return cv2.resize(half, size, interpolation=cv2.INTER_LINEAR)


def _fractal3(atlas: CoatAtlas, cell: float, rng: np.random.Generator, octaves: int) -> np.ndarray:
    total, norm, amp = np.zeros(atlas.position.shape[:2], np.float32), 0.0, 1.0
    for o in range(octaves):
        total += amp * _noise3(atlas, cell / 2**o, rng)
        norm += amp
        amp *= 0.5
    return total / norm


def _noise2(rng: np.random.Generator, h: int, w: int, cells: float, octaves: int = 3) -> np.ndarray:
    """(h, w) fractal value noise in about [0, 1], ``cells`` lattice cells across the longer
    side."""
    total, norm, amp = np.zeros((h, w), np.float32), 0.0, 1.0
    for o in range(octaves):
        n = max(2, round(cells * 2**o))
        gh, gw = max(2, n * h // max(h, w) + 2), max(2, n * w // max(h, w) + 2)
        total += amp * cv2.resize(
            rng.random((gh, gw)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
        )
        norm += amp
        amp *= 0.5
    return np.clip(total / norm, 0.0, 1.0)


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _random_colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour in [0, 1], any hue, often saturated."""
    hue, sat, val = rng.uniform(0, 180), rng.uniform(0.3, 1.0), rng.uniform(0.2, 1.0)
    hsv = np.array([[[hue, sat * 255, val * 255]]])
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0] / 255.0


def _palette_map(t: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """Map t in [0, 1] (...) through a piecewise-linear palette (C, 3) -> (..., 3)."""
    x = np.clip(t, 0.0, 1.0) * (len(colours) - 1)
    i = np.minimum(np.floor(x).astype(int), len(colours) - 2)
    f = (x - i)[..., None]
    return colours[i] * (1.0 - f) + colours[i + 1] * f


# --- coats ----------------------------------------------------------------------------------------

#: Natural dog coat colours, sRGB in [0, 255] (picked from photos of common breeds).
NATURAL_COATS: dict[str, tuple[int, int, int]] = {
    "black": (30, 28, 27),
    "dark_brown": (64, 42, 30),
    "liver": (98, 58, 40),
    "red": (152, 82, 42),
    "sable": (122, 88, 58),
    "tan": (180, 124, 70),
    "fawn": (200, 160, 112),
    "golden": (210, 158, 82),
    "cream": (226, 210, 178),
    "white": (232, 230, 224),
    "grey": (120, 118, 118),
    "blue_grey": (92, 96, 104),
}
_DARK = ("black", "dark_brown", "liver", "sable", "blue_grey", "grey")
_LIGHT = ("tan", "fawn", "golden", "cream", "red")


def _coat(name: str, rng: np.random.Generator, jitter: float = 0.08) -> np.ndarray:
    base = np.array(NATURAL_COATS[name], dtype=np.float64) / 255.0
    return np.clip(base * rng.uniform(1 - jitter, 1 + jitter) + rng.normal(0, 0.015, 3), 0, 1)


def _natural_coat(rng: np.random.Generator, atlas: CoatAtlas) -> np.ndarray:
    """(G, G, 3) natural coat colours in [0, 1]."""
    pos, nz, weight = atlas.position, atlas.normal[..., 2], atlas.part_weight

    def pick(names):
        return str(rng.choice(names))

    pattern = rng.choice(
        ["solid", "countershade", "black_and_tan", "piebald", "spotted", "brindle", "merle"],
        p=[0.22, 0.22, 0.14, 0.14, 0.08, 0.12, 0.08],
    )
    base = _coat(pick(list(NATURAL_COATS)), rng)
    coat = np.broadcast_to(base, pos.shape).copy()
    # Soft masks. The lower legs come from skinning weights (they blend across the joints);
    # the head from position: the skin's weights change abruptly at the head-neck seam.
    legs = weight[..., PARTS.index("lower_leg")] + weight[..., PARTS.index("paw")]
    head = _smoothstep(pos[..., 0], 0.26, 0.32) * _smoothstep(pos[..., 2], 0.5, 0.56)
    if pattern == "countershade":
        dark = _coat(pick(_DARK + ("red", "tan")), rng)
        light = _coat(pick(_LIGHT + ("white",)), rng)
        t = _smoothstep(nz + 0.25 * legs, -0.1, 0.6) * (1 - 0.6 * legs)
        coat = light + (dark - light) * t[..., None]
    elif pattern == "black_and_tan":
        dark, tan = _coat(pick(("black", "dark_brown", "liver")), rng), _coat(pick(_LIGHT), rng)
        muzzle = head * _smoothstep(0.68 - pos[..., 2], 0.0, 0.03)
        saddle = _smoothstep(nz, -0.15, 0.35) * (1 - legs) * (1 - 0.7 * muzzle)
        coat = tan + (dark - tan) * saddle[..., None]
    elif pattern in ("piebald", "spotted", "merle"):
        cell = {"piebald": 0.18, "spotted": 0.035, "merle": 0.08}[pattern]
        n = _fractal3(atlas, cell, rng, octaves=2)
        thr = {"piebald": 0.5, "spotted": 0.64, "merle": 0.58}[pattern] + rng.uniform(-0.05, 0.05)
        patch = _smoothstep(n, thr - 0.03, thr + 0.03)
        if pattern == "piebald":
            ground, spots = _coat("white", rng), _coat(pick(_DARK + _LIGHT), rng)
        elif pattern == "spotted":
            ground, spots = _coat(pick(("white", "cream")), rng), _coat(pick(_DARK), rng)
        else:
            ground, spots = _coat(pick(("grey", "blue_grey", "tan")), rng), _coat("black", rng)
        coat = ground + (spots - ground) * patch[..., None]
    elif pattern == "brindle":
        ground, stripe = _coat(pick(("tan", "fawn", "red", "golden")), rng), _coat("black", rng)
        warp = _fractal3(atlas, 0.12, rng, octaves=2)
        wave = np.sin(2 * math.pi * (pos[..., 0] / rng.uniform(0.03, 0.06) + 3.0 * warp))
        patch = _smoothstep(wave, 0.1, 0.5) * rng.uniform(0.6, 0.9)
        coat = ground + (stripe - ground) * patch[..., None]
    # White markings: chest and paws.
    if rng.random() < 0.4:
        white = _coat("white", rng)
        chest = (1 - legs) * _smoothstep(pos[..., 0], 0.05, 0.15) * _smoothstep(-nz, 0.2, 0.6)
        mark = chest + legs * _smoothstep(0.09 - pos[..., 2], 0, 0.04)
        coat = coat + (white - coat) * np.clip(mark, 0, 1)[..., None]
    if rng.random() < 0.3:  # darker muzzle
        muzzle = head * _smoothstep(pos[..., 0], 0.38, 0.44)
        coat = coat * (1.0 - 0.6 * muzzle[..., None])
    shade = 1.0 + 0.16 * (_fractal3(atlas, 0.2, rng, octaves=2) - 0.5)
    return np.clip(coat * shade[..., None], 0.0, 1.0)


def _random_coat(rng: np.random.Generator, atlas: CoatAtlas) -> np.ndarray:
    """(G, G, 3) random, often unnatural coat in [0, 1]."""
    pos = atlas.position
    kind = rng.choice(["flat", "noise", "stripes", "checker_uv", "parts", "camo"])
    if kind == "flat":
        return np.broadcast_to(_random_colour(rng), pos.shape).copy()
    if kind == "noise":
        colours = np.stack([_random_colour(rng) for _ in range(rng.integers(2, 5))])
        return _palette_map(_fractal3(atlas, rng.uniform(0.03, 0.25), rng, octaves=3), colours)
    if kind == "stripes":
        d = rng.normal(size=3)
        wave = np.sin(2 * math.pi * (pos @ (d / np.linalg.norm(d))) / rng.uniform(0.02, 0.15))
        t = (wave > 0).astype(float) if rng.random() < 0.5 else 0.5 + 0.5 * wave
        a, b = _random_colour(rng), _random_colour(rng)
        return a + (b - a) * t[..., None]
    if kind == "checker_uv":
        n = rng.integers(8, 48)
        cells = (np.floor(atlas.uv[..., 0] * n) + np.floor(atlas.uv[..., 1] * n)) % 2
        a, b = _random_colour(rng), _random_colour(rng)
        return a + (b - a) * cells[..., None]
    if kind == "parts":
        colours = np.stack([_random_colour(rng) for _ in PARTS])
        return colours[atlas.part]
    colours = np.stack([_random_colour(rng) for _ in range(3)])
    n = _fractal3(atlas, rng.uniform(0.04, 0.12), rng, octaves=2)
    return colours[np.digitize(n, [0.42, 0.58])]


def paint_coat(rng: np.random.Generator, style: str, atlas: CoatAtlas) -> np.ndarray:
    """(S, S, 3) uint8 skin texture for ``style``: coat colours times the fur detail."""
    check_style(style)
    if style == "target":
        coat, strength = _natural_coat(rng, atlas), rng.uniform(0.7, 1.0)
    else:
        coat, strength = _random_coat(rng, atlas), rng.uniform(0.0, 1.0)
    size = atlas.detail.shape[:2]
    big = cv2.resize(coat.astype(np.float32), (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    detail = atlas.detail[..., None] ** strength
    return np.clip(big * detail * 255.0, 0, 255).astype(np.uint8)


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
    a, b = _random_colour(rng), _random_colour(rng)
    if kind == "flat":
        return np.broadcast_to(a, (h, w, 3)).astype(np.float32).copy()
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t_ang = rng.uniform(0, 2 * math.pi)
    proj = (xx * math.cos(t_ang) + yy * math.sin(t_ang)) / max(h, w)
    if kind == "gradient":
        t = (proj - proj.min()) / max(np.ptp(proj), 1e-6)
    elif kind == "noise":
        colours = np.stack([_random_colour(rng) for _ in range(rng.integers(2, 5))])
        return _palette_map(_noise2(rng, h, w, rng.uniform(2, 12)), colours).astype(np.float32)
    elif kind == "checker":
        n = rng.uniform(3, 20)
        perp = (-xx * math.sin(t_ang) + yy * math.cos(t_ang)) / max(h, w)
        t = ((np.floor(proj * n) + np.floor(perp * n)) % 2).astype(np.float32)
    elif kind == "stripes":
        t = (np.sin(2 * math.pi * proj * rng.uniform(3, 30)) > 0).astype(np.float32)
    else:
        img = np.broadcast_to(a, (h, w, 3)).astype(np.float32).copy()
        for _ in range(rng.integers(5, 25)):
            colour = tuple(float(c) for c in _random_colour(rng))
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
        return cv2.remap(
            self.image,
            np.ascontiguousarray(map_x),
            np.ascontiguousarray(map_y),
            cv2.INTER_LINEAR,
            borderMode=border,
        )

    def horizon_colour(self) -> np.ndarray:
        """(3,) mean colour in [0, 1] just below the horizon (the haze colour of far ground)."""
        r = int(np.clip(self.horizon + 2 * self.px_per_deg, 0, self.image.shape[0] - 1))
        return self.image[r].reshape(-1, 3).mean(0) / 255.0


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
        sky = cv2.remap(
            strip,
            map_x.astype(np.float32),
            map_y.astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_WRAP,
        )
        sky = cv2.convertScaleAbs(sky, alpha=brightness)
    else:
        top, low = np.array([0.42, 0.6, 0.85]), np.array([0.85, 0.88, 0.9])
        if rng.random() < 0.3:  # overcast
            top, low = np.array([0.62, 0.64, 0.66]), np.array([0.85, 0.85, 0.86])
        t = np.clip(1.0 - elev / 50.0, 0, 1)[..., None] ** 2
        column = (top + (low - top) * t) * brightness * 255.0  # (h, 1, 3)
        sky = np.ascontiguousarray(np.broadcast_to(column, (h, w, 3)), dtype=np.float32)
        clouds = _smoothstep(_noise2(rng, h, w, w / (8 * px_per_deg)), 0.5, 0.8)
        cover = (clouds * np.float32(rng.uniform(0.0, 0.8))).astype(np.float32)
        white = np.full_like(sky, 240.0)
        sky = cv2.blendLinear(sky, white, 1.0 - cover, cover).astype(np.uint8)
    # Distant vegetation: a greyscale ground photo tinted green-brown, tiled on the cylinder.
    plants = [n for n in FOLIAGE_PHOTOS if n in photos.ground]
    photo = photos.grey[str(rng.choice(plants))]
    scale = px_per_deg * rng.uniform(1.0, 2.5)  # photo pixels per degree: distant, fine texture
    map_x = np.mod(az * scale, photo.shape[1]) * ones_h
    map_y = np.mod(-elev * scale * 2.0, photo.shape[0]) * ones_w
    grey = cv2.remap(
        photo,
        map_x.astype(np.float32),
        map_y.astype(np.float32),
        cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_WRAP,
    )
    tint = np.array([rng.uniform(0.15, 0.4), rng.uniform(0.25, 0.45), rng.uniform(0.1, 0.25)])
    foliage = cv2.merge([grey * np.float32(255 * 1.6 * c) for c in tint])
    band_deg = rng.uniform(0.5, 6.0)
    profile = _noise2(rng, 1, w, max(2.0, rng.uniform(4, 20) * span / 90.0), octaves=3)
    edge_deg = band_deg * (0.3 + 0.7 * profile)  # (1, w) top of the vegetation, degrees
    alpha = np.clip((edge_deg - elev) * px_per_deg + 0.5, 0.0, 1.0).astype(np.float32)
    image = cv2.blendLinear(sky.astype(np.float32), foliage, 1.0 - alpha, alpha)
    image = np.clip(image, 0, 255).astype(np.uint8)
    return Backdrop(image, float(horizon), px_per_deg, azimuth0, wrap)


# --- light ----------------------------------------------------------------------------------------


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
