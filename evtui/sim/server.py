"""The simulator's HTTP server: one aiohttp app on loopback serving all four providers.

Routes are the real paths — OpenAI `POST /v1/chat/completions`, Anthropic
`POST /v1/messages`, Gemini `POST /v1beta/models/{model}:generateContent` (and `/v1/…`),
OpenAI-compatible `POST /compat/v1/chat/completions` — so the official SDKs work with
only their base URL changed (`SimServer.base_url`).

A request goes: outage? → auth → headers → size → body → images → fault draw →
rate-limit buckets → latency → caption. Scenario time is real time since start × time_scale;
fault windows and buckets run on it, and every delay told to a client (retry-after,
resets) is converted back to real seconds.
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import os
import random
import signal
import socket
import struct
import sys
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
from aiohttp import web

from evtui.providers.secrets import mask_secrets
from evtui.sim.describe import degenerate_caption
from evtui.sim.images import ImageInfo, ImageProblem, inspect_b64, standard_b64
from evtui.sim.limits import KeyLimits, Limiter
from evtui.sim.parsing import Parsed
from evtui.sim.protocol import Protocol
from evtui.sim.protocols import PROTOCOLS
from evtui.sim.scenario import (
    PROVIDERS,
    FaultSpec,
    Scenario,
    ScenarioError,
    load_scenario,
)
from evtui.sim.tokens import text_tokens
from evtui.sim.wire import SIM_HEADER, Reply

_SERVER_STATUSES = (500, 502, 503)
_DEFAULT_RETRY_AFTER_S = 1.0
_DEFAULT_HANG_S = 300.0
_IMAGE_CACHE_BYTES = 64 * 1024 * 1024
_MAX_BODY = 101 * 1024 * 1024  # the largest provider limit (Gemini 100 MB) and a margin


class SimStats:
    """Counters for tests and the CLI: requests by provider and status, faults, tokens.

    Status 0 counts connections dropped without an answer (outage resets, hangs).
    """

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self.faults: Counter[tuple[str, str]] = Counter()
        self.limited: Counter[tuple[str, str]] = Counter()  # bucket trips: (provider, bucket)
        self.input_tokens: Counter[str] = Counter()
        self.output_tokens: Counter[str] = Counter()

    def count(self, provider: str | None = None, status: int | None = None) -> int:
        """Requests answered, optionally for one provider and/or one status."""
        return sum(
            n
            for (p, s), n in self.requests.items()
            if (provider is None or p == provider) and (status is None or s == status)
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": {f"{p} {s}": n for (p, s), n in sorted(self.requests.items())},
            "faults": {f"{p} {k}": n for (p, k), n in sorted(self.faults.items())},
            "limited": {f"{p} {k}": n for (p, k), n in sorted(self.limited.items())},
            "input_tokens": dict(self.input_tokens),
            "output_tokens": dict(self.output_tokens),
        }


class _Fault:
    __slots__ = ("end", "key", "model", "rate", "spec", "start")

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self.start = spec.start
        self.end = spec.end
        self.rate = spec.rate
        self.model = spec.model
        self.key = spec.key


class _Lane:
    """One simulated provider at run time: its protocol, keys, buckets, faults, latency."""

    __slots__ = ("faults", "keys", "latency", "limiter", "name", "outages", "proto", "rng")

    def __init__(self, name: str, scenario: Scenario) -> None:
        spec = scenario.provider(name)
        self.name = name
        self.proto: Protocol = PROTOCOLS[name]()
        self.keys = frozenset(spec.keys) if spec.keys else None
        self.limiter = Limiter(name, spec)
        self.rng = random.Random(f"{scenario.seed}/{name}/faults")
        lat_rng = random.Random(f"{scenario.seed}/{name}/latency")
        self.latency = spec.latency_ms.sampler(lat_rng) if spec.latency_ms else None
        self.faults: list[_Fault] = []
        self.outages: list[_Fault] = []

    def set_faults(self, faults: Iterable[FaultSpec]) -> None:
        mine = [_Fault(f) for f in faults if f.provider in (self.name, "*")]
        self.faults = [f for f in mine if f.spec.kind != "outage"]
        self.outages = [f for f in mine if f.spec.kind == "outage"]

    def draw(
        self, faults: list[_Fault], now: float, model: str | None, key: str | None = None
    ) -> FaultSpec | None:
        """The first active fault that fires for this request (seeded draws)."""
        for f in faults:
            if (
                f.start <= now < f.end
                and (f.model is None or f.model == model)
                and (f.key is None or f.key == key)
                and (f.rate >= 1.0 or self.rng.random() < f.rate)
            ):
                return f.spec
        return None


class _ImageCache:
    """Images already checked, by exact payload, without hashing 60 KB per lookup.

    Buckets are keyed by the length and three short samples of the base64 text; a hit is
    confirmed by comparing the whole payload (a memcmp, ~30x cheaper than hashing it).
    """

    def __init__(self, max_bytes: int) -> None:
        self._max = max_bytes
        self._size = 0
        self._buckets: dict[tuple[int, bytes, bytes, bytes], list[tuple[bytes, ImageInfo]]] = {}

    @staticmethod
    def _key(src: bytes, start: int, end: int) -> tuple[int, bytes, bytes, bytes]:
        mid = (start + end) // 2
        head, tail = min(start + 96, end), max(end - 48, start)
        return end - start, src[start:head], src[mid : min(mid + 48, end)], src[tail:end]

    def get(self, src: bytes, start: int, end: int) -> ImageInfo | None:
        """The info of the payload src[start:end], compared in place (no 60 KB copy)."""
        bucket = self._buckets.get(self._key(src, start, end))
        if bucket is not None:
            for stored, info in bucket:
                if src.startswith(stored, start):  # same length: the key says so
                    return info
        return None

    def put(self, payload: bytes, info: ImageInfo) -> None:
        while self._size + len(payload) > self._max and self._buckets:
            old_key = next(iter(self._buckets))
            self._size -= sum(len(p) for p, _ in self._buckets.pop(old_key))
        key = self._key(payload, 0, len(payload))
        self._buckets.setdefault(key, []).append((payload, info))
        self._size += len(payload)

    def __len__(self) -> int:
        return sum(len(b) for b in self._buckets.values())


def _load_describer() -> ModuleType | None:
    """evtui.sim.describe when it is there and complete; else captions are fixed text."""
    try:
        from evtui.sim import describe  # optional: written separately
    except ImportError:
        return None
    if callable(getattr(describe, "describe_image", None)) and callable(
        getattr(describe, "caption", None)
    ):
        return describe
    return None


class SimServer:
    """Simulated providers on loopback: `async with SimServer(scenario) as sim: …`.

    `clock` (monotonic seconds) lets tests move time by hand; `describer` is True for
    evtui.sim.describe when it is available, False for fixed captions, or any object with
    `describe_image(data, media_type)` and `caption(desc, style)`.
    """

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
        describer: Any = True,
    ) -> None:
        self.scenario = scenario or Scenario()
        self.host = host
        self._port = port
        self._clock = clock
        self._scale = self.scenario.time_scale
        self._t0 = clock()
        self.stats = SimStats()
        self._lanes = {name: _Lane(name, self.scenario) for name in PROVIDERS}
        self.set_faults(self.scenario.faults)
        self._images = _ImageCache(_IMAGE_CACHE_BYTES)
        self._describer = _load_describer() if describer is True else (describer or None)
        self._rid_prefix = os.urandom(10).hex()
        self._seq = 0
        self._stopping = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._secrets = self.scenario.secrets()

    # ------------------------------------------------------------------ lifecycle

    def app(self) -> web.Application:
        app = web.Application(client_max_size=_MAX_BODY)
        for path, name in (
            ("/v1/chat/completions", "openai"),
            ("/v1/messages", "anthropic"),
            ("/compat/v1/chat/completions", "compat"),
        ):
            app.router.add_post(path, self._route(name))
        gemini = self._route("gemini")
        app.router.add_post("/v1beta/models/{target}", gemini)
        app.router.add_post("/v1/models/{target}", gemini)
        app.router.add_get("/healthz", self._health)
        return app

    async def start(self) -> None:
        self._stopping = asyncio.Event()
        self._runner = web.AppRunner(
            self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._port))
        except OSError:
            sock.close()
            await self._runner.cleanup()
            raise
        self._port = sock.getsockname()[1]
        site = web.SockSite(self._runner, sock, backlog=1024)
        await site.start()
        self._t0 = self._clock()

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> SimServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ------------------------------------------------------------------ public helpers

    @property
    def port(self) -> int:
        return self._port

    def base_url(self, provider: str) -> str:
        """What to give each SDK or adapter as its base URL."""
        root = f"http://{self.host}:{self._port}"
        return {
            "openai": f"{root}/v1",
            "anthropic": root,
            "gemini": root,
            "compat": f"{root}/compat/v1",
        }[provider]

    def elapsed(self) -> float:
        """Scenario seconds since start (what fault windows are measured in)."""
        return (self._clock() - self._t0) * self._scale

    def restart_clock(self) -> None:
        """Fault windows count from now, as if the server had just started."""
        self._t0 = self._clock()

    def set_faults(self, faults: Iterable[FaultSpec]) -> None:
        """Replace the injected faults (tests set them in code)."""
        faults = list(faults)
        for lane in self._lanes.values():
            lane.set_faults(faults)

    # ------------------------------------------------------------------ serving

    async def _health(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", headers={SIM_HEADER: "true"})

    def _route(self, name: str) -> Callable[[web.Request], Any]:
        lane = self._lanes[name]

        async def handle(request: web.Request) -> web.StreamResponse:
            return await self._handle(request, lane)

        return handle

    async def _handle(self, request: web.Request, lane: _Lane) -> web.StreamResponse:
        proto = lane.proto
        now = (self._clock() - self._t0) * self._scale
        self._seq += 1
        rid = f"req_{self._rid_prefix}{self._seq:012x}"
        if lane.outages:
            outage = lane.draw(lane.outages, now, None)
            if outage is not None:
                return await self._outage(request, lane, outage, rid)
        lim: KeyLimits | None = None
        try:
            key = proto.credentials(request)
            if key is None:
                if proto.requires_key or lane.keys is not None:
                    raise proto.auth_missing()
                key = ""
            elif lane.keys is not None and key not in lane.keys:
                raise proto.auth_invalid(key)
            if proto.has_preflight:
                proto.preflight(request.headers)
            size = request.content_length
            if size is not None and size > proto.max_body:
                raise proto.too_large(size)
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                raise proto.too_large(_MAX_BODY) from None
            if len(body) > proto.max_body:
                raise proto.too_large(len(body))
            path_model = self._path_model(request) if lane.name == "gemini" else None
            parsed = proto.parse(body, path_model, request.headers)
            if lane.limiter.enabled:
                lim = lane.limiter.get(key, parsed.model, now)
            input_tokens, image_tokens = self._measure(proto, parsed)
            fault = lane.draw(lane.faults, now, parsed.model, key) if lane.faults else None
            if fault is not None:
                self.stats.faults[lane.name, fault.kind] += 1
                if fault.kind == "rate_limited":
                    if lim is not None:
                        lim.refill(now)
                    wait = (fault.retry_after or _DEFAULT_RETRY_AFTER_S) / self._scale
                    raise proto.rate_limited("", lim, wait, parsed.model, True)
                if fault.kind == "quota_exhausted":
                    raise proto.quota_exhausted(parsed.model)
            if lim is not None:
                wait, which = lim.admit(input_tokens, parsed.charge_output, now)
                if wait > 0.0:
                    self.stats.limited[lane.name, which] += 1
                    raise proto.rate_limited(which, lim, wait / self._scale, parsed.model, False)
            if fault is not None:
                return await self._fault(request, lane, fault, parsed, input_tokens, rid, lim)
            if lane.latency is not None:
                await asyncio.sleep(lane.latency())
            text = self._caption(parsed, proto.style)
            out, out_tokens = proto.success(parsed, text, input_tokens, image_tokens, rid)
            if lim is not None:
                lim.settle(parsed.charge_output, out_tokens)
            self.stats.input_tokens[lane.name] += input_tokens
            self.stats.output_tokens[lane.name] += out_tokens
            return self._respond(lane, 200, out, rid, lim)
        except Reply as reply:
            return self._respond(
                lane,
                reply.status,
                proto.error_body(reply, rid),
                rid,
                lim,
                reply.headers,
                reply.content_type,
            )

    def _respond(
        self,
        lane: _Lane,
        status: int,
        body: bytes,
        rid: str,
        lim: KeyLimits | None,
        extra: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> web.Response:
        proto = lane.proto
        headers = proto.static_headers.copy()
        if proto.request_id_header is not None:
            headers[proto.request_id_header] = rid
        if lim is not None:
            proto.limit_headers(headers, lim, self._scale)
        if extra:
            headers.update(extra)
        if content_type is not None and content_type != proto.content_type:
            headers["Content-Type"] = content_type
        self.stats.requests[lane.name, status] += 1
        return web.Response(body=body, status=status, headers=headers)

    @staticmethod
    def _path_model(request: web.Request) -> str:
        target = request.match_info.get("target", "")
        model, _, method = target.partition(":")
        if method != "generateContent" or not model:
            raise Reply(
                404,
                {
                    "error": {
                        "code": 404,
                        "message": f"models/{target} is not found for API version, or the method "
                        "is not supported: the evtui simulator serves generateContent only.",
                        "status": "NOT_FOUND",
                    }
                },
                label="not_found",
            )
        return model

    # ------------------------------------------------------------------ images and captions

    def _measure(self, proto: Protocol, parsed: Parsed) -> tuple[int, int]:
        """(input tokens, image tokens); checks every image, raising the provider's 400."""
        image_tokens = 0
        for i, ref in enumerate(parsed.images):
            info = self._images.get(ref.src, ref.start, ref.end)
            if info is None:
                try:
                    info = self._learn(ref.payload)
                except ImageProblem as problem:
                    raise proto.image_error(ref, problem) from None
            if info.loose and not proto.loose_base64:
                raise proto.image_error(ref, ImageProblem("base64", "invalid base64 characters"))
            ref.info = info
            proto.check_image(ref, info, parsed, i)
            image_tokens += proto.image_tokens(parsed, ref, info)
        return text_tokens(parsed.text_chars, parsed.messages) + image_tokens, image_tokens

    def _learn(self, payload: bytes) -> ImageInfo:
        """Inspect (and describe) an image seen for the first time; cache it by payload."""
        data = payload
        if b"\\" in data:  # cut from the raw body with its JSON escapes ("\/")
            try:
                data = orjson.loads(b'"' + data + b'"').encode("ascii")
            except (orjson.JSONDecodeError, UnicodeEncodeError):
                raise ImageProblem("base64", "invalid base64 characters") from None
        info = inspect_b64(data)
        if self._describer is not None:
            try:
                raw = binascii.a2b_base64(standard_b64(data) if info.loose else data)
                info.desc = self._describer.describe_image(raw, info.media_type)
            except Exception as exc:  # the describer's reasons are the image's problems
                raise ImageProblem("corrupt", f"the image could not be decoded ({exc})") from exc
        self._images.put(payload, info)
        return info

    def _caption(self, parsed: Parsed, style: str) -> str:
        if not parsed.images:
            return "No image was attached, so there is nothing to describe."
        info = parsed.images[0].info
        assert info is not None
        text = info.captions.get(style)
        if text is None:
            if self._describer is not None and info.desc is not None:
                text = self._describer.caption(info.desc, style)
            else:
                # Distinct images get distinct text, so fixed captions are not boilerplate;
                # tagged from the image's cache key (length and samples), not all its bytes.
                ref = parsed.images[0]
                size, *samples = _ImageCache._key(ref.src, ref.start, ref.end)
                tag = zlib.crc32(b"".join(samples), size) & 0xFFFFFF
                text = (
                    f"A simulated caption for a {info.width}x{info.height} "
                    f"{info.media_type.split('/')[1].upper()} frame (image {tag:06x})."
                )
            info.captions[style] = text
        return text

    # ------------------------------------------------------------------ faults

    async def _fault(
        self,
        request: web.Request,
        lane: _Lane,
        fault: FaultSpec,
        parsed: Parsed,
        input_tokens: int,
        rid: str,
        lim: KeyLimits | None,
    ) -> web.StreamResponse:
        proto = lane.proto
        kind = fault.kind
        if kind == "overloaded":
            retry = fault.retry_after / self._scale if fault.retry_after else None
            raise proto.overloaded(retry)
        if kind == "server_error":
            status = fault.status or lane.rng.choice(_SERVER_STATUSES)
            raise proto.server_error(status)
        if kind == "hang":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), fault.hang or _DEFAULT_HANG_S)
            self.stats.requests[lane.name, 0] += 1
            _reset(request)
            return web.Response(status=204)
        if lane.latency is not None:
            await asyncio.sleep(lane.latency())
        if kind == "degenerate":
            text = degenerate_caption(fault.caption or "refusal", proto.style)
            out, out_tokens = proto.success(parsed, text, input_tokens, 0, rid)
            if lim is not None:
                lim.settle(parsed.charge_output, out_tokens)
            return self._respond(lane, 200, out, rid, lim)
        text = self._caption(parsed, proto.style)
        body, _ = proto.success(parsed, text, input_tokens, 0, rid)
        if kind == "malformed_json":
            return self._respond(lane, 200, body[: len(body) // 2], rid, lim)
        # truncated_body: promise the whole body, send half, hang up.
        resp = self._respond(lane, 200, body, rid, lim)
        stream = web.StreamResponse(status=200, headers=resp.headers)
        stream.content_length = len(body)
        await stream.prepare(request)
        await stream.write(body[: len(body) // 2])
        if request.transport is not None:
            request.transport.close()
        return stream

    async def _outage(
        self, request: web.Request, lane: _Lane, fault: FaultSpec, rid: str
    ) -> web.StreamResponse:
        self.stats.faults[lane.name, "outage"] += 1
        if fault.mode == "503":
            reply = lane.proto.server_error(503)
            return self._respond(
                lane, 503, lane.proto.error_body(reply, rid), rid, None, reply.headers
            )
        self.stats.requests[lane.name, 0] += 1
        _reset(request)
        return web.Response(status=204)


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset (status 0 in the stats)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def run_sim(
    port: int,
    scenario_path: str | Path | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    *,
    host: str = "127.0.0.1",
) -> int:
    """Serve the simulated providers until SIGINT/SIGTERM (`evtui sim`); 0 on a clean stop.

    Returns 2 for an unusable scenario file and 1 when the port cannot be bound.
    """
    try:
        scenario = load_scenario(scenario_path) if scenario_path else Scenario()
    except ScenarioError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{scenario_path}: cannot read scenario: {exc.strerror}", file=sys.stderr)
        return 2
    scenario = scenario.with_limits(rpm, tpm)

    async def serve() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            sim = SimServer(scenario, host=host, port=port)
            await sim.start()
        except OSError as exc:
            print(f"evtui sim: cannot listen on {host}:{port}: {exc.strerror}", file=sys.stderr)
            return 1
        try:
            print(f"evtui sim: simulated providers on http://{host}:{sim.port}", flush=True)
            for name in PROVIDERS:
                print(f"  {name:<9} {sim.base_url(name)}", flush=True)
            limits = _describe_limits(scenario)
            print(mask_secrets(f"  limits    {limits}", scenario.secrets()), flush=True)
            await stop.wait()
        finally:
            await sim.stop()
        return 0

    return asyncio.run(serve())


def _describe_limits(scenario: Scenario) -> str:
    parts = []
    for name in PROVIDERS:
        spec = scenario.provider(name)
        caps = [f"{k}={v}" for k in ("rpm", "tpm", "itpm", "otpm") if (v := getattr(spec, k))]
        if caps:
            parts.append(f"{name} {' '.join(caps)}")
    return "; ".join(parts) or "none (unlimited)"
