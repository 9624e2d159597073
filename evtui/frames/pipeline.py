"""Recording → windows → rendered frames → encoded images, in worker processes.

The engine's event loop must never decode, render or encode: at 800 frames/s those cost
more than a core. Workers each open the recording themselves and take a *range* of
windows, decoding from the checkpoint before it (`Recording.windows_between`), so only
the encoded bytes cross the process boundary (~60–140 KB a frame), never events.
Frames are rendered straight at the size the model uses — event coordinates are scaled
before binning, which costs one multiply per event instead of a full-size render and a
resize — then encoded, hashed and base64'd in the worker.

Ranges come back in order; at most `ahead` ranges are outstanding, which is the
backpressure that keeps memory bounded when the engine is slower than the workers.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from typing import Any

import cv2
import numpy as np

from evtui.events.recording import Recording
from evtui.events.render import CD_PALETTES, renderer
from evtui.events.windows import Window, WindowSpec
from evtui.frames.encode import EncodeSpec, encode_frame


@dataclass(frozen=True)
class FramePlan:
    """Everything a worker needs to turn window indices into encoded frames (picklable)."""

    path: str
    window: WindowSpec
    method: str = "cdframe"
    params: tuple[tuple[str, Any], ...] = ()
    size: tuple[int, int] | None = None  # render size; None = the sensor's
    encode: EncodeSpec = field(default_factory=EncodeSpec)
    min_events: int = 0  # fewer events than this: skipped, not rendered
    fingerprint: Callable[[np.ndarray], Any] | None = None  # for the semantic cache
    keep_pixels: bool = False  # return the rendered RGB too (previews, exports)


@dataclass(frozen=True, slots=True)
class EncodedWindow:
    """One window, rendered and encoded (or skipped with its reason)."""

    index: int
    t0_us: int
    t1_us: int
    events: int
    data: bytes = b""
    media_type: str = ""
    width: int = 0
    height: int = 0
    b64: str = ""
    pixel_hash: str = ""
    fingerprint: Any = None
    skip_reason: str | None = None
    pixels: np.ndarray | None = None


# -- worker side -----------------------------------------------------------------------

_OPEN: dict[str, tuple[Recording, tuple[int, int]]] = {}


def _recording(path: str) -> tuple[Recording, tuple[int, int]]:
    got = _OPEN.get(path)
    if got is None:
        rec = Recording(path)
        got = _OPEN[path] = (rec, rec.size)
    return got


def _scale_into(events: np.ndarray, sensor: tuple[int, int], size: tuple[int, int]) -> None:
    """Map sensor coordinates onto the render grid, in place (the window owns its events)."""
    sw, sh = sensor
    w, h = size
    if (w, h) == (sw, sh) or not len(events):
        return
    x = events["x"].astype(np.uint32)
    x *= w
    x //= sw
    events["x"] = x
    y = events["y"].astype(np.uint32)
    y *= h
    y //= sh
    events["y"] = y


class SlidingCD:
    """cdframe over consecutive (overlapping) windows, each event touched once per range.

    A pixel's colour in window [a, b) is its last event's polarity if that event came at
    or after a: keeping each pixel's last time and polarity up to b gives exactly what
    `cdframe` draws from the window's own events, while only the events new since the
    previous window are scattered (a tenth of them at 90 % overlap) and scaled.
    """

    def __init__(self, sensor: tuple[int, int], size: tuple[int, int], palette: str) -> None:
        w, h = size
        self.w, self.h = w, h
        self.size = w * h
        self.last_t = np.full(self.size, np.iinfo(np.int64).min, np.int64)
        self.last_p = np.zeros(self.size, np.uint8)
        self._best = np.full(self.size, -1, np.int64)
        self.lut_x = (np.arange(sensor[0], dtype=np.int64) * w // sensor[0]).astype(np.intp)
        self.lut_y = (np.arange(sensor[1], dtype=np.int64) * h // sensor[1]).astype(np.intp)
        bg, on, off = CD_PALETTES[palette]
        pal = np.zeros((3, 4), np.uint8)
        pal[:, :3] = (bg, off, on)
        self.palette = pal.view(np.uint32).ravel()  # one gather colours a pixel (RGBA)
        self._rgba = np.empty((h, w, 4), np.uint8)
        self.upto: int | None = None  # events with t < upto are already in

    def __call__(self, win: Window) -> np.ndarray:
        ev = win.events
        if self.upto is not None and win.t0_us >= self.upto:
            self.upto = None  # a gap (sparse windows): nothing carries over
        if self.upto is not None:
            ev = ev[np.searchsorted(ev["t"], self.upto) :]
        if len(ev):
            pix = self.lut_y[ev["y"]] * self.w + self.lut_x[ev["x"]]
            order = np.arange(len(ev), dtype=np.int64)
            best = self._best
            np.maximum.at(best, pix, order)  # the last event at each pixel
            last = best[pix] == order
            best[pix] = -1
            where = pix[last]
            self.last_t[where] = ev["t"][last]
            self.last_p[where] = ev["p"][last].astype(np.uint8) + 1
        self.upto = win.t1_us
        label = np.where(self.last_t >= win.t0_us, self.last_p, np.uint8(0))
        np.take(self.palette, label.reshape(self.h, self.w), out=self._rgba.view(np.uint32)[..., 0])
        return cv2.cvtColor(self._rgba, cv2.COLOR_RGBA2RGB)


def _drawer(plan: FramePlan, sensor: tuple[int, int], size: tuple[int, int]) -> Any:
    params = dict(plan.params)
    if plan.method == "cdframe" and set(params) <= {"palette"} and plan.window.duration_us:
        return SlidingCD(sensor, size, str(params.get("palette", "dark")))
    return renderer(plan.method, size[0], size[1], **params)


def render_range(plan: FramePlan, k0: int, k1: int, wanted: Sequence[int] | None = None) -> list:
    """Windows k0 … k1-1 (only those in `wanted`, when given), rendered and encoded."""
    rec, sensor = _recording(plan.path)
    size = plan.size or sensor
    draw = _drawer(plan, sensor, size)
    want = None if wanted is None else set(wanted)
    out: list[EncodedWindow] = []
    for win in rec.windows_between(plan.window, k0, k1):
        if want is not None and win.index not in want:
            if isinstance(draw, SlidingCD):
                draw(win)  # keep its state in step; the image is not needed
            continue
        out.append(_one(plan, win, sensor, size, draw))
    return out


def _one(
    plan: FramePlan,
    win: Window,
    sensor: tuple[int, int],
    size: tuple[int, int],
    draw: Callable[[Any], np.ndarray],
) -> EncodedWindow:
    n = len(win.events)
    if n < plan.min_events:
        return EncodedWindow(
            win.index,
            win.t0_us,
            win.t1_us,
            n,
            skip_reason=f"near-empty: {n} events < floor {plan.min_events}",
        )
    if not isinstance(draw, SlidingCD):
        _scale_into(win.events, sensor, size)
    img = draw(win)
    if plan.fingerprint is not None:
        enc = encode_frame(img, plan.encode)  # the cache keys on the pixels' own hash
    else:
        # No cache: the hash only tells frames apart (caption guard), and hashing the
        # encoded bytes costs a fifth of hashing the pixels.
        enc = encode_frame(img, plan.encode, pixel_hash="")
        enc = replace(enc, pixel_hash="enc:" + hashlib.sha256(enc.data).hexdigest())
    return EncodedWindow(
        win.index,
        win.t0_us,
        win.t1_us,
        n,
        enc.data,
        enc.media_type,
        enc.width,
        enc.height,
        base64.b64encode(enc.data).decode("ascii"),
        enc.pixel_hash,
        plan.fingerprint(img) if plan.fingerprint is not None else None,
        pixels=img if plan.keep_pixels else None,
    )


# -- parent side -----------------------------------------------------------------------


def ranges(indices: Iterable[int], chunk: int) -> list[tuple[int, int, list[int] | None]]:
    """Group sorted window indices into ranges of at most `chunk` windows to render.

    A dense run becomes (k0, k1, None); a sparse one keeps the list of the windows wanted,
    so a resume renders only what is still pending.
    """
    ks = sorted(set(indices))
    out: list[tuple[int, int, list[int] | None]] = []
    i = 0
    while i < len(ks):
        part = ks[i : i + chunk]
        k0, k1 = part[0], part[-1] + 1
        # Don't decode across a big hole: split where the gap exceeds a chunk.
        gaps = np.flatnonzero(np.diff(part) > chunk)
        if len(gaps):
            part = part[: gaps[0] + 1]
            k1 = part[-1] + 1
        dense = k1 - k0 == len(part)
        out.append((k0, k1, None if dense else part))
        i += len(part)
    return out


def default_workers() -> int:
    return max(1, (os.cpu_count() or 2))


def make_executor(kind: str = "process", workers: int | None = None) -> Executor:
    """A process pool (forkserver: safe beside the engine's threads) or a thread pool."""
    n = workers or default_workers()
    if kind == "thread":
        return ThreadPoolExecutor(n, thread_name_prefix="evtui-render")
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["evtui.frames.pipeline"])  # workers start warm
    return ProcessPoolExecutor(n, mp_context=ctx)


async def encoded_windows(
    plan: FramePlan,
    indices: Iterable[int],
    *,
    executor: Executor,
    chunk: int = 32,
    ahead: int | None = None,
) -> AsyncIterator[EncodedWindow]:
    """Encoded windows for `indices`, in order, rendered by `executor`'s workers."""
    loop = asyncio.get_running_loop()
    work = ranges(indices, chunk)
    depth = ahead or 2 * default_workers() + 2
    pending: list[asyncio.Future[list[EncodedWindow]]] = []
    it = iter(work)

    def submit() -> bool:
        nxt = next(it, None)
        if nxt is None:
            return False
        k0, k1, wanted = nxt
        pending.append(loop.run_in_executor(executor, render_range, plan, k0, k1, wanted))
        return True

    try:
        while len(pending) < depth and submit():
            pass
        while pending:
            batch = await pending.pop(0)
            submit()
            for ew in batch:
                yield ew
    finally:
        for fut in pending:
            fut.cancel()
