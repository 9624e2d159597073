"""Shared set-up for the app's tests: jobs against the simulator, fixed engine sources.

Not a test module itself (it holds no tests); the tui test files import from it.
Jobs render the bundled sample in 500 ms windows (24 frames) at 128x96 with a thread
pool, so a whole job runs in well under a second against the simulator.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from evtui.config import parse_config
from evtui.engine.job import Job
from evtui.engine.telemetry import Event, EventQueue, Snapshot
from evtui.sim.server import SimServer
from tests.engine_support import KEYS, write_config

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "sample.evt3.raw"
SIZE = (120, 40)

PROVIDERS = """
providers:
  openai: {protocol: openai, base_url: "@openai",
           keys: [{key: "${EVTUI_T_KEY1}"}, {key: "${EVTUI_T_KEY2}"}]}
  anthropic: {protocol: anthropic, base_url: "@anthropic", keys: [{key: "${EVTUI_T_KEY3}"}]}
prompts: {default: {text: Describe the frame.}}
render: {window: 500ms, width: 128, height: 96}
"""
COMPARE = (
    PROVIDERS
    + """
targets:
  - {id: openai/gpt-4o}
  - {id: anthropic/claude-haiku-4-5}
mode: compare
"""
)
ROUTE = (
    PROVIDERS
    + """
targets:
  - {id: openai/gpt-4o, weight: 3, fallbacks: [anthropic/claude-haiku-4-5]}
  - {id: anthropic/claude-haiku-4-5, weight: 1}
mode: route
"""
)
# One request at a time: the order of requests, hence which key and which fault each
# meets, is the same on every run (snapshot tests depend on it).
SEQUENTIAL = "engine: {max_in_flight: 1, initial_concurrency: 1}\n"

# Every provider answers in a fixed time; captions follow the frame (describer on).
SCENARIO = """
seed: 7
providers:
  openai: {latency_ms: 20}
  anthropic: {latency_ms: 20}
  gemini: {latency_ms: 20}
"""
# openai's first key has no quota left: disabled on its first request; key#2 carries on.
QUOTA_KEY1 = (
    SCENARIO
    + f"""
faults:
  - {{provider: openai, kind: quota_exhausted, key: "{KEYS["EVTUI_T_KEY1"]}"}}
"""
)
# openai answers 429 with a minute's Retry-After: its keys cool down and route mode
# falls back to anthropic.
COOLDOWN = (
    SCENARIO
    + """
faults:
  - {provider: openai, kind: rate_limited, retry_after: 60s}
"""
)
# Every key of every provider is out of quota.
ALL_DOWN = (
    SCENARIO
    + """
faults:
  - {provider: "*", kind: quota_exhausted}
"""
)


def open_job(
    tmp: Path, sim: SimServer, config: str, name: str = "run", **kw: Any
) -> tuple[Job, ThreadPoolExecutor]:
    """A Job on `sim` in tmp/name, with its own semantic cache in tmp/name-cache (so no
    earlier run's answers come back as cache hits)."""
    config += f"cache: {{dir: {str(tmp / (name + '-cache'))!r}}}\n"
    path = write_config(tmp / f"{name}.yaml", config, sim)
    cfg = parse_config(path.read_text(), str(path), env=KEYS)
    ex = ThreadPoolExecutor(1)
    job = Job.open(cfg, SAMPLE, tmp / name, executor=ex, seed=1, **kw)
    return job, ex


def wait(pred: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


async def await_until(pred: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def preview_shows(app: Any, k: int, method: str | None = None) -> None:
    """Wait until the preview worker's render of frame k is on screen."""
    main = app.main
    await await_until(lambda: main.shown == (k, method or main.method))


def run_to_idle(job: Job) -> Snapshot:
    """Run the job's engine until every frame is done; returns the last snapshot."""
    th = job.start_thread()
    wait(lambda: th.snapshot.state == "idle")
    time.sleep(0.15)  # one more publish so the snapshot holds the final counters
    snap = th.snapshot
    th.events.drain()
    th.drain()
    th.join(30)
    return snap


class FixedSource:
    """An engine stand-in with a fixed snapshot: pictures that never change, and events
    the test feeds. Records the commands it is sent."""

    def __init__(self, snapshot: Snapshot, *, alive: bool = True) -> None:
        self.snapshot = snapshot
        self.events = EventQueue()
        self.alive = alive
        self.result: Any = None
        self.error: BaseException | None = None
        self.commands: list[tuple[Any, ...]] = []

    def feed(self, kind: str, data: dict[str, Any], message: str = "") -> None:
        self.events.put(Event(kind, message or kind, 0.0, data))

    def pause(self) -> None:
        self.commands.append(("pause",))

    def resume(self) -> None:
        self.commands.append(("resume",))

    def drain(self) -> None:
        self.commands.append(("drain",))
        self.alive = False

    def stop(self) -> None:
        self.commands.append(("stop",))
        self.alive = False

    def set_weight(self, target: str, weight: float) -> None:
        self.commands.append(("set_weight", target, weight))

    def join(self, timeout: float | None = None) -> Any:
        return self.result


def steady(snap: Snapshot, latency_s: float = 0.02) -> Snapshot:
    """The snapshot with its wall-clock measurements replaced by fixed values.

    Counts, tokens, spend, breakers, limits and disabled keys stay as measured (the
    sequential run makes them repeatable); rates, latencies and countdowns are timings
    and would differ in every run.
    """

    def lane(ln: Any) -> Any:
        lat = latency_s if ln.latency_p50_s is not None else None
        return replace(
            ln,
            rps=0.5 if ln.requests else 0.0,
            latency_p50_s=lat,
            latency_p95_s=lat,
            cooldown_left_s=42.0 if ln.cooldown_left_s > 0 else 0.0,
        )

    series = tuple([0] * 40 + [1, 2, 3, 5, 8, 5, 3, 2, 4, 6, 8, 9, 7, 5, 3, 2, 1, 1, 0, 0])
    targets = tuple(
        replace(
            t,
            rps=1.5 if t.requests else 0.0,
            rps_series=series if t.requests else (0,) * 60,
            latency_p50_s=latency_s if t.latency_p50_s is not None else None,
            latency_p95_s=latency_s if t.latency_p95_s is not None else None,
            breaker_reopens_in_s=7.0 if t.breaker_reopens_in_s > 0 else 0.0,
            concurrency_cap=8,
            lanes=tuple(lane(ln) for ln in t.lanes),
        )
        for t in snap.targets
    )
    return replace(snap, at=0.0, rate=12.5, eta_s=0.0, targets=targets)


def steady_timings(records: list[dict[str, Any]], latency_s: float = 0.02) -> None:
    """Fixed latencies and waits in result/route dicts (in place), for pictures."""
    for r in records:
        if "latency_s" in r:
            r["latency_s"] = latency_s
        attempts = r.get("attempts")
        if isinstance(attempts, list):
            for a in attempts:
                a["latency_s"] = latency_s
                a["waited_s"] = 0.0


def pilot_run(app: Any, script: Callable[[Any], Any], size: tuple[int, int] = SIZE) -> None:
    """Run `script(pilot)` against the app headless (tests are sync; no asyncio plugin)."""

    async def main() -> None:
        async with app.run_test(size=size) as pilot:
            await pilot.pause()
            await script(pilot)

    asyncio.run(main())


def reviews_of(job: Job) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "at"} for r in job.store.reviews()]
