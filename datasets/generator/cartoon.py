"""Small, learnable data sets in the reference's exact on-disk formats.

``make_synthetic_fixture`` writes the synthetic-animal layout (spec 1.1) and
``make_tigdog_fixture`` the TigDog layout (spec 1.2). Both draw a cartoon quadruped in a random
pose, size, position and facing on a random smooth texture: a body ellipse, a neck and head,
thick limbs coloured by side (left limbs red, right limbs blue, head yellow), and a disk of a
distinct colour (``KEYPOINT_COLOURS``) on every keypoint, drawn last in channel order. The
annotations are exact, so a model can learn them and tests can check image against annotation.
Used by the tests, the benchmarks and the README quickstart (``datasets/make_fixture.py``).
The drawing pieces (``CartoonAnimal``, ``walk``, ``draw_animal`` with a ``Palette`` and without
markers, ``body_points``, ``background``) are also the generator's fallback renderer
(``flat_render.py``).
"""

from __future__ import annotations

import argparse
import colorsys
import dataclasses
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import scipy.io

from animalpose.datasets.fileio import write_image
from animalpose.datasets.formats.synthetic import NUM_VERTICES, load_vertex_table, synthetic_dir
from animalpose.datasets.formats.tigdog import LANDMARK_ORDER, NUM_LANDMARKS, TIGDOG_FOLDER
from animalpose.datasets.keypoints import ANIMAL18

__all__ = [
    "KEYPOINT_COLOURS",
    "CartoonAnimal",
    "Palette",
    "background",
    "body_ellipse",
    "body_points",
    "draw_animal",
    "extent",
    "fixture_palette",
    "keypoint_array",
    "main",
    "make_synthetic_fixture",
    "make_tigdog_fixture",
    "marker_radius",
    "offset_range",
    "walk",
]

