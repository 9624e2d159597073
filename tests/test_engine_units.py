"""The engine's parts on their own: buckets, concurrency, breaker, backoff, picks, records."""

from __future__ import annotations

import math
import random

import pytest

from evtui.engine.backoff import backoff_s
from evtui.engine.health import CLOSED, HALF_OPEN, OPEN, RAMPING, Breaker, BreakerPolicy
from evtui.engine.pacing import Bucket, Concurrency, LanePacer
from evtui.engine.records import Attempt, Route
from evtui.engine.telemetry import Event, EventQueue, SecondRing, percentile
from evtui.providers.types import Limit, RateLimitSnapshot

# -- pacing ------------------------------------------------------------------------------


def test_bucket_learns_rate_from_remaining_and_reset_whatever_the_clock_scale() -> None:
    b = Bucket(None, now=0.0)
    assert not b.limited and b.wait_s(1e9) == 0.0
    # 30,000 per "minute" but the bucket refills 10,000 tokens in 0.5 s: 20,000/s.
    b.learn(Limit(limit=30_000, remaining=20_000, reset_s=0.5), charged_since=0.0, now=10.0)
    assert b.capacity == 30_000
    assert b.rate == pytest.approx(20_000)
    assert b.level == pytest.approx(20_000)


def test_bucket_correction_subtracts_what_was_charged_after_the_request_left() -> None:
    b = Bucket(1000, now=0.0)
    b.level = 900.0
    b.learn(Limit(limit=1000, remaining=700, reset_s=18.0), charged_since=200.0, now=0.0)
    assert b.level == pytest.approx(500.0)
    # A cost beyond the level waits exactly for the refill it needs.
    assert b.wait_s(600.0) == pytest.approx(100.0 / b.rate)


def test_pacer_charges_requests_and_tokens_and_refunds_refusals() -> None:
    p = LanePacer(rpm=60, tpm=6000, now=0.0)
    assert p.wait_s(1000, now=0.0) == 0.0
    mark = p.charge(1000)
    assert mark == (1, 1000.0)
    assert p.tokens.level == 5000 and p.requests.level == 59
    for _ in range(5):
        p.charge(1000)
    assert p.wait_s(1000, now=0.0) == pytest.approx(10.0)  # 1000 tokens at 100/s
    p.refund(1000, request=False)
    assert p.tokens.level == 1000 and p.charged == 5000
    assert p.wait_s(1000, now=0.0) == 0.0


def test_pacer_learns_tokens_from_input_tokens_when_that_is_all_there_is() -> None:
    p = LanePacer(None, None, now=0.0)
    assert not p.seen
    mark = p.charge(100)
    snap = RateLimitSnapshot(input_tokens=Limit(limit=4000, remaining=3900, reset_s=1.5))
    p.learn(snap, mark, now=1.0)
    assert p.seen and p.tokens.capacity == 4000
    assert p.view(1.0).source == "headers"


def test_concurrency_slow_start_then_halves_once_per_cooldown() -> None:
    c = Concurrency(initial=4, ceiling=64, cooldown_s=1.0)
    for _ in range(4):
        c.on_success()
    assert c.cap == 8  # +1 per success: doubling per round trip
    assert c.on_congestion(now=10.0) and c.cap == 4
    assert not c.on_congestion(now=10.5) and c.cap == 4  # same episode
    for _ in range(4):
        c.on_success()
    assert c.cap == 4  # additive now: +1 per cap's worth of successes
    c.on_success()
    assert c.cap == 5
    for _ in range(1000):
        c.on_success()
    assert c.cap <= 64


# -- breaker -----------------------------------------------------------------------------


def test_breaker_opens_probes_ramps_and_closes() -> None:
    b = Breaker(BreakerPolicy(failures_to_open=3, open_s=2.0, open_cap_s=5.0))
    assert b.cap(0.0) == math.inf
    assert not b.on_failure(0.0) and not b.on_failure(0.1)
    assert b.on_failure(0.2) and b.state == OPEN
    assert b.cap(1.0) == 0.0 and b.reopens_in(1.0) == pytest.approx(1.2)
    assert b.cap(2.3) == 1.0 and b.state == HALF_OPEN  # one probe
    assert b.on_failure(2.4) and b.opened_for == 4.0  # probe failed: twice as long
    assert b.on_failure(2.5) is False  # already open
    b.cap(6.5)
    b.on_success(normal_cap=16)
    assert b.state == RAMPING and b.cap(6.6) == 2.0
    b.on_success(16)
    b.on_success(16)
    assert b.cap(6.7) == 8.0
    b.on_success(16)
    assert b.state == CLOSED and b.cap(6.8) == math.inf


def test_breaker_open_time_is_capped() -> None:
    b = Breaker(BreakerPolicy(failures_to_open=1, open_s=2.0, open_cap_s=5.0))
    t = 0.0
    for _ in range(5):
        b.on_failure(t)
        t = b.until
        b.cap(t)
    assert b.opened_for == 5.0


# -- backoff -----------------------------------------------------------------------------


