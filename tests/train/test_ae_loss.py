"""Associative Embedding loss: push and pull against values worked out by hand (both push
types), the reference's own example (HigherHRNet ``lib/core/loss.py::test_ae_loss``), the
batched computation against a per-person loop written from the paper's definitions, and the
weighted total of ``AELoss`` over a HigherHRNet-style output list, and loss masks: a crowd
region's pixels do not count, a mask of ones changes nothing."""

from __future__ import annotations

import math

import pytest
import torch

from animalpose.train.ae_loss import AELoss, ae_tag_loss, heatmap_loss


def _tags_with(values: dict[tuple[int, int, int], float], k: int = 2, h: int = 4, w: int = 4):
    """(1, K, h, w) tag maps, zero but for ``{(k, y, x): value}``."""
    tags = torch.zeros(1, k, h, w)
    for (kk, y, x), v in values.items():
        tags[0, kk, y, x] = v
    return tags


def _persons(rows: list[list[tuple[int, int] | None]]):
    """Persons as lists of per-keypoint (x, y) or None -> (1, M, K, 2) keypoints, (1, M, K)
    visible."""
    m, k = len(rows), len(rows[0])
    keypoints = torch.zeros(1, m, k, 2, dtype=torch.long)
    visible = torch.zeros(1, m, k)
    for i, row in enumerate(rows):
        for j, xy in enumerate(row):
            if xy is not None:
                keypoints[0, i, j] = torch.tensor(xy)
                visible[0, i, j] = 1
    return keypoints, visible


def test_two_people_by_hand():
    # Person A: keypoint 0 at (0, 0) tag 1, keypoint 1 at (1, 0) tag 3 -> reference 2, pull 1.
    # Person B: keypoint 0 at (2, 2) tag 1.5, keypoint 1 unlabelled -> reference 1.5, pull 0.
    tags = _tags_with({(0, 0, 0): 1.0, (1, 0, 1): 3.0, (0, 2, 2): 1.5})
    keypoints, visible = _persons([[(0, 0), (1, 0)], [(2, 2), None]])
    push, pull = ae_tag_loss(tags, keypoints, visible, loss_type="exp")
    assert pull.item() == pytest.approx(0.5)  # (1 + 0) / 2 persons
    # Two ordered pairs at distance 0.5: 2 exp(-0.25) / (2 * 1) / 2.
    assert push.item() == pytest.approx(0.5 * math.exp(-0.25), rel=1e-6)
    push, pull = ae_tag_loss(tags, keypoints, visible, loss_type="max")
    assert push.item() == pytest.approx(0.5 * (1 - 0.5))
    assert pull.item() == pytest.approx(0.5)


def test_three_people_by_hand():
    # References 0, 0.5 and 2 (one keypoint each): distances 0.5, 2, 1.5.
    tags = _tags_with({(0, 0, 0): 0.0, (0, 1, 1): 0.5, (0, 3, 3): 2.0}, k=1)
    keypoints, visible = _persons([[(0, 0)], [(1, 1)], [(3, 3)]])
    push, pull = ae_tag_loss(tags, keypoints, visible, loss_type="exp")
    expected = 2 * (math.exp(-0.25) + math.exp(-4) + math.exp(-2.25)) / 6 / 2
    assert push.item() == pytest.approx(expected, rel=1e-6)
    assert pull.item() == 0
    push, _ = ae_tag_loss(tags, keypoints, visible, loss_type="max")
    assert push.item() == pytest.approx(2 * 0.5 / 6 / 2)  # only the 0.5 pair is inside 1


