"""Learning-rate schedules: each update the lecture's times a factor that follows a shape over a clock, as
torch.optim.lr_scheduler computes it.

- shapes: a step (the rate times gamma every s epochs or updates, from the diverging update: StepLR),
  exponential (gamma^t: ExponentialLR), cosine ((1 + cos(pi t / T)) / 2: CosineAnnealingLR with eta_min 0) and a
  linear warm-up (min(1, f + s t): LinearLR);
- clocks: t counts updates, or epochs (the scheduler stepped once an epoch), or the updates within the
  epoch (a scheduler made anew in each epoch, so it restarts).

The factor of each update is read off the record (replay.factor); a shape's parameters are fitted on the
first updates with as many clock values as it has parameters, and it must then reproduce every update to
the end of the next epoch, which is where a clock that restarts, or steps once an epoch, shows itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np

from adaline_repro.comparison.mechanisms import Mechanism, num, simplest
from adaline_repro.comparison.replay import Lecture, Predict, factor, window
from adaline_repro.core.params import CompareParams
from adaline_repro.core.results import Steps

Clock = Callable[[Steps, int], int]
CLOCKS: dict[str, Clock] = {  # what the scheduler counts, from 0 at the first update
    "per update": lambda rec, j: j - 1,
    "per epoch": lambda rec, j: int(rec.epoch[j]) - 1,
    "restarting every epoch": lambda rec, j: int(rec.batch[j]) - 1,
}


def exponential(t: int, theta: np.ndarray) -> float:
    return float(theta[0] ** t)


def cosine(t: int, theta: np.ndarray) -> float:
    return 0.5 * (1 + math.cos(math.pi * t / theta[0]))


def warm_up(t: int, theta: np.ndarray) -> float:
    """LinearLR(start_factor=theta[0], total_iters=theta[1])."""
    return min(1.0, float(theta[0] + (1 - theta[0]) * t / theta[1]))


def _fit_exponential(points: list[tuple[int, float]]) -> np.ndarray | None:
    t, c = points[0]
    return np.array([c ** (1 / t)]) if t > 0 and c > 0 else None


def _fit_cosine(points: list[tuple[int, float]]) -> np.ndarray | None:
    t, c = points[0]
    return np.array([math.pi * t / math.acos(2 * c - 1)]) if t > 0 and 0 < c < 1 else None


def _fit_warm_up(points: list[tuple[int, float]]) -> np.ndarray | None:
    (t1, c1), (t2, c2) = points
    slope = (c2 - c1) / (t2 - t1)
    start = c1 - slope * t1
    return np.array([start, (1 - start) / slope]) if slope > 0 and start < 1 else None


SHAPES = {  # name -> (factor of t, fit from the first (t, factor) points, how many points it needs)
    "exponential": (exponential, _fit_exponential, 1),
    "cosine": (cosine, _fit_cosine, 1),
    "warm-up": (warm_up, _fit_warm_up, 2),
}


def _words(shape: str, clock: str, theta: np.ndarray) -> str:
    unit = "epoch" if clock == "per epoch" else "update"
    if shape == "exponential":
        return f"learning rate x {num(theta[0])} per {unit} (ExponentialLR(gamma={num(theta[0])}) stepped {clock})"
    if shape == "cosine":
        return (f"learning rate annealed on a cosine to 0 over {num(theta[0])} {unit}s "
                f"(CosineAnnealingLR(T_max={num(theta[0])}) stepped {clock})")  # fmt: skip
    over = theta[1]
    return (f"learning rate warmed up linearly from {num(theta[0])} x to 1 x over {num(over)} {unit}s "
            f"(LinearLR(start_factor={num(theta[0])}, total_iters={num(over)}) stepped {clock})")  # fmt: skip


def families(lecture: Lecture, rec: Steps, k: int, name: str, tol: CompareParams) -> Iterator[Mechanism]:
    """Each schedule that reproduces the suspect from step k to the end of the next epoch."""
    span = window(rec, k, epochs=2)
    factors = {j: factor(lecture, rec, j) for j in span}
    if factors[k] is None or factors[k] <= 0:
        return
    yield from _steps(lecture, rec, k, name, span, factors[k], tol)
    for clock, ticks in CLOCKS.items():
        for shape, (curve, fit, needed) in SHAPES.items():
            points = _first_ticks(rec, span, factors, ticks, needed)
            last = max((j for j, _, _ in points), default=k)
            steps = window(rec, k, last, epochs=2)
            theta = fit([(t, c) for _, t, c in points]) if len(points) == needed else None
            if theta is None:
                continue
            theta = simplest(lambda t, curve=curve, ticks=ticks: _scaled(lecture, curve, ticks, t), theta, rec,
                             steps, tol)  # fmt: skip
            if theta is not None:
                words = f"{name}'s {_words(shape, clock, theta)}"
                yield Mechanism("lr_schedule", _scaled(lecture, curve, ticks, theta), words, steps, last)


def _steps(
    lecture: Lecture, rec: Steps, k: int, name: str, span: range, first: float, tol: CompareParams
) -> Iterator[Mechanism]:
    """StepLR: the rate times gamma every s epochs (or updates), the first time at step k, so s is k's clock
    value: tried once an epoch where k starts an epoch, then per update."""
    for clock in ("per epoch", "per update"):
        ticks = CLOCKS[clock]
        every = ticks(rec, k)
        if k == 1 or every < 1 or ticks(rec, k - 1) == every:
            continue  # the rate was right until k, so k starts the first step of the clock
        curve = lambda t, theta, every=every: float(theta[0] ** (t // every))  # noqa: E731
        gamma = simplest(lambda t, curve=curve, ticks=ticks: _scaled(lecture, curve, ticks, t), np.array([first]),
                         rec, span, tol)  # fmt: skip
        if gamma is not None:
            unit = "epoch" if clock == "per epoch" else "update"
            once = "" if ticks(rec, span[-1]) >= 2 * every else ", or a learning rate changed once there"
            g = num(gamma[0])
            words = (f"learning rate is x {g} every {every} {unit}s from {rec.label(k)} on (StepLR(step_size={every}, "
                     f"gamma={g}) stepped {clock}{once})")  # fmt: skip
            if every == 1:  # StepLR(step_size=1) is ExponentialLR
                words = _words("exponential", clock, gamma)
            yield Mechanism("lr_schedule", _scaled(lecture, curve, ticks, gamma), f"{name}'s {words}", span, k)
            return


def _scaled(lecture: Lecture, curve: Callable[[int, np.ndarray], float], ticks: Clock, theta: np.ndarray) -> Predict:
    """Plain SGD with update j's learning rate times curve(its clock's value)."""
    return lecture.scaled(lambda rec, j: curve(ticks(rec, j), theta))


def _first_ticks(
    rec: Steps, span: range, factors: dict[int, float | None], ticks: Clock, needed: int
) -> list[tuple[int, int, float]]:
    """(step, clock value, factor) of the first `needed` steps of the span with clock values of their own."""
    points: list[tuple[int, int, float]] = []
    for j in span:
        c = factors[j]
        if c is not None and ticks(rec, j) not in {t for _, t, _ in points} and len(points) < needed:
            points.append((j, ticks(rec, j), c))
    return points
