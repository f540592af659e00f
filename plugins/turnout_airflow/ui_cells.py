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


def duration(seconds) -> str:
    """A short duration: 45 s, 12 min, 3.5 h, 2.1 d."""
    if seconds is None:
        return "-"
    s = float(seconds)
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} d"


BAR_W = 120  # pixels
BAR_LABELS = (("export", "export"), ("load", "load"), ("catch_up", "catch-up"))


def bar(name: str, label: str, b: dict) -> str:
    """One phase's progress bar: a filled share, done/total and the ETA (data-* carry the numbers)."""
    frac = b.get("fraction")
    pct = 0.0 if frac is None else max(0.0, min(1.0, float(frac))) * 100
    eta = b.get("eta_seconds")
    done, total = b.get("done"), b.get("total")
    eta_text = "done" if frac == 1.0 else f"ETA {duration(eta)}" if eta is not None else "ETA -"
    e = html.escape
    return (f'<div class="bar" data-bar="{e(name)}" data-done="{e("" if done is None else str(done))}" '
            f'data-total="{e("" if total is None else str(total))}" '
            f'data-fraction="{e("" if frac is None else str(frac))}" '
            f'data-eta="{e("" if eta is None else str(eta))}"><span class="label">{e(label)}</span>'
            f'<svg class="track" width="{BAR_W}" height="10" viewBox="0 0 {BAR_W} 10">'
            f'<rect width="{BAR_W}" height="10" rx="2" fill="#eaeef2"/>'
            f'<rect class="fill" width="{pct * BAR_W / 100:.1f}" height="10" rx="2" fill="#2da44e"/></svg>'
            f'<span class="nums">{e(_n(done))} / {e(_n(total))} · {eta_text}</span></div>')


def progress_cell(st: dict, approval: dict | None, now: float) -> str:
    """Progress bars per phase, the approval's waiting time, alerts firing and the repair state."""
    e = html.escape
    prog = st.get("progress") or {}
    out = [bar(name, label, prog.get(name) or {}) for name, label in BAR_LABELS]
    if approval and approval.get("created_at") is not None:
        out.append(f'<div class="waiting" data-waiting="{max(0.0, now - approval["created_at"]):.0f}">approval '
                   f'waiting {duration(max(0.0, now - approval["created_at"]))}</div>')
    for rule, a in sorted((st.get("alerts") or {}).items()):
        out.append(f'<div class="bad alert" data-alert="{e(rule)}" title="since {e(str(a.get("since")))}">ALERT {e(rule)}: '
                   f'{e(str(a.get("message")))}</div>')
    load = st.get("load") or {}
    budget = ((st.get("preflight") or {}).get("budgets") or {}).get("write_units_per_second")
    if load.get("write_units") or budget:  # the load in the target's own units: achieved, budget, throttles
        ups = load.get("write_units_per_second")
        out.append(f'<div class="capacity" data-units-per-second="{e(str(ups))}" data-budget="{e(str(budget))}" '
                   f'data-throttled="{e(str(load.get("throttled") or 0))}"><small>load {_n(ups)} units/s'
                   f'{f" of {_n(budget)} budget" if budget else ""} · {_n(load.get("throttled") or 0)} throttled'
                   '</small></div>')
    rep = st.get("repair")
    if rep:
        out.append(f'<div class="repair"><small>{e(str(rep.get("kind")))}: {e(str(rep.get("status")))}, '
                   f'{_n(rep.get("repaired"))} keys repaired of {_n(rep.get("pending"))}</small></div>')
    return "".join(out)
