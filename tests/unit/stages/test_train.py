"""Training: the lecture's numbers, seeded shuffles shared by all backends, clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from msgspec.structs import replace

from adaline_repro.backends import BACKENDS
from adaline_repro.core.files import DataError, read_csv
from adaline_repro.core.results import read_steps
from adaline_repro.stages import train as train_mod
from adaline_repro.stages.train import TrainError, shuffle_orders, train
from tests.conftest import PATHS


@pytest.mark.parametrize("backend", BACKENDS)
def test_lecture_loss_curve(backend, train_table, params):
    """The lecture's printed costs (5 decimals) for epochs 1, 2 and 20."""
    result = train(backend, train_table, params.train)
    assert len(result.losses) == 20
    assert [round(result.losses[i], 5) for i in (0, 1, 19)] == [0.38849, 0.31679, 0.10025]
    assert result.device == "cpu"
    assert result.dtype == "float32"


def test_shuffle_orders_match_the_global_rng_after_manual_seed():
    """A dedicated generator gives the lecture's torch.manual_seed(123); torch.randperm(70) sequence."""
    torch.manual_seed(123)
    expected = [torch.randperm(70) for _ in range(3)]
    assert all(torch.equal(a, b) for a, b in zip(shuffle_orders(70, 3, 123), expected, strict=True))


def test_model_construction_does_not_move_the_shuffles(train_table, params):
    """Building nn.Linear draws from the global RNG; training results must not care."""
    first = train("module", train_table, params.train)
    torch.manual_seed(999)
    torch.rand(1000)
    second = train("module", train_table, params.train)
    assert first == second


