"""What the engine tells its clients: an immutable snapshot ~10 Hz and must-see events.

Counters are plain attributes bumped on the hot path (no locks: one event-loop thread
writes them); the snapshot is built from them on a timer and published by swapping one
reference, which readers on other threads load atomically. Events that must not be
missed (a key disabled, a breaker opened, the job done) go in a thread-safe queue that
the UI drains in the same tick it reads the snapshot; caption-ready events are many and
recoverable from the job files, so only they are dropped (and counted) when a slow
reader lets the queue fill.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from evtui.engine.pacing import PaceView

RING_S = 60  # seconds of per-second history kept for rates and sparklines
LATENCY_SAMPLES = 512
# Latency histogram upper bounds (s), cumulative counts for Prometheus; last is +Inf.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, math.inf)


class SecondRing:
    """Counts per whole second over the last RING_S seconds."""

    __slots__ = ("_counts", "_sec")

    def __init__(self) -> None:
        self._counts = [0] * RING_S
        self._sec = 0

    def add(self, now: float, n: int = 1) -> None:
        sec = int(now)
        if sec != self._sec:
            self._advance(sec)
        self._counts[sec % RING_S] += n

    def _advance(self, sec: int) -> None:
        gap = sec - self._sec
        if gap >= RING_S or gap < 0:
            self._counts = [0] * RING_S
        else:
            for s in range(self._sec + 1, sec + 1):
                self._counts[s % RING_S] = 0
        self._sec = sec

    def series(self, now: float) -> tuple[int, ...]:
        """Oldest first, the current (partial) second last."""
        sec = int(now)
        if sec != self._sec:
            self._advance(sec)
        return tuple(self._counts[(sec + 1 + i) % RING_S] for i in range(RING_S))

    def rate(self, now: float, span_s: int = 5) -> float:
        """Mean per second over the last `span_s` complete seconds."""
        s = self.series(now)
        return sum(s[-1 - span_s : -1]) / span_s


@dataclass(slots=True)
class Counters:
    """Outcomes of one lane or target; `by_kind` holds the error classes."""

    requests: int = 0
    ok: int = 0
    by_kind: dict[str, int] = field(default_factory=dict)
    input_tokens: int = 0
    output_tokens: int = 0
    spend_usd: float = 0.0
    in_flight: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))
    ring: SecondRing = field(default_factory=SecondRing)
    hist: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_sum: float = 0.0

    def count(self, kind: str) -> int:
        return self.by_kind.get(kind, 0)

    def observe(self, latency_s: float) -> None:
        """A latency into the recent samples and the (non-cumulative) histogram."""
        self.latencies.append(latency_s)
        self.latency_sum += latency_s
        self.hist[bisect_left(LATENCY_BUCKETS, latency_s)] += 1


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    i = min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))
    return s[i]


@dataclass(frozen=True, slots=True)
class Outcomes:
    """What a lane and a target both report: counts, rates, latency, tokens, spend."""

    requests: int
    ok: int
    rate_limited: int
    overloaded: int
    server_errors: int
    timeouts: int
    connection_errors: int
    in_flight: int
    rps: float
    rps_series: tuple[int, ...]  # per second, the last RING_S seconds (sparklines)
    latency_p50_s: float | None
    latency_p95_s: float | None
    input_tokens: int
    output_tokens: int
    spend_usd: float


def outcomes(c: Counters, now: float) -> dict[str, Any]:
    """The Outcomes fields of one set of counters, as keywords for a view."""
    lat = list(c.latencies)
    return {
        "requests": c.requests,
        "ok": c.ok,
        "rate_limited": c.count("rate_limited"),
        "overloaded": c.count("overloaded"),
        "server_errors": c.count("server_error"),
        "timeouts": c.count("timeout"),
        "connection_errors": c.count("connection_failed"),
        "in_flight": c.in_flight,
        "rps": c.ring.rate(now),
        "rps_series": c.ring.series(now),
        "latency_p50_s": percentile(lat, 0.5),
        "latency_p95_s": percentile(lat, 0.95),
        "input_tokens": c.input_tokens,
        "output_tokens": c.output_tokens,
        "spend_usd": c.spend_usd,
    }


@dataclass(frozen=True, slots=True)
class LaneView(Outcomes):
    target: str
    key: str  # masked key id
    cooldown_left_s: float
    disabled: str | None  # why, when the key is out of use
    pace: PaceView


@dataclass(frozen=True, slots=True)
class TargetView(Outcomes):
    id: str
    weight: float
    share: float  # configured share of first picks
    effective_share: float  # of first picks actually taken
    concurrency_cap: int
    breaker: str
    breaker_reopens_in_s: float
    fallbacks_out: int
    cache_hits: int
    lanes: tuple[LaneView, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float
    state: str  # starting | running | paused | draining | budget | done | failed
    frames_total: int | None
    slots_total: int | None
    done: int
    failed: int
    skipped: int
    in_flight: int
    waiting: int
    rate: float  # results per second, recent
    eta_s: float | None
    cache_hits: int
    cache_lookups: int
    spend_usd: float
    projected_usd: float | None
    budget_usd: float | None
    targets: tuple[TargetView, ...]
    message: str = ""

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.skipped

    def target(self, target_id: str) -> TargetView:
        for t in self.targets:
            if t.id == target_id:
                return t
        raise KeyError(target_id)


EMPTY_SNAPSHOT = Snapshot(
    at=0.0,
    state="starting",
    frames_total=None,
    slots_total=None,
    done=0,
    failed=0,
    skipped=0,
    in_flight=0,
    waiting=0,
    rate=0.0,
    eta_s=None,
    cache_hits=0,
    cache_lookups=0,
    spend_usd=0.0,
    projected_usd=None,
    budget_usd=None,
    targets=(),
)


@dataclass(frozen=True, slots=True)
class Event:
    """Something a client must hear about: kind and a one-line message, plus details."""

    kind: str  # caption | key_disabled | breaker_open | breaker_closed | paused | budget | done …
    message: str
    at: float
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def important(self) -> bool:
        return self.kind != "caption"


class EventQueue:
    """Thread-safe, bounded for caption events only; important events are never dropped."""

    def __init__(self, max_captions: int = 20_000) -> None:
        self._q: deque[Event] = deque()
        self._captions = 0
        self._max = max_captions
        self._lock = threading.Lock()
        self.dropped = 0

    def put(self, event: Event) -> None:
        with self._lock:
            if not event.important:
                if self._captions >= self._max:
                    self.dropped += 1
                    return
                self._captions += 1
            self._q.append(event)

    def drain(self, limit: int | None = None) -> list[Event]:
        out: list[Event] = []
        with self._lock:
            q = self._q
            while q and (limit is None or len(out) < limit):
                e = q.popleft()
                if not e.important:
                    self._captions -= 1
                out.append(e)
        return out

    def __len__(self) -> int:
        return len(self._q)
