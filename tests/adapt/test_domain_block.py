"""WS-CDA's domain-adaptation block (adapt/domain_block.py) inside the DomainAdversary: block 0
keeps the old state_dict, block N round-trips, it sits after the gradient reversal and the
discriminator's Adam trains it."""

import copy
import io

import pytest
import torch

from animalpose.adapt.domain import DomainAdversary, DomainDiscriminator, ddl_loss
from animalpose.adapt.domain_block import DomainAdaptationBlock

C = 6  # feature channels
HIDDEN = 8

#: The adversary state_dict saved before the block existed (keys and shapes, C = 6, hidden = 8).
OLD_KEYS = {
    "discriminator.conv1.weight": (HIDDEN, C, 3, 3),
    "discriminator.conv1.bias": (HIDDEN,),
    "discriminator.conv2.weight": (HIDDEN, HIDDEN, 3, 3),
    "discriminator.conv2.bias": (HIDDEN,),
    "discriminator.fc.weight": (2, HIDDEN),
    "discriminator.fc.bias": (2,),
}


def batch(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    features = torch.randn(6, C, 8, 8, generator=gen)
    is_animal = torch.ones(6, dtype=torch.bool)
    is_target = torch.tensor([True, False, True, False, True, False])
    return features, is_animal, is_target


def adversary(block: int, mode: str = "grl", seed: int = 0, **kwargs) -> DomainAdversary:
    torch.manual_seed(seed)
    kwargs = {"hidden": HIDDEN, "beta": 4.0, "lr": 0.05} | kwargs
    return DomainAdversary(in_channels=C, mode=mode, block=block, **kwargs)


def saved(adv: DomainAdversary) -> dict:
    buffer = io.BytesIO()
    torch.save(adv.state_dict(), buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_negative_block_is_a_value_error():
    with pytest.raises(ValueError, match="da_block"):
        DomainAdversary(in_channels=C, block=-1)
    with pytest.raises(ValueError, match="da_block"):
        DomainDiscriminator(in_channels=C, block=-1)


def test_block_zero_keeps_the_old_state_dict_and_loads_old_checkpoints_strictly():
    old = adversary(0)
    state = old.state_dict()
    assert {k: tuple(v.shape) for k, v in state.items() if k != "_extra_state"} == OLD_KEYS
    assert set(state) == set(OLD_KEYS) | {"_extra_state"}
    # An old checkpoint is exactly such a dict: it loads strictly into block 0 ...
    fresh = adversary(0, seed=3)
    assert fresh.load_state_dict(saved(old), strict=True)
    features, _, _ = batch()
    assert torch.equal(fresh.discriminator(features), old.discriminator(features))
    # ... and a block-N adversary refuses it, naming the setting.
    with pytest.raises(ValueError, match="da_block"):
        adversary(2).load_state_dict(saved(old))


def test_block_n_state_dict_round_trips_and_resumes_adam_exactly():
    features, is_animal, is_target = batch()
    adv = adversary(3, mode="alternating")
    for _ in range(3):
        adv.discriminator_step(features, is_animal=is_animal, is_target=is_target)
    state = saved(adv)
    block_keys = {k for k in state if ".block." in k}
    assert block_keys == {
        f"discriminator.block.layers.{i}.{p}" for i in range(3) for p in ("weight", "bias")
    }
    assert set(state) - block_keys == set(OLD_KEYS) | {"_extra_state"}
    restored = adversary(3, mode="alternating", seed=9)
    restored.load_state_dict(state, strict=True)
    for a in (adv, restored):
        a.discriminator_step(features, is_animal=is_animal, is_target=is_target)
    for p, q in zip(adv.parameters(), restored.parameters(), strict=True):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="da_block"):
        adversary(0).load_state_dict(state)


def test_a_fresh_block_is_the_identity():
    block = DomainAdaptationBlock(channels=C, layers=2)
    features, _, _ = batch()
    assert torch.equal(block(features), features)
    assert list(DomainAdaptationBlock(channels=C, layers=0).parameters()) == []
    with_block, without = adversary(2), adversary(0)
    without.discriminator.load_state_dict(with_block.discriminator.state_dict(), strict=False)
    assert torch.equal(with_block.discriminator(features), without.discriminator(features))


def test_grl_block_sits_after_the_reversal_and_the_discriminator_adam_trains_it():
    """The trunk gets -coeff * d L_DDL through block + discriminator; the block gets +d L_DDL."""
    adv = adversary(2)
    # Move the block off the identity so that it shapes the gradients.
    with torch.no_grad():
        for p in adv.discriminator.block.parameters():
            p.normal_(0, 0.1)
    plain = copy.deepcopy(adv.discriminator)
    features, is_animal, is_target = batch()
    progress = 0.4
    f = features.clone().requires_grad_(True)
    loss, _ = adv.trunk_loss(f, is_animal=is_animal, is_target=is_target, progress=progress)
    loss.backward()
    g = features.clone().requires_grad_(True)
    ddl_loss(plain(g), is_animal=is_animal, is_target=is_target).total.backward()
    torch.testing.assert_close(f.grad, g.grad * -adv.coeff(progress))
    for p, q in zip(adv.discriminator.parameters(), plain.parameters(), strict=True):
        assert torch.equal(p.grad, q.grad)  # block included: it minimises L_DDL
    before = [p.detach().clone() for p in adv.discriminator.block.parameters()]
    adv.step()
    assert all(
        not torch.equal(p, b)
        for p, b in zip(adv.discriminator.block.parameters(), before, strict=True)
    )


def test_alternating_trunk_loss_leaves_the_block_alone_and_its_step_trains_it():
    adv = adversary(2, mode="alternating")
    features, is_animal, is_target = batch()
    loss, _ = adv.trunk_loss(
        features.clone().requires_grad_(True),
        is_animal=is_animal,
        is_target=is_target,
        progress=1.0,
    )
    loss.backward()
    assert all(p.grad is None for p in adv.discriminator.block.parameters())
    before = [p.detach().clone() for p in adv.discriminator.block.parameters()]
    adv.discriminator_step(features, is_animal=is_animal, is_target=is_target)
    assert all(
        not torch.equal(p, b)
        for p, b in zip(adv.discriminator.block.parameters(), before, strict=True)
    )
