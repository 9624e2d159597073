"""The app's side of one job: what it reads from the job and the engine, and what it asks.

No Textual here: the screens call these methods and show what comes back. Reads are
the job files and the engine's snapshot; writes are review records (through the job
store, durably) and engine commands (through its thread, never touching its state).
Failures come back as one-line messages for the screen, never as tracebacks.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import orjson

from evtui.engine.telemetry import EMPTY_SNAPSHOT, Event, Snapshot
from evtui.frames.pipeline import FramePlan, make_executor, preview_plan, render_range
from evtui.tui.book import ROUTE, FrameBook

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
LEDGER = "ledger.jsonl"  # where the job store keeps rerun answers for keys already done
TRACE = "trace.jsonl"  # route records, one line each, in commit order
# One complete line and the first frame number in it (a record's own key comes first).
_LINE = re.compile(rb'^[^\n]*?"frame":\s*(\d+)[^\n]*\n', re.M)
_FINISHED = ("idle", "done", "budget", "failed", "stopped")
PREVIEW_CACHE = 32
ABSORB_SLICE_S = 0.003  # captions filed per slice of the UI's loop (then keys run)
# Where previews are rendered: a worker process keeps decoding off the app's GIL (a thread
# rendering beside the UI made every keypress wait for it); "thread" for tests that patch.
PREVIEW_POOL = "process"


class Source(Protocol):
    """What the app needs of the engine: evtui.engine.thread.EngineThread fits."""

    @property
    def snapshot(self) -> Snapshot: ...
    @property
    def events(self) -> Any: ...
    @property
    def alive(self) -> bool: ...

    result: Any
    error: BaseException | None

    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def drain(self) -> None: ...
    def stop(self) -> None: ...
    def set_weight(self, target: str, weight: float) -> None: ...
    def join(self, timeout: float | None = None) -> Any: ...


@dataclass(frozen=True, slots=True)
class View:
    """One window as the preview shows it."""

    index: int
    t0_us: int
    t1_us: int
    events: int
    method: str
    pixels: np.ndarray | None
    error: str = ""


def ledger_reruns(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Rerun answers the store kept in the ledger (complete lines only; a torn tail is skipped)."""
    path = run_dir / LEDGER
    try:
        data = path.read_bytes()
    except OSError:
        return
    end = data.rfind(b"\n")
    for line in data[: end + 1].splitlines():
        if b'"rerun"' not in line:
            continue
        try:
            r = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(r, dict) and r.get("rerun"):
            yield r


def render_view(plan: FramePlan, k: int) -> View:
    """Window k rendered for the preview (runs in the preview worker, or inline)."""
    try:
        (ew,) = render_range(plan, k, k + 1)
        return View(k, int(ew.t0_us), int(ew.t1_us), int(ew.events), plan.method, ew.pixels)
    except Exception as e:  # an unreadable part of the recording: say so, keep going
        return View(k, 0, 0, 0, plan.method, None, f"cannot render frame {k}: {e}")


