"""Everything that talks to MLflow, and nothing else does: the store (store: open it, find what it holds, end
the runs a dead process left RUNNING), an execution's runs (runs: write them), what an execution is,
gathered from the outputs, and the marker that says which store already holds it (execution), and a
sweep's runs, written beside its trials (sweep_runs). Only store, runs and sweep_runs import MLflow, and
only when they are imported: the marker's check answers without it."""
