"""Top-down evaluation: OKS AP through the Evaluator (equal to pycocotools' COCOeval on the same
predictions), the box source named in every AP line and file, the flip test by the codec's own
rule, model selection by AP in the trainer, and evaluation adopting a top-down checkpoint's input
width and codec."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from animalpose.datasets.codecs.dark import DarkHeatmap
from animalpose.datasets.codecs.msra import MSRAHeatmap
from animalpose.datasets.codecs.udp import UDPHeatmap
from animalpose.datasets.formats.coco import load_coco_keypoints, load_detections
from animalpose.datasets.formats.topdown import TopDownKeypoints
from animalpose.datasets.keypoints import COCO17
from animalpose.datasets.transforms.normalize import Normalizer
from animalpose.datasets.transforms.topdown import TopDownCrop
from animalpose.evaluation.evaluator import Evaluator, keypoint_results, oks_target
from animalpose.evaluation.inference import EvalResult, flip_back, flip_rule, predict
from animalpose.evaluation.oks import STAT_NAMES, run_keypoint_eval
from animalpose.train import cli
from animalpose.train.checkpoint import BEST_NAME
from animalpose.train.config import Config
from animalpose.train.config_io import config_to_dict
from animalpose.train.trainer import EpochStats, Trainer, selection_score

INPUT = (192, 256)  # (w, h)
HEATMAP = (48, 64)  # stride 4: SimpleBaseline/HRNet's 1/4
IMAGE = (400, 300)  # (W, H) of every image
IDENTITY = Normalizer(mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
#: COCO17 keypoints of an upright figure, (x, y) relative to its top-left, 2x the size of
#: tests/datasets/formats/test_topdown.py's.
LAYOUT = 2.0 * np.array(
    [(20, 8), (22, 6), (18, 6), (25, 8), (15, 8), (28, 20), (12, 20), (32, 34), (8, 34),
     (34, 46), (6, 46), (25, 50), (15, 50), (26, 66), (14, 66), (27, 82), (13, 82)],
    dtype=np.float64,
)  # fmt: skip
#: Annotation id -> (image id, top-left of the figure, unlabelled keypoints). Image 1 holds two
#: people far apart, image 3 one with its face and a wrist unlabelled.
PEOPLE = {
    1: (1, (30, 40), ()),
    2: (1, (250, 60), ()),
    3: (2, (150, 50), ()),
    4: (3, (100, 30), ("nose", "left_eye", "right_eye", "left_wrist")),
}
#: Box margin around the labelled keypoints, pixels.
MARGIN = 8.0


def _annotation(ann_id: int) -> tuple[int, np.ndarray, list[float]]:
    """(image id, (17, 3) keypoints x, y, v, bbox xywh) of annotation ``ann_id``."""
    image_id, origin, unlabelled = PEOPLE[ann_id]
    kp = np.concatenate([LAYOUT + origin, np.full((17, 1), 2.0)], axis=1)
    for name in unlabelled:
        kp[COCO17.index(name)] = 0.0
    xy = kp[kp[:, 2] > 0, :2]
    lo, hi = xy.min(0) - MARGIN, xy.max(0) + MARGIN
    return image_id, kp, [*lo.tolist(), *(hi - lo).tolist()]


def write_coco(root: Path, *, extra_category: bool = False) -> Path:
    """Three blank images and their COCO keypoint json (one crowd annotation, skipped); with
    ``extra_category`` also a second category with one annotation the data set does not read."""
    images = []
    for image_id in (1, 2, 3):
        name = f"{image_id:03d}.png"
        cv2.imwrite(str(root / name), np.zeros((IMAGE[1], IMAGE[0], 3), np.uint8))
        images.append({"id": image_id, "file_name": name, "width": IMAGE[0], "height": IMAGE[1]})
    annotations = []
    for ann_id in PEOPLE:
        image_id, kp, bbox = _annotation(ann_id)
        annotations.append(
            {
                "id": ann_id,
                "image_id": image_id,
                "category_id": 1,
                "keypoints": kp.reshape(-1).tolist(),
                "num_keypoints": int((kp[:, 2] > 0).sum()),
                "bbox": bbox,
                "area": bbox[2] * bbox[3],
                "iscrowd": 0,
            }
        )
    annotations.append(dict(annotations[2], id=9, iscrowd=1))
    categories = [{"id": 1, "name": "person", "keypoints": list(COCO17.keypoints)}]
    if extra_category:
        categories.append({"id": 2, "name": "robot", "keypoints": list(COCO17.keypoints)})
        annotations.append(dict(annotations[0], id=7, category_id=2))
    path = root / "person_keypoints_val.json"
    path.write_text(
        json.dumps({"images": images, "annotations": annotations, "categories": categories})
    )
    return path


class Oracle(nn.Module):
    """A "perfect" model: the codec's targets of the keypoints of ``table`` (image pixels, one row
    per data set index) moved into each crop by its ``meta["matrix"]`` and by ``shift`` input
    pixels; for the mirrored half of a flip-test batch, the targets of the mirrored keypoints
    (x -> W - 1 - x, channels swapped by the spec's flip index). ``Feeding`` hands it the meta."""

    def __init__(self, codec, table: np.ndarray, shift=(0.0, 0.0)) -> None:
        super().__init__()
        self.codec, self.table = codec, torch.from_numpy(table)
        self.shift = torch.tensor(shift)
        self.meta: dict | None = None
        self.weight = nn.Parameter(torch.zeros(()))  # a parameter, as a model has

    def _targets(self, kp: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(kp[..., :2].float(), kp[..., 2].float())[0]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        rows = self.table[self.meta["index"]]
        matrix = self.meta["matrix"].double()
        xy = rows[..., :2] @ matrix[:, :, :2].transpose(1, 2) + matrix[:, None, :, 2]
        kp = torch.cat([xy + self.shift, rows[..., 2:]], dim=-1)
        heatmaps = self._targets(kp)
        if x.shape[0] == 2 * kp.shape[0]:  # the flip test's mirrored copy follows
            mirrored = kp[:, COCO17.flip_index].clone()
            mirrored[..., 0] = INPUT[0] - 1 - mirrored[..., 0]
            heatmaps = torch.cat([heatmaps, self._targets(mirrored)])
        return [heatmaps + 0 * self.weight]


class Feeding:
    """Iterates ``loader`` and hands each batch's meta to ``model`` before it is evaluated."""

    def __init__(self, loader, model: Oracle) -> None:
        self.loader, self.model = loader, model

    def __iter__(self):
        for batch in self.loader:
            self.model.meta = batch["meta"]
            yield batch


def _nearest_person(image_id: int, bbox: np.ndarray) -> int:
    """The annotation of ``image_id`` whose box centre is nearest ``bbox``'s (xywh)."""

    def distance(ann_id: int) -> float:
        box = np.asarray(_annotation(ann_id)[2])
        return float(np.linalg.norm(box[:2] + box[2:] / 2 - (bbox[:2] + bbox[2:] / 2)))

    return min((i for i in PEOPLE if PEOPLE[i][0] == image_id), key=distance)


def make_evaluator(
    root: Path,
    codec,
    *,
    flip: bool = False,
    shift=(0.0, 0.0),
    detections: list[dict] | None = None,
    extra_category: bool = False,
) -> Evaluator:
    path = write_coco(root, extra_category=extra_category)
    data = load_coco_keypoints(path, spec=COCO17, categories=["person"])
    boxes, table = None, np.stack([_annotation(i)[1] for i in PEOPLE])
    if detections is not None:
        (root / "dets.json").write_text(json.dumps(detections))
        boxes = load_detections(root / "dets.json", images=data, score_threshold=0.5)
        table = np.stack([_annotation(_nearest_person(b.image_id, b.bbox))[1] for b in boxes])
    unbiased = isinstance(codec, UDPHeatmap)
    dataset = TopDownKeypoints(
        annotations=data,
        image_root=root,
        augmenter=TopDownCrop(INPUT, unbiased=unbiased),
        seed=0,
        detections=boxes,
    )
    model = Oracle(codec, table, shift)
    return Evaluator(
        model=model,
        dataset=dataset,
        loader=Feeding(DataLoader(dataset, batch_size=2), model),
        codec=codec,
        normalizer=IDENTITY,
        spec=COCO17,
        device=torch.device("cpu"),
        name="coco",
        split="val",
        flip=flip,
        progress=False,
        detections=None if detections is None else str(root / "dets.json"),
        det_score=0.5,
    )


def cocoeval_stats(gt_path: Path, results: list[dict]) -> list[float]:
    """pycocotools' COCOeval called directly (default COCO sigmas), its ten stats."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_path))
        ev = COCOeval(gt, gt.loadRes(results), "keypoints")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return [float(v) for v in ev.stats]


def by_hand_results(val: EvalResult, dataset: TopDownKeypoints) -> list[dict]:
    """COCO results of every row, no NMS (the people of this data set are far apart, so OKS-NMS
    keeps them all): keypoints (x, y, peak), score = box score x mean of the peaks above 0.2."""
    out = []
    for row, index in enumerate(val.indices):
        peaks = val.scores[row].astype(np.float64)
        confident = peaks[peaks > 0.2]
        score = dataset.instances[index].score * (confident.mean() if confident.size else 0.0)
        keypoints = np.concatenate([val.preds[row], peaks[:, None]], axis=1)
        out.append(
            {
                "image_id": dataset.instances[index].image_id,
                "category_id": 1,
                "keypoints": keypoints.reshape(-1).tolist(),
                "score": float(score),
            }
        )
    return out


# -- OKS AP ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "codec",
    [
        MSRAHeatmap(INPUT, HEATMAP, sigma=2.0),
        MSRAHeatmap(INPUT, HEATMAP, sigma=2.0, convention="msra"),
        DarkHeatmap(INPUT, HEATMAP, sigma=2.0),
        UDPHeatmap(INPUT, HEATMAP, sigma=2.0),
    ],
    ids=["pixel-area", "msra", "dark", "udp"],
)
def test_perfect_model_scores_ap_1_equal_to_cocoeval(tmp_path, codec):
    ev = make_evaluator(tmp_path, codec)
    val = ev.evaluate()
    assert val.oks is not None and list(val.oks) == list(STAT_NAMES)
    assert val.oks["AP"] == 1.0 and val.oks["AR"] == 1.0
    # rows carry the COCO ids, box scores (ground truth: 1) and the padded boxes' areas
    assert val.image_ids.tolist() == [1, 1, 2, 3]
    assert val.box_scores.tolist() == [1.0] * 4
    np.testing.assert_allclose(val.areas, ev.dataset.sizes.prod(axis=1))
    expected = cocoeval_stats(ev.dataset.annotations.path, by_hand_results(val, ev.dataset))
    assert [val.oks[n] for n in STAT_NAMES] == expected
    direct = run_keypoint_eval(ev.dataset.annotations.path, by_hand_results(val, ev.dataset))
    assert direct.stats == val.oks


def test_shifted_model_scores_below_1_and_equals_cocoeval(tmp_path):
    codec = MSRAHeatmap(INPUT, HEATMAP, sigma=2.0)
    ev = make_evaluator(tmp_path, codec, shift=(8.0, -4.0))
    val = ev.evaluate()
    assert 0.0 <= val.oks["AP"] < 1.0
    expected = cocoeval_stats(ev.dataset.annotations.path, by_hand_results(val, ev.dataset))
    assert [val.oks[n] for n in STAT_NAMES] == expected
    # (8, -4) input pixels are (2, -1) heatmap pixels: the targets' rounded centres move by
    # exactly that, so the predictions move by the shift mapped back into the image
    perfect = make_evaluator(tmp_path, codec).evaluate()
    matrices = np.stack([ev.dataset[i]["meta"]["matrix"] for i in range(len(ev.dataset))])
    delta = np.linalg.solve(matrices[:, :, :2], np.broadcast_to([8.0, -4.0], (4, 2))[..., None])
    delta = delta[..., 0]
    labelled = np.stack([_annotation(i)[1][:, 2] > 0 for i in PEOPLE])
    moved = perfect.preds + delta[:, None, :]
    np.testing.assert_allclose(val.preds[labelled], moved[labelled], atol=1e-6)


def test_categories_not_read_are_left_out_of_the_ground_truth(tmp_path):
    ev = make_evaluator(tmp_path, MSRAHeatmap(INPUT, HEATMAP, sigma=2.0), extra_category=True)
    assert ev.dataset.annotations.categories == {1: "person"} and len(ev.dataset) == 4
    target = oks_target(ev.dataset, COCO17)
    assert isinstance(target.gt, dict)
    assert [c["id"] for c in target.gt["categories"]] == [1]
    assert all(a["category_id"] == 1 for a in target.gt["annotations"])
    assert ev.evaluate().oks["AP"] == 1.0  # the robot annotation would be a miss otherwise


def test_images_left_out_by_a_limit_are_left_out_of_the_ground_truth(tmp_path):
    ev = make_evaluator(tmp_path, MSRAHeatmap(INPUT, HEATMAP, sigma=2.0))
    data = ev.dataset.annotations
    # as data.val_limit=3 does (registry: whole images): images 1 and 2, samples 0..2
    limited = dataclasses.replace(
        data,
        images={i: im for i, im in data.images.items() if i < 3},
        instances=data.instances[:3],
    )
    ev.dataset.annotations, ev.dataset.instances = limited, limited.instances
    target = oks_target(ev.dataset, COCO17)
    assert [im["id"] for im in target.gt["images"]] == [1, 2]
    assert sorted(a["id"] for a in target.gt["annotations"]) == [1, 2, 3, 9]  # 9: the crowd
    assert ev.evaluate().oks["AP"] == 1.0  # person 4 of image 3 would be a miss otherwise


def test_duplicate_detections_are_suppressed_and_the_box_source_is_named(tmp_path, capsys):
    dets = []
    for ann_id in PEOPLE:
        image_id, _, (x, y, w, h) = _annotation(ann_id)
        dets.append({"image_id": image_id, "category_id": 1, "bbox": [x - 3, y + 2, w + 4, h - 2],
                     "score": 0.9})  # fmt: skip
    dets.append(dict(dets[0], bbox=[dets[0]["bbox"][0] + 2, *dets[0]["bbox"][1:]], score=0.7))
    dets.append(dict(dets[1], score=0.2))  # below --det-score 0.5: not read
    ev = make_evaluator(tmp_path, MSRAHeatmap(INPUT, HEATMAP, sigma=2.0), detections=dets)
    assert len(ev.dataset) == 5 and ev.dataset.box_source == "detections"
    val = ev.evaluate()
    np.testing.assert_allclose(val.box_scores, [0.9, 0.9, 0.9, 0.9, 0.7])
    results = keypoint_results(val, ev.oks_target())
    assert len(results) == 4  # the duplicate of person 1 (OKS ~ 1 > 0.9) is suppressed
    assert sorted(r["score"] for r in results) == pytest.approx([0.9] * 4)
    assert val.oks == run_keypoint_eval(ev.dataset.annotations.path, results).stats
    assert val.oks["AP"] == 1.0

    out_dir = tmp_path / "out"
    ev.report(out_dir, checkpoint="ckpt.pth.tar", animal="person", legacy_input=False)
    printed = capsys.readouterr().out
    boxes = f"detection boxes ({tmp_path / 'dets.json'}, score >= 0.5)"
    assert f"OKS AP with {boxes} (pycocotools COCOeval" in printed
    assert "coco val split, 5 boxes on 3 images" in printed
    doc = json.loads((out_dir / "oks_results.json").read_text())
    assert {n: doc[n] for n in STAT_NAMES} == val.oks
    assert doc["boxes"] == boxes and doc["box_source"] == "detections"
    assert doc["annotations"] == str(ev.dataset.annotations.path.resolve())
    written = json.loads((out_dir / "keypoints_val_results.json").read_text())
    assert written == json.loads(json.dumps(results))
    assert doc["results"] == str((out_dir / "keypoints_val_results.json").resolve())
    assert (out_dir / "pck_results.json").is_file()  # per-keypoint PCK as on the animal side


def test_ground_truth_boxes_are_named_in_the_tables(tmp_path, capsys):
    ev = make_evaluator(tmp_path, MSRAHeatmap(INPUT, HEATMAP, sigma=2.0))
    ev.print_tables(ev.evaluate())
    printed = capsys.readouterr().out
    assert "OKS AP with ground-truth boxes (pycocotools COCOeval" in printed
    assert "PCK@0.05, precise metric" in printed
    header, values = printed.strip().splitlines()[-2:]
    assert header.split()[0] == "AP" and values.split()[0] == "100.0"


def test_mpii_style_annotations_skip_ap_with_the_reason(tmp_path, capsys):
    ev = make_evaluator(tmp_path, MSRAHeatmap(INPUT, HEATMAP, sigma=2.0))
    ev.dataset.annotations.path.write_text(json.dumps([{"image": "001.png"}]))  # MPII: a list
    val = ev.evaluate()
    assert val.oks is None
    ev.print_tables(val)
    assert "OKS AP with ground-truth boxes: not computed (" in capsys.readouterr().out


# -- flip test by the codec's rule ---------------------------------------------------------------


@pytest.mark.parametrize(
    "codec",
    [
        MSRAHeatmap(INPUT, HEATMAP),
        MSRAHeatmap(INPUT, HEATMAP, convention="msra"),
        DarkHeatmap(INPUT, HEATMAP),
        UDPHeatmap(INPUT, HEATMAP),
        UDPHeatmap(INPUT, HEATMAP, target="combined"),
    ],
    ids=["pixel-area", "msra", "dark", "udp", "udp-combined"],
)
def test_flip_rule_applies_the_codecs_flip_back_exactly(codec):
    channels = 17 * getattr(codec, "channels_per_keypoint", 1)
    heatmaps = torch.randn(3, channels, 7, HEATMAP[0], generator=torch.Generator().manual_seed(0))
    rule = flip_rule(codec, COCO17.flip_index)
    expected = codec.flip_back(heatmaps, COCO17.flip_index)
    assert torch.equal(rule(heatmaps), expected)
    assert torch.equal(rule(heatmaps[:1]), expected[:1])  # compiled once per shape, reused


def test_flip_rule_of_the_default_codec_is_todays_flip_back_bit_for_bit():
    heatmaps = torch.rand(2, 17, 16, 12, generator=torch.Generator().manual_seed(1))
    index = torch.as_tensor(COCO17.flip_index)
    old = flip_back(heatmaps, index)
    assert torch.equal(flip_rule(MSRAHeatmap((48, 64), (12, 16)), COCO17.flip_index)(heatmaps), old)
    assert torch.equal(flip_rule(None, COCO17.flip_index)(heatmaps), old)
    shifted = flip_rule(MSRAHeatmap((48, 64), (12, 16), convention="msra"), COCO17.flip_index)
    moved = shifted(heatmaps)
    assert torch.equal(moved[..., 1:], old[..., :-1]) and torch.equal(moved[..., 0], old[..., 0])


def test_flip_test_with_msras_shift_keeps_a_perfect_model_perfect(tmp_path):
    codec = MSRAHeatmap(INPUT, HEATMAP, sigma=2.0, convention="msra")
    plain = make_evaluator(tmp_path, codec).evaluate()
    flipped = make_evaluator(tmp_path, codec, flip=True).evaluate()
    assert flipped.oks["AP"] == 1.0
    # The one-pixel shift puts the mirrored peak back where the plain one is, up to MSRA's own
    # rounding: the averaged heatmap decodes within one heatmap pixel (4 input pixels) ...
    scale = make_evaluator(tmp_path, codec).dataset.sizes / np.array(INPUT)
    labelled = np.stack([_annotation(i)[1][:, 2] > 0 for i in PEOPLE])
    err = np.abs(flipped.preds - plain.preds)
    assert (err / scale[:, None, :] <= 4 + 1e-6)[labelled].all()


class _Stored(nn.Module):
    """Returns ``heatmaps`` (2B, K, h, w) whatever the input: plain half, then mirrored half."""

    def __init__(self, heatmaps: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("heatmaps", heatmaps)

    def forward(self, x):
        return [self.heatmaps]


@pytest.mark.parametrize("convention", ["pixel-area", "msra"])
def test_predict_averages_with_the_codecs_flip_back(convention):
    codec = MSRAHeatmap(INPUT, HEATMAP, convention=convention)
    heatmaps = torch.rand(4, 17, HEATMAP[1], HEATMAP[0], generator=torch.Generator().manual_seed(2))
    images = torch.zeros(2, 3, INPUT[1], INPUT[0])
    out = predict(_Stored(heatmaps), images, flip_index=COCO17.flip_index, codec=codec)
    expected = 0.5 * (heatmaps[:2] + codec.flip_back(heatmaps[2:], COCO17.flip_index))
    assert torch.equal(out, expected)


# -- the trainer selects by AP ------------------------------------------------------------------


def _val(ap: float | None, legacy: float) -> EvalResult:
    oks = None if ap is None else dict.fromkeys(STAT_NAMES, ap)
    return EvalResult(
        legacy=np.full(17, legacy),
        precise=np.full(17, legacy),
        precise_counts=np.ones(17, np.int64),
        preds=np.zeros((1, 17, 2)),
        scores=np.zeros((1, 17), np.float32),
        indices=np.zeros(1, np.int64),
        oks=oks,
    )


class _Writer:
    def __init__(self) -> None:
        self.scalars: dict[str, float] = {}

    def add_scalar(self, tag, value, step) -> None:
        self.scalars[tag] = value

    def flush(self) -> None:
        pass


class _Boxes:
    def box_source(self) -> str:
        return "ground-truth boxes"


def _stub_trainer(tmp_path: Path, results: list[EvalResult]) -> tuple[Trainer, list[bool]]:
    """A Trainer whose epoch parts are stubs: validation returns ``results`` in turn; the
    ``is_best`` of every saved epoch is recorded (and ``model_best`` written when true)."""
    trainer = Trainer.__new__(Trainer)
    saved: list[bool] = []
    trainer.out_dir, trainer.best_acc, trainer.world_size, trainer.is_main = tmp_path, 0.0, 1, True
    trainer.spec, trainer.writer, trainer.evaluator = COCO17, _Writer(), _Boxes()
    trainer.optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    trainer.scheduler = torch.optim.lr_scheduler.StepLR(trainer.optimizer, 10)
    trainer.train_epoch = lambda epoch: EpochStats(1.0, 0.5, 10, 1.0)
    trainer.check_finite = lambda epoch, loss: None
    trainer.validate = lambda epoch: results[epoch]
    trainer.log_row = lambda *args: []

    def save(epoch, val, is_best, row):
        saved.append(is_best)
        if is_best:
            (tmp_path / BEST_NAME).write_text(str(epoch))

    trainer._save = save
    return trainer, saved


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # stubbed optimiser steps
def test_model_best_follows_ap_on_topdown_data(tmp_path, capsys):
    # legacy PCK says epoch 3, AP says epoch 2
    trainer, saved = _stub_trainer(tmp_path, [_val(0.3, 0.9), _val(0.5, 0.1), _val(0.4, 0.95)])
    summaries = [trainer._fit_epoch(epoch, None) for epoch in range(3)]
    assert saved == [True, True, False] and trainer.best_acc == 0.5
    assert (tmp_path / BEST_NAME).read_text() == "1"
    assert summaries[-1]["val_ap"] == 0.4 and summaries[-1]["best_acc"] == 0.5
    assert summaries[-1]["val_boxes"] == "ground-truth boxes"
    assert trainer.writer.scalars["epoch/val_ap"] == 0.4
    assert trainer.writer.scalars["epoch/val_ap50"] == 0.4
    assert trainer.writer.scalars["epoch/val_pck_legacy"] == 0.95
    assert "AP 40.00 AP50 40.00 (ground-truth boxes)" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:Detected call of:UserWarning")  # stubbed optimiser steps
def test_model_best_follows_legacy_pck_without_ap(tmp_path, capsys):
    trainer, saved = _stub_trainer(tmp_path, [_val(None, 0.3), _val(None, 0.2), _val(None, 0.6)])
    summaries = [trainer._fit_epoch(epoch, None) for epoch in range(3)]
    assert saved == [True, False, True] and trainer.best_acc == 0.6
    assert "val_ap" not in summaries[-1] and "epoch/val_ap" not in trainer.writer.scalars
    assert " AP " not in capsys.readouterr().out
    assert selection_score(_val(None, float("nan"))) == 0.0
    assert selection_score(_val(0.25, 0.9)) == 0.25


# -- evaluation adopts a top-down checkpoint's input -------------------------------------------


def test_evaluation_adopts_the_checkpoints_input_width_and_codec(tmp_path):
    saved = config_to_dict(Config())
    saved["data"].update(dataset="coco", inp_res=256, inp_width=192, out_res=64, codec="udp")
    path = tmp_path / "model_best.pth.tar"
    torch.save({"epoch": 3, "config": saved, "state_dict": {}}, path)
    cfg = Config()
    cfg.data.dataset, cfg.run.resume = "coco", str(path)
    ns = argparse.Namespace(set=[], config=None)
    adopted = cli._adopt_checkpoint_model(cfg, ns)
    assert (adopted.data.inp_width, adopted.data.codec) == (192, "udp")
    assert (adopted.data.inp_res, adopted.data.out_res) == (256, 64)
    ns_given = argparse.Namespace(set=["data.codec=dark"], config=None)
    assert cli._adopt_checkpoint_model(cfg, ns_given).data.codec == "pixel-area"  # user's wins
