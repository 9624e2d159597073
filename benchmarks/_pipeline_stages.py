"""The pieces bench_pipeline.py measures apart: CPU accounting, the worker's stages one by
one, the frame pipeline into a null sink, and the engine fed pre-encoded frames.

Per-stage times are thread CPU (`time.thread_time`), one window after another in this
process, exactly the calls `evtui.frames.pipeline.render_range` makes; CPU rather than
wall time because the machine is shared and the question is what each frame costs.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from _common import proc_cpu_s

from evtui.events.recording import Recording
from evtui.events.render import renderer
from evtui.events.windows import Window
from evtui.frames.encode import EncodeSpec, encode_frame, frame_pixel_hash
from evtui.frames.pipeline import (
    DEFAULT_CHUNK,
    EncodedWindow,
    FramePlan,
    _drawer,
    _scale_into,
    b64text,
    encoded_hash,
    encoded_windows,
    make_executor,
    worker_start,
)
from evtui.frames.pipeline import SlidingCD as _SlidingCD

# -- CPU accounting from /proc ----------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        kids.setdefault(ppid, []).append(int(name))
    return kids


class TreeCPU:
    """CPU of a process and all its descendants, sampled while they live.

    Workers of a forkserver pool are the forkserver's children, not the parent's, and exit
    before the parent can reap them, so rusage never sees them: the last sample of each
    process is kept instead (sample often enough that the last one is close to the end).
    """

    def __init__(self, root: int) -> None:
        self.root = root
        self.last: dict[int, float] = {}
        self.role: dict[int, str] = {}

    def sample(self) -> None:
        kids = _children()
        todo = [self.root]
        while todo:
            pid = todo.pop()
            self.last[pid] = max(proc_cpu_s(pid), self.last.get(pid, 0.0))
            self.role.setdefault(pid, "main" if pid == self.root else "workers")
            todo.extend(kids.get(pid, ()))

    def by_role(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, cpu in self.last.items():
            r = self.role[pid]
            out[r] = out.get(r, 0.0) + cpu
        return out


def pool_cpu_s(executor: Any) -> float:
    """CPU of a ProcessPoolExecutor's live workers."""
    procs = getattr(executor, "_processes", None) or {}
    return sum(proc_cpu_s(pid) for pid in procs)


# -- the worker's stages, one by one -----------------------------------------------------


@dataclass
class StageTimes:
    """CPU seconds per stage over `frames` windows (events: per window, mean)."""

    frames: int = 0
    events: int = 0
    bytes_jpeg: int = 0
    s: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, dt: float) -> None:
        self.s[name] = self.s.get(name, 0.0) + dt

    def ms(self, name: str) -> float:
        return self.s.get(name, 0.0) / max(self.frames, 1) * 1e3

    @property
    def total_ms(self) -> float:
        return sum(self.s.values()) / max(self.frames, 1) * 1e3


def _timed_decode(rec: Recording, st: StageTimes) -> None:
    """Wrap the recording's block decoder so the time spent in it is counted apart."""
    orig = rec._decode

    def timed(i: int, j: int) -> Iterator[np.ndarray]:
        gen = orig(i, j)
        while True:
            t = time.thread_time()
            try:
                block = next(gen)
            except StopIteration:
                st.add("decode", time.thread_time() - t)
                return
            st.add("decode", time.thread_time() - t)
            yield block

    rec._decode = timed  # type: ignore[method-assign]


def stage_times(plan: FramePlan, k0: int, n: int, repeat: int = 3) -> StageTimes:
    """Per-stage CPU of `render_range` over windows k0 … k0+n-1: each stage's best of
    `repeat` passes (the machine is shared; the least disturbed pass is the cost)."""
    with single_threaded_cv():
        runs = [_stage_pass(plan, k0, n) for _ in range(repeat)]
    best = runs[0]
    for st in runs[1:]:
        for k, v in st.s.items():
            best.s[k] = min(best.s[k], v)
    return best


@contextmanager
def single_threaded_cv() -> Iterator[None]:
    """OpenCV as the pipeline's workers run it (`worker_start`), restored after."""
    before = cv2.getNumThreads()
    worker_start()
    try:
        yield
    finally:
        cv2.setNumThreads(before)


