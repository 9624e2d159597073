"""Health of a target: a circuit breaker with half-open probes and a progressive ramp.

Consecutive transient failures (5xx, overload, timeouts, refused connections) open the
breaker: nothing is sent for `open_s`, then one probe at a time (half-open). A probe that
succeeds starts the ramp: the in-flight cap doubles with each success from 1 until it
reaches the target's normal cap, so a provider coming back from an outage is not hit by
thousands of queued frames at once. A failed probe reopens for twice as long (to a cap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half_open"
RAMPING = "ramping"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    failures_to_open: int = 5
    open_s: float = 5.0
    open_cap_s: float = 60.0
    probes: int = 1  # in flight while half-open


class Breaker:
    __slots__ = ("failures", "opened_for", "policy", "ramp", "state", "trips", "until")

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state = CLOSED
        self.failures = 0
        self.until = 0.0  # open: when half-open begins
        self.opened_for = 0.0
        self.ramp = math.inf  # in-flight cap while ramping
        self.trips = 0

    def cap(self, now: float) -> float:
        """How many requests may be in flight now (inf when closed)."""
        st = self.state
        if st == CLOSED:
            return math.inf
        if st == OPEN:
            if now < self.until:
                return 0.0
            self.state = HALF_OPEN
        if self.state == HALF_OPEN:
            return float(self.policy.probes)
        return self.ramp

    def reopens_in(self, now: float) -> float:
        return max(self.until - now, 0.0) if self.state == OPEN else 0.0

    def on_success(self, normal_cap: float) -> None:
        self.failures = 0
        st = self.state
        if st == CLOSED:
            return
        if st in (HALF_OPEN, OPEN):
            self.state = RAMPING
            self.ramp = 2.0
        else:
            self.ramp *= 2.0
        if self.ramp >= normal_cap:
            self.state = CLOSED
            self.ramp = math.inf
            self.opened_for = 0.0

    def on_failure(self, now: float) -> bool:
        """Count a transient failure; True when this one opened the breaker."""
        self.failures += 1
        st = self.state
        if st == OPEN:
            return False
        if st in (HALF_OPEN, RAMPING) or self.failures >= self.policy.failures_to_open:
            p = self.policy
            longer = self.opened_for * 2 if self.opened_for else p.open_s
            self.opened_for = min(longer, p.open_cap_s)
            self.state = OPEN
            self.until = now + self.opened_for
            self.trips += 1
            return True
        return False

    @property
    def is_open(self) -> bool:
        return self.state == OPEN
