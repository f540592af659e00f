"""The route registry: (source kind, target kind) -> the route's parts, chosen here and nowhere else.

Like scylla-migrator's ``Migrator.scala`` match: each database is an adapter package under
:mod:`turnout.adapters` that declares its source and/or target side as data (:class:`turnout.ports.SourceAdapter`,
:class:`turnout.ports.TargetAdapter`); a route pairs two of them with the transform between them. Adding a
route is adding an adapter folder and one entry in ``ROUTES``; an unsupported pair is one clear error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .adapters import cosmos, dynamodb, mongo, mysql
from .errors import SpecError
from .ports import SourceAdapter, TargetAdapter, Transform


@dataclass(frozen=True)
class Route:
    name: str  # the name `make demo ROUTE=...` and the docs use
    source: SourceAdapter
    target: TargetAdapter
    transform: Callable[[Any, dict], Transform]  # (spec, facts) -> the pure per-record transform


def _ddb_transform(spec: Any, facts: dict) -> Transform:
    from .transform import Transform as KeyTransform

    return KeyTransform.from_spec(spec.mapping, facts["source_key"])


ROUTES: dict[tuple[str, str], Route] = {
    ("dynamodb", "dynamodb"): Route("dynamodb-alternator", dynamodb.SOURCE, dynamodb.TARGET, _ddb_transform),
    ("dynamodb", "cosmos"): Route("dynamodb-cosmos", dynamodb.SOURCE, cosmos.TARGET, cosmos.transform),
    ("mysql", "dynamodb"): Route("mysql-dynamodb", mysql.SOURCE, dynamodb.TARGET, mysql.transform),
    ("mongodb", "mongodb"): Route("cosmos-mongo-documentdb", mongo.SOURCE, mongo.TARGET, mongo.transform),
}


def route_for(source_kind: str, target_kind: str) -> Route:
    try:
        return ROUTES[(source_kind, target_kind)]
    except KeyError:
        known = ", ".join(f"{s} -> {t}" for s, t in ROUTES)
        raise SpecError(f"no route from source.kind {source_kind!r} to target.kind {target_kind!r}; "
                        f"routes: {known}") from None


def route_of(spec: Any) -> Route:
    return route_for(spec.source.kind, spec.target.kind)
