"""Optimizers other than the lecture's plain SGD, as torch.optim computes them, in float64, with their state
built from the record's own gradients since the first update: momentum (with dampening), Nesterov momentum,
weight decay (or an L2 penalty on the weights alone), Adam, AdamW, Adamax, RMSprop and Adagrad. Each is
fitted (mechanisms.least_squares) on as many updates from the diverging step as it has parameters (two at
least), and must then reproduce the rest of its span.

Every state here is a sum (Adamax: a maximum) of past gradients or their squares weighted by powers of a
decay, so a prediction at update j is one vector operation over updates 1..j: no loop over the run.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from adaline_repro.comparison.mechanisms import Mechanism, least_squares, num, simplest
from adaline_repro.comparison.replay import Lecture, Predict, window
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

ADAM_EPS, ADAGRAD_EPS = 1e-8, 1e-10  # torch.optim's defaults (Adam's and RMSprop's eps are both 1e-8)


def decayed(values: np.ndarray, decay: float, j: int) -> np.ndarray:
    """sum over i = 1..j of decay^(j - i) * values[i]: the state a decay of `decay` has after update j."""
    return decay ** np.arange(j - 1, -1, -1, dtype=np.float64) @ values[1 : j + 1]


def momentum(lecture: Lecture, mu: float, dampening: float, nesterov: bool) -> Predict:
    """torch.optim.SGD's buffer: b = g at the first update, then b = mu * b + (1 - dampening) * g; the step is
    b, or g + mu * b with Nesterov."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        g = lecture.history(rec)
        buf = dampening * mu ** (j - 1) * g[1] + (1 - dampening) * decayed(g, mu, j)
        return rec.params[j - 1] - lecture.lr * (g[j] + mu * buf if nesterov else buf)

    return predict


def adam(lecture: Lecture, lr: float, beta1: float, beta2: float, decay: float = 0.0) -> Predict:
    """torch.optim.Adam (decay: AdamW's decoupled weight decay), bias-corrected moments from the first update."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        g = lecture.history(rec)
        m = (1 - beta1) * decayed(g, beta1, j) / (1 - beta1**j)
        v = (1 - beta2) * decayed(g**2, beta2, j) / (1 - beta2**j)
        return rec.params[j - 1] * (1 - lr * decay) - lr * m / (np.sqrt(v) + ADAM_EPS)

    return predict


def adamax(lecture: Lecture, lr: float, beta1: float, beta2: float) -> Predict:
    """torch.optim.Adamax: Adam's first moment over an infinity norm u = max(beta2 * u, |g| + eps) from u = 0,
    which is the largest of beta2^(j - i) * (|g_i| + eps) over the updates so far."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        g = lecture.history(rec)
        m = (1 - beta1) * decayed(g, beta1, j)
        u = (beta2 ** np.arange(j - 1, -1, -1, dtype=np.float64)[:, None] * (np.abs(g[1 : j + 1]) + ADAM_EPS)).max(0)
        return rec.params[j - 1] - lr / (1 - beta1**j) * m / u

    return predict


