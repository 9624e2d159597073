"""The caption cache: exact pixel hits and near-duplicate frames, shared across jobs.

Captions live in diskcache (SQLite, process-safe) under `record_key(partition, pixels)`, as
JSON. The near-duplicate index (fingerprint, partition, pixels, time, size per row) is kept
in memory (`HammingIndex`) and on disk as a snapshot plus per-process append segments
(`indexfile`), so opening a cache of 1.2 M rows reads a few files instead of 1.2 M records.

Cost model: `lookup` is one diskcache read (the exact key) plus an in-memory search, and a
second read only on a near hit; `put` is in-memory, and every `batch_size` puts go to a
writer thread as one SQLite transaction and one append (`writer.py`). A process crash loses
at most the puts not yet written: 3 x batch_size - 1 (95 by default); `close()` writes
them, fsyncs, and folds this process's segment into the snapshot. Other processes' rows
appear here within `refresh_interval` seconds (their segments are followed); their exact
hits are immediate. Caches still open at interpreter exit are closed then.

Stalls that remain on the caller's thread, measured at 1.2 M rows: every 16,384 new rows
the in-memory index merges its tail (~35 ms); when another process replaces the snapshot
(its close, a prune or clear), the next lookup here reloads it (~0.2-0.4 s).

Meant for one thread (the event loop); calls are serialised by a lock, so a stray call from
another thread is correct, only slower. Open one per process: a forked child must open its
own (its inherited copy does nothing on close).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import diskcache
import numpy as np

from evtui.cache import indexfile as ix
from evtui.cache.hamming import HammingIndex
from evtui.cache.keys import partition, pixel_key, record_key, scope_key
from evtui.cache.writer import Batch, Writer
from evtui.events.index import cache_dir
from evtui.frames.fingerprint import DEFAULT_THRESHOLD, FINGERPRINT_BITS, FINGERPRINT_BYTES

log = logging.getLogger("evtui.cache")

_NEAR_TRIES = 4  # near candidates tried when the nearest one's record has been pruned
_MAX_PROBLEMS = 20
_ROW_OVERHEAD = ix.RECORD.itemsize + 8 * 4  # index row + its 8 multi-index slots, bytes
# Room for new rows after a load: growing the arrays copies ~110 MB at 1.2 M rows (~0.1 s).
_SPARE_ROWS = 65_536
_SPARE_GROWTH = 0.25


_OPEN: weakref.WeakSet[SemanticCache] = weakref.WeakSet()


@atexit.register
def _close_open_caches() -> None:
    """A job that exits without close() still writes its pending captions."""
    for cache in list(_OPEN):
        with contextlib.suppress(Exception):
            cache.close()


def default_cache_dir() -> Path:
    """`<evtui cache dir>/captions`: $EVTUI_CACHE_DIR, else the XDG cache directory."""
    return cache_dir() / "captions"


class CacheError(Exception):
    """The cache cannot be opened or used; the message names the directory and the cause."""


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A reusable caption and where it came from."""

    caption: str
    frame: int  # source window index
    recording: str  # source recording fingerprint
    target: str  # the target that wrote the caption
    prompt_version: str
    distance: int  # fingerprint bits apart; 0 for an exact (pixel) hit
    kind: str  # "exact" | "near"
    extra: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0  # unix seconds


@dataclass
class _Session:
    lookups: int = 0
    exact_hits: int = 0
    near_hits: int = 0
    misses: int = 0
    puts: int = 0


def _fp_words(fp: bytes | bytearray | memoryview | str) -> tuple[bytes, int, int]:
    raw = bytes.fromhex(fp) if isinstance(fp, str) else bytes(fp)
    if len(raw) != FINGERPRINT_BYTES:
        raise ValueError(f"a fingerprint is {FINGERPRINT_BYTES} bytes, got {len(raw)}")
    return raw, int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")


