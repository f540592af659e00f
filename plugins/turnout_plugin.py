"""Registers Turnout with Airflow: the operators and triggers (imported from the turnout_airflow package),
and the "Migrations" view: a FastAPI app on the API server at /turnout plus a nav entry in the UI.

The view's module (FastAPI, Airflow's API security) is imported only when the API server asks for it:
every task process loads the plugins too, and must not pay for a web app it never serves."""

from airflow.plugins_manager import AirflowPlugin

import turnout_airflow  # noqa: F401  (puts include/ on sys.path when needed)


class TurnoutPlugin(AirflowPlugin):
    name = "turnout"

    @property
    def fastapi_apps(self):  # read by the API server only
        from turnout_airflow import ui

        return [ui.fastapi_app()]

    @property
    def external_views(self):
        from turnout_airflow import ui

        return [ui.EXTERNAL_VIEW]
