"""HourglassNet(..., return_features=True): the trunk features WS-CDA's discriminator reads."""

import pytest
import torch

from animalpose.adapt.domain import DomainAdversary, feature_channels
from animalpose.train.models import build_model
from animalpose.train.models.hourglass import HourglassNet

CHANNELS = 16
STACKS = 2
KEYPOINTS = 5


def tiny_net(seed: int = 0, stacks: int = STACKS) -> HourglassNet:
    torch.manual_seed(seed)
    return HourglassNet(
        num_stacks=stacks, num_blocks=1, num_keypoints=KEYPOINTS, channels=CHANNELS
    ).eval()


def images(batch: int = 2, side: int = 64) -> torch.Tensor:
    return torch.randn(batch, 3, side, side, generator=torch.Generator().manual_seed(1))


def test_features_are_the_last_score_input_and_outputs_are_unchanged():
    net = tiny_net()
    x = images()
    state_before = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        plain = net(x)
        outputs, features = net(x, return_features=True)
    assert isinstance(plain, list) and len(plain) == len(outputs) == STACKS
    for a, b in zip(plain, outputs, strict=True):
        assert torch.equal(a, b)
    assert features.shape == (2, CHANNELS, 16, 16)  # (B, channels, H / 4, W / 4)
    with torch.no_grad():
        assert torch.equal(net.score[-1](features), outputs[-1])
    assert (features >= 0).all()  # after fc's BN-ReLU
    # The flag adds nothing to the model: same keys, same values (eval mode: no BN updates).
    state_after = net.state_dict()
    assert list(state_after) == list(state_before)
    assert all(torch.equal(state_after[k], v) for k, v in state_before.items())
    assert list(tiny_net(seed=3).state_dict()) == list(state_before)


@pytest.mark.parametrize(
    "arch, options, expected",
    [
        ("hg", dict(num_stacks=1, num_blocks=1, channels=CHANNELS), CHANNELS),
        ("simple_baseline", dict(depth=18), 256),  # the deconvolution head's 256 filters
        ("lpn", dict(depth=50), 256),  # 4 x its base width 64
    ],
)
def test_feature_channels_is_the_width_the_model_returns(arch, options, expected):
    """The discriminator's input width comes from the features themselves: model.channels is
    the hourglass's width only (WS-CDA and UDA-Animal from an LPN source crashed on it)."""
    torch.manual_seed(0)
    net = build_model(arch, num_keypoints=KEYPOINTS, **options).train()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    assert feature_channels(net, (128, 64)) == expected  # (w, h)
    assert net.training  # mode restored
    # No statistic moved (an eval-mode forward under no_grad).
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    # An adversary built with that width takes the features of a training forward.
    adversary = DomainAdversary(in_channels=feature_channels(net, (64, 64)), hidden=8)
    _, features = net(images(), return_features=True)
    assert features.shape[1] == expected
    loss, _ = adversary.trunk_loss(
        features,
        is_animal=torch.tensor([True, True]),
        is_target=torch.tensor([True, False]),
        progress=0.5,
    )
    loss.backward()
    assert torch.isfinite(loss)


def test_rectangular_input_and_gradients_reach_the_trunk_but_not_the_last_score():
    net = tiny_net().train()
    x = torch.randn(2, 3, 64, 128, generator=torch.Generator().manual_seed(2))
    outputs, features = net(x, return_features=True)
    assert features.shape == (2, CHANNELS, 16, 32)
    assert outputs[-1].shape == (2, KEYPOINTS, 16, 32)
    features.square().mean().backward()
    assert net.conv1.weight.grad is not None and net.conv1.weight.grad.abs().sum() > 0
    assert net.score[-1].weight.grad is None  # features are its input, not its output


def test_features_feed_the_adversary_end_to_end():
    net = tiny_net().train()
    adversary = DomainAdversary(in_channels=CHANNELS, hidden=8, beta=1.0)
    outputs, features = net(images(), return_features=True)
    loss, terms = adversary.trunk_loss(
        features,
        is_animal=torch.tensor([True, True]),
        is_target=torch.tensor([True, False]),
        progress=1.0,
    )
    (outputs[-1].square().mean() + loss).backward()
    adversary.step()
    assert net.hg[0].hg[0][0][0].conv1.weight.grad is not None
    assert terms.domain_acc.item() in (0.0, 0.5, 1.0)


def test_return_features_through_distributed_data_parallel(tmp_path):
    import torch.distributed as dist

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        net = tiny_net()
        ddp = torch.nn.parallel.DistributedDataParallel(net)
        x = images()
        with torch.no_grad():
            expected, expected_features = net(x, return_features=True)
        outputs, features = ddp(x, return_features=True)
        assert torch.equal(features, expected_features)
        assert all(torch.equal(a, b) for a, b in zip(outputs, expected, strict=True))
        (sum(o.mean() for o in outputs) + features.mean()).backward()
        assert all(p.grad is not None for p in net.parameters())
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_return_features_under_torch_compile():
    """Graph capture with the keyword (TorchDynamo, eager backend: no C++ toolchain needed)."""
    net = tiny_net(stacks=1)
    compiled = torch.compile(net, backend="eager")
    x = images()
    with torch.no_grad():
        expected, expected_features = net(x, return_features=True)
        outputs, features = compiled(x, return_features=True)
        plain = compiled(x)
    assert torch.equal(features, expected_features)
    assert all(torch.equal(a, b) for a, b in zip(outputs, expected, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(plain, expected, strict=True))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("mode", ["grl", "alternating"])
def test_joint_step_under_bf16_autocast_on_cuda(mode):
    device = torch.device("cuda")
    net = tiny_net().train().to(device)
    adversary = DomainAdversary(in_channels=CHANNELS, mode=mode, hidden=8, beta=1.0).to(device)
    x = images(batch=4).to(device)
    is_animal = torch.ones(4, dtype=torch.bool, device=device)
    is_target = torch.tensor([True, True, False, False], device=device)
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        outputs, features = net(x, return_features=True)
        assert features.dtype == torch.bfloat16
        if mode == "alternating":
            adversary.discriminator_step(features, is_animal=is_animal, is_target=is_target)
        loss, terms = adversary.trunk_loss(
            features, is_animal=is_animal, is_target=is_target, progress=0.5
        )
    assert loss.dtype == torch.float32
    (outputs[-1].float().square().mean() + loss).backward()
    adversary.step()
    assert torch.isfinite(net.conv1.weight.grad).all()
    assert torch.isfinite(terms.total) and 0 <= terms.domain_acc.item() <= 1
