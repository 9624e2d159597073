"""Token buckets: continuous refill, atomic multi-bucket charges, per key and per model."""

from __future__ import annotations

import math

import pytest

from evtui.sim.limits import KeyLimits, Limiter, TokenBucket
from evtui.sim.scenario import LimitSpec, ProviderSpec


def test_bucket_refills_continuously_up_to_capacity():
    b = TokenBucket(60, now=0.0)  # one per second
    b.level = 0.0
    b.refill(0.5)
    assert b.level == pytest.approx(0.5)
    assert b.shortfall_s(1) == pytest.approx(0.5)
    assert b.full_in_s() == pytest.approx(59.5)
    b.refill(1000.0)
    assert b.level == 60.0
    assert math.isinf(b.shortfall_s(61))


def test_rpm_trips_on_the_request_after_the_limit_and_says_how_long_to_wait():
    lim = KeyLimits(LimitSpec(rpm=3), 0.0, "sum", refund=False)
    assert [lim.admit(10, 10, 0.0) for _ in range(3)] == [(0.0, "")] * 3
    wait, which = lim.admit(10, 10, 0.0)
    assert which == "requests" and wait == pytest.approx(20.0)  # 60 s / 3
    assert lim.admit(10, 10, 19.9)[1] == "requests"
    assert lim.admit(10, 10, 20.0) == (0.0, "")


@pytest.mark.parametrize(("rule", "cost"), [("sum", 1300), ("max", 1000), ("input", 1000)])
def test_token_cost_rules(rule, cost):
    lim = KeyLimits(LimitSpec(tpm=10_000), 0.0, rule, refund=False)
    lim.admit(1000, 300, 0.0)
    assert lim.tokens.level == 10_000 - cost


def test_a_refused_request_charges_nothing():
    lim = KeyLimits(LimitSpec(rpm=100, tpm=1000), 0.0, "sum", refund=False)
    wait, which = lim.admit(900, 200, 0.0)
    assert which == "tokens" and math.isinf(wait)  # larger than the bucket: never fits
    assert lim.requests.level == 100 and lim.tokens.level == 1000
    assert lim.admit(500, 100, 0.0) == (0.0, "")
    wait, which = lim.admit(500, 100, 0.0)  # 600 more does not fit in the 400 left
    assert which == "tokens" and wait == pytest.approx(200 / (1000 / 60))
    assert lim.requests.level == 99


def test_anthropic_style_output_refund_and_separate_input_output_buckets():
    lim = KeyLimits(LimitSpec(itpm=5000, otpm=1000, tpm=8000), 0.0, "sum", refund=True)
    lim.admit(1200, 800, 0.0)
    assert (lim.input.level, lim.output.level, lim.tokens.level) == (3800, 200, 6000)
    lim.settle(800, 50)  # the answer used 50 of the 800 pre-charged
    assert (lim.output.level, lim.tokens.level) == (950, 6750)
    wait, which = lim.admit(100, 960, 0.0)
    assert which == "output_tokens" and wait > 0


def test_limiter_keeps_buckets_per_key_and_model_with_model_overrides():
    spec = ProviderSpec(rpm=2, models={"gpt-4o-mini": LimitSpec(rpm=1)})
    limiter = Limiter("openai", spec)
    a, b = limiter.get("key-a", "gpt-4o", 0.0), limiter.get("key-b", "gpt-4o", 0.0)
    assert a is not b and a is limiter.get("key-a", "gpt-4o", 5.0)
    a.admit(1, 1, 0.0)
    a.admit(1, 1, 0.0)
    assert a.admit(1, 1, 0.0)[1] == "requests"
    assert b.admit(1, 1, 0.0) == (0.0, "")
    mini = limiter.get("key-a", "gpt-4o-mini", 0.0)
    assert mini.requests.capacity == 1
    assert limiter.token_cost == "max" and not limiter.refund
    assert Limiter("anthropic", spec).token_cost == "sum"
    assert Limiter("anthropic", spec).refund


def test_unlimited_providers_have_no_buckets():
    limiter = Limiter("gemini", ProviderSpec())
    assert not limiter.enabled
    assert limiter.get("k", "gemini-2.5-flash", 0.0) is None
