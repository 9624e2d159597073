"""What every reader and writer is: the contract the rest of evtui relies on.

A reader decodes a file in blocks of bounded size (`block_bytes` of input) and can
restart at any block's `Checkpoint`, which is what makes window k reachable without
decoding from the start. Subclasses implement `_open` (parse the header) and
`_blocks` (decode); the base class checks every block against the sensor and the
clock, counting problems in `diagnostics` instead of failing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np

from evtui.events.errors import Diagnostics
from evtui.events.types import EVENT_DTYPE, TRIGGER_DTYPE, Block, Checkpoint, concat_events

DEFAULT_BLOCK_BYTES = 1 << 20
"""Input bytes decoded per block: bounds memory whatever the file size. Larger blocks
make 16+ MB output arrays, whose fresh allocation ran 5-10x slower per byte here."""

BACKWARD_TOLERANCE_US = 1000
"""Sensors emit small time inversions (EVT3 vectors, ≤ ~16 µs); larger ones are reported."""


_allocator_primed = False


def prime_allocator() -> None:
    """Let glibc keep the decoders' freed temporaries instead of faulting them in anew.

    glibc raises its mmap and trim thresholds to the largest mmapped block freed so far
    (up to 32 MiB). Until something frees a big block, each block's few MiB of
    temporaries go back to the OS and are faulted in again for the next unit: ~35 % of
    EVT3 decoding time here, measured. Freeing one 16 MiB block raises them for the process;
    other allocators ignore it.
    """
    global _allocator_primed
    if not _allocator_primed:
        _allocator_primed = True
        np.empty(16 << 20, np.uint8)


@dataclass(frozen=True)
class RecordingInfo:
    """What the header says about a recording (no full scan)."""

    path: Path
    format: str
    width: int | None
    height: int | None
    header: Mapping[str, str] = field(default_factory=dict)
    geometry_source: str = "header"  # header | hint | user | inferred | unknown

    @property
    def size(self) -> tuple[int, int] | None:
        if self.width is None or self.height is None:
            return None
        return self.width, self.height


class EventReader(ABC):
    """Streams a recording as blocks of EVENT_DTYPE events, restartable at checkpoints."""

    format: ClassVar[str]
    description: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        path: str | Path,
        *,
        geometry: tuple[int, int] | None = None,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        self.path = Path(path)
        self.block_bytes = max(4096, int(block_bytes))
        self.diagnostics = Diagnostics()
        self._user_geometry = geometry
        prime_allocator()
        self.info: RecordingInfo = self._open()
        if geometry is not None:
            self.info = RecordingInfo(
                self.path, self.info.format, geometry[0], geometry[1], self.info.header, "user"
            )

    @classmethod
    @abstractmethod
    def sniff(cls, head: bytes) -> bool:
        """True when the first bytes of a file (up to 64 KiB) are this format."""

    @abstractmethod
    def _open(self) -> RecordingInfo:
        """Parse the header; raise RecordingError naming the byte offset if it is bad."""

    @abstractmethod
    def _blocks(self, start: Checkpoint | None) -> Iterator[Block]:
        """Decode from `start` (None: the beginning) to the end of the file."""

    def blocks(self, start: Checkpoint | None = None) -> Iterator[Block]:
        """Decoded blocks from `start`, events outside the sensor dropped and counted."""
        size = self.info.size
        last_t: int | None = None
        for block in self._blocks(start):
            ev = block.events
            if ev.dtype != EVENT_DTYPE:  # the contract every consumer relies on
                ev = block.events = ev.astype(EVENT_DTYPE)
            if len(ev) and size is not None:
                ev = self._clip_to_sensor(ev, size, block.start.position)
                block.events = ev
            if len(ev):
                t = ev["t"]
                back = 0
                if len(t) > 1:
                    # One pass in the common case: only count when something stepped back.
                    step = np.diff(t)
                    if int(step.min()) < -BACKWARD_TOLERANCE_US:
                        back = int(np.count_nonzero(step < -BACKWARD_TOLERANCE_US))
                if last_t is not None and t[0] < last_t - BACKWARD_TOLERANCE_US:
                    back += 1
                self.diagnostics.add(
                    "timestamps going back by more than 1 ms", back, block.start.position
                )
                last_t = int(t[-1])
            yield block

    def _clip_to_sensor(self, ev: np.ndarray, size: tuple[int, int], offset: int) -> np.ndarray:
        w, h = size
        if int(ev["x"].max()) < w and int(ev["y"].max()) < h:
            return ev
        inside = (ev["x"] < w) & (ev["y"] < h)
        self.diagnostics.add(
            f"events outside the {w}x{h} sensor dropped", len(ev) - int(inside.sum()), offset
        )
        return ev[inside]

    def events(self, start: Checkpoint | None = None) -> Iterator[np.ndarray]:
        for block in self.blocks(start):
            if len(block.events):
                yield block.events

    def read_all(self) -> np.ndarray:
        """Every event in file order. For tests and small files: memory grows with the file.

        Each block is copied into one arena while it is still in cache; keeping the
        blocks and joining them at the end cost 1.7x more here (fresh pages fault in
        slowly). The arena is sized generously: pages never written cost nothing.
        """
        try:
            guess = self.path.stat().st_size // 2 + 1024
        except OSError:
            guess = 1 << 16
        arena = np.empty(guess, EVENT_DTYPE)
        n = 0
        for ev in self.events():
            k = len(ev)
            if n + k > len(arena):
                grown = np.empty(max(2 * len(arena), n + k), EVENT_DTYPE)
                grown.view("<u8")[: 2 * n] = arena.view("<u8")[: 2 * n]
                arena = grown
            arena.view("<u8")[2 * n : 2 * (n + k)] = np.ascontiguousarray(ev).view("<u8")
            n += k
        return arena[:n]

    def read_triggers(self) -> np.ndarray:
        parts = [b.triggers for b in self._blocks(None) if len(b.triggers)]
        return concat_events(parts, TRIGGER_DTYPE)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release file handles; readers that keep none need not override it."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventWriter(ABC):
    """Streams EVENT_DTYPE blocks into a file; `close` finishes it (footers, indexes)."""

    format: ClassVar[str]
    extensions: ClassVar[tuple[str, ...]] = ()
    supports_triggers: ClassVar[bool] = False
    """Whether `write(..., triggers)` stores trigger edges; callers warn when it cannot."""

    def __init__(self, path: str | Path, width: int, height: int, **options: Any) -> None:
        self.path = Path(path)
        self.width = int(width)
        self.height = int(height)
        self.options = options
        self._closed = False

    @abstractmethod
    def write(self, events: np.ndarray, triggers: np.ndarray | None = None) -> None:
        """Append events (EVENT_DTYPE, time-ordered as in the source) and trigger edges."""

    @abstractmethod
    def _finish(self) -> None:
        """Flush and close the file."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._finish()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
