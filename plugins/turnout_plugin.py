"""Registers Turnout with Airflow (operators and triggers are imported from the turnout_airflow package)."""

from airflow.plugins_manager import AirflowPlugin

import turnout_airflow  # noqa: F401  (puts include/ on sys.path when needed)


class TurnoutPlugin(AirflowPlugin):
    name = "turnout"
