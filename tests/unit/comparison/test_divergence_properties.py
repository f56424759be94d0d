"""The divergence locator never raises and never loses the verdict: for arbitrary step records (random,
identical, ones that stop moving, NaN or inf from some step on, other lengths or epochs, other parameters)
it returns no divergence only when the records agree everywhere, else a step and a named cause or
"unexplained", which reads back from its JSON as it was written, and the compare stage writes its JSON and
Markdown report, the plots' data and the figure either way (curves of other lengths, NaN and inf included)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adaline_repro.comparison import (
    Divergence,
    Lecture,
    Report,
    compare,
    figure,
    first_divergence,
    markdown,
    sentence,
    summary,
)
from adaline_repro.comparison.causes import RULES
from adaline_repro.comparison.replay import FOLLOWING
from adaline_repro.comparison.tolerance import close, close_update
from adaline_repro.core.params import CompareParams, load_params
from adaline_repro.core.results import Steps
from adaline_repro.stages import compare as compare_stage
from tests.conftest import PATHS, REPO
from tests.unit.comparison.conftest import outputs

TOL = CompareParams(atol=1e-6, rtol=1e-5)
NAMES = ("weight[a]", "weight[b]", "bias")
# The training table of the `lecture` fixture (rows 0..20; steps() takes rows i and i + 1 at update i) and
# its learning rate, as written to train.csv (6 significant digits, read back as float32).
X = np.float32(np.round(np.random.default_rng(0).normal(size=(21, 2)), 5)).astype(np.float64)
Y = np.arange(21) % 2
LR = 0.05


def lecture_step(p: np.ndarray, i: int, factor: float = 1.0) -> np.ndarray:
    """The lecture's update i on steps()' minibatch (rows i and i + 1), written here apart from the code under
    test: p + lr * 2 / n * x^T (y - x p) with n = 2 (learning rate times `factor`: a bug records share)."""
    xb, yb = np.hstack([X[[i, i + 1]], np.ones((2, 1))]), Y[[i, i + 1]]
    with np.errstate(all="ignore"):
        return p + factor * LR * (xb.T @ (yb - xb @ p))


def sgd(start: np.ndarray, updates: int, factor: float = 1.0) -> np.ndarray:
    out = [start]
    for i in range(1, updates + 1):
        out.append(lecture_step(out[-1], i, factor))
    return np.array(out)


def follows(params: np.ndarray) -> bool:
    """Whether every update of a steps() record is the lecture's, replayed from its own parameters."""
    return all(close_update(params[j - 1], lecture_step(params[j - 1], j), params[j], TOL).all()
               for j in range(1, len(params)))  # fmt: skip


