"""Cutting a recording into windows: fixed duration or fixed event count, with stride.

Duration windows are half-open [t0, t1) in µs, starting at the recording's first event
(or `start_us`), like tonic's SliceByTime; the last one may be partial. Count windows take
events [k·stride, k·stride + count) in file order. A window's events are sorted by time
(stable), which is what "last event wins" renderers need.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from evtui.events.io.base import BACKWARD_TOLERANCE_US
from evtui.events.types import EVENT_DTYPE, concat_events, copy_events

_UNITS_US = {"us": 1, "µs": 1, "ms": 1_000, "s": 1_000_000, "": 1}
_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(us|µs|ms|s|)\s*$")


def parse_duration_us(text: str | int | float) -> int:
    """'33ms', '1.5s', '500us', '2000' (µs) → µs. Raises ValueError with the expected form."""
    if isinstance(text, int | float):
        value = round(text)
    else:
        m = _DURATION.match(str(text))
        if not m:
            raise ValueError(f"expected a duration like 33ms, 1.5s, 500us or 2000, got '{text}'")
        value = round(float(m.group(1)) * _UNITS_US[m.group(2)])
    if value <= 0:
        raise ValueError(f"a duration must be positive, got '{text}'")
    return value


@dataclass(frozen=True)
class WindowSpec:
    """How to cut windows. Exactly one of `duration_us` and `count` is set."""

    duration_us: int | None = None
    count: int | None = None
    stride: int | None = None  # µs for duration windows, events for count windows
    start_us: int | None = None
    end_us: int | None = None

    def __post_init__(self) -> None:
        if (self.duration_us is None) == (self.count is None):
            raise ValueError("a window is either a duration or an event count, not both")
        size = self.duration_us if self.duration_us is not None else self.count
        if size is None or size <= 0:
            raise ValueError("window size must be positive")
        if self.stride is not None and self.stride <= 0:
            raise ValueError("window stride must be positive")
        if self.start_us is not None and self.end_us is not None and self.end_us <= self.start_us:
            raise ValueError("window end must be after its start")

    @classmethod
    def parse(
        cls,
        window: str,
        *,
        overlap: str | float | None = None,
        stride: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> WindowSpec:
        """From CLI text: window '33ms' or '20000ev'; overlap '50%' or a size; stride a size."""
        w = str(window).strip()
        by_count = w.endswith("ev")
        size = int(w[:-2]) if by_count else parse_duration_us(w)
        step: int | None = None
        if stride is not None:
            step = int(str(stride).removesuffix("ev")) if by_count else parse_duration_us(stride)
        elif overlap is not None:
            o = str(overlap).strip()
            if o.endswith("%"):
                frac = float(o[:-1]) / 100
                if not 0 <= frac < 1:
                    raise ValueError(f"overlap must be in [0%, 100%), got '{overlap}'")
                step = max(1, round(size * (1 - frac)))
            else:
                ov = int(o.removesuffix("ev")) if by_count else parse_duration_us(o)
                if ov >= size:
                    raise ValueError(f"overlap '{overlap}' must be smaller than the window")
                step = size - ov
        s = parse_duration_us(start) if start not in (None, "", "0") else (0 if start else None)
        e = parse_duration_us(end) if end else None
        if by_count:
            return cls(count=size, stride=step, start_us=s, end_us=e)
        return cls(duration_us=size, stride=step, start_us=s, end_us=e)

    @property
    def step(self) -> int:
        size = self.duration_us if self.duration_us is not None else self.count
        assert size is not None
        return self.stride or size

    def describe(self) -> str:
        if self.duration_us is not None:
            text = f"{self.duration_us / 1000:g} ms"
            unit = "ms"
            step = self.step / 1000
        else:
            text = f"{self.count} events"
            unit = "events"
            step = self.step
        if self.step != (self.duration_us or self.count):
            text += f", stride {step:g} {unit}"
        return text


@dataclass
class Window:
    index: int
    t0_us: int
    t1_us: int
    events: np.ndarray

    def __len__(self) -> int:
        return len(self.events)


def duration_window_count(spec: WindowSpec, t_start: int, t_end: int) -> int:
    """Windows whose start lies before t_end (the last may be partial)."""
    if t_end <= t_start:
        return 0
    return math.ceil((t_end - t_start) / spec.step)


def in_bounds(ev: np.ndarray, spec: WindowSpec) -> np.ndarray:
    """Events within [start_us, end_us): count windows count only these."""
    if spec.start_us is None and spec.end_us is None:
        return ev
    t = ev["t"]
    keep = np.ones(len(ev), bool)
    if spec.start_us is not None:
        keep &= t >= spec.start_us
    if spec.end_us is not None:
        keep &= t < spec.end_us
    return ev if keep.all() else ev[keep]


def sort_by_time(ev: np.ndarray) -> np.ndarray:
    t = ev["t"]
    if len(t) < 2 or bool(np.all(t[1:] >= t[:-1])):
        return ev
    return ev[np.argsort(t, kind="stable")]


def slice_duration_windows(
    chunks: Iterator[np.ndarray], spec: WindowSpec, first_t: int | None = None, copy: bool = True
) -> Iterator[Window]:
    """Streams duration windows from time-ordered-ish chunks with bounded buffering.

    A window is emitted once the stream has passed its end by the inversion tolerance,
    so late events within that tolerance still land in the right window. Each window
    owns a copy of its events unless `copy` is False: then they are a read-only view,
    for consumers that never modify them (saves ~1 MB of copying per 60k-event window).
    """
    assert spec.duration_us is not None
    dur, step = spec.duration_us, spec.step
    buf = np.zeros(0, EVENT_DTYPE)
    start: int | None = spec.start_us
    if start is None and first_t is not None:
        start = first_t
    end = spec.end_us
    k = 0
    exhausted = False
    it = iter(chunks)
    while True:
        if start is not None:
            t0 = start + k * step
            if end is not None and t0 >= end:
                return
            t1 = t0 + dur if end is None else min(t0 + dur, end)
            t = buf["t"]
            ready = exhausted or (len(t) and int(t[-1]) >= t1 + BACKWARD_TOLERANCE_US)
            if ready:
                if exhausted and (not len(t) or int(t[-1]) < t0):
                    return
                lo, hi = np.searchsorted(t, [t0, t1])
                yield Window(k, t0, t1, copy_events(buf[lo:hi]) if copy else _read_only(buf[lo:hi]))
                k += 1
                keep = int(np.searchsorted(t, start + k * step - BACKWARD_TOLERANCE_US))
                if keep:
                    buf = buf[keep:]
                continue
        if exhausted:
            return
        nxt = next(it, None)
        if nxt is None:
            exhausted = True
            continue
        if not len(nxt):
            continue
        if start is None:
            start = int(nxt["t"].min())
        buf = sort_by_time(concat_events([buf, nxt]) if len(buf) else nxt)


def _read_only(ev: np.ndarray) -> np.ndarray:
    view = ev.view()
    view.flags.writeable = False
    return view


def slice_count_windows(chunks: Iterator[np.ndarray], spec: WindowSpec) -> Iterator[Window]:
    """Streams count windows: events [k·stride, k·stride + count) in file order."""
    assert spec.count is not None
    n, step = spec.count, spec.step
    buf = np.zeros(0, EVENT_DTYPE)
    buf_first = 0  # absolute index of buf[0]
    pending = 0  # events still to skip from the stream before buf_first
    k = 0
    exhausted = False
    it = iter(chunks)
    while True:
        a = k * step
        if a - buf_first + n <= len(buf) or (exhausted and a - buf_first < len(buf)):
            ev = buf[a - buf_first : a - buf_first + n]
            ev = sort_by_time(ev.copy())
            t0 = int(ev["t"][0]) if len(ev) else 0
            t1 = int(ev["t"][-1]) + 1 if len(ev) else 0
            yield Window(k, t0, t1, ev)
            k += 1
            drop = k * step - buf_first
            if drop > 0:
                pending = max(0, drop - len(buf))  # a stride past the buffer skips ahead
                buf = buf[drop:]
                buf_first += drop
            continue
        if exhausted:
            return
        nxt = next(it, None)
        if nxt is None:
            exhausted = True
            continue
        nxt = in_bounds(nxt, spec)
        if pending:
            cut = min(pending, len(nxt))
            nxt = nxt[cut:]
            pending -= cut
        buf = concat_events([buf, nxt]) if len(buf) else nxt
