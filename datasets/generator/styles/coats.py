"""Dog coats of the two styles, painted in texture space of the skin's atlas.

``build_coat_atlas`` tabulates the skin's bind-pose 3-D positions, normals and body parts per
texel (``CoatAtlas``), so patterns such as spots and stripes are continuous across the atlas'
seams; ``paint_coat`` paints natural coats (target: browns, black, white, tan, brindle, merle,
black-and-tan) or random, often unnatural ones (source: the reference's random textures).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.ndimage import distance_transform_edt
from scipy.spatial import cKDTree

from animalpose.datasets.generator.renderer import check_style
from animalpose.datasets.generator.styles.procedural import (
    palette_map,
    random_colour,
    smoothstep,
)

__all__ = ["PARTS", "CoatAtlas", "build_coat_atlas", "paint_coat", "part_of_bone"]

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


# --- noise on the body ----------------------------------------------------------------------------


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
    head = smoothstep(pos[..., 0], 0.26, 0.32) * smoothstep(pos[..., 2], 0.5, 0.56)
    if pattern == "countershade":
        dark = _coat(pick(_DARK + ("red", "tan")), rng)
        light = _coat(pick(_LIGHT + ("white",)), rng)
        t = smoothstep(nz + 0.25 * legs, -0.1, 0.6) * (1 - 0.6 * legs)
        coat = light + (dark - light) * t[..., None]
    elif pattern == "black_and_tan":
        dark, tan = _coat(pick(("black", "dark_brown", "liver")), rng), _coat(pick(_LIGHT), rng)
        muzzle = head * smoothstep(0.68 - pos[..., 2], 0.0, 0.03)
        saddle = smoothstep(nz, -0.15, 0.35) * (1 - legs) * (1 - 0.7 * muzzle)
        coat = tan + (dark - tan) * saddle[..., None]
    elif pattern in ("piebald", "spotted", "merle"):
        cell = {"piebald": 0.18, "spotted": 0.035, "merle": 0.08}[pattern]
        n = _fractal3(atlas, cell, rng, octaves=2)
        thr = {"piebald": 0.5, "spotted": 0.64, "merle": 0.58}[pattern] + rng.uniform(-0.05, 0.05)
        patch = smoothstep(n, thr - 0.03, thr + 0.03)
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
        patch = smoothstep(wave, 0.1, 0.5) * rng.uniform(0.6, 0.9)
        coat = ground + (stripe - ground) * patch[..., None]
    # White markings: chest and paws.
    if rng.random() < 0.4:
        white = _coat("white", rng)
        chest = (1 - legs) * smoothstep(pos[..., 0], 0.05, 0.15) * smoothstep(-nz, 0.2, 0.6)
        mark = chest + legs * smoothstep(0.09 - pos[..., 2], 0, 0.04)
        coat = coat + (white - coat) * np.clip(mark, 0, 1)[..., None]
    if rng.random() < 0.3:  # darker muzzle
        muzzle = head * smoothstep(pos[..., 0], 0.38, 0.44)
        coat = coat * (1.0 - 0.6 * muzzle[..., None])
    shade = 1.0 + 0.16 * (_fractal3(atlas, 0.2, rng, octaves=2) - 0.5)
    return np.clip(coat * shade[..., None], 0.0, 1.0)


def _random_coat(rng: np.random.Generator, atlas: CoatAtlas) -> np.ndarray:
    """(G, G, 3) random, often unnatural coat in [0, 1]."""
    pos = atlas.position
    kind = rng.choice(["flat", "noise", "stripes", "checker_uv", "parts", "camo"])
    if kind == "flat":
        return np.broadcast_to(random_colour(rng), pos.shape).copy()
    if kind == "noise":
        colours = np.stack([random_colour(rng) for _ in range(rng.integers(2, 5))])
        return palette_map(_fractal3(atlas, rng.uniform(0.03, 0.25), rng, octaves=3), colours)
    if kind == "stripes":
        d = rng.normal(size=3)
        wave = np.sin(2 * math.pi * (pos @ (d / np.linalg.norm(d))) / rng.uniform(0.02, 0.15))
        t = (wave > 0).astype(float) if rng.random() < 0.5 else 0.5 + 0.5 * wave
        a, b = random_colour(rng), random_colour(rng)
        return a + (b - a) * t[..., None]
    if kind == "checker_uv":
        n = rng.integers(8, 48)
        cells = (np.floor(atlas.uv[..., 0] * n) + np.floor(atlas.uv[..., 1] * n)) % 2
        a, b = random_colour(rng), random_colour(rng)
        return a + (b - a) * cells[..., None]
    if kind == "parts":
        colours = np.stack([random_colour(rng) for _ in PARTS])
        return colours[atlas.part]
    colours = np.stack([random_colour(rng) for _ in range(3)])
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
