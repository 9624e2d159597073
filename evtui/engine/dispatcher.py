"""The engine: frames in, captions and route records out, at the rate the limits allow.

One asyncio task per frame × slot walks the route: a first pick (weighted in route mode),
then the target's fallback chain, every attempt granted by the router against health,
headroom and concurrency. What happens after a failure is decided by its class alone:

* 429: that lane cools for exactly the provider's delay; the frame tries another key of
  the same target, else falls back. Quota exhausted / auth rejected: the key is disabled
  (loudly) and the frame moves on — not counted against its budget.
* overload, 5xx, timeout, connection failure, unreadable answer: the target's breaker
  counts it and the frame falls back; back to a target already tried only after an
  exponential, fully jittered backoff. Failures the breaker absorbs (the one that opens
  it, any while it is open or probing) are charged to the provider, not the frame, so an
  outage pauses frames instead of failing them.
* image too large: re-encoded with half the pixels, once; any other bad request fails
  the frame at once (resending it cannot help). A refusal may fall back to a target not
  yet tried.

Every other attempt spends the frame's one retry budget (`retry.max_attempts_per_frame_
target`), which falling back never resets. Results are acknowledged (counted done,
announced) only after the commit function returns, which the job store makes durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections.abc import AsyncIterable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from evtui.config import Config
from evtui.engine.backoff import backoff_s
from evtui.engine.guard import REROUTABLE, CaptionGuard, GuardSettings
from evtui.engine.health import BreakerPolicy
from evtui.engine.pacing import Concurrency, LanePacer
from evtui.engine.records import ROUTE_SLOT, Attempt, FrameWork, Route
from evtui.engine.router import (
    DRAINED,
    NO_ROUTE,
    Grant,
    KeyState,
    Lane,
    Router,
    TargetSpec,
    TargetState,
    Want,
)
from evtui.engine.telemetry import (
    EMPTY_SNAPSHOT,
    Event,
    EventQueue,
    LaneView,
    Snapshot,
    TargetView,
    outcomes,
)
from evtui.providers import make_adapter
from evtui.providers.errors import ProviderError
from evtui.providers.prices import PriceTable, UnknownModel
from evtui.providers.ratelimits import wait_hint_s
from evtui.providers.secrets import mask_key, mask_secrets
from evtui.providers.types import CaptionRequest, Completion, ImagePart

CommitFn = Callable[[list[dict[str, Any]], list[dict[str, Any]]], None]

_TRANSIENT = frozenset(
    {"overloaded", "server_error", "timeout", "connection_failed", "malformed_response"}
)
_KEY_FATAL = frozenset({"quota_exhausted", "auth_rejected"})
_UNCHARGED = frozenset({"rate_limited", "connection_failed"})


@dataclass(frozen=True, slots=True)
class RunResult:
    state: str  # done | budget | stopped | failed
    done: int
    failed: int
    skipped: int
    spend_usd: float
    message: str = ""


class MemorySink:
    """A commit function that keeps everything in memory (tests, benchmarks, pilots)."""

    def __init__(self) -> None:
        self.results: list[dict[str, Any]] = []
        self.traces: list[dict[str, Any]] = []

    def __call__(self, results: list[dict[str, Any]], traces: list[dict[str, Any]]) -> None:
        self.results.extend(results)
        self.traces.extend(traces)


def _reencode_smaller(image: ImagePart) -> ImagePart:
    """Half the pixels, same format: the one retry an ImageTooLarge earns."""
    import cv2
    import numpy as np

    from evtui.frames.encode import EncodeSpec, encode_frame

    raw = image.raw()
    bgr = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError("cannot decode the image that was sent")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    fmt = image.media_type.split("/")[-1].replace("jpg", "jpeg")
    spec = EncodeSpec(
        formats=(fmt,),
        max_pixels=max(image.width * image.height // 2, 1),
        max_bytes=max(len(raw) // 2, 1),
    )
    enc = encode_frame(rgb, spec, pixel_hash="")
    return ImagePart(enc.data, enc.media_type, enc.width, enc.height, enc.b64)


class Engine:
    """Runs one job's requests. Build with `Engine(cfg, commit=...)`, then `await run(frames)`.

    Thread-safety: everything runs on the event loop that awaits `run`; other threads
    use `EngineThread`, which forwards commands with `call_soon_threadsafe`.
    """

    def __init__(
        self,
        cfg: Config,
        *,
        commit: CommitFn | None = None,
        client: Any = None,
        time_scale: float = 1.0,
        seed: int | None = None,
        prices: PriceTable | None = None,
        reencode: Callable[[ImagePart], ImagePart] = _reencode_smaller,
        snapshot_interval_s: float = 0.1,
        commit_interval_s: float = 0.05,
        metrics_port: int | None = None,
        cache: Any = None,
        cache_recording: str = "",
        cache_variant: str = "",
    ) -> None:
        self.cfg = cfg
        self.commit = commit if commit is not None else MemorySink()
        self._client = client
        self._owns_client = client is None
        self.time_scale = time_scale
        self.rng = random.Random(seed)
        self.reencode = reencode
        self.snapshot_interval_s = snapshot_interval_s
        self.commit_interval_s = commit_interval_s
        self.prices = prices or cfg.price_table()
        self._secrets = cfg.secrets()
        self.events = EventQueue()
        self.snapshot: Snapshot = EMPTY_SNAPSHOT
        self.state = "starting"
        self.message = ""
        self._clock = time.monotonic
        self.guard = CaptionGuard(GuardSettings(**cfg.guard.model_dump()))
        self._build_targets()
        self.router = Router(self.targets, clock=self._clock, rng=self.rng)
        self.done = self.failed = self.skipped = 0
        self.spend = 0.0
        self.reserved = 0.0
        self.cache_hits = self.cache_lookups = 0
        self.retries = 0
        self.metrics_port = metrics_port
        self.cache = cache  # a SemanticCache, or None when the cache is off
        self.cache_recording = cache_recording
        self.cache_variant = cache_variant
        self.metrics: Any = None
        self.frames_total: int | None = None
        self.slots_total: int | None = None
        self._results: list[dict[str, Any]] = []
        self._traces: list[dict[str, Any]] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._draining = False
        self._stopping = False
        self._commit_error: BaseException | None = None
        self._started = 0.0

    # -- construction --------------------------------------------------------------------

    def _build_targets(self) -> None:
        cfg = self.cfg
        e = cfg.engine
        scale = self.time_scale
        policy = BreakerPolicy(
            failures_to_open=e.breaker_failures,
            open_s=e.breaker_open_s / scale,
            open_cap_s=e.breaker_open_cap_s / scale,
        )
        adapters = {}
        keys: dict[str, list[KeyState]] = {}
        for name, prov in cfg.providers.items():
            adapters[name] = make_adapter(
                prov.protocol, base_url=prov.base_url, name=name, prices=self.prices, **prov.options
            )
            ks = []
            for i, k in enumerate(prov.keys, 1):
                secret = k.key.get_secret_value()
                label = f"key#{i}" + (f"({k.name})" if k.name else "")
                ks.append(KeyState(f"{name} {label} {mask_key(secret)}", secret))
            keys[name] = ks or [KeyState(f"{name} nokey", "")]
        now = self._clock()
        self.targets: list[TargetState] = []
        for t in cfg.targets:
            prov = cfg.providers[t.provider]
            prompt = cfg.prompts[t.prompt]
            try:
                price = self.prices.price(t.model)
            except (UnknownModel, KeyError):
                price = None
            spec = TargetSpec(
                id=t.id,
                provider=t.provider,
                model=t.model,
                weight=t.weight,
                prompt=prompt.text,
                system=prompt.system,
                prompt_version=prompt.version,
                max_output_tokens=cfg.output_tokens(t),
                detail=t.detail,
                timeout_s=prov.timeout_s,
                price=price,
            )
            ts = TargetState(
                spec,
                adapters[t.provider],
                policy,
                Concurrency(
                    initial=min(e.initial_concurrency, e.max_concurrency_per_target),
                    ceiling=e.max_concurrency_per_target,
                    cooldown_s=1.0 / scale,
                ),
            )
            for ks, kcfg in zip(keys[t.provider], prov.keys or [None], strict=False):
                rpm = kcfg.rpm if kcfg is not None else None
                tpm = kcfg.tpm if kcfg is not None else None
                ts.lanes.append(Lane(ts, ks, LanePacer(rpm, tpm, now)))
            self.targets.append(ts)
        self.by_id = {t.id: t for t in self.targets}
        self.chains = {
            t.id: tuple(self.by_id[x] for x in cfg.fallback_chain(t.id)) for t in self.targets
        }
        self._route_order = tuple(self.targets)
        self._route_sig = (tuple(t.id for t in self.targets), True, 0)
        self.slots: tuple[str, ...] = (
            (ROUTE_SLOT,) if cfg.mode == "route" else tuple(t.id for t in self.targets)
        )

    @property
    def client(self) -> Any:
        if self._client is None:
            from evtui.providers.client import ProviderClient

            self._client = ProviderClient(limit=0, limit_per_host=0)
        return self._client

    # -- commands (call on the loop thread; EngineThread forwards) -----------------------

    def pause(self) -> None:
        if self.state == "running":
            self.state = "paused"
            self.router.set_paused(True)
            self._event("paused", "paused: no new requests; in-flight ones finish")

    def resume(self) -> None:
        if self.state == "paused":
            self.state = "running"
            self.router.set_paused(False)
            self._event("resumed", "resumed")

    def submit(self, fw: FrameWork, slots: Sequence[str] | None = None) -> None:
        """Caption `fw` again now (a rerun from the UI), outside the frame source.

        Reruns bypass the in-flight gate (they are few and user-driven) and are marked
        `rerun` in their results, so the job keeps the first answer and the new one.
        """
        if self._stopping:
            return
        if self.state == "idle":
            self.state = "running"
        for slot in slots or self.slots:
            task = asyncio.create_task(self._serve(fw, slot, 0.0, rerun=True))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        idle = getattr(self, "_idle", None)
        if idle is not None:
            idle.set()

    def drain(self) -> None:
        """Stop taking new frames and sending; requests in flight finish and are recorded,
        frames still waiting for a provider stay pending (a resume sends them)."""
        idle = getattr(self, "_idle", None)
        if idle is not None:
            idle.set()
        if not self._draining:
            self._draining = True
            if self.state in ("running", "paused", "idle"):
                self.router.set_paused(False)
                self.state = "draining"
            self.router.close()
            self._event("draining", "draining: finishing in-flight requests, sending no more")

    def stop(self) -> None:
        """Stop now: waiting frames are dropped (they stay pending for a resume)."""
        self._draining = self._stopping = True
        idle = getattr(self, "_idle", None)
        if idle is not None:
            idle.set()
        self.router.close()
        for task in list(self._tasks):
            task.cancel()

    def set_weight(self, target: str, weight: float) -> None:
        t = self.by_id[target]
        t.weight = max(float(weight), 0.0)
        self.router.pump()

    # -- running -------------------------------------------------------------------------

    async def run(
        self,
        frames: Iterable[FrameWork] | AsyncIterable[FrameWork],
        *,
        total: int | None = None,
        slots_total: int | None = None,
        slots_for: Callable[[FrameWork], Sequence[str]] | None = None,
        keep_alive: bool = False,
    ) -> RunResult:
        """Caption every frame in every slot it still needs; returns how it ended.

        `keep_alive` (interactive sessions): once the frames are done, keep serving
        `submit`ted reruns until `drain` or `stop`.
        """
        gc_before = _quiet_gc()
        try:
            return await self._run(frames, total, slots_total, slots_for, keep_alive)
        finally:
            _restore_gc(gc_before)

    async def _run(
        self,
        frames: Iterable[FrameWork] | AsyncIterable[FrameWork],
        total: int | None,
        slots_total: int | None,
        slots_for: Callable[[FrameWork], Sequence[str]] | None,
        keep_alive: bool,
    ) -> RunResult:
        self.frames_total = total
        if slots_total is None and total is not None:
            slots_total = total * len(self.slots)
        self.slots_total = slots_total
        self._started = self._clock()
        self.state = "running"
        self._gate = asyncio.Semaphore(self.cfg.engine.max_in_flight)
        self._commit_now = asyncio.Event()
        self._closing = False
        self._flushing = False
        if self.metrics_port is not None:
            from evtui.engine.metrics import MetricsServer

            self.metrics = MetricsServer(self, self.metrics_port)
            port = await self.metrics.start()
            self._event("metrics", f"metrics at http://127.0.0.1:{port}/metrics")
        committer = asyncio.create_task(self._commit_loop())
        ticker = asyncio.create_task(self._snapshot_loop())
        self._idle = asyncio.Event()
        try:
            await self._feed(frames, slots_for)
            while True:
                while self._tasks:
                    await asyncio.wait(list(self._tasks))
                if not keep_alive or self._draining:
                    break
                await self._settle()
                self._idle.clear()
                if self._draining or self._tasks:
                    continue  # a drain or a rerun arrived while settling
                if self.state == "running":
                    self.state = "idle"
                    self._publish()
                await self._idle.wait()  # a submit or a drain/stop wakes it
        except asyncio.CancelledError:
            self.stop()
            raise
        finally:
            ticker.cancel()
            # Never cancel a commit in progress: its results are durable but uncounted.
            self._closing = True
            self._kick_commit()
            await asyncio.shield(committer)
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
            if self.metrics is not None:
                await self.metrics.stop()
            if self._client is not None and self._owns_client:
                await self._client.close()
        if self._commit_error is not None:
            self.state = "failed"
            self.message = f"cannot write results: {self._commit_error}"
        elif self.state not in ("budget",):
            self.state = "stopped" if self._stopping else "done"
        self._publish()
        self._event(
            "done", f"{self.state}: {self.done} done, {self.failed} failed, {self.skipped} skipped"
        )
        return RunResult(self.state, self.done, self.failed, self.skipped, self.spend, self.message)

    async def _feed(
        self,
        frames: Iterable[FrameWork] | AsyncIterable[FrameWork],
        slots_for: Callable[[FrameWork], Sequence[str]] | None,
    ) -> None:
        gate = self._gate
        source = frames if isinstance(frames, AsyncIterable) else _as_async(frames)
        async for fw in source:
            slots = self.slots if slots_for is None else slots_for(fw)
            for slot in slots:
                if self._draining or self._commit_error is not None:
                    return
                await gate.acquire()
                est = self._within_budget(fw, slot)
                if self._draining or est is None:
                    gate.release()
                    return
                self.reserved += est
                task = asyncio.create_task(self._serve(fw, slot, est))
                self._tasks.add(task)
                task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._gate.release()  # only fed tasks hold the gate; reruns bypass it
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self._event("error", f"internal error: {type(exc).__name__}: {exc}")

    def _within_budget(self, fw: FrameWork, slot: str) -> float | None:
        """The frame × slot's worst-case cost when the budget allows it, else None.

        Reserved at dispatch and held until the frame finishes, so frames queued for a
        grant count too: the projection never assumes they are free.
        """
        budget = self.cfg.budget_usd
        if budget is None:
            return 0.0
        cands = self.targets if slot == ROUTE_SLOT else [self.by_id[slot]]
        est = max((t.cost_for(t.tokens_for(fw.image_for(t.id))) for t in cands), default=0.0)
        if self.spend + self.reserved + est <= budget:
            return est
        self.state = "budget"
        self.message = (
            f"budget ${budget:,.2f} reached: spent ${self.spend:,.4f}, "
            f"${self.reserved:,.4f} in flight, next frame up to ${est:,.4f}"
        )
        self._event("budget", self.message)
        self._draining = True
        return None

    # -- one frame × slot ----------------------------------------------------------------

    async def _serve(
        self, fw: FrameWork, slot: str, reserved: float = 0.0, *, rerun: bool = False
    ) -> None:
        route = Route(fw.index, slot)
        route.rerun = rerun
        try:
            await self._walk(fw, slot, route)
        except Exception as e:  # a bug must not lose the frame silently
            reason = f"internal error: {type(e).__name__}: {self._clean(str(e))}"
            self._event("error", f"frame {fw.index} {slot}: {reason}")
            self._finish(fw, slot, route, None, None, "failed", reason)
        finally:
            self.reserved -= reserved

    async def _walk(self, fw: FrameWork, slot: str, route: Route) -> None:
        if fw.skip_reason:
            self._finish(fw, slot, route, None, None, "skipped", fw.skip_reason)
            return
        overrides: dict[str, ImagePart] = {}

        def image(t: TargetState) -> ImagePart:
            img = overrides.get(t.id)
            return img if img is not None else fw.image_for(t.id)

        # A rerun asks for a fresh answer: never from the cache.
        cached = self.cache is not None and fw.pixel_hash and not route.rerun
        if cached and self._from_cache(fw, slot, route):
            return
        retry = self.cfg.retry
        if slot == ROUTE_SLOT:
            want = Want(self._route_order, image, weighted=True, sig=self._route_sig)
            chain: tuple[TargetState, ...] | None = None
        else:
            chain = self.chains[slot]
            want = Want(chain, image)
        used = 0
        rounds = 0
        tried: set[str] = set()
        last: ProviderError | None = None
        last_target: TargetState | None = chain[0] if chain else None
        clock = self._clock
        while True:
            t_wait = clock()
            grant = await self.router.acquire(want)
            if grant is DRAINED:
                return  # drained while waiting: unsent, so still pending for a resume
            if grant is None and chain is None:
                # Every weighted target is out of use: their fallbacks carry the frame.
                order = self._fallback_order()
                if order:
                    want = Want(order, image)
                    grant = await self.router.acquire(want)
                    if grant is DRAINED:
                        return
            if grant is NO_ROUTE or grant is None:
                paused = [x for x in (chain or self.targets) if x.paused]
                reason = (
                    f"{paused[0].id} paused: {paused[0].paused}"
                    if paused
                    else "no usable key left on any target of this frame's chain"
                )
                if last is not None:
                    reason += f" (last error: {self._clean(str(last))})"
                self._finish(fw, slot, route, last_target, None, "failed", reason)
                return
            lane = grant.lane
            t = lane.target
            last_target = t
            if route.attempts and route.attempts[-1].target != t.id:
                # Recorded where it happens: whatever moved the frame, this is the hop.
                prev = route.attempts[-1]
                why = prev.note if prev.outcome == "degenerate" else prev.outcome
                route.fallbacks.append(f"{prev.target} → {t.id} ({why})")
                self.by_id[prev.target].fallbacks_out += 1
            if chain is None:
                chain = self.chains[t.id]
                route.pick = {
                    "target": t.id,
                    "weights": {x.id: x.weight for x in self.targets},
                }
            elif not route.pick:
                route.pick = {"target": t.id}
            waited = clock() - t_wait
            outcome = await self._attempt(grant, image(t), route, waited)
            if isinstance(outcome, Completion):
                flags = self._guard(t, outcome, fw)
                rest = [x for x in chain if x.id not in tried and x is not t and x.alive()]
                if self.guard.s.reroute and REROUTABLE.intersection(flags) and rest:
                    att = route.attempts[-1]
                    att.outcome = "degenerate"
                    att.note = ", ".join(flags)
                    used += 1
                    tried.add(t.id)
                    want = Want(rest, image)
                    if used < retry.max_attempts_per_frame_target:
                        continue
                if self.cache is not None and fw.pixel_hash and not flags:
                    self._cache_put(fw, t, outcome)
                self._finish(fw, slot, route, t, outcome, "done", None, flags)
                return
            err = outcome
            last = err
            kind = err.kind
            att = route.attempts[-1]
            ids = [x.id for x in chain]
            i = ids.index(t.id) if t.id in ids else 0
            from_here = chain[i:] + chain[:i]
            after_here = chain[i + 1 :] + chain[: i + 1]
            if kind in _KEY_FATAL:
                att.counted = False
                want = Want(from_here, image)
            elif kind == "rate_limited":
                # The lane is cooling for the provider's delay: another key of this target
                # if one is free, else the next target, else this one once it has cooled.
                used += 1
                want = Want(from_here, image)
            elif kind in _TRANSIENT:
                if not att.counted:
                    want = Want(after_here, image)
                else:
                    used += 1
                    tried.add(t.id)
                    if tried.issuperset(ids):
                        tried.clear()
                        r = retry
                        delay = backoff_s(
                            rounds, r.backoff_base_s, r.backoff_cap_s, r.jitter, self.rng
                        )
                        rounds += 1
                        await asyncio.sleep(delay / self.time_scale)
                    want = Want(after_here, image)
            elif kind == "image_too_large" and t.id not in overrides:
                used += 1
                try:
                    overrides[t.id] = await asyncio.to_thread(self.reencode, image(t))
                except (ValueError, OSError) as e:
                    reason = f"image too large and could not be re-encoded smaller: {e}"
                    self._finish(fw, slot, route, t, None, "failed", reason)
                    return
                att.note = "re-encoded with half the pixels"
                want = Want(from_here, image)
            elif kind == "content_refused":
                used += 1
                tried.add(t.id)
                rest = [x for x in after_here if x.id not in tried]
                if not rest:
                    self._finish(fw, slot, route, t, None, "failed", self._clean(str(err)))
                    return
                want = Want(rest, image)
            else:  # bad request (or a second image-too-large): resending cannot help
                self._finish(fw, slot, route, t, None, "failed", self._clean(str(err)))
                return
            if used >= retry.max_attempts_per_frame_target:
                reason = f"gave up after {used} attempts: {self._clean(str(err))}"
                self._finish(fw, slot, route, t, None, "failed", reason)
                return

    async def _attempt(
        self, grant: Grant, image: ImagePart, route: Route, waited: float
    ) -> Completion | ProviderError:
        lane = grant.lane
        t = lane.target
        s = t.spec
        req = CaptionRequest(
            model=s.model,
            prompt=s.prompt,
            image=image,
            max_output_tokens=s.max_output_tokens,
            system=s.system,
            detail=s.detail,
        )
        key = lane.key.secret
        http = t.adapter.build(req, key)
        if route.attempts:
            self.retries += 1
        lc, tc = lane.counters, t.counters
        lc.requests += 1
        tc.requests += 1
        start = self._clock()
        try:
            result: Completion | ProviderError = await self.client.send_built(
                t.adapter, http, s.model, key, s.timeout_s
            )
        except ProviderError as e:
            result = e
        now = self._clock()
        latency = now - start
        if isinstance(result, Completion):
            lane.pacer.learn(result.rate_limits, grant.mark, now)
            lane.probing = False
            lc.ok += 1
            tc.ok += 1
            lc.observe(latency)
            tc.observe(latency)
            lc.ring.add(now)
            tc.ring.add(now)
            u = result.usage
            lc.input_tokens += u.input_tokens + u.cached_input_tokens
            tc.input_tokens += u.input_tokens + u.cached_input_tokens
            lc.output_tokens += u.output_tokens
            tc.output_tokens += u.output_tokens
            cost = result.cost_usd
            if cost is None:
                cost = self._price(s.model, u)
            lc.spend_usd += cost
            tc.spend_usd += cost
            self.spend += cost
            t.breaker.on_success(t.conc.cap)
            t.conc.on_success()
            route.attempts.append(
                Attempt(t.id, lane.key.id, "ok", 200, waited, latency, len(http.body))
            )
            self.router.release(grant)
            return result
        err = result
        kind = err.kind
        lc.by_kind[kind] = lc.by_kind.get(kind, 0) + 1
        tc.by_kind[kind] = tc.by_kind.get(kind, 0) + 1
        lc.ring.add(now)
        tc.ring.add(now)
        att = Attempt(
            t.id, lane.key.id, kind, err.status, waited, latency, len(http.body), err.retry_after
        )
        route.attempts.append(att)
        if err.status is not None:
            lane.pacer.seen = True  # an answer: its headers (if any) are learnt below
        if kind in _UNCHARGED:
            # Refused before it was metered (a 429 or no connection): it used no budget.
            lane.pacer.refund(grant.tokens, request=kind != "rate_limited")
        if err.rate_limits is not None:
            lane.pacer.learn(err.rate_limits, grant.mark, now)
        if kind == "rate_limited":
            hint = wait_hint_s(err.rate_limits) if err.rate_limits is not None else None
            delay = err.retry_after if err.retry_after is not None else hint
            if delay is None:
                delay = self.cfg.engine.default_retry_after_s / self.time_scale
            att.retry_after_s = delay
            lane.cooldown_until = max(lane.cooldown_until, now + delay)
            lane.probing = True  # after the cooldown, one request first
            t.conc.on_congestion(now)
        elif kind in _KEY_FATAL:
            if lane.key.disabled is None:
                lane.key.disabled = f"{kind.replace('_', ' ')}: {self._clean(err.message)}"
                self._event(
                    "key_disabled",
                    f"{lane.key.id} disabled ({kind.replace('_', ' ')}); "
                    "other keys and targets carry on",
                    target=t.id,
                    key=lane.key.id,
                )
        elif kind in _TRANSIENT:
            if kind == "overloaded":
                t.conc.on_congestion(now)
                if err.retry_after is not None:
                    lane.cooldown_until = max(lane.cooldown_until, now + err.retry_after)
            before = t.breaker.state
            opened = t.breaker.on_failure(now)
            if before != "closed" or opened:
                att.counted = False
            if opened:
                self._event(
                    "breaker_open",
                    f"{t.id}: circuit open for {t.breaker.opened_for:.3g} s after {kind}",
                    target=t.id,
                )
        self.router.release(grant)
        return err

    def _cache_candidates(self, slot: str) -> list[TargetState]:
        if slot != ROUTE_SLOT:
            return [self.by_id[slot]]
        return sorted((t for t in self.targets if t.weight > 0), key=lambda t: -t.weight)

    def _from_cache(self, fw: FrameWork, slot: str, route: Route) -> bool:
        """Answer from the semantic cache when a (near-)identical frame was captioned."""
        scope = self.cfg.cache.scope
        self.cache_lookups += 1
        cands = self._cache_candidates(slot)
        near_ok = fw.fingerprint is not None
        # Exact pixel matches on any candidate first, then near ones.
        for t, near in [(t, False) for t in cands] + [(t, True) for t in cands if near_ok]:
            try:
                hit = self.cache.lookup(
                    fw.pixel_hash,
                    fw.fingerprint if fw.fingerprint is not None else b"",
                    prompt_version=t.spec.prompt_version,
                    target=t.id,
                    scope=scope,
                    variant=self.cache_variant,
                    near=near,
                )
            except Exception as e:  # a broken cache costs money, not frames
                self._event("error", f"cache lookup failed, cache off for this run: {e}")
                self.cache = None
                return False
            if hit is None:
                continue
            self.cache_hits += 1
            t.cache_hits += 1
            route.cache = hit.kind
            route.pick = {"target": t.id, "cache": True}
            source = {
                "frame": hit.frame,
                "recording": hit.recording,
                "target": hit.target,
                "prompt_version": hit.prompt_version,
                "distance": hit.distance,
                "kind": hit.kind,
            }
            self._finish(fw, slot, route, t, None, "done", None, cache=(hit.caption, source))
            return True
        route.cache = "miss"
        return False

    def _cache_put(self, fw: FrameWork, t: TargetState, comp: Completion) -> None:
        try:
            self.cache.put(
                fw.pixel_hash,
                fw.fingerprint if fw.fingerprint is not None else b"",
                prompt_version=t.spec.prompt_version,
                target=t.id,
                scope=self.cfg.cache.scope,
                caption=comp.text,
                frame=fw.index,
                recording=self.cache_recording,
                extra={"model": comp.model or t.spec.model},
                variant=self.cache_variant,
            )
        except Exception as e:
            self._event("error", f"cache write failed, cache off for this run: {e}")
            self.cache = None

    def _fallback_order(self) -> list[TargetState]:
        """Targets reachable through the weighted targets' fallback chains, in order."""
        seen: dict[str, TargetState] = {}
        for t in sorted(self.targets, key=lambda x: -x.weight):
            if t.weight > 0:
                for x in self.chains[t.id][1:]:
                    if x.alive():
                        seen.setdefault(x.id, x)
        return list(seen.values())

    def _guard(self, t: TargetState, comp: Completion, fw: FrameWork) -> list[str]:
        """Flags of one answer; pauses its target when its degenerate rate runs away."""
        flags = self.guard.check(comp.text, comp.finish_reason, fw.pixel_hash)
        # Boilerplate is flagged but does not pause: a long static stretch may honestly
        # earn the same caption on many frames.
        rate = self.guard.record(t.id, any(f != "boilerplate" for f in flags))
        if rate is not None and t.paused is None:
            t.paused = f"{rate:.0%} of its recent answers were not captions ({', '.join(flags)})"
            self._event(
                "target_paused",
                f"{t.id} paused: {t.paused}; resume it from the app or fix the prompt",
                target=t.id,
            )
            self.router.pump()
        return flags

    def resume_target(self, target: str) -> None:
        """Put a target the guard paused back into use."""
        t = self.by_id[target]
        if t.paused is not None:
            t.paused = None
            self.guard.reset(target)
            self._event("target_resumed", f"{target} back in use", target=target)
            self.router.pump()

    def _price(self, model: str, usage: Any) -> float:
        try:
            return self.prices.cost_usd(model, usage)
        except (UnknownModel, KeyError):
            return 0.0

    def _clean(self, text: str) -> str:
        return mask_secrets(text, self._secrets)

    # -- results -------------------------------------------------------------------------

    def _finish(
        self,
        fw: FrameWork,
        slot: str,
        route: Route,
        t: TargetState | None,
        comp: Completion | None,
        state: str,
        reason: str | None,
        flags: list[str] | None = None,
        cache: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        spec = t.spec if t is not None else None
        flags = list(flags or ())
        if comp is not None and comp.finish_reason == "length" and "truncated" not in flags:
            flags.append("truncated")
        cost = 0.0
        model = spec.model if spec is not None else None
        if comp is not None:
            model = comp.model or model
            cost = comp.cost_usd
            if cost is None:
                cost = self._price(model or "", comp.usage)
        result: dict[str, Any] = {
            "frame": fw.index,
            "slot": slot,
            "t0_us": fw.t0_us,
            "t1_us": fw.t1_us,
            "events": fw.events,
            "target": t.id if t is not None else (slot if slot != ROUTE_SLOT else None),
            "model": model,
            "prompt_version": spec.prompt_version if spec else None,
            "state": state,
            "caption": comp.text if comp is not None else (cache[0] if cache else None),
            "reason": reason,
            "finish_reason": comp.finish_reason if comp is not None else None,
            "input_tokens": comp.usage.input_tokens + comp.usage.cached_input_tokens if comp else 0,
            "output_tokens": comp.usage.output_tokens if comp else 0,
            "cost_usd": cost,
            "latency_s": round(sum(a.latency_s for a in route.attempts), 4),
            "attempts": len(route.attempts),
            "cache_hit": cache is not None,
            "cache_source": cache[1] if cache else None,
            "flags": flags,
            "simulated": bool(comp.simulated) if comp is not None else False,
        }
        final = {
            "state": state,
            "target": result["target"],
            "reason": reason,
            "input_tokens": result["input_tokens"],
            "output_tokens": result["output_tokens"],
            "cost_usd": cost,
        }
        if route.rerun:
            result["rerun"] = True
        self._results.append(result)
        self._traces.append(route.as_dict(final))
        if len(self._results) >= 2000:
            self._kick_commit()

    def _kick_commit(self) -> None:
        self._commit_now.set()

    async def _commit_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._commit_now.wait(), self.commit_interval_s)
            self._commit_now.clear()
            await self._flush()
            if self._commit_error is not None or (self._closing and not self._results):
                return

    async def _settle(self) -> None:
        """Until every result so far is committed and counted (so 'idle' means done)."""
        while self._results or self._flushing:
            if self._commit_error is not None:
                return
            self._kick_commit()
            await asyncio.sleep(0.005)

    async def _flush(self) -> None:
        if not self._results:
            return
        results, traces = self._results, self._traces
        self._results, self._traces = [], []
        self._flushing = True
        try:
            await asyncio.to_thread(self.commit, results, traces)
        except Exception as e:  # disk full, read-only, …: stop, keep what is durable
            self._commit_error = e
            self._event("error", f"cannot write results: {e}")
            self.stop()
            return
        finally:
            self._flushing = False
        now = self._clock()
        for r in results:
            st = r["state"]
            if st == "done":
                self.done += 1
            elif st == "failed":
                self.failed += 1
            else:
                self.skipped += 1
            self.events.put(Event("caption", r["state"], now, r))

    # -- telemetry -----------------------------------------------------------------------

    def _event(self, kind: str, message: str, **data: Any) -> None:
        self.events.put(Event(kind, self._clean(message), time.time(), data))

    async def _snapshot_loop(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(self.snapshot_interval_s)

    def _publish(self) -> None:
        now = self._clock()
        picks = sum(t.first_picks for t in self.targets) or 1
        total_w = sum(t.weight for t in self.targets) or 1.0
        tviews = []
        for t in self.targets:
            counts = outcomes(t.counters, now)
            counts["in_flight"] = t.in_flight
            tviews.append(
                TargetView(
                    **counts,
                    id=t.id,
                    weight=t.weight,
                    share=(t.weight / total_w) if self.cfg.mode == "route" else 1.0,
                    effective_share=t.first_picks / picks if self.cfg.mode == "route" else 1.0,
                    concurrency_cap=t.conc.cap,
                    breaker=t.breaker.state,
                    breaker_reopens_in_s=t.breaker.reopens_in(now),
                    fallbacks_out=t.fallbacks_out,
                    cache_hits=t.cache_hits,
                    lanes=tuple(self._lane_view(ln, now) for ln in t.lanes),
                )
            )
        finished = self.done + self.failed + self.skipped
        elapsed = max(now - self._started, 1e-9) if self._started else 0.0
        rate = finished / elapsed if elapsed else 0.0
        eta = None
        projected = None
        if self.slots_total is not None and finished:
            left = max(self.slots_total - finished, 0)
            eta = left / rate if rate > 0 else None
            projected = self.spend / max(self.done, 1) * self.slots_total if self.done else None
        self.snapshot = Snapshot(
            at=time.time(),
            state=self.state,
            frames_total=self.frames_total,
            slots_total=self.slots_total,
            done=self.done,
            failed=self.failed,
            skipped=self.skipped,
            in_flight=sum(t.in_flight for t in self.targets),
            waiting=self.router.waiting,
            rate=rate,
            eta_s=eta,
            cache_hits=self.cache_hits,
            cache_lookups=self.cache_lookups,
            spend_usd=self.spend,
            projected_usd=projected,
            budget_usd=self.cfg.budget_usd,
            targets=tuple(tviews),
            message=self.message,
        )

    def _lane_view(self, ln: Lane, now: float) -> LaneView:
        return LaneView(
            **outcomes(ln.counters, now),
            target=ln.target.id,
            key=ln.key.id,
            cooldown_left_s=max(ln.cooldown_until - now, 0.0),
            disabled=ln.key.disabled,
            pace=ln.pacer.view(now),
        )


# Thousands of requests in flight keep tens of thousands of small objects alive, and the
# default thresholds (700 allocations) make the cyclic collector rescan them all the time:
# measured at 3,000 in flight, ~35 % of the engine's CPU per request. The engine creates
# no reference cycles it needs collected promptly, so while it runs, collect rarely.
_GC_THRESHOLDS = (5_000, 10, 1_000)


def _quiet_gc() -> tuple[int, int, int] | None:
    before = gc.get_threshold()
    if before[0] >= _GC_THRESHOLDS[0]:
        return None  # someone else (an outer engine, a benchmark) already chose
    gc.freeze()  # what exists now (modules, config) is never rescanned
    gc.set_threshold(*_GC_THRESHOLDS)
    return before


def _restore_gc(before: tuple[int, int, int] | None) -> None:
    if before is not None:
        gc.set_threshold(*before)
        gc.unfreeze()


async def _as_async(items: Iterable[FrameWork]) -> Any:
    for i, fw in enumerate(items):
        yield fw
        if i % 256 == 255:
            await asyncio.sleep(0)


__all__ = ["CommitFn", "Engine", "MemorySink", "RunResult"]
