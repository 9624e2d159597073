"""Projection on hand-made scenarios: the binding limit, what raising it buys, cheaper mixes."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest

from evtui.config import parse_config
from evtui.pilot.analysis import project_full
from evtui.pilot.measure import LaneLimits, measure_targets, rate_tokens
from evtui.pilot.project import IN_FLIGHT, Projector, TargetModel

# A: dear and token-capped (30,000 tpm / 300 tokens = 100 frames/min)
# B: cheap and request-capped (60 rpm = 60 frames/min)
# C: middling, no provider limit; 8 in flight at 1 s = 480 frames/min
A = TargetModel("a/m", 0.010, 1.0, 1.0, 300.0, (LaneLimits("key#1", None, 30_000, "headers"),), 64)
B = TargetModel("b/m", 0.002, 1.0, 1.0, 100.0, (LaneLimits("key#1", 60, None, "config"),), 64)
C = TargetModel("c/m", 0.005, 1.0, 1.0, 100.0, (LaneLimits("key#1", None, None, ""),), 8)
CONFIGURED = {"a/m": 0.5, "b/m": 0.25, "c/m": 0.25}


def projector(max_in_flight: int = 10_000, frames: int = 12_000) -> Projector:
    return Projector([A, B, C], frames, max_in_flight)


def test_capacities_follow_each_kind_of_limit() -> None:
    assert A.capacity() == pytest.approx(100.0)
    assert B.capacity() == pytest.approx(60.0)
    assert C.capacity() == pytest.approx(480.0)
    two_keys = TargetModel(
        "a/m", 0.01, 1.0, 1.0, 300.0,
        (LaneLimits("key#1", None, 30_000, ""), LaneLimits("key#2", 50, 30_000, "")), 64,
    )  # fmt: skip
    assert two_keys.capacity() == pytest.approx(100.0 + 50.0)  # key#2 is bound by its rpm
    retrying = TargetModel("b/m", 0.002, 1.0, 1.5, 100.0, B.lanes, 64)
    assert retrying.capacity() == pytest.approx(40.0)  # 1.5 requests per caption


def test_configured_plan_cost_duration_and_binder() -> None:
    plan = projector().plan(CONFIGURED)
    # A at 100/min with half the frames → 200 frames/min; B would allow 240, C 1920.
    assert plan.rate_per_min == pytest.approx(200.0)
    assert plan.binder == "a/m"
    assert plan.minutes == pytest.approx(60.0)
    assert plan.cost_usd == pytest.approx(12_000 * (0.5 * 0.010 + 0.25 * 0.002 + 0.25 * 0.005))


def test_the_binding_limit_is_named_and_raising_it_is_priced() -> None:
    b = projector().binding(CONFIGURED)
    assert b is not None
    assert b.limit.kind == "tpm" and b.limit.target == "a/m" and b.limit.key == "key#1"
    assert b.limit.describe() == "a/m tokens per minute on key#1: 30,000 (from headers)"
    assert b.target_cap_per_min == pytest.approx(100.0)
    assert b.needed_per_min == pytest.approx(0.5 * 240.0)  # to keep up with B
    # ×2: A allows 400/min, so B binds at 240/min: 50 min instead of 60.
    assert b.raised.minutes == pytest.approx(50.0)
    assert b.next_binder == "b/m"
    assert b.saving == pytest.approx(1 / 6)


def test_cheapest_mix_within_the_configured_duration_beats_the_configured_one() -> None:
    p = projector()
    configured = p.plan(CONFIGURED)
    best = p.cheapest(configured.minutes)
    assert best is not None
    assert best.minutes <= configured.minutes * (1 + 1e-9)
    # At 200 frames/min B may take at most 30 %, then C (cheaper than A) takes the rest.
    assert best.shares == pytest.approx({"b/m": 0.3, "c/m": 0.7})
    assert best.cost_usd == pytest.approx(12_000 * (0.3 * 0.002 + 0.7 * 0.005))
    assert best.cost_usd < configured.cost_usd * 0.7


def _grid_min_cost(p: Projector, rate: float, step: float = 0.01) -> float:
    """Brute force over share triples on a grid: the cheapest that sustains `rate`."""
    best = math.inf
    n = round(1 / step)
    for i, j in itertools.product(range(n + 1), repeat=2):
        if i + j > n:
            continue
        shares = {"a/m": i * step, "b/m": j * step, "c/m": (n - i - j) * step}
        r, _ = p.rate(shares)
        if r >= rate * (1 - 1e-9):
            best = min(best, p.plan(shares).cost_usd)
    return best


@pytest.mark.parametrize("max_in_flight", [10_000, 3, 2])
def test_cheapest_mix_is_the_lp_optimum_even_with_the_in_flight_bound(max_in_flight: int) -> None:
    # Make latency matter: C is slow, so in-flight room pushes work away from it.
    slow_c = TargetModel("c/m", 0.005, 4.0, 1.0, 100.0, C.lanes, 64)
    p = Projector([A, B, slow_c], 12_000, max_in_flight)
    rate = 100.0
    shares = p.min_cost_shares(rate)
    assert shares is not None
    plan = p.plan(shares)
    assert plan.rate_per_min >= rate * (1 - 1e-6)  # feasible, in-flight bound included
    load = sum(s * p.by_id[t].latency_s for t, s in shares.items())
    assert rate * load / 60 <= max_in_flight * (1 + 1e-6)
    assert plan.cost_usd <= _grid_min_cost(p, rate) + 1e-6


def test_impossible_durations_have_no_mix() -> None:
    p = projector()
    fastest = p.max_rate()
    assert fastest == pytest.approx(100 + 60 + 480)
    assert p.cheapest(12_000 / fastest * 0.9) is None
    assert p.cheapest(12_000 / fastest * 1.01) is not None


def test_fastest_within_the_configured_cost_is_faster() -> None:
    p = projector()
    configured = p.plan(CONFIGURED)
    fast = p.fastest(configured.cost_usd)
    assert fast is not None
    assert fast.cost_usd <= configured.cost_usd * (1 + 1e-9)
    assert fast.minutes < configured.minutes
    assert p.fastest(0.001) is None  # not even the cheapest target fits


def test_compare_mode_is_bound_by_the_slowest_target() -> None:
    plan = projector().plan({"a/m": 1.0, "b/m": 1.0, "c/m": 1.0})
    assert plan.rate_per_min == pytest.approx(60.0) and plan.binder == "b/m"
    assert plan.cost_usd == pytest.approx(12_000 * 0.017)


def test_without_provider_limits_the_engine_in_flight_cap_binds() -> None:
    free = [TargetModel("c/m", 0.005, 0.5, 1.0, 100.0, C.lanes, 4096)]
    p = Projector(free, 1000, max_in_flight=10)
    b = p.binding({"c/m": 1.0})
    assert b is not None and b.plan.binder == IN_FLIGHT
    assert b.plan.rate_per_min == pytest.approx(10 * 60 / 0.5)
    assert b.limit.kind == "in_flight"
    assert b.raised.rate_per_min == pytest.approx(2 * b.plan.rate_per_min)


def test_rate_tokens_follow_each_providers_accounting() -> None:
    assert rate_tokens("openai", 200, 40, 300) == 300  # max(input, max_tokens)
    assert rate_tokens("openai", 900, 40, 300) == 900
    assert rate_tokens("anthropic", 200, 40, 300) == 240  # input + output
    assert rate_tokens("gemini", 200, 40, 300) == 200  # input only


CONFIG = """
providers:
  openai: {protocol: openai, base_url: "http://127.0.0.1:1/v1"}
  gemini: {protocol: gemini, base_url: "http://127.0.0.1:1"}
