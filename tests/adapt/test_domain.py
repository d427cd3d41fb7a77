"""DomainAdversary: exact gradient bookkeeping in both modes, the weight schedule, resuming,
autocast, and DistributedDataParallel (one gloo process)."""

import copy
import io
import math

import pytest
import torch
from torch import nn

from animalpose.adapt.domain import (
    ADVERSARY_MODES,
    DomainAdversary,
    DomainDiscriminator,
    dann_ramp,
    ddl_loss,
)

C = 6  # feature channels of the toy batches


def toy_batch(seed: int = 0, batch: int = 6):
    """(B, C, 8, 8) features, one human (outside the domain term) and a target/source animal
    mix."""
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(batch, C, 8, 8, generator=gen)
    is_animal = torch.tensor([True, True, True, True, True, False])[:batch]
    is_target = torch.tensor([True, False, True, False, False, True])[:batch]
    return features, is_animal, is_target


def adversary(mode: str, seed: int = 0, **kwargs) -> DomainAdversary:
    torch.manual_seed(seed)
    kwargs = {"alpha": -1.0, "beta": 4.0, "hidden": 8} | kwargs
    return DomainAdversary(in_channels=C, mode=mode, **kwargs)


def test_discriminator_output_shape():
    disc = DomainDiscriminator(in_channels=C, hidden=8)
    assert disc(torch.randn(3, C, 9, 7)).shape == (3, 2)
    with pytest.raises(ValueError):
        DomainDiscriminator(in_channels=0)


def test_coeff_is_alpha_over_beta_times_the_ramp():
    adv = DomainAdversary(in_channels=C, alpha=-1.0, beta=500.0, ramp_gamma=10.0)
    assert adv.coeff(0.0) == 0.0
    assert adv.coeff(0.5) == pytest.approx(dann_ramp(0.5) / 500)
    assert adv.coeff(1.0) == pytest.approx((2 / (1 + math.exp(-10)) - 1) / 500)
    # alpha's sign does not matter (the min-max sign is fixed by construction).
    assert DomainAdversary(in_channels=C, alpha=1.0).coeff(0.3) == adv.coeff(0.3)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="valid"):
        DomainAdversary(in_channels=C, mode="gan")
    with pytest.raises(ValueError):
        DomainAdversary(in_channels=C, beta=0.0)
    assert set(ADVERSARY_MODES) == {"grl", "alternating"}


def test_grl_gradients_equal_plain_ddl_gradients_reversed_on_the_features():
    adv = adversary("grl")
    plain_disc = copy.deepcopy(adv.discriminator)
    features, is_animal, is_target = toy_batch()
    progress = 0.3
    coeff = adv.coeff(progress)
    assert 0 < coeff < 1

    f = features.clone().requires_grad_(True)
    loss, terms = adv.trunk_loss(f, is_animal=is_animal, is_target=is_target, progress=progress)
    loss.backward()

    g = features.clone().requires_grad_(True)
    plain = ddl_loss(plain_disc(g), is_animal=is_animal, is_target=is_target)
    plain.total.backward()

    assert torch.equal(loss.detach(), plain.total.detach())  # L_DDL itself, unweighted
    assert torch.equal(terms.domain_acc, plain.domain_acc)
    for p, q in zip(adv.discriminator.parameters(), plain_disc.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)  # the discriminator gets d L_DDL
    assert torch.equal(f.grad, g.grad * (-coeff))  # the trunk gets -coeff * d L_DDL / d f

    # step() applies the discriminator's Adam step and clears its gradients.
    before = [p.detach().clone() for p in adv.discriminator.parameters()]
    adv.step()
    assert all(p.grad is None for p in adv.discriminator.parameters())
    assert all(
        not torch.equal(p, b) for p, b in zip(adv.discriminator.parameters(), before, strict=True)
    )


