"""Row images of a binlog rows event, decoded from the event's bytes by one reader per column built once per
table map: the values ``mysql-replication`` gives for the same event (``ev.rows``), without its per-column
dispatch over every column type, its per-read buffer checks and its bookkeeping of why a value is None.

One difference, on purpose: ``latin1`` text is decoded as the server decodes it (Windows-1252, with the five
bytes that code page leaves undefined as the C1 controls U+0081, U+008D, U+008F, U+0090, U+009D), so the capture
gives the text a SELECT gives; the library's cp1252 refuses those five bytes and cannot decode the event at all.
Character sets Python decodes otherwise than the server, or not at all, are refused by preflight
(:func:`undecodable_charset`).

That library stays the reference: :func:`rows_of` returns None, and the caller reads ``ev.rows``, for every
event this module does not read whole and exactly: a column type without a reader here (BIT, GEOMETRY, the
pre-5.6 temporal formats), a column without a name, a row image that is not FULL, a partial JSON update, bytes
that do not end where the event ends, or any error while reading (so a row the library cannot decode fails
there, the same way). ``tests/integration/test_binlog_rowdecode.py`` compares both on a real MariaDB binlog.
"""

from __future__ import annotations

import codecs
import datetime
import decimal
import struct
from typing import Any, Callable, Optional

from pymysqlreplication.constants import FIELD_TYPE as F
from pymysqlreplication.json_binary import parse_json

Reader = Callable[[bytes, int], tuple]  # (buffer, offset) -> (value, offset after it)

_INTS = {F.TINY: "b", F.SHORT: "h", F.LONG: "i", F.LONGLONG: "q"}  # struct format, signed
_COMPRESSED = (0, 1, 1, 2, 2, 3, 3, 4, 4, 4)  # bytes of a NEWDECIMAL group of 0..9 digits


def _fixed(fmt: str) -> Reader:
    unpack, size = struct.Struct(fmt).unpack_from, struct.calcsize(fmt)

    def rd(buf: bytes, p: int) -> tuple:
        return unpack(buf, p)[0], p + size
    return rd


def _int24(unsigned: bool) -> Reader:
    def rd(buf: bytes, p: int) -> tuple:
        return int.from_bytes(buf[p:p + 3], "little", signed=not unsigned), p + 3
    return rd


def _uint(size: int) -> Callable[[bytes, int], int]:
    if size == 1:
        return lambda buf, p: buf[p]
    return lambda buf, p: int.from_bytes(buf[p:p + size], "little")


# MySQL's latin1 byte -> character: cp1252, its five undefined bytes mapped to the C1 control of the same number
_LATIN1 = "".join(bytes([b]).decode("cp1252", "replace") if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else chr(b)
                  for b in range(256))
_BIG_ENDIAN_ONLY = {"utf16": "UTF-16 (big-endian in MySQL)", "utf32": "UTF-32 (big-endian in MySQL)"}


def _python_codec(encoding: str) -> Optional[str]:
    """The Python codec the library decodes a column's text with (its table map gives the column ``encoding``),
    or None when Python has none of that name (the library then hands over the bytes)."""
    from pymysqlreplication.row_event import RowsEvent

    name = RowsEvent.charset_to_encoding(encoding)
    try:
        codecs.lookup(name)
    except LookupError:
        return None
    return name


def undecodable_charset(charset: str) -> Optional[str]:
    """Why the binlog reader cannot decode text of a MySQL character set exactly, or None when it can: Python has
    no codec of that name (the library then hands over bytes), or decodes it in the wrong byte order."""
    if charset in _BIG_ENDIAN_ONLY:
        return f"{_BIG_ENDIAN_ONLY[charset]} would be decoded in the machine's byte order"
    from pymysqlreplication.constants.CHARSET import charset_by_name

    known = charset_by_name(charset)  # the library's name -> encoding, as its table map gives it to a column
    if _python_codec(known.encoding if known else charset) is None:
        return "Python has no codec for it, so the binlog reader would hand over undecoded bytes"
    return None


def _text(length_size: int, charset: Optional[str]) -> Reader:
    """VARCHAR/CHAR/TEXT/BLOB: a little-endian length, then bytes decoded as the library decodes them (strict,
    in the column's character set; bytes when Python has no codec of that name)."""
    length = _uint(length_size)
    decode: Callable[[bytes], Any]
    if charset == "cp1252":  # the library's encoding of MySQL's latin1 (MySQL has no charset of that name)
        decode = lambda b: codecs.charmap_decode(b, "strict", _LATIN1)[0]  # noqa: E731
    elif charset is None:
        decode = bytes.decode  # UTF-8
    elif (codec := _python_codec(charset)) is None:
        decode = lambda b: b or ""  # noqa: E731  (b"".decode(<unknown codec>) gives "" before any codec lookup)
    else:
        decode = lambda b: b.decode(codec)  # noqa: E731

    def rd(buf: bytes, p: int) -> tuple:
        n = length(buf, p)
        p += length_size
        return decode(buf[p:p + n]), p + n
    return rd


