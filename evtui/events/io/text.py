"""Text and CSV event files: one event per line (events.md §1.6).

Dialects read, told apart by the first lines:
* RPG `events.txt`: `t x y p` separated by whitespace, t in seconds (float) or µs;
  rpg_e2vid inputs start with a `width height` line.
* faery CSV: a `t,x@W,y@H,on` header (µs integers); any `t,x,y,p`-style header names
  the column order (t|ts|timestamp, x, y, p|polarity|on).
* Metavision's standalone decoders: a `%geometry:W,H` line, then `x,y,p,t` rows.

Parsing is vectorised over blocks of lines (bytes up to the last newline, in 256 KiB
pieces that keep numpy's temporaries in cache): a numpy tokenizer finds the four
fields of each line, then the 8 bytes ending at each field are read as one uint64 and
turned into a number with SWAR multiply-shifts; the rare field that has an exponent or
too many digits goes through numpy's own float parsing. Seconds or µs is decided once,
from the first lines: a
`.` in the time column means seconds (numbers in exponent notation count as seconds
only when they have a fractional part, so numpy's `%.18e` dumps of µs read right).
Seconds become µs as `rint(float(t) * 1e6)`, the value np.loadtxt would give, never
truncated. Checkpoints are the byte offset of a line plus its line number.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evtui.events.errors import RecordingError
from evtui.events.io.base import EventReader, EventWriter, RecordingInfo
from evtui.events.types import EVENT_DTYPE, Block, Checkpoint, concat_events

HEAD_BYTES = 64 * 1024
"""Header lines and the seconds-or-µs decision come from at most this many first bytes."""

MAX_LINE_BYTES = 1 << 20

T_NAMES = ("t", "ts", "timestamp", "timestamps", "time", "t_us")
X_NAMES = ("x",)
Y_NAMES = ("y",)
P_NAMES = ("p", "polarity", "pol", "on")

_POW10 = 10 ** np.arange(19, dtype=np.int64)
_POW10F = 10.0 ** np.arange(23)
_EXACT_FLOAT = 1 << 53
_GEOMETRY = re.compile(rb"geometry\s*[:=]?\s*(\d+)\s*[,x\s]\s*(\d+)", re.IGNORECASE)
_SPLIT = re.compile(rb"[,\s]+")
_NUMBER = re.compile(rb"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_LETTERS = re.compile(rb"[A-DF-Za-df-z@_]")

ORDER_TXYP: tuple[int, int, int, int] = (0, 1, 2, 3)
ORDER_METAVISION: tuple[int, int, int, int] = (3, 0, 1, 2)  # x,y,p,t rows: t is field 3...


@dataclass(frozen=True)
class TextLayout:
    """What the first lines of a text file say: where events start and their columns."""

    data_offset: int
    data_line: int  # 1-based line number of the first event line
    order: tuple[int, int, int, int]  # field index of t, x, y, p within a line
    geometry: tuple[int, int] | None
    dialect: str


def _split(line: bytes) -> list[bytes]:
    return [tok for tok in _SPLIT.split(line.strip()) if tok]


def _is_number(tok: bytes) -> bool:
    return _NUMBER.fullmatch(tok) is not None


Order = tuple[int, int, int, int]


def _header_order(
    path: Path | None, names: list[bytes]
) -> tuple[Order | None, tuple[int, int] | None]:
    """Column order and geometry from a CSV header such as `t,x@640,y@480,on`."""
    roles: dict[str, int] = {}
    size: dict[str, int] = {}
    for i, raw in enumerate(names):
        name, _, at = raw.decode("latin-1").strip().strip("\"'").lower().partition("@")
        for role, choices in (("t", T_NAMES), ("x", X_NAMES), ("y", Y_NAMES), ("p", P_NAMES)):
            if name in choices and role not in roles:
                roles[role] = i
                if at.isdigit():
                    size[role] = int(at)
    if len(names) != 4 or len(roles) != 4:
        if path is None:
            return None, None
        raise RecordingError(
            path,
            f"unknown CSV header {b','.join(names).decode('latin-1')!r}; expected four "
            "columns named t|ts|timestamp, x, y, p|polarity|on (e.g. t,x@W,y@H,on)",
            0,
        )
    geometry = (size["x"], size["y"]) if "x" in size and "y" in size else None
    return (roles["t"], roles["x"], roles["y"], roles["p"]), geometry


def parse_layout(head: bytes, path: Path | None = None) -> TextLayout | None:
    """The layout from a file's first bytes; None (or RecordingError when `path` is
    given) when they are not event text. Only complete lines are looked at."""
    # A head shorter than HEAD_BYTES is the whole file: its last line counts even
    # without a newline. Otherwise only complete lines do.
    lines_end = len(head) if len(head) < HEAD_BYTES else head.rfind(b"\n") + 1
    pos = 0
    line_no = 0
    geometry: tuple[int, int] | None = None
    order: Order | None = None
    dialect = "rpg"
    seen_data_line = False
    while pos < lines_end:
        nl = head.find(b"\n", pos, lines_end)
        stop = nl + 1 if nl >= 0 else lines_end
        line = head[pos:stop]
        line_no += 1
        stripped = line.strip()
        if not stripped:
            pos = stop
            continue
        if stripped[:1] in (b"%", b"#"):
            m = _GEOMETRY.search(stripped)
            if m:
                geometry = (int(m.group(1)), int(m.group(2)))
                if stripped.lower().startswith(b"%geometry:") and order is None:
                    order, dialect = ORDER_METAVISION, "metavision"
            pos = stop
            continue
        tokens = _split(stripped)
        if _LETTERS.search(stripped):
            if order not in (None, ORDER_METAVISION) or seen_data_line:
                break
            order, g = _header_order(path, tokens)
            if order is None:
                return None
            geometry = g or geometry
            dialect = "csv"
            pos = stop
            continue
        if (
            len(tokens) == 2
            and not seen_data_line
            and geometry is None
            and all(t.isdigit() for t in tokens)
        ):
            geometry = (int(tokens[0]), int(tokens[1]))
            seen_data_line = True
            pos = stop
            continue
        if len(tokens) == 4 and all(_is_number(t) for t in tokens):
            return TextLayout(pos, line_no, order or ORDER_TXYP, geometry, dialect)
        break
    whole_file = pos >= lines_end and len(head) < HEAD_BYTES
    if path is None and not (whole_file and order is not None):
        return None
    if whole_file:
        # Headers only (or empty): a recording with no events.
        return TextLayout(pos, line_no + 1, order or ORDER_TXYP, geometry, dialect)
    text = head[pos : pos + 60].split(b"\n")[0].decode("latin-1", "replace")
    raise RecordingError(
        path,
        f"line {line_no}: expected an event line of four numbers (t x y p, separated by "
        f"spaces or commas), found {text!r}",
        pos,
    )


# --- vectorised parsing -------------------------------------------------------------------


class _BadLine(Exception):
    """Raised by the parser with the index of the first bad line in the block."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line = line
        self.why = why


