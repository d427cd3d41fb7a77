"""grad_reverse (identity forward, -coeff x gradient backward) and the DANN ramp."""

import itertools
import math

import pytest
import torch

from animalpose.adapt.domain import dann_ramp, grad_reverse


@pytest.mark.parametrize("coeff", [0.0, 0.37, 2.5])
def test_grad_reverse_is_identity_forward_and_negated_scaled_backward(coeff):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, 5, generator=gen, requires_grad=True)
    weight = torch.randn(3, 4, 5, 5, generator=gen)

    y = grad_reverse(x, coeff)
    assert torch.equal(y, x)
    # A known function f(y) = sum(w * y^3): df/dy = 3 w y^2, so dx = -coeff * 3 w x^2.
    (weight * y.pow(3)).sum().backward()
    plain = x.detach().clone().requires_grad_(True)
    (weight * plain.pow(3)).sum().backward()
    torch.testing.assert_close(plain.grad, 3 * weight * x.detach().pow(2), rtol=1e-6, atol=0)
    assert torch.equal(x.grad, plain.grad * (-coeff))


def test_grad_reverse_keeps_dtype_and_passes_through_a_graph():
    x = torch.randn(2, 3, dtype=torch.bfloat16, requires_grad=True)
    y = grad_reverse(x * 2.0, 0.5)
    assert y.dtype == torch.bfloat16
    y.float().sum().backward()
    assert torch.equal(x.grad, torch.full_like(x, -1.0))  # d(2x)/dx = 2, times -0.5


def test_dann_ramp_values():
    assert dann_ramp(0.0) == 0.0
    assert dann_ramp(0.5) == pytest.approx(2 / (1 + math.exp(-5.0)) - 1)  # 0.98661
    assert dann_ramp(0.5) == pytest.approx(0.9866142981514305, abs=1e-12)
    assert dann_ramp(1.0) == pytest.approx(2 / (1 + math.exp(-10.0)) - 1)  # 0.99991
    assert dann_ramp(0.1, gamma=1.0) == pytest.approx(2 / (1 + math.exp(-0.1)) - 1)
    # Progress is clipped to [0, 1]; the ramp rises monotonically.
    assert dann_ramp(-3.0) == 0.0 and dann_ramp(7.0) == dann_ramp(1.0)
    values = [dann_ramp(p / 10) for p in range(11)]
    assert all(a < b for a, b in itertools.pairwise(values))
