"""The engine against the simulator in the scenarios of issue 4, on a scaled clock.

Each scenario runs in about a second of real time: the simulator plays `time_scale`
scenario seconds per real second and the engine divides its own policy durations
(breaker, backoff, default cooldown) by the same factor, while delays the providers
announce (Retry-After, resets) already arrive in real seconds. Every test checks that
each request the simulator saw appears exactly once in the route records (no hidden
retries) and bounds the requests a failure may cost.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

from tests.engine_support import KEYS, Run, run

TWO = """
providers:
  openai:
    protocol: openai
    base_url: "@openai"
    keys: [{key: "${EVTUI_T_KEY1}"}, {key: "${EVTUI_T_KEY2}"}]
  anthropic:
    protocol: anthropic
    base_url: "@anthropic"
    keys: [{key: "${EVTUI_T_KEY3}"}]
targets:
  - {id: openai/gpt-4o, weight: 1, fallbacks: [anthropic/claude-haiku-4-5]}
  - {id: anthropic/claude-haiku-4-5, weight: 1}
prompts: {default: {text: Describe the frame.}}
retry: {max_attempts_per_frame_target: 4, backoff_base_s: 0.5, backoff_cap_s: 5}
engine: {max_in_flight: 64, breaker_open_s: 5, breaker_open_cap_s: 20}
"""


def _accounted(r: Run) -> None:
    """Every request the simulator answered (or dropped) is one attempt in the records."""
    assert sum(r.sim_requests.values()) == len(r.attempts)
    assert r.result.state == "done"
    assert len(r.sink.results) == len({x["frame"] for x in r.sink.results})


def test_tpm_cap_is_learnt_from_headers_and_run_at_the_cap_without_429s() -> None:
    # The user story: one provider, a tokens-per-minute cap nobody wrote in the config.
    cfg = """
providers:
  openai: {protocol: openai, base_url: "@openai", keys: [{key: "${EVTUI_T_KEY1}"}]}
targets: [{id: openai/gpt-4o}]
prompts: {default: {text: Describe the frame.}}
max_output_tokens: 300
"""
    tpm, scale, n = 30_000, 60, 400
    scen = f"time_scale: {scale}\nproviders:\n  openai: {{tpm: {tpm}, latency_ms: 20}}\n"
    loop = asyncio.new_event_loop()
    try:
        t0 = loop.time()
        r = loop.run_until_complete(run(cfg, scen, n, time_scale=scale))
        elapsed = loop.time() - t0
    finally:
        loop.close()
    _accounted(r)
    assert r.result.done == n
    assert r.sim_requests[("openai", 429)] == 0  # the first answer's headers told the cap
    lane = r.engine.snapshot.targets[0].lanes[0]
    assert lane.pace.source == "headers"
    # Learnt per-minute cap (in this run's time) within 5 % of the truth.
    assert abs(lane.pace.tpm_limit - tpm * scale) / (tpm * scale) < 0.05
    # OpenAI meters max(input, max_output) per request; the bucket starts full.
    charged = sum(max(x["input_tokens"], 300) for x in r.sink.results)
    utilisation = (charged - tpm) / (tpm * scale / 60 * elapsed)
    assert utilisation >= 0.9


def test_429_storm_shifts_traffic_then_it_returns_after_the_cooldown() -> None:
    scen = """
time_scale: 10
providers:
  anthropic: {latency_ms: 200}
faults:
  - {provider: openai, kind: rate_limited, rate: 1.0, from: 0s, to: 20s, retry_after: 5s}
