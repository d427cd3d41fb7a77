"""A cartoon quadruped drawn with OpenCV, with exact keypoints.

A body ellipse, a neck and head, thick limbs coloured by side (left red, right blue, head
yellow), and optionally a disk of a distinct colour (``KEYPOINT_COLOURS``) on every keypoint,
drawn last in channel order. ``CartoonAnimal`` places and poses one animal, ``walk`` moves it
across a frame, ``draw_animal`` draws it. Used by the fixtures (``fixtures.py``) and the
generator's no-OpenGL renderer (``flat.py``); ``draw_part_labels`` draws the same shapes as a
part segmentation (``animalpose.datasets.parts`` classes).
"""

from __future__ import annotations

import colorsys
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.parts import IGNORE, PART_CLASSES

__all__ = [
    "KEYPOINT_COLOURS",
    "CartoonAnimal",
    "Palette",
    "background",
    "body_ellipse",
    "body_points",
    "draw_animal",
    "draw_part_labels",
    "extent",
    "fixture_palette",
    "keypoint_array",
    "marker_radius",
    "offset_range",
    "walk",
]

K = ANIMAL18.num_keypoints
#: One saturated colour per keypoint channel (RGB), hues evenly spaced.
KEYPOINT_COLOURS = np.array(
    [[round(255 * c) for c in colorsys.hsv_to_rgb(i / K, 1.0, 1.0)] for i in range(K)],
    dtype=np.uint8,
)
#: Limb colours by side, head and body colours (RGB), before a per-animal jitter.
_SIDE_COLOURS = {"left": (200, 40, 40), "right": (40, 60, 210)}
_HEAD, _BODY = (225, 205, 50), (120, 85, 55)
#: Marker radius, limb, neck and head thickness as fractions of the body length L.
_MARKER, _LIMB, _NECK, _HEAD_WIDTH = 0.035, 0.08, 0.16, 0.14
#: Smallest marker radius in pixels.
_MIN_MARKER = 2.5
#: Gait phase advance per video frame (radians) and walking speed (body lengths per frame).
_PHASE_STEP, _SPEED = 0.35, 0.02
#: Fixed-point bits of cv2 drawing coordinates (sub-pixel accurate shapes).
_SHIFT = 4
#: The limbs drawn per side, as keypoint name pairs.
_LIMBS = {
    side: [
        (f"{side}_shoulder", f"{side}_front_elbow"),
        (f"{side}_front_elbow", f"{side}_front_knee"),
        (f"{side}_front_knee", f"{side}_front_hoof"),
        ("hip", f"{side}_back_elbow"),
        (f"{side}_back_elbow", f"{side}_back_knee"),
        (f"{side}_back_knee", f"{side}_back_hoof"),
    ]
    for side in ("left", "right")
}


def marker_radius(length: float) -> float:
    """Radius in pixels of the keypoint disks of an animal of body length ``length`` pixels."""
    return max(_MIN_MARKER, _MARKER * length)


# --- the animal --------------------------------------------------------------------------------


def _chain(start: np.ndarray, angles, lengths) -> list[np.ndarray]:
    """Joint positions down a leg; angles from straight down, positive = forward (+x)."""
    points, p = [], start
    for a, n in zip(angles, lengths):
        p = p + n * np.array([np.sin(a), np.cos(a)])
        points.append(p)
    return points


