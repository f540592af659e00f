"""The apply path's shortcuts give what the general code gives: number checks without Decimal, items read from
staging without a copy, the MySQL transform's inline casts, and the pipelined applier's checkpoint rules."""

import random

import pytest

from turnout import changelog, phases
from turnout.adapters.mysql.values import check_number, check_number_by_decimal
from turnout.codec import _from_json_av, canonical_number, from_json_av, item_from_json, item_size
from turnout.errors import RecordError

from test_apply import FakeSink, ctx_for, finish_capture, put, value


def _numbers():
    rnd = random.Random(7)
    out = ["0", "-0", "0.0", "-0.00", "007", "100", "19.90", "0.05", "-0.050", "1e5", "1E-3", ".5", "5.", "abc", "",
           "-", "1_000", " 1", "NaN", "Infinity", "9" * 61, "0." + "0" * 40 + "1", "1" * 28, "1" * 29]
    for _ in range(3000):
        whole = "0" * rnd.randint(0, 2) + str(rnd.randint(0, 10 ** rnd.randint(0, 14)))
        frac = rnd.choice(["", "." + "0" * rnd.randint(0, 3) + str(rnd.randint(0, 10 ** rnd.randint(0, 12)))
                           + "0" * rnd.randint(0, 3)])
        out.append(rnd.choice(["", "-"]) + whole + frac)
    return out


def _outcome(fn, *a):
    try:
        return fn(*a)
    except (RecordError, ValueError, ArithmeticError) as exc:
        return type(exc).__name__


def _canonical_by_decimal(text):
    from decimal import Decimal

    from turnout import codec

    d = Decimal(text)
    if not d.is_finite():
        raise RecordError("not finite")
    if d == 0:
        return "0"
    sign, digits, exp = d.normalize(context=codec._CTX).as_tuple()
    s = "".join(map(str, digits))
    if exp >= 0:
        s += "0" * exp
    else:
        point = len(s) + exp
        s = ("0." + "0" * (-point) + s) if point <= 0 else (s[:point] + "." + s[point:])
    return ("-" if sign else "") + s


def test_number_shortcuts_agree_with_decimal():
    for text in _numbers():
        want = _outcome(_canonical_by_decimal, text)
        assert _outcome(canonical_number, text) == (want if want != "InvalidOperation" else "RecordError"), text
        assert _outcome(from_json_av, {"N": text}) == _outcome(_from_json_av, {"N": text}, "item"), text
        assert _outcome(check_number, text) == _outcome(check_number_by_decimal, text), text


def test_item_from_json_without_copy_equals_the_converted_item():
    plain = {"pk": {"S": "a"}, "n": {"N": "1.50"}, "b": {"BOOL": True}, "z": {"NULL": True}}
    assert item_from_json(plain) is plain
    mixed = {"pk": {"S": "a"}, "bin": {"B": "AAE="}, "m": {"M": {"x": {"N": "2"}}}}
    out = item_from_json(mixed)
    assert out == {"pk": {"S": "a"}, "bin": {"B": b"\x00\x01"}, "m": {"M": {"x": {"N": "2"}}}}
    assert mixed["bin"] == {"B": "AAE="}  # the input is not changed
    with pytest.raises(RecordError):
        item_from_json({"n": {"N": "1e"}})
    with pytest.raises(RecordError):
        item_from_json({"n": {"X": "1"}})


def test_item_size_counts_bytes_of_non_ascii_text():
    assert item_size({"k": {"S": "ab"}}) == 3
    assert item_size({"k\u00fc": {"S": "\u00fc\u00fc"}, "s": {"SS": ["\u00fc", "a"]}}) == 3 + 4 + 1 + 3


class FailingSink(FakeSink):
    """Fails every write of a change with version ``fail_version`` (one file's batch), whichever lane takes it."""

    def __init__(self, fail_version):
        super().__init__()
        self.fail_version = fail_version

    def apply_changes(self, changes):
        if any(c.version[0] == self.fail_version for c in changes):
            raise RuntimeError("killed mid-batch")
        return super().apply_changes(changes)


def test_checkpoint_stays_behind_a_failed_batch_while_later_ones_were_queued(tmp_path):
    """Files 0..5 (one batch each, several in flight): file 2's writes fail. The checkpoint never passes a batch
    that was not acknowledged, and a restart applies everything, in order."""
    sink = FailingSink(fail_version=3)
    ctx = ctx_for(tmp_path, sink)
    for n in range(6):
        changelog.write_file(ctx.staging, n, [put(f"k{i}", n + 1, n * 100 + i) for i in range(40)], 0)
    finish_capture(ctx, 6)
    with pytest.raises(RuntimeError, match="killed"):
        phases.run_apply(ctx, max_files_per_batch=1)
    ck = ctx.staging.get_json("apply/checkpoint.json")
    assert ck["next_file"] <= 2
    sink.fail_version = None
    out = phases.run_apply(ctx_for(tmp_path, sink), max_files_per_batch=1)
    assert all(value(sink, f"k{i}") == 500 + i for i in range(40))
    assert ctx.staging.get_json("apply/checkpoint.json")["next_file"] == 6 and out["stopped"] == "stop requested"
