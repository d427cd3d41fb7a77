"""OKS, rescoring, OKS-NMS and COCOeval keypoint AP (evaluation/oks.py).

Every ``evaluate_keypoints`` number is checked twice: against a value derived by hand from
COCOeval's rules (101-point interpolated precision, OKS thresholds 0.50:0.05:0.95, area ranges
32^2 and 96^2), and for exact equality with pycocotools' COCOeval called directly here.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from animalpose.datasets.fileio import DataError
from animalpose.datasets.keypoints import KeypointSpec
from animalpose.evaluation.oks import (
    COCO_SIGMAS,
    STAT_NAMES,
    coco_results,
    evaluate_keypoints,
    oks,
    oks_nms,
    rescore,
    run_keypoint_eval,
)

K = 17
#: COCOeval's OKS thresholds, written out by hand.
THRESHOLDS = [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95]


# --- builders ------------------------------------------------------------------------------------


def _keypoints(seed: int, box: tuple[float, float, float, float], k: int = K) -> np.ndarray:
    """(k, 3) visible keypoints spread inside ``box`` (x, y, w, h)."""
    rng = np.random.default_rng(seed)
    x, y, w, h = box
    return np.stack([x + rng.uniform(0, w, k), y + rng.uniform(0, h, k), np.full(k, 2.0)], 1)


def _ann(aid: int, image_id: int, kp: np.ndarray, box, area: float, *, iscrowd: int = 0) -> dict:
    return {
        "id": aid,
        "image_id": image_id,
        "category_id": 1,
        "keypoints": np.asarray(kp, dtype=float).reshape(-1).tolist(),
        "num_keypoints": int((np.asarray(kp)[:, 2] > 0).sum()),
        "area": float(area),
        "bbox": [float(v) for v in box],
        "iscrowd": iscrowd,
    }


def _gt(annotations: list[dict], num_images: int = 2) -> dict:
    return {
        "images": [
            {"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480}
            for i in range(1, num_images + 1)
        ],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": annotations,
    }


def _result(image_id: int, kp: np.ndarray, score: float) -> dict:
    kp = np.asarray(kp, dtype=float).copy()
    kp[:, 2] = 1.0  # a prediction's third column is a confidence
    return coco_results([image_id], kp[None], [score])[0]


def _shifted(kp: np.ndarray, dx: float) -> np.ndarray:
    out = np.array(kp, dtype=float)
    out[:, 0] += dx
    return out


def _reference(gt: dict, results: list[dict], sigmas=None) -> list[float]:
    """pycocotools exactly as a user calls it."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        if sigmas is not None:
            ev.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def _ours(gt: dict, results: list[dict], **kwargs) -> list[float]:
    stats = evaluate_keypoints(gt, results, **kwargs)
    assert list(stats) == list(STAT_NAMES)
    return [stats[n] for n in STAT_NAMES]


def _hand_oks(dx: float, area: float, sigmas=COCO_SIGMAS) -> float:
    """OKS of every keypoint shifted by ``dx``, from the spec's formula (no epsilon)."""
    k2 = (2 * np.asarray(sigmas)) ** 2
    return float(np.mean(np.exp(-(dx**2) / (2 * area * k2))))


def _ap_single(q: float) -> float:
    """AP (= AR) of one annotation matched once with OKS ``q``: the fraction of thresholds <= q."""
    return sum(t <= q for t in THRESHOLDS) / len(THRESHOLDS)


# --- oks -----------------------------------------------------------------------------------------


def test_oks_is_one_for_a_perfect_prediction():
    gt = _keypoints(0, (10, 10, 80, 160))
    assert oks(gt[:, :2], gt, area=5000.0) == 1.0


