"""A webhook notifier: the alert as JSON, POSTed to a URL (a chat's incoming webhook, an alert manager, a pager).

A standard Airflow ``BaseNotifier``: usable in a spec's ``alerts.notifiers`` as ``{webhook: URL}``, and in any
DAG's callbacks. Any other ``BaseNotifier`` (Slack, email, SNS, Teams ...) goes in the spec by import path; they
are rendered with ``turnout_alert`` (rule, state, message, since, at, view_url, text), ``message`` and
``migration`` in the template context, e.g. ``text: "{{ message }}"``.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Sequence

from airflow.sdk.bases.notifier import BaseNotifier


class WebhookNotifier(BaseNotifier):
    """POST ``{"text": ..., "turnout_alert": {...}}`` to ``url``.

    :param url: the http(s) URL
    :param headers: extra HTTP headers (e.g. an authorization header)
    :param timeout: seconds before the POST is given up (the caller logs the failure)
    """

    template_fields: Sequence[str] = ("url",)

    def __init__(self, *, url: str, headers: dict | None = None, timeout: float = 10.0):
        super().__init__()
        self.url, self.headers, self.timeout = url, dict(headers or {}), timeout

    def notify(self, context) -> None:
        alert = context.get("turnout_alert") or {}
        body = json.dumps({"text": context.get("message") or alert.get("text", ""), "turnout_alert": alert},
                          default=str).encode()
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", **self.headers})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the user's own URL
            if resp.status >= 300:
                raise RuntimeError(f"webhook {self.url} answered HTTP {resp.status}")