K = ANIMAL18.num_keypoints
_IDX = {name: i for i, name in enumerate(ANIMAL18.keypoints)}
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
#: Landmarks per frame in the TigDog fixture (the 18 keypoints + a tail tip); real TigDog files
#: also hold more than the 18 the loader uses.
_FIXTURE_LANDMARKS = 19
#: Gait phase advance per video frame (radians) and walking speed (body lengths per frame).
_PHASE_STEP, _SPEED = 0.35, 0.02
_SYNTHETIC_FRAME_SIZE = (640, 480)
_TIGDOG_FRAME_SIZE = (640, 360)
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
    ``palette`` defaults to ``fixture_palette(animal)``."""
    colours = palette or fixture_palette(animal)
    side_colour = {"left": colours.left, "right": colours.right}

    def line(a, b, colour, width):
        cv2.line(
            image,
            _fixed(points[a] if isinstance(a, str) else a),
            _fixed(points[b] if isinstance(b, str) else b),
            colour,
            max(1, round(width * animal.length)),
            cv2.LINE_AA,
            _SHIFT,
        )

    far = "left" if animal.near == "right" else "right"
    for a, b in _LIMBS[far]:
        line(a, b, side_colour[far], _LIMB)
    centre, (half, height), angle = body_ellipse(animal, points)
    axes = (int(half * (1 << _SHIFT)), int(height * (1 << _SHIFT)))
    cv2.ellipse(image, _fixed(centre), axes, angle, 0, 360, colours.body, -1, cv2.LINE_AA, _SHIFT)
    shoulder = (points["left_shoulder"] + points["right_shoulder"]) / 2
    line("hip", "tail", colours.body, _LIMB / 2)
    line(shoulder, "poll", colours.body, _NECK)
    line("poll", "muzzle", colours.head, _HEAD_WIDTH)
    for a, b in _LIMBS[animal.near]:
        line(a, b, side_colour[animal.near], _LIMB)
    if not markers:
        return
    radius = round(marker_radius(animal.length) * (1 << _SHIFT))
    for i, name in enumerate(ANIMAL18.keypoints):
        colour = tuple(int(v) for v in KEYPOINT_COLOURS[i])
        cv2.circle(image, _fixed(points[name]), radius, colour, -1, cv2.LINE_AA, _SHIFT)


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


# --- the synthetic layout ----------------------------------------------------------------------


def make_synthetic_fixture(
    root: str | Path,
    *,
    animal: str = "horse",
    num_images: int = 600,
    seed: int = 0,
    frame_size: tuple[int, int] = _SYNTHETIC_FRAME_SIZE,
) -> Path:
    """Write ``num_images`` samples to ``<root>/synthetic_animal/<animal>_combineds5r5_texture/``.

    Each sample is ``<i>_SK_<animal>_fixture_img.png`` (RGB, ``frame_size`` (w, h)) and
    ``..._kpts.npy`` (3299, 3) float32: the animal's vertex-table rows hold the 18 keypoints, the
    other rows points scattered over the body, limbs and head (visibility 0 on the far side,
    which the loader ignores like the reference). Names are not zero-padded, as the reference's,
    so the loader's lexicographic order differs from the numeric one. Returns the folder.
    """
    rows = load_vertex_table(animal, num_keypoints=K)
    others = np.setdiff1d(np.arange(NUM_VERTICES), rows)
    out = synthetic_dir(root, animal)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(num_images):
        beast = CartoonAnimal.random(rng, frame_size)
        points = beast.posed(float(rng.uniform(0, 2 * np.pi)))
        cloud = body_points(beast, points, rng, len(others))
        lo, hi = offset_range(extent(keypoint_array(points), cloud), frame_size)
        offset = rng.uniform(lo, hi)
        points = {n: p + offset for n, p in points.items()}
        image = background(rng, frame_size)
        draw_animal(image, beast, points)
        vertices = np.zeros((NUM_VERTICES, 3))
        vertices[rows, :2], vertices[rows, 2] = keypoint_array(points), 1.0
        vertices[others, :2], vertices[others, 2] = cloud[:, :2] + offset, cloud[:, 2]
        base = f"{i}_SK_{animal}_fixture_"
        write_image(out / f"{base}img.png", image, atomic=False)
        np.save(out / f"{base}kpts.npy", vertices.astype(np.float32))
    return out


# --- the TigDog layout -------------------------------------------------------------------------

#: Probability that a landmark is unannotated (coordinates 0, visibility 0), that it is
#: annotated but flagged invisible, and that a frame is mostly unannotated (dropped by the
#: loader's > 9 visible filter).
_P_MISSING, _P_HIDDEN, _P_BAD_FRAME = 0.06, 0.04, 0.12


def _landmark_struct(coords: np.ndarray, visible: np.ndarray) -> np.ndarray:
    """A 1x1 MATLAB struct (coordinates K x 2, visibility K x 1), fields read by position."""
    record = np.empty((1, 1), dtype=[("coords", object), ("visibility", object)])
    record[0, 0]["coords"] = coords.astype(np.float64)
    record[0, 0]["visibility"] = visible.reshape(-1, 1).astype(np.float64)
    return record


def make_tigdog_fixture(
    root: str | Path,
    *,
    animal: str = "horse",
    num_shots: int = 6,
    frames_per_shot: int = 20,
    seed: int = 0,
    frame_size: tuple[int, int] = _TIGDOG_FRAME_SIZE,
) -> Path:
    """Write a TigDog-layout video set under ``<root>/behaviorDiscovery2.0/``.

    ``ranges/<animal>/ranges.mat`` lists ``num_shots`` annotated shots plus one shot (in the
    middle) without a landmark file, which the loader must skip; frames are numbered globally
    from 1. ``landmarks/<animal>/<shot>.mat`` holds an F x 1 cell of 1x1 structs with
    19 x 2 coordinates and 19 x 1 visibility (the 18 keypoints, in TigDog slot order, and a tail
    tip). Missing landmarks have coordinates (0, 0) and visibility 0; some landmarks are
    annotated but flagged invisible; some frames are mostly unannotated. Within a shot the animal
    walks smoothly on a fixed background. Returns the behaviorDiscovery2.0 folder.
    """
    base = Path(root) / TIGDOG_FOLDER
    for sub in (f"ranges/{animal}", f"landmarks/{animal}", animal):
        (base / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    slots = np.asarray(LANDMARK_ORDER.get(animal, range(NUM_LANDMARKS)))
    shot_ids = np.sort(rng.choice(np.arange(1, 1000), size=num_shots + 1, replace=False))
    skipped = shot_ids[(num_shots + 1) // 2]
    ranges, start = [], 1
    for shot in shot_ids:
        ranges.append((shot, start, start + frames_per_shot - 1))
        if shot != skipped:
            _write_shot(base, animal, int(shot), start, frames_per_shot, rng, frame_size, slots)
        start += frames_per_shot
    scipy.io.savemat(
        base / "ranges" / animal / "ranges.mat", {"ranges": np.asarray(ranges, dtype=np.int32)}
    )
    return base


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


def _write_shot(base, animal, shot, start, count, rng, frame_size, slots) -> None:
    beast, frames = walk(rng, frame_size, count)
    scene = background(rng, frame_size)
    cells = np.empty((count, 1), dtype=object)
    w, h = frame_size
    for t, points in enumerate(frames):
        image = scene.copy()
        draw_animal(image, beast, points)
        write_image(base / animal / f"{start + t:08d}.jpg", image, atomic=False)
        model = np.concatenate([keypoint_array(points), points["tail"][None]])
        coords = np.concatenate([model[:NUM_LANDMARKS][slots], model[NUM_LANDMARKS:]])
        visible = np.ones(_FIXTURE_LANDMARKS)
        inside = (coords[:, 0] > 0) & (coords[:, 0] < w) & (coords[:, 1] > 0) & (coords[:, 1] < h)
        missing = ~inside | (rng.uniform(size=_FIXTURE_LANDMARKS) < _P_MISSING)
        if rng.uniform() < _P_BAD_FRAME:
            missing[rng.choice(NUM_LANDMARKS, size=NUM_LANDMARKS // 2 + 1, replace=False)] = True
        hidden = rng.uniform(size=_FIXTURE_LANDMARKS) < _P_HIDDEN
        visible[missing | hidden] = 0.0
        coords[missing] = 0.0
        cells[t, 0] = _landmark_struct(coords, visible)
    scipy.io.savemat(base / "landmarks" / animal / f"{shot}.mat", {"landmarks": cells})


# --- command line ------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python datasets/make_fixture.py --image-path animal_data [--animal horse] ...``."""
    parser = argparse.ArgumentParser(
        description="Write small learnable data sets in the reference's synthetic_animal and "
        "TigDog (behaviorDiscovery2.0) layouts."
    )
    parser.add_argument("--image-path", default="./animal_data", help="data root to write into")
    parser.add_argument("--animal", default="horse")
    parser.add_argument("--num-images", type=int, default=600, help="synthetic images (0: none)")
    parser.add_argument("--shots", type=int, default=6, help="TigDog shots (0: none)")
    parser.add_argument("--frames-per-shot", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_images > 0:
        out = make_synthetic_fixture(
            args.image_path, animal=args.animal, num_images=args.num_images, seed=args.seed
        )
        print(f"wrote {args.num_images} synthetic samples to {out}")
    if args.shots > 0:
        out = make_tigdog_fixture(
            args.image_path,
            animal=args.animal,
            num_shots=args.shots,
            frames_per_shot=args.frames_per_shot,
            seed=args.seed,
        )
        print(f"wrote {args.shots} TigDog shots x {args.frames_per_shot} frames to {out}")
    return 0
