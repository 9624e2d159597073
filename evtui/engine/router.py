"""Who gets the next request: targets, their keys (lanes), health, headroom, and waiting.

A *lane* is one key on one target's model: the unit that is paced, cooled after a 429,
and counted. A *want* is what a frame may take next: either a weighted first pick among
targets (route mode) or a fallback chain in preference order. `grant` answers at once —
a lane with its request charged, a time to wait, or "nothing left that could serve". The
frames that must wait queue by want, so one pass of `pump` touches each kind of want
once instead of every waiting frame: thousands can wait without costing a scan each.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from evtui.engine.health import OPEN, Breaker, BreakerPolicy
from evtui.engine.pacing import Concurrency, LanePacer
from evtui.engine.telemetry import Counters
from evtui.providers.base import ProviderAdapter
from evtui.providers.images import estimate_image_tokens, estimate_text_tokens
from evtui.providers.prices import ModelPrice
from evtui.providers.types import ImagePart


class KeyState:
    """One API key of a provider; shared by its lanes, so disabling it stops them all."""

    __slots__ = ("disabled", "id", "secret")

    def __init__(self, id: str, secret: str) -> None:
        self.id = id
        self.secret = secret
        self.disabled: str | None = None


class Lane:
    """One key on one target. `probing`: after a 429 cooldown, or before the first answer
    of a lane whose limits are unknown, one request at a time until one succeeds — so a
    storm of 429s costs one request per key per cooldown, not a burst each time."""

    __slots__ = ("cooldown_until", "counters", "key", "pacer", "probing", "target")

    def __init__(self, target: TargetState, key: KeyState, pacer: LanePacer) -> None:
        self.target = target
        self.key = key
        self.pacer = pacer
        self.probing = False
        self.cooldown_until = 0.0
        self.counters = Counters()

    def usable(self, now: float) -> bool:
        return self.key.disabled is None and now >= self.cooldown_until


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """Static facts of a target, from config."""

    id: str
    provider: str
    model: str
    weight: float
    prompt: str
    system: str | None
    prompt_version: str
    max_output_tokens: int
    detail: str | None
    timeout_s: float
    price: ModelPrice | None
    image_rules: str | None = None


class TargetState:
    def __init__(
        self,
        spec: TargetSpec,
        adapter: ProviderAdapter,
        breaker: BreakerPolicy,
        concurrency: Concurrency,
    ) -> None:
        self.spec = spec
        self.id = spec.id
        self.weight = spec.weight
        self.adapter = adapter
        self.breaker = Breaker(breaker)
        self.conc = concurrency
        self.lanes: list[Lane] = []
        self.in_flight = 0
        self.counters = Counters()
        self.first_picks = 0
        self.fallbacks_out = 0
        self.cache_hits = 0
        self.paused: str | None = None  # why the caption guard took it out of use
        self._prompt_tokens = estimate_text_tokens((spec.system or "") + spec.prompt)
        self._estimates: dict[tuple[int, int], int] = {}

    def tokens_for(self, image: ImagePart) -> int:
        """The conservative charge of one request: image estimate + prompt + max output."""
        size = (image.width, image.height)
        est = self._estimates.get(size)
        if est is None:
            s = self.spec
            try:
                img = estimate_image_tokens(
                    s.model, image.width, image.height, s.detail, rules=s.image_rules
                )
            except (KeyError, ValueError):
                img = (image.width * image.height) // 750 + 85  # conservative generic
            est = self._estimates[size] = img + self._prompt_tokens + s.max_output_tokens
        return est

    def cost_for(self, tokens: int) -> float:
        """USD of a request charged `tokens` (input at most, output at max): an upper bound."""
        p = self.spec.price
        if p is None:
            return 0.0
        out = self.spec.max_output_tokens
        return ((tokens - out) * p.input + out * p.output) / 1_000_000

    def cap(self, now: float) -> float:
        b = self.breaker.cap(now)
        c = self.conc.cap
        return b if b < c else c

    def healthy(self, now: float, exclude: Lane | None = None) -> bool:
        """Could serve soon: breaker not open and some lane neither disabled nor cooling."""
        b = self.breaker
        if b.state == OPEN and now < b.until:
            return False
        for ln in self.lanes:  # a loop, not any(genexpr): this runs per request
            if ln is not exclude and ln.key.disabled is None and now >= ln.cooldown_until:
                return True
        return False

    def alive(self) -> bool:
        """Not paused and has a key left (disabled keys never come back in this run)."""
        if self.paused is not None:
            return False
        for ln in self.lanes:  # noqa: SIM110 (a loop: any(genexpr) costs more per request)
            if ln.key.disabled is None:
                return True
        return False

    def recovers_in(self, now: float, exclude: Lane | None = None) -> float:
        """When this target could next be healthy (inf when no key is left)."""
        waits = [
            ln.cooldown_until - now
            for ln in self.lanes
            if ln.key.disabled is None and ln is not exclude
        ]
        if not waits:
            return math.inf
        w = max(min(waits), 0.0)
        b = self.breaker.reopens_in(now)
        return w if w > b else b


@dataclass(slots=True)
class Grant:
    lane: Lane
    tokens: int
    mark: tuple[int, float]
    cost: float


class Want:
    """What a frame may take next. `order` is the preference order; `weighted` makes the
    first pick a weighted draw among the targets with room now (route mode)."""

    __slots__ = ("choice", "exclude", "image", "order", "sig", "weighted")

    def __init__(
        self,
        order: Sequence[TargetState],
        image: Callable[[TargetState], ImagePart],
        *,
        weighted: bool = False,
        exclude: Lane | None = None,
        sig: tuple[Any, ...] | None = None,
    ) -> None:
        self.order = order if isinstance(order, tuple) else tuple(order)
        self.image = image
        self.weighted = weighted
        self.exclude = exclude
        self.choice: TargetState | None = None
        if sig is None:
            sig = (tuple(t.id for t in self.order), weighted, id(exclude) if exclude else 0)
        self.sig = sig  # wants with equal signatures queue together


NO_ROUTE = None  # grant() result: nothing in the want can ever serve (all keys disabled)


class _Drained:
    """acquire() result once the router is closed: give the frame back, unsent."""

    def __repr__(self) -> str:
        return "DRAINED"


DRAINED = _Drained()


class Router:
    """Targets and lanes, and the queue of frames waiting for one of them."""

    def __init__(
        self,
        targets: Sequence[TargetState],
        *,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        self.targets = list(targets)
        self.by_id = {t.id: t for t in self.targets}
        self.clock = clock
        self.rng = rng or random.Random()
        self.paused = False
        self._queues: dict[tuple[Any, ...], deque[tuple[Want, asyncio.Future[Any]]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self.waiting = 0
        self.closed = False
        self._current: dict[str, float] = {}

    # -- granting ------------------------------------------------------------------------

    def _lane_for(self, t: TargetState, tokens: int, now: float, exclude: Lane | None) -> Any:
        """The usable lane with most headroom that may send now, or the wait for one."""
        if t.in_flight >= t.cap(now):
            return math.inf  # woken by a release
        best: Lane | None = None
        best_room = -1.0
        wait = math.inf
        for ln in t.lanes:
            if ln is exclude or ln.key.disabled is not None:
                continue
            if now < ln.cooldown_until:
                w = ln.cooldown_until - now
                wait = w if w < wait else wait
                continue
            if (ln.probing or not ln.pacer.seen) and ln.counters.in_flight:
                continue  # one request first; its answer decides
            w = ln.pacer.wait_s(tokens, now)
            if w > 0.0:
                wait = w if w < wait else wait
                continue
            room = ln.pacer.headroom(now)
            if room > best_room:
                best, best_room = ln, room
        return best if best is not None else wait

    def _take(self, lane: Lane, tokens: int) -> Grant:
        t = lane.target
        t.in_flight += 1
        lane.counters.in_flight += 1
        mark = lane.pacer.charge(tokens)
        return Grant(lane, tokens, mark, t.cost_for(tokens))

    def grant(self, want: Want, now: float) -> Grant | float | None:
        """A grant now, else seconds to wait (inf: until a release), else NO_ROUTE."""
        if self.paused:
            return math.inf
        exclude = want.exclude
        if want.weighted:
            return self._weighted(want, now)
        wait = math.inf
        any_alive = False
        for t in want.order:
            if not t.alive():
                continue
            any_alive = True
            if not t.healthy(now, exclude):
                w = t.recovers_in(now, exclude)
                wait = w if w < wait else wait
                continue
            tokens = t.tokens_for(want.image(t))
            got = self._lane_for(t, tokens, now, exclude)
            if isinstance(got, Lane):
                return self._take(got, tokens)
            # Healthy but no room yet: wait for this one, in order.
            return got if got < wait else wait
        return wait if any_alive else NO_ROUTE

    def _weighted(self, want: Want, now: float) -> Grant | float | None:
        """First pick by smooth weighted round robin among healthy targets with budget.

        The pick sticks to the frame while its target is only at its concurrency cap (the
        frame waits for a release), so shares follow the weights exactly while concurrency
        ramps up; a target that is unhealthy or out of request/token budget leaves the
        draw, so traffic spills to the others instead of queueing behind a rate limit.
        """
        chosen = want.choice
        if chosen is not None:
            if chosen.weight > 0 and chosen.healthy(now):
                tokens = chosen.tokens_for(want.image(chosen))
                if chosen.in_flight >= chosen.cap(now):
                    return math.inf
                got = self._lane_for(chosen, tokens, now, None)
                if isinstance(got, Lane):
                    chosen.first_picks += 1
                    return self._take(got, tokens)
                if got == math.inf:
                    return got  # still only waiting on a probe or a release
            want.choice = None  # out of budget or unhealthy now: draw again
        cands: list[tuple[TargetState, Lane | None, int]] = []
        wait = math.inf
        any_alive = False
        for t in want.order:
            if t.weight <= 0 or not t.alive():
                continue
            any_alive = True
            if not t.healthy(now):
                w = t.recovers_in(now)
                wait = w if w < wait else wait
                continue
            tokens = t.tokens_for(want.image(t))
            if t.in_flight >= t.cap(now):
                cands.append((t, None, tokens))
                continue
            got = self._lane_for(t, tokens, now, None)
            if isinstance(got, Lane):
                cands.append((t, got, tokens))
            elif got == math.inf:
                cands.append((t, None, tokens))  # waiting on a probe: stays in the draw
            elif got < wait:
                wait = got
        if not cands:
            return wait if any_alive else NO_ROUTE
        if len(cands) == 1:
            t, lane, tokens = cands[0]
        else:
            # Smooth weighted round robin (nginx): exact shares, no bursts, no randomness.
            cw = self._current
            total = 0.0
            pick = cands[0]
            best = -math.inf
            for c in cands:
                w = c[0].weight
                total += w
                v = cw.get(c[0].id, 0.0) + w
                cw[c[0].id] = v
                if v > best:
                    best, pick = v, c
            cw[pick[0].id] -= total
            t, lane, tokens = pick
        if lane is None:
            want.choice = t
            return math.inf  # at its concurrency cap or probing: wait for a release
        t.first_picks += 1
        return self._take(lane, tokens)

    def release(self, grant: Grant) -> None:
        lane = grant.lane
        lane.target.in_flight -= 1
        lane.counters.in_flight -= 1
        self.pump()

    # -- waiting -------------------------------------------------------------------------

    async def acquire(self, want: Want) -> Grant | _Drained | None:
        """A grant, waiting as long as it takes (None: nothing could ever serve this;
        DRAINED: the router was closed while waiting, so the frame stays unsent)."""
        if self.closed:
            return DRAINED
        q = self._queues.get(want.sig)
        if not q:
            got = self.grant(want, self.clock())
            if not isinstance(got, float):
                return got
            self._arm(got)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queues.setdefault(want.sig, deque()).append((want, fut))
        self.waiting += 1
        try:
            return await fut
        finally:
            if not fut.done():  # cancelled while waiting
                self._forget(want, fut)

    def _forget(self, want: Want, fut: asyncio.Future[Any]) -> None:
        q = self._queues.get(want.sig)
        if q is not None:
            try:
                q.remove((want, fut))
                self.waiting -= 1
            except ValueError:
                pass

    def pump(self) -> None:
        """Grant what can be granted to waiting frames, oldest first within each want."""
        if not self._queues or self.paused:
            return
        now = self.clock()
        soonest = math.inf
        for sig in list(self._queues):
            q = self._queues[sig]
            while q:
                want, fut = q[0]
                if fut.done():
                    q.popleft()
                    self.waiting -= 1
                    continue
                got = self.grant(want, now)
                if isinstance(got, float):
                    soonest = got if got < soonest else soonest
                    break
                q.popleft()
                self.waiting -= 1
                fut.set_result(got)
            if not q:
                del self._queues[sig]
        if self._queues:
            self._arm(soonest)

    def _arm(self, wait_s: float) -> None:
        """Pump again after `wait_s` (releases pump on their own; inf arms nothing)."""
        if not math.isfinite(wait_s):
            return
        loop = asyncio.get_running_loop()
        at = loop.time() + max(wait_s, 0.0005)
        if self._timer is not None and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self.pump()

    def set_paused(self, paused: bool) -> None:
        self.paused = paused
        if not paused:
            self.pump()

    def close(self) -> None:
        """Grant nothing more: every waiting frame (and any that asks later) gets DRAINED."""
        self.closed = True
        for q in self._queues.values():
            for _, fut in q:
                if not fut.done():
                    fut.set_result(DRAINED)
        self._queues.clear()
        self.waiting = 0
