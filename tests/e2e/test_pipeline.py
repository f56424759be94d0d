"""End to end: the real pipeline (DVC + MLflow) in a fresh git copy of the project.

Tests that only read use the clone of the first run (`first_repro`, tests/e2e/conftest.py); tests that
change anything get a private copy of it and its store (`ran_clone`), so no test depends on another's order.
"""

from __future__ import annotations

import json

import mlflow

from adaline_repro.backends import BACKENDS
from adaline_repro.core.errors import EXIT_DIFFER
from tests.conftest import PATHS, VENV, edited, run_cmd, stored_runs


def test_fresh_clone_reproduces_the_committed_lock(first_repro):
    """Outputs are deterministic: the committed dvc.lock comes out byte for byte. The data (DVC-cached)
    is rebuilt; the committed models and curves match their inputs, so training is not repeated."""
    root, committed_lock, done = first_repro.root, first_repro.committed_lock, first_repro.done
    assert (root / "dvc.lock").read_text() == committed_lock, done.stdout
    ran = sorted(line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage"))
    assert ran == ["fetch", "prepare", "track"]


def test_every_backend_reports_the_lecture_accuracies(first_repro):
    root = first_repro.root
    for backend in BACKENDS:
        metrics = json.loads((root / PATHS.metrics / f"{backend}.json").read_text())
        assert round(metrics["train_accuracy"], 4) == 0.9286
        assert round(metrics["test_accuracy"], 4) == 0.9333
    report = json.loads((root / "reports" / "compare.json").read_text())
    assert report["passed"] is True


def test_the_store_holds_one_execution(first_repro):
    """A parent with the verdict and three finished backend runs with 20 epochs each, even though the
    committed outputs made DVC skip evaluate and compare."""
    env = first_repro.env
    runs = stored_runs(env["MLFLOW_TRACKING_URI"])
    assert len(runs) == 1 + len(BACKENDS)
    assert {r.info.status for r in runs} == {"FINISHED"}
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["compare.verdict"] == "passed"
    assert parent.info.run_name.startswith("pipeline: passed (max diff ")
    client = mlflow.MlflowClient(env["MLFLOW_TRACKING_URI"])
    parent_artifacts = sorted(a.path for a in client.list_artifacts(parent.info.run_id))
    assert parent_artifacts == ["compare.json", "loss_curves.png"]
    assert "| manual ~ module | train_mse |" in parent.data.tags["mlflow.note.content"]
    assert parent.data.tags["compare.first_divergence"] == parent.data.tags["compare.likely_cause"] == "none"
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == sorted(f"{b}@cpu" for b in BACKENDS)
    for child in children:
        artifacts = sorted(a.path for a in client.list_artifacts(child.info.run_id))
        assert artifacts == ["loss_curve.csv", "model.json", "predictions.csv", "steps.csv"]
        history = client.get_metric_history(child.info.run_id, "train_mse")
        assert [m.step for m in history] == list(range(1, 21))
        assert round(child.data.metrics["test_accuracy"], 4) == 0.9333
        assert child.data.tags["torch.version"].startswith("2.13.0")
        assert len(child.data.tags["mlflow.source.git.commit"]) == 40
        assert child.data.tags["git.dirty"] == "false"
    assert len({frozenset((k, v) for k, v in c.data.params.items() if k != "backend") for c in children}) == 1


def test_second_repro_runs_nothing_and_logs_nothing(first_repro):
    """Nothing changed since the last full repro: answered without starting DVC, and nothing logged."""
    root, env = first_repro.root, first_repro.env
    before = len(stored_runs(env["MLFLOW_TRACKING_URI"]))
    done = run_cmd(["./pipeline", "repro"], root, env)
    assert "Running stage" not in done.stdout
    assert "no file DVC reads changed since the last ./pipeline repro" in done.stdout
    assert len(stored_runs(env["MLFLOW_TRACKING_URI"])) == before
    forced_check = run_cmd(["dvc", "status"], root, {**env, "PATH": f"{VENV}/bin:{env['PATH']}"})
    assert "up to date" in forced_check.stdout  # DVC agrees


def test_a_deleted_output_is_noticed_despite_the_shortcut(ran_clone):
    """Removing an output DVC tracks makes `./pipeline repro` run DVC, which rebuilds it."""
    root, env = ran_clone
    metrics = root / "metrics" / "manual.json"
    content = metrics.read_bytes()
    metrics.unlink()
    done = run_cmd(["./pipeline", "repro"], root, env)
    assert "Running stage 'evaluate'" in done.stdout
    assert metrics.read_bytes() == content


def test_a_tolerance_change_re_runs_compare_alone(ran_clone):
    """Tolerances matter to compare only: train, evaluate and track (MLflow) stay as they were."""
    root, env = ran_clone
    before = len(stored_runs(env["MLFLOW_TRACKING_URI"]))
    with edited(root / "params.yaml", "  atol: 1.0e-7", "  atol: 2.0e-7"):
        done = run_cmd(["./pipeline", "repro"], root, env)
        ran = [line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")]
        assert ran == ["compare"]
        assert "atol=2e-07" in (root / "reports" / "compare.md").read_text()
    run_cmd(["./pipeline", "repro"], root, env)
    assert len(stored_runs(env["MLFLOW_TRACKING_URI"])) == before


def _ran(done) -> list[str]:
    return [line.split("'")[1] for line in done.stdout.splitlines() if line.startswith("Running stage")]


def test_a_change_to_one_backend_retrains_that_backend_alone(ran_clone):
    """DVC knows which backend a change concerns: editing backends/module.py re-runs train@module only (its
    outputs keep their bytes, so nothing downstream has to follow)."""
    root, env = ran_clone
    module = root / "src" / "adaline_repro" / "backends" / "module.py"
    with edited(module, '"""torch.nn.Linear', '"""A backend: torch.nn.Linear'):
        done = run_cmd(["./pipeline", "repro"], root, env)
        assert _ran(done) == ["train@module"]
    assert _ran(run_cmd(["./pipeline", "repro"], root, env)) == ["train@module"]


def test_one_train_stage_can_be_reproduced_alone(ran_clone):
    """`./pipeline repro -f -s train@autograd` retrains that backend and gives the same bytes."""
    root, env = ran_clone
    model = root / "models" / "autograd.json"
    before = model.read_bytes()
    done = run_cmd(["./pipeline", "repro", "-f", "-s", "train@autograd"], root, env)
    assert _ran(done) == ["train@autograd"]
    assert model.read_bytes() == before


def test_a_shorter_backend_list_neither_runs_nor_needs_the_missing_stage(ran_clone):
    """train.backends: [manual, module] generates two train stages; evaluate, compare and track follow the
    list, nothing is retrained, and the autograd stage is neither run nor required."""
    root, env = ran_clone
    venv_env = {**env, "PATH": f"{VENV}/bin:{env['PATH']}"}
    with edited(root / "params.yaml", "backends: [manual, autograd, module]", "backends: [manual, module]"):
        stages = run_cmd(["dvc", "stage", "list", "--name-only"], root, venv_env).stdout.split()
        assert [s for s in stages if s.startswith("train@")] == ["train@manual", "train@module"]
        done = run_cmd(["./pipeline", "repro"], root, env)
        assert _ran(done) == ["evaluate", "compare", "track"]
        report = json.loads((root / "reports" / "compare.json").read_text())
        assert report["passed"] is True
        assert list(report["pairs"]) == ["manual~module"]
    done = run_cmd(["./pipeline", "repro"], root, env)
    assert "train@" not in " ".join(_ran(done))


def test_invalid_parameter_is_one_line_and_logs_nothing(ran_clone):
    root, env = ran_clone
    before = len(stored_runs(env["MLFLOW_TRACKING_URI"]))
    with edited(root / "params.yaml", "  lr: 0.01", "  lr: -0.01"):
        done = run_cmd(["./pipeline", "repro"], root, env, check=False)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: params.yaml: train.lr: must be greater than 0 (got -0.01)"]
    assert "Traceback" not in done.stderr
    assert "Running stage" not in done.stdout  # refused before DVC touched any output
    assert len(stored_runs(env["MLFLOW_TRACKING_URI"])) == before


def test_a_new_store_gets_the_execution_without_retraining(ran_clone, tmp_path):
    """Pointing MLFLOW_TRACKING_URI elsewhere makes the next repro log there; nothing else runs."""
    root, env = ran_clone
    other = {**env, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/other.db"}
    done = run_cmd(["./pipeline", "repro"], root, other)
    assert "Running stage 'track'" in done.stdout
    assert "Running stage 'train" not in done.stdout
    assert len(stored_runs(other["MLFLOW_TRACKING_URI"])) == 4


def test_experiment_with_a_changed_learning_rate(ran_clone):
    """`dvc exp run -S` works; `./pipeline dvc exp show` fits 120 columns piped with the verdict beside the
    params; metrics show lists the verdict and each backend, not the report; plots render every backend."""
    root, env = ran_clone
    before = len(stored_runs(env["MLFLOW_TRACKING_URI"]))
    run_cmd(
        ["dvc", "exp", "run", "-n", "lr-005", "-S", "train.lr=0.05"],
        root,
        {**env, "PATH": f"{VENV}/bin:{env['PATH']}"},
    )
    runs = stored_runs(env["MLFLOW_TRACKING_URI"])
    assert len(runs) == before + 4
    assert {r.data.tags.get("dvc.exp_name") for r in runs[:4]} == {"lr-005"}
    assert {r.data.params.get("train.lr") for r in runs[:4]} == {"0.05"}
    venv_env = {**env, "PATH": f"{VENV}/bin:{env['PATH']}"}
    assert "lr-005" in run_cmd(["dvc", "exp", "show", "--csv"], root, venv_env).stdout  # DVC's own table too
    piped = {k: v for k, v in env.items() if k != "COLUMNS"}  # a pipe, no terminal width given
    table = run_cmd(["./pipeline", "dvc", "exp", "show", "--no-pager"], root, piped).stdout.splitlines()
    assert max(map(len, table)) <= 120, "\n".join(table)
    assert "…" not in "\n".join(table)
    assert table[1].split() == [
        "Experiment", "agree", "final_mse", "test_acc", "tol_used", "train_acc", "train.lr", "train.batch_size"
    ], "\n".join(table)  # fmt: skip
    (row,) = [line.split() for line in table if "[lr-005]" in line]
    assert row[3] == "True"  # the experiment's verdict beside its params
    assert row[-2:] == ["0.05", "10"]
    metrics = run_cmd(["./pipeline", "dvc", "metrics", "show"], root, env).stdout
    assert {"reports/verdict.json", "metrics/manual.json"} <= {line.split()[0] for line in metrics.splitlines()}
    assert "pairs." not in metrics  # the full report is not a metrics file
    run_cmd(["./pipeline", "dvc", "plots", "show", "-o", "plots_html"], root, env)
    html = (root / "plots_html" / "index.html").read_text()
    assert all(f'"backend": "{b}"' in html for b in BACKENDS), "a line per backend on the loss chart"
    assert "cdn.jsdelivr" not in html
    # Back to main: track re-runs (its marker is the experiment's), and the store already has main's execution.
    logged = len(stored_runs(env["MLFLOW_TRACKING_URI"]))
    run_cmd(["git", "checkout", "--", "."], root, env)
    done = run_cmd(["./pipeline", "repro"], root, env)
    assert _ran(done) == ["track"]
    assert "already holds this execution" in done.stdout
    assert len(stored_runs(env["MLFLOW_TRACKING_URI"])) == logged


def test_a_backend_that_differs_fails_compare_and_is_still_logged(ran_clone):
    """With zero_grad() removed from the module backend, `dvc repro` fails at compare and `./pipeline repro`
    ends with one line naming update step 2 and the missing zero_grad(); the store holds the execution with
    the failed verdict and that explanation for inspection, every run finished."""
    root, env = ran_clone
    module = root / "src" / "adaline_repro" / "backends" / "module.py"
    before = {r.info.run_id for r in stored_runs(env["MLFLOW_TRACKING_URI"])}
    with edited(module, "        self.optimizer.zero_grad()\n", ""):
        done = run_cmd(["./pipeline", "repro"], root, env, check=False)
    assert done.returncode == EXIT_DIFFER
    assert "failed to reproduce 'compare'" in done.stderr
    assert "FAILED: the backends differ" in done.stdout
    last = done.stderr.splitlines()[-1]  # the student's sentence ends the run
    assert last.startswith(
        "repro: stopped at compare: the backends differ in train_mse, weights, steps, predictions, train_accuracy, "
        "test_accuracy; at step 2 (epoch 1, batch 2), module's update is ["
    ), last
    assert last.endswith(
        "x autograd's and manual's, parameter by parameter; likely cause: module: missing zero_grad() (gradient "
        f"accumulation) (see {PATHS.compare_md})"
    ), last
    report = json.loads((root / "reports" / "compare.json").read_text())
    assert report["passed"] is False
    assert report["pairs"]["manual~autograd"]["passed"] is True
    assert report["first_divergence"]["likely_cause"][0]["rule"] == "missing_zero_grad"
    new = [r for r in stored_runs(env["MLFLOW_TRACKING_URI"]) if r.info.run_id not in before]
    assert len(new) == 4
    assert {r.info.status for r in new} == {"FINISHED"}
    parent = next(r for r in new if "mlflow.parentRunId" not in r.data.tags)
    assert parent.data.tags["compare.verdict"] == "failed"
    assert parent.data.tags["compare.first_divergence"] == "step 2 (epoch 1, batch 2)"
    assert parent.data.tags["compare.likely_cause"] == "module: missing zero_grad() (gradient accumulation)"
    assert "module's gradients were not zeroed since step 1" in parent.data.tags["mlflow.note.content"]
    assert parent.info.run_name.startswith("pipeline: FAILED (max diff ")
    assert parent.data.metrics["compare_passed"] == 0.0
    assert parent.data.metrics["compare_max_abs_diff_train_mse"] > 1e-2
    # Fixed again: the pipeline passes, and the store already holds that execution (the first run's).
    logged = len(stored_runs(env["MLFLOW_TRACKING_URI"]))
    done = run_cmd(["./pipeline", "repro"], root, env)
    assert "Running stage 'track'" in done.stdout
    assert "already holds this execution (compare passed)" in done.stdout
    assert len(stored_runs(env["MLFLOW_TRACKING_URI"])) == logged


def test_runs_after_a_committed_parameter_change_are_clean(ran_clone):
    """A committed lr change retrains every backend and rewrites models, predictions and metrics; the runs
    logged are git.dirty=false, since the code and params.yaml are the commit's."""
    root, env = ran_clone
    before = len(stored_runs(env["MLFLOW_TRACKING_URI"]))
    params = root / "params.yaml"
    params.write_text(params.read_text().replace("  lr: 0.01", "  lr: 0.02"))
    run_cmd(["git", "commit", "-qam", "lr 0.02"], root, env)
    run_cmd(["./pipeline", "repro"], root, env)
    changed = run_cmd(["git", "status", "--porcelain", "--untracked-files=no"], root, env).stdout
    assert "models/manual.json" in changed
    assert "predictions/manual.csv" in changed
    runs = stored_runs(env["MLFLOW_TRACKING_URI"])
    new = runs[: len(runs) - before]  # newest first
    assert len(new) == 1 + len(BACKENDS)
    assert {r.data.params.get("train.lr") for r in new} == {"0.02"}
    assert {r.data.tags["git.dirty"] for r in new} == {"false"}
