"""Small, learnable data sets in the reference's exact on-disk formats, for tests, benchmarks and
the README quickstart (``datasets/make_fixture.py``).

``make_synthetic_fixture`` writes the synthetic-animal layout (docs/reference_compat.md §1.1),
``make_tigdog_fixture`` the TigDog layout (§1.2), both through ``writers.py``;
``make_coco_fixture`` a COCO person-keypoint folder of noise images (plumbing tests only). Each
frame of the first two is a ``cartoon.py`` animal in a random pose, size, position and facing
on a random smooth texture, with a coloured disk on every keypoint: the annotations are exact,
so a model can learn them and tests can check image against annotation.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from animalpose.datasets.fileio import write_image
from animalpose.datasets.formats.synthetic import NUM_VERTICES, load_vertex_table, synthetic_dir
from animalpose.datasets.formats.tigdog import LANDMARK_ORDER, NUM_LANDMARKS
from animalpose.datasets.generator.cartoon import (
    CartoonAnimal,
    background,
    body_points,
    draw_animal,
    draw_part_labels,
    extent,
    keypoint_array,
    offset_range,
    walk,
)
from animalpose.datasets.generator.writers import (
    TigDogLayout,
    tigdog_landmark_struct,
    write_synthetic_sample,
    write_tigdog_landmarks,
    write_tigdog_ranges,
)
from animalpose.datasets.keypoints import ANIMAL18, COCO17

__all__ = [
    "COCO_MARKER_RADIUS",
    "coco_marker_colour",
    "main",
    "make_coco_fixture",
    "make_synthetic_fixture",
    "make_tigdog_fixture",
]

#: Landmarks per frame in the TigDog fixture (the 18 keypoints + a tail tip); real TigDog files
#: also hold more than the 18 the loader uses.
_FIXTURE_LANDMARKS = 19
_SYNTHETIC_FRAME_SIZE = (640, 480)
_TIGDOG_FRAME_SIZE = (640, 360)
#: Probability that a landmark is unannotated (coordinates 0, visibility 0), that it is
#: annotated but flagged invisible, and that a frame is mostly unannotated (dropped by the
#: loader's > 9 visible filter).
_P_MISSING, _P_HIDDEN, _P_BAD_FRAME = 0.06, 0.04, 0.12
#: Radius of ``make_coco_fixture``'s keypoint markers (``markers=True``) at scale 1, pixels.
COCO_MARKER_RADIUS = 1.5
#: Hue step between consecutive keypoints' marker colours, degrees: 17 x 21 < 360, so the 17
#: COCO keypoints get distinct hues.
_MARKER_HUE_STEP = 21
#: Fractional bits of the marker centres and radius (OpenCV's ``shift``: sub-pixel drawing).
_MARKER_SHIFT = 4


def make_coco_fixture(
    root: str | Path,
    *,
    people: int = 2,
    images: int = 2,
    splits=("train", "val"),
    seed: int = 1,
    scale: int = 1,
    markers: bool = False,
) -> None:
    """The built-in humans' layout (``annotations/person_keypoints_<split>.json``,
    ``<split>_detections.json``, ``<split>/*.jpg``): ``images`` noise images of 160x120 pixels
    times ``scale`` per split, ``people`` (at most 2) labelled boxes of 40x40 times ``scale``
    side by side in each (17 visible keypoints, jittered the same way in every image). Not
    learnable: for plumbing tests and loader benchmarks. ``markers`` draws a disk of
    ``COCO_MARKER_RADIUS`` x ``scale`` pixels in keypoint k's colour (``coco_marker_colour``) on
    every keypoint, so that a model can localise them (overfit tests); the random draws, and so
    the annotations and the noise, are the same with or without."""
    if not 1 <= people <= 2 or scale < 1:
        raise ValueError(f"people must be 1 or 2 and scale >= 1, got {people}, {scale}")
    root = Path(root)
    rng = np.random.default_rng(seed)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    offsets = rng.uniform(0, 40, (people, 17, 2))
    width, height = 160 * scale, 120 * scale
    image_id = 0
    for split in splits:
        (root / split).mkdir(exist_ok=True)
        entries, anns = [], []
        for _ in range(images):
            image_id += 1
            name = f"{image_id:012d}.jpg"
            pixels = rng.integers(0, 255, (height, width, 3), np.uint8)
            corners = [np.array([10.0 + 70 * p, 30.0]) for p in range(people)]
            if markers:
                for p, corner in enumerate(corners):
                    _draw_markers(pixels, (offsets[p] + corner) * scale, COCO_MARKER_RADIUS * scale)
            write_image(root / split / name, pixels, atomic=False)
            entries.append({"id": image_id, "file_name": name, "width": width, "height": height})
            for p, corner in enumerate(corners):
                kp = (offsets[p] + corner) * scale
                kp = np.concatenate([kp, np.full((17, 1), 2)], 1)
                box = [*(corner * scale).tolist(), 40.0 * scale, 40.0 * scale]
                anns.append(
                    {
                        "id": image_id * 10 + p, "image_id": image_id, "category_id": 1,
                        "keypoints": kp.reshape(-1).tolist(), "num_keypoints": 17,
                        "bbox": box, "area": box[2] * box[3], "iscrowd": 0,
                    }
                )  # fmt: skip
        data = {
            "images": entries,
            "annotations": anns,
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17.keypoints)}],
        }
        (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(data))
        dets = [{**{k: a[k] for k in ("image_id", "category_id", "bbox")}, "score": 0.9}
                for a in anns]  # fmt: skip
        (root / "annotations" / f"{split}_detections.json").write_text(json.dumps(dets))


def coco_marker_colour(k: int) -> tuple[int, int, int]:
    """RGB colour of keypoint ``k``'s marker in ``make_coco_fixture(markers=True)``: hues
    ``_MARKER_HUE_STEP`` degrees apart (17 distinct ones), full saturation and value."""
    hue = (k * _MARKER_HUE_STEP) % 360
    hsv = np.array([[[hue / 2, 255, 255]]], dtype=np.uint8)  # OpenCV's hue is in [0, 180)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _draw_markers(pixels: np.ndarray, keypoints: np.ndarray, radius: float) -> None:
    """Filled, anti-aliased disks of ``radius`` pixels centred on the (K, 2) ``keypoints`` (image
    pixels, sub-pixel centres), keypoint k's in ``coco_marker_colour(k)``, into (H, W, 3)
    ``pixels``."""
    one = 1 << _MARKER_SHIFT
    for k, (x, y) in enumerate(keypoints):
        centre = (round(float(x) * one), round(float(y) * one))
        colour = coco_marker_colour(k)
        cv2.circle(pixels, centre, round(radius * one), colour, -1, cv2.LINE_AA, _MARKER_SHIFT)


def make_synthetic_fixture(
    root: str | Path,
    *,
    animal: str = "horse",
    num_images: int = 600,
    seed: int = 0,
    frame_size: tuple[int, int] = _SYNTHETIC_FRAME_SIZE,
) -> Path:
    """Write ``num_images`` samples to ``<root>/synthetic_animal/<animal>_combineds5r5_texture/``.

    Each sample is ``<i>_SK_<animal>_fixture_img.png`` (RGB, ``frame_size`` (w, h)),
    ``..._kpts.npy`` (3299, 3) float32: the animal's vertex-table rows hold the 18 keypoints, the
    other rows points scattered over the body, limbs and head (visibility 0 on the far side,
    which the loader ignores like the reference), and ``..._partseg.png``, the drawn parts
    (``cartoon.draw_part_labels``; the keypoint disks are ``IGNORE``). Names are not
    zero-padded, as the reference's, so the loader's lexicographic order differs from the
    numeric one. Returns the folder.
    """
    rows = load_vertex_table(animal, num_keypoints=ANIMAL18.num_keypoints)
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
        labels = draw_part_labels(beast, points, frame_size, markers=True)
        vertices = np.zeros((NUM_VERTICES, 3))
        vertices[rows, :2], vertices[rows, 2] = keypoint_array(points), 1.0
        vertices[others, :2], vertices[others, 2] = cloud[:, :2] + offset, cloud[:, 2]
        base = f"{i}_SK_{animal}_fixture_"
        write_synthetic_sample(
            out / f"{base}img.png",
            out / f"{base}kpts.npy",
            image,
            vertices,
            partseg=labels,
            atomic=False,
        )
    return out


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
    layout = TigDogLayout(root=root, animal=animal, frames_per_shot=frames_per_shot)
    for sub in (f"ranges/{animal}", f"landmarks/{animal}", animal):
        (layout.base / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    slots = np.asarray(LANDMARK_ORDER.get(animal, range(NUM_LANDMARKS)))
    shot_ids = np.sort(rng.choice(np.arange(1, 1000), size=num_shots + 1, replace=False))
    skipped = shot_ids[(num_shots + 1) // 2]
    ranges, start = [], 1
    for shot in shot_ids:
        ranges.append((shot, start, start + frames_per_shot - 1))
        if shot != skipped:
            _write_shot(layout, int(shot), start, rng, frame_size, slots)
        start += frames_per_shot
    write_tigdog_ranges(layout.ranges_path, ranges, atomic=False)
    return layout.base


def _write_shot(layout: TigDogLayout, shot, start, rng, frame_size, slots) -> None:
    count = layout.frames_per_shot
    beast, frames = walk(rng, frame_size, count)
    scene = background(rng, frame_size)
    cells = np.empty((count, 1), dtype=object)
    w, h = frame_size
    for t, points in enumerate(frames):
        image = scene.copy()
        draw_animal(image, beast, points)
        write_image(layout.frame_path(start + t), image, atomic=False)
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
        cells[t, 0] = tigdog_landmark_struct(coords, visible)
    write_tigdog_landmarks(layout.landmarks_path(shot), cells, atomic=False)


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