class TraceIndex:
    """Where each frame's route records sit in trace.jsonl, read incrementally.

    JobStore.trace(k) scans the whole file for one frame (33 ms for 36,000 records here);
    the app asks on every move, so it keeps byte spans per frame and reads only what was
    appended since it last looked. Only complete lines are indexed (a writer may be
    mid-line); a record whose frame does not match when read back is dropped.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pos = 0
        self.spans: dict[int, list[tuple[int, int]]] = {}
        self._lock = threading.Lock()  # the app's prefetch thread indexes too

    def update(self) -> None:
        with self._lock:
            self._update()

    def _update(self) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size <= self.pos:
            return
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            block = f.read(size - self.pos)
        end = block.rfind(b"\n") + 1
        spans = self.spans
        base = self.pos
        for m in _LINE.finditer(block, 0, end):  # one C scan; Python sees matches only
            a, b = m.span()
            spans.setdefault(int(m.group(1)), []).append((base + a, b - a - 1))
        self.pos += end

    def records(self, k: int) -> list[dict[str, Any]]:
        self.update()
        out = []
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for offset, length in self.spans.get(k, ()):
                rec = orjson.loads(os.pread(fd, length, offset))
                if isinstance(rec, dict) and rec.get("frame") == k:
                    out.append(rec)
        finally:
            os.close(fd)
        return out


class Session:
    """One job seen from the app. `start()` runs the engine thread unless one was given."""

    def __init__(self, job: Any, source: Source | None = None) -> None:
        self.job = job
        self.cfg = job.cfg
        self.source = source
        self.route_mode = self.cfg.mode == "route"
        self.slots: tuple[str, ...] = tuple(job.engine.slots)
        self.columns: tuple[str, ...] = tuple(t.id for t in self.cfg.targets)
        self.book = FrameBook(job.n_frames, self.slots, self.columns)
        self.method = self.cfg.render.method
        self.snapshot: Snapshot = EMPTY_SNAPSHOT
        self.interrupted = False
        self.quitting = 0  # 1: draining to quit, 2: stopping now
        self._previews: OrderedDict[tuple[int, str], View] = OrderedDict()
        self._preview_lock = threading.Lock()
        self._inbox: deque[Any] = deque()  # polled caption events not in the book yet
        self._rendering: dict[tuple[int, str], Future[View]] = {}
        # Started now, before the app takes over stdout/stderr: the process helpers
        # (forkserver, resource tracker) need the real ones. The worker then starts warm.
        self._pool: Executor | None = make_executor(PREVIEW_POOL, 1)
        self._pool.submit(os.getpid)
        self._traces = TraceIndex(self.run_dir / TRACE)

    @property
    def n_frames(self) -> int:
        return int(self.job.n_frames)

    @property
    def run_dir(self) -> Path:
        return Path(self.job.store.run_dir)

    # -- life ---------------------------------------------------------------------------
    def load(self) -> None:
        """Everything the job directory already holds: results, reruns, reviews."""
        store = self.job.store
        self.book.load(store.results(), ledger_reruns(self.run_dir))
        for rv in store.reviews():
            self.book.add_review(rv)
        with contextlib.suppress(OSError, ValueError):
            self._traces.update()

    def start(self) -> None:
        if self.source is None:
            self.source = self.job.start_thread()

    def tick(self) -> list[Event]:
        """Read the snapshot and drain the events (same tick); returns the must-see ones."""
        important = self.poll()
        while self.absorb(float("inf")):
            pass
        return important

    def poll(self) -> list[Event]:
        """The snapshot and every queued event: must-see ones returned, captions kept for
        `absorb` (cheap: the UI files them in slices, between keypresses)."""
        src = self.source
        if src is None:
            return []
        self.snapshot = src.snapshot
        important = []
        inbox = self._inbox
        for e in src.events.drain():
            if e.kind == "caption":
                inbox.append(e.data)
            else:
                important.append(e)
        return important

    def absorb(self, budget_s: float = ABSORB_SLICE_S) -> bool:
        """File polled captions into the book for about `budget_s`; True while some remain."""
        inbox, book = self._inbox, self.book
        end = time.perf_counter() + budget_s
        while inbox:
            for _ in range(min(len(inbox), 32)):
                book.add(dict(inbox.popleft()))
            if time.perf_counter() >= end:
                break
        settled = book.settle(until=end)  # the flags too, within the same slice
        return bool(inbox) or not settled

    @property
    def alive(self) -> bool:
        return self.source is not None and self.source.alive

    @property
    def finished(self) -> bool:
        return self.snapshot.state in _FINISHED

    def quit(self) -> str:
        """First call drains (in-flight finish, the rest stays pending); the next stops now."""
        src = self.source
        if src is None or not src.alive:
            return "done"
        if self.quitting == 0:
            self.quitting = 1
            if not self.finished:
                self.interrupted = True
            src.drain()
            return "draining"
        self.quitting = 2
        src.stop()
        return "stopping"

    def problem(self) -> str | None:
        """Why the engine cannot go on (a failure to write, a crash), else None."""
        src = self.source
        err = getattr(src, "error", None) if src is not None else None
        if err is not None:
            return f"the engine stopped: {type(err).__name__}: {err}"
        if self.snapshot.state == "failed":
            return self.snapshot.message or "the engine failed"
        return None

    def exit_code(self) -> int:
        """0 done, 1 some failed, 2 engine failure, 3 budget, 130 interrupted."""
        src = self.source
        res = getattr(src, "result", None) if src is not None else None
        snap = self.snapshot
        state = res.state if res is not None else snap.state
        failed = res.failed if res is not None else snap.failed
        if self.problem() is not None or state == "failed":
            return EXIT_BAD_INPUT
        if state == "budget":
            return EXIT_BUDGET
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if failed else EXIT_OK

    def verdict_text(self) -> str:
        snap = self.snapshot
        return (
            f"evtui: {snap.done} done, {snap.failed} failed, {snap.skipped} skipped "
            f"this session; results in {self.run_dir}"
            + ("; run the same command to continue" if self.interrupted else "")
        )

    # -- frames -------------------------------------------------------------------------
    def _keep(self, v: View) -> View:
        with self._preview_lock:
            self._previews[(v.index, v.method)] = v
            if len(self._previews) > PREVIEW_CACHE:
                self._previews.popitem(last=False)
        return v

    def cached_view(self, k: int, method: str | None = None) -> View | None:
        """Window k if it was rendered already (no work)."""
        key = (k, method or self.method)
        with self._preview_lock:
            got = self._previews.get(key)
            if got is not None:
                self._previews.move_to_end(key)
            return got

    def view(self, k: int, method: str | None = None) -> View:
        """Window k rendered for the preview, here and now (the job's method by default)."""
        method = method or self.method
        got = self.cached_view(k, method)
        if got is None:
            got = self._keep(render_view(preview_plan(self.job.plan, method), k))
        return got

    def request_view(self, k: int, method: str | None = None) -> Future[View]:
        """Window k rendered by the preview worker; one render per window however often asked."""
        method = method or self.method
        key = (k, method)
        submitted = False
        with self._preview_lock:
            got = self._previews.get(key)
            fut = self._rendering.get(key)
            if got is None and (fut is None or fut.cancelled()) and self._pool is not None:
                fut = self._pool.submit(render_view, preview_plan(self.job.plan, method), k)
                self._rendering[key] = fut
                submitted = True
        if submitted:  # outside the lock: a finished future runs the callback right here
            fut.add_done_callback(partial(self._rendered, key))
        if got is None and fut is not None and not fut.cancelled():
            return fut
        done: Future[View] = Future()  # rendered already, or here when the pool is closed
        done.set_result(got if got is not None else self.view(k, method))
        return done

    def _rendered(self, key: tuple[int, str], fut: Future[View]) -> None:
        with self._preview_lock:
            if self._rendering.get(key) is fut:
                del self._rendering[key]
        if not fut.cancelled() and fut.exception() is None:
            self._keep(fut.result())

    def want_views(self, ks: Iterable[int], method: str | None = None) -> None:
        """Render these windows ahead; queued renders of others are dropped (the user moved on)."""
        method = method or self.method
        wanted = {(k, method) for k in ks}
        with self._preview_lock:
            stale = [f for key, f in self._rendering.items() if key not in wanted]
        for fut in stale:
            fut.cancel()  # only a render not started yet is cancelled
        for k, m in wanted:
            self.request_view(k, m)

    def traces(self, k: int) -> list[dict[str, Any]]:
        """Route records of frame k in commit order (indexed; the store's scan if that fails)."""
        try:
            return self._traces.records(k)
        except (OSError, ValueError):
            try:
                return list(self.job.store.trace(k))
            except Exception:  # unreadable trace: the explain view says there is none
                return []

    # -- review -------------------------------------------------------------------------
    def review(
        self, frame: int, col: str, decision: str, text: str | None = None
    ) -> dict[str, Any]:
        """Store one review decision durably, then show it; raises ValueError/JobError."""
        rec: dict[str, Any] = {"frame": int(frame), "target": col, "decision": decision}
        if text is not None:
            rec["text"] = text
        newest = self.book.newest(frame, col)
        if newest is not None and newest.get("rerun"):
            rec["rerun"] = True  # the decision is about a rerun's answer, not the first
        self.job.store.add_review(rec)
        stored = self.job.store.reviews()
        self.book.add_review(stored[-1] if stored else rec)
        return rec

    # -- engine commands ------------------------------------------------------------------
    def rerun(self, frame: int, cols: Sequence[str] | None) -> list[str]:
        """Caption `frame` again; returns the slots asked. Route mode always asks the router."""
        slots = [ROUTE] if self.route_mode else [c for c in cols or self.slots if c in self.slots]
        if not slots:
            return []
        self.job.rerun(frame, slots)
        return slots

    def toggle_pause(self) -> str:
        src = self.source
        if src is None:
            return self.snapshot.state
        if self.snapshot.state == "paused":
            src.resume()
            return "running"
        src.pause()
        return "paused"

    def weights(self) -> dict[str, float]:
        live = {t.id: t.weight for t in self.snapshot.targets}
        return {t.id: live.get(t.id, t.weight) for t in self.cfg.targets}

    def set_weights(self, weights: dict[str, float]) -> None:
        if self.source is None:
            return
        current = self.weights()
        for tid, w in weights.items():
            if current.get(tid) != w:
                self.source.set_weight(tid, w)

    def close(self, timeout: float = 10.0) -> None:
        """Make sure the engine thread is gone (stop it if the app ended another way)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        src = self.source
        if src is not None and src.alive:
            src.stop()
            with contextlib.suppress(BaseException):
                src.join(timeout)


__all__ = ["Session", "Source", "View", "ledger_reruns"]