@dataclass
class CartoonAnimal:
    """Appearance and placement of one animal (kept over a video shot)."""

    facing_left: bool
    rotation: float  # degrees
    length: float  # body length L in pixels
    neck: float  # neck angle above horizontal (radians)
    head: float  # head angle (radians, negative = pointing down)
    swing: float  # gait amplitude (radians)
    far: np.ndarray  # (2,) offset of the far-side limbs, in L
    legs: float  # leg length factor
    jitter: np.ndarray  # (3,) colour offset

    @classmethod
    def random(cls, rng: np.random.Generator, frame_size: tuple[int, int]) -> CartoonAnimal:
        w, h = frame_size
        return cls(
            facing_left=bool(rng.integers(0, 2)),
            rotation=float(rng.uniform(-15, 15)),
            length=float(rng.uniform(0.26, 0.4) * min(w, h * 4 / 3)),
            neck=float(rng.uniform(0.5, 1.2)),
            head=float(rng.uniform(-1.1, -0.3)),
            swing=float(rng.uniform(0.2, 0.45)),
            far=np.array([rng.uniform(0.03, 0.07), -0.04]),
            legs=float(rng.uniform(0.9, 1.1)),
            jitter=rng.integers(-25, 26, 3),
        )

    @property
    def near(self) -> str:
        """Side facing the camera: a right-facing animal shows its left side."""
        return "right" if self.facing_left else "left"

    def canonical(self, phase: float) -> dict[str, np.ndarray]:
        """Named points in body lengths, facing +x, y down, left side near, at gait ``phase``."""
        shoulder, hip = np.array([0.42, -0.08]), np.array([-0.5, -0.12])
        pts = {"hip": hip, "tail": hip + np.array([-0.22, 0.4])}
        for side, shift in (("left", np.zeros(2)), ("right", self.far)):
            lead = 0.0 if side == "left" else np.pi  # trot: diagonal legs move together
            a = self.swing * np.sin(phase + lead)
            b = self.swing * np.sin(phase + lead + np.pi)
            pts[f"{side}_shoulder"] = shoulder + shift
            front = _chain(
                shoulder + shift,
                [0.1 + a, -0.1 + 0.5 * a, 0.05 + 1.2 * a],
                [0.26 * self.legs, 0.26 * self.legs, 0.24 * self.legs],
            )
            back = _chain(
                hip + shift,
                [0.55 + 0.6 * b, -0.4 + 0.8 * b, 0.05 + b],
                [0.34 * self.legs, 0.3 * self.legs, 0.26 * self.legs],
            )
            for part, p in zip(("front_elbow", "front_knee", "front_hoof"), front):
                pts[f"{side}_{part}"] = p
            for part, p in zip(("back_elbow", "back_knee", "back_hoof"), back):
                pts[f"{side}_{part}"] = p
        poll = shoulder + 0.45 * np.array([np.cos(self.neck), -np.sin(self.neck)])
        ahead = np.array([np.cos(self.head), -np.sin(self.head)])
        below = np.array([-ahead[1], ahead[0]])
        pts.update(
            poll=poll,
            muzzle=poll + 0.36 * ahead,
            chin=poll + 0.3 * ahead + 0.06 * below,
            left_eye=poll + 0.1 * ahead - 0.02 * below,
        )
        pts["right_eye"] = pts["left_eye"] + np.array([0.03, -0.02])
        return pts

    def place(self, points: np.ndarray) -> np.ndarray:
        """Canonical (N, 2) points -> image pixels at the origin (mirror, rotate, scale)."""
        p = points * np.array([-1.0 if self.facing_left else 1.0, 1.0])
        t = np.radians(self.rotation)
        rot = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
        return p @ rot.T * self.length

    def posed(self, phase: float) -> dict[str, np.ndarray]:
        """Named points in image pixels (origin offset), names relabelled after a mirror: the
        mirror image of the canonical left side is the animal's right side."""
        pts = self.canonical(phase)
        names = list(pts)
        placed = dict(zip(names, self.place(np.stack([pts[n] for n in names]))))
        if self.facing_left:
            placed = {_mirror_name(n): p for n, p in placed.items()}
        return placed


def _mirror_name(name: str) -> str:
    """The keypoint name on the other side (``left_x`` <-> ``right_x``), others unchanged."""
    for side, other in (("left_", "right_"), ("right_", "left_")):
        if name.startswith(side):
            return other + name[len(side) :]
    return name


def keypoint_array(points: dict[str, np.ndarray]) -> np.ndarray:
    """(18, 2) keypoints in model order from named points."""
    return np.stack([points[n] for n in ANIMAL18.keypoints])


def body_points(animal: CartoonAnimal, points: dict[str, np.ndarray], rng, n: int) -> np.ndarray:
    """(n, 3) points scattered over body, limbs, neck and head in image pixels (origin offset),
    with 1 for the near side and 0 for the far side (a stand-in for occlusion flags)."""
    segments = [(a, b) for side in ("left", "right") for a, b in _LIMBS[side]]
    segments += [("left_shoulder", "poll"), ("poll", "muzzle"), ("hip", "tail")]
    far = "right_" if animal.near == "left" else "left_"
    near = np.array([0.0 if end.startswith(far) else 1.0 for _, end in segments])
    n_body = n // 2
    r, t = np.sqrt(rng.uniform(0, 1, n_body)), rng.uniform(0, 2 * np.pi, n_body)
    shoulder = (points["left_shoulder"] + points["right_shoulder"]) / 2
    axis = shoulder - points["hip"]
    across = np.array([-axis[1], axis[0]]) / max(np.linalg.norm(axis), 1e-6) * 0.2 * animal.length
    centre = (shoulder + points["hip"]) / 2
    half = axis / 2 * (1 + 0.24 * animal.length / max(np.linalg.norm(axis), 1e-6))
    body = centre + (r * np.cos(t))[:, None] * half + (r * np.sin(t))[:, None] * across
    pick = rng.integers(0, len(segments), n - n_body)
    u = rng.uniform(0, 1, (n - n_body, 1))
    start = np.stack([points[segments[i][0]] for i in pick])
    stop = np.stack([points[segments[i][1]] for i in pick])
    limbs = start + u * (stop - start) + rng.normal(0, 0.01 * animal.length, (n - n_body, 2))
    flags = np.concatenate([np.ones(n_body), near[pick]])
    return np.concatenate([np.concatenate([body, limbs]), flags[:, None]], axis=1)


