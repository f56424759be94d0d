"""Faults injected into real backends: train each backend (one replaced by a faulty class, or all built by
a faulty shared loop), write its step record as the train stage does, read it back, and locate."""

from __future__ import annotations

import numpy as np
import pytest

from adaline_repro import backends
from adaline_repro.comparison import BackendOutputs, Divergence, Lecture, first_divergence
from adaline_repro.comparison.causes import Cause
from adaline_repro.core.results import Steps, read_steps
from adaline_repro.stages.train import train, write_result

REGISTERED = backends.get


@pytest.fixture
def lecture(data_dir, params):
    """The training table and learning rate the cause rules replay updates on, as compare gives them."""
    return Lecture.read(data_dir / "train.csv", params.train.lr)


def records(tmp_path, monkeypatch, train_table, train_params, names=backends.BACKENDS, faulty=None, orders=None,
            shared=None) -> dict[str, Steps]:  # fmt: skip
    """Each backend's step record, trained with `train_params`: one of them replaced by a faulty class
    (`faulty`), given other shuffle orders (`orders`), or every one wrapped by `shared` (a bug of the loop
    they all share: shared(registered class) -> the class trained)."""
    out = {}
    for name in names:
        cls = (faulty or {}).get(name) or REGISTERED(name)
        cls = shared(cls) if shared else cls
        monkeypatch.setattr(backends, "get", lambda _, c=cls: c)
        result = train(name, train_table, train_params, (orders or {}).get(name))
        path = tmp_path / f"{name}.csv"
        write_result(result, train_table.features, tmp_path / "model.json", tmp_path / "curve.csv", path)
        out[name] = read_steps(path)
    monkeypatch.setattr(backends, "get", REGISTERED)
    return out


def locate(tmp_path, monkeypatch, train_table, params, lecture, names=backends.BACKENDS, faulty=None, orders=None):
    """The first divergence of the backends' records (see records())."""
    found = records(tmp_path, monkeypatch, train_table, params.train, names, faulty, orders)
    return first_divergence(found, params.compare, lecture)


def only_cause(found: Divergence, step: int, rule: str, backend: str | None) -> Cause:
    """The one likely cause of a divergence at `step`, asserted to be `rule` blaming `backend`."""
    assert found.step == step
    (cause,) = found.causes
    assert (cause.rule, cause.backend) == (rule, backend)
    return cause


def curve(rec: Steps) -> np.ndarray:
    """A loss per epoch the record reaches (its first parameter after the epoch's last update): records of other
    lengths give curves of other lengths, and NaN or inf reach the curve too."""
    last = [int(np.flatnonzero(rec.epoch == e)[-1]) for e in range(1, int(rec.epoch.max(initial=0)) + 1)]
    return rec.params[last, 0] if last else np.array([])


def outputs(recs: dict[str, Steps]) -> list[BackendOutputs]:
    return [
        BackendOutputs(
            name,
            "cpu",
            curve(rec),
            np.zeros(len(rec.names)),
            rec.names,
            (("train", 1, 1),),
            {"train_accuracy": 1.0, "test_accuracy": 1.0},
            rec,
        )
        for name, rec in recs.items()
    ]