def test_oks_of_known_shifts_by_hand():
    gt = _keypoints(1, (10, 10, 80, 160))
    area = 5000.0
    # Shift only keypoint 5 (left shoulder, sigma 0.079) by 3 px in x and 4 px in y: d = 5.
    pred = gt.copy()
    pred[5, :2] += (3.0, 4.0)
    term = math.exp(-25.0 / (2 * area * (2 * 0.079) ** 2))
    assert oks(pred, gt, area=area) == pytest.approx((16 + term) / 17, rel=1e-12)
    # Every keypoint shifted by 7 px: the mean of the per-sigma terms.
    assert oks(_shifted(gt, 7.0), gt, area=area) == pytest.approx(_hand_oks(7.0, area), rel=1e-12)


def test_oks_counts_labelled_keypoints_only():
    gt = _keypoints(2, (0, 0, 100, 100))
    gt[[0, 3, 9], 2] = 0  # not labelled
    pred = gt.copy()
    pred[[0, 3, 9], :2] += 500.0  # far off, but unlabelled
    assert oks(pred, gt, area=4000.0) == 1.0
    pred[4, 0] += 10.0  # labelled: counts, averaged over the 14 labelled keypoints
    term = math.exp(-100.0 / (2 * 4000.0 * (2 * 0.035) ** 2))
    assert oks(pred, gt, area=4000.0) == pytest.approx((13 + term) / 14, rel=1e-12)


def test_oks_without_labelled_keypoints_measures_the_distance_to_the_grown_box():
    gt = np.zeros((K, 3))
    box = (100.0, 50.0, 20.0, 40.0)  # grown box: x in [80, 140], y in [10, 130]
    pred = np.tile([110.0, 60.0], (K, 1))
    assert oks(pred, gt, area=800.0, bbox=box) == 1.0
    pred[:, 0] = 146.0  # 6 px right of the grown box, for every keypoint
    assert oks(pred, gt, area=800.0, bbox=box) == pytest.approx(_hand_oks(6.0, 800.0), rel=1e-12)
    with pytest.raises(ValueError, match="bbox"):
        oks(pred, gt, area=800.0)


def test_oks_equals_cocoeval_compute_oks_bitwise():
    box = (20.0, 30.0, 90.0, 180.0)
    gt_kp = _keypoints(3, box)
    gt_kp[[1, 2], 2] = 0
    gt = _gt([_ann(1, 1, gt_kp, box, 7321.5)], num_images=1)
    rng = np.random.default_rng(4)
    preds = [gt_kp + np.c_[rng.normal(0, s, (K, 2)), np.zeros(K)] for s in (0.5, 3.0, 9.0, 30.0)]
    scores = [0.9, 0.7, 0.5, 0.3]  # COCOeval sorts by score; these are already in that order
    results = [_result(1, p, s) for p, s in zip(preds, scores)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "keypoints")
        ev.evaluate()
    ious = ev.ious[(1, 1)][:, 0]
    ours = [oks(p[:, :2], gt_kp, area=7321.5) for p in preds]
    assert ours == ious.tolist()
    assert len(set(ours)) == 4 and 0 < min(ours) < max(ours) < 1  # four different similarities


# --- rescore and OKS-NMS -------------------------------------------------------------------------


def test_rescore_by_hand():
    # Above 0.2 (strictly): 0.5 and 0.9, mean 0.7; x box score 0.8.
    assert rescore(0.8, np.array([0.1, 0.5, 0.9, 0.2])) == pytest.approx(0.56)
    batch = rescore(np.array([1.0, 0.5]), np.array([[0.3, 0.3, 0.6, 0.0], [0.1, 0.2, 0.0, 0.0]]))
    np.testing.assert_allclose(batch, [0.4, 0.0])  # nothing confident -> 0
    assert rescore(1.0, np.array([0.5, 0.9, 0.1]), in_vis_thre=0.6) == pytest.approx(0.9)


def _instance(kp: np.ndarray, confidence: float = 1.0) -> np.ndarray:
    out = np.array(kp, dtype=float)
    out[:, 2] = confidence
    return out


