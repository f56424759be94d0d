"""A database URL in messages never shows its password."""

from __future__ import annotations

import pytest

from adaline_repro.ops import postgres


def test_check_reachable_names_the_url_without_its_password():
    port = 1  # nothing listens on port 1
    url = f"postgresql+psycopg://mlflow:s3cret@127.0.0.1:{port}/mlflow"
    with pytest.raises(postgres.PostgresError) as raised:
        postgres.check_reachable(url)
    assert str(raised.value).startswith(f"cannot connect to postgresql+psycopg://mlflow:***@127.0.0.1:{port}/mlflow: ")
    assert "s3cret" not in str(raised.value)
