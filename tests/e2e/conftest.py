"""Fixtures of the end-to-end tier shared by more than one file."""

from __future__ import annotations

import pytest

from tests.e2e import trials


@pytest.fixture(scope="session")
def reference_b(tmp_path_factory) -> dict[str, str]:
    """The outputs of an undisturbed run with the shared-machine trials' second learning rate (once per
    test process)."""
    return trials.reference(tmp_path_factory, "B")
