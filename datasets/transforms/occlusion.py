"""Occlusion augmentation with built-in occluders (no downloads): objects pasted over the crop.

UDA-Animal-Pose (Li & Lee 2021) pastes 1-7 PASCAL VOC object cut-outs (Sarandi et al. 2018's
synthetic occlusion) onto training crops; VOC cannot be fetched here, so the occluders are drawn
procedurally: a smooth star-shaped blob or an elongated bar (a branch, a post, a stem), filled with
a patch of the same crop taken elsewhere (or, with a ``TextureBank``, of other images: e.g. the
unlabelled target frames) or a shaded flat colour, with a soft edge. Keypoints keep their labels.
``Occluded`` wraps any augmenter; randomness comes from the sample's ``rng`` after the wrapped
augmenter's draws, so runs are reproducible.
"""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np

from animalpose.datasets.transforms.crop import CropResult

__all__ = ["OCCLUDER_KINDS", "Occluded", "TextureBank", "draw_occluder", "occlude"]

#: UDA-Animal's defaults: probability 0.5 per sample, ``randint(1, 8)`` = 1-7 occluders.
DEFAULT_PROBABILITY = 0.5
DEFAULT_MAX_COUNT = 7
#: An occluder's longest side as a fraction of the crop side (Sarandi et al. scale VOC objects
#: by U(0.2, 1) of about half a 256-px crop: roughly 0.1-0.5 of it).
SIZE_RANGE = (0.1, 0.5)
#: Occluder shapes and their shares of the draws.
OCCLUDER_KINDS = {"blob": 0.6, "bar": 0.4}
#: Share of occluders textured with a patch of the crop (the rest: shaded flat colour).
PATCH_SHARE = 0.5
#: Width of the soft edge, as a Gaussian sigma in pixels per 128 px of crop.
EDGE_SIGMA = 0.8


def _blob_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) float mask of a smooth star-shaped blob (a few random radial harmonics)."""
    angles = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    radius = np.ones_like(angles)
    for k in (2, 3, 4):
        radius += rng.uniform(0.0, 0.35 / k * 2) * np.cos(k * angles + rng.uniform(0, 2 * np.pi))
    radius = radius / radius.max() * (size / 2.0 - 1)
    stretch = rng.uniform(0.5, 1.0)  # blobs are rarely round
    pts = np.stack([radius * np.cos(angles), stretch * radius * np.sin(angles)], axis=1)
    return _fill(pts, size, rng.uniform(0.0, 180.0))


def _bar_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) float mask of an elongated bar, slightly tapered, at a random angle."""
    half_len = size / 2.0 - 1
    half_wid = max(half_len / rng.uniform(3.0, 10.0), 1.5)
    taper = rng.uniform(0.4, 1.0)
    pts = np.array(
        [
            [-half_len, -half_wid],
            [half_len, -half_wid * taper],
            [half_len, half_wid * taper],
            [-half_len, half_wid],
        ]
    )
    return _fill(pts, size, rng.uniform(0.0, 180.0))


def _fill(pts: np.ndarray, size: int, degrees: float) -> np.ndarray:
    """Rasterise polygon ``pts`` (centred at 0) rotated by ``degrees`` into a (size, size) mask."""
    t = np.deg2rad(degrees)
    rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    pts = pts @ rot.T + (size - 1) / 2.0
    mask = np.zeros((size, size), np.uint8)
    cv2.fillPoly(mask, [np.round(pts * 4).astype(np.int32)], 255, lineType=cv2.LINE_AA, shift=2)
    return mask.astype(np.float32) / 255.0


class TextureBank:
    """Images whose patches texture occluders (instead of the crop's own pixels).

    ``images``: (H, W, 3) uint8 RGB arrays, each at least 8 px a side. ``patch(size, rng)``: a
    (size, size, 3) float32 patch of a random image, cut at a random place and scale (a side of
    ``size`` to twice that, resized), so one bank serves crops of any size."""

    def __init__(self, images: list[np.ndarray]) -> None:
        if not images:
            raise ValueError("a texture bank needs at least one image")
        for i, im in enumerate(images):
            if im.ndim != 3 or im.shape[2] != 3 or min(im.shape[:2]) < 8 or im.dtype != np.uint8:
                raise ValueError(
                    f"texture {i}: need (H, W, 3) uint8 of 8 px or more, got {im.shape} {im.dtype}"
                )
        self.images = images

    @classmethod
    def from_files(cls, paths, *, max_side: int = 256) -> TextureBank:
        """Read ``paths`` (RGB), each shrunk so its longer side is at most ``max_side``."""
        from animalpose.datasets.fileio import read_image

        images = []
        for path in paths:
            im = read_image(path)
            scale = max_side / max(im.shape[:2])
            if scale < 1:
                size = (max(8, round(im.shape[1] * scale)), max(8, round(im.shape[0] * scale)))
                im = cv2.resize(im, size, interpolation=cv2.INTER_AREA)
            images.append(np.ascontiguousarray(im))
        return cls(images)

    def patch(self, size: int, rng: np.random.Generator) -> np.ndarray:
        image = self.images[int(rng.integers(len(self.images)))]
        h, w = image.shape[:2]
        side = min(h, w, max(1, int(round(size * rng.uniform(1.0, 2.0)))))
        y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        cut = image[y0 : y0 + side, x0 : x0 + side]
        if side != size:
            cut = cv2.resize(cut, (size, size), interpolation=cv2.INTER_LINEAR)
        return cut.astype(np.float32)


