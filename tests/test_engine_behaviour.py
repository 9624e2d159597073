"""The engine's contract with its clients, against the simulator on loopback."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import numpy as np
import orjson
import pytest

from evtui.engine.dispatcher import Engine, MemorySink
from evtui.engine.records import FrameWork
from evtui.engine.thread import EngineThread
from evtui.frames.encode import EncodeSpec, encode_frame
from evtui.providers.types import ImagePart
from evtui.sim.server import SimServer
from tests.engine_support import KEYS, config, frames, run

ONE = """
providers:
  openai: {protocol: openai, base_url: "@openai", keys: [{key: "${EVTUI_T_KEY1}"}]}
  anthropic: {protocol: anthropic, base_url: "@anthropic", keys: [{key: "${EVTUI_T_KEY3}"}]}
targets:
  - {id: anthropic/claude-haiku-4-5, weight: 3, fallbacks: [openai/gpt-4o]}
  - {id: openai/gpt-4o, weight: 1}
prompts: {default: {text: Describe the frame.}}
"""


def test_weights_give_exact_shares_and_every_record_names_the_pick() -> None:
    r = asyncio.run(run(ONE, "{}", 400))
    served = Counter(x["target"] for x in r.sink.results)
    assert served == {"anthropic/claude-haiku-4-5": 300, "openai/gpt-4o": 100}
    for tr in r.sink.traces:
        assert tr["pick"]["target"] == tr["final"]["target"]
        assert tr["pick"]["weights"] == {"anthropic/claude-haiku-4-5": 3.0, "openai/gpt-4o": 1.0}
        assert tr["slot"] == "route" and tr["cache"] == "off"
    res = r.sink.results[0]
    assert res["state"] == "done" and res["caption"] and res["cost_usd"] > 0
    assert res["attempts"] == 1 and res["prompt_version"]
    snap = r.engine.snapshot
    assert snap.done == 400 and snap.state == "done"
    assert snap.target("openai/gpt-4o").effective_share == 0.25


def test_compare_mode_sends_every_frame_to_every_target() -> None:
    cfg = ONE + "mode: compare\n"
    r = asyncio.run(run(cfg, "{}", 50))
    keys = Counter((x["frame"], x["slot"]) for x in r.sink.results)
    assert len(keys) == 100 and set(keys.values()) == {1}
    assert {x["slot"] for x in r.sink.results} == {"anthropic/claude-haiku-4-5", "openai/gpt-4o"}
    # Each column is answered by its own target when nothing fails.
    assert all(x["slot"] == x["target"] for x in r.sink.results)


def test_bad_request_fails_the_frame_at_once_without_fallback() -> None:
    broken = ImagePart(b"not an image at all", "image/jpeg", 64, 48)

    async def go() -> tuple[MemorySink, SimServer]:
        async with SimServer(describer=True) as sim:
            cfg = config(ONE, sim)
            sink = MemorySink()
            eng = Engine(cfg, commit=sink, seed=0)
            await eng.run([FrameWork(0, broken)], total=1)
            return sink, sim

    sink, sim = asyncio.run(go())
    (res,) = sink.results
    assert res["state"] == "failed" and "image" in res["reason"].lower()
    (tr,) = sink.traces
    assert [a["outcome"] for a in tr["attempts"]] == ["bad_request"]
    assert tr["fallbacks"] == []
    assert sim.stats.count() == 1


@pytest.mark.parametrize("with_bytes", [True, False], ids=["bytes", "text-only"])
def test_image_too_large_is_reencoded_smaller_once(with_bytes: bool) -> None:
    wide = np.random.default_rng(0).integers(0, 255, (12, 8200, 3), dtype=np.uint8)
    enc = encode_frame(wide, EncodeSpec())
    # The pipeline sends the engine only the base64 text: re-encoding decodes it.
    data = enc.data if with_bytes else b""
    img = ImagePart(data, enc.media_type, enc.width, enc.height, enc.b64)
    assert img.raw() == enc.data
    cfg = ONE.replace("weight: 1}", "weight: 0}")  # anthropic only: its 8000 px limit

    async def go() -> MemorySink:
        async with SimServer(describer=False) as sim:
            sink = MemorySink()
            await Engine(config(cfg, sim), commit=sink).run([FrameWork(0, img)], total=1)
            return sink

    sink = asyncio.run(go())
    (tr,) = sink.traces
    assert [a["outcome"] for a in tr["attempts"]] == ["image_too_large", "ok"]
    assert tr["attempts"][0]["note"] == "re-encoded with half the pixels"
    assert tr["attempts"][1]["bytes"] < tr["attempts"][0]["bytes"]
    assert sink.results[0]["state"] == "done"


def test_budget_stops_dispatch_before_the_projection_exceeds_it() -> None:
    cfg = ONE + "budget_usd: 0.005\n"
    r = asyncio.run(run(cfg, "{}", 400))
    assert r.result.state == "budget"
    assert 0 < r.result.done < 400
    assert r.result.spend_usd <= 0.005
    assert any(e.kind == "budget" for e in r.engine.events.drain())


def test_engine_thread_pause_resume_and_weights_from_another_thread() -> None:
    async def serve(ready: list[SimServer], stop: asyncio.Event) -> None:
        async with SimServer(describer=False) as sim:
            ready.append(sim)
            await stop.wait()

    import threading

    loop = asyncio.new_event_loop()
    ready: list[SimServer] = []
    stop = asyncio.Event()
    t = threading.Thread(target=loop.run_until_complete, args=(serve(ready, stop),))
    t.start()
    try:
        while not ready:
            time.sleep(0.01)
        sim = ready[0]
        slow = ONE.replace("prompts:", "engine: {max_in_flight: 4}\nprompts:")
        sink = MemorySink()
        eng = Engine(config(slow, sim), commit=sink, snapshot_interval_s=0.02)
        th = EngineThread(eng, frames(3000), total=3000).start()
        th.set_weight("openai/gpt-4o", 0.0)
        th.pause()
        deadline = time.monotonic() + 10
        while th.snapshot.state != "paused" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert th.snapshot.state == "paused"
        time.sleep(0.1)
        held = th.snapshot.targets
        requests = sum(x.requests for x in held)
        time.sleep(0.2)
        assert sum(x.requests for x in th.snapshot.targets) == requests  # nothing sent
        th.resume()
        while th.snapshot.done < 300 and time.monotonic() < deadline:
            time.sleep(0.01)
        th.drain()
        result = th.join(30)
        assert result is not None and result.state == "done"
        assert result.done == len(sink.results) < 3000  # drained: no new frames taken
        late = [x for x in sink.results[-50:]]
        assert all(x["target"] == "anthropic/claude-haiku-4-5" for x in late), Counter(
            x["target"] for x in sink.results
        )
        kinds = [e.kind for e in th.events.drain()]
        assert "paused" in kinds and "resumed" in kinds and kinds[-1] == "done"
    finally:
        loop.call_soon_threadsafe(stop.set)
        t.join(10)
        loop.close()


def test_no_key_appears_in_results_traces_events_or_snapshots() -> None:
    scen = (
        "faults:\n"
        f"  - {{provider: openai, kind: quota_exhausted, key: {KEYS['EVTUI_T_KEY1']}}}\n"
        "  - {provider: anthropic, kind: server_error, rate: 0.3}\n"
    )
    r = asyncio.run(run(ONE, scen, 100))
    blob = orjson.dumps([r.sink.results, r.sink.traces]).decode()
    blob += repr(r.engine.snapshot) + repr(r.engine.events.drain())
    for secret in KEYS.values():
        assert secret not in blob
    assert "key#1" in blob