@dataclass
class _Fields:
    """Token starts/ends of each line's four fields, plus each row's line index."""

    starts: np.ndarray  # (rows, 4)
    ends: np.ndarray  # (rows, 4)
    row_line: np.ndarray | None  # line index of each row; None: row i is line i
    newlines: np.ndarray  # positions of '\n' in the block
    lines: int


def _tokenize(a: np.ndarray) -> _Fields:
    """Split a block (ending in '\\n') into rows of four fields."""
    sep = (a <= 32) | (a == 44)
    d = np.flatnonzero(sep)
    # Fast path: exactly one separator between fields and a newline after the fourth.
    if len(d) % 4 == 0 and len(d) and int(d[0]) > 0:
        ends = d.reshape(-1, 4)
        newlines = ends[:, 3]
        if (
            bool((a[newlines] == 10).all())
            and int(np.count_nonzero(a == 10)) == len(newlines)
            and bool((d[1:] - d[:-1] > 1).all())
        ):
            starts = np.empty(len(d), d.dtype)
            starts[0] = 0
            np.add(d[:-1], 1, out=starts[1:])
            return _Fields(starts.reshape(-1, 4), ends, None, newlines, len(newlines))
    # General path: runs of separators, blank lines, CRLF, trailing spaces.
    tok = ~sep
    edges = np.flatnonzero(tok[1:] != tok[:-1]) + 1
    if tok[0]:
        edges = np.concatenate(([0], edges))
    if len(edges) % 2:
        edges = np.concatenate((edges, [len(a)]))
    starts, ends = edges[0::2], edges[1::2]
    newlines = np.flatnonzero(a == 10)
    line_of = np.searchsorted(newlines, starts)
    n = len(starts)
    ok = n % 4 == 0
    if ok and n:
        g = line_of.reshape(-1, 4)
        ok = bool((g[:, 0] == g[:, 3]).all()) and bool((g[1:, 0] > g[:-1, 3]).all())
    if not ok:
        counts = np.bincount(line_of, minlength=len(newlines))
        bad = np.flatnonzero((counts != 0) & (counts != 4))
        line = int(bad[0]) if len(bad) else 0
        found = int(counts[line]) if len(counts) else 0
        raise _BadLine(line, f"expected 4 fields (t x y p), found {found}")
    return _Fields(
        starts.reshape(-1, 4), ends.reshape(-1, 4), line_of[0::4], newlines, len(newlines)
    )


