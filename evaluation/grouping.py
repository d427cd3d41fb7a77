"""Bottom-up grouping of Associative Embedding outputs into people (Newell et al. 2017), as
HigherHRNet parses them (HRNet/HigherHRNet-Human-Pose-Estimation ``lib/core/group.py``:
``HeatmapParser.top_k``, ``match_by_tag``, ``adjust``, ``refine``; after
princeton-vl/pose-ae-train ``utils/group.py``).

``group`` turns one image's K detection heatmaps and K tag maps into people:

1. Detections: max-pool NMS (a pixel survives if it is the maximum of its ``NMS_KERNEL``
   neighbourhood), then the ``max_people`` highest per keypoint type, kept above
   ``detection_threshold``.
2. Matching, one keypoint type at a time in ``order`` (head and torso first: ``grouping_order``):
   the first type's detections each start a person; a later type's detections are matched to
   the people so far by the Hungarian algorithm on the cost ``round(d) * 100 - score`` (d the
   L2 distance of the detection's tag to the person's mean tag, rounded as the reference does,
   so that among equally close people the higher detection wins), plus ``MISMATCH_COST`` where
   ``d >= tag_threshold`` (the solver then prefers a valid match for everyone it can). A
   detection left unmatched, or matched no closer than ``tag_threshold``, starts a new person.
3. The quarter-pixel shift towards the higher neighbour (MSRA / Newell's decoding).
4. ``refine`` (optional) fills each person's missing keypoint types from the highest response
   once the rounded tag distance to the person's mean tag is subtracted, if that response's tag
   is closer than ``tag_threshold`` (the reference takes it whatever its tag).

Coordinates are heatmap pixels, 0-based, pixel centres on integers (docs/architecture.md); the
reference's ``+ 0.5`` (pixel-corner coordinates) is not applied. ``multi_scale_merge`` combines
the outputs of several input scales (average heatmaps, concatenated tags) before ``group``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from animalpose.datasets.keypoint_spec import KeypointSpec

__all__ = [
    "DETECTION_THRESHOLD",
    "GROUPING_PRIORITY",
    "MAX_PEOPLE",
    "MISMATCH_COST",
    "NMS_KERNEL",
    "QUARTER_SHIFT",
    "TAG_THRESHOLD",
    "group",
    "grouping_order",
    "multi_scale_merge",
    "refine",
    "top_detections",
]

#: HigherHRNet's ``DATASET.MAX_NUM_PEOPLE``: detections kept per keypoint type.
MAX_PEOPLE = 30
#: HigherHRNet's ``TEST.DETECTION_THRESHOLD``.
DETECTION_THRESHOLD = 0.1
#: HigherHRNet's ``TEST.TAG_THRESHOLD``: a detection joins a person only if its tag is closer.
TAG_THRESHOLD = 1.0
#: HigherHRNet's ``TEST.NMS_KERNEL`` (with ``NMS_PADDING`` 2: same-size max pooling).
NMS_KERNEL = 5
#: The reference's ``use_detection_val`` cost: ``round(distance) * TAG_COST_SCALE - score``.
TAG_COST_SCALE = 100.0
#: Added to the cost of a detection-person pair no closer than ``tag_threshold`` (the
#: reference pads with 1e10 for its dummy columns): any valid pairing beats an invalid one.
MISMATCH_COST = 1e10
#: Decoding shifts a peak a quarter pixel towards its higher neighbour (Newell et al. 2016;
#: MSRA SimpleBaseline ``get_final_preds``; the reference's ``adjust``).
QUARTER_SHIFT = 0.25
#: Keypoint names grouped first, in this order: head, then torso (the reference's COCO
#: ``joint_order`` 1, 2, 3, 4, 5, 6, 7, 12, 13 (1-based), then the limbs 8-11, 14-17).
GROUPING_PRIORITY = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_hip",
    "right_hip",
)


def grouping_order(spec: KeypointSpec) -> tuple[int, ...]:
    """The order ``group`` visits ``spec``'s keypoint types in: the ``GROUPING_PRIORITY``
    names ``spec`` has, then the others in ``spec``'s order. For ``COCO17`` this is the
    reference's ``joint_order`` (nose, eyes, ears, shoulders, hips, elbows, wrists, knees,
    ankles)."""
    first = [spec.index(name) for name in GROUPING_PRIORITY if name in spec.keypoints]
    return (*first, *(k for k in range(spec.num_keypoints) if k not in first))


def _tensor(value, name: str) -> torch.Tensor:
    """A float32 CPU tensor of an array or tensor."""
    if isinstance(value, np.ndarray):
        value = torch.from_numpy(np.ascontiguousarray(value))
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a NumPy array or a torch tensor, got {type(value)}")
    return value.detach().float().cpu()


def _check_maps(heatmaps, tags) -> tuple[torch.Tensor, torch.Tensor]:
    """(K, h, w) heatmaps and (K, h, w) or (K, h, w, T) tags -> tensors, tags (K, h, w, T)."""
    heatmaps, tags = _tensor(heatmaps, "heatmaps"), _tensor(tags, "tags")
    if tags.dim() == 3:
        tags = tags[..., None]
    if heatmaps.dim() != 3 or tags.dim() != 4 or tags.shape[:3] != heatmaps.shape:
        raise ValueError(
            f"heatmaps {tuple(heatmaps.shape)} must be (K, h, w) and tags "
            f"{tuple(tags.shape)} (K, h, w) or (K, h, w, T) of the same K, h, w"
        )
    return heatmaps, tags


def top_detections(
    heatmaps, tags, *, max_people: int = MAX_PEOPLE, nms_kernel: int = NMS_KERNEL
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``max_people`` strongest NMS peaks of every keypoint type (the reference's
    ``top_k``), strongest first.

    Args:
        heatmaps: (K, h, w) detection heatmaps (array or tensor).
        tags: (K, h, w) or (K, h, w, T) tag maps.
        max_people: peaks kept per type (fewer when a map has fewer pixels).
        nms_kernel: odd side of the max-pooling window.

    Returns:
        ``(xy, scores, peak_tags)``: (K, N, 2) integer (x, y) pixels, (K, N) heatmap values
        (0 where the pixel is not a local maximum) and (K, N, T) tags read there.
    """
    heatmaps, tags = _check_maps(heatmaps, tags)
    if nms_kernel < 1 or nms_kernel % 2 == 0:
        raise ValueError(f"nms_kernel must be odd and positive, got {nms_kernel}")
    num_keypoints, height, width = heatmaps.shape
    pooled = F.max_pool2d(heatmaps[None], nms_kernel, stride=1, padding=nms_kernel // 2)[0]
    peaks = heatmaps * (pooled == heatmaps)
    scores, index = peaks.flatten(1).topk(min(max_people, height * width), dim=1)
    peak_tags = torch.gather(tags.flatten(1, 2), 1, index[..., None].expand(-1, -1, tags.shape[-1]))
    xy = torch.stack([index % width, index // width], dim=-1)
    return xy.numpy(), scores.numpy().astype(np.float64), peak_tags.numpy().astype(np.float64)


def _quarter_shift(heatmap: np.ndarray, x: int, y: int) -> tuple[float, float]:
    """(x, y) moved a quarter pixel towards the higher neighbour on each axis, where both
    neighbours exist (no shift on a tie)."""
    height, width = heatmap.shape
    dx = np.sign(heatmap[y, x + 1] - heatmap[y, x - 1]) if 0 < x < width - 1 else 0.0
    dy = np.sign(heatmap[y + 1, x] - heatmap[y - 1, x]) if 0 < y < height - 1 else 0.0
    return x + QUARTER_SHIFT * float(dx), y + QUARTER_SHIFT * float(dy)


def group(
    heatmaps,
    tags,
    *,
    max_people: int = MAX_PEOPLE,
    detection_threshold: float = DETECTION_THRESHOLD,
    tag_threshold: float = TAG_THRESHOLD,
    order: Sequence[int] | None = None,
    nms_kernel: int = NMS_KERNEL,
    fill_missing: bool = True,
) -> np.ndarray:
    """Group one image's detections into people by their tags (module docs).

    Args:
        heatmaps: (K, h, w) detection heatmaps (array or tensor; one image).
        tags: (K, h, w) or (K, h, w, T) tag maps.
        max_people: detections per type, and people a detection is matched against.
        detection_threshold: detections at or below it are dropped.
        tag_threshold: largest tag distance (exclusive) for joining a person.
        order: keypoint types in visiting order, a permutation of ``range(K)``
            (``grouping_order(spec)``); None: 0 .. K - 1.
        nms_kernel: odd side of the NMS max-pooling window.
        fill_missing: run ``refine`` on every person.

    Returns:
        (P, K, 3 + T) float64 people in creation order: x, y (heatmap pixels, quarter-shifted),
        score (the heatmap value; 0 for a missing keypoint, whose other columns are 0 too) and
        the T tag values read at the keypoint (P, K, 4 for 1-D tags).
    """
    heatmaps_t, tags_t = _check_maps(heatmaps, tags)
    num_keypoints, tag_dim = heatmaps_t.shape[0], tags_t.shape[-1]
    visit = list(range(num_keypoints)) if order is None else [int(k) for k in order]
    if sorted(visit) != list(range(num_keypoints)):
        raise ValueError(f"order {visit} must be a permutation of 0 .. {num_keypoints - 1}")
    xy, scores, peak_tags = top_detections(
        heatmaps_t, tags_t, max_people=max_people, nms_kernel=nms_kernel
    )
    people: list[np.ndarray] = []  # each (K, 3 + T)
    members: list[list[np.ndarray]] = []  # each person's keypoint tags, for its mean tag
    for k in visit:
        keep = scores[k] > detection_threshold
        found = np.concatenate([xy[k][keep], scores[k][keep, None], peak_tags[k][keep]], axis=1)
        if len(found) == 0:
            continue
        candidates = min(len(people), max_people)
        matched = np.full(len(found), -1)
        if candidates:
            means = np.stack([np.mean(members[p], axis=0) for p in range(candidates)])
            distance = np.linalg.norm(found[:, None, 3:] - means[None], axis=2)
            cost = np.round(distance) * TAG_COST_SCALE - found[:, 2:3]
            cost = cost + MISMATCH_COST * (distance >= tag_threshold)
            for row, col in zip(*linear_sum_assignment(cost)):
                if distance[row, col] < tag_threshold:
                    matched[row] = col
        for row, person in enumerate(matched):
            if person < 0:  # a new person
                person = len(people)
                people.append(np.zeros((num_keypoints, 3 + tag_dim)))
                members.append([])
            people[person][k] = found[row]
            members[person].append(found[row, 3:])
    if not people:
        return np.zeros((0, num_keypoints, 3 + tag_dim))
    out = np.stack(people)
    heat = heatmaps_t.numpy().astype(np.float64)
    for person in out:
        for k in np.flatnonzero(person[:, 2] > 0):
            person[k, :2] = _quarter_shift(heat[k], int(person[k, 0]), int(person[k, 1]))
    if fill_missing:
        out = np.stack(
            [refine(heat, tags_t, person, tag_threshold=tag_threshold) for person in out]
        )
    return out


def refine(
    heatmaps, tags, person: np.ndarray, *, tag_threshold: float | None = TAG_THRESHOLD
) -> np.ndarray:
    """Fill a person's missing keypoint types (the reference's ``refine``).

    For every type k with score 0: the pixel maximising ``heatmaps[k] - round(d)``, d the L2
    distance of its tag to the person's mean tag (the mean of the tags in ``person``), joins
    the person if its heatmap value is positive and d < ``tag_threshold``, quarter-shifted,
    with the tag read there.

    Args:
        heatmaps: (K, h, w) detection heatmaps.
        tags: (K, h, w) or (K, h, w, T) tag maps.
        person: (K, 3 + T) as ``group`` returns; nothing changes without a keypoint whose
            score is > 0.
        tag_threshold: the largest tag distance (exclusive) of a filled keypoint. None: any
            tag, as the reference (which then fills a type from another person's strong peak
            when nothing of this person's shows).

    Returns:
        A new (K, 3 + T) person; detected keypoints unchanged.
    """
    heatmaps_t, tags_t = _check_maps(heatmaps, tags)
    heat = heatmaps_t.numpy().astype(np.float64)
    tag_maps = tags_t.numpy().astype(np.float64)
    num_keypoints, height, width = heat.shape
    if person.shape != (num_keypoints, 3 + tag_maps.shape[-1]):
        raise ValueError(
            f"person {person.shape} must be (K, 3 + T) = ({num_keypoints}, "
            f"{3 + tag_maps.shape[-1]})"
        )
    detected = person[:, 2] > 0
    out = np.array(person, dtype=np.float64)
    if not detected.any():
        return out
    mean_tag = person[detected, 3:].mean(axis=0)
    for k in np.flatnonzero(~detected):
        distance = np.linalg.norm(tag_maps[k] - mean_tag, axis=-1)
        y, x = np.unravel_index(np.argmax(heat[k] - np.round(distance)), (height, width))
        close = tag_threshold is None or distance[y, x] < tag_threshold
        if heat[k, y, x] > 0 and close:
            out[k, :2] = _quarter_shift(heat[k], int(x), int(y))
            out[k, 2] = heat[k, y, x]
            out[k, 3:] = tag_maps[k, y, x]
    return out


def multi_scale_merge(
    outputs: Sequence[tuple[object, object]], size: tuple[int, int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Combine one image's outputs at several input scales (HigherHRNet's multi-scale test).

    Args:
        outputs: ``(heatmaps (K, h_i, w_i), tags (K, h_i, w_i) or (K, h_i, w_i, T_i))`` per
            scale (arrays or tensors), all covering the same image.
        size: (w, h) to resize to; None: the largest width and height among the inputs.

    Returns:
        ``(heatmaps (K, h, w), tags (K, h, w, sum T_i))`` float32 tensors: the mean of the
        heatmaps and the tags concatenated in input order, every map resized bilinearly with
        pixel-area alignment (``align_corners=False``: pixel centres of all scales coincide).
    """
    if len(outputs) == 0:
        raise ValueError("multi_scale_merge needs at least one (heatmaps, tags) pair")
    pairs = [_check_maps(h, t) for h, t in outputs]
    num_keypoints = pairs[0][0].shape[0]
    if any(h.shape[0] != num_keypoints for h, _ in pairs):
        raise ValueError(f"every scale must have K = {num_keypoints} heatmaps")
    if size is None:
        size = (max(h.shape[2] for h, _ in pairs), max(h.shape[1] for h, _ in pairs))
    width, height = size

    def resize(maps: torch.Tensor) -> torch.Tensor:  # (C, h_i, w_i) -> (C, height, width)
        if maps.shape[-2:] == (height, width):
            return maps
        return F.interpolate(maps[None], (height, width), mode="bilinear", align_corners=False)[0]

    def resize_tags(tags: torch.Tensor) -> torch.Tensor:  # (K, h_i, w_i, T) -> (K, h, w, T)
        channels = tags.permute(0, 3, 1, 2).flatten(0, 1)  # (K * T, h_i, w_i)
        return resize(channels).unflatten(0, (tags.shape[0], tags.shape[3])).permute(0, 2, 3, 1)

    heatmaps = torch.stack([resize(h) for h, _ in pairs]).mean(0)
    tags = torch.cat([resize_tags(t) for _, t in pairs], dim=-1)
    return heatmaps, tags