def steps(params: np.ndarray, batch: int = 2, names: tuple[str, ...] = NAMES) -> Steps:
    k = len(params) - 1
    index = np.arange(1, k + 1)
    epoch = np.concatenate([[0], (index - 1) // batch + 1]).astype(np.int64)
    within = np.concatenate([[0], (index - 1) % batch + 1]).astype(np.int64)
    rows = ((), *((int(i), int(i) + 1) for i in index))
    return Steps(names, epoch, within, rows, params, np.full(k + 1, np.nan))


@st.composite
def trajectory(draw, base: np.ndarray) -> np.ndarray:
    """`base`, or a variant of it: redrawn, frozen from a step, scaled or zeroed updates from a step, NaN or
    inf from a step, cut shorter or made longer."""
    mode = draw(st.sampled_from(["same", "random", "frozen", "scaled", "zeroed", "nan", "inf", "cut", "longer"]))
    out = base.copy()
    s = draw(st.integers(0, len(base) - 1))
    if mode == "random":
        out = draw(arrays(len(base), base.shape[1]))
    elif mode == "frozen":
        out[s:] = out[s]
    elif mode in ("scaled", "zeroed") and s:
        factor = 0.0 if mode == "zeroed" else draw(st.sampled_from([-1.0, 0.5, 1.0 + 1e-9, 2.0, 10.0]))
        updates = np.diff(base, axis=0)
        out = np.concatenate(
            [base[:1], base[:1] + np.cumsum(np.concatenate([updates[: s - 1], factor * updates[s - 1 :]]), axis=0)]
        )
    elif mode == "nan":
        out[s:, draw(st.integers(0, base.shape[1] - 1))] = np.nan
    elif mode == "inf":
        out[s:] = draw(st.sampled_from([np.inf, -np.inf]))
    elif mode == "cut":
        out = out[: max(1, s)]
    elif mode == "longer":
        out = np.concatenate([out, draw(arrays(draw(st.integers(1, 5)), base.shape[1]))])
    return out


def arrays(n: int, width: int) -> st.SearchStrategy:
    values = st.floats(-1e6, 1e6, allow_nan=False, width=32)
    return st.lists(st.lists(values, min_size=width, max_size=width), min_size=n, max_size=n).map(
        lambda rows: np.array(rows, dtype=np.float64).reshape(n, width)
    )


@st.composite
def records(draw) -> dict[str, Steps]:
    n = draw(st.integers(1, 12))
    kind = draw(st.sampled_from(["random", "lecture", "shared bug"]))
    start = draw(arrays(1, len(NAMES)).map(lambda a: a[0] / 1e6))  # within [-1, 1]: the lecture's scale
    factor = draw(st.sampled_from([0.5, 1.001, 3.0]))
    base = draw(arrays(n, len(NAMES))) if kind == "random" else sgd(start, n - 1, 1.0 if kind == "lecture" else factor)
    out = {}
    for name in draw(st.sampled_from([("manual", "autograd"), ("manual", "autograd", "module")])):
        params = draw(trajectory(base))
        batch = draw(st.sampled_from([2, 2, 3]))  # sometimes other minibatches per epoch
        names = NAMES if draw(st.integers(0, 9)) else NAMES[1:]  # rarely other parameters
        out[name] = steps(params if len(names) == len(NAMES) else params[:, 1:], batch, names)
    return out


def agree_everywhere(recs: dict[str, Steps]) -> bool:
    first, *rest = recs.values()
    return all(
        r.names == first.names
        and r.params.shape == first.params.shape
        and bool(close(r.params, first.params, TOL).all())
        for r in rest
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(records())
def test_the_locator_returns_a_step_and_a_cause_or_none_only_when_the_records_agree(recs):
    found = first_divergence(recs, TOL)
    if found is None:
        assert agree_everywhere(recs)
        return
    written = json.loads(json.dumps(found.to_json(), allow_nan=False, sort_keys=True))  # what compare.json holds
    assert Divergence.from_json(written).to_json() == found.to_json()
    assert 0 <= found.step <= max(len(r.params) for r in recs.values())
    assert found.causes
    assert {c.rule for c in found.causes} <= set(RULES)
    assert summary(found).startswith(f"first divergence at {found.label}; likely cause: ")
    assert markdown(found).startswith("## First divergence")
    assert sentence(found).startswith(f"At {found.label}, ")


@pytest.fixture(scope="module")
def lecture_table(tmp_path_factory) -> Path:
    """A training table (X, Y) whose rows 1..20 are every minibatch steps() makes, so the replayed rules run."""
    path = tmp_path_factory.mktemp("lecture") / "train.csv"
    lines = ["a,b,label,row"] + [f"{a:.6g},{b:.6g},{y},{i}" for i, ((a, b), y) in enumerate(zip(X, Y, strict=True))]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def lecture(lecture_table) -> Lecture:
    return Lecture.read(lecture_table, LR)


# Rules that only a replayed mechanism names (no_update is also read off the records alone)
RECORDS_ONLY = {"non_finite", "initialisation", "shuffle_order", "drift", "length", "parameters", "unexplained"}
REPLAYED = set(RULES) - RECORDS_ONLY - {"no_update"}


def assert_every_named_mechanism_predicts(found: Divergence, recs: dict[str, Steps]) -> None:
    """Each cause a replayed mechanism names carries it, and replayed again it reproduces every update of its
    span in each record it names (the blamed one, or all that share it)."""
    for cause in found.causes:
        assert cause.rule in RULES
        if cause.rule in REPLAYED:
            assert cause.mechanism is not None
            assert cause.mechanism.rule == cause.rule
        if cause.mechanism is not None:
            named = cause.shared or (cause.backend,)
            assert all(cause.mechanism.holds(recs[n], TOL) for n in named)
            assert len(cause.mechanism.steps) >= 1 + FOLLOWING


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=records())
def test_the_replayed_rules_return_a_cause_for_any_records(recs, lecture):
    """The same, with the training table: every mechanism is replayed on arbitrary parameters, and none is
    named that does not reproduce its span, the diverging update and FOLLOWING more."""
    found = first_divergence(recs, TOL, lecture)
    if found is None:
        assert agree_everywhere(recs)
        return
    json.dumps(found.to_json(), allow_nan=False)
    assert_every_named_mechanism_predicts(found, recs)
    assert sentence(found).startswith(f"At {found.label}, ")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recs=records())
def test_against_the_lecture_compare_fails_with_a_step_and_causes_that_predict(recs, lecture):
    """compare holds every record to the lecture's update too: whatever the records, it passes only when they
    agree with each other and with the lecture at every step, and a departure reads back from its JSON."""
    report = compare(outputs(recs), TOL, lecture)
    checked = all(len(r.names) == len(NAMES) and r.updates < len(X) - 1 for r in recs.values())  # rows it holds
    followed = checked and all(follows(r.params) for r in recs.values())
    assert report.follows_lecture == (followed if checked else None)
    finite = all(np.isfinite(r.params).all() for r in recs.values())  # else training overflowed: compare fails
    epochs = len({tuple(r.epoch) for r in recs.values()}) == 1  # else the loss curves differ in length
    assert report.passed == (agree_everywhere(recs) and epochs and (followed or not checked) and finite)
    if report.agree and not report.passed:  # failed by the lecture alone: the departure is the divergence
        assert report.divergence is not None
    if report.divergence is None:
        return
    written = json.loads(json.dumps(report.to_json(), allow_nan=False, sort_keys=True))
    assert Report.from_json(written).to_json() == report.to_json()
    assert_every_named_mechanism_predicts(report.divergence, recs)
    assert sentence(report.divergence).startswith(f"At {report.divergence.label}, ")


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(recs=records())
def test_the_compare_stage_always_writes_its_report_and_its_figure(recs, tmp_path, lecture_table):
    """With the training table, so that departures from the lecture reach the report and the figure too."""
    train = lecture_table
    read = load_params(REPO / "params.yaml")
    params = msgspec.structs.replace(read, train=msgspec.structs.replace(read.train, lr=LR))
    files = PATHS.compare_files(tmp_path)
    for path in vars(files).values():  # tmp_path is shared by the examples: each must write its own
        path.unlink(missing_ok=True)
    report = compare_stage.write_outputs(params, outputs(recs), files, train)
    written = json.loads(files.json.read_text())
    assert written["passed"] == report.passed
    assert Report.from_json(written).markdown(params.compare).startswith("# Backend comparison")
    assert files.md.read_text().startswith("# Backend comparison")
    assert json.loads(files.verdict.read_text())["agree"] == report.passed
    assert files.loss_plot.read_text().startswith("epoch,backend,train_mse\n")
    assert files.diff_plot.read_text().startswith("step,pair,tol_used\n")
    drawn = figure.loss_figure({o.backend: o.curve for o in outputs(recs)}, report.divergence)
    assert drawn.startswith(b"\x89PNG")


def test_unequal_lengths_that_agree_on_every_shared_step_are_a_divergence_in_the_summary():
    base = np.cumsum(np.full((9, 3), 0.25), axis=0)
    found = first_divergence({"manual": steps(base), "module": steps(base[:6])}, TOL)
    assert found is not None
    assert found.step == 6
    text = summary(found)
    assert text.startswith("first divergence at step 6 (epoch 3, batch 2); likely cause: module: a different number")
    assert "updates manual 8, module 5" in found.causes[0].evidence
