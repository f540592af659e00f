"""Airflow glue for the Turnout engine: hooks, operators, triggers and the DAG factory.

The engine (``include/turnout``) never imports Airflow. It is normally on PYTHONPATH (the project's
scripts and docker-compose set it); a checkout that places ``include/`` beside ``plugins/`` also works.
"""

import os
import sys

try:
    import turnout  # noqa: F401
except ImportError:  # pragma: no cover - depends on the deployment
    _include = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "include")
    if os.path.isdir(os.path.join(_include, "turnout")):
        sys.path.insert(0, _include)
