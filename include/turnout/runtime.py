"""What a phase needs to run: the spec, staging, the route's ports and adapter configs per side.

The Airflow plugin builds a :class:`Context` from Connections; tests and scripts build one directly. The
route (:mod:`turnout.routes`) decides which adapters and transform a migration uses; nothing here branches on
a database kind. Nothing reaches a worker's local disk except through a local-path staging (single machine only).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Callable, Optional

from . import layout
from .ports import ChunkFormat, Codec, NativeExport, Sink, Source, Transform
from .routes import Route, route_of
from .spec import MigrationSpec
from .staging import Staging, open_staging


@dataclass
class Context:
    spec: MigrationSpec
    staging: Staging  # the migration's own root (already under <url>/<name>)
    source_config: Any
    target_config: Any
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("turnout"))
    s3_client_factory: Optional[Callable[[], Any]] = None
    run_id: str = ""
    clock: Callable[[], float] = time.time
    # called after every progress line with (phase, fields): the Airflow glue's metrics and alerts; an observer
    # that raises is logged and never stops the phase
    observers: list[Callable[[str, dict], None]] = field(default_factory=list)

    @cached_property
    def route(self) -> Route:
        return route_of(self.spec)

    @cached_property
    def source(self) -> Source:
        return self.route.source.open(self)

    @cached_property
    def sink(self) -> Sink:
        return self.route.target.open(self)

    @cached_property
    def source_codec(self) -> Codec:
        return self.route.source.codec()

    @cached_property
    def target_codec(self) -> Codec:
        return self.route.target.codec()

    @cached_property
    def chunks(self) -> ChunkFormat:
        return self.route.source.chunks()

    @cached_property
    def native_export(self) -> NativeExport:
        factory = self.route.source.native_export
        if factory is None:
            raise NotImplementedError(f"source kind {self.spec.source.kind!r} has no native export")
        return factory(self)

    @cached_property
    def transform(self) -> Transform:
        """The route's transform from what preflight recorded (the source is asked only before that)."""
        plan = self.staging.get_json(layout.PREFLIGHT) or {}
        facts = plan if plan.get("source_key") else self.route.source.facts(self.source)
        return self.build_transform(facts)

    def build_transform(self, facts: dict) -> Transform:
        return self.route.transform(self.spec, facts)

    def close(self) -> None:
        """Release clients that hold threads or sessions (e.g. the Cosmos sink's async writer)."""
        for name in ("sink", "source"):
            obj = self.__dict__.get(name)
            if obj is not None:
                obj.close()

    def progress(self, phase: str, **fields: Any) -> None:
        """One parseable progress line: ``TURNOUT phase=load chunk=3 items=1200 rate=850.1/s``."""
        parts = " ".join(f"{k}={_fmt(v)}" for k, v in fields.items())
        self.log.info("TURNOUT phase=%s %s", phase, parts)
        for observe in self.observers:
            try:
                observe(phase, fields)
            except Exception as exc:  # noqa: BLE001 - watching a migration must never stop it
                self.log.warning("TURNOUT observer %r failed: %s: %s", observe, type(exc).__name__, exc)

    def whoami(self) -> dict:
        """Who does the work: the worker's name (TURNOUT_WORKER_NAME, set where several workers share a host)
        or the host name, and the process id (recorded in heartbeats, load progress and done markers)."""
        return {"host": os.environ.get("TURNOUT_WORKER_NAME") or socket.gethostname(), "pid": os.getpid()}


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.1f}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"))
    return str(v)


def make_context(spec: MigrationSpec, source_config: Any, target_config: Any, *, staging_s3_factory: Any = None,
                 s3_client_factory: Any = None, run_id: str = "", log: logging.Logger | None = None) -> Context:
    root = open_staging(spec.staging.url, staging_s3_factory).child(spec.name)
    return Context(spec=spec, staging=root, source_config=source_config, target_config=target_config,
                   s3_client_factory=s3_client_factory, run_id=run_id, log=log or logging.getLogger("turnout"))