def rmsprop(lecture: Lecture, lr: float, alpha: float) -> Predict:
    """torch.optim.RMSprop: v = alpha * v + (1 - alpha) * g^2 from v = 0, step g / (sqrt(v) + eps)."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        g = lecture.history(rec)
        return rec.params[j - 1] - lr * g[j] / (np.sqrt((1 - alpha) * decayed(g**2, alpha, j)) + ADAM_EPS)

    return predict


def adagrad(lecture: Lecture, lr: float) -> Predict:
    """torch.optim.Adagrad: step g / (sqrt(sum of every g^2 so far) + eps)."""

    def predict(rec: Steps, j: int) -> np.ndarray:
        g = lecture.history(rec)
        return rec.params[j - 1] - lr * g[j] / (np.sqrt((g[1 : j + 1] ** 2).sum(axis=0)) + ADAGRAD_EPS)

    return predict


BETAS = ((0, 0), (0.9999, 0.99999))  # bounds of beta1 and beta2: a decay of 1 would never forget


def families(lecture: Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """Each optimizer whose fitted parameters reproduce the suspect's span."""
    step = float(np.abs(rec.params[k] - rec.params[k - 1]).max())  # an adaptive step's size: about its lr
    (b1, b2), (top1, top2) = BETAS
    adaptive = "adaptive_optimizer"
    candidates = [  # rule, (θ -> mechanism), start, lower, upper, (θ -> evidence)
        ("momentum", lambda t: momentum(lecture, t[0], t[1], False), (0.9, 0.0), (0, 0), (top1, 1),
         lambda t: f"{name} updates with momentum {num(t[0])}"
                   + (f" and dampening {num(t[1])}" if t[1] else "") + " (torch.optim.SGD's momentum=)"),
        ("nesterov", lambda t: momentum(lecture, t[0], 0.0, True), (0.9,), (0,), (top1,),
         lambda t: f"{name} updates with Nesterov momentum {num(t[0])} (torch.optim.SGD(..., nesterov=True))"),
        ("weight_decay", lambda t: lecture.weight_decay(t[0]), (0.01,), (0,), (np.inf,),
         lambda t: f"{name} adds weight decay {num(t[0])} x its parameters to the gradient"),
        ("weight_decay", lambda t: lecture.weight_decay(t[0], weights_only=True), (0.01,), (0,), (np.inf,),
         lambda t: f"{name} adds weight decay {num(t[0])} x its weights (not the bias) to the gradient "
                   f"(an L2 penalty {num(t[0] / 2)} x the weights' squares in the loss)"),
        (adaptive, lambda t: adam(lecture, *t), (step, 0.9, 0.999), (1e-12, b1, b2), (np.inf, top1, top2),
         lambda t: f"{name} updates with Adam: learning rate {num(t[0])}, β1 {num(t[1])}, β2 {num(t[2])} "
                   f"(torch.optim.Adam, eps {ADAM_EPS:g})"),
        (adaptive, lambda t: adam(lecture, *t), (step, 0.9, 0.999, 0.01), (1e-12, b1, b2, 0),
         (np.inf, top1, top2, np.inf),
         lambda t: f"{name} updates with AdamW: learning rate {num(t[0])}, β1 {num(t[1])}, β2 {num(t[2])}, "
                   f"weight decay {num(t[3])} (torch.optim.AdamW, eps {ADAM_EPS:g})"),
        (adaptive, lambda t: adamax(lecture, *t), (step, 0.9, 0.999), (1e-12, b1, b2), (np.inf, top1, top2),
         lambda t: f"{name} updates with Adamax: learning rate {num(t[0])}, β1 {num(t[1])}, β2 {num(t[2])} "
                   f"(torch.optim.Adamax, eps {ADAM_EPS:g})"),
        (adaptive, lambda t: rmsprop(lecture, *t), (step * 0.1, 0.99), (1e-12, 0), (np.inf, top2),
         lambda t: f"{name} updates with RMSprop: learning rate {num(t[0])}, alpha {num(t[1])} "
                   f"(torch.optim.RMSprop, eps {ADAM_EPS:g})"),
        (adaptive, lambda t: adagrad(lecture, t[0]), (step,), (1e-12,), (np.inf,),
         lambda t: f"{name} updates with Adagrad: learning rate {num(t[0])} (torch.optim.Adagrad)"),
    ]  # fmt: skip
    for rule, make, start, lower, upper, words in candidates:
        fit = range(k, min(k + max(len(start), 2), rec.updates + 1))  # two at least: a weak effect is noisy in one
        theta = least_squares(make, start, lower, upper, rec, fit, tol) if len(fit) >= len(start) else None
        steps = window(rec, k, fit[-1])
        if theta is not None:
            theta = simplest(make, theta, rec, steps, tol)
            if theta is not None and theta[0] > 0:  # momentum 0 with dampening d is a learning rate's factor 1 - d
                yield Mechanism(rule, make(theta), words(theta), steps, fit[-1])
