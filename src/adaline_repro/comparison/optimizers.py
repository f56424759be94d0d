"""Optimizers other than the lecture's plain SGD, as torch.optim computes them, in float64, with their state
built from the record's own gradients since the first update: momentum (with dampening), Nesterov momentum,
weight decay (or an L2 penalty on the weights alone), Adam, AdamW, Adamax, RMSprop and Adagrad. Each is
fitted (mechanisms.least_squares) on as many updates from the diverging step as it has parameters, and must
then reproduce the rest of its span.

Every state here is a sum (Adamax: a maximum) of past gradients or their squares weighted by powers of a
decay, so a prediction at update j is one vector operation over updates 1..j: no loop over the run.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from adaline_repro.comparison.mechanisms import Mechanism, least_squares, num, simplest
from adaline_repro.comparison.replay import FOLLOWING, Lecture, Predict, window
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

ADAM_EPS, ADAGRAD_EPS = 1e-8, 1e-10  # torch.optim's defaults (Adam's and RMSprop's eps are both 1e-8)


def decayed(values: np.ndarray, decay: float, j: int) -> np.ndarray:
    """sum over i = 1..j of decay^(j - i) * values[i]: the state a decay of `decay` has after update j."""
    return decay ** np.arange(j - 1, -1, -1, dtype=np.float64) @ values[1 : j + 1]


def momentum(lecture: Lecture, g: np.ndarray, mu: float, dampening: float, nesterov: bool) -> Predict:
    """torch.optim.SGD's buffer: b = g at the first update, then b = mu * b + (1 - dampening) * g; the step is
    b, or g + mu * b with Nesterov."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        buf = mu ** (j - 1) * g[1] + (1 - dampening) * decayed(g, mu, j) - (1 - dampening) * mu ** (j - 1) * g[1]
        return rec.params[j - 1] - lecture.lr * (g[j] + mu * buf if nesterov else buf)

    return predict


def adam(g: np.ndarray, lr: float, beta1: float, beta2: float, decay: float = 0.0) -> Predict:
    """torch.optim.Adam (decay: AdamW's decoupled weight decay), bias-corrected moments from the first update."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        m = (1 - beta1) * decayed(g, beta1, j) / (1 - beta1**j)
        v = (1 - beta2) * decayed(g**2, beta2, j) / (1 - beta2**j)
        return rec.params[j - 1] * (1 - lr * decay) - lr * m / (np.sqrt(v) + ADAM_EPS)

    return predict


def adamax(g: np.ndarray, lr: float, beta1: float, beta2: float) -> Predict:
    """torch.optim.Adamax: Adam's first moment over an infinity norm u = max(beta2 * u, |g| + eps) from u = 0,
    which is the largest of beta2^(j - i) * (|g_i| + eps) over the updates so far."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        m = (1 - beta1) * decayed(g, beta1, j)
        u = (beta2 ** np.arange(j - 1, -1, -1, dtype=np.float64)[:, None] * (np.abs(g[1 : j + 1]) + ADAM_EPS)).max(0)
        return rec.params[j - 1] - lr / (1 - beta1**j) * m / u

    return predict


def rmsprop(g: np.ndarray, lr: float, alpha: float) -> Predict:
    """torch.optim.RMSprop: v = alpha * v + (1 - alpha) * g^2 from v = 0, step g / (sqrt(v) + eps)."""
    return lambda rec, j: rec.params[j - 1] - lr * g[j] / (np.sqrt((1 - alpha) * decayed(g**2, alpha, j)) + ADAM_EPS)


def adagrad(g: np.ndarray, lr: float) -> Predict:
    """torch.optim.Adagrad: step g / (sqrt(sum of every g^2 so far) + eps)."""
    return lambda rec, j: rec.params[j - 1] - lr * g[j] / (np.sqrt((g[1 : j + 1] ** 2).sum(axis=0)) + ADAGRAD_EPS)


