"""torch.nn.Linear (zeroed) + F.mse_loss + torch.optim.SGD with zero_grad(), backward(), step()."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from adaline_repro.backends.base import Backend


class ModuleBackend(Backend):
    name = "module"

    def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
        super().__init__(n_features, lr, dtype, device)
        self.linear = torch.nn.Linear(n_features, 1, dtype=dtype, device=device)
        with torch.no_grad():
            self.linear.weight.zero_()
            self.linear.bias.zero_()
        self.optimizer = torch.optim.SGD(self.linear.parameters(), lr=lr)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(-1)

    def _backward(self, x: torch.Tensor, y: torch.Tensor) -> None:
        loss = F.mse_loss(self.forward(x), y)
        self.optimizer.zero_grad()
        loss.backward()

    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self._backward(x, y)
        return self.linear.weight.grad.view(-1).clone(), self.linear.bias.grad[0].clone()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self._backward(x, y)
        self.optimizer.step()

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.linear.weight, self.linear.bias

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return F.mse_loss(self.forward(x), y)