def test_full_jitter_stays_under_the_exponential_ceiling_and_spreads() -> None:
    rng = random.Random(3)
    for n in range(8):
        ceiling = min(30.0, 0.5 * 2**n)
        draws = [backoff_s(n, 0.5, 30.0, "full", rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in draws)
        assert max(draws) > 0.8 * ceiling and min(draws) < 0.2 * ceiling
    assert all(backoff_s(3, 1, 100, "equal", rng) >= 4 for _ in range(50))
    assert backoff_s(50, 1, 100, "none") == 100


# -- records and telemetry ---------------------------------------------------------------


def test_route_summary_reads_like_the_path_taken() -> None:
    r = Route(7, "route")
    r.attempts.append(
        Attempt("openai/gpt-4o", "openai key#2 sk-…abcd", "rate_limited", 429, 0, 0.1, 10)
    )
    r.attempts.append(Attempt("anthropic/claude", "anthropic key#1 …", "ok", 200, 0, 1.4, 10))
    assert r.summary() == "openai 429 → fell back → anthropic ok 1.4 s"
    d = r.as_dict({"state": "done"})
    assert d["attempts"][0]["status"] == 429 and d["final"] == {"state": "done"}


def test_event_queue_drops_only_caption_events_when_full() -> None:
    q = EventQueue(max_captions=3)
    for i in range(10):
        q.put(Event("caption", str(i), 0.0))
    q.put(Event("key_disabled", "key#1 disabled", 0.0))
    assert q.dropped == 7
    got = q.drain()
    assert [e.kind for e in got] == ["caption"] * 3 + ["key_disabled"]
    q.put(Event("caption", "again", 0.0))  # room again after a drain
    assert len(q.drain()) == 1


def test_second_ring_counts_recent_seconds() -> None:
    r = SecondRing()
    for t in (100.1, 100.2, 101.5, 102.0, 102.1, 102.2):
        r.add(t)
    s = r.series(102.5)
    assert s[-3:] == (2, 1, 3)
    assert r.rate(103.0, span_s=2) == pytest.approx((1 + 3) / 2)
    assert sum(r.series(500.0)) == 0  # long gap: history expired
    assert percentile([3.0, 1.0, 2.0, 4.0], 0.5) == 2.0 and percentile([], 0.5) is None


# -- routing -----------------------------------------------------------------------------


def _engine(text: str):
    from evtui.config import parse_config
    from evtui.engine.dispatcher import Engine
    from tests.engine_support import KEYS

    return Engine(parse_config(text, env=KEYS), seed=0)


TWO_KEYS = """
providers:
  openai:
    protocol: openai
    base_url: http://127.0.0.1:9/v1
    keys: [{key: "${EVTUI_T_KEY1}", tpm: 100000}, {key: "${EVTUI_T_KEY2}", tpm: 100000}]
  anthropic: {protocol: anthropic, base_url: "http://127.0.0.1:9", keys: [{key: "${EVTUI_T_KEY3}"}]}
targets:
  - {id: openai/gpt-4o, weight: 3, fallbacks: [anthropic/claude-haiku-4-5]}
  - {id: anthropic/claude-haiku-4-5, weight: 1}
prompts: {default: {text: Describe.}}
"""


def test_key_with_most_headroom_is_chosen_and_a_cooling_key_is_skipped() -> None:
    from evtui.engine.router import Want
    from tests.engine_support import images

    eng = _engine(TWO_KEYS)
    img = images(1)[0]
    t = eng.by_id["openai/gpt-4o"]
    k1, k2 = t.lanes
    now = eng._clock()
    k1.pacer.tokens.level = 20_000.0
    k2.pacer.tokens.level = 90_000.0
    g = eng.router.grant(Want([t], lambda _t: img), now)
    assert g is not None and not isinstance(g, float) and g.lane is k2
    g.lane.target.in_flight -= 1  # released by hand: release() would pump on a loop
    g.lane.counters.in_flight -= 1
    k2.cooldown_until = now + 5.0
    g2 = eng.router.grant(Want([t], lambda _t: img), now)
    assert not isinstance(g2, float) and g2 is not None and g2.lane is k1
    # Both keys cooling: the target is unhealthy, the ordered want falls to the next one.
    k1.cooldown_until = now + 3.0
    a = eng.by_id["anthropic/claude-haiku-4-5"]
    g3 = eng.router.grant(Want([t, a], lambda _t: img), now)
    assert not isinstance(g3, float) and g3 is not None and g3.lane.target is a
    # Alone, it waits exactly until the first key cools down.
    w = eng.router.grant(Want([t], lambda _t: img), now)
    assert w == pytest.approx(3.0)


def test_smooth_weighted_round_robin_gives_exact_shares() -> None:
    from evtui.engine.router import Want
    from tests.engine_support import images

    eng = _engine(TWO_KEYS.replace(", tpm: 100000", ""))
    img = images(1)[0]
    for ln in (ln for t in eng.targets for ln in t.lanes):
        ln.pacer.seen = True
    picks = []
    now = eng._clock()
    for _ in range(400):
        g = eng.router.grant(Want(eng.targets, lambda _t: img, weighted=True), now)
        assert g is not None and not isinstance(g, float)
        picks.append(g.lane.target.id)
        g.lane.target.in_flight -= 1
        g.lane.counters.in_flight -= 1
    assert picks.count("openai/gpt-4o") == 300
    assert picks[:4].count("openai/gpt-4o") == 3  # interleaved, not in bursts
