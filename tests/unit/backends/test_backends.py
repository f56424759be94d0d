"""Backends: each one's MSE gradient equals autograd's, and each starts from zero."""

from __future__ import annotations

import pytest
import torch

from adaline_repro.backends import BACKENDS, get


def _reference_gradients(x, y, weight, bias):
    """d/d(w, b) of mean((x @ w + b - y)^2), by autograd on fresh leaves."""
    w = weight.clone().requires_grad_(True)
    b = bias.clone().requires_grad_(True)
    loss = torch.mean((x @ w + b - y) ** 2)
    return torch.autograd.grad(loss, [w, b])


@pytest.mark.parametrize("name", BACKENDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gradient_equals_autograd_on_random_float64_data(name, seed):
    """On random data and parameters, the backend's gradient matches autograd's to float64 precision."""
    g = torch.Generator().manual_seed(seed)
    n, f = 13, 3
    x = torch.randn(n, f, generator=g, dtype=torch.float64)
    y = torch.randint(0, 2, (n,), generator=g).to(torch.float64)
    weight = torch.randn(f, generator=g, dtype=torch.float64)
    bias = torch.randn((), generator=g, dtype=torch.float64)
    backend = get(name)(f, 0.01, torch.float64, torch.device("cpu"))
    with torch.no_grad():  # the backend's own tensors, in whatever shape it keeps them
        for live, value in zip(backend.tensors(), (weight, bias), strict=True):
            live.copy_(value.reshape(live.shape))
    grad_w, grad_b = backend.gradients(x, y)
    ref_w, ref_b = _reference_gradients(x, y, weight, bias)
    assert grad_w.shape == (f,)
    assert grad_b.shape == ()
    torch.testing.assert_close(grad_w, ref_w, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(grad_b, ref_b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", BACKENDS)
def test_parameters_start_at_zero(name):
    backend = get(name)(2, 0.01, torch.float32, torch.device("cpu"))
    weight, bias = backend.parameters()
    assert torch.equal(weight, torch.zeros(2))
    assert torch.equal(bias, torch.zeros(()))


@pytest.mark.parametrize("name", BACKENDS)
def test_step_moves_against_the_gradient(name):
    """One step changes the parameters by exactly -lr * gradient (float64, so no rounding doubt)."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn(5, 2, generator=g, dtype=torch.float64)
    y = torch.ones(5, dtype=torch.float64)
    backend = get(name)(2, 0.1, torch.float64, torch.device("cpu"))
    grad_w, grad_b = backend.gradients(x, y)
    backend.step(x, y)
    weight, bias = backend.parameters()
    torch.testing.assert_close(weight, -0.1 * grad_w)
    torch.testing.assert_close(bias, -0.1 * grad_b)