# Eight ASCII digits at a time: the bytes ending at a token are read as one little-endian
# uint64 (first character in the low byte) and combined with three multiply-shift steps.
_PAD = 24  # spaces before each block, so the word ending at any token is in bounds
_ZEROS = np.uint64(0x3030303030303030)
_HIGH = np.uint64(0x8080808080808080)
_NINE = np.uint64(0x7676767676767676)  # + byte > 9 sets its high bit
_KEEP = np.array(
    [0] + [((1 << (8 * k)) - 1) << (8 * (8 - k)) for k in range(1, 9)], dtype=np.uint64
)
_FILL = _ZEROS & ~_KEEP
_KEEP4 = (_KEEP[:5] >> np.uint64(32)).astype(np.uint32)
_ZEROS4 = np.uint32(0x30303030)
_FILL4 = _ZEROS4 & ~_KEEP4
_NINE4 = np.uint32(0x76767676)
_HIGH4 = np.uint32(0x80808080)
_U8 = np.uint64(8)
_U16 = np.uint64(16)
_U32 = np.uint64(32)
_SWAR8 = (
    (np.uint64(0x0F0F0F0F0F0F0F0F), np.uint64(2561), _U8),
    (np.uint64(0x00FF00FF00FF00FF), np.uint64(6553601), _U16),
    (np.uint64(0x0000FFFF0000FFFF), np.uint64(42949672960001), _U32),
)
PIECE_BYTES = 256 * 1024
"""Blocks are parsed in line-aligned pieces of this size: the temporaries stay in cache
(measured 2x faster than parsing 4 MiB at once)."""
MAX_DIGITS = 18  # int64 holds any 18-digit number


def _words(buf: np.ndarray) -> np.ndarray:
    """Every unaligned 8-byte window of `buf` as a little-endian uint64 (a view, no copy)."""
    return np.ndarray((len(buf) - 7,), "<u8", buf, 0, (1,))


