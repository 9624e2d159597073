"""Which windows a pilot captions: uniform, seeded random, or stratified by activity.

A pilot of N frames stands for a recording of millions, so the sample must cover quiet
and busy stretches alike. Activity per window comes from the recording index's 10 ms
event-rate bins (one pass, cached), never from decoding the windows themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from evtui.events.index import RATE_BIN_US
from evtui.events.recording import Recording
from evtui.events.windows import WindowSpec

SampleMethod = Literal["uniform", "random", "stratified"]
METHODS: tuple[str, ...] = ("uniform", "random", "stratified")
DEFAULT_STRATA = 5


@dataclass(frozen=True)
class WindowActivity:
    """Estimated activity of every window: events per window (duration windows) or events
    per second (count windows, which all hold the same number of events)."""

    values: np.ndarray  # float64 (n_windows,)
    unit: str  # "events" | "events/s"


@dataclass(frozen=True)
class Sample:
    """The sampled windows and, for a stratified sample, where each stratum lies."""

    frames: np.ndarray  # int64, sorted, unique window indices
    method: str
    seed: int
    n_windows: int
    strata_bounds: tuple[tuple[float, float], ...] = ()  # activity (low, high) per stratum
    strata_counts: tuple[int, ...] = ()  # sampled frames per stratum
    eligible: int = 0  # windows the strata were drawn from

    def describe(self) -> str:
        how = {"uniform": "evenly spaced", "random": f"seeded random (seed {self.seed})"}.get(
            self.method, f"stratified by activity in {len(self.strata_counts)} strata"
        )
        if self.method == "stratified":
            how += f" (seed {self.seed})"
        return f"{len(self.frames)} of {self.n_windows} windows, {how}"


def window_activity(rec: Recording, spec: WindowSpec) -> WindowActivity:
    """Per-window activity from the index's cumulative event count, interpolated within bins.

    Exact at bin edges and linear inside a 10 ms bin: ample to rank windows, and it costs
    two `np.interp` calls for any number of windows.
    """
    idx = rec.index()
    n = rec.window_count(spec)
    if n == 0:
        return WindowActivity(np.zeros(0), "events" if spec.duration_us else "events/s")
    bins = np.asarray(idx.rate_bins, np.float64)
    edges_t = idx.t_first + np.arange(len(bins) + 1, dtype=np.float64) * RATE_BIN_US
    cum = np.concatenate([[0.0], np.cumsum(bins)])
    k = np.arange(n, dtype=np.float64)
    if spec.duration_us is not None:
        start = spec.start_us if spec.start_us is not None else idx.t_first
        t0 = start + k * spec.step
        stop = idx.t_max_all + 1 if spec.end_us is None else min(spec.end_us, idx.t_max_all + 1)
        t1 = np.minimum(t0 + spec.duration_us, stop)
        counts = np.interp(t1, edges_t, cum) - np.interp(t0, edges_t, cum)
        return WindowActivity(np.maximum(counts, 0.0), "events")
    assert spec.count is not None
    before = 0.0 if spec.start_us is None else float(np.interp(spec.start_us, edges_t, cum))
    total = cum[-1] if spec.end_us is None else float(np.interp(spec.end_us, edges_t, cum))
    m0 = before + k * spec.step
    m1 = np.minimum(m0 + spec.count, total)
    # Time at which the cumulative count reaches m: the inverse of the same curve.
    dt_us = np.interp(m1, cum, edges_t) - np.interp(m0, cum, edges_t)
    rate = (m1 - m0) / np.maximum(dt_us, 1.0) * 1e6
    return WindowActivity(np.maximum(rate, 0.0), "events/s")


def sample_windows(
    n_windows: int,
    n: int,
    method: str = "uniform",
    *,
    seed: int = 0,
    activity: np.ndarray | None = None,
    strata: int = DEFAULT_STRATA,
    min_activity: float | None = None,
) -> Sample:
    """N window indices out of `n_windows`; all of them when N covers the recording.

    stratified: windows ranked by activity (ties broken at random) are cut into `strata`
    equal-sized quantile strata, and each gets its proportional share of N, drawn at
    random. Windows below `min_activity` (they would be skipped as near-empty, never sent)
    are left out of the strata when enough others remain.
    """
    if method not in METHODS:
        raise ValueError(f"unknown sample method {method!r} (one of {', '.join(METHODS)})")
    if n <= 0:
        raise ValueError(f"the pilot needs at least one frame, got {n}")
    if n_windows <= 0:
        raise ValueError("the recording has no windows to sample")
    rng = np.random.default_rng(seed)
    if method == "stratified":
        if activity is None or len(activity) != n_windows:
            raise ValueError("a stratified sample needs the activity of every window")
        return _stratified(n_windows, n, rng, seed, np.asarray(activity), strata, min_activity)
    if n >= n_windows:
        return Sample(np.arange(n_windows, dtype=np.int64), method, seed, n_windows)
    if method == "uniform":
        frames = ((np.arange(n) + 0.5) * (n_windows / n)).astype(np.int64)
    else:
        frames = np.sort(rng.choice(n_windows, size=n, replace=False).astype(np.int64))
    return Sample(frames, method, seed, n_windows)


def _stratified(
    n_windows: int,
    n: int,
    rng: np.random.Generator,
    seed: int,
    activity: np.ndarray,
    strata: int,
    min_activity: float | None,
) -> Sample:
    pool = np.arange(n_windows, dtype=np.int64)
    if min_activity is not None:
        keep = pool[activity >= min_activity]
        if len(keep) >= n:
            pool = keep
    m = len(pool)
    n = min(n, m)
    k = max(1, min(strata, n))
    act = activity[pool]
    order = pool[np.lexsort((rng.random(m), act))]  # by activity, ties at random
    stratum = np.arange(m) * k // m
    sizes = np.bincount(stratum, minlength=k)
    # Largest-remainder allocation, proportional to stratum size (never above it, as n <= m).
    exact = n * sizes / m
    alloc = np.floor(exact).astype(np.int64)
    short = n - int(alloc.sum())
    if short:
        alloc[np.argsort(-(exact - alloc), kind="stable")[:short]] += 1
    starts = np.concatenate([[0], np.cumsum(sizes)])
    picked = [
        rng.choice(order[starts[i] : starts[i + 1]], size=int(alloc[i]), replace=False)
        for i in range(k)
    ]
    sorted_act = activity[order]
    bounds = tuple(
        (float(sorted_act[starts[i]]), float(sorted_act[starts[i + 1] - 1])) for i in range(k)
    )
    frames = np.sort(np.concatenate(picked).astype(np.int64))
    return Sample(
        frames,
        "stratified",
        seed,
        n_windows,
        strata_bounds=bounds,
        strata_counts=tuple(int(a) for a in alloc),
        eligible=m,
    )


__all__ = [
    "METHODS",
    "Sample",
    "SampleMethod",
    "WindowActivity",
    "sample_windows",
    "window_activity",
]
