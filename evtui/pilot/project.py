"""From a pilot to the full run: cost, duration, the limit that binds, and a cheaper mix.

The model is the steady state the engine settles into. Target i, given share sᵢ of the
frames in route mode, can take at most capᵢ frames a minute, where capᵢ is the smallest of
  Σ over its keys of min(rpm / requests per frame, tpm / rate-limit tokens per frame)
and its concurrency ceiling × 60 / latency; the router keeps shares exact, so the job runs
at R = minᵢ capᵢ / sᵢ frames a minute, also bounded by Little's law on the engine's
`max_in_flight` (R · Σ sᵢ·latencyᵢ / 60 ≤ max_in_flight). Cost is N · Σ sᵢ·costᵢ.

The cheapest mix for a duration T is then a small linear programme: minimise Σ sᵢ·costᵢ with
Σ sᵢ = 1, 0 ≤ sᵢ ≤ capᵢ / R (R = N / T) and the in-flight bound. Without the in-flight bound
it is a fractional knapsack (fill the cheapest target up to its cap, then the next); with
it, the same greedy on costᵢ + λ·latencyᵢ, bisected on λ, and the two greedy answers either
side of the crossing mixed to meet the bound exactly — the LP optimum, no solver needed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from evtui.pilot.measure import LaneLimits, TargetMeasure

INF = math.inf
IN_FLIGHT = "in flight"
_EPS = 1e-9

_LIMIT_NAMES = {
    "rpm": "requests per minute",
    "tpm": "tokens per minute",
    "concurrency": "concurrent requests (engine.max_concurrency_per_target)",
    "in_flight": "frames in flight (engine.max_in_flight)",
}


@dataclass(frozen=True)
class TargetModel:
    """What the projection knows of one target: per-frame cost, latency, load and limits."""

    id: str
    cost_per_frame: float
    latency_s: float
    requests_per_frame: float
    tokens_per_frame: float  # as its tokens-per-minute limit counts them
    lanes: tuple[LaneLimits, ...]
    concurrency: int

    @classmethod
    def from_measure(cls, m: TargetMeasure, concurrency: int) -> TargetModel:
        return cls(
            id=m.id,
            cost_per_frame=m.cost_per_frame,
            latency_s=m.latency_mean_s or 0.0,
            requests_per_frame=m.requests_per_frame,
            tokens_per_frame=m.rate_tokens_per_frame,
            lanes=m.lanes,
            concurrency=concurrency,
        )

    def lane_cap(self, lane: LaneLimits) -> float:
        """Frames a minute one key allows (inf when it has no known limit)."""
        cap = INF
        if lane.rpm:
            cap = min(cap, lane.rpm / max(self.requests_per_frame, _EPS))
        if lane.tpm and self.tokens_per_frame > 0:
            cap = min(cap, lane.tpm / self.tokens_per_frame)
        return cap

    def concurrency_cap(self) -> float:
        return self.concurrency * 60.0 / self.latency_s if self.latency_s > 0 else INF

    def capacity(self) -> float:
        """Frames a minute this target can take at most."""
        keys = sum(self.lane_cap(ln) for ln in self.lanes) if self.lanes else INF
        return min(keys, self.concurrency_cap())

    @property
    def limited(self) -> bool:
        """Whether any provider limit is known (else only concurrency bounds it)."""
        return any(ln.rpm or ln.tpm for ln in self.lanes)


@dataclass(frozen=True)
class Limit:
    """One limit that can bind: a key's rpm/tpm, a target's concurrency, or the engine's."""

    kind: str  # rpm | tpm | concurrency | in_flight
    target: str | None
    key: str | None
    value: float
    source: str = ""

    def describe(self) -> str:
        who = f"{self.target} " if self.target else ""
        on = f" on {self.key}" if self.key else ""
        src = f" (from {self.source})" if self.source and self.kind in ("rpm", "tpm") else ""
        return f"{who}{_LIMIT_NAMES[self.kind]}{on}: {self.value:,.0f}{src}"


@dataclass(frozen=True)
class Plan:
    """A weight mix and what it costs and takes for the full recording."""

    shares: dict[str, float]
    frames: int
    rate_per_min: float  # frames a minute
    cost_usd: float
    binder: str | None  # the target (or "in flight") that sets the pace; None: unbounded

    @property
    def minutes(self) -> float:
        if self.frames == 0:
            return 0.0
        return self.frames / self.rate_per_min if self.rate_per_min > 0 else INF