def background(rng: np.random.Generator, frame_size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 smooth random texture with a few random ellipses."""
    w, h = frame_size
    coarse = cv2.resize(
        rng.uniform(0, 255, (3, 4, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_CUBIC
    )
    fine = cv2.resize(
        rng.uniform(-50, 50, (12, 16, 3)).astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR
    )
    image = np.ascontiguousarray(np.clip(coarse + fine, 0, 255).astype(np.uint8))
    for _ in range(int(rng.integers(3, 8))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (int(rng.integers(5, max(6, w // 4))), int(rng.integers(5, max(6, h // 4))))
        cv2.ellipse(image, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1)
    return image


def _fixed(p: np.ndarray) -> tuple[int, int]:
    return round(float(p[0]) * (1 << _SHIFT)), round(float(p[1]) * (1 << _SHIFT))


@dataclass(frozen=True)
class Palette:
    """RGB colours of an animal's parts: the limbs of each side, the body (trunk, neck, tail)
    and the head."""

    left: tuple[int, int, int]
    right: tuple[int, int, int]
    body: tuple[int, int, int]
    head: tuple[int, int, int]


def fixture_palette(animal: CartoonAnimal) -> Palette:
    """The fixtures' colours: red left limbs, blue right limbs, yellow head, brown body, all
    shifted by the animal's colour jitter."""

    def tint(colour):
        return tuple(int(np.clip(c + j, 0, 255)) for c, j in zip(colour, animal.jitter))

    return Palette(
        left=tint(_SIDE_COLOURS["left"]),
        right=tint(_SIDE_COLOURS["right"]),
        body=tint(_BODY),
        head=tint(_HEAD),
    )


def body_ellipse(
    animal: CartoonAnimal, points: dict[str, np.ndarray]
) -> tuple[np.ndarray, tuple[float, float], float]:
    """The trunk as drawn: (centre (2,), (half length, half height) in pixels, angle in
    degrees of the long axis, image axes)."""
    shoulder = (points["left_shoulder"] + points["right_shoulder"]) / 2
    axis = shoulder - points["hip"]
    angle = float(np.degrees(np.arctan2(axis[1], axis[0])))
    half = float(np.linalg.norm(axis)) / 2 + 0.12 * animal.length
    return (shoulder + points["hip"]) / 2, (half, 0.2 * animal.length), angle


#: Part of each drawn shape (``animalpose.datasets.parts`` class names): limbs by side and
#: front / back, the trunk ellipse and the neck are torso, the hip-to-tail stroke the tail.
_SHAPE_PARTS = {"neck": "torso", "trunk": "torso", "tail": "tail", "head": "head"}


def _limb_part(side: str, index: int) -> str:
    """Part of ``_LIMBS[side][index]``: its first three strokes are the front leg."""
    return f"{side}_front" if index < 3 else f"{side}_back"


def _draw(
    canvas: np.ndarray,
    animal: CartoonAnimal,
    points: dict[str, np.ndarray],
    colour: Callable[[str], tuple],
    line_type: int,
    marker_colour: Callable[[int], tuple] | None,
) -> None:
    """Draw the animal's shapes into ``canvas`` in painting order: far limbs, trunk, tail, neck,
    head, near limbs, then (``marker_colour`` given) one disk per keypoint. ``colour(part)``
    gives each shape's colour from its part name (``_SHAPE_PARTS``, ``_limb_part``)."""

    def line(a, b, value, width):
        cv2.line(
            canvas,
            _fixed(points[a] if isinstance(a, str) else a),
            _fixed(points[b] if isinstance(b, str) else b),
            value,
            max(1, round(width * animal.length)),
            line_type,
            _SHIFT,
        )

    far = "left" if animal.near == "right" else "right"
    for i, (a, b) in enumerate(_LIMBS[far]):
        line(a, b, colour(_limb_part(far, i)), _LIMB)
    centre, (half, height), angle = body_ellipse(animal, points)
    axes = (int(half * (1 << _SHIFT)), int(height * (1 << _SHIFT)))
    trunk = colour(_SHAPE_PARTS["trunk"])
    cv2.ellipse(canvas, _fixed(centre), axes, angle, 0, 360, trunk, -1, line_type, _SHIFT)
    shoulder = (points["left_shoulder"] + points["right_shoulder"]) / 2
    line("hip", "tail", colour(_SHAPE_PARTS["tail"]), _LIMB / 2)
    line(shoulder, "poll", colour(_SHAPE_PARTS["neck"]), _NECK)
    line("poll", "muzzle", colour(_SHAPE_PARTS["head"]), _HEAD_WIDTH)
    for i, (a, b) in enumerate(_LIMBS[animal.near]):
        line(a, b, colour(_limb_part(animal.near, i)), _LIMB)
    if marker_colour is None:
        return
    radius = round(marker_radius(animal.length) * (1 << _SHIFT))
    for i, name in enumerate(ANIMAL18.keypoints):
        cv2.circle(canvas, _fixed(points[name]), radius, marker_colour(i), -1, line_type, _SHIFT)


def draw_animal(
    image: np.ndarray,
    animal: CartoonAnimal,
    points: dict[str, np.ndarray],
    *,
    palette: Palette | None = None,
    markers: bool = True,
) -> None:
    """Draw the animal in place (points in image pixels): far limbs, trunk, tail, neck, head,
    near limbs, then (``markers``) one ``KEYPOINT_COLOURS`` disk per keypoint.
    ``palette`` defaults to ``fixture_palette(animal)``. Anti-aliased edges."""
    colours = palette or fixture_palette(animal)

    def colour(part: str) -> tuple:
        if part.startswith(("left_", "right_")):
            return colours.left if part.startswith("left_") else colours.right
        return colours.head if part == "head" else colours.body

    def marker(i: int) -> tuple:
        return tuple(int(v) for v in KEYPOINT_COLOURS[i])

    _draw(image, animal, points, colour, cv2.LINE_AA, marker if markers else None)


def draw_part_labels(
    animal: CartoonAnimal, points: dict[str, np.ndarray], size: tuple[int, int], *, markers: bool
) -> np.ndarray:
    """(H, W) uint8 part map (``animalpose.datasets.parts``) of ``draw_animal``'s drawing at
    frame ``size`` (w, h): the same shapes in the same order, without anti-aliasing (a pixel takes
    the part whose shape covers its centre; the anti-aliased fringe of the image is a blend),
    0 elsewhere. ``markers``: the keypoint disks drawn over the animal are ``IGNORE``. The
    cartoon has no eyes or ears to label."""
    labels = np.zeros((size[1], size[0]), np.uint8)

    def part(name: str) -> tuple:
        return (PART_CLASSES.index(name),)

    _draw(labels, animal, points, part, cv2.LINE_8, (lambda i: (IGNORE,)) if markers else None)
    return labels


def offset_range(extents: np.ndarray, frame_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) offsets keeping (x0, y0, x1, y1) ``extents`` inside the frame (4 px margin);
    collapses to the centring offset when the animal is larger than the frame."""
    w, h = frame_size
    lo = np.array([4.0, 4.0]) - extents[:2]
    hi = np.array([w - 5.0, h - 5.0]) - extents[2:]
    mid = (lo + hi) / 2
    return np.minimum(lo, mid), np.maximum(hi, mid)


def extent(*arrays: np.ndarray) -> np.ndarray:
    """(x0, y0, x1, y1) box of the (N, >=2) point arrays."""
    pts = np.concatenate([a[:, :2] for a in arrays])
    return np.concatenate([pts.min(axis=0), pts.max(axis=0)])


def walk(
    rng: np.random.Generator, frame_size: tuple[int, int], count: int, *, legs: float = 1.0
) -> tuple[CartoonAnimal, list[dict[str, np.ndarray]]]:
    """A random animal trotting across a (w, h) frame for ``count`` frames: (animal, named
    points in image pixels per frame). The gait phase advances ``_PHASE_STEP`` per frame and
    the animal drifts at a constant velocity chosen so that every frame stays inside the frame
    (it stands still when the walk does not fit). ``legs`` scales the random leg length."""
    beast = CartoonAnimal.random(rng, frame_size)
    if legs != 1.0:
        beast = dataclasses.replace(beast, legs=beast.legs * legs)
    phases = float(rng.uniform(0, 2 * np.pi)) + _PHASE_STEP * np.arange(count)
    frames = [beast.posed(p) for p in phases]
    direction = -1.0 if beast.facing_left else 1.0
    velocity = np.array([direction * _SPEED * beast.length, rng.uniform(-0.5, 0.5)])
    extents = [extent(keypoint_array(p), p["tail"][None], p["muzzle"][None]) for p in frames]
    for v in (velocity, np.zeros(2)):
        ranges = [offset_range(e, frame_size) for e in extents]
        lo = np.max([r[0] - v * t for t, r in enumerate(ranges)], axis=0)
        hi = np.min([r[1] - v * t for t, r in enumerate(ranges)], axis=0)
        if (lo <= hi).all():
            break
    offset0 = rng.uniform(np.minimum(lo, hi), np.maximum(lo, hi))
    return beast, [{n: p + offset0 + v * t for n, p in pts.items()} for t, pts in enumerate(frames)]
