"""The Migrations view's "last validation" cell: the validation, repairs, the sampled validation, dead letters and
the way back, from one migration's status (turnout.status.migration_status)."""

from __future__ import annotations

import html


def _n(v) -> str:
    return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)


def validation_cell(st: dict) -> str:
    val = st.get("validation")
    e = html.escape
    if val:
        vtext = (f'<span class="{"ok" if val.get("ok") else "bad"}">{"OK" if val.get("ok") else "FAILED"}</span> '
                 f'{_n(val.get("source_count"))} / {_n(val.get("target_count"))}, {_n(val.get("differences"))} '
                 f'differences{" (final)" if val.get("final") else ""}')
    else:
        vtext = "not yet"
    if val and val.get("repaired"):
        vtext += f"<br><small>{_n(val['repaired'])} keys repaired</small>"
    smp = st.get("sampled")
    if smp:  # the sampled validation while the migration runs: a persistent difference shows here at once
        cls = "bad sampled" if smp["persistent"] else "sampled"
        vtext += (f'<br><small class="{cls}">sampled: {_n(smp["checked"])} keys checked, {smp["pending"]} '
                  f'pending, {smp["persistent"]} differ'
                  + (f' ({e(", ".join(smp["persistent_keys"]))})' if smp["persistent"] else "") + "</small>")
    dead = sum((st.get("dead_letter_files") or {}).values())
    if dead:  # fail closed, and say so where the operator looks
        vtext += (f'<br><span class="bad dead">dead letters: {dead} files '
                  f'({e(", ".join(sorted(st["dead_letter_files"])))})</span>')
    fb, fb_pre = st.get("fallback"), (st.get("preflight") or {}).get("fallback")
    if fb:
        ended = not fb.get("decision") and (fb.get("window_ends_at") or 0) < (st.get("at") or 0)
        state_text = fb.get("decision") or ("window ENDED: roll back or decommission?" if ended else "open")
        vtext += (f'<br><small class="fallback{" bad" if ended else ""}">fallback: {e(state_text)}, '
                  f'{_n(fb.get("changes_sent_back"))} changes sent back</small>')
    elif fb_pre:
        vtext += f'<br><small class="fallback">fallback: {e(fb_pre)}</small>'
    return vtext