def test_oks_nms_drops_near_duplicates_by_hand():
    base = _instance(_keypoints(5, (0, 0, 100, 200)))
    far = _instance(_keypoints(6, (400, 0, 100, 200)))
    near = _shifted(base, 1.0)  # OKS with base ~0.99 at area 10000
    areas = np.array([10000.0, 9000.0, 10000.0])
    kp = np.stack([near, base, far])
    keep = oks_nms(kp, np.array([0.8, 0.9, 0.7]), areas)
    assert keep.tolist() == [1, 2]  # base wins, near is suppressed, far survives
    # The overlap is OKS at the mean of the two areas; a threshold just above it keeps both.
    overlap = _hand_oks(1.0, (10000.0 + 9000.0) / 2)
    assert 0.9 < overlap < 1.0
    keep = oks_nms(kp, np.array([0.8, 0.9, 0.7]), areas, threshold=overlap + 1e-9)
    assert keep.tolist() == [1, 0, 2]
    keep = oks_nms(kp, np.array([0.8, 0.9, 0.7]), areas, threshold=overlap - 1e-9)
    assert keep.tolist() == [1, 2]
    assert oks_nms(np.zeros((0, K, 3)), np.zeros(0), np.zeros(0)).tolist() == []


def test_oks_nms_equal_scores_take_the_later_index_first():
    kp = np.stack([_instance(_keypoints(7, (0, 0, 50, 50)))] * 2)
    assert oks_nms(kp, np.array([0.5, 0.5]), np.array([900.0, 900.0])).tolist() == [1]


def test_oks_nms_in_vis_thre_counts_only_confident_keypoints():
    base = _instance(_keypoints(8, (0, 0, 100, 200)), 0.9)
    other = base.copy()
    other[:8, 0] += 60.0  # far off on 8 keypoints ...
    other[:8, 2] = 0.1  # ... that it is not confident about
    kp, scores, areas = np.stack([base, other]), np.array([0.9, 0.8]), np.array([1e4, 1e4])
    assert oks_nms(kp, scores, areas).tolist() == [0, 1]  # all 17 count: OKS well below 0.9
    assert oks_nms(kp, scores, areas, in_vis_thre=0.2).tolist() == [0]  # 9 identical ones count
    # Both predictions must be confident (mmpose's reading of HRNet's oks_iou): here the kept one
    # is unsure of the 8 differing keypoints while the other is sure; they still do not count.
    kp[0, :8, 2], kp[1, :8, 2] = 0.1, 0.9
    assert oks_nms(kp, scores, areas, in_vis_thre=0.2).tolist() == [0]


def test_oks_nms_custom_sigmas_change_the_overlap():
    base = _instance(_keypoints(9, (0, 0, 40, 40), k=4), 1.0)
    near = _shifted(base, 2.0)
    kp, scores, areas = np.stack([base, near]), np.array([0.9, 0.8]), np.array([1600.0, 1600.0])
    # Hand OKS at sigma 0.1: exp(-4 / (2 * 1600 * 0.04)) = 0.9692 > 0.9; at 0.02: 0.458.
    assert oks_nms(kp, scores, areas, sigmas=[0.1] * 4).tolist() == [0]
    assert oks_nms(kp, scores, areas, sigmas=[0.02] * 4).tolist() == [0, 1]
    with pytest.raises(ValueError, match="sigmas"):
        oks_nms(kp, scores, areas)  # COCO's 17 sigmas do not fit 4 keypoints


# --- coco_results --------------------------------------------------------------------------------


def test_coco_results_flattens_x_y_score_in_order():
    kp = np.arange(2 * 3 * 3, dtype=float).reshape(2, 3, 3)
    out = coco_results(np.array([7, 9]), kp, np.array([0.5, 0.25]), category_id=3)
    assert out == [
        {"image_id": 7, "category_id": 3, "keypoints": list(range(9)), "score": 0.5},
        {"image_id": 9, "category_id": 3, "keypoints": list(range(9, 18)), "score": 0.25},
    ]
    assert json.loads(json.dumps(out)) == out  # plain Python numbers
    assert coco_results([1, 2], kp, [1, 1], category_id=[4, 5])[1]["category_id"] == 5
    with pytest.raises(ValueError, match="keypoints"):
        coco_results([1], kp, [1.0])


