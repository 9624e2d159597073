"""`--metrics-port`: Prometheus text scraped mid-run and parsed with prometheus_client."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from evtui.engine.dispatcher import Engine, MemorySink
from evtui.sim.scenario import parse_scenario
from evtui.sim.server import SimServer
from tests.engine_support import config, frames

parser = pytest.importorskip("prometheus_client.parser")

CFG = """
providers:
  openai:
    protocol: openai
    base_url: "@openai"
    keys: [{key: "${EVTUI_T_KEY1}"}, {key: "${EVTUI_T_KEY2}"}]
  anthropic: {protocol: anthropic, base_url: "@anthropic", keys: [{key: "${EVTUI_T_KEY3}"}]}
targets:
  - {id: openai/gpt-4o, weight: 1, fallbacks: [anthropic/claude-haiku-4-5]}
  - {id: anthropic/claude-haiku-4-5, weight: 1}
prompts: {default: {text: Describe the frame.}}
engine: {max_in_flight: 16}
"""


def test_metrics_endpoint_serves_parseable_counters_during_a_run() -> None:
    scen = parse_scenario(
        "providers:\n  anthropic: {latency_ms: 30}\n  openai: {latency_ms: 30}\n"
        "faults:\n  - {provider: openai, kind: server_error, rate: 0.2}\n"
    )

    async def go() -> tuple[str, str, Engine]:
        async with SimServer(scen, describer=False) as sim:
            eng = Engine(config(CFG, sim), commit=MemorySink(), metrics_port=0, seed=3)
            task = asyncio.create_task(eng.run(frames(300), total=300))
            while eng.metrics is None or eng.done < 100:
                await asyncio.sleep(0.01)
            url = f"http://127.0.0.1:{eng.metrics.port}/metrics"
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
                mid = await r.text()
            await task
            from evtui.engine.metrics import render

            return mid, render(eng), eng

    mid, end, eng = asyncio.run(go())
    fams = {f.name: f for f in parser.text_string_to_metric_families(end)}
    reqs: dict[tuple[str, str], float] = {}
    for s in fams["evtui_requests"].samples:
        k = (s.labels["target"], s.labels["outcome"])
        reqs[k] = reqs.get(k, 0) + s.value
    assert sum(v for (t, o), v in reqs.items() if o == "ok") == 300
    assert reqs[("openai/gpt-4o", "server_error")] > 0
    frames_total = {s.labels["state"]: s.value for s in fams["evtui_frames"].samples}
    assert frames_total["done"] == 300
    hist = [s for s in fams["evtui_request_latency_seconds"].samples if s.name.endswith("_count")]
    assert sum(s.value for s in hist) == 300
    fb = {s.labels["target"]: s.value for s in fams["evtui_fallbacks"].samples}
    assert fb["openai/gpt-4o"] == eng.by_id["openai/gpt-4o"].fallbacks_out > 0
    # Mid-run scrape parsed too, and no key leaks into labels.
    assert list(parser.text_string_to_metric_families(mid))
    assert "key#1" in end and "xxxxxxxx" not in end