def test_grl_step_matches_a_hand_driven_adam_step_on_ddl():
    adv = adversary("grl", lr=0.05)
    twin = copy.deepcopy(adv.discriminator)
    twin_opt = torch.optim.Adam(twin.parameters(), lr=0.05)
    features, is_animal, is_target = toy_batch(seed=1)
    for progress in (0.0, 0.5):  # at progress 0 the trunk gets nothing, the discriminator learns
        loss, _ = adv.trunk_loss(
            features.clone().requires_grad_(True),
            is_animal=is_animal,
            is_target=is_target,
            progress=progress,
        )
        loss.backward()
        adv.step()
        ddl_loss(twin(features), is_animal=is_animal, is_target=is_target).total.backward()
        twin_opt.step()
        twin_opt.zero_grad()
    for p, q in zip(adv.discriminator.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_alternating_trunk_loss_is_weighted_confusion_with_no_grad_into_the_discriminator():
    adv = adversary("alternating")
    features, is_animal, is_target = toy_batch()
    progress = 0.8
    f = features.clone().requires_grad_(True)
    loss, terms = adv.trunk_loss(f, is_animal=is_animal, is_target=is_target, progress=progress)
    loss.backward()
    assert all(p.grad is None for p in adv.discriminator.parameters())

    plain_disc = copy.deepcopy(adv.discriminator)
    g = features.clone().requires_grad_(True)
    confusion = ddl_loss(
        plain_disc(g), is_animal=is_animal, is_target=is_target, flip_labels=True
    ).total
    (adv.coeff(progress) * confusion).backward()
    torch.testing.assert_close(loss.detach(), adv.coeff(progress) * confusion.detach())
    torch.testing.assert_close(terms.total, confusion.detach())
    torch.testing.assert_close(f.grad, g.grad, rtol=1e-6, atol=1e-9)
    # step() is a no-op in this mode.
    before = [p.detach().clone() for p in adv.discriminator.parameters()]
    adv.step()
    assert all(
        torch.equal(p, b) for p, b in zip(adv.discriminator.parameters(), before, strict=True)
    )


def test_discriminator_step_minimises_ddl_on_detached_features():
    adv = adversary("alternating", lr=0.05)
    features, is_animal, is_target = toy_batch()
    f = features.clone().requires_grad_(True)
    expected = ddl_loss(adv.discriminator(features), is_animal=is_animal, is_target=is_target).total
    first = adv.discriminator_step(f, is_animal=is_animal, is_target=is_target)
    assert f.grad is None  # detached: nothing flows to the trunk
    assert torch.equal(first.total, expected.detach())  # terms from before the step
    assert all(p.grad is None for p in adv.discriminator.parameters())
    for _ in range(20):
        last = adv.discriminator_step(features, is_animal=is_animal, is_target=is_target)
    assert last.total < 0.5 * first.total  # it learns the batch
    assert last.domain_acc == 1.0


def test_state_dict_round_trip_resumes_adam_exactly(tmp_path):
    features, is_animal, is_target = toy_batch()
    adv = adversary("alternating", lr=0.01)
    for _ in range(3):
        adv.discriminator_step(features, is_animal=is_animal, is_target=is_target)
    state = adv.state_dict()
    assert set(state) == {f"discriminator.{k}" for k in adv.discriminator.state_dict()} | {
        "_extra_state"
    }
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    restored = adversary("alternating", seed=7, lr=0.01)
    restored.load_state_dict(torch.load(buffer, weights_only=True))
    fresh_optimizer = adversary("alternating", seed=7, lr=0.01)
    fresh_optimizer.discriminator.load_state_dict(adv.discriminator.state_dict())

    for a in (adv, restored, fresh_optimizer):
        a.discriminator_step(features, is_animal=is_animal, is_target=is_target)
    for p, q, r in zip(
        adv.discriminator.parameters(),
        restored.discriminator.parameters(),
        fresh_optimizer.discriminator.parameters(),
        strict=True,
    ):
        assert torch.equal(p, q)
        assert not torch.equal(p, r)  # without Adam's moments the step differs

    del state["_extra_state"]
    with pytest.raises(RuntimeError, match="_extra_state"):
        adversary("alternating").load_state_dict(state)


@pytest.mark.parametrize("mode", ["grl", "alternating"])
def test_trunk_under_bf16_autocast(mode):
    """A bf16 trunk feeds the float32 discriminator; gradients come back in bf16."""
    torch.manual_seed(0)
    trunk = nn.Conv2d(3, C, 3, padding=1)
    adv = adversary(mode)
    _, is_animal, is_target = toy_batch()
    x = torch.randn(6, 3, 8, 8)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        features = trunk(x)
        assert features.dtype == torch.bfloat16
        if mode == "alternating":
            adv.discriminator_step(features, is_animal=is_animal, is_target=is_target)
        loss, terms = adv.trunk_loss(
            features, is_animal=is_animal, is_target=is_target, progress=1.0
        )
    assert loss.dtype == torch.float32 and terms.total.dtype == torch.float32
    loss.backward()
    assert trunk.weight.grad is not None and torch.isfinite(trunk.weight.grad).all()
    assert trunk.weight.grad.abs().sum() > 0
    if mode == "grl":
        assert all(p.grad.dtype == torch.float32 for p in adv.discriminator.parameters())
    adv.step()


def test_distribute_with_one_gloo_process(tmp_path):
    """DDP-wrapped discriminator: same gradients as without (world size 1 averages nothing)."""
    import torch.distributed as dist

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        adv = adversary("grl")
        plain = copy.deepcopy(adv)
        adv.distribute()
        features, is_animal, is_target = toy_batch()
        f = features.clone().requires_grad_(True)
        g = features.clone().requires_grad_(True)
        for a, x in ((adv, f), (plain, g)):
            loss, _ = a.trunk_loss(x, is_animal=is_animal, is_target=is_target, progress=0.5)
            loss.backward()
        assert torch.equal(f.grad, g.grad)
        for p, q in zip(
            adv.discriminator.parameters(), plain.discriminator.parameters(), strict=True
        ):
            torch.testing.assert_close(p.grad, q.grad)
        # state_dict keys are unchanged by the wrapper (it is not a registered submodule).
        assert adv.state_dict().keys() == plain.state_dict().keys()
    finally:
        dist.destroy_process_group()
