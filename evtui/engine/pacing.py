"""Pacing before 429s: per-lane request and token buckets, and adaptive concurrency.

A lane (one key on one model) meters what it sends against two continuously refilling
buckets, like the providers do. A request's token cost is the conservative estimate the
issue asks for (image tokens + prompt + max output), charged when it is sent. Each
response's `remaining`/`reset` headers then correct the local view: the server's
remaining minus what was charged *after* that request left (those are not in the
server's number yet). The refill rate is learned as `(limit - remaining) / reset`, which
is exact for a continuous bucket whatever the clock scale, and never assumed from "per
minute" alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from evtui.providers.types import Limit, RateLimitSnapshot

WINDOW_S = 60.0  # limits are published per minute


class Bucket:
    """A continuously refilling budget; `capacity is None` means not known to be limited."""

    __slots__ = ("capacity", "level", "rate", "source", "stamp")

    def __init__(self, capacity: float | None, now: float, *, window_s: float = WINDOW_S) -> None:
        self.capacity = capacity
        self.rate = capacity / window_s if capacity else math.inf
        self.level = capacity if capacity is not None else math.inf
        self.stamp = now
        self.source = "config" if capacity is not None else ""

    @property
    def limited(self) -> bool:
        return self.capacity is not None

    def refill(self, now: float) -> None:
        if now > self.stamp:
            if self.capacity is not None:
                level = self.level + (now - self.stamp) * self.rate
                cap = self.capacity
                self.level = level if level < cap else cap
            self.stamp = now

    def wait_s(self, cost: float) -> float:
        """Seconds until `cost` fits (after a refill by the caller); 0 when it fits now.

        A cost larger than the whole bucket waits for a full bucket instead of forever:
        the provider will say no (ImageTooLarge or a 429) and that is for the router.
        """
        if self.capacity is None or cost <= self.level:
            return 0.0
        need = min(cost, self.capacity) - self.level
        return need / self.rate if need > 0 else 0.0

    def learn(self, limit: Limit, charged_since: float, now: float) -> None:
        """Correct from one response's headers for this bucket."""
        if limit.limit is None or limit.limit <= 0:
            return
        cap = float(limit.limit)
        if self.capacity != cap:
            self.capacity = cap
            if not math.isfinite(self.rate) or self.source != "headers":
                self.rate = cap / WINDOW_S
        if limit.remaining is not None:
            rem = float(limit.remaining)
            if limit.reset_s is not None and limit.reset_s > 0 and rem < cap:
                # A bucket refilling continuously: reset = time until full.
                rate = (cap - rem) / limit.reset_s
                if rate > 0:
                    self.rate = rate
            self.refill(now)
            level = rem - charged_since
            self.level = level if level < cap else cap
            self.stamp = now
        self.source = "headers"


@dataclass(frozen=True, slots=True)
class PaceView:
    """What the routing panel shows for one lane's buckets."""

    rpm_limit: float | None
    rpm_left: float | None
    tpm_limit: float | None
    tpm_left: float | None
    source: str  # config | headers | "" (unknown)


class LanePacer:
    """Requests and tokens buckets of one lane, with header corrections."""

    __slots__ = ("charged", "requests", "seen", "sent", "tokens")

    def __init__(self, rpm: int | None, tpm: int | None, now: float) -> None:
        self.requests = Bucket(rpm, now)
        self.tokens = Bucket(tpm, now)
        # Until the first answer, a lane whose limits are unknown sends one request at a
        # time: its headers tell the limits before a burst can hit them.
        self.seen = rpm is not None or tpm is not None
        self.charged = 0.0  # tokens charged so far (all time)
        self.sent = 0  # requests charged so far

    def wait_s(self, tokens: float, now: float) -> float:
        """0 when a request of `tokens` may go now; else how long until it may."""
        r, t = self.requests, self.tokens
        if r.capacity is None and t.capacity is None:
            return 0.0
        r.refill(now)
        t.refill(now)
        w1 = r.wait_s(1.0)
        w2 = t.wait_s(tokens)
        return w1 if w1 > w2 else w2

    def charge(self, tokens: float) -> tuple[int, float]:
        """Take a request's cost; returns the marks `learn` needs for its response."""
        self.requests.level -= 1.0
        self.tokens.level -= tokens
        self.sent += 1
        self.charged += tokens
        return self.sent, self.charged

    def refund(self, tokens: float, *, request: bool = True) -> None:
        """Give back a charge the provider never took (refused with a 429, or the request
        never reached it), here and in the count later header corrections subtract."""
        self.tokens.level += tokens
        self.charged -= tokens
        if request:
            self.requests.level += 1.0
            self.sent -= 1

    def learn(self, snap: RateLimitSnapshot, mark: tuple[int, float], now: float) -> None:
        self.seen = True
        sent_at, charged_at = mark
        if snap.requests.limit is not None:
            self.requests.learn(snap.requests, max(float(self.sent - sent_at), 0.0), now)
        tok = snap.tokens if snap.tokens.limit is not None else snap.input_tokens
        if tok.limit is not None:
            self.tokens.learn(tok, max(self.charged - charged_at, 0.0), now)

    def headroom(self, now: float) -> float:
        """Fraction of the tighter bucket left (1.0 when unlimited), to rank keys."""
        r, t = self.requests, self.tokens
        out = 1.0
        if r.capacity:
            r.refill(now)
            out = min(out, max(r.level, 0.0) / r.capacity)
        if t.capacity:
            t.refill(now)
            out = min(out, max(t.level, 0.0) / t.capacity)
        return out

    def view(self, now: float) -> PaceView:
        r, t = self.requests, self.tokens
        r.refill(now)
        t.refill(now)
        return PaceView(
            rpm_limit=_per_min(r),
            rpm_left=max(r.level, 0.0) if r.capacity else None,
            tpm_limit=_per_min(t),
            tpm_left=max(t.level, 0.0) if t.capacity else None,
            source=t.source or r.source,
        )


def _per_min(b: Bucket) -> float | None:
    """The limit as a per-minute figure in this run's time (rate × 60)."""
    if b.capacity is None:
        return None
    return b.rate * WINDOW_S


class Concurrency:
    """Additive increase, multiplicative decrease of one target's in-flight cap.

    It starts in slow start (+1 per success, doubling per round trip) up to `ceiling`, so a
    2 s-latency provider reaches thousands in flight in seconds; a 429 or overload halves
    the cap at most once per `cooldown_s` and sets the threshold above which growth turns
    additive (+1 per cap's worth of successes).
    """

    __slots__ = ("_last_cut", "ceiling", "cooldown_s", "floor", "limit", "ssthresh")

    def __init__(
        self, initial: int = 16, ceiling: int = 4096, floor: int = 1, cooldown_s: float = 1.0
    ) -> None:
        self.ceiling = ceiling
        self.floor = floor
        self.limit = float(min(max(initial, floor), ceiling))
        self.ssthresh = float(ceiling)
        self.cooldown_s = cooldown_s
        self._last_cut = -math.inf

    @property
    def cap(self) -> int:
        return int(self.limit)

    def on_success(self) -> None:
        lim = self.limit
        if lim >= self.ceiling:
            return
        lim += 1.0 if lim < self.ssthresh else 1.0 / lim
        self.limit = lim if lim < self.ceiling else float(self.ceiling)

    def on_congestion(self, now: float) -> bool:
        """Halve (once per cooldown); True when it did."""
        if now - self._last_cut < self.cooldown_s:
            return False
        self._last_cut = now
        self.limit = max(self.limit / 2.0, float(self.floor))
        self.ssthresh = max(self.limit, float(self.floor))
        return True
