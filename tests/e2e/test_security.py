"""Credentials given in the environment reach no store and no output, through a real `./pipeline repro`."""

from __future__ import annotations

import secrets

from tests.conftest import REPO, make_clone, run_cmd

SRC = REPO / "src" / "adaline_repro"
# Made up at run time, so that no file of the project (this one included) can hold them by accident.
_TOKEN = secrets.token_hex(8)
FAKE_SECRETS = {
    name: f"fake-{name.lower()}-{_TOKEN}"
    for name in (
        "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
        "AZURE_STORAGE_CONNECTION_STRING", "GOOGLE_APPLICATION_CREDENTIALS", "GITHUB_TOKEN",
    )
}  # fmt: skip
DB_PASSWORD = f"fake-db-password-{_TOKEN}"
FAKE_SECRETS["ADALINE_SERVER_DB"] = f"postgresql+psycopg://mlflow:{DB_PASSWORD}@127.0.0.1:1/mlflow"


def test_credentials_in_the_environment_reach_no_store_and_no_output(tmp_path_factory):
    """The whole pipeline runs with fake secrets set; no file of the clone or of its MLflow store, the
    database and artifacts included, holds any of them."""
    root, env = make_clone(tmp_path_factory)
    env.pop("MLFLOW_TRACKING_URI")  # the embedded store inside the clone: searched with everything else
    run_cmd(["./pipeline", "repro", "--force"], root, {**env, **FAKE_SECRETS})
    files = [p for p in root.rglob("*") if p.is_file() and ".git" not in p.relative_to(root).parts]
    assert any(p.name == "mlflow.db" for p in files)
    assert any("mlartifacts" in p.parts for p in files)
    needles = {name: value.encode() for name, value in FAKE_SECRETS.items()}
    needles["db password"] = DB_PASSWORD.encode()
    leaks = [(str(p.relative_to(root)), name) for p in files for name, v in needles.items() if v in p.read_bytes()]
    assert leaks == []