targets:
  - {id: openai/gpt-4o, weight: 2}
  - {id: gemini/gemini-2.5-flash, weight: 1}
prompts: {default: {text: Describe the frame.}}
"""


def _result(frame: int, target: str, inp: int, out: int, cost: float) -> dict[str, Any]:
    return {
        "frame": frame, "slot": target, "target": target, "state": "done", "caption": "x",
        "input_tokens": inp, "output_tokens": out, "cost_usd": cost, "cache_hit": False,
        "latency_s": 1.0,
    }  # fmt: skip


def _trace(frame: int, target: str, outcomes: list[str]) -> dict[str, Any]:
    atts = [
        {"target": target, "outcome": o, "latency_s": 1.0 if o == "ok" else 0.1}
        | ({"retry_after_s": 2.0} if o == "rate_limited" else {})
        for o in outcomes
    ]
    return {"frame": frame, "slot": target, "attempts": atts}


def test_measure_and_project_from_hand_made_pilot_results() -> None:
    cfg = parse_config(CONFIG)
    results, traces = [], []
    for f in range(10):
        results.append(_result(f, "openai/gpt-4o", 260, 40, 0.001))
        results.append(_result(f, "gemini/gemini-2.5-flash", 260, 40, 0.0002))
        traces.append(_trace(f, "openai/gpt-4o", ["rate_limited", "ok"] if f < 2 else ["ok"]))
        traces.append(_trace(f, "gemini/gemini-2.5-flash", ["ok"]))
    limits = {
        "openai/gpt-4o": (LaneLimits("key#1", 500, 30_000, "headers"),),
        "gemini/gemini-2.5-flash": (LaneLimits("key#1", None, None, ""),),
    }
    ms = measure_targets(cfg, results, traces, limits)
    oa = ms[0]
    assert (oa.done, oa.attempts, oa.rate_limited) == (10, 12, 2)
    assert oa.rate_limited_rate == pytest.approx(2 / 12) and oa.retry_after_max_s == 2.0
    assert oa.requests_per_frame == 1.0  # 429s are not counted against the request budget
    assert oa.rate_tokens_per_frame == 300  # openai counts max(input, max_tokens=300)
    assert oa.cost_per_1k == pytest.approx(1.0) and oa.share == pytest.approx(2 / 3)
    proj = project_full(cfg, ms, windows=100_000, frames=90_000)
    # openai: 30,000 / 300 = 100 frames/min at 2/3 of the frames → 150 frames/min.
    assert proj.configured is not None and proj.configured.rate_per_min == pytest.approx(150.0)
    assert proj.binding is not None
    assert proj.binding.limit.describe().startswith("openai/gpt-4o tokens per minute on key#1")
    assert any("gemini/gemini-2.5-flash: no rate limit known" in n for n in proj.notes)
    assert proj.cheapest is not None and proj.saving is not None and proj.saving > 0.5
