"""Deferrable waits: the catch-up gate and the native export, polled in the triggerer, not a worker slot."""

from __future__ import annotations

import asyncio
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from .observe import Observer


def _check_catch_up(ctx, state):
    from turnout.phases import catch_up_check

    return catch_up_check(ctx, state)


def _check_native_export(ctx, state):
    from turnout.phases import native_export_poll

    s = native_export_poll(ctx)
    return s["status"] == "COMPLETED", s


CHECKS = {"catch_up": (_check_catch_up, False), "native_export": (_check_native_export, True)}


class TurnoutWaitTrigger(BaseTrigger):
    """Polls one engine check until it reports done; yields an error event on failure.

    :param spec: the migration spec (as carried by the operator)
    :param spec_file: where the spec came from (for messages)
    :param params: the run's params (UI overrides)
    :param check: ``catch_up`` or ``native_export``
    :param poll_seconds: seconds between looks
    """

    def __init__(self, *, spec: dict, spec_file: str, params: dict | None, check: str, poll_seconds: float = 5.0,
                 run_id: str = ""):
        super().__init__()
        if check not in CHECKS:
            raise ValueError(f"unknown check {check!r}")
        self.spec, self.spec_file, self.params = spec, spec_file, params or {}
        self.check, self.poll_seconds, self.run_id = check, poll_seconds, run_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return ("turnout_airflow.triggers.TurnoutWaitTrigger", {
            "spec": self.spec, "spec_file": self.spec_file, "params": self.params, "check": self.check,
            "poll_seconds": self.poll_seconds, "run_id": self.run_id})

    async def run(self):
        from .context import build_context

        fn, needs_connections = CHECKS[self.check]
        try:
            ctx = await asyncio.to_thread(build_context, self.spec, self.spec_file, self.params, run_id=self.run_id,
                                          log=self.log, connections=needs_connections)
        except Exception as exc:
            yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
            return
        state: dict = {}
        observer = Observer(ctx.spec, ctx.staging) if self.check == "catch_up" else None
        while True:
            try:
                done, status = await asyncio.to_thread(fn, ctx, state)
            except Exception as exc:
                yield TriggerEvent({"status": "error", "message": f"{type(exc).__name__}: {exc}"})
                return
            if observer:
                try:
                    await asyncio.to_thread(observer.look)
                except Exception as exc:  # noqa: BLE001 - metrics and alerts never fail the gate
                    self.log.warning("TURNOUT metrics/alerts: %s: %s", type(exc).__name__, exc)
            self.log.info("TURNOUT phase=%s %s", self.check, " ".join(f"{k}={v}" for k, v in status.items()))
            if done:
                yield TriggerEvent({"status": "done", "summary": status})
                return
            await asyncio.sleep(self.poll_seconds)
