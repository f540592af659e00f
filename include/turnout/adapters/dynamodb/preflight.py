"""Preflight of a DynamoDB source: the stream must carry full images; the target is checked or created."""

from __future__ import annotations

from ...ports import PreflightInputs, SourceInfo

STREAM_RETENTION_HOURS = 24


def key_types(info: SourceInfo) -> list[str]:
    types = {a["AttributeName"]: a["AttributeType"] for a in info.attribute_definitions}
    return [types.get(a, "S") for a in info.key_attributes]


def facts(source) -> dict:
    """What the transform needs: the source key and its attribute types."""
    info = source.describe()
    return {"source_key": info.key_attributes, "source_key_types": key_types(info)}


def preflight(p: PreflightInputs) -> dict:
    spec = p.spec
    info = p.source.describe()
    tr = p.build_transform({"source_key": info.key_attributes, "source_key_types": key_types(info)})
    problems: list[str] = []
    if not p.sink.exists() and (p.dry_run or not spec.target.create_if_missing):
        if not p.dry_run:
            problems.append(f"the target {p.target_name} does not exist and target.create_if_missing is false: "
                            f"create it with the key {list(tr.target_key)}")
        target = {"created": False, "would_create": True, "key": list(tr.target_key)}
    else:
        target = p.sink.ensure_target(info, info.key_attributes, dict(spec.mapping.rename),
                                      list(tr.partition_key_paths) or None)
    stream = info.stream
    stream_ok = stream.get("enabled") and stream.get("view_type") in ("NEW_AND_OLD_IMAGES", "NEW_IMAGE")
    if not stream.get("enabled") and not spec.source.enable_stream:
        problems.append(f"DynamoDB Streams is off on {spec.source.table!r} and source.enable_stream is false: "
                        "enable NEW_AND_OLD_IMAGES on the table, or set source.enable_stream: true")
    elif stream.get("enabled") and not stream_ok:
        problems.append(f"the stream on {spec.source.table!r} has view type {stream.get('view_type')}; "
                        "Turnout needs full images: switch it to NEW_AND_OLD_IMAGES")
    rate, est_hours = p.estimate(info.item_count)
    verdict = (
        f"estimated copy {est_hours:.2f} h for {info.item_count} items at {rate:.0f} items/s; the stream keeps "
        f"{STREAM_RETENTION_HOURS} h, but the capture drains it into the durable change log in staging from "
        f"the start, so only a capture outage longer than {STREAM_RETENTION_HOURS} h could lose changes "
        "(and is detected: the capture stops loudly on trimmed data)")
    if est_hours > STREAM_RETENTION_HOURS:
        verdict += (f"; note: the copy outlasts the stream's {STREAM_RETENTION_HOURS} h window, keep the capture "
                    "task healthy")
    return {
        "status": "NO-GO" if problems else "GO",
        "verdict": "; ".join(problems) if problems else verdict,
        "source_key": info.key_attributes,
        "source_key_types": key_types(info),
        "target_key": list(tr.target_key),
        "item_count_estimate": info.item_count,
        "size_bytes_estimate": info.size_bytes,
        "stream": stream,
        "target": target,
        "estimated_copy_hours": round(est_hours, 3),
    }
