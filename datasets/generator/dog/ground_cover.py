"""Ground cover for the 3-D dog: tufts of grass blades standing on the ground around the dog.

A cover is a set of blades in world coordinates, sampled once per scene (a still or a whole shot)
and drawn into every frame with the renderer's own camera (``camera.PinholeCamera``): two-segment
strokes (base, bend, tip) rasterised far to near into a colour and a depth layer, composited where
a blade is nearer than the rendered depth, so the dog hides blades behind it and blades hide its
legs. Keypoints behind a blade keep their labels and ``visible`` flag (the depth test is against
the dog's own body), as TigDog's annotators labelled hooves in grass. Why: docs/generator.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from animalpose.datasets.generator.dog.camera import PinholeCamera

__all__ = ["COVERS", "Cover", "Vegetation", "get_cover", "sample_vegetation"]


@dataclass(frozen=True)
class Cover:
    """The distribution of one kind of ground cover (ranges are uniform (low, high)).

    tufts_per_m2: tuft density on the ground. blades_per_tuft: integer range. tuft_radius_m:
    blades of a tuft stand within this radius of its centre. height_m: a tuft's blade height
    (each blade then x0.6-1.0). width_m: blade width at the base. lean_deg: largest lean of a
    blade from vertical. reach_m: tufts cover a disk this much wider than the dog's path.
    """

    tufts_per_m2: tuple[float, float]
    blades_per_tuft: tuple[int, int]
    tuft_radius_m: float
    height_m: tuple[float, float]
    width_m: tuple[float, float]
    lean_deg: float
    reach_m: float

    def __post_init__(self) -> None:
        for name in ("tufts_per_m2", "blades_per_tuft", "height_m", "width_m"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"Cover.{name} must be a range 0 < low <= high, got {(low, high)}")
        if self.tuft_radius_m < 0 or self.reach_m <= 0 or not 0 <= self.lean_deg < 90:
            raise ValueError("Cover: tuft_radius_m >= 0, reach_m > 0 and lean_deg in [0, 90)")


#: Ground covers by name ("none": bare ground). "grass": knee-high tufts, the target cover of
#: dogshift-v2 (docs/generator.md).
COVERS: dict[str, Cover | None] = {
    "none": None,
    "grass": Cover(
        tufts_per_m2=(10.0, 30.0),
        blades_per_tuft=(6, 14),
        tuft_radius_m=0.07,
        height_m=(0.15, 0.4),
        width_m=(0.006, 0.012),
        lean_deg=30.0,
        reach_m=1.2,
    ),
}

#: Blade colours (RGB): fresh green, olive, dry straw, dark green. A scene mixes two of them.
_PALETTE = np.array([[86, 122, 48], [112, 118, 58], [170, 150, 92], [52, 82, 36]], dtype=float)
#: Blades nearer than this share of the camera's focus distance are not drawn (the camera is
#: not standing in the grass).
MIN_DEPTH_SHARE = 0.35


def get_cover(name: str) -> Cover | None:
    """``COVERS[name]``; ValueError listing the names otherwise."""
    try:
        return COVERS[name]
    except KeyError:
        raise ValueError(f"unknown ground cover {name!r}; known: {sorted(COVERS)}") from None


@dataclass(frozen=True)
class Vegetation:
    """N blades in world coordinates (metres, z up, ground at z = 0).

    base, bend, tip: (N, 3) points of each blade's two-segment stroke. width: (N,) base width
    (m). colour: (N, 3) RGB in [0, 255].
    """

    base: np.ndarray
    bend: np.ndarray
    tip: np.ndarray
    width: np.ndarray
    colour: np.ndarray

    def __len__(self) -> int:
        return len(self.base)

    def draw(
        self,
        image: np.ndarray,
        depth: np.ndarray,
        camera: PinholeCamera,
        *,
        focus: float,
        covered: np.ndarray | None = None,
    ) -> np.ndarray:
        """``image`` (H, W, 3) uint8 with the blades drawn where they are nearer than ``depth``
        (H, W, metres along the view axis, as the renderer's depth buffer). Blades nearer than
        ``MIN_DEPTH_SHARE * focus`` or behind the camera are skipped. ``covered`` ((H, W) bool,
        optional) is set True where a blade was drawn (for the part segmentation)."""
        if len(self) == 0:
            return image
        n = len(self)
        xy, z = camera.project(np.concatenate([self.base, self.bend, self.tip]))
        xy, z = xy.reshape(3, n, 2), z.reshape(3, n)
        near = z.min(axis=0)
        h, w = depth.shape
        lo, hi = xy.min(axis=0), xy.max(axis=0)
        keep = (
            (near > MIN_DEPTH_SHARE * focus)
            & (hi[:, 0] >= 0)
            & (lo[:, 0] < w)
            & (hi[:, 1] >= 0)
            & (lo[:, 1] < h)
        )
        if not keep.any():
            return image
        order = np.flatnonzero(keep)[np.argsort(-near[keep], kind="stable")]  # far to near
        layer_depth = np.full((h, w), np.inf, np.float32)
        layer = np.zeros((h, w, 3), np.uint8)
        # 4 fractional bits for cv2's sub-pixel lines; kept blades are in front of the camera, so
        # their coordinates are finite.
        pts = np.zeros(xy.shape, np.int32)
        pts[:, order] = np.rint(xy[:, order] * 16).astype(np.int32)
        for i in order:
            px = max(1, round(float(camera.focal * self.width[i] / near[i])))
            colour = tuple(float(c) for c in self.colour[i])
            for a, b, thick in ((0, 1, px), (1, 2, max(1, px // 2))):
                p, q = tuple(pts[a, i]), tuple(pts[b, i])
                cv2.line(layer, p, q, colour, thick, cv2.LINE_8, shift=4)
                cv2.line(layer_depth, p, q, float(near[i]), thick, cv2.LINE_8, shift=4)
        front = layer_depth < depth
        if covered is not None:
            covered |= front
        out = image.copy()
        out[front] = layer[front]
        return out


def sample_vegetation(
    rng: np.random.Generator, cover: Cover, *, centre: np.ndarray, path_half_length: float = 0.0
) -> Vegetation:
    """Tufts of ``cover`` on a disk about ``centre`` (x, y) of radius ``path_half_length +
    cover.reach_m``: Poisson tuft count for the disk's area, each tuft a random number of blades
    of a shared height and colour family, leaning and bending at random."""
    radius = float(path_half_length) + cover.reach_m
    density = rng.uniform(*cover.tufts_per_m2)
    tufts = int(rng.poisson(density * math.pi * radius**2))
    pick = rng.choice(len(_PALETTE), size=2, replace=False)
    r = radius * np.sqrt(rng.uniform(size=tufts))
    phi = rng.uniform(0, 2 * math.pi, size=tufts)
    centres = np.asarray(centre, float)[:2] + np.stack([r * np.cos(phi), r * np.sin(phi)], 1)
    counts = rng.integers(cover.blades_per_tuft[0], cover.blades_per_tuft[1] + 1, size=tufts)
    heights = rng.uniform(*cover.height_m, size=tufts)
    mix = rng.uniform(size=tufts)
    n = int(counts.sum())
    tuft = np.repeat(np.arange(tufts), counts)
    rr = cover.tuft_radius_m * np.sqrt(rng.uniform(size=n))
    aa = rng.uniform(0, 2 * math.pi, size=n)
    base = np.zeros((n, 3))
    base[:, :2] = centres[tuft] + np.stack([rr * np.cos(aa), rr * np.sin(aa)], 1)
    height = heights[tuft] * rng.uniform(0.6, 1.0, size=n)
    lean = np.radians(cover.lean_deg) * np.sqrt(rng.uniform(size=n))
    heading = rng.uniform(0, 2 * math.pi, size=n)
    direction = np.stack(
        [np.sin(lean) * np.cos(heading), np.sin(lean) * np.sin(heading), np.cos(lean)], 1
    )
    droop = rng.uniform(0.0, 0.25, size=n)  # the tip bends further over, towards the ground
    horizontal = np.stack([np.cos(heading), np.sin(heading), np.zeros(n)], 1)
    bend = base + 0.55 * height[:, None] * direction
    tip = bend + 0.45 * height[:, None] * (direction + droop[:, None] * (horizontal - [0, 0, 1]))
    tip[:, 2] = np.maximum(tip[:, 2], 0.02)
    family = np.where(mix[tuft] < 0.5, pick[0], pick[1])
    colour = _PALETTE[family] * rng.uniform(0.55, 1.1, size=(n, 1))
    return Vegetation(
        base=base,
        bend=bend,
        tip=tip,
        width=rng.uniform(*cover.width_m, size=n),
        colour=np.clip(colour, 0, 255),
    )
