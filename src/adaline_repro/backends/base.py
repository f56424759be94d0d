"""The interface every backend implements: one ADALINE neuron, its MSE gradient and one SGD step."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch


class Backend(ABC):
    """A linear neuron y = x @ w + b with identity activation, trained on the mean squared error.

    Parameters start at zero. Construction must not consume the global RNG in a way that matters:
    shuffle orders come from their own generator, so any backend can be built at any time.
    """

    name: ClassVar[str]

    def __init__(self, n_features: int, lr: float, dtype: torch.dtype, device: torch.device) -> None:
        self.n_features = n_features
        self.lr = lr
        self.dtype = dtype
        self.device = device

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, n_features) -> (n,) net input, which is also the output (identity activation)."""

    @abstractmethod
    def gradients(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradient of the minibatch MSE at the current parameters: ((n_features,), ())."""

    @abstractmethod
    def step(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """One SGD update on a minibatch."""

    @abstractmethod
    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The live (weight, bias) tensors, in whatever shape the backend keeps them (n_features and 1
        values); step() updates them in place, so training can record them after every step cheaply."""

    def parameters(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Detached copies of (weight (n_features,), bias ())."""
        weight, bias = self.tensors()
        return weight.detach().reshape(-1).clone(), bias.detach().reshape(()).clone()

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Full-batch MSE, without building a graph."""
        with torch.no_grad():
            return torch.mean((self.forward(x) - y) ** 2)
