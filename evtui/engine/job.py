"""One captioning job end to end: recording → frames → engine → durable job directory.

This is what `evtui run`, the pilot, the demo and the TUI all drive. It opens (or
resumes) the run directory, works out which frame × slot pairs are still pending from
the ledger, renders exactly those in worker processes, and hands them to the engine,
whose commit function is the store's durable `commit`. Killing it at any moment loses
at most the requests in flight; running it again continues.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from evtui import __version__
from evtui.cache import CacheError, SemanticCache
from evtui.config import Config
from evtui.engine.dispatcher import Engine, RunResult
from evtui.engine.records import ROUTE_SLOT, FrameWork
from evtui.engine.thread import EngineThread
from evtui.events.recording import Recording
from evtui.events.windows import WindowSpec
from evtui.frames.encode import EncodeSpec
from evtui.frames.fingerprint import fingerprint, threshold_bits
from evtui.frames.pipeline import (
    EncodedWindow,
    FramePlan,
    encoded_windows,
    make_executor,
    preview_plan,
    render_range,
)
from evtui.jobs import JobStore
from evtui.providers.images import provider_resize
from evtui.providers.types import ImagePart


def window_spec(cfg: Config) -> WindowSpec:
    r = cfg.render
    return WindowSpec.parse(r.window, overlap=r.overlap)


def render_size(cfg: Config, sensor: tuple[int, int]) -> tuple[int, int]:
    """The size to render at: the config's, else the largest any target would still use
    (a model downscales anything bigger, so those pixels cost encode time for nothing)."""
    r = cfg.render
    if r.width and r.height:
        return (r.width, r.height)
    w, h = sensor
    best = (0, 0)
    for t in cfg.targets:
        try:
            size = provider_resize(t.model, w, h, t.detail)
        except (KeyError, ValueError):
            return sensor
        if size[0] * size[1] > best[0] * best[1]:
            best = size
    return best if best[0] else sensor


def manifest(cfg: Config, rec: Recording, size: tuple[int, int]) -> dict[str, Any]:
    """What a run is: the settings that decide its results (compared on every resume)."""
    r = cfg.render
    return {
        "config": cfg.redacted(),
        "recording": {"path": str(rec.path), "fingerprint": rec.fingerprint},
        "render": {
            "method": r.method,
            "window": r.window,
            "overlap": r.overlap,
            "size": list(size),
            "format": r.format,
            "quality": r.quality,
            "min_events": r.min_events,
        },
        "prompts": {name: p.version for name, p in cfg.prompts.items()},
        "targets": [t.id for t in cfg.targets],
        "mode": cfg.mode,
        "evtui_version": __version__,
    }


def open_cache(cfg: Config) -> SemanticCache:
    """The shared semantic cache the config asks for (threshold: a fraction of the bits)."""
    c = cfg.cache
    threshold = threshold_bits(c.threshold) if c.threshold is not None else None
    return SemanticCache.open(c.dir, threshold=threshold)


def default_run_dir(config_path: str | Path, recording_path: str | Path) -> Path:
    return Path("runs") / f"{Path(config_path).stem}-{Path(recording_path).name.split('.')[0]}"


@dataclass
class Pending:
    """Which frames still need which slots; one boolean row per slot."""

    slots: tuple[str, ...]
    table: np.ndarray  # (len(slots), n_frames) bool

    @property
    def frames(self) -> np.ndarray:
        return np.flatnonzero(self.table.any(axis=0))

    @property
    def count(self) -> int:
        return int(self.table.sum())

    def slots_for(self, fw: FrameWork) -> list[str]:
        col = self.table[:, fw.index]
        return [s for s, on in zip(self.slots, col, strict=True) if on]


def pending(store: JobStore, engine: Engine, n_frames: int, only: Sequence[int] | None) -> Pending:
    slots = engine.slots
    table = np.zeros((len(slots), n_frames), bool)
    for i, slot in enumerate(slots):
        if slot == ROUTE_SLOT:
            todo = store.pending(None, None, n_frames)
        else:
            pv = engine.by_id[slot].spec.prompt_version
            todo = store.pending(slot, pv, n_frames)
        table[i, todo] = True
    if only is not None:
        mask = np.zeros(n_frames, bool)
        sel = np.asarray(only, dtype=np.int64)
        mask[sel[(sel >= 0) & (sel < n_frames)]] = True
        table &= mask
    return Pending(slots, table)


def frame_work(ew: EncodedWindow) -> FrameWork:
    image = ImagePart(ew.data, ew.media_type, ew.width, ew.height, ew.b64 or None)
    return FrameWork(
        index=ew.index,
        image=image,
        t0_us=ew.t0_us,
        t1_us=ew.t1_us,
        events=ew.events,
        pixel_hash=ew.pixel_hash,
        fingerprint=ew.fingerprint,
        skip_reason=ew.skip_reason,
    )


class Job:
    """A job ready to run: `Job.open(...)`, then `await job.run()`, then `job.close()`."""

    def __init__(
        self,
        cfg: Config,
        recording: Recording,
        store: JobStore,
        engine: Engine,
        plan: FramePlan,
        n_frames: int,
        todo: Pending,
        executor: Executor,
        owns_executor: bool,
    ) -> None:
        self.cfg = cfg
        self.recording = recording
        self.store = store
        self.engine = engine
        self.plan = plan
        self.n_frames = n_frames
        self.todo = todo
        self.executor = executor
        self._owns_executor = owns_executor
        self.warnings: list[str] = []

    @classmethod
    def open(
        cls,
        cfg: Config,
        recording_path: str | Path,
        run_dir: str | Path,
        *,
        on_mismatch: str = "refuse",
        retry_failed: bool = False,
        frames: Sequence[int] | None = None,
        executor: Executor | None = None,
        workers: int | None = None,
        engine_factory: Callable[..., Engine] | None = None,
        **engine_kw: Any,
    ) -> Job:
        """Open the recording and the run directory; raises RecordingError, JobError."""
        rec = Recording(recording_path)
        spec = window_spec(cfg)
        n_frames = rec.window_count(spec)
        size = render_size(cfg, rec.size)
        store = JobStore.open(
            run_dir,
            manifest(cfg, rec, size),
            on_mismatch=on_mismatch,  # type: ignore[arg-type]
            retry_failed=retry_failed,
        )
        cache = None
        try:
            r = cfg.render
            variant = f"{r.method}|{size[0]}x{size[1]}|{r.window}|{r.overlap}|{r.format}"
            warnings: list[str] = []
            if cfg.cache.enabled:
                try:
                    cache = open_cache(cfg)
                except CacheError as e:  # costs money, not frames: run without it
                    warnings.append(f"semantic cache unavailable, running without it: {e}")
            commit = store.commit
            engine = (engine_factory or Engine)(
                cfg,
                commit=commit,
                cache=cache,
                cache_recording=rec.fingerprint,
                cache_variant=variant,
                **engine_kw,
            )
            slots = len(engine.slots)
            total = n_frames if frames is None else len(set(frames))
            store.set_total(total * slots if cfg.mode == "compare" else total)
            todo = pending(store, engine, n_frames, frames)
            r = cfg.render
            plan = FramePlan(
                path=str(rec.path),
                window=spec,
                method=r.method,
                size=size,
                encode=EncodeSpec(formats=(r.format,), quality=r.quality),
                min_events=r.min_events,
                fingerprint=fingerprint if cache is not None else None,
            )
            owns = executor is None
            ex = executor or make_executor("process", workers)
        except BaseException:
            store.close()
            if cache is not None:
                cache.close()
            raise
        job = cls(cfg, rec, store, engine, plan, n_frames, todo, ex, owns)
        job.warnings = warnings
        return job

    async def frames(self) -> AsyncIterator[FrameWork]:
        plan = replace(self.plan, keep_bytes=False)  # the engine sends the base64 text only
        async for ew in encoded_windows(plan, self.todo.frames, executor=self.executor):
            yield frame_work(ew)

    async def run(self) -> RunResult:
        todo = self.todo
        return await self.engine.run(
            self.frames(), total=len(todo.frames), slots_total=todo.count, slots_for=todo.slots_for
        )

    def start_thread(self, *, keep_alive: bool = True) -> EngineThread:
        """Run on the engine's own thread (the TUI's way); reruns are served until drained."""
        todo = self.todo
        th = EngineThread(
            self.engine,
            self.frames(),
            total=len(todo.frames),
            slots_total=todo.count,
            slots_for=todo.slots_for,
            keep_alive=keep_alive,
        )
        self.thread = th.start()
        return th

    def preview(self, k: int, method: str | None = None) -> np.ndarray:
        """Window k rendered as the job renders it (or with another `method`): RGB uint8.

        Rendered here, in the caller's thread: one window costs about a millisecond.
        """
        (ew,) = render_range(preview_plan(self.plan, method), k, k + 1)
        assert ew.pixels is not None
        return ew.pixels

    def encoded(self, k: int) -> FrameWork:
        """Window k as the engine sends it (for a rerun)."""
        (ew,) = render_range(self.plan, k, k + 1)
        return frame_work(ew)

    def rerun(self, k: int, slots: Sequence[str] | None = None) -> None:
        """Caption window k again on `slots` (default: every slot of the job), from any
        thread; results arrive as caption events and are stored with `rerun: true`."""
        fw = replace(self.encoded(k), skip_reason=None)
        th = getattr(self, "thread", None)
        if th is not None:
            th.submit(fw, slots)
        else:
            self.engine.submit(fw, slots)

    def close(self) -> None:
        try:
            self.store.close()
            if self.engine.cache is not None:
                self.engine.cache.close()
        finally:
            if self._owns_executor:
                self.executor.shutdown(wait=True, cancel_futures=True)


__all__ = ["Job", "Pending", "default_run_dir", "manifest", "render_size", "window_spec"]
