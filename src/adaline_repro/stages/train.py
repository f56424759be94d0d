"""Train stage: seeded minibatch SGD of one backend, with the per-epoch training MSE and a record of every
update (its minibatch, the parameters after it, the minibatch MSE), which compare reads to find where and
why backends part.

DVC runs one such stage per backend (train@manual, ...), each a process of its own that draws the same
shuffle orders from train.seed and imports only what its backend needs.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from adaline_repro import backends
from adaline_repro.backends.base import Backend
from adaline_repro.core.errors import EXIT_OK, InputError
from adaline_repro.core.files import exact_float, float_text, write_csv, write_json
from adaline_repro.core.params import TrainParams, load_params
from adaline_repro.core.results import Table, parameter_names, read_table, write_steps
from adaline_repro.stages import parser, run_stage, say

CURVE_HEADER = ("epoch", "train_mse")


class TrainError(InputError):
    """Training cannot start (no such device, batch larger than the data) or it diverged."""


@dataclass(frozen=True)
class TrainResult:
    backend: str
    device: str
    dtype: str
    weight: list[float]
    bias: float
    losses: list[float]  # train MSE after each epoch, epochs 1..N
    minibatches: list[tuple[int, int, tuple[int, ...]]]  # (epoch, batch in epoch, raw-table rows) of each update
    step_params: list[list[float]]  # (weight..., bias) before the first update, then after each
    batch_losses: list[float]  # each update's minibatch MSE, at the parameters before it


def resolve_device(requested: str) -> torch.device:
    """cpu, cuda or auto (cuda when present); cuda set up for determinism."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda":
        if not torch.cuda.is_available():
            raise TrainError("train.device is 'cuda' but no CUDA device is available (use 'cpu' or 'auto')")
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        # On CUDA some kernels (atomics in reductions) are nondeterministic unless told otherwise. The CPU ops
        # used here are deterministic without it (tests/unit/stages/test_train.py shows the same bytes either
        # way), and the flag imports torch._dynamo: seconds in every train stage, for nothing.
        torch.use_deterministic_algorithms(True)
    return torch.device(requested)


def determinism(device: str) -> dict[str, object]:
    """The settings a train stage on `device` runs with, as torch reports them after resolve_device."""
    resolve_device(device)
    return {
        "use_deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG"),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "shuffle_generator_device": str(torch.Generator().device),
    }


def shuffle_orders(n: int, epochs: int, seed: int) -> list[torch.Tensor]:
    """One permutation per epoch, drawn on the CPU from a generator of its own.

    Every backend consumes the same list, so nothing a backend does (building nn.Linear, say)
    can move the RNG between them, and CPU and CUDA runs shuffle alike.
    """
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=generator) for _ in range(epochs)]


def orders_digest(orders: list[torch.Tensor]) -> str:
    """A short stable digest of the shuffle orders, printed by each train stage so runs can be compared."""
    digest = hashlib.sha256()
    for order in orders:
        digest.update(order.numpy().astype("<i8").tobytes())
    return digest.hexdigest()[:16]