"""
    r = asyncio.run(run(TWO, scen, 1000, time_scale=10))
    _accounted(r)
    assert r.result.done == 1000 and r.result.failed == 0
    storm = r.outcomes("openai")["rate_limited"]
    # One probe per key per 0.5 s cooldown over a 2 s storm (+ the first answer each).
    assert 2 <= storm <= 2 * (2 / 0.5 + 2)
    # Every 429 cooled its key for exactly the provider's delay.
    waits = {a["retry_after_s"] for a in r.attempts if a["outcome"] == "rate_limited"}
    assert waits == {0.5}
    served = [x["target"] for x in r.sink.results]
    assert served.count("anthropic/claude-haiku-4-5") > 500  # traffic moved over
    assert "openai/gpt-4o" in served[-200:]  # and came back once the storm passed
    # A frame that met a 429 fell back without spending more than its budget.
    for tr in r.sink.traces:
        assert len(tr["attempts"]) <= 4


def test_outage_of_one_provider_every_frame_completes_through_fallback() -> None:
    scen = """
time_scale: 60
faults:
  - {provider: openai, kind: outage, from: 0s, duration: 60s}
providers:
  anthropic: {latency_ms: 100}
  openai: {latency_ms: 100}
"""
    r = asyncio.run(run(TWO, scen, 1500, time_scale=60))
    _accounted(r)
    assert r.result.done == 1500 and r.result.failed == 0
    failed_openai = r.outcomes("openai")["connection_failed"]
    assert failed_openai >= 5  # the breaker saw the outage …
    # … and kept it cheap: the requests before it opened, then doubling probes.
    assert failed_openai <= 5 + 2 + 10
    events = r.engine.events.drain()
    assert any(e.kind == "breaker_open" and "openai/gpt-4o" in e.message for e in events)
    for tr in r.sink.traces:
        outcomes = [a["outcome"] for a in tr["attempts"]]
        if "connection_failed" in outcomes:
            assert tr["final"]["target"] == "anthropic/claude-haiku-4-5"
            assert tr["fallbacks"]
    assert r.outcomes("openai")["ok"] > 0  # back after the outage


def test_quota_exhausted_key_is_disabled_loudly_and_the_other_carries_on() -> None:
    cfg = """
providers:
  openai:
    protocol: openai
    base_url: "@openai"
    keys: [{key: "${EVTUI_T_KEY1}"}, {key: "${EVTUI_T_KEY2}"}]
targets: [{id: openai/gpt-4o}]
prompts: {default: {text: Describe the frame.}}
"""
    dead = KEYS["EVTUI_T_KEY1"]
    scen = f"faults:\n  - {{provider: openai, kind: quota_exhausted, key: {dead}}}\n"
    r = asyncio.run(run(cfg, scen, 300))
    _accounted(r)
    assert r.result.done == 300 and r.result.failed == 0
    on_key1 = [a for a in r.attempts if "key#1" in a["key"]]
    # Limits unknown: the first request on a key goes alone, so exactly one was wasted.
    assert [a["outcome"] for a in on_key1] == ["quota_exhausted"]
    assert on_key1[0]["counted"] is False
    events = [e for e in r.engine.events.drain() if e.kind == "key_disabled"]
    assert len(events) == 1 and "key#1" in events[0].message
    assert dead not in events[0].message
    lanes = r.engine.snapshot.targets[0].lanes
    assert lanes[0].disabled and "quota" in lanes[0].disabled
    assert lanes[1].disabled is None and lanes[1].ok == 300


def test_all_providers_down_pauses_without_spinning_then_resumes() -> None:
    scen = """
time_scale: 30
faults:
  - {provider: "*", kind: outage, from: 0s, duration: 30s}
"""
    r = asyncio.run(run(TWO, scen, 200, time_scale=30))
    _accounted(r)
    assert r.result.done == 200 and r.result.failed == 0
    lost = r.outcomes()["connection_failed"]
    # Per target: the failures that opened the breaker and a handful of doubling probes
    # over a second of real time — not one request per waiting frame per retry.
    assert lost <= 2 * (5 + 6)
    # No frame spent its budget on the outage: those failures were the breaker's.
    for tr in r.sink.traces:
        counted = [a for a in tr["attempts"] if a.get("counted", True) and a["outcome"] != "ok"]
        assert len(counted) < 4


def test_529_overload_burst_on_anthropic() -> None:
    cfg = TWO.replace(
        "{id: openai/gpt-4o, weight: 1, fallbacks: [anthropic/claude-haiku-4-5]}",
        "{id: openai/gpt-4o, weight: 0}",
    ).replace(
        "{id: anthropic/claude-haiku-4-5, weight: 1}",
        "{id: anthropic/claude-haiku-4-5, weight: 1, fallbacks: [openai/gpt-4o]}",
    )
    scen = """
