"""Forward pass plus the hand-derived gradient of the MSE, as the lecture writes it out."""

from __future__ import annotations

import torch

from adaline_repro.backends.base import Backend


class ManualBackend(Backend):
    name = "manual"

    def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(n_features, lr, dtype, device)
        self.weight = torch.zeros(n_features, 1, dtype=dtype, device=device)  # (f, 1)
        self.bias = torch.zeros(1, dtype=dtype, device=device)  # (1,)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.mm(x, self.weight) + self.bias).view(-1)

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # L = mean((yhat - y)^2)  =>  dL/dw = -2/n * x^T (y - yhat),  dL/db = -2/n * sum(y - yhat)
        n = y.size(0)
        residual = 2.0 * (y - self.forward(x))  # (n,)
        grad_w = -torch.mm(x.t(), residual.view(-1, 1)) / n  # (f, 1)
        grad_b = -torch.sum(residual) / n  # ()
        return grad_w.view(-1), grad_b

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        grad_w, grad_b = self.gradients(x, y)
        self.weight -= self.lr * grad_w.view(-1, 1)
        self.bias -= self.lr * grad_b

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.weight, self.bias