def _fsp_reader(fsp: int) -> Callable[[bytes, int], tuple]:
    """(microseconds, bytes) of a fractional-seconds part of ``fsp`` digits (big-endian, signed as the library
    reads it)."""
    size = (fsp + 1) // 2
    scale = 10 ** (6 - fsp)

    def rd(buf: bytes, p: int) -> tuple:
        if not size:
            return 0, 0
        v = int.from_bytes(buf[p:p + size], "big", signed=True)
        if fsp % 2:
            v = int(v / 10)
        return v * scale, size
    return rd


def _datetime2(fsp: int) -> Reader:
    frac = _fsp_reader(fsp)

    def rd(buf: bytes, p: int) -> tuple:
        d = int.from_bytes(buf[p:p + 5], "big")
        ym = (d >> 22) & 0x1FFFF
        us, n = frac(buf, p + 5)
        try:
            t = datetime.datetime(int(ym / 13), ym % 13, (d >> 17) & 0x1F, (d >> 12) & 0x1F, (d >> 6) & 0x3F,
                                  d & 0x3F)
        except ValueError:
            return None, p + 5 + n
        return (t.replace(microsecond=us) if us > 0 else t), p + 5 + n
    return rd


def _timestamp2(fsp: int) -> Reader:
    frac = _fsp_reader(fsp)
    utc = datetime.datetime.utcfromtimestamp

    def rd(buf: bytes, p: int) -> tuple:
        t = utc(int.from_bytes(buf[p:p + 4], "big", signed=True))
        us, n = frac(buf, p + 4)
        return (t.replace(microsecond=us) if us > 0 else t), p + 4 + n
    return rd


def _time2(fsp: int) -> Reader:
    frac = _fsp_reader(fsp)

    def rd(buf: bytes, p: int) -> tuple:
        d = int.from_bytes(buf[p:p + 3], "big", signed=True)
        sign = 1 if (d >> 23) & 1 else -1
        if sign == -1:
            d = ~d + 1
        us, n = frac(buf, p + 3)
        return datetime.timedelta(hours=(d >> 12) & 0x3FF, minutes=(d >> 6) & 0x3F, seconds=d & 0x3F,
                                  microseconds=us) * sign, p + 3 + n
    return rd


def _date(buf: bytes, p: int) -> tuple:
    d = buf[p] | buf[p + 1] << 8 | buf[p + 2] << 16
    year, month, day = (d >> 9) & 0x7FFF, (d >> 5) & 0xF, d & 0x1F
    if not (year and month and day):
        return None, p + 3
    return datetime.date(year, month, day), p + 3


def _year(buf: bytes, p: int) -> tuple:
    return buf[p] + 1900, p + 1


def _decimal(precision: int, decimals: int) -> Reader:
    """NEWDECIMAL: groups of nine digits in four big-endian bytes, the leading and trailing partial groups in
    fewer, the sign in the first bit (every byte inverted when negative); the same digit string the library
    builds, so the same Decimal (its exponent too)."""
    integral = precision - decimals
    whole_i, part_i = divmod(integral, 9)
    whole_f, part_f = divmod(decimals, 9)
    lead, tail = _COMPRESSED[part_i], _COMPRESSED[part_f]
    size = lead + 4 * (whole_i + whole_f) + tail

    def rd(buf: bytes, p: int) -> tuple:
        b = bytearray(buf[p:p + size])
        if b[0] & 0x80:
            res, mask = "", 0
        else:
            res, mask = "-", -1
        b[0] ^= 0x80
        q = 0
        if lead:
            res += str(int.from_bytes(b[:lead], "big", signed=True) ^ mask)
            q = lead
        for _ in range(whole_i):
            res += f"{int.from_bytes(b[q:q + 4], 'big', signed=True) ^ mask:09d}"
            q += 4
        res += "."
        for _ in range(whole_f):
            res += f"{int.from_bytes(b[q:q + 4], 'big', signed=True) ^ mask:09d}"
            q += 4
        if tail:
            res += f"{int.from_bytes(b[q:q + tail], 'big', signed=True) ^ mask:0{part_f}d}"
        return decimal.Decimal(res), p + size
    return rd


def _enum(size: int, values: Optional[list]) -> Reader:
    index = _uint(size)

    def rd(buf: bytes, p: int) -> tuple:
        i = index(buf, p)
        return (values[i] if values else None), p + size
    return rd


