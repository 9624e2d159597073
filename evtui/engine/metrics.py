"""Prometheus metrics (`--metrics-port`): the engine's counters in the text exposition format.

Rendered on the engine's own loop straight from its counters (no client library on the
hot path, nothing copied per request): requests by target, key and outcome class,
retries, fallbacks, cooldowns, in flight, latency histograms, tokens, cost, cache hits
and misses, frames done/failed/skipped. Served on 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from evtui.engine.telemetry import LATENCY_BUCKETS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kv: str) -> str:
    return "{" + ",".join(f'{k}="{_esc(v)}"' for k, v in kv.items()) + "}"


def _num(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    return repr(float(v)) if isinstance(v, float) else str(v)


class _Out:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_: str) -> None:
        self.lines.append(f"# HELP {name} {help_}")
        self.lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, **labels: str) -> None:
        lab = _labels(**labels) if labels else ""
        self.lines.append(f"{name}{lab} {_num(value)}")


def render(engine: Any) -> str:
    """The exposition text for one engine, as of now."""
    o = _Out()
    targets = engine.targets
    lanes = [(t, ln) for t in targets for ln in t.lanes]
    now = engine._clock()

    o.family("evtui_requests_total", "counter", "Requests sent, by target, key and outcome.")
    for t, ln in lanes:
        c = ln.counters
        o.sample("evtui_requests_total", c.ok, target=t.id, key=ln.key.id, outcome="ok")
        for kind, n in sorted(c.by_kind.items()):
            o.sample("evtui_requests_total", n, target=t.id, key=ln.key.id, outcome=kind)

    o.family("evtui_retries_total", "counter", "Attempts beyond each request's first.")
    o.sample("evtui_retries_total", engine.retries)
    o.family("evtui_fallbacks_total", "counter", "Frames that left a target for its fallback.")
    for t in targets:
        o.sample("evtui_fallbacks_total", t.fallbacks_out, target=t.id)
    o.family("evtui_cooldowns_total", "counter", "Key cooldowns started by a 429.")
    for t, ln in lanes:
        o.sample(
            "evtui_cooldowns_total", ln.counters.count("rate_limited"), target=t.id, key=ln.key.id
        )
    o.family("evtui_cooldown_seconds", "gauge", "Seconds until a cooling key may send again.")
    for t, ln in lanes:
        o.sample(
            "evtui_cooldown_seconds", max(ln.cooldown_until - now, 0.0), target=t.id, key=ln.key.id
        )
    o.family("evtui_key_disabled", "gauge", "1 when a key was disabled (auth or quota).")
    for t, ln in lanes:
        o.sample("evtui_key_disabled", int(ln.key.disabled is not None), target=t.id, key=ln.key.id)
    o.family("evtui_in_flight", "gauge", "Requests on the wire, by target.")
    for t in targets:
        o.sample("evtui_in_flight", t.in_flight, target=t.id)
    o.family("evtui_breaker_open", "gauge", "1 while a target's circuit breaker is open.")
    for t in targets:
        o.sample("evtui_breaker_open", int(t.breaker.state == "open"), target=t.id)

    o.family("evtui_request_latency_seconds", "histogram", "Latency of answered requests.")
    for t in targets:
        c = t.counters
        acc = 0
        for bound, n in zip(LATENCY_BUCKETS, c.hist, strict=True):
            acc += n
            o.sample("evtui_request_latency_seconds_bucket", acc, target=t.id, le=_num(bound))
        o.sample("evtui_request_latency_seconds_sum", c.latency_sum, target=t.id)
        o.sample("evtui_request_latency_seconds_count", acc, target=t.id)

    o.family("evtui_tokens_total", "counter", "Tokens billed, by target and direction.")
    for t in targets:
        o.sample("evtui_tokens_total", t.counters.input_tokens, target=t.id, direction="input")
        o.sample("evtui_tokens_total", t.counters.output_tokens, target=t.id, direction="output")
    o.family("evtui_cost_usd_total", "counter", "Spend in USD, by target.")
    for t in targets:
        o.sample("evtui_cost_usd_total", t.counters.spend_usd, target=t.id)

    o.family("evtui_cache_lookups_total", "counter", "Semantic cache lookups, by result.")
    o.sample("evtui_cache_lookups_total", engine.cache_hits, result="hit")
    o.sample("evtui_cache_lookups_total", engine.cache_lookups - engine.cache_hits, result="miss")

    o.family("evtui_frames_total", "counter", "Frame × slot results made durable, by state.")
    for state, n in (("done", engine.done), ("failed", engine.failed), ("skipped", engine.skipped)):
        o.sample("evtui_frames_total", n, state=state)
    o.family("evtui_frames_pending", "gauge", "Frame × slot pairs not finished yet.")
    total = engine.slots_total
    finished = engine.done + engine.failed + engine.skipped
    o.sample("evtui_frames_pending", max(total - finished, 0) if total is not None else 0)
    o.family("evtui_spend_usd", "gauge", "Spend so far and the budget (0: none).")
    o.sample("evtui_spend_usd", engine.spend, kind="spent")
    o.sample("evtui_spend_usd", engine.cfg.budget_usd or 0.0, kind="budget")
    return "\n".join(o.lines) + "\n"


class MetricsServer:
    """`/metrics` on a port, on the engine's loop: `await MetricsServer(engine, port).start()`."""

    def __init__(self, engine: Any, port: int, host: str = "127.0.0.1") -> None:
        self.engine = engine
        self.port = port
        self.host = host
        self._runner: web.AppRunner | None = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = render(self.engine).encode()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})

    async def start(self) -> int:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets: Iterable[Any] = getattr(site._server, "sockets", None) or ()
        for s in sockets:
            self.port = s.getsockname()[1]
            break
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
