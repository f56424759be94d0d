"""The same neuron with torch.autograd.grad computing the gradients."""

from __future__ import annotations

import torch

from adaline_repro.backends.base import Backend


class AutogradBackend(Backend):
    name = "autograd"

    def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(n_features, lr, dtype, device)
        self.weight = torch.zeros(n_features, 1, dtype=dtype, device=device, requires_grad=True)  # (f, 1)
        self.bias = torch.zeros(1, dtype=dtype, device=device, requires_grad=True)  # (1,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.mm(x, self.weight) + self.bias).view(-1)

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loss = torch.mean((self.forward(x) - y) ** 2)
        grad_w, grad_b = torch.autograd.grad(loss, [self.weight, self.bias])
        return grad_w.view(-1), grad_b[0]

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        grad_w, grad_b = self.gradients(x, y)
        with torch.no_grad():
            self.weight -= self.lr * grad_w.view(-1, 1)
            self.bias -= self.lr * grad_b

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight, self.bias
