"""Operations around the pipeline: the reproducibility check, the environment fingerprint, the MLflow UI and
server, the PostgreSQL behind it, scratch copies of the worktree, and the developer commands."""