def _stage_pass(plan: FramePlan, k0: int, n: int, chunk: int = DEFAULT_CHUNK) -> StageTimes:
    """What `render_range` does, stage by stage, for windows k0 … k0+n-1 in ranges of `chunk`
    (no cache: the content hash is of the JPEG, as in the workers)."""
    rec = Recording(plan.path)
    rec.index()
    sensor = rec.size
    size = plan.size or sensor
    st = StageTimes()
    _timed_decode(rec, st)
    for a in range(k0, k0 + n, chunk):
        draw = _drawer(plan, sensor, size)  # one per range, as in render_range
        sliding = isinstance(draw, _SlidingCD)
        batch: list[EncodedWindow] = []
        it = rec.windows_between(plan.window, a, min(a + chunk, k0 + n), copy=not sliding)
        while True:
            t = time.thread_time()
            win = next(it, None)
            st.add("window", time.thread_time() - t)  # decode is subtracted below
            if win is None:
                break
            st.frames += 1
            st.events += len(win.events)
            t = time.thread_time()
            if sliding:
                t1 = t  # scaled by lookup inside the render
                img, order = draw.bgr(win), "bgr"
            else:
                _scale_into(win.events, sensor, size)
                t1 = time.thread_time()
                img, order = draw(win), "rgb"
            t2 = time.thread_time()
            enc = encode_frame(img, plan.encode, pixel_hash="", order=order)
            t3 = time.thread_time()
            ph = encoded_hash(enc.data)
            t4 = time.thread_time()
            b64 = b64text(enc.data)
            t5 = time.thread_time()
            st.add("scale", t1 - t)
            st.add("render", t2 - t1)
            st.add("encode", t3 - t2)
            st.add("hash", t4 - t3)
            st.add("b64", t5 - t4)
            st.bytes_jpeg += len(enc.data)
            batch.append(
                EncodedWindow(
                    win.index, win.t0_us, win.t1_us, len(win.events), enc.data,
                    enc.media_type, enc.width, enc.height, b64, ph,
                )
            )  # fmt: skip
        t = time.thread_time()
        blob = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        t1 = time.thread_time()
        pickle.loads(blob)
        t2 = time.thread_time()
        st.add("pickle (worker)", t1 - t)
        st.add("unpickle (parent)", t2 - t1)
    st.s["window"] = st.s.get("window", 0.0) - st.s.get("decode", 0.0)
    st.events //= max(st.frames, 1)
    return st


# -- what the alternatives cost, measured on the same windows ------------------------------


def whatif_times(plan: FramePlan, k0: int, n: int, repeat: int = 3) -> dict[str, Any]:
    """Per-frame CPU of the alternatives to the worker's choices (best of `repeat` passes)
    on windows k0 … k0+n-1, and whether the sliding cdframe draws cdframe's pixels."""
    rec = Recording(plan.path)
    rec.index()
    sensor = rec.size
    size = plan.size or sensor
    out: dict[str, Any] = {}

    def per_frame(fn: Callable[[Any], Any], items: list[Any], setup: Callable[[], None]) -> float:
        best = float("inf")
        for _ in range(repeat):
            setup()
            t = time.thread_time()
            for w in items:
                fn(w)
            best = min(best, time.thread_time() - t)
        return best / max(len(items), 1) * 1e3

    def nothing() -> None:
        pass

    def windows(copy: bool) -> None:
        for _ in rec.windows_between(plan.window, k0, k0 + n, copy=copy):
            pass

    out["windows_copy_ms"] = per_frame(lambda _: windows(True), [0], nothing) / n
    out["windows_view_ms"] = per_frame(lambda _: windows(False), [0], nothing) / n
    wins = list(rec.windows_between(plan.window, k0, k0 + n))
    out["frames"] = len(wins)
    state: dict[str, Any] = {}

    def fresh() -> None:  # each pass starts from an empty sliding state
        state["cd"] = _SlidingCD(sensor, size, "dark")

    with single_threaded_cv():
        out["sliding_cd_ms"] = per_frame(lambda w: state["cd"].bgr(w), wins, fresh)
    fresh()
    imgs = [state["cd"](w) for w in wins]  # RGB, new arrays
    ref = renderer("cdframe", size[0], size[1])

    def full(w: Window) -> np.ndarray:
        ev = w.events.copy()
        _scale_into(ev, sensor, size)
        return ref(ev)

    out["cdframe_ms"] = per_frame(full, wins, nothing)
    out["sliding_cd_equal"] = sum(
        bool(np.array_equal(full(w), img)) for w, img in zip(wins, imgs, strict=True)
    )
    bgrs = [cv2.cvtColor(im, cv2.COLOR_RGB2BGR) for im in imgs]
    spec75 = EncodeSpec(formats=plan.encode.formats, quality=75)
    with single_threaded_cv():
        for name, spec in (("q85", plan.encode), ("q75", spec75)):
            out[f"jpeg_{name}_ms"] = _per_img(
                bgrs, lambda im, s=spec: encode_frame(im, s, pixel_hash="", order="bgr")
            )
            sizes = [len(encode_frame(im, spec, pixel_hash="", order="bgr").data) for im in bgrs]
            out[f"jpeg_{name}_kb"] = float(np.mean(sizes)) / 1e3
        out["jpeg_rgb_in_ms"] = _per_img(
            imgs, lambda im: encode_frame(im, plan.encode, pixel_hash="")
        )
        out["hash_pixels_ms"] = _per_img(imgs, frame_pixel_hash)
        jpegs = [encode_frame(im, plan.encode, pixel_hash="", order="bgr").data for im in bgrs]
        out["sha_jpeg_ms"] = _per_img(jpegs, lambda d: hashlib.sha256(d).hexdigest())
    # OpenCV's own threads, as in a process that never called worker_start: CPU of every
    # thread of this process (thread_time would miss the pool's).
    for name, threads in (("cv_single_ms", 1), ("cv_pool_ms", -1)):
        before = cv2.getNumThreads()
        cv2.setNumThreads(threads)
        try:
            out[name] = _per_img(
                imgs,
                lambda im: encode_frame(im, plan.encode, pixel_hash=""),
                clock=time.process_time,
            )
        finally:
            cv2.setNumThreads(before)
    out["cv_pool_threads"] = cv2.getNumberOfCPUs()
    return out