def test_the_references_example():
    """HigherHRNet's ``test_ae_loss``: tags ``arange(32).reshape(1, 2, 4, 4) * 0.1`` read at
    flat indices 3, 22 (person 0) and 10, 30 (person 1) of the (K h w) maps."""
    tags = torch.arange(32, dtype=torch.float32).reshape(1, 2, 4, 4) * 0.1
    # Flat index i -> keypoint i // 16, y = (i % 16) // 4, x = i % 4.
    keypoints, visible = _persons([[(3, 0), (2, 1)], [(2, 2), (2, 3)]])
    push, pull = ae_tag_loss(tags, keypoints, visible)
    # Person 0: tags 0.3, 2.2 -> mean 1.25, pull 0.95^2; person 1: 1.0, 3.0 -> 2.0, pull 1.
    assert pull.item() == pytest.approx((0.95**2 + 1.0) / 2, rel=1e-6)
    assert push.item() == pytest.approx(0.5 * math.exp(-(0.75**2)), rel=1e-6)


def test_fewer_than_two_people_push_nothing():
    tags = _tags_with({(0, 0, 0): 1.0, (1, 0, 1): 2.0})
    keypoints, visible = _persons([[(0, 0), (1, 0)], [None, None]])  # one person + padding
    push, pull = ae_tag_loss(tags, keypoints, visible)
    assert push.item() == 0 and pull.item() == pytest.approx(0.25)
    push, pull = ae_tag_loss(tags, keypoints, torch.zeros_like(visible))
    assert push.item() == 0 and pull.item() == 0


def _loop_reference(tags5, keypoints, visible, loss_type):
    """Per image, per person, per pair: the module docs' definitions, one value at a time."""
    pushes, pulls = [], []
    for b in range(visible.shape[0]):
        refs, pull = [], 0.0
        for m in range(visible.shape[1]):
            read = [
                tags5[b, k, :, keypoints[b, m, k, 1], keypoints[b, m, k, 0]]
                for k in range(visible.shape[2])
                if visible[b, m, k] > 0
            ]
            if not read:
                continue
            read = torch.stack(read).double()
            refs.append(read.mean(0))
            pull += ((read - refs[-1]) ** 2).mean().item()
        n = len(refs)
        total = 0.0
        for i in range(n):
            for j in range(n):
                if i != j:
                    d = torch.linalg.norm(refs[i] - refs[j]).item()
                    total += math.exp(-(d**2)) if loss_type == "exp" else max(0.0, 1 - d)
        pushes.append(total / (n * (n - 1)) / 2 if n > 1 else 0.0)
        pulls.append(pull / n if n else 0.0)
    return torch.tensor(pushes), torch.tensor(pulls)


