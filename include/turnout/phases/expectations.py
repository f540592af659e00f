"""Great Expectations on the target, as part of validation: key uniqueness and required attributes on a sample of
target items, and count equality on the full counts."""

from __future__ import annotations


def expectations(sample: list[dict], required: list[str], source_count: int, target_count: int) -> dict:
    """Great Expectations on the target: key uniqueness and required attributes on a sample of target
    items, and count equality on the full counts."""
    import great_expectations as gx
    import pandas as pd

    ctx = gx.get_context(mode="ephemeral")
    ds = ctx.data_sources.add_pandas("turnout")
    results = {}

    def run(name, df, expectations):
        asset = ds.add_dataframe_asset(name)
        bd = asset.add_batch_definition_whole_dataframe(f"{name}-batch")
        batch = bd.get_batch(batch_parameters={"dataframe": df})
        suite = gx.ExpectationSuite(name=f"{name}-suite", expectations=expectations)
        r = batch.validate(suite)
        for er in r.results:
            cfg = er.expectation_config
            results[f"{cfg.type}({cfg.kwargs.get('column', cfg.kwargs.get('column_A', ''))})"] = bool(er.success)
        return r.success

    df = pd.DataFrame(sample or [{"key": None}])
    exps = [gx.expectations.ExpectColumnValuesToBeUnique(column="key"),
            gx.expectations.ExpectColumnValuesToNotBeNull(column="key")]
    for a in required:
        if a not in df:
            df[a] = False
        exps.append(gx.expectations.ExpectColumnValuesToBeInSet(column=a, value_set=[True]))
    ok1 = run("target_sample", df, exps) if sample else True
    counts = pd.DataFrame([{"source_count": source_count, "target_count": target_count}])
    ok2 = run("counts", counts, [gx.expectations.ExpectColumnPairValuesToBeEqual(
        column_A="source_count", column_B="target_count")])
    return {"success": bool(ok1 and ok2), "sample_size": len(sample), "expectations": results}