def draw_occluder(
    image: np.ndarray, rng: np.random.Generator, textures: TextureBank | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """One occluder for ``image`` (S, S, 3) uint8: (texture (s, s, 3) float32, alpha (s, s)
    float32 in [0, 1], top-left (x, y) in the crop, may lie partly outside). ``textures``: the
    patch-textured occluders take their patch from it instead of from ``image``."""
    side = image.shape[0]
    size = max(4, int(round(side * rng.uniform(*SIZE_RANGE))))
    kinds = list(OCCLUDER_KINDS)
    kind = kinds[rng.choice(len(kinds), p=list(OCCLUDER_KINDS.values()))]
    alpha = _blob_mask(size, rng) if kind == "blob" else _bar_mask(size, rng)
    sigma = EDGE_SIGMA * side / 128.0
    alpha = cv2.GaussianBlur(alpha, (0, 0), sigma) if sigma > 0 else alpha
    if rng.random() < PATCH_SHARE and (textures is not None or size < side):
        if textures is not None:
            texture = textures.patch(size, rng)
        else:
            x0, y0 = rng.integers(0, side - size + 1, size=2)
            texture = image[y0 : y0 + size, x0 : x0 + size].astype(np.float32)
        if rng.random() < 0.5:
            texture = texture[:, ::-1]
    else:  # a flat colour with a linear shading across the object
        colour = rng.uniform(0, 255, size=3).astype(np.float32)
        ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
        shade = rng.uniform(-40, 40) * ramp[None, :] + rng.uniform(-40, 40) * ramp[:, None]
        texture = np.clip(colour[None, None, :] + shade[..., None], 0, 255)
    top_left = tuple(int(v) - size // 2 for v in rng.integers(0, side, size=2))
    return texture, alpha, top_left


def occlude(
    image: np.ndarray,
    count: int,
    rng: np.random.Generator,
    textures: TextureBank | None = None,
) -> np.ndarray:
    """``image`` (S, S, 3) uint8 with ``count`` occluders alpha-blended over it (a new array)."""
    out = image.astype(np.float32)
    h, w = out.shape[:2]
    for _ in range(count):
        texture, alpha, (x, y) = draw_occluder(image, rng, textures)
        s = alpha.shape[0]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + s, w), min(y + s, h)
        if x1 <= x0 or y1 <= y0:
            continue
        a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
        t = texture[y0 - y : y1 - y, x0 - x : x1 - x]
        out[y0:y1, x0:x1] = a * t + (1 - a) * out[y0:y1, x0:x1]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


class Occluded:
    """An augmenter followed by occlusion: with ``probability`` the crop gets 1..``max_count``
    occluders (``occlude``, textured from ``textures`` when given); keypoints, matrix and flip
    are the wrapped augmenter's."""

    def __init__(
        self,
        inner,
        *,
        probability: float,
        max_count: int = DEFAULT_MAX_COUNT,
        textures: TextureBank | None = None,
    ) -> None:
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"occlusion probability must be in [0, 1], got {probability}")
        if max_count < 1:
            raise ValueError(f"occluders (max count) must be >= 1, got {max_count}")
        self.inner = inner
        self.probability = float(probability)
        self.max_count = int(max_count)
        self.textures = textures

    def __getattr__(self, name: str):  # output_size, flip_index, ... of the wrapped augmenter
        if name == "inner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.inner, name)

    def __call__(self, image, keypoints, center, size: float, rng: np.random.Generator):
        result: CropResult = self.inner(image, keypoints, center, size, rng)
        if rng.random() >= self.probability:
            return result
        count = int(rng.integers(1, self.max_count + 1))
        image = occlude(np.asarray(result.image), count, rng, self.textures)
        return replace(result, image=image)