@pytest.mark.parametrize("loss_type", ["exp", "max"])
@pytest.mark.parametrize("tag_dim", [1, 3])
def test_batched_equals_a_loop_over_people(loss_type, tag_dim):
    g = torch.Generator().manual_seed(7)
    batch, people, k, h, w = 3, 5, 4, 6, 7
    tags = torch.randn(batch, k * tag_dim, h, w, generator=g) * 0.6
    keypoints = torch.stack(
        [
            torch.randint(0, w, (batch, people, k), generator=g),
            torch.randint(0, h, (batch, people, k), generator=g),
        ],
        dim=-1,
    )
    visible = (torch.rand(batch, people, k, generator=g) > 0.4).float()
    visible[0] = 0  # an image without people
    visible[1, 1:] = 0  # an image with one person
    keypoints[visible == 0] = -5  # unlabelled coordinates are ignored, even outside the maps
    push, pull = ae_tag_loss(tags, keypoints, visible, loss_type=loss_type)
    tags5 = tags.reshape(batch, k, tag_dim, h, w)
    safe = keypoints.clamp(min=0)
    ref_push, ref_pull = _loop_reference(tags5, safe, visible, loss_type)
    assert push.shape == pull.shape == (batch,)
    torch.testing.assert_close(push.double(), ref_push.double(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(pull.double(), ref_pull.double(), rtol=1e-5, atol=1e-7)
    assert push[0] == 0 and pull[0] == 0 and push[1] == 0
    assert push[2] > 0 and pull[2] > 0
    # The 5-D layout reads the same tags.
    push5, pull5 = ae_tag_loss(tags5, keypoints, visible, loss_type=loss_type)
    assert torch.equal(push5, push) and torch.equal(pull5, pull)


@pytest.mark.parametrize("loss_type", ["exp", "max"])
def test_gradients_are_finite_when_references_coincide(loss_type):
    tags = torch.zeros(1, 2, 2, 2, requires_grad=True)
    keypoints, visible = _persons([[(0, 0), (1, 1)], [(1, 0), (0, 1)]])
    push, pull = ae_tag_loss(tags, keypoints, visible, loss_type=loss_type)
    assert push.item() == pytest.approx(0.5, rel=1e-5)  # both terms 1 at distance 0
    (push + pull).sum().backward()
    assert torch.isfinite(tags.grad).all()


def test_pull_gradient_moves_tags_towards_the_reference():
    tags = _tags_with({(0, 0, 0): 1.0, (1, 0, 1): 3.0}).requires_grad_(True)
    keypoints, visible = _persons([[(0, 0), (1, 0)]])
    _, pull = ae_tag_loss(tags, keypoints, visible)
    pull.sum().backward()
    # d/dt of mean((t_i - mean)^2) over two tags = (t_i - mean) (the mean's own term cancels).
    assert tags.grad[0, 0, 0, 0].item() == pytest.approx(-1.0)
    assert tags.grad[0, 1, 0, 1].item() == pytest.approx(1.0)


def test_bad_inputs_are_named():
    tags = torch.zeros(1, 2, 4, 4)
    keypoints, visible = _persons([[(0, 0), (4, 0)]])
    with pytest.raises(ValueError, match=r"keypoint 1 of person 0 in image 0 at \(4, 0\)"):
        ae_tag_loss(tags, keypoints, visible)
    with pytest.raises(ValueError, match="unknown AE loss type 'huber'"):
        ae_tag_loss(tags, keypoints, visible, loss_type="huber")
    with pytest.raises(ValueError, match=r"K \* T"):
        ae_tag_loss(torch.zeros(1, 3, 4, 4), keypoints, visible)
    with pytest.raises(ValueError, match="unknown AE loss type"):
        AELoss(loss_type="l2")


def test_heatmap_loss_weights_by_keypoint_and_by_pixel():
    pred, target = torch.zeros(2, 2, 4, 4), torch.ones(2, 2, 4, 4)
    per_keypoint = heatmap_loss(pred, target, torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    torch.testing.assert_close(per_keypoint, torch.tensor([0.5, 1.0]))
    mask = torch.zeros(2, 4, 4)
    mask[:, :2] = 1  # the top half of every map
    torch.testing.assert_close(heatmap_loss(pred, target, mask), torch.tensor([0.5, 0.5]))
    with pytest.raises(ValueError, match="weights"):
        heatmap_loss(pred, target, torch.ones(2, 3))


def test_ae_loss_total_over_a_higher_hrnet_output_list():
    k = 2
    tags = _tags_with({(0, 0, 0): 1.0, (1, 0, 1): 3.0, (0, 2, 2): 1.5})
    first = torch.cat([torch.zeros(1, k, 4, 4), tags], dim=1)  # heatmaps 0, then the tags
    second = torch.full((1, k, 8, 8), 0.5)
    keypoints, visible = _persons([[(0, 0), (1, 0)], [(2, 2), None]])
    targets = [torch.ones(1, k, 4, 4), torch.zeros(1, k, 8, 8)]
    weights = [torch.tensor([[1.0, 0.0]]), torch.ones(1, k)]
    loss = AELoss()
    total, terms = loss([first, second], targets, weights, keypoints, visible)
    # Heatmaps: output 0 half its maps at error 1 -> 0.5; output 1 error 0.5 -> 0.25.
    assert terms["heatmap"].item() == pytest.approx(0.75)
    assert terms["push"].item() == pytest.approx(1e-3 * 0.5 * math.exp(-0.25), rel=1e-6)
    assert terms["pull"].item() == pytest.approx(1e-3 * 0.5, rel=1e-6)
    assert total.dtype == torch.float32 and total.dim() == 0
    assert total.item() == pytest.approx(sum(t.item() for t in terms.values()), rel=1e-6)
    weighted = AELoss(heatmap_weight=2, push_weight=1, pull_weight=0, loss_type="max")
    total, terms = weighted([first, second], targets, weights, keypoints, visible)
    assert total.item() == pytest.approx(1.5 + 0.25)
    with pytest.raises(ValueError, match=r"outputs\[1\] has 4 channels"):
        loss([first, first], targets[0], weights[0], keypoints, visible)
    with pytest.raises(ValueError, match="heatmaps has 1 entries for 2 outputs"):
        loss([first, second], targets[:1], weights, keypoints, visible)
    with pytest.raises(TypeError, match="list"):
        loss(first, targets[0], weights[0], keypoints, visible)


def _two_resolution_case():
    """A HigherHRNet-style batch of 2 images, K = 2, with random predictions and targets at 4 x 4
    (with tags) and 8 x 8, and two people per image."""
    g = torch.Generator().manual_seed(3)
    k = 2
    first = torch.rand(2, 2 * k, 4, 4, generator=g)
    second = torch.rand(2, k, 8, 8, generator=g)
    targets = [torch.rand(2, k, 4, 4, generator=g), torch.rand(2, k, 8, 8, generator=g)]
    keypoints, visible = _persons([[(0, 0), (1, 0)], [(2, 2), (3, 1)]])
    return [first, second], targets, keypoints.expand(2, -1, -1, -1), visible.expand(2, -1, -1)


def test_a_mask_of_ones_reproduces_the_unmasked_loss_exactly():
    outputs, targets, keypoints, visible = _two_resolution_case()
    loss = AELoss()
    total, terms = loss(outputs, targets, [torch.ones(2, 2)] * 2, keypoints, visible)
    ones = [torch.ones(2, 4, 4), torch.ones(2, 8, 8)]
    masked_total, masked_terms = loss(outputs, targets, ones, keypoints, visible)
    assert torch.equal(masked_total, total)
    assert all(torch.equal(masked_terms[n], terms[n]) for n in terms)


def test_a_wrong_prediction_inside_a_crowd_region_costs_nothing():
    """Two predictions that differ only inside the masked region (a crowd: the top-left 2 x 2
    cells at stride 4, 4 x 4 at stride 2) give the same loss; unmasked, they do not. The
    masked heatmap term is the mean over all pixels of the error outside the region."""
    outputs, targets, keypoints, visible = _two_resolution_case()
    masks = [torch.ones(2, 4, 4), torch.ones(2, 8, 8)]
    masks[0][:, :2, :2] = 0
    masks[1][:, :4, :4] = 0
    correct = [outputs[0].clone(), outputs[1].clone()]
    correct[0][:, :2, :2, :2] = targets[0][:, :, :2, :2]  # right inside the crowd
    correct[1][:, :, :4, :4] = targets[1][:, :, :4, :4]
    wrong = [correct[0].clone(), correct[1].clone()]
    wrong[0][:, :2, :2, :2] += 5.0  # far off inside the crowd
    wrong[1][:, :, :4, :4] -= 5.0
    loss = AELoss()
    right_total, right_terms = loss(correct, targets, masks, keypoints, visible)
    wrong_total, _ = loss(wrong, targets, masks, keypoints, visible)
    assert torch.equal(wrong_total, right_total)
    unmasked = [torch.ones(2, 2)] * 2
    assert loss(wrong, targets, unmasked, keypoints, visible)[0] > right_total + 1
    by_hand = sum(
        (((o[:, :2] - t).square() * m[:, None]).sum() / t.numel()).item()
        for o, t, m in zip(correct, targets, masks)
    )
    assert right_terms["heatmap"].item() == pytest.approx(by_hand, rel=1e-6)
    # the tags are read from outputs[0]'s tag channels, untouched by any mask
    push, pull = ae_tag_loss(correct[0][:, 2:], keypoints, visible)
    assert right_terms["push"].item() == pytest.approx(1e-3 * push.mean().item(), rel=1e-6)
    assert right_terms["pull"].item() == pytest.approx(1e-3 * pull.mean().item(), rel=1e-6)
