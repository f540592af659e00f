"""A demo migration per e2e test: set up on its own stack and Airflow, torn down afterwards, with the Airflow
component logs kept as test artifacts."""

from __future__ import annotations

import pytest

import demo


@pytest.fixture()
def route_migration(tmp_path, artifacts_dir):
    made: list[demo.Migration] = []

    def make(**kw) -> demo.Migration:
        m = demo.Migration(tmp_path / "w", **kw)
        made.append(m)
        m.setup()
        return m

    yield make
    for m in made:
        for f in (m.workdir / "airflow").glob("*.log"):
            (artifacts_dir / f"{tmp_path.name}-{f.name}").write_bytes(f.read_bytes()[-200_000:])
        m.teardown()


@pytest.fixture()
def browser():
    from browser import chromium

    with chromium() as ctx:
        yield ctx
