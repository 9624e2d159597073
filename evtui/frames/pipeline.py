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
import os
import zlib
from collections import deque
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
from evtui.frames.allocator import tune_allocator
from evtui.frames.encode import ChannelOrder, EncodeSpec, encode_frame, frame_pixel_hash


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
    # The encoded bytes beside their base64 text; the engine sends only the text, so its
    # plan drops them: each frame then crosses from the worker once, not twice (~40 KB).
    keep_bytes: bool = True


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


def _stdlib_b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


try:  # SIMD base64 when installed: the same text for 0.01 ms a frame instead of 0.09
    import pybase64

    b64text: Callable[[bytes], str] = pybase64.b64encode_as_string
except ImportError:  # pragma: no cover - depends on the environment
    b64text = _stdlib_b64


_NEVER = np.iinfo(np.int64).min  # a pixel's last event time before it has any
_MAX_DRAW = 1 << 30  # events per SlidingCD pass: their order fits its int32 scratch
DEFAULT_CHUNK = 64  # windows per range a worker renders (see `encoded_windows`)

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
    """cdframe over consecutive (overlapping) windows, redrawing only the pixels that change.

    A pixel's colour in window [a, b) is its last event's polarity if that event came at
    or after a, else the background: exactly what `cdframe` draws from the window's own
    events. Each call therefore touches only the events new since the previous window (a
    tenth of them at 90 % overlap) and the pixels whose last event just left the window,
    never every pixel: at 512x288 the full-frame pass this replaces (mask, palette gather)
    cost ~0.7 ms a frame, the whole call now ~0.2 ms. The image is kept as 32-bit BGRA
    words (one scatter colours a pixel) and converted to packed BGR, the order the JPEG
    encoder takes, once per frame (~0.01 ms).

    Windows must come in increasing time order with time-sorted events (what
    `Recording.windows_between` yields); a window that starts before the previous one or
    after its end starts from scratch.
    """

    def __init__(self, sensor: tuple[int, int], size: tuple[int, int], palette: str) -> None:
        w, h = size
        self.w, self.h = w, h
        self.size = w * h
        self.last_t = np.full(self.size, _NEVER, np.int64)
        self._best = np.full(self.size, -1, np.int32)
        # sensor x -> render x, sensor y -> first pixel of its render row
        self.lut_x = (np.arange(sensor[0], dtype=np.int64) * w // sensor[0]).astype(np.intp)
        self.lut_yw = (np.arange(sensor[1], dtype=np.int64) * h // sensor[1] * w).astype(np.intp)
        bg, on, off = CD_PALETTES[palette]
        words = np.zeros((3, 4), np.uint8)
        words[:, :3] = (bg[::-1], off[::-1], on[::-1])  # BGR: background, OFF, ON
        self._words = words.view(np.uint32).ravel()
        # polarity byte -> colour word, odd ON and even OFF as cdframe reads it
        self._by_p = self._words[(np.arange(256) & 1) + 1]
        self._bgra = np.empty((h, w, 4), np.uint8)
        self._pix = self._bgra.view(np.uint32).reshape(-1)
        self._bgr = np.empty((h, w, 3), np.uint8)
        # (times, pixels) of the last events drawn, oldest first: where colour may expire
        self._live: deque[tuple[np.ndarray, np.ndarray]] = deque()
        self.t0: int | None = None
        self.upto: int | None = None  # events with t < upto are already drawn

    def __call__(self, win: Window) -> np.ndarray:
        """Window `win` as a new RGB image (the renderers' contract)."""
        return cv2.cvtColor(self.bgr(win), cv2.COLOR_BGR2RGB)

    def bgr(self, win: Window) -> np.ndarray:
        """Window `win` in BGR order, in a buffer this object reuses: valid until the next
        call (encode it or copy it first)."""
        ev = win.events
        t0 = win.t0_us
        if self.t0 is None or self.upto is None or not self.t0 <= t0 < self.upto:
            self._reset()
        else:
            ev = ev[np.searchsorted(ev["t"], self.upto) :]
        if len(ev):
            self._draw(ev)
        self._expire(t0)
        self.t0, self.upto = t0, win.t1_us
        return cv2.cvtColor(self._bgra, cv2.COLOR_BGRA2BGR, dst=self._bgr)

    def _reset(self) -> None:
        self._pix.fill(self._words[0])
        self.last_t.fill(_NEVER)
        self._live.clear()

    def _draw(self, ev: np.ndarray) -> None:
        """Colour each pixel by its last event among `ev` (time-sorted)."""
        for i in range(0, len(ev), _MAX_DRAW):  # pieces in order: the later ones win
            self._draw_piece(ev[i : i + _MAX_DRAW])

    def _draw_piece(self, ev: np.ndarray) -> None:
        # `take` rather than fancy indexing: half the cost for these small gathers.
        pix = self.lut_yw.take(ev["y"])
        pix += self.lut_x.take(ev["x"])
        order = np.arange(len(ev), dtype=np.int32)
        best = self._best
        # The last event at each pixel, exactly: numpy does not document which of repeated
        # indices a plain assignment keeps, so every write below has unique indices.
        np.maximum.at(best, pix, order)
        last = np.flatnonzero(best.take(pix) == order)
        where = pix.take(last)
        best[where] = -1
        t = ev["t"].take(last)
        self.last_t[where] = t
        self._pix[where] = self._by_p.take(ev["p"].take(last).view(np.uint8))
        self._live.append((t, where))

    def _expire(self, t0: int) -> None:
        """Back to background: pixels whose last event came before `t0`."""
        live = self._live
        gone: list[np.ndarray] = []
        while live:
            t, where = live[0]
            cut = int(np.searchsorted(t, t0))
            if cut == len(t):
                gone.append(where)
                live.popleft()
                continue
            if cut:
                gone.append(where[:cut])
                live[0] = (t[cut:], where[cut:])
            break
        if gone:
            q = gone[0] if len(gone) == 1 else np.concatenate(gone)
            self._pix[q.compress(self.last_t.take(q) < t0)] = self._words[0]


def _drawer(plan: FramePlan, sensor: tuple[int, int], size: tuple[int, int]) -> Any:
    params = dict(plan.params)
    if plan.method == "cdframe" and set(params) <= {"palette"} and plan.window.duration_us:
        return SlidingCD(sensor, size, str(params.get("palette", "dark")))
    return renderer(plan.method, size[0], size[1], **params)


def preview_plan(plan: FramePlan, method: str | None = None) -> FramePlan:
    """The plan that renders windows for a look at them: pixels kept, none skipped, and
    another render `method` (with its own default parameters) when one is asked."""
    if method is not None and method != plan.method:
        plan = replace(plan, method=method, params=())
    return replace(plan, keep_pixels=True, min_events=0)


def render_range(plan: FramePlan, k0: int, k1: int, wanted: Sequence[int] | None = None) -> list:
    """Windows k0 … k1-1 (only those in `wanted`, when given), rendered and encoded."""
    rec, sensor = _recording(plan.path)
    size = plan.size or sensor
    draw = _drawer(plan, sensor, size)
    want = None if wanted is None else set(wanted)
    # A SlidingCD only reads its windows' events (views, not copies) and needs no call for
    # a window left out: the next one it draws brings every event since the last it drew
    # (or starts afresh after a gap).
    sliding = isinstance(draw, SlidingCD)
    return [
        _one(plan, win, sensor, size, draw)
        for win in rec.windows_between(plan.window, k0, k1, copy=not sliding)
        if want is None or win.index in want
    ]


def encoded_hash(data: bytes) -> str:
    """A frame's identity when there is no cache: a CRC-32 of its encoded bytes and length.

    It only tells frames apart within a run (the caption guard counts the distinct frames,
    at most 50, that one caption text came back for), so 32 bits are plenty, and it costs
    0.02 ms a frame against 0.05 for SHA-256 of the same bytes and 0.3 for SHA-256 of the
    pixels (512x288). The cache keys on `frame_pixel_hash` instead.
    """
    return f"enc:{len(data):x}:{zlib.crc32(data):08x}"


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
    rgb: np.ndarray | None
    order: ChannelOrder
    if isinstance(draw, SlidingCD):
        img, order = draw.bgr(win), "bgr"  # the encoder's order: no conversion, no copy
        need_rgb = plan.fingerprint is not None or plan.keep_pixels
        rgb = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if need_rgb else None
    else:
        _scale_into(win.events, sensor, size)
        img = rgb = draw(win)
        order = "rgb"
    if plan.fingerprint is not None:
        assert rgb is not None
        # The cache keys on the pixels' own hash (of the RGB frame, whatever the order).
        enc = encode_frame(img, plan.encode, pixel_hash=frame_pixel_hash(rgb), order=order)
        pixel_hash = enc.pixel_hash
    else:
        enc = encode_frame(img, plan.encode, pixel_hash="", order=order)
        pixel_hash = encoded_hash(enc.data)
    return EncodedWindow(
        win.index,
        win.t0_us,
        win.t1_us,
        n,
        enc.data if plan.keep_bytes else b"",
        enc.media_type,
        enc.width,
        enc.height,
        b64text(enc.data),
        pixel_hash,
        plan.fingerprint(rgb) if plan.fingerprint is not None else None,
        pixels=rgb if plan.keep_pixels else None,
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


def worker_start() -> None:
    """Run once in each worker process: OpenCV single-threaded, the allocator tuned.

    The workers already fill the cores, one each; OpenCV's own thread pool inside every
    cvtColor/resize only adds hand-offs: measured 0.3 ms of CPU a frame (of ~2) at 512x288.
    """
    cv2.setNumThreads(1)
    tune_allocator()


def make_executor(kind: str = "process", workers: int | None = None) -> Executor:
    """A process pool (forkserver: safe beside the engine's threads) or a thread pool."""
    n = workers or default_workers()
    if kind == "thread":
        return ThreadPoolExecutor(n, thread_name_prefix="evtui-render")
    ctx = get_context("forkserver")
    ctx.set_forkserver_preload(["evtui.frames.pipeline"])  # workers start warm
    return ProcessPoolExecutor(n, mp_context=ctx, initializer=worker_start)


async def encoded_windows(
    plan: FramePlan,
    indices: Iterable[int],
    *,
    executor: Executor,
    chunk: int = DEFAULT_CHUNK,
    ahead: int | None = None,
) -> AsyncIterator[EncodedWindow]:
    """Encoded windows for `indices`, in order, rendered by `executor`'s workers.

    Each range decodes from the checkpoint before it and draws its first window in full,
    so longer ranges cost less per frame (0.05 ms of ~1.6 from 32 windows to 64 at 90 %
    overlap); `ahead` ranges outstanding (default: one running per worker and two more)
    keep ~250 frames in flight.
    """
    loop = asyncio.get_running_loop()
    work = ranges(indices, chunk)
    depth = ahead or default_workers() + 2
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
