"""Turnout: one DAG per migration spec in dags/specs/ (see docs/ARCHITECTURE.md)."""

from pathlib import Path

from turnout_airflow.factory import load_dags

load_dags(Path(__file__).parent / "specs", globals())
