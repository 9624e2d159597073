"""Prophesee EVT 3.0: stateful 16-bit words with vectorised rows, read and written.

Bits 15..12 give the word type. ADDR_Y sets the row; ADDR_X emits one event; VECT_BASE_X
sets a base x and polarity that VECT_12 / VECT_8 masks emit from (each then moves the base
by 12 / 8); TIME_HIGH and TIME_LOW carry bits 23..12 and 11..0 of a 24-bit µs clock.

Time rules, chosen as OpenEB's HAL decoder has them:

* a TIME_HIGH at least 2048 below the previous one is a wrap of the 24-bit clock
  (2^24 µs ≈ 16.8 s); evlib and OpenEB's standalone sample want a drop of ≥ 4085;
* a TIME_HIGH that changes the high part resets the low part to 0 until the next
  TIME_LOW (the standalone sample resets it on every TIME_HIGH, evlib never does);
* TIME_LOW only replaces the low 12 bits: small backward TIME_LOW steps are real sensor
  output, not wraps (treating them as wraps is what inflates expelliarmus' time ~6x).

On the real Gen4.1 sample all three reset rules, and both wrap thresholds, give the same
219,596 events as evlib, bit for bit: sensors always send TIME_LOW right after TIME_HIGH
and never skip a TIME_HIGH. The writer does the same, so every reader agrees on its files.
Words before the first TIME_HIGH are skipped (no time base yet), as OpenEB does.

Timestamps are the absolute sensor clock (OpenEB's default time shift is not applied).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from evtui.events.io.base import BACKWARD_TOLERANCE_US
from evtui.events.io.raw import (
    EVT3,
    Decoded,
    RawReader,
    RawWriter,
    sniff_encoding,
    time_high_values,
)
from evtui.events.types import EVENT_DTYPE, TRIGGER_DTYPE

_ADDR_Y, _ADDR_X, _VECT_BASE_X, _VECT_12, _VECT_8 = 0x0, 0x2, 0x3, 0x4, 0x5
_TIME_LOW, _TIME_HIGH, _EXT_TRIGGER = 0x6, 0x8, 0xA
_RESERVED = (0x1, 0x9, 0xB, 0xC)

_WRAP_DROP = 2048
"""OpenEB HAL: a new TIME_HIGH this far below the previous one is a 2^24 µs wrap."""
_X_LIMIT = 2048

_ROW = np.dtype((np.void, 16))
_POPCOUNT = np.array([bin(m).count("1") for m in range(4096)], np.int64)
# Set-bit positions of every 12-bit mask, concatenated; _BITS_AT[m] is where m's start.
_BITS_AT = np.zeros(4096, np.int64)
_bits: list[int] = []
for _m in range(4096):
    _BITS_AT[_m] = len(_bits)
    _bits.extend(k for k in range(12) if _m >> k & 1)
_BITS = np.array(_bits, np.uint64)
del _bits, _m

Evt3State = tuple[int, int, int, int, int, int, int]
"""(time base seen, time high, wrap count, time low, row, vector base x, vector polarity)."""


def _forward_fill(values: np.ndarray, starts: np.ndarray, n: int) -> np.ndarray:
    """n slots: values[0] before starts[0], values[i + 1] from starts[i] on.

    np.repeat over the runs: faster than a cumsum + gather when runs are a few long.
    """
    lens = np.empty(len(values), np.intp)
    if len(starts):
        lens[0] = starts[0]
        np.subtract(starts[1:], starts[:-1], out=lens[1:-1])
        lens[-1] = n - starts[-1]
    else:
        lens[0] = n
    return np.repeat(values, lens)


def decode_evt3(w: np.ndarray, state: Evt3State, out: np.ndarray | None = None) -> Decoded:
    """EVT 3.0 words -> events, triggers, the state after them and problem counts.

    Event words (ADDR_X, VECT_12, VECT_8) take the row and time of the state words
    before them. Rows and times are computed on the state-word subset and spread over
    the event words with np.repeat (no per-word loop, no cumsum over every word); each
    event word then becomes one row (vectors: one per set bit), in stream order. Bit 11
    of ADDR_Y (master/slave camera) is not part of y. Events go into `out[:n]` when it
    is given and long enough, else into a new array.
    """
    seen, th0, loops0, low0, y0, vbx0, vbp0 = state
    problems: dict[str, int] = {}
    if not seen:
        hits = np.flatnonzero((w >> 12) == _TIME_HIGH)
        skipped = int(hits[0]) if len(hits) else len(w)
        if skipped:
            problems["EVT3 words before the first TIME_HIGH skipped"] = skipped
        if not len(hits):
            return Decoded(np.zeros(0, EVENT_DTYPE), np.zeros(0, TRIGGER_DTYPE), state, problems)
        th0, loops0, low0 = int(w[skipped]) & 0xFFF, 0, 0
        seen = 1
        w = w[skipped + 1 :]

    typ = w >> 12
    is_ev = typ == _ADDR_X
    is_ev |= (typ - np.uint16(_VECT_12)) <= 1
    ev = np.flatnonzero(is_ev)
    st = np.flatnonzero(np.logical_not(is_ev, out=is_ev))
    ne, ns = len(ev), len(st)
    sw = np.take(w, st)
    styp = sw >> 12
    kinds = np.bincount(styp, minlength=16)
    ev_before = st - np.arange(ns)  # event words before each state word

    # Row: every ADDR_Y starts a run of event words with its y.
    yj = np.flatnonzero(styp == _ADDR_Y) if kinds[_ADDR_Y] else np.zeros(0, np.intp)
    yv = np.empty(len(yj) + 1, np.uint64)
    yv[0] = y0
    np.bitwise_and(np.take(sw, yj), 0x7FF, out=yv[1:], casting="unsafe")
    y_state = int(yv[-1])
    y_top = int(yv.max())
    yv <<= np.uint64(16)
    y_e = _forward_fill(yv, np.take(ev_before, yj), ne)

    # Time: computed on the TIME_HIGH/TIME_LOW words, then spread like the row.
    hi0 = (loops0 << 12) | th0
    if kinds[_TIME_LOW] or kinds[_TIME_HIGH]:
        tj = np.flatnonzero((styp == _TIME_LOW) | (styp == _TIME_HIGH))
    else:
        tj = np.zeros(0, np.intp)
    tw = np.take(sw, tj)
    tval = (tw & 0xFFF).astype(np.int64)
    tt = np.empty(len(tj) + 1, np.int64)
    tt[0] = (hi0 << 12) | low0
    th1, loops1 = th0, loops0
    if kinds[_TIME_HIGH]:
        is_th = tw >= (_TIME_HIGH << 12)
        thp = np.flatnonzero(is_th)
        thv = np.take(tval, thp)
        prev = np.empty(len(thv) + 1, np.int64)
        prev[0] = th0
        prev[1:] = thv
        loops = loops0 + np.cumsum(prev[:-1] >= thv + _WRAP_DROP)
        high = np.empty(len(thv) + 1, np.int64)
        high[0] = hi0 << 12
        high[1:] = ((loops << 12) | thv) << 12
        hi = _forward_fill(high, thp, len(tj))
        low = np.where(is_th, 0, tval)
        same = np.flatnonzero(prev[:-1] == thv)
        if len(same):
            # A TIME_HIGH repeating the current high keeps the low part it had.
            keeps = np.take(thp, same)
            setter = np.arange(len(tj))
            setter[keeps] = -1
            last = np.maximum.accumulate(setter)
            low = np.where(last >= 0, np.take(low, np.maximum(last, 0)), low0)
        np.bitwise_or(hi, low, out=tt[1:])
        th1, loops1 = int(thv[-1]), int(loops[-1])
    else:
        np.bitwise_or(hi0 << 12, tval, out=tt[1:])
    low1 = int(tt[-1]) & 0xFFF
    # Events take their times from `tt` in order: if no entry falls far below the
    # latest before it, no event does.
    steady = bool(np.all(np.maximum.accumulate(tt) - tt <= BACKWARD_TOLERANCE_US))
    t_e = _forward_fill(tt.view(np.uint64), np.take(ev_before, tj), ne)

    triggers = np.zeros(0, TRIGGER_DTYPE)
    if kinds[_EXT_TRIGGER]:
        rj = np.flatnonzero(styp == _EXT_TRIGGER)
        rw = np.take(sw, rj)
        triggers = np.zeros(len(rj), TRIGGER_DTYPE)
        triggers["t"] = np.take(tt, np.searchsorted(tj, rj))
        triggers["channel"] = (rw >> 8) & 0xF
        triggers["value"] = rw & 1
    reserved = int(sum(kinds[k] for k in _RESERVED))
    if reserved:
        problems["reserved EVT3 words skipped"] = reserved

    ew = np.take(w, ev)
    xyp = (ew & 0x7FF).astype(np.uint64)
    xyp |= y_e
    xyp |= (ew & 0x800).astype(np.uint64) << np.uint64(21)
    vk = np.flatnonzero(ew >= (_VECT_BASE_X << 12))
    vbj = np.flatnonzero(styp == _VECT_BASE_X) if kinds[_VECT_BASE_X] else np.zeros(0, np.intp)
    vbx1, vbp1 = vbx0, vbp0
    if len(vbj):
        last_vb = int(sw[vbj[-1]])
        vbx1, vbp1 = last_vb & 0x7FF, (last_vb >> 11) & 1
    # Bounds on x and y (rows named, singles' x, vector bases + 11) spare read_all the
    # per-event sensor check when they fit.
    x_top = int(np.where(ew < (_VECT_BASE_X << 12), ew & 0x7FF, 0).max()) if ne else 0
    if not len(vk):
        out = out[:ne] if out is not None and len(out) >= ne else np.empty(ne, EVENT_DTYPE)
        rows = out.view(np.uint64).reshape(-1, 2)
        rows[:, 0] = t_e
        rows[:, 1] = xyp
    else:
        out, vbx_end, vbp_end, dropped, xv_top = _with_vectors(
            ew, vk, sw, vbj, ev_before, t_e, y_e, xyp, vbx0, vbp0, out
        )
        x_top = max(x_top, xv_top)
        if vbx_end is not None:
            vbx1, vbp1 = vbx_end, vbp_end
        if dropped:
            problems["vector events past x=2047 dropped"] = dropped
    state_after = (seen, th1, loops1, low1, y_state, vbx1, vbp1)
    return Decoded(out, triggers, state_after, problems, steady, (x_top, y_top) if ne else None)


def _with_vectors(
    ew: np.ndarray,
    vk: np.ndarray,
    sw: np.ndarray,
    vbj: np.ndarray,
    ev_before: np.ndarray,
    t_e: np.ndarray,
    y_e: np.ndarray,
    xyp: np.ndarray,
    vbx0: int,
    vbp0: int,
    into: np.ndarray | None,
) -> tuple[np.ndarray, int | None, int, int, int]:
    """Rows for a chunk holding vector words, in stream order.

    Returns the events, the vector base/polarity after the last vector word (None when
    a VECT_BASE_X follows it), how many vector events fell past x = 2047 and a bound
    on the vector events' x.
    """
    ne, nv = len(ew), len(vk)
    vew = np.take(ew, vk)
    is12 = vew < (_VECT_8 << 12)
    mask = vew & np.where(is12, np.uint16(0xFFF), np.uint16(0xFF))
    inc = np.where(is12, 12, 8)
    moved = np.cumsum(inc) - inc  # base advance since the chunk start
    # The VECT_BASE_X each vector word follows (0: the one carried in the state).
    group = np.take(_forward_fill(np.arange(len(vbj) + 1), np.take(ev_before, vbj), ne), vk)
    first = np.empty(nv, bool)
    first[0] = True
    np.not_equal(group[1:], group[:-1], out=first[1:])
    first_of = np.maximum.accumulate(np.where(first, np.arange(nv), 0))
    bases = np.empty(len(vbj) + 1, np.int64)
    bases[0] = vbx0 | (vbp0 << 32)
    vb = np.take(sw, vbj).astype(np.int64)
    bases[1:] = (vb & 0x7FF) | ((vb & 0x800) << 21)
    bw = np.take(bases, group)
    base = (bw & 0xFFFF) + moved - np.take(moved, first_of)
    np.minimum(base, 2 * _X_LIMIT - 1, out=base)  # garbage streams: keep x inside 16 bits
    end = None
    pol_end = 0
    if group[-1] == len(vbj):
        end = int(min(base[-1] + inc[-1], 2 * _X_LIMIT - 1))
        pol_end = int(bw[-1] >> 32)
    xyv = np.take(y_e, vk) | base.astype(np.uint64) | ((bw >> 32) << 32).astype(np.uint64)
    if 2 * nv >= ne:
        out = _expand_all(vk, mask, t_e, xyp, xyv, into)
    else:
        out = _scatter_vectors(vk, mask, t_e, xyp, xyv, into)
    dropped = 0
    x_top = int(base.max()) + 11
    if x_top >= _X_LIMIT:
        bad = (out.view(np.uint64)[1::2] & np.uint64(0xFFFF)) >= _X_LIMIT
        dropped = int(bad.sum())
        if dropped:
            out = out[~bad]
        x_top = _X_LIMIT - 1
    return out, end, pol_end, dropped, x_top


def _expand_all(
    vk: np.ndarray,
    mask: np.ndarray,
    t_e: np.ndarray,
    xyp: np.ndarray,
    xyv: np.ndarray,
    into: np.ndarray | None,
) -> np.ndarray:
    """Mostly vectors: every event word as a mask (singles: bit 0), expanded in order."""
    ne = len(xyp)
    xyp[vk] = xyv
    m = np.ones(ne, np.intp)
    m[vk] = mask
    count = np.take(_POPCOUNT, m)
    nout = int(count.sum())
    out = into[:nout] if into is not None and len(into) >= nout else np.empty(nout, EVENT_DTYPE)
    rows = out.view(np.uint64).reshape(-1, 2)
    src = np.repeat(np.arange(ne), count)
    at = np.take(_BITS_AT, m)
    at -= np.cumsum(count) - count
    k = np.take(at, src)
    k += np.arange(nout)
    rows[:, 0] = np.take(t_e, src)
    np.add(np.take(xyp, src), np.take(_BITS, k), out=rows[:, 1])
    return out


def _scatter_vectors(
    vk: np.ndarray,
    mask: np.ndarray,
    t_e: np.ndarray,
    xyp: np.ndarray,
    xyv: np.ndarray,
    into: np.ndarray | None,
) -> np.ndarray:
    """Mostly singles: singles scattered to their rows, vectors expanded around them."""
    ne, nv = len(xyp), len(vk)
    count = np.take(_POPCOUNT, mask)
    shift = np.empty(nv + 1, np.int64)  # extra rows (count - 1) before each vector word
    shift[0] = 0
    np.cumsum(count - 1, out=shift[1:])
    nout = ne + int(shift[-1])
    lens = np.empty(nv + 1, np.intp)
    lens[0] = vk[0] + 1
    lens[1:-1] = np.diff(vk)
    lens[-1] = ne - vk[-1] - 1
    pos = np.repeat(shift, lens)
    pos += np.arange(ne)
    vpos = np.take(pos, vk)
    pos[vk] = nout  # vector words' own rows go to a spare last row
    rows = np.empty((ne, 2), np.uint64)
    rows[:, 0] = t_e
    rows[:, 1] = xyp
    if into is not None and len(into) > nout:
        out = into[: nout + 1]
    else:
        out = np.empty(nout + 1, EVENT_DTYPE)
    flat = out.view(_ROW)
    flat[pos] = rows.view(_ROW).ravel()
    nve = int(count.sum())
    if nve:
        src = np.repeat(np.arange(nv), count)
        done = np.cumsum(count) - count
        k = np.arange(nve)
        bit = np.take(_BITS, np.take(np.take(_BITS_AT, mask) - done, src) + k)
        at = np.take(vpos - done, src) + k
        vrows = np.empty((nve, 2), np.uint64)
        vrows[:, 0] = np.take(np.take(t_e, vk), src)
        np.add(np.take(xyv, src), bit, out=vrows[:, 1])
        flat[at] = vrows.view(_ROW).ravel()
    return out[:nout]


class Evt3Reader(RawReader):
    """Prophesee RAW files in EVT 3.0 (Gen4 / IMX636 default)."""

    format = "evt3"
    description = "Prophesee RAW, EVT 3.0 (16-bit vectorised words)"
    extensions = (".raw",)
    encoding = EVT3
    word: ClassVar[np.dtype] = np.dtype("<u2")

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return sniff_encoding(head) == EVT3

    def _initial_state(self) -> Evt3State:
        return (0, 0, 0, 0, 0, 0, 0)

    def _decode_words(
        self, words: np.ndarray, state: tuple[int, ...], out: np.ndarray | None
    ) -> Decoded:
        return decode_evt3(words, state, out)  # type: ignore[arg-type]


_VECTOR_MIN = 5
"""A VECT_BASE_X + VECT_12 + VECT_12 + VECT_8 group is 4 words: worth it from 5 events."""
_FILL_MAX = 4096
"""Gaps up to one clock loop get every TIME_HIGH in between, as a sensor sends them."""


class Evt3Writer(RawWriter):
    """EVT 3.0 as a sensor writes it: 32-pixel vectors for row runs, TIME_LOW after TIME_HIGH.

    Events that share time, row and polarity, come in increasing x and sit in one
    32-aligned group of ≥ 5 become VECT_BASE_X + VECT_12 + VECT_12 + VECT_8 (the
    triple OpenEB's HAL expects); the rest are ADDR_X singles. Every TIME_HIGH value
    of a gap is written (up to one 16.8 s loop; longer gaps go 4095 -> 0 once per
    loop), so strict readers see a continuous, wrapping clock.
    """

    format = "evt3"
    encoding = EVT3
    _hold_runs = True
    _back_limit = 2000 << 12  # TIME_HIGH may step back < 2048 without being a wrap
    _loop_bits = 24
    word: ClassVar[np.dtype] = np.dtype("<u2")

    def __init__(self, path: str | Path, width: int, height: int, **options: Any) -> None:
        super().__init__(path, width, height, **options)
        self._t: int | None = None  # time of the last item written
        self._y: int | None = None  # row of the last event written

    def _encode(
        self,
        t: np.ndarray,
        x: np.ndarray,
        y: np.ndarray,
        p: np.ndarray,
        trig: np.ndarray,
    ) -> np.ndarray:
        n = len(t)
        if n == 0:
            return np.zeros(0, np.uint16)
        x = x.astype(np.int64)
        y = y.astype(np.int64)
        p = p.astype(np.int64)
        # Runs that can share a vector: same kind/t/y/p, x increasing inside a 32-group.
        brk = np.ones(n, bool)
        if n > 1:
            brk[1:] = (
                trig[1:]
                | trig[:-1]
                | (t[1:] != t[:-1])
                | (y[1:] != y[:-1])
                | (p[1:] != p[:-1])
                | (x[1:] <= x[:-1])
                | ((x[1:] >> 5) != (x[:-1] >> 5))
            )
        gs = np.flatnonzero(brk)
        size = np.diff(gs, append=n)
        base = (np.take(x, gs) >> 5) << 5
        vec = (size >= _VECTOR_MIN) & (base + 32 <= self.width) & ~np.take(trig, gs)
        in_vec = np.repeat(vec, size)
        item_start = brk | ~in_vec
        items = np.flatnonzero(item_start)
        ni = len(items)
        it_t = np.take(t, items)
        it_trig = np.take(trig, items)
        it_vec = np.take(in_vec, items)
        # 6 fixed slots per item: TIME_LOW, ADDR_Y, then up to 4 payload words.
        slots = np.zeros((ni, 6), np.uint16)
        valid = np.zeros((ni, 6), bool)
        prev_t = np.empty(ni, np.int64)
        prev_t[0] = -1 if self._t is None else self._t
        prev_t[1:] = it_t[:-1]
        tchange = it_t != prev_t
        slots[:, 0] = (_TIME_LOW << 12) | (it_t & 0xFFF)
        valid[:, 0] = tchange
        # Rows: ADDR_Y when an event item's row differs from the last event's row.
        evi = np.flatnonzero(~it_trig)
        ey = np.take(np.take(y, items), evi)
        prev_y = np.empty(len(evi), np.int64)
        if len(evi):
            prev_y[0] = -1 if self._y is None else self._y
            prev_y[1:] = ey[:-1]
            self._y = int(ey[-1])
        slots[evi, 1] = (_ADDR_Y << 12) | ey
        valid[evi, 1] = ey != prev_y
        # Payload.
        ix = np.take(x, items)
        ip = np.take(p, items)
        single = ~it_trig & ~it_vec
        slots[:, 2] = np.where(
            it_trig,
            (_EXT_TRIGGER << 12) | ((ix & 0xF) << 8) | (ip & 1),
            np.where(single, _ADDR_X << 12, _VECT_BASE_X << 12) | (ip << 11) | ix,
        )
        valid[:, 2] = True
        vi = np.flatnonzero(it_vec)
        if len(vi):
            vstart = np.take(items, vi)
            vb = (np.take(x, vstart) >> 5) << 5
            slots[vi, 2] = (_VECT_BASE_X << 12) | (np.take(ip, vi) << 11) | vb
            gsize = np.take(size, np.searchsorted(gs, vstart))
            src = np.repeat(np.arange(len(vi)), gsize)
            k = np.arange(len(src)) - np.repeat(np.cumsum(gsize) - gsize, gsize)
            bits = np.left_shift(1, np.take(x, np.take(vstart, src) + k) - np.take(vb, src))
            mask = np.add.reduceat(bits, np.cumsum(gsize) - gsize)
            slots[vi, 3] = (_VECT_12 << 12) | (mask & 0xFFF)
            slots[vi, 4] = (_VECT_12 << 12) | ((mask >> 12) & 0xFFF)
            slots[vi, 5] = (_VECT_8 << 12) | ((mask >> 24) & 0xFF)
            valid[vi, 3:] = True
        words = slots[valid]
        # TIME_HIGH words go before the TIME_LOW of items that change the high part.
        th_at, th_val = self._time_highs(it_t, prev_t, tchange)
        if len(th_at):
            first_slot = np.cumsum(valid.sum(axis=1)) - valid.sum(axis=1)
            words = np.insert(words, np.take(first_slot, th_at), th_val)
        self._t = int(it_t[-1])
        return words

    def _time_highs(
        self, it_t: np.ndarray, prev_t: np.ndarray, tchange: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(item index per TIME_HIGH word, word) for the items whose high part moves."""
        hi = it_t >> 12
        prev_hi = prev_t >> 12  # -1 at the file start (prev_t is -1 there)
        move = np.flatnonzero(tchange & (hi != prev_hi))
        owner, values = time_high_values(np.take(hi, move), np.take(prev_hi, move), 12, _FILL_MAX)
        return np.take(move, owner), ((_TIME_HIGH << 12) | values).astype(np.uint16)
