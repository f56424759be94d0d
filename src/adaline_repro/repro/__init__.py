"""What wraps `dvc repro`: validation first, the up-to-date shortcut, the store's preparation, rollback of
outputs on failure, DVC's failure decoded into the failing stage's exit code, and signals."""
