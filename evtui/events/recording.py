"""A recording as the rest of evtui sees it: identity, geometry, statistics, windows.

The index (one decoding pass) is built on first need and cached under the file's
content fingerprint, so a recording copied elsewhere reuses it and an edited one
does not. Streaming through windows needs no index at all.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path

import numpy as np

from evtui.events.geometry import infer_geometry
from evtui.events.index import (
    INDEX_BLOCK_BYTES,
    RecordingIndex,
    build_index,
    cache_dir,
)
from evtui.events.io import DEFAULT_BLOCK_BYTES, EventReader, open_recording
from evtui.events.io.base import BACKWARD_TOLERANCE_US
from evtui.events.types import EVENT_DTYPE, concat_events
from evtui.events.windows import (
    Window,
    WindowSpec,
    duration_window_count,
    in_bounds,
    slice_count_windows,
    slice_duration_windows,
    sort_by_time,
)

_SAMPLE = 64 * 1024
_EDGE = 1 << 20


def file_fingerprint(path: str | Path) -> str:
    """Content identity of a recording in O(1) reads: size, head, tail and 16 samples.

    Frames are named by (this, window index), so it must not depend on the path or
    the mtime: a copied recording keeps its identity, an edited one changes it.
    """
    path = Path(path)
    size = path.stat().st_size
    h = hashlib.blake2b(digest_size=16)
    h.update(size.to_bytes(8, "little"))
    with path.open("rb") as f:
        h.update(f.read(_EDGE))
        if size > 2 * _EDGE:
            for i in range(1, 17):
                f.seek((size - _SAMPLE) * i // 17)
                h.update(f.read(_SAMPLE))
            f.seek(size - _EDGE)
            h.update(f.read(_EDGE))
        elif size > _EDGE:
            h.update(f.read())
    return h.hexdigest()


class Recording:
    """Reader, fingerprint, cached index and windows of one recording."""

    def __init__(
        self,
        path: str | Path,
        *,
        format: str | None = None,
        geometry: tuple[int, int] | None = None,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
        index_block_bytes: int = INDEX_BLOCK_BYTES,
        use_cache: bool = True,
    ) -> None:
        self.path = Path(path)
        self._format = format
        self._geometry = geometry
        self.block_bytes = block_bytes
        self.index_block_bytes = index_block_bytes
        self.use_cache = use_cache
        self.reader: EventReader = self.open_reader()
        self.info = self.reader.info
        self._index: RecordingIndex | None = None

    def open_reader(self, block_bytes: int | None = None) -> EventReader:
        return open_recording(
            self.path,
            format=self._format,
            geometry=self._geometry,
            block_bytes=block_bytes or self.block_bytes,
        )

    @property
    def format(self) -> str:
        return self.info.format

    @cached_property
    def fingerprint(self) -> str:
        return file_fingerprint(self.path)

    @property
    def has_index(self) -> bool:
        return self._index is not None

    def index(self, progress: Callable[[int], None] | None = None) -> RecordingIndex:
        """The time → offset index: loaded from the cache, else built in one pass."""
        if self._index is not None:
            return self._index
        name = f"{self.fingerprint}-{self.format}-{self.index_block_bytes}.npz"
        path = cache_dir() / "index" / name
        idx = RecordingIndex.load(path, self.fingerprint) if self.use_cache else None
        if idx is None:
            reader = self.open_reader(self.index_block_bytes)
            idx = build_index(reader, self.fingerprint, progress)
            self.reader.diagnostics.counts.update(reader.diagnostics.counts)
            reader.close()
            if self.use_cache:
                # A read-only cache only costs a rebuild next time.
                with contextlib.suppress(OSError):
                    idx.save(path)
        self._index = idx
        return idx

    @property
    def size(self) -> tuple[int, int]:
        """Sensor (width, height): header or user, else inferred from the events' extent."""
        if self.info.size is not None:
            return self.info.size
        idx = self.index()
        return infer_geometry(max(idx.max_x, 0), max(idx.max_y, 0))

    @property
    def geometry_source(self) -> str:
        return self.info.geometry_source if self.info.size is not None else "inferred"

    # -- windows ---------------------------------------------------------------------

    def windows(self, spec: WindowSpec) -> Iterator[Window]:
        """Every window in order, streaming: memory is bounded by the block and window."""
        chunks = self.reader.events()
        if spec.duration_us is not None:
            first = self._index.t_first if self._index is not None else None
            return slice_duration_windows(chunks, spec, first)
        return slice_count_windows(chunks, spec)

    def window_count(self, spec: WindowSpec) -> int:
        idx = self.index()
        if not idx.event_count:
            return 0
        if spec.duration_us is not None:
            start = spec.start_us if spec.start_us is not None else idx.t_first
            end = idx.t_max_all + 1 if spec.end_us is None else min(spec.end_us, idx.t_max_all + 1)
            return duration_window_count(spec, start, end)
        n = self._events_in_bounds(spec)
        return -(-n // spec.step) if n else 0

    def window(self, spec: WindowSpec, k: int) -> Window:
        """Window k, decoded from the nearest checkpoint rather than from the start."""
        if k < 0:
            raise IndexError(f"window index must be >= 0, got {k}")
        idx = self.index()
        if spec.duration_us is not None:
            start = spec.start_us if spec.start_us is not None else idx.t_first
            t0 = start + k * spec.step
            t1 = t0 + spec.duration_us
            if spec.end_us is not None:
                t1 = min(t1, spec.end_us)
            i, j = idx.entries_for_time(t0, t1)
            parts = [ev[(ev["t"] >= t0) & (ev["t"] < t1)] for ev in self._decode(i, j)]
            ev = concat_events(parts)
            return Window(k, t0, t1, sort_by_time(ev))
        return self._count_window(spec, k)

    def windows_between(
        self, spec: WindowSpec, k0: int, k1: int, *, copy: bool = True
    ) -> Iterator[Window]:
        """Windows k0 … k1-1 in order, decoded from the checkpoint before window k0: how a
        worker renders its share of a recording without reading what comes before it.
        Count windows are located one by one (each from its nearest checkpoint).
        `copy=False`: duration windows' events are read-only views (see
        `slice_duration_windows`)."""
        if k1 <= k0:
            return
        if spec.duration_us is None:
            for k in range(k0, k1):
                yield self.window(spec, k)
            return
        idx = self.index()
        start = spec.start_us if spec.start_us is not None else idx.t_first
        t0 = start + k0 * spec.step
        t_end = start + (k1 - 1) * spec.step + spec.duration_us
        if spec.end_us is not None:
            t_end = min(t_end, spec.end_us)
        # Decode a little past the end, so empty windows at the range's end are emitted.
        i, j = idx.entries_for_time(t0 - BACKWARD_TOLERANCE_US, t_end + BACKWARD_TOLERANCE_US)
        j = min(j + 1, len(idx.positions))
        sub = WindowSpec(
            duration_us=spec.duration_us, stride=spec.stride, start_us=t0, end_us=t_end
        )
        for w in slice_duration_windows(self._decode(i, j), sub, copy=copy):
            k = k0 + w.index
            if k >= k1:
                return
            w.index = k
            yield w

    def _decode(self, i: int, j: int) -> Iterator[np.ndarray]:
        """Events of index entries [i, j), decoded from entry i's checkpoint."""
        idx = self.index()
        if i >= j:
            return
        stop = int(idx.positions[j]) if j < len(idx.positions) else None
        reader = self.open_reader(self.index_block_bytes)
        try:
            for block in reader.blocks(idx.checkpoint(i)):
                if stop is not None and block.start.position >= stop:
                    break
                yield block.events
        finally:
            reader.close()

    def _bounds_split(self, spec: WindowSpec) -> tuple[int, int]:
        """(events before start_us in file order, entry from which none precede it)."""
        idx = self.index()
        if spec.start_us is None:
            return 0, 0
        i, j = idx.entries_for_time(spec.start_us, spec.start_us)
        j = max(j, i)
        n_lt = int(idx.events_before[i]) if i < len(idx.events_before) else idx.event_count
        for ev in self._decode(i, j):
            n_lt += int(np.count_nonzero(ev["t"] < spec.start_us))
        return n_lt, j

    def _events_in_bounds(self, spec: WindowSpec) -> int:
        idx = self.index()
        n_lt, _ = self._bounds_split(spec)
        n_ge_end = 0
        if spec.end_us is not None:
            i, j = idx.entries_for_time(spec.end_us, spec.end_us)
            j = max(j, i)
            n_ge_end = idx.event_count - (
                int(idx.events_before[j]) if j < len(idx.events_before) else idx.event_count
            )
            for ev in self._decode(i, j):
                n_ge_end += int(np.count_nonzero(ev["t"] >= spec.end_us))
        return max(0, idx.event_count - n_lt - n_ge_end)

    def _count_window(self, spec: WindowSpec, k: int) -> Window:
        assert spec.count is not None
        idx = self.index()
        want = k * spec.step
        n_lt, j = self._bounds_split(spec)
        before_j = int(idx.events_before[j]) if j < len(idx.events_before) else idx.event_count
        if spec.start_us is None or want + n_lt >= before_j:
            # Past the start boundary every event counts: filtered m is raw m + n_lt.
            raw = want + n_lt
            first = idx.entry_for_event(raw)
            skip = raw - int(idx.events_before[first])
        else:
            first = idx.entries_for_time(spec.start_us, spec.start_us)[0]
            skip = want
        sub = WindowSpec(count=spec.count, stride=spec.count, end_us=spec.end_us)
        stream = self._decode(first, len(idx.positions))
        if spec.start_us is not None:
            stream = (in_bounds(ev, WindowSpec(count=1, start_us=spec.start_us)) for ev in stream)
        win = next(slice_count_windows(_skip_events(stream, skip), sub), None)
        if win is None:
            return Window(k, 0, 0, np.zeros(0, EVENT_DTYPE))
        win.index = k
        return win


def _skip_events(chunks: Iterator[np.ndarray], n: int) -> Iterator[np.ndarray]:
    for ev in chunks:
        if n >= len(ev):
            n -= len(ev)
            continue
        yield ev[n:] if n else ev
        n = 0