class SemanticCache:
    """Exact and near-duplicate caption cache in one directory; see the module docstring."""

    def __init__(
        self,
        directory: Path,
        threshold: int,
        *,
        batch_size: int,
        flush_interval: float,
        refresh_interval: float,
    ) -> None:
        self.directory = directory
        self.threshold = threshold
        self.batch_size = max(1, int(batch_size))
        self.flush_interval = float(flush_interval)
        self.refresh_interval = float(refresh_interval)
        self._index_dir = directory / "index"
        self._base_path = self._index_dir / ix.BASE_NAME
        self._lock = threading.RLock()
        self._store: diskcache.Cache | None = None
        self._segment = ix.SegmentWriter(self._index_dir)
        self._writer: Writer | None = None
        self._pending_values: dict[str, bytes] = {}
        self._pending_rows: list[tuple[int, int, int, int, int, int, int]] = []
        self._pending_since = 0.0
        self._last_refresh = time.monotonic()
        self._session = _Session()
        self._problems: list[str] = []
        self._closed = False
        self._pid = os.getpid()
        self._reset_memory()

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        directory: str | os.PathLike[str] | None = None,
        threshold: int | None = None,
        *,
        batch_size: int = 32,
        flush_interval: float = 0.5,
        refresh_interval: float = 2.0,
    ) -> SemanticCache:
        """Open (creating if needed) the cache in `directory` (default: `default_cache_dir()`).

        threshold: near-duplicate radius in fingerprint bits (of 128); None: the measured
        default; a negative value turns near matching off (exact hits only).
        """
        path = Path(directory).expanduser() if directory is not None else default_cache_dir()
        if isinstance(threshold, float) and not threshold.is_integer():
            raise ValueError(
                f"threshold is in bits, got {threshold}; convert config's cache.threshold "
                "fraction with evtui.frames.fingerprint.threshold_bits"
            )
        thr = DEFAULT_THRESHOLD if threshold is None else int(threshold)
        if thr > FINGERPRINT_BITS:
            raise ValueError(f"threshold must be at most {FINGERPRINT_BITS} bits, got {thr}")
        cache = cls(
            path,
            thr,
            batch_size=batch_size,
            flush_interval=flush_interval,
            refresh_interval=refresh_interval,
        )
        try:
            path.mkdir(parents=True, exist_ok=True)
            cache._index_dir.mkdir(exist_ok=True)
            cache._store = diskcache.Cache(
                str(path / "store"), eviction_policy="none", statistics=False
            )
            cache._writer = Writer(cache._store, cache._segment, str(path))
            cache._load()
        except (OSError, sqlite3.Error, diskcache.Timeout) as e:
            cache._close_quietly()
            raise CacheError(f"{path}: cannot open the caption cache: {e}") from e
        _OPEN.add(cache)
        if cache._dead_segments():  # a process died without closing: fold its rows in
            try:
                cache.compact()
            except CacheError as e:
                cache._problem(str(e))
        return cache

    def __enter__(self) -> SemanticCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ the hot path

    def lookup(
        self,
        pixel_hash: str,
        fingerprint: bytes | str,
        *,
        prompt_version: str,
        target: str,
        scope: str,
        variant: str = "",
        near: bool = True,
    ) -> CacheHit | None:
        """The cached caption for this frame: an exact pixel match, else (with `near`) the
        nearest frame within the threshold in the same (prompt version, scope, variant);
        None on a miss.

        `variant` names anything else a caption depends on (e.g. render method and size).
        """
        part = partition(prompt_version, scope_key(target, scope), variant)
        pix = pixel_key(pixel_hash)
        _, w0, w1 = _fp_words(fingerprint)
        with self._lock:
            self._check_open()
            self._maintain()
            self._session.lookups += 1
            hit = _hit(self._get(record_key(part, pix)), 0, "exact")
            if hit is not None:
                self._session.exact_hits += 1
                return hit
            if near and self.threshold >= 0:
                found = self._index.search(w0, w1, part, self.threshold)
                rows = found.index[:_NEAR_TRIES].tolist()
                for i, d in zip(rows, found.distance[:_NEAR_TRIES].tolist(), strict=True):
                    hit = _hit(self._get(record_key(part, _pixels(self._rows["ph"][i]))), d, "near")
                    if hit is not None:
                        self._session.near_hits += 1
                        return hit
            self._session.misses += 1
            return None

    def put(
        self,
        pixel_hash: str,
        fingerprint: bytes | str,
        *,
        prompt_version: str,
        target: str,
        scope: str,
        caption: str,
        frame: int,
        recording: str,
        extra: dict[str, Any] | None = None,
        variant: str = "",
    ) -> None:
        """Store a caption; visible to this process's lookups at once, durable by batch."""
        part = partition(prompt_version, scope_key(target, scope), variant)
        pix = pixel_key(pixel_hash)
        raw, w0, w1 = _fp_words(fingerprint)
        if not isinstance(caption, str):
            raise TypeError(f"caption must be a str, got {type(caption).__name__}")
        now = time.time()
        try:
            value = json.dumps(
                {
                    "caption": caption,
                    "frame": int(frame),
                    "recording": str(recording),
                    "target": target,
                    "prompt_version": str(prompt_version),
                    "scope": scope,
                    "variant": str(variant),
                    "fp": raw.hex(),
                    "created": now,
                    "extra": dict(extra or {}),
                },
                ensure_ascii=False,
                separators=(",", ":"),
            ).encode()
        except (TypeError, ValueError) as e:
            raise ValueError(f"cache entry for frame {frame}: extra is not JSON data ({e})") from e
        ph0 = int.from_bytes(pix[:8], "little")
        ph1 = int.from_bytes(pix[8:], "little")
        row = (w0, w1, ph0, ph1, part, int(now * 1e6), len(value))
        with self._lock:
            self._check_open()
            self._pending_values[record_key(part, pix)] = value
            if not self._pending_rows:
                self._pending_since = time.monotonic()
            self._pending_rows.append(row)
            self._append_rows(
                np.array([((w0, w1), (ph0, ph1), part, row[5], row[6], 0)], ix.RECORD)
            )
            self._session.puts += 1
            if len(self._pending_rows) >= self.batch_size:
                self._flush()
            else:
                self._maintain()

    # ------------------------------------------------------------------ housekeeping

    def flush(self) -> None:
        """Write pending puts now (they are also written every `batch_size` puts)."""
        with self._lock:
            self._check_open()
            self._flush(wait=True)

    def stats(self) -> dict[str, Any]:
        """Counts, sizes and this session's hit rates, as plain JSON-ready data."""
        with self._lock:
            self._check_open()
            self._collect_problems()
            n = self._n
            created = self._rows["created"][:n]
            segments = ix.list_segments(self._index_dir)
            index_bytes = sum(_size(p) for p in [self._base_path, *segments])
            s = self._session
            w = self._writer.state if self._writer else None
            return {
                "directory": str(self.directory),
                "entries": n,
                "partitions": int(np.unique(self._rows["part"][:n]).size) if n else 0,
                "pending": len(self._pending_rows)
                + (self._writer.pending_rows() if self._writer else 0),
                "stored_records": len(self._store) if self._store is not None else 0,
                "store_bytes": int(self._store.volume()) if self._store is not None else 0,
                "index_bytes": index_bytes,
                "segments": len(segments),
                "oldest": float(created.min()) / 1e6 if n else None,
                "newest": float(created.max()) / 1e6 if n else None,
                "threshold_bits": self.threshold,
                "fingerprint_bits": FINGERPRINT_BITS,
                "session": {
                    "lookups": s.lookups,
                    "exact_hits": s.exact_hits,
                    "near_hits": s.near_hits,
                    "misses": s.misses,
                    "hit_rate": (s.exact_hits + s.near_hits) / s.lookups if s.lookups else 0.0,
                    "puts": s.puts,
                    "batches_written": w.batches if w else 0,
                    "write_errors": w.errors if w else 0,
                },
                "problems": list(self._problems),
            }

    def prune(
        self,
        *,
        max_age: float | None = None,
        max_bytes: int | None = None,
        now: float | None = None,
    ) -> dict[str, int]:
        """Drop entries older than `max_age` seconds, then the oldest until the entries
        take at most `max_bytes` (captions plus index). Returns counts and bytes freed."""
        if max_age is not None and max_age < 0:
            raise ValueError(f"max_age must be >= 0 seconds, got {max_age}")
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        t_now = time.time() if now is None else float(now)

        def keep(rows: np.ndarray) -> np.ndarray:
            mask = np.ones(len(rows), dtype=bool)
            if max_age is not None:
                mask &= rows["created"] >= int((t_now - max_age) * 1e6)
            if max_bytes is not None:
                idx = np.nonzero(mask)[0]
                newest_first = idx[np.argsort(-rows["created"][idx], kind="stable")]
                cost = rows["size"][newest_first].astype(np.int64) + _ROW_OVERHEAD
                mask[newest_first[np.cumsum(cost) > max_bytes]] = False
            return mask

        with self._lock, self._guard("prune"):
            self._check_open()
            return self._rewrite(keep)

    def clear(self) -> None:
        """Remove every entry, from every process's view (they notice within a refresh)."""
        with self._lock, self._guard("clear"):
            self._check_open()
            self._rewrite(lambda rows: np.zeros(len(rows), dtype=bool), drop_store=True)

    def compact(self) -> None:
        """Fold segments (this process's and dead ones) into the snapshot."""
        with self._lock, self._guard("compact"):
            self._check_open()
            self._rewrite(None)

    def close(self) -> None:
        """Write pending puts, fold this process's segment into the snapshot, release files."""
        with self._lock:
            if self._closed:
                return
            if os.getpid() != self._pid:  # a forked child's copy: the files are the parent's
                self._closed = True
                return
            try:
                self._flush(wait=True)
                if self._segment.is_open or self._dead_segments():
                    self._rewrite(None, closing=True)
            except (OSError, sqlite3.Error, diskcache.Timeout) as e:
                self._problem(f"{self.directory}: could not finish writing the cache: {e}")
            finally:
                self._close_quietly()

    # ------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        """Storage failures of maintenance actions as one CacheError naming the directory."""
        try:
            yield
        except (OSError, sqlite3.Error, diskcache.Timeout, ix.CorruptIndex) as e:
            raise CacheError(f"{self.directory}: cache {action} failed: {e}") from e

    def _check_open(self) -> None:
        if self._closed or self._store is None:
            raise CacheError(f"{self.directory}: the cache is closed")

    def _close_quietly(self) -> None:
        self._closed = True
        _OPEN.discard(self)
        if self._writer is not None:
            self._writer.stop()
        self._segment.close(fsync=True)
        if self._store is not None:
            with contextlib.suppress(Exception):
                self._store.close()

    def _problem(self, msg: str) -> None:
        log.warning("%s", msg)
        self._problems = [*self._problems[-(_MAX_PROBLEMS - 1) :], msg]

    def _get(self, key: str) -> bytes | None:
        value = self._pending_values.get(key)
        if value is None and self._writer is not None:
            value = self._writer.get(key)
        if value is not None:
            return value
        assert self._store is not None
        try:
            got = self._store.get(key)
        except (sqlite3.Error, diskcache.Timeout, OSError) as e:
            self._problem(f"{self.directory}: cache read failed: {e}")
            return None
        return got if isinstance(got, bytes) else None

    def _maintain(self) -> None:
        now = time.monotonic()
        if self._pending_rows and now - self._pending_since >= self.flush_interval:
            self._flush()
        if now - self._last_refresh >= self.refresh_interval:
            self._last_refresh = now
            try:
                self._refresh()
            except (OSError, sqlite3.Error, diskcache.Timeout, ix.CorruptIndex) as e:
                # A lookup must not fail because the shared directory misbehaves.
                self._problem(f"{self.directory}: could not follow other processes: {e}")

    # -- memory

    def _reset_memory(self, capacity: int = 1024) -> None:
        self._index = HammingIndex(capacity)
        self._rows = np.zeros(max(16, capacity), dtype=ix.RECORD)
        self._n = 0
        self._offsets: dict[str, int] = {}
        self._base_token: bytes | None = None

    def _append_rows(self, rows: np.ndarray) -> None:
        k = len(rows)
        if k == 0:
            return
        if self._n + k > len(self._rows):
            grown = np.zeros(max(self._n + k, 2 * len(self._rows)), dtype=ix.RECORD)
            grown[: self._n] = self._rows[: self._n]
            self._rows = grown
        self._rows[self._n : self._n + k] = rows
        self._n += k
        self._index.add(rows["fp"], rows["part"])

    # -- loading and following other processes

    def _load(self) -> None:
        """Snapshot plus every segment past its watermark; retried if the snapshot changes."""
        for _ in range(3):
            token = ix.read_base_token(self._base_path)
            seg_paths = ix.list_segments(self._index_dir)
            spare = sum(_size(p) for p in seg_paths) // ix.RECORD.itemsize + _SPARE_ROWS
            base = self._read_base_or_rebuild(spare)
            offsets = dict(base.watermarks) if base else {}
            extra: list[np.ndarray] = []
            for seg in ix.list_segments(self._index_dir):
                got = self._read_segment(seg, offsets.get(seg.name, 0))
                if got is not None:
                    extra.append(got.rows)
                    offsets[seg.name] = got.end
            if ix.read_base_token(self._base_path) == token:
                break
        self._reset_memory()
        if base is not None and base.n:
            rows = base.rows
            if base.order is not None and base.starts is not None:
                self._index = HammingIndex.from_tables(
                    rows["fp"][: base.n], rows["part"][: base.n], base.order, base.starts
                )
            else:
                self._index = HammingIndex(len(rows))
                self._index.add(rows["fp"][: base.n], rows["part"][: base.n])
            self._rows, self._n = rows, base.n
        for rows in extra:
            self._append_rows(rows)
        self._index.merge()
        self._offsets = offsets
        self._base_token = base.token if base else None
        if self._writer is not None:
            self._writer.state.end = offsets.get(self._segment.name, self._writer.state.end)

    def _read_base_or_rebuild(self, spare: int = 0) -> ix.Base | None:
        try:
            return ix.read_base(self._base_path, spare, _SPARE_GROWTH)
        except ix.CorruptIndex as e:
            self._problem(f"{e}; rebuilding the index from the stored captions")
        with ix.exclusive_lock(self._index_dir):
            try:  # another process may have rebuilt it while we waited
                return ix.read_base(self._base_path, spare, _SPARE_GROWTH)
            except ix.CorruptIndex:
                pass
            aside = self._base_path.with_name(f"{ix.BASE_NAME}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                os.replace(self._base_path, aside)
            rows = self._rows_from_store()
            marks = {p.name: _whole_rows_end(p) for p in ix.list_segments(self._index_dir)}
            index = HammingIndex(len(rows) + 16)
            index.add(rows["fp"], rows["part"])
            order, starts = index.tables()
            token = ix.write_base(self._base_path, rows, order, starts, marks)
            return ix.Base(token, rows, len(rows), order, starts, marks)

    def _rows_from_store(self) -> np.ndarray:
        """Index rows for every stored caption (slow: one read each; only after damage)."""
        assert self._store is not None
        out = []
        for key in self._store.iterkeys():
            if not isinstance(key, str) or len(key) != 48:
                continue
            value = self._store.get(key)
            try:
                rec = json.loads(value)
                fp = bytes.fromhex(rec["fp"])
                part = int(key[:16], 16)
                pix = bytes.fromhex(key[16:])
                created = int(float(rec["created"]) * 1e6)
            except (TypeError, ValueError, KeyError):
                continue
            if len(fp) != FINGERPRINT_BYTES:
                continue
            out.append(
                (
                    int.from_bytes(fp[:8], "little"),
                    int.from_bytes(fp[8:], "little"),
                    int.from_bytes(pix[:8], "little"),
                    int.from_bytes(pix[8:], "little"),
                    part,
                    created,
                    len(value),
                )
            )
        return _rows_array(out)

    def _read_segment(self, path: Path, start: int) -> ix.SegmentRead | None:
        try:
            got = ix.read_segment(path, start)
        except FileNotFoundError:
            return None
        except ix.CorruptIndex as e:
            self._problem(f"{e}; segment ignored")
            return None
        except OSError as e:
            self._problem(f"{path}: unreadable ({e}); segment ignored")
            return None
        for msg in got.problems:
            self._problem(msg)
        return got

    def _refresh(self) -> None:
        """Pick up other processes' rows; reload everything if the snapshot was replaced."""
        token = ix.read_base_token(self._base_path)
        if token != self._base_token:
            self._flush(wait=True)
            self._load()
            return
        for seg in ix.list_segments(self._index_dir):
            if seg.name == self._segment.name:
                continue
            start = self._offsets.get(seg.name, ix.HEADER_SIZE)
            if _size(seg) < start + ix.RECORD.itemsize:
                continue
            got = self._read_segment(seg, start)
            if got is not None:
                self._append_rows(got.rows)
                self._offsets[seg.name] = got.end

    def _dead_segments(self) -> list[Path]:
        return [
            p
            for p in ix.list_segments(self._index_dir)
            if p.name != self._segment.name and not ix.segment_is_live(p)
        ]

    # -- writing

    def _flush(self, *, wait: bool = False) -> None:
        """Hand the pending puts to the writer thread; `wait`: until they are on disk."""
        assert self._writer is not None
        if self._pending_rows:
            batch = Batch(self._pending_values, _rows_array(self._pending_rows))
            self._pending_values, self._pending_rows = {}, []
            self._writer.submit(batch)
        if wait:
            self._writer.drain()
        self._collect_problems()

    def _collect_problems(self) -> None:
        if self._writer is not None:
            for msg in self._writer.take_problems():
                self._problems = [*self._problems[-(_MAX_PROBLEMS - 1) :], msg]

    def _rewrite(
        self, keep: Any, *, closing: bool = False, drop_store: bool = False
    ) -> dict[str, int]:
        """Write a new snapshot from memory (after catching up with the disk), optionally
        keeping only the rows `keep(rows)` selects; delete the segments it absorbed."""
        assert self._store is not None
        self._flush(wait=True)
        with ix.exclusive_lock(self._index_dir):
            # Dead segments cannot grow any more: once read to their end they can go.
            # (One that dies after this look is kept and folded in next time.)
            dead = self._dead_segments()
            if ix.read_base_token(self._base_path) != self._base_token:
                self._load()
            else:
                self._refresh_segments_only()
            own_open = self._segment.is_open
            marks = dict(self._offsets)
            if own_open and self._writer is not None:
                marks[self._segment.name] = self._writer.state.end
            rows = self._rows[: self._n]
            before = int(rows["size"].sum()) + _ROW_OVERHEAD * len(rows)
            removed = 0
            if keep is None:
                order, starts = self._index.tables()
                kept_rows = rows
            else:
                mask = np.asarray(keep(rows), dtype=bool)
                kept_rows = rows[mask].copy()
                removed = int(len(rows) - len(kept_rows))
                self._delete_records(rows[~mask], kept_rows, drop_store)
                index = HammingIndex(len(kept_rows) + 16)
                index.add(kept_rows["fp"], kept_rows["part"])
                order, starts = index.tables()
            live = {p.name for p in ix.list_segments(self._index_dir)}
            marks = {k: v for k, v in marks.items() if k in live}
            token = ix.write_base(self._base_path, kept_rows, order, starts, marks)
            for p in dead:
                with contextlib.suppress(OSError):
                    p.unlink()
            if closing:
                self._segment.close(fsync=True, delete=True)
            after = int(kept_rows["size"].sum()) + _ROW_OVERHEAD * len(kept_rows)
            if keep is not None:
                self._load()
            else:
                self._base_token = token
                for p in dead:
                    self._offsets.pop(p.name, None)
        return {"removed": removed, "kept": len(kept_rows), "freed_bytes": before - after}

    def _refresh_segments_only(self) -> None:
        for seg in ix.list_segments(self._index_dir):
            if seg.name == self._segment.name:
                continue
            got = self._read_segment(seg, self._offsets.get(seg.name, 0))
            if got is not None:
                self._append_rows(got.rows)
                self._offsets[seg.name] = got.end

    def _delete_records(self, removed: np.ndarray, kept: np.ndarray, everything: bool) -> None:
        assert self._store is not None
        if everything:
            self._store.clear()
            return
        if not len(removed):
            return
        kept_keys = set(_row_keys(kept)) if len(kept) else set()
        doomed = [k for k in set(_row_keys(removed)) if k not in kept_keys]
        for i in range(0, len(doomed), 1000):
            with self._store.transact():
                for key in doomed[i : i + 1000]:
                    self._store.delete(key)


# ---------------------------------------------------------------------- helpers


def _rows_array(rows: list[tuple[int, int, int, int, int, int, int]]) -> np.ndarray:
    if not rows:
        return np.zeros(0, dtype=ix.RECORD)
    a = np.array(rows, dtype=np.uint64)
    return ix.make_records(a[:, 0:2], a[:, 2:4], a[:, 4], a[:, 5].astype(np.int64), a[:, 6])


def _row_keys(rows: np.ndarray) -> list[str]:
    ph = np.ascontiguousarray(rows["ph"], dtype="<u8").view(np.uint8).reshape(-1, 16)
    return [f"{int(p):016x}{bytes(h).hex()}" for p, h in zip(rows["part"], ph, strict=True)]


def _pixels(ph: np.ndarray) -> bytes:
    return int(ph[0]).to_bytes(8, "little") + int(ph[1]).to_bytes(8, "little")


def _hit(value: bytes | None, distance: int, kind: str) -> CacheHit | None:
    if value is None:
        return None
    try:
        rec = json.loads(value)
        return CacheHit(
            caption=str(rec["caption"]),
            frame=int(rec["frame"]),
            recording=str(rec["recording"]),
            target=str(rec["target"]),
            prompt_version=str(rec["prompt_version"]),
            distance=int(distance),
            kind=kind,
            extra=dict(rec.get("extra") or {}),
            created=float(rec.get("created", 0.0)),
        )
    except (ValueError, KeyError, TypeError):
        return None


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _whole_rows_end(path: Path) -> int:
    size = _size(path)
    return ix.HEADER_SIZE + max(0, size - ix.HEADER_SIZE) // ix.RECORD.itemsize * ix.RECORD.itemsize
