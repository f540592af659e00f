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