class _ParameterRecord:
    """The parameters after every step, flat (weight..., bias), as tensors on the device until the end.

    Backends update their tensors in place, so the flat views are made once, and again only after a step
    that replaced a tensor: one torch.cat per step."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.weight, self.bias = backend.tensors()
        self.views = (self.weight.detach().view(-1), self.bias.detach().view(-1))
        self.rows = [torch.cat(self.views)]

    def take(self) -> None:
        weight, bias = self.backend.tensors()
        if weight is not self.weight or bias is not self.bias:
            self.weight, self.bias = weight, bias
            self.views = (weight.detach().view(-1), bias.detach().view(-1))
        self.rows.append(torch.cat(self.views))


def fit(
    backend: Backend, x: torch.Tensor, y: torch.Tensor, orders: list[torch.Tensor], batch_size: int
) -> tuple[list[float], torch.Tensor]:
    """Minibatches in each epoch's order, one update each, then the full-training-set MSE.

    Returns the per-epoch MSE and the parameters before the first update and after each one
    (updates + 1, n_features + 1), kept on the device until the end: recording costs no synchronisation."""
    losses = []
    record = _ParameterRecord(backend)
    # disable=None: a bar on a terminal, silence in logs, CI and tests.
    bar = tqdm(orders, desc=f"train@{backend.name}", unit="epoch", disable=None, leave=False, mininterval=0.5)
    for epoch, order in enumerate(bar, start=1):
        for batch in torch.split(order.to(x.device), batch_size):
            backend.step(x[batch], y[batch])
            record.take()
        loss = backend.loss(x, y).item()
        if not math.isfinite(loss):
            raise TrainError(f"{backend.name}: diverged at epoch {epoch} (train_mse={loss})")
        losses.append(loss)
    return losses, torch.stack(record.rows)


def batch_mse(
    x: torch.Tensor, y: torch.Tensor, step_params: torch.Tensor, orders: list[torch.Tensor], batch_size: int
) -> torch.Tensor:
    """Each update's minibatch MSE at the parameters before it, (updates,): computed once after training,
    for every update at once and by one formula for every backend, so the record costs no work per step."""
    epochs, (full, rest) = len(orders), divmod(x.size(0), batch_size)
    per_epoch = full + (rest > 0)
    order = torch.stack(orders).to(x.device)  # (epochs, n)
    update = torch.arange(epochs * per_epoch, device=x.device).view(epochs, per_epoch)
    groups = [(order[:, : full * batch_size].reshape(-1, batch_size), update[:, :full].reshape(-1))]
    if rest:  # each epoch's last, smaller minibatch
        groups.append((order[:, full * batch_size :], update[:, full]))
    out = torch.empty(epochs * per_epoch, dtype=x.dtype, device=x.device)
    for ids, at in groups:
        before = step_params[at]  # record row u holds the parameters update u + 1 (0-based u) starts from
        predicted = (x[ids] * before[:, None, :-1]).sum(-1) + before[:, -1:]
        out[at] = ((predicted - y[ids]) ** 2).mean(1)
    return out


def minibatches(
    orders: list[torch.Tensor], batch_size: int, rows: np.ndarray
) -> list[tuple[int, int, tuple[int, ...]]]:
    """(epoch, batch in epoch, raw-table rows) of each update, as fit takes them."""
    table_rows = rows[torch.stack(orders).numpy()].tolist()  # (epochs, n): each epoch's shuffled raw rows
    starts = range(0, len(rows), batch_size)
    return [
        (epoch, batch, tuple(shuffled[start : start + batch_size]))
        for epoch, shuffled in enumerate(table_rows, start=1)
        for batch, start in enumerate(starts, start=1)
    ]


def train(
    backend_name: str, table: Table, params: TrainParams, orders: list[torch.Tensor] | None = None
) -> TrainResult:
    """Train one backend on a prepared table; `orders` overrides the seeded shuffles (tests inject faults)."""
    n = len(table.y)
    if params.batch_size > n:
        raise TrainError(f"train.batch_size={params.batch_size} exceeds the {n} training rows")
    device = resolve_device(params.device)
    dtype = getattr(torch, params.dtype)
    x = torch.from_numpy(table.x).to(device=device, dtype=dtype)  # (n, f)
    y = torch.from_numpy(table.y).to(device=device, dtype=dtype)  # (n,)
    if orders is None:
        orders = shuffle_orders(n, params.epochs, params.seed)
    backend = backends.get(backend_name)(x.size(1), params.lr, dtype, device)
    losses, step_params = fit(backend, x, y, orders, params.batch_size)
    weight, bias = backend.parameters()
    return TrainResult(
        backend=backend_name,
        device=device.type,
        dtype=params.dtype,
        weight=[exact_float(v, params.dtype) for v in weight.cpu().tolist()],
        bias=exact_float(bias.item(), params.dtype),
        losses=[exact_float(v, params.dtype) for v in losses],
        minibatches=minibatches(orders, params.batch_size, table.rows),
        # Exact values of the dtype already: float_text writes them shortest, with no exact_float round trip.
        step_params=step_params.cpu().tolist(),
        batch_losses=batch_mse(x, y, step_params, orders, params.batch_size).cpu().tolist(),
    )


def write_result(result: TrainResult, features: tuple[str, ...], model: Path, curve: Path, steps: Path) -> None:
    write_json(
        model,
        {
            "backend": result.backend,
            "bias": result.bias,
            "device": result.device,
            "dtype": result.dtype,
            "features": list(features),
            "weight": result.weight,
        },
    )
    write_csv(
        curve,
        CURVE_HEADER,
        ((epoch, float_text(loss, result.dtype)) for epoch, loss in enumerate(result.losses, start=1)),
    )
    write_steps(
        steps, parameter_names(features), result.minibatches, result.step_params, result.batch_losses, result.dtype
    )


def write_outputs(
    backend: str, train_csv: Path, model: Path, curve: Path, steps: Path, params: TrainParams
) -> tuple[TrainResult, str]:
    """Train one backend on the shuffle orders drawn from params.seed; write its model, loss curve and steps.

    Returns the result and the orders' digest (the same in every backend's stage)."""
    table = read_table(train_csv)
    orders = shuffle_orders(len(table.y), params.epochs, params.seed)
    result = train(backend, table, params, orders)
    write_result(result, table.features, model, curve, steps)
    return result, orders_digest(orders)


def stage(
    params_yaml: Path, backend: str, train: Path, model: Path, curve: Path, steps: Path, say: Callable[[str], None]
) -> int:
    """The train stage of one backend (dvc.yaml has one per backend). A tracking server that does not
    answer fails it before minutes of training, not after them at the track stage."""
    from adaline_repro.core.tracking_uri import check_tracking_store, tracking_uri

    params = load_params(params_yaml)
    check_tracking_store(tracking_uri())
    result, orders = write_outputs(backend, train, model, curve, steps, params.train)
    say(
        f"train@{result.backend}: {len(result.losses)} epochs on {result.device}, "
        f"final train_mse {result.losses[-1]}, shuffle orders {orders}"
    )
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    found = parser("train", "Train one backend (dvc.yaml has one stage per backend).", "train", "model", "curve",
                   "steps")  # fmt: skip
    found.add_argument("--backend", required=True, choices=backends.BACKENDS, help="a name in the backend registry")
    args = found.parse_args(argv)
    return stage(args.params, args.backend, args.train, args.model, args.curve, args.steps, say)


if __name__ == "__main__":
    sys.exit(run_stage(main))
