"""Shared fixtures. Server-backed tests use the project's own stack (scripts/stack.py); if a server
cannot start, the test errors — it is never skipped (CI=true or not)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # include/, plugins/, scripts/ are on the path: pyproject.toml

os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    import stack as stack_mod

    state = tmp_path_factory.mktemp("stack")
    try:
        eps = stack_mod.up(state)
    except Exception as exc:  # never a skip: a missing server is a failure
        stack_mod.down(state)
        pytest.fail(f"the local stack did not start: {exc}", pytrace=False)
    yield eps
    stack_mod.down(state)


@pytest.fixture()
def artifacts_dir():
    d = ROOT / "test-artifacts"
    d.mkdir(exist_ok=True)
    return d
