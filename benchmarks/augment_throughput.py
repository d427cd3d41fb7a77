"""Crops per second of each augmenter on random 640 x 480 frames, in one process.

    python benchmarks/augment_throughput.py --n 200

OpenCV runs single-threaded by default (``--threads 1``), so the figures are per core, as in a
DataLoader worker.
"""

from __future__ import annotations

import argparse
import time

import cv2
import numpy as np

from animalpose.datasets.keypoints import ANIMAL18
from animalpose.datasets.transforms.classic import ClassicAugment
from animalpose.datasets.transforms.crop import CenterCrop
from animalpose.datasets.transforms.strong import StrongAugment

#: The reference's synthetic frames are 640 x 480 and its network input is 256 x 256.
FRAME = (640, 480)
OUTPUT_SIZE = 256


def augmenters(output_size: int) -> dict:
    flip = ANIMAL18.flip_index
    return {
        "strong/fused": StrongAugment(output_size=output_size, flip_index=flip, backend="fused"),
        "strong/imgaug": StrongAugment(output_size=output_size, flip_index=flip, backend="imgaug"),
        "classic": ClassicAugment(output_size=output_size, flip_index=flip),
        "none (CenterCrop)": CenterCrop(output_size),
    }


def throughput(aug, frames: list[np.ndarray], n: int, seed: int) -> float:
    """Crops per second over ``n`` calls (after one warm-up call)."""
    rng = np.random.default_rng(seed)
    w, h = FRAME
    kps = [
        np.c_[
            rng.uniform(0.3 * w, 0.7 * w, (18, 1)),
            rng.uniform(0.3 * h, 0.7 * h, (18, 1)),
            np.ones((18, 1)),
        ]
        for _ in frames
    ]
    center, size = np.array([w / 2, h / 2]), 0.6 * h
    aug(frames[0], kps[0], center, size, rng)
    start = time.perf_counter()
    for i in range(n):
        j = i % len(frames)
        aug(frames[j], kps[j], center, size, rng)
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="crops per augmenter")
    parser.add_argument("--threads", type=int, default=1, help="OpenCV threads")
    parser.add_argument("--output-size", type=int, default=OUTPUT_SIZE)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    cv2.setNumThreads(args.threads)
    rng = np.random.default_rng(args.seed)
    frames = [rng.integers(0, 256, (FRAME[1], FRAME[0], 3), dtype=np.uint8) for _ in range(8)]
    print(
        f"{FRAME[0]}x{FRAME[1]} -> {args.output_size}x{args.output_size}, n = {args.n}, "
        f"OpenCV threads = {args.threads}"
    )
    for name, aug in augmenters(args.output_size).items():
        rate = throughput(aug, frames, args.n, args.seed)
        print(f"{name:>18}: {rate:8.1f} crops/s  ({1e3 / rate:6.2f} ms/crop)")


if __name__ == "__main__":
    main()