def _set(size: int, values: Optional[list]) -> Reader:
    mask_of = _uint(size)

    def rd(buf: bytes, p: int) -> tuple:
        mask = mask_of(buf, p)
        got = {v for i, v in enumerate(values or ()) if mask & (1 << i)}
        return (got or None), p + size
    return rd


def _json(length_size: int) -> Reader:
    length = _uint(length_size)

    def rd(buf: bytes, p: int) -> tuple:
        n = length(buf, p)
        p += length_size
        if n == 0:
            return None, p
        return parse_json(buf[p], buf[p + 1:p + n]), p + n
    return rd


def column_reader(c: Any) -> Optional[Reader]:
    """The reader of one ``pymysqlreplication.column.Column``, or None when only the library reads its type."""
    t = c.type
    if t in _INTS:
        return _fixed("<" + (_INTS[t].upper() if c.unsigned else _INTS[t]))
    if t == F.INT24:
        return _int24(bool(c.unsigned))
    simple: dict[int, Callable[[], Reader]] = {
        F.FLOAT: lambda: _fixed("<f"), F.DOUBLE: lambda: _fixed("<d"),
        F.VARCHAR: lambda: _text(2 if c.max_length > 255 else 1, c.character_set_name),
        F.STRING: lambda: _text(2 if c.max_length > 255 else 1, c.character_set_name),
        F.BLOB: lambda: _text(c.length_size, c.character_set_name),
        F.NEWDECIMAL: lambda: _decimal(c.precision, c.decimals),
        F.DATETIME2: lambda: _datetime2(c.fsp), F.TIMESTAMP2: lambda: _timestamp2(c.fsp),
        F.TIME2: lambda: _time2(c.fsp), F.DATE: lambda: _date, F.YEAR: lambda: _year,
        F.ENUM: lambda: _enum(c.size, c.enum_values), F.SET: lambda: _set(c.size, c.set_values),
        F.JSON: lambda: _json(c.length_size),
    }
    make = simple.get(t)
    return make() if make else None


class TableDecoder:
    """The row images of one table map: its column names, one reader each, and the FULL-image bitmap."""

    __slots__ = ("names", "readers", "full", "nbytes")

    def __init__(self, names: tuple, readers: tuple):
        self.names, self.readers = names, readers
        self.nbytes = (len(names) + 7) // 8
        self.full = (1 << len(names)) - 1

    def is_full(self, bitmap: bytes) -> bool:
        """Every column in the image (the bits past the last column do not count)."""
        return int.from_bytes(bitmap, "little") & self.full == self.full

    def image(self, buf: bytes, p: int) -> tuple:
        nb = self.nbytes
        nulls = int.from_bytes(buf[p:p + nb], "little")
        p += nb
        values: dict[str, Any] = {}
        bit = 1
        for name, rd in zip(self.names, self.readers):
            if nulls & bit:
                values[name] = None
            else:
                values[name], p = rd(buf, p)
            bit <<= 1
        return values, p


def decoder_of(table: Any) -> Optional[TableDecoder]:
    """The decoder of a ``pymysqlreplication.table.Table`` (built once, kept on it), or None when a column has no
    name or no reader here."""
    got = table.__dict__.get("_turnout_decoder", False)
    if got is not False:
        return got
    names, readers = [], []
    dec: Optional[TableDecoder] = None
    for c in table.columns:
        rd = column_reader(c) if c.name else None
        if rd is None:
            break
        names.append(c.name)
        readers.append(rd)
    else:
        dec = TableDecoder(tuple(names), tuple(readers))
    table.__dict__["_turnout_decoder"] = dec
    return dec


_KEYS = {"WriteRowsEvent": ("values",), "DeleteRowsEvent": ("values",),
         "UpdateRowsEvent": ("before_values", "after_values")}


def rows_of(ev: Any) -> Optional[list[dict]]:
    """``ev.rows`` (each row's image under the library's keys: ``values``, or ``before_values`` and
    ``after_values``), decoded here; None when the caller must read ``ev.rows`` instead (see the module)."""
    keys = _KEYS.get(type(ev).__name__)
    if keys is None:
        return None
    try:
        dec = decoder_of(ev.table_map[ev.table_id])
        wrapper = ev.packet
        if dec is None or len(ev.columns) != len(dec.names) or wrapper._BinLogPacketWrapper__data_buffer:
            return None
        if not dec.is_full(ev.columns_present_bitmap) or (
                len(keys) == 2 and not dec.is_full(ev.columns_present_bitmap2)):
            return None
        pkt = wrapper.packet
        buf, p = pkt._data, pkt._position
        end = p + ev.event_size - wrapper.read_bytes
        image = dec.image
        rows = []
        while p < end:
            row = {}
            for k in keys:
                row[k], p = image(buf, p)
            rows.append(row)
        return rows if p == end else None
    except Exception:
        return None