# --- evaluate_keypoints against hand values and COCOeval -----------------------------------------

BOX_A, BOX_B = (20.0, 20.0, 100.0, 200.0), (300.0, 40.0, 90.0, 180.0)
AREA_A, AREA_B = 12000.0, 11000.0  # both large


def _two_people() -> tuple[dict, np.ndarray, np.ndarray]:
    kp_a, kp_b = _keypoints(10, BOX_A), _keypoints(11, BOX_B)
    gt = _gt([_ann(1, 1, kp_a, BOX_A, AREA_A), _ann(2, 1, kp_b, BOX_B, AREA_B)])
    return gt, kp_a, kp_b


def test_perfect_predictions_give_ap_one():
    gt, kp_a, kp_b = _two_people()
    results = [_result(1, kp_a, 0.9), _result(1, kp_b, 0.8)]
    ours = _ours(gt, results)
    assert ours == _reference(gt, results)
    assert ours == pytest.approx([1, 1, 1, -1, 1, 1, 1, 1, -1, 1], abs=1e-12)  # no medium gt


def test_known_shifts_give_the_thresholds_they_pass():
    gt, kp_a, _ = _two_people()
    gt["annotations"] = gt["annotations"][:1]
    for dx in (7.0, 9.0, 14.0):  # OKS 0.81, 0.72, 0.54: 7, 5 and 1 of the 10 thresholds
        q = _hand_oks(dx, AREA_A)
        results = [_result(1, _shifted(kp_a, dx), 0.9)]
        ours = _ours(gt, results)
        assert ours == _reference(gt, results)
        ap = _ap_single(q)
        assert 0 < ap < 1
        at50, at75 = float(q >= 0.5), float(q >= 0.75)
        expected = [ap, at50, at75, -1, ap, ap, at50, at75, -1, ap]
        assert ours == pytest.approx(expected, abs=1e-12), (dx, q)


def test_missing_keypoints_are_not_scored():
    gt, kp_a, _ = _two_people()
    kp_a[[0, 1, 2, 3, 4, 15, 16], 2] = 0  # head and ankles not labelled
    gt["annotations"] = [_ann(1, 1, kp_a, BOX_A, AREA_A)]
    pred = kp_a.copy()
    pred[[0, 1, 2, 3, 4, 15, 16], :2] = (600.0, 400.0)  # wrong where nothing was labelled
    results = [_result(1, pred, 0.9)]
    ours = _ours(gt, results)
    assert ours == _reference(gt, results)
    assert ours[0] == pytest.approx(1.0, abs=1e-12)


def test_a_duplicate_is_a_false_positive():
    gt, kp_a, kp_b = _two_people()
    results = [_result(1, kp_a, 0.9), _result(1, kp_a, 0.8), _result(1, kp_b, 0.7)]
    ours = _ours(gt, results)
    assert ours == _reference(gt, results)
    # Ranked: TP, FP, TP -> recall 0.5, 0.5, 1 and precision 1, 1/2, 2/3; the interpolated
    # precision is 1 at the 51 recall points <= 0.5 and 2/3 at the 50 above.
    ap = (51 * 1.0 + 50 * (2 / 3)) / 101
    assert ours[0] == pytest.approx(ap, abs=1e-12)
    assert ours[5] == pytest.approx(1.0, abs=1e-12)  # recall is untouched
    # The same duplicate ranked last costs nothing.
    results[1]["score"] = 0.1
    assert _ours(gt, results)[0] == pytest.approx(1.0, abs=1e-12)


