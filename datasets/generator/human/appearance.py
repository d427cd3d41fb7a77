"""What the people wear: skin tone, hair, shirt, trousers and shoes, as one small texture per
clothing region (``model.CLOTHING_REGIONS``), plus sleeve and leg lengths.

Colours are drawn from everyday palettes (skin tones, hair colours, denim, khaki, black, greys
and saturated shirt colours); shirts and trousers get plain, striped, checked or mottled
patterns. Pure NumPy/OpenCV; ``procedural.py`` supplies the noise and random colours.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animalpose.datasets.generator.human.model import CLOTHING_REGIONS, TEXTURE_SIZE
from animalpose.datasets.generator.styles.procedural import noise2, random_colour

__all__ = ["Outfit", "paint_region", "sample_outfit"]

#: Skin tones (RGB in [0, 1]), light to dark; each person jitters one a little.
SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.69],
        [0.91, 0.72, 0.58],
        [0.80, 0.60, 0.45],
        [0.66, 0.46, 0.32],
        [0.50, 0.34, 0.23],
        [0.36, 0.24, 0.16],
    ]
)
#: Hair colours: black, dark brown, brown, blond, auburn, grey.
HAIR_COLOURS = np.array(
    [
        [0.05, 0.04, 0.04],
        [0.18, 0.11, 0.07],
        [0.35, 0.22, 0.12],
        [0.78, 0.64, 0.38],
        [0.55, 0.25, 0.12],
        [0.62, 0.62, 0.60],
    ]
)
#: Trouser colours: denim, dark denim, black, khaki, grey, navy.
TROUSER_COLOURS = np.array(
    [
        [0.25, 0.35, 0.55],
        [0.14, 0.18, 0.30],
        [0.07, 0.07, 0.08],
        [0.68, 0.60, 0.44],
        [0.45, 0.45, 0.46],
        [0.12, 0.14, 0.25],
    ]
)
#: Shoe colours: black, white, brown, grey.
SHOE_COLOURS = np.array(
    [[0.06, 0.06, 0.06], [0.9, 0.9, 0.88], [0.35, 0.22, 0.12], [0.5, 0.5, 0.52]]
)
#: Shares: short sleeves (forearms show skin), shorts (shins show skin), no hair.
SHORT_SLEEVES, SHORTS, BALD = 0.4, 0.2, 0.08


@dataclass(frozen=True)
class Outfit:
    """One person's look: region -> (TEXTURE_SIZE, TEXTURE_SIZE, 3) uint8 texture
    (``CLOTHING_REGIONS``), and which limb segments show skin."""

    textures: dict[str, np.ndarray]
    short_sleeves: bool
    shorts: bool
    bald: bool


def _jitter(rng: np.random.Generator, colour: np.ndarray, amount: float) -> np.ndarray:
    return np.clip(colour * rng.uniform(1.0 - amount, 1.0 + amount, 3), 0.0, 1.0)


def paint_region(rng: np.random.Generator, colour: np.ndarray, pattern: str) -> np.ndarray:
    """(TEXTURE_SIZE, TEXTURE_SIZE, 3) uint8 texture: ``colour`` (3,) in [0, 1] with a pattern:
    "plain" (faint fabric noise), "stripes", "checks" (a second colour) or "mottled"."""
    n = TEXTURE_SIZE
    base = np.broadcast_to(colour, (n, n, 3)).astype(np.float32)
    fabric = 0.9 + 0.2 * noise2(rng, n, n, 16.0)[..., None]
    if pattern == "plain":
        image = base * fabric
    else:
        other = random_colour(rng) if rng.random() < 0.6 else np.full(3, rng.uniform(0.05, 0.95))
        yy, xx = np.mgrid[0:n, 0:n]
        period = int(rng.choice([4, 8, 16]))
        if pattern == "stripes":
            t = (yy // (period // 2)) % 2
        elif pattern == "checks":
            t = ((yy // period) + (xx // period)) % 2
        else:  # mottled
            t = noise2(rng, n, n, float(rng.uniform(3, 8))) > 0.5
        t = t.astype(np.float32)[..., None]
        image = (base * (1 - t) + other.astype(np.float32) * t) * fabric
    return np.clip(image * 255.0, 0, 255).astype(np.uint8)


def sample_outfit(rng: np.random.Generator) -> Outfit:
    """A random person's look (every draw made in a fixed order: equal seeds, equal outfits)."""
    skin = _jitter(rng, SKIN_TONES[rng.integers(len(SKIN_TONES))], 0.06)
    hair = _jitter(rng, HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))], 0.1)
    shirt = random_colour(rng) if rng.random() < 0.7 else np.full(3, rng.uniform(0.05, 0.95))
    shirt_pattern = str(rng.choice(["plain", "plain", "stripes", "checks", "mottled"]))
    if rng.random() < 0.8:
        trousers = _jitter(rng, TROUSER_COLOURS[rng.integers(len(TROUSER_COLOURS))], 0.1)
    else:
        trousers = random_colour(rng)
    trouser_pattern = str(rng.choice(["plain", "plain", "plain", "mottled"]))
    shoes = _jitter(rng, SHOE_COLOURS[rng.integers(len(SHOE_COLOURS))], 0.1)
    textures = {
        "skin": paint_region(rng, skin, "plain"),
        "hair": paint_region(rng, hair, "plain"),
        "shirt": paint_region(rng, shirt, shirt_pattern),
        "trousers": paint_region(rng, trousers, trouser_pattern),
        "shoes": paint_region(rng, shoes, "plain"),
    }
    assert tuple(textures) == CLOTHING_REGIONS
    return Outfit(
        textures=textures,
        short_sleeves=bool(rng.random() < SHORT_SLEEVES),
        shorts=bool(rng.random() < SHORTS),
        bald=bool(rng.random() < BALD),
    )
