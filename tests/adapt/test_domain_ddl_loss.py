"""ddl_loss against hand-computed binary cross-entropies (math.log, no torch)."""

import math

import pytest
import torch

from animalpose.adapt.domain import ddl_loss


def bce(logit: float, label: float) -> float:
    p = 1.0 / (1.0 + math.exp(-logit))
    return -(label * math.log(p) + (1.0 - label) * math.log(1.0 - p))


# Four samples: three animals (one target, two source) and one human, whose is_target is True
# and domain logit extreme on purpose: it must not enter the domain term. Column 0 (the paper's
# species head) enters the total only with a species weight (w1; runs with a human source).
LOGITS = [[2.0, 1.0], [0.5, -1.5], [-1.0, 0.3], [-0.5, 9.0]]
IS_ANIMAL = [True, True, True, False]
IS_TARGET = [True, False, False, True]
DOMAIN = (bce(1.0, 1) + bce(-1.5, 0) + bce(0.3, 0)) / 3  # animals only; mean, not sum
SPECIES = (bce(2.0, 1) + bce(0.5, 1) + bce(-1.0, 1) + bce(-0.5, 0)) / 4  # every sample


def batch():
    return (
        torch.tensor(LOGITS),
        torch.tensor(IS_ANIMAL),
        torch.tensor(IS_TARGET),
    )


def test_ddl_loss_matches_hand_computed_terms():
    logits, is_animal, is_target = batch()
    terms = ddl_loss(logits, is_animal=is_animal, is_target=is_target)

    assert terms.domain.item() == pytest.approx(DOMAIN, rel=1e-6)
    assert torch.equal(terms.total, terms.domain)  # species weight 0 (the default)
    assert terms.species.item() == pytest.approx(SPECIES, rel=1e-6)
    # Domain predictions over the animals: 1, 0, 1 vs labels 1, 0, 0.
    assert terms.domain_acc.item() == pytest.approx(2 / 3)
    # Species predictions (logit > 0 = animal): 1, 1, 0, 0 vs labels 1, 1, 1, 0.
    assert terms.species_acc.item() == pytest.approx(3 / 4)
    for t in (terms.total, terms.domain, terms.domain_acc, terms.species, terms.species_acc):
        assert t.dim() == 0 and t.dtype == torch.float32
    assert set(terms.scalars()) == {"total", "domain", "domain_acc", "species", "species_acc"}


@pytest.mark.parametrize("w1", [0.5, 3.0])
def test_the_species_weight_is_the_papers_w1(w1):
    logits, is_animal, is_target = batch()
    terms = ddl_loss(logits, is_animal=is_animal, is_target=is_target, species_weight=w1)
    assert terms.total.item() == pytest.approx(DOMAIN + w1 * SPECIES, rel=1e-6)
    x = logits.clone().requires_grad_(True)
    ddl_loss(x, is_animal=is_animal, is_target=is_target, species_weight=w1).total.backward()
    # d/dlogit of the mean BCE: (sigmoid - label) / 4, times w1.
    expected = [
        w1 * (1 / (1 + math.exp(-z)) - y) / 4 for z, y in zip([2.0, 0.5, -1.0, -0.5], [1, 1, 1, 0])
    ]
    torch.testing.assert_close(x.grad[:, 0], torch.tensor(expected))


def test_human_samples_do_not_enter_the_domain_term():
    logits, is_animal, is_target = batch()
    ref = ddl_loss(logits, is_animal=is_animal, is_target=is_target)
    changed = logits.clone()
    changed[3, 1] = -40.0
    human_flipped = is_target.clone()
    human_flipped[3] = False
    other = ddl_loss(changed, is_animal=is_animal, is_target=human_flipped)
    assert torch.equal(other.domain, ref.domain) and torch.equal(other.domain_acc, ref.domain_acc)


def test_without_a_species_weight_the_species_column_enters_nothing():
    logits, is_animal, is_target = batch()
    ref = ddl_loss(logits, is_animal=is_animal, is_target=is_target)
    changed = logits.clone()
    changed[:, 0] = torch.tensor([-30.0, 7.0, 0.0, 12.0])
    other = ddl_loss(changed, is_animal=is_animal, is_target=is_target)
    assert other.total == ref.total and other.domain_acc == ref.domain_acc
    x = logits.clone().requires_grad_(True)
    ddl_loss(x, is_animal=is_animal, is_target=is_target).total.backward()
    assert torch.equal(x.grad[:, 0], torch.zeros(4))


def test_flipped_labels_score_the_confusion_targets_but_report_true_accuracy():
    logits, is_animal, is_target = batch()
    terms = ddl_loss(logits, is_animal=is_animal, is_target=is_target, flip_labels=True)
    domain = (bce(1.0, 0) + bce(-1.5, 1) + bce(0.3, 1)) / 3
    assert terms.total.item() == pytest.approx(domain, rel=1e-6)
    assert terms.domain_acc.item() == pytest.approx(2 / 3)
    flipped = ddl_loss(
        logits, is_animal=is_animal, is_target=is_target, flip_labels=True, species_weight=2.0
    )
    species = (bce(2.0, 0) + bce(0.5, 0) + bce(-1.0, 0) + bce(-0.5, 1)) / 4
    assert flipped.total.item() == pytest.approx(domain + 2.0 * species, rel=1e-6)
    assert flipped.species_acc.item() == pytest.approx(3 / 4)


def test_no_animal_sample_gives_zero_domain_term_and_nan_accuracy():
    logits = torch.tensor([[0.3, 5.0], [-2.0, -1.0]])
    terms = ddl_loss(
        logits, is_animal=torch.tensor([False, False]), is_target=torch.tensor([True, False])
    )
    assert terms.domain.item() == 0.0 and math.isnan(terms.domain_acc.item())
    assert terms.total.item() == 0.0


def test_mean_reduction_is_batch_size_independent_and_gradients_are_finite():
    logits, is_animal, is_target = batch()
    doubled = ddl_loss(
        torch.cat([logits, logits]), is_animal=is_animal.repeat(2), is_target=is_target.repeat(2)
    )
    single = ddl_loss(logits, is_animal=is_animal, is_target=is_target)
    assert doubled.total.item() == pytest.approx(single.total.item(), rel=1e-6)
    # bf16 logits are scored in float32; 0/1 integer labels work like bools.
    x = logits.to(torch.bfloat16).requires_grad_(True)
    terms = ddl_loss(x, is_animal=is_animal.long(), is_target=is_target.float())
    assert terms.total.dtype == torch.float32
    terms.total.backward()
    assert torch.isfinite(x.grad.float()).all()


@pytest.mark.parametrize(
    "logits, animal, target",
    [
        (torch.zeros(3), torch.ones(3), torch.ones(3)),  # not (B, 2)
        (torch.zeros(3, 2), torch.ones(2), torch.ones(3)),  # label length mismatch
        (torch.zeros(0, 2), torch.ones(0), torch.ones(0)),  # empty batch
    ],
)
def test_bad_shapes_raise(logits, animal, target):
    with pytest.raises(ValueError):
        ddl_loss(logits, is_animal=animal, is_target=target)