def families(lecture: Lecture, rec: Steps, k: int, name: str, g: np.ndarray, tol: CompareParams) -> Iterator[Mechanism]:
    """Each optimizer whose fitted parameters reproduce the suspect's span; `g`: gradients() of the record."""
    step = float(np.abs(rec.params[k] - rec.params[k - 1]).max())  # an adaptive step's size: about its lr
    candidates = [  # rule, (θ -> mechanism), start, lower, upper, (θ -> evidence)
        ("momentum", lambda t: momentum(lecture, g, t[0], t[1], False), (0.9, 0.0), (0, 0), (0.9999, 1),
         lambda t: f"{name} updates with momentum {num(t[0])}"
                   + (f" and dampening {num(t[1])}" if t[1] else "") + " (torch.optim.SGD's momentum=)"),
        ("nesterov", lambda t: momentum(lecture, g, t[0], 0.0, True), (0.9,), (0,), (0.9999,),
         lambda t: f"{name} updates with Nesterov momentum {num(t[0])} (torch.optim.SGD(..., nesterov=True))"),
        ("weight_decay", lambda t: lecture.weight_decay(t[0]), (0.01,), (0,), (np.inf,),
         lambda t: f"{name} adds weight decay {num(t[0])} x its parameters to the gradient"),
        ("weight_decay", lambda t: lecture.weight_decay(t[0], weights_only=True), (0.01,), (0,), (np.inf,),
         lambda t: f"{name} adds weight decay {num(t[0])} x its weights (not the bias) to the gradient (an L2 "
                   f"penalty {num(t[0] / 2)} x the weights' squares in the loss)"),
        ("adaptive_optimizer", lambda t: adam(g, *t), (step, 0.9, 0.999), (1e-12, 0, 0), (np.inf, 0.9999, 0.99999),
         lambda t: f"{name} updates with Adam: learning rate {num(t[0])}, β1 {num(t[1])}, β2 {num(t[2])} "
                   f"(torch.optim.Adam, eps {ADAM_EPS:g})"),
        ("adaptive_optimizer", lambda t: adam(g, *t), (step, 0.9, 0.999, 0.01), (1e-12, 0, 0, 0),
         (np.inf, 0.9999, 0.99999, np.inf),
         lambda t: f"{name} updates with AdamW: learning rate {num(t[0])}, β1 {num(t[1])}, β2 {num(t[2])}, "
                   f"weight decay {num(t[3])} (torch.optim.AdamW, eps {ADAM_EPS:g})"),
        ("adaptive_optimizer", lambda t: adamax(g, *t), (step, 0.9, 0.999), (1e-12, 0, 0), (np.inf, 0.9999, 0.99999),
         lambda t: f"{name} updates with Adamax: learning rate {num(t[0])}, β1 {num(t[1])}, β2 {num(t[2])} "
                   f"(torch.optim.Adamax, eps {ADAM_EPS:g})"),
        ("adaptive_optimizer", lambda t: rmsprop(g, *t), (step * 0.1, 0.99), (1e-12, 0), (np.inf, 0.99999),
         lambda t: f"{name} updates with RMSprop: learning rate {num(t[0])}, alpha {num(t[1])} "
                   f"(torch.optim.RMSprop, eps {ADAM_EPS:g})"),
        ("adaptive_optimizer", lambda t: adagrad(g, t[0]), (step,), (1e-12,), (np.inf,),
         lambda t: f"{name} updates with Adagrad: learning rate {num(t[0])} (torch.optim.Adagrad)"),
    ]  # fmt: skip
    for rule, make, start, lower, upper, words in candidates:
        fit = range(k, min(k + len(start), rec.updates + 1))
        theta = least_squares(make, start, lower, upper, rec, fit, tol) if len(fit) == len(start) else None
        steps = window(rec, k, fit[-1])
        if theta is not None and steps[-1] - fit[-1] >= FOLLOWING:
            theta = simplest(make, theta, rec, steps, tol)
            if theta is not None and theta[0] > 0:  # momentum 0 with dampening d is a learning rate's factor 1 - d
                yield Mechanism(rule, make(theta), words(theta), steps)
