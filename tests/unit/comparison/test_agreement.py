"""Property: for any seed, learning rate in [1e-4, 0.05], minibatch size 1..70 and 1..30 epochs, the three
backends agree within the compare tolerances (loss curve and weights), in-process, in seconds."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from adaline_repro.backends import BACKENDS
from adaline_repro.comparison.agreement import compare_floats, compare_steps
from adaline_repro.core.results import Steps
from adaline_repro.stages.train import train


@settings(max_examples=40, deadline=None)  # 40 draws take ~15 s; a draw's time varies 30x with its size
@given(
    seed=st.integers(min_value=0, max_value=2**63 - 1),
    lr=st.floats(min_value=1e-4, max_value=0.05, allow_nan=False, allow_infinity=False),
    batch_size=st.integers(min_value=1, max_value=70),
    epochs=st.integers(min_value=1, max_value=30),
)
def test_backends_agree_for_every_draw(train_table, params, seed, lr, batch_size, epochs):
    settings_ = replace(params.train, seed=seed, lr=lr, batch_size=batch_size, epochs=epochs)
    results = {b: train(b, train_table, settings_) for b in BACKENDS}
    reference = results["manual"]
    labels = [f"epoch {e}" for e in range(1, epochs + 1)]
    for name in ("autograd", "module"):
        other = results[name]
        curve = compare_floats("train_mse", np.array(reference.losses), np.array(other.losses), labels, params.compare)
        weights = compare_floats(
            "weights",
            np.array([*reference.weight, reference.bias]),
            np.array([*other.weight, other.bias]),
            ["w0", "w1", "b"],
            params.compare,
        )
        assert curve.passed, (name, curve)
        assert weights.passed, (name, weights)
        assert len(other.losses) == epochs


def test_records_of_other_parameters_differ_even_with_as_many_values(params):
    """Two updates of three parameters and three updates of two hold six values each: not the same record."""
    three = Steps(("w", "v", "b"), np.array([0, 1]), np.array([0, 1]), ((), (1, 2)), np.zeros((2, 3)), np.zeros(2))
    two = Steps(("v", "b"), np.array([0, 1, 1]), np.array([0, 1, 2]), ((), (1,), (2,)), np.zeros((3, 2)), np.zeros(3))
    found = compare_steps(three, two, params.compare)
    assert (found.passed, found.at) == (False, "parameters w, v, b and v, b")
    assert compare_steps(three, three, params.compare).passed
