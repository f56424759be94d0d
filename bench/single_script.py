"""Baseline for the benchmarks: what a user would write instead of the pipeline.

One process: read Iris (numpy, from scikit-learn's bundled CSV without importing scikit-learn), the
lecture's split, the three trainings (manual, autograd, module), and unless --no-mlflow each backend
logged to MLflow with one log_batch. Tracking URI from MLFLOW_TRACKING_URI as usual.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


def load(seed: int = 123) -> tuple[torch.Tensor, ...]:
    path = Path(importlib.util.find_spec("sklearn").origin).parent / "datasets" / "data" / "iris.csv"
    with open(path) as fh:
        rows = list(csv.reader(fh))[1:]
    data = np.array([[float(v) for v in r[:4]] for r in rows], dtype=np.float32)
    target = np.array([int(r[4]) for r in rows])
    x = torch.tensor(data[50:150][:, [1, 2]])
    y = torch.tensor((target[50:150] == 2).astype(np.int64))
    torch.manual_seed(seed)
    p = torch.randperm(100)
    x, y = x[p], y[p]
    x_train, x_test, y_train, y_test = x[p[:70]], x[p[70:]], y[p[:70]], y[p[70:]]
    mu, sd = x_train.mean(0), x_train.std(0)
    return (x_train - mu) / sd, (x_test - mu) / sd, y_train, y_test


def train(
    kind: str, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int, bs: int = 10
) -> tuple[list[float], Callable[[torch.Tensor], torch.Tensor], float, int]:
    """(per-epoch MSE, forward function, seconds spent in minibatch steps, number of steps)."""
    yf = y.float()
    if kind == "module":
        lin = torch.nn.Linear(x.size(1), 1)
        with torch.no_grad():
            lin.weight.zero_()
            lin.bias.zero_()
        opt = torch.optim.SGD(lin.parameters(), lr=lr)

        def fwd(v: torch.Tensor) -> torch.Tensor:
            return lin(v).view(-1)
    else:
        w = torch.zeros(x.size(1), 1, requires_grad=kind == "autograd")
        b = torch.zeros(1, requires_grad=kind == "autograd")

        def fwd(v: torch.Tensor) -> torch.Tensor:
            return (v @ w + b).view(-1)

    g = torch.Generator().manual_seed(seed)
    cost, step_s, steps = [], 0.0, 0
    for _ in range(epochs):
        t = time.perf_counter()
        for mb in torch.split(torch.randperm(len(yf), generator=g), bs):
            xb, yb = x[mb], yf[mb]
            if kind == "manual":
                r = 2 * (yb - fwd(xb))
                with torch.no_grad():
                    w += lr * (xb.t() @ r.view(-1, 1)) / len(yb)
                    b += lr * r.sum() / len(yb)
            elif kind == "autograd":
                loss = torch.mean((fwd(xb) - yb) ** 2)
                gw, gb = torch.autograd.grad(loss, [w, b])
                with torch.no_grad():
                    w -= lr * gw
                    b -= lr * gb
            else:
                loss = F.mse_loss(fwd(xb), yb)
                opt.zero_grad()
                loss.backward()
                opt.step()
            steps += 1
        step_s += time.perf_counter() - t
        with torch.no_grad():
            cost.append(torch.mean((fwd(x) - yf) ** 2).item())
    return cost, fwd, step_s, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=0.01)
    args = parser.parse_args()
    x_train, x_test, y_train, y_test = load()
    results = {}
    for kind in ("manual", "autograd", "module"):
        cost, fwd, step_s, steps = train(kind, x_train, y_train, args.epochs, args.lr, 123)
        with torch.no_grad():
            acc = {n: ((fwd(x) > 0.5).long() == y).float().mean().item() for n, x, y in
                   (("train", x_train, y_train), ("test", x_test, y_test))}  # fmt: skip
        results[kind] = (cost, acc)
        print(f"{kind}: train {acc['train']:.4f} test {acc['test']:.4f} step_us {1e6 * step_s / steps:.1f}")
    if args.no_mlflow:
        return
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient()
    found = client.get_experiment_by_name("single-script")
    experiment = found.experiment_id if found else client.create_experiment("single-script")
    now = int(time.time() * 1000)
    for kind, (cost, acc) in results.items():
        run = client.create_run(experiment, run_name=kind)
        metrics = [Metric("train_mse", c, now, i + 1) for i, c in enumerate(cost)]
        metrics += [Metric(f"{n}_accuracy", v, now, 0) for n, v in acc.items()]
        params = [Param(k, str(v)) for k, v in {"backend": kind, "epochs": args.epochs, "lr": args.lr}.items()]
        client.log_batch(run.info.run_id, metrics=metrics, params=params)
        client.set_terminated(run.info.run_id)


if __name__ == "__main__":
    main()
