"""Where the repository and the tracking store are, from any working copy DVC runs a stage in."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

# DVC's own scratch space in a checkout (gitignored, on the outputs' file system): the up-to-date stamp, the
# run lock and its record, the rollback snapshots, and DVC's notes of what it is running all live here.
DVC_TMP = Path(".dvc") / "tmp"
# `dvc exp run --temp` and queued experiments run in copies under this folder of the repository.
_DVC_TEMP_WORKSPACES = os.sep + str(DVC_TMP / "exps") + os.sep
EMBEDDED_DB = "mlflow.db"
EMBEDDED_ARTIFACTS = "mlartifacts"
VERBOSE = "ADALINE_VERBOSE"  # "1": stages print their detail too (./pipeline repro -v / --verbose sets it)


def workspace_root() -> Path:
    """The working copy the stage runs in (DVC sets DVC_ROOT for stage commands)."""
    return Path(os.environ.get("DVC_ROOT") or Path.cwd()).resolve()


def repository_root(workspace: Path | None = None) -> Path:
    """The user's repository, also when DVC runs the stage in a temporary copy inside it."""
    workspace = workspace or workspace_root()
    text = str(workspace) + os.sep
    if _DVC_TEMP_WORKSPACES in text:
        return Path(text.split(_DVC_TEMP_WORKSPACES, 1)[0])
    return workspace


def checkout_id(root: Path | None = None) -> str:
    """`host:/path/of/the/repository`: which checkout logged a run, the same from its queued experiments."""
    return f"{os.uname().nodename}:{root or repository_root()}"


def tracking_uri(root: Path | None = None) -> str:
    """MLFLOW_TRACKING_URI when set, else the embedded SQLite store at the repository root (absolute)."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", "").strip()
    if uri:
        return uri
    return "sqlite:///" + str((root or repository_root()) / EMBEDDED_DB)


def redacted(uri: str) -> str:
    """The URI with any password replaced by ***, for messages and logs."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None:
        return uri
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@", 1)))


def embedded_db(uri: str) -> Path | None:
    """The SQLite file behind an embedded-store URI, or None for any other store."""
    return Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None


def artifact_location(uri: str) -> str:
    """Where experiments created in a SQLite store keep artifacts: beside the database, absolute."""
    db = embedded_db(uri)
    if db is None:
        raise ValueError(f"{uri} is not a SQLite store")
    return (db.parent / EMBEDDED_ARTIFACTS).as_uri()


def marker_uri_file(marker: Path) -> Path:
    """Beside the marker: the store it vouches for, so `./pipeline repro` can notice a switch of store."""
    return marker.with_name(marker.name + ".uri")
