"""A time → byte-offset index over a recording, built in one pass and cached on disk.

Each entry is a reader checkpoint with the event count before it and the time span of
the events that follow it up to the next entry. Window k is then found with two binary
searches and decoded from the nearest checkpoint, never from the start of the file.
Timestamps may step back a little (EVT3 vectors), so the searches use the running
maximum of each entry's last time and the suffix minimum of its first time.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from evtui.events.io.base import EventReader
from evtui.events.types import Checkpoint

INDEX_VERSION = 1
INDEX_BLOCK_BYTES = 1 << 20
"""Granularity of the index: a random window decodes at most ~1 MiB more than it needs."""

RATE_BIN_US = 10_000
"""Peak event rate is reported over 10 ms bins."""


def cache_dir() -> Path:
    """Where evtui keeps derived data: $EVTUI_CACHE_DIR, else the XDG cache directory."""
    env = os.environ.get("EVTUI_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "evtui"


@dataclass
class RecordingIndex:
    """Checkpoints with event counts and time spans, plus whole-file statistics."""

    fingerprint: str
    format: str
    positions: np.ndarray  # int64 (n,)
    states: np.ndarray  # int64 (n, k)
    events_before: np.ndarray  # int64 (n,) events delivered before each entry
    t_min: np.ndarray  # int64 (n,) first time in the entry's span (INT64 max when empty)
    t_max: np.ndarray  # int64 (n,) last time in the entry's span (INT64 min when empty)
    event_count: int
    t_first: int  # smallest timestamp of the first non-empty entry: where windows start
    t_min_all: int
    t_max_all: int
    max_x: int
    max_y: int
    rate_bins: np.ndarray  # int64 counts per RATE_BIN_US from t_first
    trigger_count: int = 0

    @property
    def duration_us(self) -> int:
        return max(0, self.t_max_all - self.t_first + 1) if self.event_count else 0

    @property
    def mean_rate(self) -> float:
        d = self.duration_us
        return self.event_count / (d * 1e-6) if d else 0.0

    @property
    def peak_rate(self) -> float:
        return float(self.rate_bins.max()) / (RATE_BIN_US * 1e-6) if len(self.rate_bins) else 0.0

    def checkpoint(self, i: int) -> Checkpoint:
        state = tuple(int(v) for v in self.states[i]) if self.states.shape[1] else ()
        return Checkpoint(int(self.positions[i]), state, int(self.events_before[i]))

    def entries_for_time(self, t0: int, t1: int) -> tuple[int, int]:
        """Entries [i, j) that can hold events with t0 <= t < t1."""
        run_max = np.maximum.accumulate(self.t_max)
        suffix_min = np.minimum.accumulate(self.t_min[::-1])[::-1]
        i = int(np.searchsorted(run_max, t0, side="left"))
        j = int(np.searchsorted(suffix_min, t1, side="left"))
        return min(i, len(self.t_max)), max(j, i)

    def entry_for_event(self, k: int) -> int:
        """The entry whose span holds event number k (in delivery order)."""
        return max(0, int(np.searchsorted(self.events_before, k, side="right")) - 1)

    # -- persistence -----------------------------------------------------------------

    def save(self, path: Path) -> None:
        meta = {
            "version": INDEX_VERSION,
            "fingerprint": self.fingerprint,
            "format": self.format,
            "event_count": self.event_count,
            "t_first": self.t_first,
            "t_min_all": self.t_min_all,
            "t_max_all": self.t_max_all,
            "max_x": self.max_x,
            "max_y": self.max_y,
            "trigger_count": self.trigger_count,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
                    positions=self.positions,
                    states=self.states,
                    events_before=self.events_before,
                    t_min=self.t_min,
                    t_max=self.t_max,
                    rate_bins=self.rate_bins,
                )
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: Path, fingerprint: str) -> RecordingIndex | None:
        """The cached index, or None when absent, stale or unreadable (it is rebuilt)."""
        try:
            with np.load(path) as z:
                meta = json.loads(z["meta"].tobytes())
                if meta.get("version") != INDEX_VERSION or meta.get("fingerprint") != fingerprint:
                    return None
                arrays = {k: z[k] for k in z.files if k != "meta"}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, json.JSONDecodeError):
            return None
        meta.pop("version")
        return cls(**meta, **arrays)


def build_index(
    reader: EventReader,
    fingerprint: str,
    progress: Callable[[int], None] | None = None,
) -> RecordingIndex:
    """One pass over the recording; `progress` gets the byte/element position reached."""
    positions: list[int] = []
    states: list[tuple[int, ...]] = []
    before: list[int] = []
    t_min: list[int] = []
    t_max: list[int] = []
    count = 0
    triggers = 0
    max_x = max_y = -1
    t_first: int | None = None
    rate = np.zeros(0, np.int64)
    imax, imin = np.iinfo(np.int64).max, np.iinfo(np.int64).min
    lo_all, hi_all = imax, imin
    for block in reader.blocks():
        ev = block.events
        triggers += len(block.triggers)
        positions.append(block.start.position)
        states.append(block.start.state)
        before.append(count)
        if len(ev):
            t = ev["t"]
            lo, hi = int(t.min()), int(t.max())
            if t_first is None:
                t_first = lo
            lo_all, hi_all = min(lo_all, lo), max(hi_all, hi)
            max_x = max(max_x, int(ev["x"].max()))
            max_y = max(max_y, int(ev["y"].max()))
            bins = np.bincount(np.maximum((t - t_first) // RATE_BIN_US, 0))
            if len(bins) > len(rate):
                rate = np.concatenate([rate, np.zeros(len(bins) - len(rate), np.int64)])
            rate[: len(bins)] += bins
            count += len(ev)
        else:
            lo, hi = imax, imin
        t_min.append(lo)
        t_max.append(hi)
        if progress is not None:
            progress(block.start.position)
    width = max((len(s) for s in states), default=0)
    state_arr = np.zeros((len(states), width), np.int64)
    for i, s in enumerate(states):
        state_arr[i, : len(s)] = s
    return RecordingIndex(
        fingerprint=fingerprint,
        format=reader.info.format,
        positions=np.asarray(positions, np.int64),
        states=state_arr,
        events_before=np.asarray(before, np.int64),
        t_min=np.asarray(t_min, np.int64),
        t_max=np.asarray(t_max, np.int64),
        event_count=count,
        t_first=t_first if t_first is not None else 0,
        t_min_all=lo_all if count else 0,
        t_max_all=hi_all if count else 0,
        max_x=max_x,
        max_y=max_y,
        rate_bins=rate,
        trigger_count=triggers,
    )
