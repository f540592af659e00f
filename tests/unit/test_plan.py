from turnout.plan import PROMISED_ORDER, task_plan
from turnout.spec import parse_spec

SPEC = parse_spec("""\
name: p
source: {kind: dynamodb, conn_id: s, table: t}
target: {kind: dynamodb, conn_id: d, table: t}
staging: {url: /tmp/x}
""")


def _ancestors(plan, tid):
    ups = {t.task_id: t.upstream for t in plan}
    seen, todo = set(), list(ups[tid])
    while todo:
        u = todo.pop()
        if u not in seen:
            seen.add(u)
            todo.extend(ups[u])
    return seen


def test_promised_order_is_a_chain_of_dependencies():
    plan = task_plan(SPEC)
    for earlier, later in zip(PROMISED_ORDER, PROMISED_ORDER[1:]):
        assert earlier in _ancestors(plan, later), (earlier, later)


def test_capture_starts_before_export_and_apply_after_load():
    plan = {t.task_id: t for t in task_plan(SPEC)}
    assert plan["capture"].upstream == ("start_cdc",) and plan["capture"].long_running
    assert "export" not in _ancestors(list(plan.values()), "capture")
    assert plan["apply"].upstream == ("load",)
    assert plan["export"].mapped_over == "plan_export" and plan["load"].mapped_over == "plan_load"
    assert "approve_cutover" in _ancestors(list(plan.values()), "cutover")


def test_repair_step_sits_between_validation_and_the_approval():
    plan = {t.task_id: t for t in task_plan(SPEC)}
    assert plan["repair"].upstream == ("validate",) and plan["approve_cutover"].upstream == ("repair",)
    off = SPEC.model_copy(update={"repair": SPEC.repair.model_copy(update={"enabled": False})})
    plan = {t.task_id: t for t in task_plan(off)}
    assert "repair" not in plan and plan["approve_cutover"].upstream == ("validate",)


def test_cdc_only_plan_has_no_export_or_load_and_gates_the_apply():
    cdc = SPEC.model_copy(update={"export": SPEC.export.model_copy(update={"mode": "none"})})
    plan = {t.task_id: t for t in task_plan(cdc)}
    assert not {"plan_export", "export", "plan_load", "load"} & set(plan)
    assert plan["confirm_target_loaded"].upstream == ("start_cdc",) and plan["confirm_target_loaded"].kind == "loaded_gate"
    assert plan["apply"].upstream == ("confirm_target_loaded",) and plan["catch_up"].upstream == ("confirm_target_loaded",)
    assert "capture" in _ancestors(list(plan.values()), "cutover") or plan["capture"].upstream == ("start_cdc",)


def test_sampled_validation_runs_beside_the_migration_unless_turned_off():
    plan = {t.task_id: t for t in task_plan(SPEC)}
    assert plan["sampled_validation"].upstream == ("start_cdc",) and plan["sampled_validation"].long_running
    off = SPEC.model_copy(update={"validation": SPEC.validation.model_copy(update={"sample_fraction": 0})})
    assert "sampled_validation" not in {t.task_id for t in task_plan(off)}


def test_export_mode_none_is_a_spec_value_and_a_typo_is_refused():
    import pytest

    from turnout.errors import SpecError

    text = "name: p\nsource: {kind: dynamodb, conn_id: s, table: t}\ntarget: {kind: dynamodb, conn_id: d, table: t}\n" \
           "staging: {url: /tmp/x}\nexport: {mode: %s}\n"
    assert parse_spec(text % "none").export.mode == "none"
    with pytest.raises(SpecError, match="export.mode"):
        parse_spec(text % "nothing")
