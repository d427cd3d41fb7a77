"""Bottom-up evaluation (evaluation/bottomup.py): heatmap pixels back to image pixels, the flip
test's equivariance and multi-scale tags, HigherHRNet's merge of its two outputs, and grouping
-> results -> COCOeval, which gives AP 1.0 for perfect predictions built from the ground truth
(and less for wrong ones), also with the higher head, at input resolution and at test scales
(0.5, 1, 2)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
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
    merge_outputs,
)
from animalpose.evaluation.evaluator import KEYPOINT_RESULTS_JSON
from animalpose.evaluation.inference import flip_rule
from animalpose.evaluation.oks import load_json
from animalpose.evaluation.score import OKS_RESULTS_JSON
from animalpose.train.ae_loss import AELoss
from animalpose.train.models.associative import AssociativeEmbedding, HigherHRNet

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


def perfect_maps(dataset, codec, offset: float = 0.0, tag_radius: int = 0) -> list[torch.Tensor]:
    """(2K, h, w) per sample: the AE targets of its people (moved ``offset`` input px right),
    and tag maps holding p x TAG_STEP at each keypoint cell of person p (and the cells up to
    ``tag_radius`` away, so that resized tag maps keep the tag around the peak)."""
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
                    r = tag_radius
                    tags[j, max(y - r, 0) : y + r + 1, max(x - r, 0) : x + r + 1] = p * TAG_STEP
        maps.append(torch.cat([targets.heatmaps[0], tags]))
    return maps


def evaluator(root, *, flip: bool, offset: float = 0.0, **options) -> BottomUpEvaluator:
    dataset = valid_set(root)
    codec = MSRAHeatmap((S, S), (S // 4, S // 4), sigma=2.0)
    model = Oracle(perfect_maps(dataset, codec, offset), flip)
    return oracle_evaluator(model, dataset, codec, flip=flip, **options)


def oracle_evaluator(model, dataset, codec, *, flip: bool, **options) -> BottomUpEvaluator:
    """A ``BottomUpEvaluator`` of ``model`` (an oracle) on ``dataset``, batches of 2, AE loss."""
    return BottomUpEvaluator(
        model=model,
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
        **options,
    )


class ScaledOracle(Oracle):
    """``Oracle`` at any input size, called once per test scale for each batch: its stride-4
    maps (and with ``fine`` maps a second, stride-2 output of K heatmaps, HigherHRNet's)
    resized bilinearly to the input over the stride; exact at the S x S input."""

    def __init__(self, maps, fine: list[torch.Tensor] | None, flip: bool, calls: int) -> None:
        super().__init__(maps, flip)
        self.fine, self.calls, self.seen = fine, calls, 0

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        batch = x.shape[0] // 2 if self.flip else x.shape[0]
        start = self.next
        outputs = [torch.stack(self.maps[start : start + batch])]
        if self.fine is not None:
            outputs.append(torch.stack(self.fine[start : start + batch]))
        if self.flip:
            index = [self.index, COCO17.flip_index]
            outputs = [
                torch.cat([o, flip_heatmaps(o, i, shift=False)]) for o, i in zip(outputs, index)
            ]
        self.seen += 1
        if self.seen % self.calls == 0:  # every scale of this batch has run
            self.next += batch
        return [_resize(o, x.shape[-2:], stride) for o, stride in zip(outputs, (4, 2))]


def _resize(maps: torch.Tensor, input_hw, stride: int) -> torch.Tensor:
    size = (input_hw[0] // stride, input_hw[1] // stride)
    if maps.shape[-2:] == size:
        return maps
    return F.interpolate(maps, size, mode="bilinear", align_corners=False)


def fine_maps(dataset, codec) -> list[torch.Tensor]:
    """(K, 2h, 2w) per sample: the stride-2 targets of its people (``bottomup_targets``)."""
    sizes = [codec.heatmap_size, (2 * codec.heatmap_size[0], 2 * codec.heatmap_size[1])]
    return [
        bottomup_targets(codec, dataset[i]["keypoints"][None], heatmap_sizes=sizes).higher_heatmaps[
            0
        ][0]
        for i in range(len(dataset))
    ]


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


def test_merge_outputs_upsamples_the_first_output_and_averages_the_heatmaps():
    """HigherHRNet: the stride-4 heatmaps and tags are upsampled to the stride-2 output's size
    and the heatmaps averaged with it (constant maps by hand: (1 + 3) / 2); one output is
    returned as it is."""
    k = 2
    first = torch.cat([torch.full((1, k, 4, 4), 1.0), torch.full((1, k, 4, 4), 7.0)], dim=1)
    second = torch.full((1, k, 8, 8), 3.0)
    heat, tags = merge_outputs([first, second], k)
    assert heat.shape == tags.shape == (1, k, 8, 8)
    torch.testing.assert_close(heat, torch.full((1, k, 8, 8), 2.0))
    torch.testing.assert_close(tags, torch.full((1, k, 8, 8), 7.0))
    g = torch.Generator().manual_seed(0)
    first, second = torch.rand(1, 2 * k, 4, 4, generator=g), torch.rand(1, k, 8, 8, generator=g)
    heat, tags = merge_outputs([first, second], k)
    up = F.interpolate(first, (8, 8), mode="bilinear", align_corners=False)
    torch.testing.assert_close(heat, (up[:, :k] + second) / 2)
    torch.testing.assert_close(tags, up[:, k:])
    heat, tags = merge_outputs([first], k)
    assert torch.equal(heat, first[:, :k]) and torch.equal(tags, first[:, k:])


@pytest.fixture
def one_torch_thread():
    """HRNet's many small convs on 2 shared cores run faster on one intra-op thread
    (tests/train/models/test_associative.py)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_merged_maps_default_to_the_finest_output_on_the_scale_one_input(one_torch_thread):
    """Without a size the maps of a one-output model come at the codec's size, bit for bit as
    when asked for it (flip test and two scales included); HigherHRNet's at stride 2."""
    torch.manual_seed(0)
    x = torch.randn(1, 3, 64, 64)
    codec = MSRAHeatmap((64, 64), (16, 16), sigma=2.0)
    options = dict(num_keypoints=17, flip_index=COCO17.flip_index, codec=codec, scales=(0.5, 1))
    plain = AssociativeEmbedding(num_keypoints=17, width=4, stem_channels=8).eval()
    higher = HigherHRNet(num_keypoints=17, width=4, stem_channels=8).eval()
    with torch.no_grad():
        ((heat, tags),), _ = bottomup_maps(plain, x, **options)
        ((sized_heat, sized_tags),), _ = bottomup_maps(plain, x, heatmap_size=(16, 16), **options)
        ((fine_heat, fine_tags),), outputs = bottomup_maps(higher, x, num_keypoints=17)
    assert torch.equal(heat, sized_heat) and torch.equal(tags, sized_tags)
    assert heat.shape == (17, 16, 16) and tags.shape == (17, 16, 16, 4)
    assert fine_heat.shape == (17, 32, 32) and fine_tags.shape == (17, 32, 32, 1)
    assert [tuple(o.shape) for o in outputs] == [(1, 34, 16, 16), (1, 17, 32, 32)]
    with pytest.raises(ValueError, match="test scales must be positive"):
        bottomup_maps(plain, x, **{**options, "scales": ()})


@pytest.mark.parametrize(
    ("higher", "project", "scales"),
    [(True, False, (1.0,)), (True, True, (1.0,)), (False, True, (0.5, 1.0, 2.0))],
)
def test_perfect_predictions_score_ap_one_with_the_higher_head_projection_and_scales(
    people, higher, project, scales
):
    """Perfect maps through HigherHRNet's second output (its own stride-2 targets), grouping at
    input resolution, and test scales (0.5, 1, 2) (the oracle's maps resized to each input):
    every person found, AP 1; the validation loss, on targets at both resolutions, ~0."""
    dataset = valid_set(people)
    codec = MSRAHeatmap((S, S), (S // 4, S // 4), sigma=2.0)
    maps = perfect_maps(dataset, codec, tag_radius=2)
    fine = fine_maps(dataset, codec) if higher else None
    model = ScaledOracle(maps, fine, flip=True, calls=len(scales))
    ev = oracle_evaluator(model, dataset, codec, flip=True, scales=scales, project_to_input=project)
    val = ev.evaluate()
    assert len(val.preds) == 4
    assert val.oks["AP"] == pytest.approx(1.0) and val.oks["AR"] == pytest.approx(1.0)
    assert val.loss == pytest.approx(0.0, abs=1e-9)


def test_evaluator_refuses_bad_scales_and_projection_with_another_alignment(people):
    with pytest.raises(ValueError, match="test scales must be positive"):
        evaluator(people, flip=False, scales=(1.0, 0.0))
    ev = evaluator(people, flip=False, project_to_input=True)
    ev.codec = MSRAHeatmap((S, S), (S // 4, S // 4), sigma=2.0, convention="msra")
    with pytest.raises(ValueError, match="use the pixel-area codec"):
        ev.predict()
