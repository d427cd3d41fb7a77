"""Bottom-up evaluation (evaluation/bottomup.py): heatmap pixels back to image pixels, the flip
test's equivariance and multi-scale tags, and grouping -> results -> COCOeval, which gives
AP 1.0 for perfect predictions built from the ground truth (and less for wrong ones)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from animalpose.datasets.codecs.msra import MSRAHeatmap, flip_heatmaps
from animalpose.datasets.formats.registry import build_dataset
from animalpose.datasets.generator.fixtures import make_coco_fixture
from animalpose.datasets.keypoints import COCO17
from animalpose.datasets.transforms.bottomup import bottomup_matrix, bottomup_targets
from animalpose.evaluation.bottomup import (
    BOX_SOURCE,
    BottomUpEvaluator,
    bottomup_maps,
    image_people,
)
from animalpose.evaluation.evaluator import KEYPOINT_RESULTS_JSON
from animalpose.evaluation.inference import flip_rule
from animalpose.evaluation.oks import load_json
from animalpose.evaluation.score import OKS_RESULTS_JSON
from animalpose.train.ae_loss import AELoss
from animalpose.train.models.associative import AssociativeEmbedding

#: Perfect predictions are as exact as the heatmap grid: at 512 px (128 x 128 heatmaps) the
#: fixture's 160 px wide images have 1.25 image px per heatmap cell, so every person's OKS is
#: above 0.95 (the highest COCOeval threshold) even for the eyes' sigma of 0.025.
S = 512
#: Tag of person p at its keypoints: far apart (> TAG_THRESHOLD 1) for distinct people.
TAG_STEP = 5.0


@pytest.fixture(scope="module")
def people(tmp_path_factory):
    root = tmp_path_factory.mktemp("people")
    make_coco_fixture(root, images=2)
    return root


def valid_set(root, size: int = S):
    return build_dataset(
        "coco_bottomup", split="valid", root=root, animal="horse", input_size=size, spec=COCO17,
        seed=0, scale_factor=0.25, rot_factor=30.0, augment_backend="fused",
    )  # fmt: skip


class Oracle(nn.Module):
    """Returns precomputed first outputs (2K, h, w) in dataset order, and for the mirrored half
    of a flip-test batch their exact mirror: what a perfectly equivariant model predicts."""

    def __init__(self, maps: list[torch.Tensor], flip: bool) -> None:
        super().__init__()
        self.maps, self.flip, self.next = maps, flip, 0
        k = COCO17.num_keypoints
        self.index = np.concatenate([COCO17.flip_index, COCO17.flip_index + k])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        batch = x.shape[0] // 2 if self.flip else x.shape[0]
        out = torch.stack(self.maps[self.next : self.next + batch])
        self.next += batch
        if self.flip:
            out = torch.cat([out, flip_heatmaps(out, self.index, shift=False)])
        return [out]


def perfect_maps(dataset, codec, offset: float = 0.0) -> list[torch.Tensor]:
    """(2K, h, w) per sample: the AE targets of its people (moved ``offset`` input px right),
    and tag maps holding p x TAG_STEP at each keypoint cell of person p."""
    maps = []
    for index in range(len(dataset)):
        kp = dataset[index]["keypoints"][None].clone()
        kp[..., 0] += offset * (kp[..., 2] > 0)
        targets = bottomup_targets(codec, kp)
        k = kp.shape[2]
        w, h = codec.heatmap_size
        tags = torch.zeros(k, h, w)
        for p, person in enumerate(targets.cells[0]):
            for j, (x, y) in enumerate(person.tolist()):
                if targets.visible[0, p, j]:
                    tags[j, y, x] = p * TAG_STEP
        maps.append(torch.cat([targets.heatmaps[0], tags]))
    return maps


def evaluator(root, *, flip: bool, offset: float = 0.0) -> BottomUpEvaluator:
    dataset = valid_set(root)
    codec = MSRAHeatmap((S, S), (S // 4, S // 4), sigma=2.0)
    return BottomUpEvaluator(
        model=Oracle(perfect_maps(dataset, codec, offset), flip),
        dataset=dataset,
        loader=torch.utils.data.DataLoader(dataset, batch_size=2),
        codec=codec,
        normalizer=lambda images: images.float() / 255,
        spec=COCO17,
        device=torch.device("cpu"),
        name="coco_bottomup",
        split="valid",
        flip=flip,
        loss_fn=AELoss(),
        progress=False,
    )


@pytest.mark.parametrize("flip", [False, True])
def test_perfect_predictions_score_ap_one(people, flip):
    """Heatmaps and tags built from the ground truth -> group -> image pixels -> COCO results
    -> COCOeval: every person found (2 per image), AP and AR 1.0, loss ~0 (exact heatmaps,
    no pull, push exp(-25))."""
    ev = evaluator(people, flip=flip)
    val = ev.evaluate()
    ids = ev.dataset.image_ids.tolist()
    assert len(val.preds) == 4 and sorted(val.image_ids.tolist()) == sorted(ids * 2)
    assert val.oks["AP"] == pytest.approx(1.0) and val.oks["AR"] == pytest.approx(1.0)
    assert val.loss == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(val.box_scores, 1.0)  # every keypoint at a Gaussian's peak
    results = ev.results(val)
    assert [len(r["keypoints"]) for r in results] == [51] * 4
    assert {r["category_id"] for r in results} == {1}


def test_predictions_off_by_a_few_pixels_score_less(people):
    """The same people moved 12 input px (3.75 image px) right: AP falls well below 1, so the
    test above can fail."""
    val = evaluator(people, flip=False, offset=12.0).evaluate()
    assert len(val.preds) == 4 and val.oks["AP"] < 0.5


def test_report_prints_the_ap_row_and_writes_both_files(people, tmp_path, capsys):
    val = evaluator(people, flip=False).report(tmp_path, checkpoint="oracle")
    text = capsys.readouterr().out
    assert f"OKS AP {BOX_SOURCE}" in text and "4 people on 2 images" in text
    results = load_json(tmp_path / KEYPOINT_RESULTS_JSON.format(split="valid"), "results")
    assert len(results) == 4
    scores = load_json(tmp_path / OKS_RESULTS_JSON, "scores")
    assert scores["AP"] == pytest.approx(val.oks["AP"]) and scores["boxes"] == BOX_SOURCE


def test_image_people_maps_heatmap_cells_to_image_pixels():
    """One person, keypoints 0 and 1 detected at cells (3, 5) and (10, 4) of a 16 x 16 map
    (64 px input of a 160 x 120 image), keypoint 2 nowhere: pixel-area input x = 4 cell + 1.5,
    image x = (input + 0.5) / 0.4 - 0.5, y likewise minus the 8 rows of padding."""
    codec = MSRAHeatmap((64, 64), (16, 16), sigma=1.0)
    heatmaps = torch.zeros(3, 16, 16)
    heatmaps[0, 5, 3], heatmaps[1, 4, 10] = 1.0, 0.8
    tags = torch.zeros(3, 16, 16)
    keypoints, scores = image_people(
        heatmaps, tags, codec=codec, matrix=bottomup_matrix((160, 120), 64)
    )
    assert keypoints.shape == (1, 3, 3)
    inputs = np.array([[4 * 3 + 1.5, 4 * 5 + 1.5], [4 * 10 + 1.5, 4 * 4 + 1.5]])
    image = np.stack([(inputs[:, 0] + 0.5) / 0.4 - 0.5, (inputs[:, 1] - 8 + 0.5) / 0.4 - 0.5], 1)
    np.testing.assert_allclose(keypoints[0, :2, :2], image)
    np.testing.assert_allclose(keypoints[0, :, 2], [1.0, 0.8, 0.0])
    np.testing.assert_array_equal(keypoints[0, 2, :2], [0.0, 0.0])  # missing: (0, 0), score 0
    assert scores == pytest.approx([1.8 / 3])


def test_flip_test_is_equivariant_and_scales_add_tag_dimensions():
    """With the flip test, the maps of a mirrored image are the un-mirrored maps of the image
    (heatmaps mirrored with left/right swapped; the two tag dimensions trade places), for any
    model. Two scales and the flip give 4 tag dimensions on the codec's heatmap size."""
    torch.manual_seed(0)
    model = AssociativeEmbedding(num_keypoints=17, width=4, stem_channels=8).eval()
    codec = MSRAHeatmap((64, 64), (16, 16), sigma=2.0)
    x = torch.randn(1, 3, 64, 64)
    options = dict(num_keypoints=17, heatmap_size=(16, 16), flip_index=COCO17.flip_index)
    with torch.no_grad():
        ((plain_heat, plain_tags),) = bottomup_maps(model, x, codec=codec, **options)[0]
        ((mirror_heat, mirror_tags),) = bottomup_maps(model, x.flip(-1), codec=codec, **options)[0]
        maps, outputs = bottomup_maps(model, x, codec=codec, scales=(1.0, 0.5), **options)
    unflip = flip_rule(codec, COCO17.flip_index)
    torch.testing.assert_close(mirror_heat, unflip(plain_heat[None])[0], atol=1e-5, rtol=1e-4)
    for a, b in ((0, 1), (1, 0)):
        torch.testing.assert_close(
            mirror_tags[..., a], unflip(plain_tags[None, ..., b])[0], atol=1e-5, rtol=1e-4
        )
    heat, tags = maps[0]
    assert heat.shape == (17, 16, 16) and tags.shape == (17, 16, 16, 4)
    assert outputs[0].shape == (1, 34, 16, 16)  # the plain scale-1 outputs, for the loss


def test_image_people_agree_with_the_inverse_matrix_of_a_sample(people):
    """A perfect sample's people come back where the json has them (within the heatmap grid)."""
    dataset = valid_set(people, size=64)
    codec = MSRAHeatmap((64, 64), (16, 16), sigma=2.0)
    maps = perfect_maps(dataset, codec)[0]
    sample = dataset[0]
    keypoints, _ = image_people(
        maps[:17], maps[17:], codec=codec, matrix=sample["meta"]["matrix"], order=None
    )
    truth = sample["meta"]["keypoints_image"][:2]
    # the fixture's two people stand side by side: match them by their mean x
    found = keypoints[np.argsort(keypoints[..., 0].mean(-1))]
    truth = truth[np.argsort(truth[..., 0].mean(-1))]
    cell = 4 / (64 / 160)  # image pixels per heatmap cell
    assert found.shape == (2, 17, 3) and (found[..., 2] == 1).all()
    assert np.abs(found[..., :2] - truth[..., :2]).max() <= cell / 2 + 1e-6
