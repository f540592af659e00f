import pytest

from turnout.errors import SpecError
from turnout.spec import load_spec, parse_spec

GOOD = """\
name: orders
source: {kind: dynamodb, conn_id: src, table: orders}
target:
  kind: dynamodb
  conn_id: dst
  table: orders
staging: {url: /tmp/turnout-staging}
"""


def test_minimal_spec_gets_defaults():
    s = parse_spec(GOOD)
    assert s.dag_id == "migrate__orders"
    assert s.export.segments == "auto" and s.apply.lanes == 8 and s.target.max_item_bytes == 400 * 1024


def test_unknown_key_names_file_line_and_key():
    with pytest.raises(SpecError) as e:
        parse_spec(GOOD.replace("  table: orders\nstaging", "  table: orders\n  tabel: x\nstaging"), "specs/o.yaml")
    assert "specs/o.yaml:7: target.tabel: unknown key" in str(e.value)


def test_missing_key_points_at_its_section():
    with pytest.raises(SpecError) as e:
        parse_spec(GOOD.replace("  table: orders\nstaging", "staging"), "o.yaml")
    assert "o.yaml:3: target.table: required key is missing" in str(e.value)


def test_bad_values_are_explained():
    with pytest.raises(SpecError, match=r"export.segments: .*between 1 and 1000000"):
        parse_spec(GOOD + "export: {segments: 0}\n")
    with pytest.raises(SpecError, match=r"staging.url: .*must be absolute"):
        parse_spec(GOOD.replace("/tmp/turnout-staging", "relative/dir"))
    with pytest.raises(SpecError, match=r"mapping: .*both renamed and dropped"):
        parse_spec(GOOD + "mapping: {rename: {a: b}, drop: [a]}\n")
    with pytest.raises(SpecError, match="name must be lower-case"):
        parse_spec(GOOD.replace("name: orders", "name: Orders!"))
    with pytest.raises(SpecError, match="appears twice"):
        parse_spec(GOOD + "name: again\n")


def test_env_expansion(monkeypatch):
    monkeypatch.setenv("STG", "s3://bucket/pre")
    s = parse_spec(GOOD.replace("/tmp/turnout-staging", "'${STG}'"))
    assert s.staging.url == "s3://bucket/pre"
    monkeypatch.delenv("STG")
    with pytest.raises(SpecError, match="environment variable STG is not set"):
        parse_spec(GOOD.replace("/tmp/turnout-staging", "'${STG}'"))
    assert parse_spec(GOOD.replace("/tmp/turnout-staging", "'${STG:-/tmp/d}'")).staging.url == "/tmp/d"


def test_overrides_are_validated():
    s = parse_spec(GOOD)
    assert s.with_overrides({"export.segments": 7}).export.segments == 7
    with pytest.raises(SpecError, match="unknown key"):
        s.with_overrides({"export.segmnts": 7})
    with pytest.raises(SpecError, match="export.segments"):
        s.with_overrides({"export.segments": -1})


def test_repo_specs_all_load(monkeypatch):
    from pathlib import Path

    monkeypatch.setenv("TURNOUT_STAGING", "/tmp/turnout-staging")
    specs = sorted((Path(__file__).resolve().parents[2] / "dags" / "specs").glob("*.yaml"))
    assert specs
    for p in specs:
        assert load_spec(p).name == p.stem