def _uint(words: np.ndarray, s: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values of the all-digit tokens [s, e) (positions in the block) and which were valid.

    Empty tokens read as 0 and valid: callers decide whether a part may be empty.
    """
    n = e - s
    top = int(n.max()) if len(n) else 0
    if top <= 4:
        return _uint4(words, n, e)
    ok = n <= MAX_DIGITS
    value = np.zeros(len(s), np.int64)
    tmp = np.empty(len(s), np.uint64)
    for k in range(0, min(top, MAX_DIGITS), 8):
        keep = np.minimum(n, 8) if k == 0 else np.clip(n - k, 0, 8)
        w = words[e + (_PAD - 8 - k)]
        w &= _KEEP[keep]
        w |= _FILL[keep]
        w ^= _ZEROS
        np.add(w, _NINE, out=tmp)
        tmp |= w
        tmp &= _HIGH
        ok &= tmp == 0
        for mask, mul, shift in _SWAR8:
            w &= mask
            w *= mul
            w >>= shift
        if k:
            w *= np.uint64(10**k)
        value += w.view(np.int64)
    return value, ok


def _uint4(words: np.ndarray, n: np.ndarray, e: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_uint` for tokens of at most 4 digits (x, y, p): half the bytes per operation."""
    w = (words[e + (_PAD - 8)] >> _U32).astype(np.uint32)  # the 4 bytes before e
    w &= _KEEP4[n]
    w |= _FILL4[n]
    w ^= _ZEROS4
    tmp = w + _NINE4
    tmp |= w
    tmp &= _HIGH4
    ok = tmp == 0
    w &= np.uint32(0x0F0F0F0F)
    w *= np.uint32(2561)
    w >>= np.uint32(8)
    w &= np.uint32(0x00FF00FF)
    w *= np.uint32(6553601)
    w >>= np.uint32(16)
    return w.astype(np.int64), ok


def _signed(
    a: np.ndarray, words: np.ndarray, s: np.ndarray, e: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(magnitude, negative, valid) of integer tokens with an optional leading sign."""
    first = a[s] if len(s) else np.zeros(0, np.uint8)
    neg = first == 45
    signed = neg | (first == 43)
    if signed.any():
        s = s + signed
    v, ok = _uint(words, s, e)
    ok &= e > s
    return v, neg, ok


def _decimal(
    a: np.ndarray, words: np.ndarray, s: np.ndarray, e: np.ndarray, expect_dot: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mantissa magnitude, fraction digits, negative, valid) of `[+-]digits[.digits]`.

    Integers are tried first unless `expect_dot` (a seconds column), then the tokens
    that failed are split at their '.'.
    """
    m = len(s)
    if not expect_dot:
        v, neg, ok = _signed(a, words, s, e)
        k = np.zeros(m, np.int64)
        if ok.all():
            return v, k, neg, ok
    dot = _dots(a, s, e)
    if expect_dot and bool((dot >= 0).all()):
        rows = None  # every token has one '.': no subsetting
        rs, re_, rd = s, e, dot
    else:
        if expect_dot:
            v, neg, ok = _signed(a, words, s, e)
            k = np.zeros(m, np.int64)
        rows = np.flatnonzero(~ok & (dot >= 0))
        if len(rows) == 0:
            return v, k, neg, ok
        rs, re_, rd = s[rows], e[rows], dot[rows]
    ip, ineg, iok = _signed_allow_empty(a, words, rs, rd)
    fp, fok = _uint(words, rd + 1, re_)
    kk = re_ - rd - 1
    good = iok & fok & (kk <= MAX_DIGITS) & ((rd - rs) - ineg + kk > 0)
    kk = np.where(good, kk, 0)
    good &= ip < _POW10[MAX_DIGITS - kk]
    mant = ip * _POW10[kk] + fp
    if rows is None:
        return mant, kk, ineg, good
    v[rows] = mant
    k[rows] = kk
    neg[rows] = ineg
    ok[rows] = good
    return v, k, neg, ok


def _signed_allow_empty(
    a: np.ndarray, words: np.ndarray, s: np.ndarray, e: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Like `_signed` but an empty integer part ('.5', '-.5') is 0."""
    first = a[s]  # s < e or s is the '.' itself: always inside the block
    neg = (first == 45) & (s < e)
    s = s + (neg | ((first == 43) & (s < e)))
    v, ok = _uint(words, s, e)
    return v, neg, ok


def _dots(a: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Position of the '.' in each token [s, e); -1 without one, -2 with several."""
    dots = np.flatnonzero(a == 46)
    m = len(s)
    if len(dots) == m and m and bool(((dots >= s) & (dots < e)).all()):
        return dots
    out = np.full(m, -1, np.int64)
    if len(dots) == 0 or m == 0:
        return out
    # Tokens of several columns come concatenated, so sort their starts first.
    rank = np.argsort(s, kind="stable")
    ss = s[rank]
    r = np.searchsorted(ss, dots, side="right") - 1
    inside = (r >= 0) & (dots < e[rank[np.maximum(r, 0)]])
    r, dots = r[inside], dots[inside]
    out[rank[r]] = dots
    if len(r) > 1:
        dup = r[1:] == r[:-1]
        out[rank[r[1:][dup]]] = -2
    return out


def _token_floats(a: np.ndarray, s: np.ndarray, e: np.ndarray) -> np.ndarray:
    """float() of each token, vectorised through numpy's bytes-to-float cast (correctly
    rounded, like strtod); NaN where a token is not a number."""
    if len(s) == 0:
        return np.zeros(0)
    width = int((e - s).max())
    idx = s[:, None] + np.arange(width)
    inside = idx < e[:, None]
    chars = np.where(inside, a[np.minimum(idx, len(a) - 1)], 32).astype(np.uint8)
    strings = np.ascontiguousarray(chars).view(f"S{width}").ravel()
    try:
        return strings.astype(np.float64)
    except ValueError:
        out = np.full(len(s), np.nan)
        for i in range(len(s)):  # error path only: find which tokens are not numbers
            with contextlib.suppress(ValueError):
                out[i] = float(strings[i])
        return out


_WHAT = {
    "t": "a time in seconds",
    "t_us": "an integer µs time (the file's first lines have no '.', so times are µs)",
    "x": "an x coordinate (integer 0..65535)",
    "y": "a y coordinate (integer 0..65535)",
    "p": "a polarity (0/1 or -1/1)",
}


def parse_block(
    data: bytes, order: tuple[int, int, int, int], seconds: bool | None
) -> tuple[np.ndarray, int, bool]:
    """Events from complete lines (`data` ends with '\\n'), the number of lines, and
    whether the time column had a '.' (how `seconds` is decided for a file).

    Raises _BadLine naming the first line that is not four numbers in range.
    """
    buf = np.empty(len(data) + _PAD, np.uint8)
    buf[:_PAD] = 32
    buf[_PAD:] = np.frombuffer(data, np.uint8)
    a = buf[_PAD:]
    words = _words(buf)
    f = _tokenize(a)
    rows = len(f.starts)
    out = np.empty(rows, EVENT_DTYPE)
    if rows == 0:
        return out, f.lines, False
    t, t_good, dotted = _time_column(a, words, f.starts[:, order[0]], f.ends[:, order[0]], seconds)
    out["t"] = t
    # x, y and p in one pass over their concatenated tokens: fewer, longer numpy calls.
    cols = list(order[1:])
    v, good = _integer_fields(a, words, f.starts[:, cols].T.ravel(), f.ends[:, cols].T.ravel())
    v = v.reshape(3, rows)
    good = good.reshape(3, rows)
    good[:2] &= (v[:2] >= 0) & (v[:2] <= 65535)
    out["x"] = v[0]
    out["y"] = v[1]
    out["p"] = v[2] > 0
    bad = ~t_good | ~good.all(axis=0)
    if bad.any():
        r = int(np.argmax(bad))
        role = "t" if not t_good[r] else "xyp"[int(np.argmin(good[:, r]))]
        line = int(f.row_line[r]) if f.row_line is not None else r
        field = order["txyp".index(role)] + 1
        in_seconds = dotted if seconds is None else seconds
        what = _WHAT["t_us" if role == "t" and not in_seconds else role]
        raise _BadLine(line, f"expected {what} in field {field}")
    return out, f.lines, dotted


def _integer_fields(
    a: np.ndarray, words: np.ndarray, s: np.ndarray, e: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Signed integer values of tokens (x, y, p), and which are valid integers; '12.0'
    and '1.2e1' count as 12, '-0' as 0."""
    v, k, neg, good = _decimal(a, words, s, e)
    if k.any():  # "12.0" is an integer; "12.5" is not
        scale = _POW10[np.minimum(k, MAX_DIGITS)]
        good &= v % scale == 0
        v = v // scale
    if not good.all():  # exponent notation and the like
        idx = np.flatnonzero(~good)
        fl = _token_floats(a, s[idx], e[idx])
        ok2 = np.isfinite(fl) & (fl == np.floor(fl)) & (np.abs(fl) < 1e9)
        v[idx] = np.abs(np.where(ok2, fl, 0)).astype(np.int64)
        neg[idx] = np.where(ok2, fl < 0, False)
        good[idx] = ok2
    v = np.where(neg, -v, v)
    return v, good


def _time_column(
    a: np.ndarray, words: np.ndarray, s: np.ndarray, e: np.ndarray, seconds: bool | None
) -> tuple[np.ndarray, np.ndarray, bool]:
    """µs of each time token, which are valid, and whether any had a '.'."""
    v, k, neg, good = _decimal(a, words, s, e, expect_dot=bool(seconds))
    dotted = bool((k > 0).any()) or _has_bare_dot(a, s, e, good)
    special = ~good
    as_seconds = dotted if seconds is None else seconds
    fl = None
    if special.any():  # exponent notation or garbage: numpy's float parsing decides
        fl = _token_floats(a, s[special], e[special])
        if seconds is None and not dotted:
            finite = fl[np.isfinite(fl)]
            as_seconds = bool((finite != np.floor(finite)).any())
            dotted = as_seconds
    if as_seconds:
        mant = np.where(neg, -v, v)
        exact = np.abs(v) < _EXACT_FLOAT
        t = np.rint(mant.astype(np.float64) / _POW10F[np.minimum(k, 22)] * 1e6)
        slow = good & ~exact
        if slow.any():  # more digits than a double holds: let float() round them
            t[slow] = np.rint(_token_floats(a, s[slow], e[slow]) * 1e6)
        if fl is not None:
            t[special] = np.rint(fl * 1e6)
        fine = np.isfinite(t) & (np.abs(t) < 9.2e18)
        t[~fine] = 0
        return t.astype(np.int64), fine, dotted
    scale = _POW10[np.minimum(k, MAX_DIGITS)]
    good &= v % scale == 0
    t = np.where(neg, -(v // scale), v // scale)
    if fl is not None:
        ok2 = np.isfinite(fl) & (fl == np.floor(fl)) & (np.abs(fl) < _EXACT_FLOAT)
        t[special] = np.where(ok2, fl, 0).astype(np.int64)
        good[special] = ok2
    return t, good, dotted


def _has_bare_dot(a: np.ndarray, s: np.ndarray, e: np.ndarray, good: np.ndarray) -> bool:
    """'12.' has no fraction digits but still says seconds."""
    ends = e[good] - 1
    return bool(len(ends)) and bool((a[ends] == 46).any())


def _line_start(data: bytes, line: int) -> int:
    pos = 0
    for _ in range(line):
        pos = data.index(b"\n", pos) + 1
    return pos


class TextReader(EventReader):
    """RPG/faery/Metavision text and CSV, parsed block-wise with numpy."""

    format = "text"
    description = "text/CSV events (RPG t x y p, faery CSV, Metavision %geometry CSV)"
    extensions = (".txt", ".csv")

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        if not head or b"\x00" in head:
            return False
        printable = sum(head.count(bytes([b])) for b in b"\t\n\r")
        ascii_bytes = np.frombuffer(head, np.uint8)
        printable += int(np.count_nonzero((ascii_bytes >= 32) & (ascii_bytes < 127)))
        if printable < len(head) * 0.99:
            return False
        try:
            return parse_layout(head) is not None
        except RecordingError:
            return False

    def _open(self) -> RecordingInfo:
        try:
            with self.path.open("rb") as fh:
                head = fh.read(HEAD_BYTES)
        except OSError as e:
            raise RecordingError(self.path, f"cannot read: {e.strerror or e}") from None
        if b"\x00" in head:
            raise RecordingError(self.path, "binary data (NUL bytes) in a text file", head.index(0))
        self.layout = parse_layout(head, self.path)
        assert self.layout is not None
        self._size = self.path.stat().st_size
        self._seconds = self._decide_unit(head)
        header = {"dialect": self.layout.dialect, "time_unit": "s" if self._seconds else "us"}
        g = self.layout.geometry
        valid = g is not None and 0 < g[0] <= 65536 and 0 < g[1] <= 65536
        w, h = g if valid and g else (None, None)
        return RecordingInfo(self.path, self.format, w, h, header, "header" if valid else "unknown")

    def _decide_unit(self, head: bytes) -> bool:
        """Seconds or µs, once per file, from the complete lines of the first 64 KiB."""
        body = head[self.layout.data_offset :]
        end = body.rfind(b"\n")
        if end < 0:
            if len(head) < HEAD_BYTES:
                body = body + b"\n"
                end = len(body) - 1
            else:
                return False
        try:
            _, _, dotted = parse_block(body[: end + 1], self.layout.order, None)
        except _BadLine:
            return self._decide_unit_lines(body[: end + 1])
        return dotted

    def _decide_unit_lines(self, body: bytes) -> bool:
        """Same decision when the first lines hold an error (reported later, at its line)."""
        tcol = self.layout.order[0]
        for line in body.split(b"\n")[:2000]:
            tokens = _split(line)
            if len(tokens) == 4 and b"." in tokens[tcol] and b"e" not in tokens[tcol].lower():
                return True
        return False

    def _blocks(self, start: Checkpoint | None) -> Iterator[Block]:
        if start is None:
            start = Checkpoint(self.layout.data_offset, (self.layout.data_line,), 0)
        pos = start.position
        line_no = start.state[0] if start.state else 1
        before = start.events_before
        with self.path.open("rb") as fh:
            while pos < self._size:
                fh.seek(pos)
                want = self.block_bytes
                buf = fh.read(want)
                if not buf:
                    break
                eof = pos + len(buf) >= self._size
                cut = buf.rfind(b"\n")
                while cut < 0 and not eof:
                    if len(buf) > MAX_LINE_BYTES:
                        raise RecordingError(
                            self.path,
                            f"line {line_no}: longer than {MAX_LINE_BYTES} bytes; expected "
                            "one event per line",
                            pos,
                        )
                    more = fh.read(want)
                    buf += more
                    eof = pos + len(buf) >= self._size or not more
                    cut = buf.rfind(b"\n")
                body = buf[: cut + 1]
                tail = buf[cut + 1 :] if eof else b""
                ev, nlines = self._parse(body, pos, line_no)
                if tail.strip():
                    ev = self._with_tail(ev, tail, pos + len(body), line_no + nlines)
                if len(ev) or body:
                    yield Block(Checkpoint(pos, (line_no,), before), ev)
                before += len(ev)
                line_no += nlines
                pos += len(body) + len(tail)
                if not body and not tail:
                    break

    def _parse(self, body: bytes, pos: int, line_no: int) -> tuple[np.ndarray, int]:
        parts = []
        lines = 0
        at = 0
        while at < len(body):
            end = body.rfind(b"\n", at, at + PIECE_BYTES) + 1 or body.find(b"\n", at) + 1
            piece = body[at:end]
            try:
                ev, n, _ = parse_block(piece, self.layout.order, self._seconds)
            except _BadLine as e:
                start = _line_start(piece, e.line)
                text = piece[start : start + 60].split(b"\n")[0].decode("latin-1", "replace")
                raise RecordingError(
                    self.path,
                    f"line {line_no + lines + e.line}: {e.why}, found {text!r}",
                    pos + at + start,
                ) from None
            parts.append(ev)
            lines += n
            at = end
        if not parts:
            return np.zeros(0, EVENT_DTYPE), 0
        return concat_events(parts), lines

    def _with_tail(self, ev: np.ndarray, tail: bytes, pos: int, line_no: int) -> np.ndarray:
        """A last line without '\\n': an event if it parses, else a cut-off write."""
        try:
            last, _, _ = parse_block(tail + b"\n", self.layout.order, self._seconds)
        except _BadLine:
            self.diagnostics.add("truncated trailing bytes", 1, pos)
            return ev
        return concat_events([ev, last]) if len(ev) else last


# --- writer -------------------------------------------------------------------------------


def _ndigits(v: np.ndarray) -> np.ndarray:
    """Decimal digits of non-negative int64 values (0 has one)."""
    return np.searchsorted(_POW10[1:], v, side="right") + 1


def format_rows(
    fields: list[tuple[np.ndarray, np.ndarray | None, int | None]], seps: bytes
) -> bytes:
    """Text of rows of integers without a Python loop per row.

    `fields` are (non-negative int64 values, mask of rows to prefix with '-' or None,
    fixed zero-padded width or None); `seps[i]` is the byte after field i (the last is
    the line end).
    """
    m = len(fields[0][0])
    if m == 0:
        return b""
    prepared = []
    for vals, neg, fixed in fields:
        nd = np.full(m, fixed, np.int64) if fixed else _ndigits(vals)
        width = nd + 1 if neg is None else nd + 1 + neg
        prepared.append((vals, neg, nd, width))
    row_len = np.sum([w for *_, w in prepared], axis=0)
    row_end = np.cumsum(row_len)
    out = np.empty(int(row_end[-1]), np.uint8)
    field_end = row_end - row_len  # end of the previous field in each row
    for (vals, neg, nd, width), sep in zip(prepared, seps, strict=True):
        field_end = field_end + width
        last = field_end - 2  # position of the last digit
        out[field_end - 1] = sep
        low, high = int(nd.min()), int(nd.max())
        rest = vals
        for j in range(high):
            q = rest // 10  # one division per digit: `%` would be a second one
            digit = (rest - q * 10).astype(np.uint8)
            digit += 48
            rest = q
            if j < low:
                out[last - j] = digit
            else:
                sel = nd > j
                out[(last - j)[sel]] = digit[sel]
        if neg is not None and neg.any():
            out[(last - nd)[neg]] = ord("-")
    return out.tobytes()


class TextWriter(EventWriter):
    """`t x y p` lines, t in µs integers (option `seconds=True`: `%.6f` seconds).

    A `.csv` path gets faery's CSV dialect (`t,x@W,y@H,on` header, commas), which keeps
    the geometry and reads back in faery and evtui; `.txt` gets RPG's whitespace lines,
    with a leading `width height` line only when `geometry_line=True` (rpg_e2vid).
    """

    format = "text"
    extensions = (".txt", ".csv")

    def __init__(self, path: str | Path, width: int, height: int, **options: Any) -> None:
        super().__init__(path, width, height, **options)
        self._seconds = bool(options.get("seconds", False))
        csv = options.get("csv")
        self._csv = self.path.suffix.lower() == ".csv" if csv is None else bool(csv)
        self._f = self.path.open("wb")
        sep = b"," if self._csv else b" "
        self._seps = sep * 3 + b"\n"
        if self._csv:
            self._f.write(f"t,x@{self.width},y@{self.height},on\n".encode())
        elif options.get("geometry_line", False):
            self._f.write(f"{self.width} {self.height}\n".encode())

    def write(self, events: np.ndarray, triggers: np.ndarray | None = None) -> None:
        if len(events) == 0:
            return
        t = events["t"].astype(np.int64)
        neg = t < 0
        at = np.abs(t)
        xyp = [
            (events["x"].astype(np.int64), None, None),
            (events["y"].astype(np.int64), None, None),
            ((events["p"] > 0).astype(np.int64), None, None),
        ]
        if self._seconds:  # exact decimal: integer seconds, '.', six digits
            fields = [(at // 1_000_000, neg, None), (at % 1_000_000, None, 6), *xyp]
            self._f.write(format_rows(fields, b"." + self._seps))
        else:
            self._f.write(format_rows([(at, neg, None), *xyp], self._seps))

    def _finish(self) -> None:
        self._f.close()