def test_written_outputs_are_deterministic(tmp_path, train_table, params):
    """Two runs write byte-identical model, curve and step files, in text formats."""
    texts = []
    for i in range(2):
        dirs = PATHS.results(tmp_path / str(i))
        result = train("manual", train_table, params.train)
        train_mod.write_result(
            result, train_table.features, dirs.model("manual"), dirs.curve("manual"), dirs.step("manual")
        )
        texts.append(tuple(p.read_bytes() for p in (dirs.model("manual"), dirs.curve("manual"), dirs.step("manual"))))
    assert texts[0] == texts[1]
    header, rows = read_csv(PATHS.results(tmp_path / "0").curve("manual"))
    assert header == ["epoch", "train_mse"]
    assert [r[0] for r in rows] == [str(i) for i in range(1, 21)]
    assert json.loads(texts[0][0])["features"] == ["sepal_width", "petal_length"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_stage_writes_what_training_that_backend_gives(backend, tmp_path, data_dir, train_table, params):
    """The train stage's run: the model and curve files of exactly that backend's training."""
    dirs = PATHS.results(tmp_path)
    result, orders = train_mod.write_outputs(
        backend, data_dir / "train.csv", dirs.model(backend), dirs.curve(backend), dirs.step(backend), params.train
    )
    assert result == train(backend, train_table, params.train)
    assert orders == train_mod.orders_digest(shuffle_orders(len(train_table.y), params.train.epochs, params.train.seed))
    assert json.loads(dirs.model(backend).read_text())["backend"] == backend
    assert [float(r[1]) for r in read_csv(dirs.curve(backend))[1]] == result.losses
    steps = read_steps(dirs.step(backend))
    assert steps.params[-1].tolist() == [*result.weight, result.bias]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_step_record_replays_the_training(backend, tmp_path, train_table, params):
    """steps/<backend>.csv: zeros at step 0, then per update its epoch, batch and minibatch rows in the shuffled
    order, the parameters after it (which one SGD step of the lecture's gradient reproduces) and the
    minibatch MSE before it."""
    result = train(backend, train_table, params.train)
    path = tmp_path / "steps.csv"
    train_mod.write_result(result, train_table.features, tmp_path / "m.json", tmp_path / "c.csv", path)
    steps = read_steps(path)
    batches = -(-len(train_table.y) // params.train.batch_size)
    assert steps.names == ("weight[sepal_width]", "weight[petal_length]", "bias")
    assert steps.updates == params.train.epochs * batches == 140
    assert steps.params[0].tolist() == [0.0, 0.0, 0.0]
    assert steps.rows[0] == ()
    assert math.isnan(steps.batch_mse[0])
    assert steps.epoch.tolist() == [0] + [e for e in range(1, 21) for _ in range(batches)]
    assert steps.batch.tolist() == [0] + list(range(1, batches + 1)) * 20
    orders = shuffle_orders(len(train_table.y), params.train.epochs, params.train.seed)
    position = {int(r): i for i, r in enumerate(train_table.rows)}
    for k in (1, 9, 140):
        epoch, batch = steps.epoch[k], steps.batch[k]
        ids = orders[epoch - 1][(batch - 1) * 10 : batch * 10].tolist()
        assert [position[r] for r in steps.rows[k]] == ids
        x, y = train_table.x[ids].astype(np.float64), train_table.y[ids].astype(np.float64)
        w, b = steps.params[k - 1, :2], steps.params[k - 1, 2]
        error = x @ w + b - y
        assert steps.batch_mse[k] == pytest.approx(np.mean(error**2), rel=1e-5)
        after = np.append(w - params.train.lr * 2 * x.T @ error / 10, b - params.train.lr * 2 * error.mean())
        assert steps.params[k] == pytest.approx(after, abs=1e-6)


def test_a_step_record_that_is_not_one_is_a_data_error(tmp_path):
    """A truncated or renumbered record fails with the file named, not a traceback."""
    path = tmp_path / "steps.csv"
    path.write_text("step,epoch,batch,rows,bias,batch_mse\n1,1,1,3 4,0.5,0.1\n")
    with pytest.raises(DataError, match="steps must run 0"):
        read_steps(path)
    path.write_text("step,epoch,batch,bias\n0,0,0,0.0\n")
    with pytest.raises(DataError, match="expected header"):
        read_steps(path)


@pytest.mark.parametrize("backend", BACKENDS)
def test_deterministic_algorithms_change_nothing_on_the_cpu(backend, train_table, params):
    """The flag is set on CUDA only: on the CPU every backend gives the same bytes with and without it."""
    assert not torch.are_deterministic_algorithms_enabled()
    without = train(backend, train_table, params.train)
    torch.use_deterministic_algorithms(True)
    try:
        with_flag = train(backend, train_table, params.train)
    finally:
        torch.use_deterministic_algorithms(False)
    assert with_flag == without


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error shown when no GPU is present")
def test_cuda_without_gpu_is_a_clear_error(train_table, params):
    with pytest.raises(TrainError, match=r"train\.device is 'cuda' but no CUDA device is available"):
        train("manual", train_table, replace(params.train, device="cuda"))


def test_auto_device_falls_back_to_cpu(train_table, params):
    result = train("manual", train_table, replace(params.train, device="auto"))
    assert result.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_batch_larger_than_the_data_is_an_error(train_table, params):
    with pytest.raises(TrainError, match=r"train\.batch_size=71 exceeds the 70 training rows"):
        train("manual", train_table, replace(params.train, batch_size=71))


def test_divergence_names_the_epoch(train_table, params):
    """A learning rate far too large stops training with the epoch where the loss stopped being finite."""
    with pytest.raises(TrainError, match=r"manual: diverged at epoch \d+"):
        train("manual", train_table, replace(params.train, lr=1e6, epochs=30))


def test_progress_bar_is_silent_without_a_terminal(capfd, train_table, params):
    """In logs, CI and tests (no TTY) training prints nothing."""
    train("manual", train_table, replace(params.train, epochs=50))
    assert capfd.readouterr().err == ""


def test_progress_bar_on_a_terminal(data_dir):
    """On a terminal, training shows a bar named after the backend, counting epochs (tqdm draws it as it
    starts, so the lecture's 20 epochs show it as well as 2,000 would)."""
    import fcntl
    import os
    import pty
    import struct
    import subprocess
    import sys
    import termios

    from tests.conftest import REPO

    code = (
        "from adaline_repro.core.results import read_table; from adaline_repro.core.params import load_params;"
        "from adaline_repro.stages.train import train;"
        f"p = load_params({str(REPO / 'params.yaml')!r}).train;"
        f"train('manual', read_table({str(data_dir / 'train.csv')!r}), p)"
    )
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a new pty is 0 columns wide
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stderr=follower, env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait(timeout=120) == 0
    text = output.decode(errors="replace")
    assert "train@manual" in text
    assert "/20" in text