time_scale: 10
providers:
  anthropic: {latency_ms: 20}
faults:
  - {provider: anthropic, kind: overloaded, rate: 0.5, from: 0s, to: 5s}
"""
    r = asyncio.run(run(cfg, scen, 400, time_scale=10))
    _accounted(r)
    assert r.result.done == 400 and r.result.failed == 0
    overloads = r.outcomes("anthropic")["overloaded"]
    assert overloads == r.sim_requests[("anthropic", 529)] > 0
    for tr in r.sink.traces:
        kinds = [a["outcome"] for a in tr["attempts"]]
        if kinds[0] == "overloaded":
            # Fell back to OpenAI at once (no wait on a busy provider).
            assert tr["attempts"][1]["target"] == "openai/gpt-4o"
    served = Counter(x["target"] for x in r.sink.results)
    assert served["anthropic/claude-haiku-4-5"] > 0 and served["openai/gpt-4o"] > 0


def test_429s_on_a_lone_key_without_fallback_wait_out_the_delay_and_finish() -> None:
    cfg = """
providers:
  openai: {protocol: openai, base_url: "@openai", keys: [{key: "${EVTUI_T_KEY1}"}]}
targets: [{id: openai/gpt-4o}]
prompts: {default: {text: Describe the frame.}}
retry: {max_attempts_per_frame_target: 20}
"""
    scen = "faults:\n  - {provider: openai, kind: rate_limited, rate: 0.3, retry_after: 0.05s}\n"
    r = asyncio.run(run(cfg, scen, 60))
    _accounted(r)
    assert r.result.done == 60 and r.result.failed == 0
    limited = [a for a in r.attempts if a["outcome"] == "rate_limited"]
    assert limited and all(a["retry_after_s"] == 0.05 for a in limited)


def test_drain_while_every_provider_is_down_returns_and_leaves_frames_pending() -> None:
    scen = "faults:\n  - {provider: '*', kind: outage}\n"

    async def main() -> tuple[object, object]:
        from evtui.engine.dispatcher import Engine, MemorySink
        from evtui.sim.scenario import parse_scenario
        from evtui.sim.server import SimServer
        from tests.engine_support import config, frames

        async with SimServer(parse_scenario(scen), describer=False) as sim:
            sink = MemorySink()
            eng = Engine(config(TWO, sim), commit=sink)
            task = asyncio.create_task(eng.run(frames(50), total=50))
            while sum(sim.stats.requests.values()) < 5:
                await asyncio.sleep(0.01)
            eng.drain()
            result = await asyncio.wait_for(task, 10)
            return result, sink

    result, sink = asyncio.run(main())
    assert result.state == "done"
    assert result.done == 0 and result.failed == 0  # nothing failed: all still pending
    assert not sink.results


def test_every_change_of_target_is_recorded_as_a_fallback() -> None:
    scen = """
time_scale: 10
faults:
  - {provider: openai, kind: server_error, rate: 0.5}
  - {provider: openai, kind: rate_limited, rate: 0.2, retry_after: 1s}
"""
    r = asyncio.run(run(TWO, scen, 300, time_scale=10))
    _accounted(r)
    hops = 0
    for tr in r.sink.traces:
        targets = [a["target"] for a in tr["attempts"]]
        changes = [(a, b) for a, b in itertools.pairwise(targets) if a != b]
        assert [f.split(" (")[0] for f in tr["fallbacks"]] == [f"{a} → {b}" for a, b in changes]
        hops += len(changes)
    assert hops > 0
    snap = r.engine.snapshot
    assert sum(t.fallbacks_out for t in snap.targets) == hops
