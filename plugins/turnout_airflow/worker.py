"""Worker identity for Celery workers, and an optional placement policy for the mapped tasks.

``hostname`` is meant for ``[core] hostname_callable = turnout_airflow.worker.hostname``: in production each
Celery worker is its own host and reports its FQDN; several workers on one machine (the local CeleryExecutor
run) report the ``TURNOUT_WORKER_NAME`` each was started with, so task instances show which worker ran them.

``spread_mapped_tasks`` is a ``task_instance_mutation_hook`` (import it in ``airflow_local_settings.py``) that
sends the mapped export and load task instances round-robin by map index to the queues listed in
``TURNOUT_SPREAD_QUEUES`` (comma-separated, e.g. one queue per worker). Without that variable it changes
nothing. The end-to-end CeleryExecutor test uses it so that both workers run mapped tasks by construction,
not by the luck of which worker the broker hands a message to.

Deliberately free of Airflow imports: Airflow imports this module while it configures itself.
"""

from __future__ import annotations

import os
import socket

SPREAD_TASKS = ("export", "load")


def hostname() -> str:
    return os.environ.get("TURNOUT_WORKER_NAME") or socket.getfqdn()


def spread_mapped_tasks(task_instance, dag_run=None) -> None:
    queues = [q.strip() for q in os.environ.get("TURNOUT_SPREAD_QUEUES", "").split(",") if q.strip()]
    map_index = getattr(task_instance, "map_index", -1)
    if queues and task_instance.task_id in SPREAD_TASKS and map_index is not None and map_index >= 0:
        task_instance.queue = queues[map_index % len(queues)]