def test_a_crowd_region_absorbs_a_false_positive():
    gt, kp_a, _ = _two_people()
    crowd_box = (300.0, 40.0, 90.0, 180.0)
    crowd = _ann(2, 1, np.zeros((K, 3)), crowd_box, 16200.0, iscrowd=1)
    gt["annotations"] = [gt["annotations"][0], crowd]
    inside = _keypoints(12, crowd_box)  # a confident prediction on someone in the crowd
    results = [_result(1, inside, 0.95), _result(1, kp_a, 0.5)]
    ours = _ours(gt, results)
    assert ours == _reference(gt, results)
    assert ours[0] == pytest.approx(1.0, abs=1e-12)
    # Without the crowd region the same prediction is a false positive ranked first: the
    # interpolated precision is 1/2 at every recall point.
    no_crowd = _gt(gt["annotations"][:1])
    ours = _ours(no_crowd, results)
    assert ours == _reference(no_crowd, results)
    assert ours[0] == pytest.approx(0.5, abs=1e-12)


def test_area_ranges_split_small_medium_and_large():
    boxes = [(0, 0, 20, 20), (100, 0, 60, 60), (300, 0, 150, 150)]
    areas = [20.0**2, 50.0**2, 120.0**2]  # < 32^2, in [32^2, 96^2], > 96^2
    kp_s, kp_m, kp_l = (_keypoints(13 + i, box) for i, box in enumerate(boxes))
    kps = (kp_s, kp_m, kp_l)
    gt = _gt([_ann(i + 1, 1, kps[i], boxes[i], areas[i]) for i in range(3)])
    dx = 11.0
    q = _hand_oks(dx, areas[2])
    results = [_result(1, kp_m, 0.8), _result(1, _shifted(kp_l, dx), 0.7)]  # small one missed
    ours = _ours(gt, results)
    assert ours == _reference(gt, results)
    stats = dict(zip(STAT_NAMES, ours))
    assert stats["APm"] == pytest.approx(1.0, abs=1e-12)
    assert stats["ARm"] == pytest.approx(1.0, abs=1e-12)
    assert stats["ARl"] == pytest.approx(_ap_single(q), abs=1e-12)
    assert 0 < _ap_single(q) < 1
    # "all" counts the small person too: 2 of 3 people found at OKS 0.5 (AR50), 1 of 3 at 0.95.
    assert stats["AR50"] == pytest.approx(2 / 3, abs=1e-12)


def test_empty_results_score_zero():
    gt, _, _ = _two_people()
    stats = evaluate_keypoints(gt, [])
    assert [stats[n] for n in STAT_NAMES] == [0, 0, 0, -1, 0, 0, 0, 0, -1, 0]  # -1: no medium gt


def test_results_on_an_image_without_people_are_false_positives():
    gt, kp_a, kp_b = _two_people()
    results = [_result(2, kp_a, 0.99), _result(1, kp_a, 0.9), _result(1, kp_b, 0.8)]
    ours = _ours(gt, results)
    assert ours == _reference(gt, results)
    assert ours[0] == pytest.approx(2 / 3, abs=1e-12)  # precision 0, 1/2, 2/3 -> 2/3 everywhere


def test_custom_sigmas_from_sigmas_or_a_spec():
    names = ("nose", "left_eye", "right_eye", "tail")
    spec = KeypointSpec(
        name="test4",
        keypoints=names,
        flip_pairs=(("left_eye", "right_eye"),),
        parts={"all": names},
        skeleton=(),
        sigmas=(0.05, 0.03, 0.03, 0.1),
    )
    box = (10.0, 10.0, 80.0, 80.0)
    kp = _keypoints(16, box, k=4)
    gt = _gt([_ann(1, 1, kp, box, 4000.0)])
    results = [_result(1, _shifted(kp, 4.0), 0.9)]
    by_spec = _ours(gt, results, spec=spec)
    assert by_spec == _ours(gt, results, sigmas=spec.sigmas)
    assert by_spec == _reference(gt, results, sigmas=spec.sigmas)
    q = _hand_oks(4.0, 4000.0, sigmas=spec.sigmas)
    assert by_spec[0] == pytest.approx(_ap_single(q), abs=1e-12)
    wider = _ours(gt, results, sigmas=[0.2] * 4)
    assert wider[0] > by_spec[0]  # looser sigmas, higher AP: the sigmas are used
    with pytest.raises(DataError, match="4 keypoints"):
        evaluate_keypoints(gt, results)  # COCO's 17 default sigmas cannot score K = 4
    with pytest.raises(ValueError, match="not both"):
        evaluate_keypoints(gt, results, spec=spec, sigmas=spec.sigmas)


