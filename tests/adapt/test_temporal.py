"""Temporal refinement: LK on a known motion, the substitution rule, shot and frame-gap
boundaries, the box-scaled flow limit, chaining, crop files, and worker independence."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from animalpose.adapt.temporal import (
    TemporalConfig,
    chain_links,
    substitute,
    temporal_refine,
    track_points,
)
from animalpose.datasets.fileio import DataError

#: Texture and frame sides; every frame is a window of one texture, moved by MOTION per frame.
BASE, SIDE = 200, 96
MOTION = np.array([2, 1])  # (dx, dy) pixels per frame number: |MOTION| = 2.236
#: Keypoints of frame 0 (the content moves with MOTION), inside every window used below.
P0 = np.array([[30.0, 40.0], [50.0, 50.0], [45.0, 30.0]])


def texture(seed: int = 0) -> np.ndarray:
    """(BASE, BASE) uint8 blurred noise: LK tracks it everywhere."""
    noise = np.random.default_rng(seed).uniform(0, 255, (BASE, BASE)).astype(np.float32)
    return np.clip(cv2.GaussianBlur(noise, (0, 0), 2.0) * 3 - 255, 0, 255).astype(np.uint8)


def window(base: np.ndarray, shift, extra=(0, 0)) -> np.ndarray:
    """The SIDE x SIDE frame whose content is ``base`` moved by ``shift``, cut ``extra`` further
    right/down (a crop of that frame at offset ``extra``)."""
    o = (BASE - SIDE) // 2
    x, y = o - int(shift[0]) + int(extra[0]), o - int(shift[1]) + int(extra[1])
    return base[y : y + SIDE, x : x + SIDE]


def truth(frame: int) -> np.ndarray:
    return P0 + frame * MOTION


def write_frames(folder: Path, frames, extras=None) -> list[Path]:
    base = texture()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for r, f in enumerate(frames):
        extra = (0, 0) if extras is None else extras[r]
        path = folder / f"{r:03d}_{f:08d}.png"
        cv2.imwrite(str(path), window(base, f * MOTION, extra))
        paths.append(path)
    return paths


def test_lk_recovers_a_known_translation():
    base = texture(1)
    prev, cur = window(base, (0, 0)), window(base, (3, -2))
    points = np.array([[30.0, 30.0], [50.0, 40.0], [60.0, 65.0], [40.0, 60.0], [np.nan, 5.0]])
    flowed, ok = track_points(prev, cur, points, window=15, levels=2)
    assert ok.tolist() == [True, True, True, True, False]  # a non-finite point is never tracked
    np.testing.assert_allclose(flowed[:4], points[:4] + [3, -2], atol=0.05)


def test_substitution_rule_on_a_hand_built_frame():
    kp = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [4.0, 4.0], [5.0, 5.0]])
    flowed = kp + 10
    conf = np.array([0.5, 0.8, 0.3, 0.9, 0.45], dtype=np.float32)
    fconf = np.array([1.0, 0.8, 0.0, 0.5, 0.5], dtype=np.float32)
    out_kp, out_conf, swapped = substitute(
        keypoints=kp, confidence=conf, flowed=flowed, flowed_confidence=fconf, ratio=0.9
    )
    # 0.5/1.0 < 0.9 swap; 0.8/0.8 = 1 keep; rejected flow (0) keep; 0.9/0.5 keep; 0.45/0.5 =
    # 0.9 is not < 0.9: keep.
    assert swapped.tolist() == [True, False, False, False, False]
    np.testing.assert_allclose(out_kp, np.vstack([flowed[:1], kp[1:]]))
    np.testing.assert_allclose(out_conf, [0.9 * 1.0, 0.8, 0.3, 0.9, 0.45], rtol=1e-6)


def test_chain_links_respect_shots_and_gaps():
    shots = np.array([1, 1, 1, 2, 2, 3, 3, 3])
    frames = np.array([1, 2, 3, 4, 5, 7, 9, 10])
    assert chain_links(shots, frames, 1).tolist() == [0, 1, 1, 0, 1, 0, 0, 1]
    assert chain_links(shots, frames, 2).tolist() == [0, 1, 1, 0, 1, 0, 1, 1]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    """Four shots over frames with a known motion; predictions and confidences built so that
    each rule of the refinement decides one entry."""
    shots = np.array([10, 10, 10, 10, 20, 20, 30, 30, 30, 40, 40])
    frames = np.array([1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13])
    paths = write_frames(tmp_path_factory.mktemp("frames"), frames)
    keypoints = np.stack([truth(f) for f in frames]).astype(np.float32)
    keypoints[1, 0] += 10.0  # a wrong, unconfident prediction: replaced by the flow
    keypoints[2, 0] += 8.0  # wrong again: replaced by the flow of row 1's *refined* label
    conf = np.full((len(frames), 3), 0.9, dtype=np.float32)
    conf[0] = 0.8
    conf[1] = [0.3, 0.75, 0.8]
    conf[2, 0] = 0.5
    conf[4] = 0.1  # first frame of shot 20: the previous row (shot 10) matches perfectly
    conf[7] = 0.1  # frame 10 of shot 30 follows frame 8: gap 2
    conf[8] = 0.05
    conf[10] = 0.1  # shot 40: flow of 2.24 px vs the box-scaled limit
    boxes = np.full(len(frames), 256.0)
    return {
        "image_paths": paths,
        "shots": shots,
        "frames": frames,
        "keypoints": keypoints,
        "confidence": conf,
        "box_sizes": boxes,
    }


def test_refinement_rules_on_a_known_motion(scenario):
    result = temporal_refine(**scenario, config=TemporalConfig())
    swapped = result.substituted
    assert result.keypoints.dtype == np.float32 and result.confidence.dtype == np.float32
    # Row 1: keypoint 0 (0.3 / 0.8 < 0.9) takes the flowed true location, confidence 0.72;
    # keypoint 1 (0.75 / 0.8 = 0.94) and 2 stay.
    assert swapped[1].tolist() == [True, False, False]
    np.testing.assert_allclose(result.keypoints[1, 0], truth(2)[0], atol=0.1)
    assert result.confidence[1, 0] == pytest.approx(0.72, rel=1e-6)
    # Row 2 chains: it flows row 1's refined label (true location), not its raw prediction.
    assert swapped[2].tolist() == [True, False, False]
    np.testing.assert_allclose(result.keypoints[2, 0], truth(3)[0], atol=0.1)
    assert result.confidence[2, 0] == pytest.approx(0.9 * 0.72, rel=1e-6)
    # The first frame of a shot is never substituted, even after a perfect match.
    assert not swapped[4].any()
    # Frame gap 2 breaks the chain; frame 11 follows frame 10 (0.05 / 0.1 < 0.9).
    assert not swapped[7].any() and swapped[8].all()
    np.testing.assert_allclose(result.confidence[8], 0.09, rtol=1e-6)
    # Shot 40 with a 256 box: the 2.24 px flow is well inside 15 px.
    assert swapped[10].all()
    assert swapped.sum() == 2 + 3 + 3  # nothing else moved
    untouched = ~swapped
    np.testing.assert_array_equal(result.keypoints[untouched], scenario["keypoints"][untouched])
    np.testing.assert_array_equal(result.confidence[untouched], scenario["confidence"][untouched])


def test_first_frame_of_a_shot_would_chain_within_one_shot(scenario):
    one_shot = dict(scenario, shots=np.where(scenario["shots"] == 20, 10, scenario["shots"]))
    result = temporal_refine(**one_shot, config=TemporalConfig())
    assert result.substituted[4].all()  # the control: same data, same shot -> substituted


def test_larger_frame_gap_keeps_the_chain(scenario):
    result = temporal_refine(**scenario, config=TemporalConfig(max_frame_gap=2))
    assert result.substituted[7].all()
    np.testing.assert_allclose(result.confidence[7], 0.81, rtol=1e-6)


def test_flow_limit_scales_with_the_previous_box(scenario):
    # Limit = 15 px x box / 256: box 40 -> 2.34 px accepts the 2.24 px move, box 36 -> 2.11
    # rejects it. Only the previous row's (row 9's) box matters.
    for box, expected in ((40.0, True), (36.0, False)):
        boxes = scenario["box_sizes"].copy()
        boxes[9] = box
        result = temporal_refine(**dict(scenario, box_sizes=boxes), config=TemporalConfig())
        assert result.substituted[10].all() == expected
    boxes = scenario["box_sizes"].copy()
    boxes[10] = 10.0  # the current row's box does not limit its incoming flow
    assert (
        temporal_refine(**dict(scenario, box_sizes=boxes), config=TemporalConfig())
        .substituted[10]
        .all()
    )


def test_crop_files_with_their_frame_matrices_give_the_frame_result(scenario, tmp_path):
    extras = [(r % 3 * 3, 4 - r % 2 * 5) for r in range(len(scenario["frames"]))]
    crops = write_frames(tmp_path, scenario["frames"], extras)
    # Crop file r shows frame pixel (x, y) at (x - ex, y - ey).
    mats = np.array([[[1.0, 0.0, -ex], [0.0, 1.0, -ey]] for ex, ey in extras])
    on_frames = temporal_refine(**scenario, config=TemporalConfig())
    on_crops = temporal_refine(
        **dict(scenario, image_paths=crops), image_matrices=mats, config=TemporalConfig()
    )
    np.testing.assert_array_equal(on_crops.substituted, on_frames.substituted)
    np.testing.assert_allclose(on_crops.keypoints, on_frames.keypoints, atol=0.1)


def test_results_do_not_depend_on_workers_or_pool(scenario):
    serial = temporal_refine(**scenario, config=TemporalConfig(), workers=0)
    threads = temporal_refine(**scenario, config=TemporalConfig(), workers=2)
    processes = temporal_refine(
        **scenario, config=TemporalConfig(), workers=2, pool="process", min_rows_per_worker=1
    )  # a pool even for these few frames
    for pooled in (threads, processes):
        np.testing.assert_array_equal(pooled.keypoints, serial.keypoints)
        np.testing.assert_array_equal(pooled.confidence, serial.confidence)
        np.testing.assert_array_equal(pooled.substituted, serial.substituted)
    with pytest.raises(ValueError, match="unknown flow pool 'gpu'"):
        temporal_refine(**scenario, config=TemporalConfig(), workers=2, pool="gpu")


def test_missing_or_truncated_frames_raise_data_errors(scenario, tmp_path):
    paths = list(scenario["image_paths"])
    paths[2] = tmp_path / "gone.png"
    with pytest.raises(DataError, match="gone.png"):
        temporal_refine(**dict(scenario, image_paths=paths), config=TemporalConfig())
    cut = tmp_path / "cut.png"
    cut.write_bytes(Path(scenario["image_paths"][2]).read_bytes()[:-40])
    paths[2] = cut
    with pytest.raises(DataError, match="cut.png: truncated PNG"):
        temporal_refine(**dict(scenario, image_paths=paths), config=TemporalConfig())


def test_config_and_shapes_are_validated(scenario):
    with pytest.raises(ValueError, match="ratio"):
        TemporalConfig(ratio=1.5)
    with pytest.raises(ValueError, match="max_frame_gap"):
        TemporalConfig(max_frame_gap=0)
    with pytest.raises(ValueError, match="confidence"):
        temporal_refine(
            **dict(scenario, confidence=scenario["confidence"][:, :2]), config=TemporalConfig()
        )
