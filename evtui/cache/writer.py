"""Writes the cache's batches on a background thread, so SQLite never stalls the caller.

A batch is one diskcache transaction (the captions) and one segment append (the index
rows). Measured on the event-loop thread, a batch of 32 costs ~1-5 ms, and now and then
SQLite checkpoints its WAL with an fsync that takes 100+ ms; here that happens beside the
loop. Until a batch is written its captions stay readable through `get`.

At most one batch waits while another is written (`submit` blocks beyond that), so a
crash loses at most the caller's partial batch plus two: 3 x batch_size - 1 puts.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from dataclasses import dataclass, field

import diskcache
import numpy as np

from evtui.cache import indexfile as ix

log = logging.getLogger("evtui.cache")


@dataclass
class Batch:
    values: dict[str, bytes]  # record key -> JSON caption record
    rows: np.ndarray  # RECORD rows for the segment


@dataclass
class WriterState:
    end: int = ix.HEADER_SIZE  # bytes of the segment written so far
    batches: int = 0
    errors: int = 0
    problems: list[str] = field(default_factory=list)


class Writer:
    """One background thread per open cache, started on the first batch."""

    def __init__(self, store: diskcache.Cache, segment: ix.SegmentWriter, directory: str) -> None:
        self._store = store
        self._segment = segment
        self._directory = directory
        self._queue: queue.Queue[Batch | None] = queue.Queue(maxsize=1)
        self._lock = threading.Lock()
        self._inflight: list[Batch] = []
        self._thread: threading.Thread | None = None
        self.state = WriterState()

    def submit(self, batch: Batch) -> None:
        with self._lock:
            self._inflight.append(batch)
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="evtui-cache-writer", daemon=True
            )
            self._thread.start()
        self._queue.put(batch)

    def get(self, key: str) -> bytes | None:
        """A caption submitted but not written yet."""
        with self._lock:
            for batch in reversed(self._inflight):
                value = batch.values.get(key)
                if value is not None:
                    return value
        return None

    def pending_rows(self) -> int:
        with self._lock:
            return sum(len(b.rows) for b in self._inflight)

    def drain(self) -> None:
        """Return once every submitted batch has been written (or has failed)."""
        if self._thread is not None:
            self._queue.join()

    def stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def take_problems(self) -> list[str]:
        with self._lock:
            out, self.state.problems = self.state.problems, []
        return out

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            try:
                if batch is None:
                    return
                self._write(batch)
            finally:
                self._queue.task_done()

    def _write(self, batch: Batch) -> None:
        error = None
        try:
            with self._store.transact():
                for key, value in batch.values.items():
                    self._store.set(key, value)
            self._segment.append(batch.rows)
        except (OSError, sqlite3.Error, diskcache.Timeout) as e:
            error = f"{self._directory}: {len(batch.rows)} cache entries not written: {e}"
            log.warning("%s", error)
        with self._lock:
            self._inflight.remove(batch)
            if error is None:
                self.state.end += len(batch.rows) * ix.RECORD.itemsize
                self.state.batches += 1
            else:
                self.state.errors += 1
                self.state.problems.append(error)