def _per_img(
    imgs: list[np.ndarray],
    fn: Callable[[np.ndarray], Any],
    repeat: int = 3,
    clock: Callable[[], float] = time.thread_time,
) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = clock()
        for im in imgs:
            fn(im)
        best = min(best, clock() - t)
    return best / max(len(imgs), 1) * 1e3


# -- the pipeline alone ---------------------------------------------------------------------


async def _drain(plan: FramePlan, indices: range, executor: Any, keep: int) -> list:
    kept = []
    async for ew in encoded_windows(plan, indices, executor=executor):
        if len(kept) < keep and ew.skip_reason is None:
            kept.append(ew)
    return kept


def pipeline_alone(
    plan: FramePlan, kind: str, workers: int, indices: range, keep: int = 0
) -> dict[str, Any]:
    """Frames/s and CPU per frame of render+encode into a null sink (pool warmed first)."""
    ex = make_executor(kind, workers)
    try:
        asyncio.run(_drain(plan, range(indices.start, indices.start + 32 * workers), ex, 0))
        c_pool, c_self = pool_cpu_s(ex), time.process_time()
        t = time.perf_counter()
        kept = asyncio.run(_drain(plan, indices, ex, keep))
        wall = time.perf_counter() - t
        cpu = pool_cpu_s(ex) - c_pool + time.process_time() - c_self
    finally:
        ex.shutdown(wait=True, cancel_futures=True)
    n = len(indices)
    return {"fps": n / wall, "cpu_ms": cpu / n * 1e3, "wall": wall, "kept": kept}


# -- the engine alone ------------------------------------------------------------------------


def engine_alone(
    cfg: Any, rec_path: str, size: tuple[int, int], pool: list[EncodedWindow], n: int,
    run_dir: Path | None, sim_pid: int,
) -> dict[str, Any]:  # fmt: skip
    """The Engine fed `n` pre-encoded frames (the pool cycled), committing to a real job
    store in `run_dir` (fsync per batch) or, when None, to memory."""
    from evtui.engine.dispatcher import Engine, MemorySink
    from evtui.engine.job import frame_work, manifest
    from evtui.jobs import JobStore

    store = None
    if run_dir is not None:
        rec = Recording(rec_path)
        store = JobStore.open(run_dir, manifest(cfg, rec, size))
        store.set_total(n)
    commit = store.commit if store is not None else MemorySink()
    works = [frame_work(ew) for ew in pool]

    def frames() -> Iterator[Any]:
        from dataclasses import replace

        for i in range(n):
            yield replace(works[i % len(works)], index=i)

    eng = Engine(cfg, commit=commit, seed=0)
    c_sim, c_self = proc_cpu_s(sim_pid), time.process_time()
    t = time.perf_counter()
    try:
        res = asyncio.run(eng.run(frames(), total=n))
    finally:
        if store is not None:
            store.close()
    wall = time.perf_counter() - t
    return {
        "fps": n / wall,
        "cpu_ms": (time.process_time() - c_self) / n * 1e3,
        "sim_ms": (proc_cpu_s(sim_pid) - c_sim) / n * 1e3,
        "done": res.done,
        "state": res.state,
    }