@dataclass(frozen=True)
class Binding:
    """The limit that binds first under a plan and what raising it would buy."""

    limit: Limit
    target_cap_per_min: float  # frames a minute the binder can take (inf for in flight)
    needed_per_min: float  # what the binder would need to keep up with the others
    plan: Plan
    raised: Plan  # the same mix with that limit × factor
    factor: float
    next_binder: str | None

    @property
    def saving(self) -> float:
        """Share of the duration saved by raising the limit (0..1)."""
        if not math.isfinite(self.plan.minutes) or self.plan.minutes <= 0:
            return 0.0
        return max(0.0, 1.0 - self.raised.minutes / self.plan.minutes)


class Projector:
    """Cost and duration of any weight mix over the full recording's frames."""

    def __init__(self, models: Sequence[TargetModel], frames: int, max_in_flight: int) -> None:
        self.models = tuple(models)
        self.by_id = {m.id: m for m in self.models}
        self.frames = frames
        self.max_in_flight = max_in_flight

    # -- one mix -------------------------------------------------------------------------

    def rate(self, shares: Mapping[str, float]) -> tuple[float, str | None]:
        """Frames a minute under `shares` (compare mode: every share 1) and who binds."""
        best, who = INF, None
        load = 0.0
        for m in self.models:
            s = shares.get(m.id, 0.0)
            if s <= _EPS:
                continue
            load += s * m.latency_s
            r = m.capacity() / s
            if r < best:
                best, who = r, m.id
        if load > 0:
            r = self.max_in_flight * 60.0 / load
            if r < best:
                best, who = r, IN_FLIGHT
        return best, who

    def plan(self, shares: Mapping[str, float]) -> Plan:
        missing = [t for t, s in shares.items() if s > _EPS and t not in self.by_id]
        if missing:
            raise KeyError(f"no pilot measurement for {', '.join(missing)}")
        rate, who = self.rate(shares)
        cost = self.frames * sum(s * self.by_id[t].cost_per_frame for t, s in shares.items())
        return Plan(dict(shares), self.frames, rate, cost, who)

    # -- what binds ----------------------------------------------------------------------

    def limits_of(self, binder: str) -> list[Limit]:
        if binder == IN_FLIGHT:
            return [Limit("in_flight", None, None, float(self.max_in_flight))]
        m = self.by_id[binder]
        out = []
        for ln in m.lanes:
            if ln.rpm:
                out.append(Limit("rpm", m.id, ln.key, ln.rpm, ln.source))
            if ln.tpm:
                out.append(Limit("tpm", m.id, ln.key, ln.tpm, ln.source))
        out.append(Limit("concurrency", m.id, None, float(m.concurrency)))
        return out

    def raised(self, limit: Limit, factor: float) -> Projector:
        """The same projection with one limit multiplied by `factor`."""
        if limit.kind == "in_flight":
            return Projector(self.models, self.frames, round(self.max_in_flight * factor))
        models = []
        for m in self.models:
            if m.id == limit.target:
                if limit.kind == "concurrency":
                    m = replace(m, concurrency=round(m.concurrency * factor))
                else:
                    lanes = tuple(
                        replace(ln, **{limit.kind: getattr(ln, limit.kind) * factor})
                        if ln.key == limit.key
                        else ln
                        for ln in m.lanes
                    )
                    m = replace(m, lanes=lanes)
            models.append(m)
        return Projector(models, self.frames, self.max_in_flight)

    def binding(self, shares: Mapping[str, float], factor: float = 2.0) -> Binding | None:
        """The limit whose raising by `factor` shortens the run most, among the binder's."""
        plan = self.plan(shares)
        if plan.binder is None:
            return None
        best: tuple[Limit, Plan] | None = None
        for lim in self.limits_of(plan.binder):
            p2 = self.raised(lim, factor).plan(shares)
            if best is None or p2.rate_per_min > best[1].rate_per_min + _EPS:
                best = (lim, p2)
        assert best is not None
        lim, p2 = best
        if plan.binder == IN_FLIGHT:
            cap = INF
            need = plan.rate_per_min
        else:
            cap = self.by_id[plan.binder].capacity()
            others = [
                self.by_id[t].capacity() / s
                for t, s in shares.items()
                if s > _EPS and t != plan.binder
            ]
            need = shares[plan.binder] * min(others, default=INF)
        return Binding(lim, cap, need, plan, p2, factor, p2.binder)

    # -- better mixes ----------------------------------------------------------------------

    def _greedy(self, keys: Sequence[float], upper: Sequence[float]) -> list[float]:
        order = sorted(range(len(keys)), key=lambda i: (keys[i], i))
        s = [0.0] * len(keys)
        left = 1.0
        for i in order:
            take = min(upper[i], left)
            s[i] = take
            left -= take
            if left <= _EPS:
                break
        return s

    def min_cost_shares(self, rate: float) -> dict[str, float] | None:
        """The cheapest shares that sustain `rate` frames a minute; None if none can."""
        ms = self.models
        if not ms or rate <= 0:
            return None
        upper = [min(1.0, m.capacity() / rate) for m in ms]
        if sum(upper) < 1.0 - 1e-7:
            return None
        cost = [m.cost_per_frame for m in ms]
        lat = [m.latency_s for m in ms]
        room = self.max_in_flight * 60.0 / rate  # Σ sᵢ·latencyᵢ may not exceed this

        def load(s: list[float]) -> float:
            return sum(a * b for a, b in zip(s, lat, strict=True))

        def at(lam: float) -> list[float]:
            return self._greedy([c + lam * x for c, x in zip(cost, lat, strict=True)], upper)

        s = self._greedy(cost, upper)
        if load(s) > room + _EPS:
            if load(self._greedy(lat, upper)) > room + _EPS:
                return None
            lo, hi = 0.0, 1.0
            for _ in range(200):
                if load(at(hi)) <= room:
                    break
                hi *= 2
            for _ in range(100):
                mid = (lo + hi) / 2
                if load(at(mid)) <= room:
                    hi = mid
                else:
                    lo = mid
            s_lo, s_hi = at(lo), at(hi)
            a, b = load(s_lo), load(s_hi)
            theta = (room - b) / (a - b) if a - b > _EPS else 0.0
            theta = min(max(theta, 0.0), 1.0)
            s = [theta * x + (1 - theta) * y for x, y in zip(s_lo, s_hi, strict=True)]
        return {m.id: v for m, v in zip(ms, s, strict=True) if v > _EPS}

    def max_rate(self) -> float:
        """The fastest any mix can go (inf when nothing measured bounds it)."""
        total = sum(m.capacity() for m in self.models)
        lat = [m.latency_s for m in self.models if m.latency_s > 0]
        flight = self.max_in_flight * 60.0 / min(lat) if lat else INF
        return min(total, flight)

    def cheapest(self, minutes: float) -> Plan | None:
        """The cheapest mix that finishes within `minutes`."""
        if minutes <= 0 or not self.models:
            return None
        if self.frames == 0:
            return self.plan({self.models[0].id: 1.0})
        shares = self.min_cost_shares(self.frames / minutes)
        return None if shares is None else self.plan(shares)

    def fastest(self, budget_usd: float) -> Plan | None:
        """The fastest mix whose cost stays within `budget_usd`."""
        hi = self.max_rate()
        if not self.models or not math.isfinite(hi):
            return None
        lo_plan = self.cheapest_any()
        if lo_plan is None or lo_plan.cost_usd > budget_usd * (1 + 1e-9):
            return None
        lo = lo_plan.rate_per_min
        best = lo_plan
        for _ in range(60):
            mid = math.sqrt(lo * hi) if lo > 0 else hi / 2
            shares = self.min_cost_shares(mid)
            if shares is not None and self.plan(shares).cost_usd <= budget_usd * (1 + 1e-9):
                lo, best = mid, self.plan(shares)
            else:
                hi = mid
            if hi - lo <= 1e-6 * hi:
                break
        return best

    def cheapest_any(self) -> Plan | None:
        """The cheapest mix at all (slowest acceptable: everything to the cheapest target)."""
        if not self.models:
            return None
        m = min(self.models, key=lambda m: (m.cost_per_frame, -m.capacity()))
        return self.plan({m.id: 1.0})

    def frontier(self, points: int = 40, upto_minutes: float | None = None) -> list[Plan]:
        """Cheapest plans from the fastest possible duration to `upto_minutes`."""
        r_max = self.max_rate()
        if self.frames == 0 or not math.isfinite(r_max) or r_max <= 0:
            return []
        t_min = self.frames / r_max
        t_max = max(upto_minutes or 0.0, 3 * t_min)
        out = []
        for i in range(points):
            t = t_min * (t_max / t_min) ** (i / max(points - 1, 1))
            p = self.cheapest(t * (1 + 1e-9))
            if p is not None:
                out.append(p)
        return out


def route_shares(measures: Sequence[TargetMeasure]) -> dict[str, float]:
    """The configured route-mode shares (by weight)."""
    return {m.id: m.share for m in measures if m.share > _EPS}


def human_minutes(minutes: float) -> str:
    if not math.isfinite(minutes):
        return "never"
    s = minutes * 60
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    if s < 86400 * 2:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    return f"{s / 86400:.1f} days"


def describe_shares(shares: Mapping[str, float]) -> str:
    items = sorted(shares.items(), key=lambda kv: -kv[1])
    return ", ".join(f"{t} {100 * s:.0f}%" for t, s in items if s > 0.0005)


__all__ = [
    "IN_FLIGHT",
    "Binding",
    "Limit",
    "Plan",
    "Projector",
    "TargetModel",
    "describe_shares",
    "human_minutes",
    "route_shares",
]
