"""Shared benchmark helpers: import path, deterministic synthetic events, timing."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from evtui.events.types import EVENT_DTYPE  # noqa: E402


def sensor_like_events(n: int, width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """n events shaped like a sensor's output: time-ordered bursts of same-row runs.

    Real readouts group pixels of one row at one timestamp (what EVT3 vectors encode);
    uniform random events would flatter EVT2/DAT and penalise EVT3 unrealistically.
    """
    rng = np.random.default_rng(seed)
    n_runs = n // 3 + 1
    lengths = np.minimum(rng.geometric(0.3, n_runs), 24)
    lengths = lengths[: np.searchsorted(np.cumsum(lengths), n) + 1]
    total = int(lengths.sum())
    run_t = np.cumsum(rng.poisson(1.5, len(lengths))).astype(np.int64) + 1_000
    run_y = rng.integers(0, height, len(lengths))
    run_x = rng.integers(0, width - 24, len(lengths))
    run_p = rng.integers(0, 2, len(lengths))
    starts = np.cumsum(lengths) - lengths
    within = np.arange(total) - np.repeat(starts, lengths)
    ev = np.empty(total, EVENT_DTYPE)
    ev["t"] = np.repeat(run_t, lengths)
    ev["x"] = np.repeat(run_x, lengths) + within
    ev["y"] = np.repeat(run_y, lengths)
    ev["p"] = np.repeat(run_p, lengths)
    return ev[:n]


def best_of(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    """Fastest wall time of `repeat` runs and the last result."""
    best = float("inf")
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def proc_cpu_s(pid: int | str, missing: float = 0.0) -> float:
    """utime + stime of a process from /proc (`missing` once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return missing
