"""Prophesee EVT 2.0: one 32-bit word per CD event, with TIME_HIGH words for the clock.

Bits 31..28 give the type: CD_OFF/CD_ON (bits 27..22 the 6 low timestamp bits, 21..11
x, 10..0 y), TIME_HIGH (bits 27..0 = timestamp bits 33..6), EXT_TRIGGER (27..22 low
time bits, 12..8 channel, 0 edge). Other types (OTHERS, CONTINUED, IMU) are skipped.

The 34-bit clock wraps every 2^34 µs (≈ 4.8 h). A TIME_HIGH more than half the 28-bit
range below the previous one counts as a wrap: OpenEB's HAL only accepts a drop of
nearly the full range, evlib about half; the two agree on every stream whose TIME_HIGH
words all arrive, and the half-range rule still sees a wrap when some were lost.
Words before the first TIME_HIGH are skipped (no time base yet), as OpenEB does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from evtui.events.io.base import BACKWARD_TOLERANCE_US
from evtui.events.io.raw import (
    EVT2,
    EVT21,
    Decoded,
    RawReader,
    RawWriter,
    sniff_encoding,
    time_high_values,
)
from evtui.events.types import EVENT_DTYPE, TRIGGER_DTYPE

_CD_LIMIT = np.uint32(0x2000_0000)  # words below this are CD_OFF / CD_ON
_TIME_HIGH, _EXT_TRIGGER = 0x8, 0xA
_KNOWN = np.zeros(16, bool)
_KNOWN[[0x0, 0x1, 0x8, 0xA, 0xD, 0xE, 0xF]] = True  # handled, or defined and ignored
_HIGH_BITS = 28
_HIGH_MASK = (1 << _HIGH_BITS) - 1
_WRAP_DROP = 1 << (_HIGH_BITS - 1)

Evt2State = tuple[int, int, int]
"""(time base seen, last TIME_HIGH value, wrap count)."""


def decode_evt2(w: np.ndarray, state: Evt2State, out: np.ndarray | None = None) -> Decoded:
    """EVT 2.0 words -> events, triggers, the state after them and problem counts.

    Non-CD words are ~1 % of a stream, so the time base is built on that small subset
    and spread over the CD words by how many fall between two TIME_HIGH words. Events
    go into `out[:n]` when it is given and long enough, else into a new array.
    """
    seen, th0, loops0 = state
    problems: dict[str, int] = {}
    if not seen:
        hits = np.flatnonzero((w >> 28) == _TIME_HIGH)
        skipped = int(hits[0]) if len(hits) else len(w)
        if skipped:
            problems["EVT2 words before the first TIME_HIGH skipped"] = skipped
        if not len(hits):
            return Decoded(np.zeros(0, EVENT_DTYPE), np.zeros(0, TRIGGER_DTYPE), state, problems)
        seen, th0, loops0 = 1, int(w[skipped]) & _HIGH_MASK, 0
        w = w[skipped + 1 :]

    is_cd = w < _CD_LIMIT
    other = np.flatnonzero(~is_cd)
    if len(other):
        wc = w[is_cd]
        otyp = np.take(w, other) >> 28
        r = np.flatnonzero(otyp == _TIME_HIGH)
        th_at = np.take(other, r)
    else:
        wc = w
        otyp = r = th_at = other
    m = len(wc)
    base0 = ((loops0 << _HIGH_BITS) | th0) << 6

    # Time base per TIME_HIGH word, wraps counted on the sequence of high values.
    thv = (np.take(w, th_at) & _HIGH_MASK).astype(np.int64)
    th1, loops1 = th0, loops0
    steady = True
    if len(thv):
        prev = np.empty(len(thv), np.int64)
        prev[0] = th0
        prev[1:] = thv[:-1]
        loops = loops0 + np.cumsum(prev - thv >= _WRAP_DROP)
        th1, loops1 = int(thv[-1]), int(loops[-1])
        bases = np.empty(len(thv) + 1, np.int64)
        bases[0] = base0
        bases[1:] = ((loops << _HIGH_BITS) | thv) << 6
        # Within one TIME_HIGH period t moves by < 64 µs: only the bases can step back.
        steady = bool(np.all(np.maximum.accumulate(bases) - bases <= BACKWARD_TOLERANCE_US - 64))
        # CD words before the k-th TIME_HIGH: its position minus the non-CD words before it.
        lens = np.empty(len(thv) + 1, np.intp)
        cd_before = th_at - r
        lens[0] = cd_before[0]
        lens[1:-1] = np.diff(cd_before)
        lens[-1] = m - cd_before[-1]
    out = out[:m] if out is not None and len(out) >= m else np.empty(m, EVENT_DTYPE)
    u32 = out.view(np.uint32).reshape(-1, 4)
    # t as two uint32 halves: the low one carries the 6 timestamp bits of each word.
    low = wc >> 22
    low &= 63
    if len(thv):
        low |= np.repeat(bases.astype(np.uint32), lens)
        high = bases >> 32
        if high.min() == high.max():
            u32[:, 1] = high[0]
        else:
            u32[:, 1] = np.repeat(high.astype(np.uint32), lens)
    else:
        low |= np.uint32(base0 & 0xFFFF_FFFF)
        u32[:, 1] = base0 >> 32
    u32[:, 0] = low
    xy = wc >> 11
    xy &= 0x7FF
    yy = np.left_shift(wc, 16, out=low)
    yy &= 0x7FF_0000
    extent = (int(xy.max()), int(yy.max()) >> 16) if m else None
    xy |= yy
    u32[:, 2] = xy
    np.right_shift(wc, 28, out=u32[:, 3])  # polarity byte, zero padding

    triggers = np.zeros(0, TRIGGER_DTYPE)
    if len(other):
        tr = np.flatnonzero(otyp == _EXT_TRIGGER)
        if len(tr):
            tw = np.take(w, np.take(other, tr)).astype(np.int64)
            k = np.searchsorted(r, tr)  # TIME_HIGH words before each trigger
            tb = bases[k] if len(thv) else np.full(len(tr), base0)
            triggers = np.zeros(len(tr), TRIGGER_DTYPE)
            triggers["t"] = tb | ((tw >> 22) & 63)
            triggers["channel"] = (tw >> 8) & 0x1F
            triggers["value"] = tw & 1
        unknown = len(other) - int(np.count_nonzero(np.take(_KNOWN, otyp)))
        if unknown:
            problems["reserved EVT2 words skipped"] = unknown
    return Decoded(out, triggers, (seen, th1, loops1), problems, steady, extent)


class Evt2Reader(RawReader):
    """Prophesee RAW files in EVT 2.0 (Gen3 default). Claims EVT 2.1 files to refuse them."""

    format = "evt2"
    description = "Prophesee RAW, EVT 2.0 (32-bit words)"
    extensions = (".raw",)
    encoding = EVT2
    word: ClassVar[np.dtype] = np.dtype("<u4")
    decode_bytes: ClassVar[int] = 1 << 18  # fewer numpy calls per event than EVT3's

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        # EVT 2.1 is claimed here so that opening one says "not supported yet" rather
        # than "unknown format".
        return sniff_encoding(head) in (EVT2, EVT21)

    def _initial_state(self) -> Evt2State:
        return (0, 0, 0)

    def _decode_words(
        self, words: np.ndarray, state: tuple[int, ...], out: np.ndarray | None
    ) -> Decoded:
        return decode_evt2(words, state, out)  # type: ignore[arg-type]


class Evt2Writer(RawWriter):
    """EVT 2.0: a TIME_HIGH whenever the high part changes, then one word per event.

    A wrap of the 34-bit clock is written as TIME_HIGH max -> 0 (once per wrap), which
    OpenEB's strict wrap rule and every looser one recognise.
    """

    format = "evt2"
    encoding = EVT2
    word: ClassVar[np.dtype] = np.dtype("<u4")
    _back_limit = 1 << 32  # ~1.2 h: far below half the 34-bit clock
    _loop_bits = 34

    def __init__(self, path: str | Path, width: int, height: int, **options: Any) -> None:
        super().__init__(path, width, height, **options)
        self._high: int | None = None  # TIME_HIGH (with wraps) in force

    def _encode(
        self, t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, trig: np.ndarray
    ) -> np.ndarray:
        n = len(t)
        if n == 0:
            return np.zeros(0, np.uint32)
        low = (t & 63) << 22
        words = np.where(
            trig,
            (_EXT_TRIGGER << 28) | low | ((x & 0x1F) << 8) | (p & 1),
            (p << 28) | low | (x << 11) | y,
        )
        hi = t >> 6
        prev = np.empty(n, np.int64)
        prev[0] = -1 if self._high is None else self._high
        prev[1:] = hi[:-1]
        move = np.flatnonzero(hi != prev)
        self._high = int(hi[-1])
        owner, values = time_high_values(np.take(hi, move), np.take(prev, move), _HIGH_BITS, 0)
        th = (_TIME_HIGH << 28) | values
        return np.insert(words, np.take(move, owner), th)
