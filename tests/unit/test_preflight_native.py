"""export.mode native is refused at preflight for a source whose adapter declares no native export (before this,
start_cdc quietly fell back to a keyset export). Only staging is touched: the check comes before any connection."""

import logging
from pathlib import Path

import pytest
import yaml

from turnout import phases
from turnout.errors import PreflightError
from turnout.runtime import make_context
from turnout.spec import parse_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("spec_file", ["demo_shop_to_dynamodb.yaml", "demo_people_to_documentdb.yaml"])
def test_native_export_is_refused_for_a_source_without_one(tmp_path, spec_file):
    doc = yaml.safe_load((ROOT / "dags" / "specs" / spec_file).read_text())
    doc["staging"] = {"url": str(tmp_path)}
    doc["export"] = {**doc.get("export", {}), "mode": "native", "native_s3_bucket": "b"}
    spec = parse_spec(yaml.safe_dump(doc))
    ctx = make_context(spec, None, None, log=logging.getLogger("turnout.test"))
    with pytest.raises(PreflightError, match=rf"export.mode native: a {spec.source.kind} source has no native export"):
        phases.preflight(ctx)