def test_inputs_are_left_unchanged(tmp_path):
    gt, kp_a, kp_b = _two_people()
    results = [_result(1, kp_a, 0.9), _result(1, kp_b, 0.8)]
    gt_before, results_before = copy.deepcopy(gt), copy.deepcopy(results)
    run = run_keypoint_eval(gt, results)
    assert gt == gt_before and results == results_before
    assert run.num_images == 2 and run.num_results == 2
    assert "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets= 20 ] = 1.000" in (
        run.summary
    )
    assert run.sigmas == tuple(COCO_SIGMAS)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    assert evaluate_keypoints(path, results) == run.stats  # a json path reads the same


def _bad(gt: dict, results: list[dict], match: str) -> None:
    with pytest.raises(DataError, match=match):
        evaluate_keypoints(gt, results, results_name="res.json")


def test_bad_results_name_the_file_and_the_entry():
    gt, kp_a, _ = _two_people()
    good = _result(1, kp_a, 0.9)
    _bad(gt, [good, {**good, "image_id": 42}], r"res\.json: result 1 \(image_id 42\).*image")
    _bad(gt, [{**good, "keypoints": good["keypoints"][:-3]}], r"res\.json: result 0.*51 numbers")
    _bad(gt, [{k: v for k, v in good.items() if k != "score"}], r"res\.json: result 0.*score")
    _bad(gt, [{**good, "score": float("nan")}], r"res\.json: result 0.*score")
    _bad(gt, [{**good, "category_id": 2}], r"res\.json: result 0.*category_id 2")
    _bad(gt, [{**good, "keypoints": ["a"] * 51}], r"res\.json: result 0.*keypoints")
    _bad(gt, {"image_id": 1}, r"res\.json: expected a list")


def test_bad_annotations_name_the_annotation():
    gt, kp_a, _ = _two_people()
    results = [_result(1, kp_a, 0.9)]
    for field, match in (
        ("num_keypoints", "annotation id 2: 'num_keypoints'"),
        ("area", "annotation id 2: 'area'"),
        ("bbox", "annotation id 2: 'bbox'"),
        ("iscrowd", "annotation id 2: 'iscrowd'"),
    ):
        broken = copy.deepcopy(gt)
        del broken["annotations"][1][field]
        _bad(broken, results, match)
    broken = copy.deepcopy(gt)
    broken["annotations"][1]["keypoints"] = broken["annotations"][1]["keypoints"][:48]
    _bad(broken, results, "annotation id 2: 'keypoints' must be 51 numbers")
    broken = copy.deepcopy(gt)
    broken["annotations"][1]["id"] = 1
    _bad(broken, results, "annotations id 1 appears twice")
    broken = copy.deepcopy(gt)
    broken["annotations"][0]["id"] = 0
    _bad(broken, results, "annotation id 0: pycocotools cannot match")
    broken = copy.deepcopy(gt)
    broken["annotations"][1]["image_id"] = 5
    _bad(broken, results, "annotation id 2: image_id 5")
    _bad({"annotations": []}, results, "'images' must be a list")
    with pytest.raises(DataError, match="missing.json: annotations json not found"):
        evaluate_keypoints("missing.json", results)
