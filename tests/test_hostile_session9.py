"""Hostile inputs against session 9's changes (issue 13): the CPU check's Python sums, the checks
skipped under torch.func transforms, save running load's checks, exact integer labels and the plain
list of Θ the cost reads. Each test failed before its fix."""

import pytest
import torch

import lecturenn as ln


@pytest.mark.parametrize("backprop", ["manual", "autograd"])
def test_float16_weights_whose_sum_overflows_are_refused_not_a_zero_cost(backprop):
    """fp16 weights 32752 each: Σw = inf in float16. The manual path widens the data term to float32,
    so J = Σ w_i cost_i / Σw was a finite 0 (and every gradient 0), which the check let through;
    the autograd path got NaN and named the weights. Both must name the weights, nothing written."""
    net = ln.ThetaMLP([3, 4, 2], "tanh", "softmax", backprop=backprop, generator=0, dtype=torch.float16)
    X = torch.randn(5, 3, generator=torch.Generator().manual_seed(0)).half()
    y = torch.tensor([0, 1, 1, 0, 1])
    with pytest.raises(FloatingPointError, match="weights' sum Σw overflows torch.float16"):
        net.cost(X, y, sample_weight=torch.full((5,), 32752.0, dtype=torch.float16))
    assert all(theta.grad is None for theta in net.thetas)
    J = net.cost(X, y, sample_weight=torch.full((5,), 10000.0, dtype=torch.float16))  # Σw fits
    torch.testing.assert_close(J.float(), net.cost(X, y).float(), rtol=2e-3, atol=0)
