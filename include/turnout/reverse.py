"""The way back: which routes can replicate from the target into the source after cutover, and the reverse spec.

A route can go back when the target's changes can be read (a change stream Turnout has a reader for) and every
target item maps back to exactly the source item it came from. The reverse is a CDC-only migration (``export:
{mode: none}``): at the freeze the source already holds everything, so only changes made on the target afterwards
travel back. Decided here, in one place, per route:

- DynamoDB -> any DynamoDB-API endpoint: yes (the target's stream is enabled at the freeze); ``mapping.rename`` is
  inverted, ``mapping.drop`` makes it one-way (the dropped attributes cannot come back).
- MongoDB-wire -> MongoDB-wire: yes; the target's change stream carries deletes; ``target.database_map`` is
  inverted (include globs must then name their databases).
- DynamoDB -> Cosmos DB for NoSQL: no — Turnout has no Cosmos DB change-feed reader, and the document mapping is
  not exactly invertible (numbers a double cannot hold become text with ``number_policy: string``; B/BS become
  base64 text and SS/NS/BS arrays, so their types are lost).
- MySQL -> DynamoDB (key redesign): no — several tables were folded into one item collection through key
  templates, and Turnout has no MySQL target.
"""

from __future__ import annotations

from typing import Optional

from .errors import PreflightError
from .spec import MigrationSpec

REVERSE_NAME = "fallback"  # the reverse's staging prefix under the migration's own


class FallbackUnavailable(PreflightError):
    """The route or its mapping cannot be replicated back; the message says why."""


def why_not(spec: MigrationSpec) -> Optional[str]:
    """None when the route and mapping can go back, else the reason (for the preflight verdict and the UI)."""
    s, t = spec.source.kind, spec.target.kind
    if s == "dynamodb" and t == "dynamodb":
        if spec.mapping.drop:
            return (f"mapping.drop removes {spec.mapping.drop} on the way in, so the way back cannot restore them "
                    "(one-way); copy them to keep a way back")
        return None
    if s == "mongodb" and t == "mongodb":
        dbmap = spec.target.database_map  # type: ignore[union-attr]
        if dbmap and any(any(ch in g.split(".", 1)[0] for ch in "*?[") for g in spec.source.include):  # type: ignore[union-attr]
            return ("target.database_map renames databases and source.include has a wildcard database name, so the "
                    "target's namespaces cannot be mapped back; name the databases in source.include")
        landed = [dbmap.get(db, db) for db in (g.split(".", 1)[0] for g in spec.source.include)]  # type: ignore[union-attr]
        if len(set(dbmap.values())) != len(dbmap) or any(
                landed.count(db) > 1 for db in set(landed) if db in dbmap.values()):
            return "target.database_map sends two databases into one: the way back cannot tell them apart"
        return None
    if s == "dynamodb" and t == "cosmos":
        return ("Turnout has no Cosmos DB change-feed reader yet, and the document mapping is one-way where it loses "
                "types (B/BS become base64 text, SS/NS/BS arrays; numbers a double cannot hold become text with "
                "number_policy: string)")
    if s == "mysql":
        return ("several tables are folded into one DynamoDB table through key templates, and Turnout has no MySQL "
                "target: MySQL -> DynamoDB is one-way")
    return f"no way back is built for {s} -> {t}"


def describe(spec: MigrationSpec) -> str:
    why = why_not(spec)
    state = "available" if why is None else f"not available: {why}"
    return state if spec.fallback.enabled else f"off (fallback.enabled: false); {state}"


def reverse_spec(spec: MigrationSpec) -> MigrationSpec:
    """The reverse migration: target -> source, CDC only, same tunables; raises FallbackUnavailable."""
    why = why_not(spec)
    if why is not None:
        raise FallbackUnavailable(f"fallback: {why}")
    doc = spec.model_dump(mode="json")
    src, tgt = doc["source"], doc["target"]
    if spec.source.kind == "dynamodb":
        inv = {v: k for k, v in spec.mapping.rename.items()}
        doc["source"] = {"kind": "dynamodb", "conn_id": tgt["conn_id"], "table": tgt["table"], "enable_stream": True}
        doc["target"] = {"kind": "dynamodb", "conn_id": src["conn_id"], "table": src["table"],
                         "create_if_missing": False, "max_item_bytes": 400 * 1024}
        doc["mapping"] = {"rename": inv, "required": [inv.get(a, a) for a in spec.mapping.required]}
    else:
        dbmap = tgt.get("database_map") or {}
        inv = {v: k for k, v in dbmap.items()}

        def mapped(glob: str) -> str:
            db, _, rest = glob.partition(".")
            return f"{dbmap.get(db, db)}.{rest}"

        doc["source"] = {"kind": "mongodb", "conn_id": tgt["conn_id"], "include": [mapped(g) for g in src["include"]],
                         "exclude": [mapped(g) for g in src["exclude"]], "flavor": "mongodb",
                         "refetch_documents": src["refetch_documents"], "docs_per_unit": src["docs_per_unit"]}
        doc["target"] = {"kind": "mongodb", "conn_id": src["conn_id"], "database_map": inv, "indexes": "none",
                         "compatibility": "mongodb", "create_if_missing": False}
    doc["name"] = REVERSE_NAME
    doc["export"] = {"mode": "none"}
    doc["repair"] = {"enabled": False}
    doc["fallback"] = {"enabled": False}
    doc["validation"] = {**doc["validation"], "sample_fraction": 0}
    doc["schedule"] = None
    return MigrationSpec.model_validate(doc)
