"""Drawing keypoints and the spec's skeleton on images (OpenCV), for overlays and TensorBoard."""

from __future__ import annotations

import cv2
import numpy as np

from animalpose.datasets.keypoints import KeypointSpec

__all__ = ["draw_keypoints", "draw_overlay", "PRED_COLOR", "GT_COLOR"]

#: Default colours (RGB): predictions red, ground truth green.
PRED_COLOR: tuple[int, int, int] = (255, 0, 0)
GT_COLOR: tuple[int, int, int] = (0, 255, 0)
#: Coordinates are clipped to this many pixels outside the image before OpenCV's int32 maths.
COORD_LIMIT = 1 << 15
#: Point radius and line thickness per 256 image pixels (at least 1 px).
RADIUS_PER_256 = 3
THICKNESS_PER_256 = 1


def draw_keypoints(
    image: np.ndarray,
    keypoints: np.ndarray,
    spec: KeypointSpec,
    *,
    color: tuple[int, int, int] = PRED_COLOR,
    scores: np.ndarray | None = None,
    threshold: float = 0.0,
) -> np.ndarray:
    """Return a copy of ``image`` with keypoints and skeleton drawn.

    Args:
        image: (H, W, 3) uint8 RGB.
        keypoints: (K, 2) or (K, 3) pixel (x, y[, visible]); with 3 columns only visible > 0
            is drawn. Non-finite coordinates are skipped.
        spec: keypoint spec (its ``skeleton`` is drawn between drawn keypoints).
        color: RGB colour.
        scores: optional (K,) confidences; keypoints with score < ``threshold`` are skipped.
        threshold: minimum score to draw.
    """
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {img.shape} {img.dtype}")
    kp = np.asarray(keypoints, dtype=np.float64)
    k = spec.num_keypoints
    if kp.ndim != 2 or kp.shape[0] != k or kp.shape[1] not in (2, 3):
        raise ValueError(f"keypoints must be ({k}, 2) or ({k}, 3), got {kp.shape}")
    shown = np.isfinite(kp[:, :2]).all(axis=1)
    if kp.shape[1] == 3:
        shown &= kp[:, 2] > 0
    if scores is not None:
        sc = np.asarray(scores, dtype=np.float64).reshape(-1)
        if sc.shape != (k,):
            raise ValueError(f"scores must be ({k},), got {sc.shape}")
        shown &= sc >= threshold
    out = np.ascontiguousarray(img.copy())
    unit = min(img.shape[:2]) / 256.0
    radius = max(1, round(RADIUS_PER_256 * unit))
    thickness = max(1, round(THICKNESS_PER_256 * unit))
    xy = np.clip(np.where(shown[:, None], kp[:, :2], 0.0), -COORD_LIMIT, COORD_LIMIT)
    points = np.round(xy).astype(np.int64)
    col = tuple(int(c) for c in color)
    for a, b in spec.skeleton_index:
        if shown[a] and shown[b]:
            cv2.line(
                out,
                tuple(map(int, points[a])),
                tuple(map(int, points[b])),
                col,
                thickness,
                cv2.LINE_AA,
            )
    for i in np.flatnonzero(shown):
        cv2.circle(out, tuple(map(int, points[i])), radius, col, -1, cv2.LINE_AA)
    return out


def draw_overlay(
    crop: np.ndarray, pred: np.ndarray, gt: np.ndarray, spec: KeypointSpec
) -> np.ndarray:
    """``crop`` with the ground truth ``gt`` (green) and the prediction ``pred`` (red) over it
    (an ``inference.Overlay``)."""
    return draw_keypoints(
        draw_keypoints(crop, gt, spec, color=GT_COLOR), pred, spec, color=PRED_COLOR
    )
