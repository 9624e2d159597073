"""Windows: streaming slicers against a brute-force oracle, and CLI-text parsing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtui.events.types import EVENT_DTYPE
from evtui.events.windows import (
    WindowSpec,
    parse_duration_us,
    slice_count_windows,
    slice_duration_windows,
)


def events_with_jitter(n: int, seed: int, jitter: int = 16) -> np.ndarray:
    """Time-ordered events with small backward steps, like EVT3 vector readouts."""
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, EVENT_DTYPE)
    t = np.cumsum(rng.integers(0, 40, n)) + 5_000
    ev["t"] = t - rng.integers(0, jitter + 1, n) * (rng.random(n) < 0.2)
    ev["x"] = rng.integers(0, 64, n)
    ev["y"] = rng.integers(0, 48, n)
    ev["p"] = rng.integers(0, 2, n)
    return ev


def chunked(ev: np.ndarray, sizes: list[int]):
    i = 0
    for s in sizes:
        yield ev[i : i + s]
        i += s
    if i < len(ev):
        yield ev[i:]


def oracle_duration(
    ev: np.ndarray, spec: WindowSpec, start: int
) -> list[tuple[int, int, np.ndarray]]:
    out = []
    t = ev["t"]
    last = int(t.max())
    end = spec.end_us if spec.end_us is not None else last + 1
    k = 0
    while start + k * spec.step < min(end, last + 1):
        t0 = start + k * spec.step
        t1 = t0 + spec.duration_us if spec.end_us is None else min(t0 + spec.duration_us, end)
        sel = ev[(t >= t0) & (t < t1)]
        out.append((t0, t1, sel[np.argsort(sel["t"], kind="stable")]))
        k += 1
    return out


def test_parse_duration():
    assert parse_duration_us("33ms") == 33_000
    assert parse_duration_us("1.5s") == 1_500_000
    assert parse_duration_us("250us") == 250
    assert parse_duration_us("2000") == 2000
    for bad in ("", "ms", "-3ms", "3 parsecs", "0"):
        with pytest.raises(ValueError):
            parse_duration_us(bad)


def test_spec_parse_overlap_and_stride():
    s = WindowSpec.parse("40ms", overlap="50%")
    assert (s.duration_us, s.step) == (40_000, 20_000)
    s = WindowSpec.parse("40ms", overlap="10ms")
    assert s.step == 30_000
    s = WindowSpec.parse("40ms", stride="5ms", overlap="50%")
    assert s.step == 5_000  # stride wins
    s = WindowSpec.parse("1000ev", overlap="25%")
    assert (s.count, s.step) == (1000, 750)
    s = WindowSpec.parse("33ms", start="1s", end="2s")
    assert (s.start_us, s.end_us) == (1_000_000, 2_000_000)
    with pytest.raises(ValueError):
        WindowSpec.parse("40ms", overlap="100%")
    with pytest.raises(ValueError):
        WindowSpec.parse("40ms", overlap="40ms")
    with pytest.raises(ValueError):
        WindowSpec.parse("33ms", start="2s", end="1s")


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    dur=st.integers(50, 3_000),
    stride_frac=st.sampled_from([None, 0.25, 0.5, 1.0, 1.5]),
    sizes=st.lists(st.integers(0, 700), max_size=8),
)
def test_duration_windows_match_oracle(seed, dur, stride_frac, sizes):
    ev = events_with_jitter(2_000, seed)
    stride = None if stride_frac is None else max(1, int(dur * stride_frac))
    spec = WindowSpec(duration_us=dur, stride=stride)
    got = list(slice_duration_windows(chunked(ev, sizes), spec))
    first_chunk = next(c for c in chunked(ev, sizes) if len(c))
    want = oracle_duration(ev, spec, int(first_chunk["t"].min()))
    assert len(got) == len(want)
    for k, (w, (t0, t1, sel)) in enumerate(zip(got, want, strict=True)):
        assert (w.index, w.t0_us, w.t1_us) == (k, t0, t1)
        assert np.array_equal(w.events, sel)


def test_duration_windows_bounds_and_gaps():
    ev = np.zeros(4, EVENT_DTYPE)
    ev["t"] = [100, 150, 5_000, 5_050]  # a long silent gap in between
    spec = WindowSpec(duration_us=1_000, start_us=0, end_us=5_040)
    got = list(slice_duration_windows(iter([ev]), spec))
    assert [w.t0_us for w in got] == [0, 1000, 2000, 3000, 4000, 5000]
    assert [len(w) for w in got] == [2, 0, 0, 0, 0, 1]
    assert got[-1].t1_us == 5_040  # clipped to the end bound


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    count=st.integers(1, 500),
    stride=st.sampled_from([None, 1, 7, 250, 600]),
    sizes=st.lists(st.integers(0, 700), max_size=8),
)
def test_count_windows_match_oracle(seed, count, stride, sizes):
    ev = events_with_jitter(1_500, seed)
    spec = WindowSpec(count=count, stride=stride)
    got = list(slice_count_windows(chunked(ev, sizes), spec))
    step = stride or count
    starts = range(0, len(ev), step)
    assert len(got) == len(starts)
    for w, a in zip(got, starts, strict=True):
        sel = ev[a : a + count]
        sel = sel[np.argsort(sel["t"], kind="stable")]
        assert np.array_equal(w.events, sel)
        assert (w.t0_us, w.t1_us) == (int(sel["t"][0]), int(sel["t"][-1]) + 1)


def test_count_windows_with_time_bounds_count_only_events_inside():
    ev = events_with_jitter(1_000, 3, jitter=0)
    lo, hi = int(ev["t"][200]), int(ev["t"][700])
    spec = WindowSpec(count=100, start_us=lo, end_us=hi)
    got = list(slice_count_windows(iter([ev]), spec))
    inside = ev[(ev["t"] >= lo) & (ev["t"] < hi)]
    assert sum(len(w) for w in got) == len(inside)
    assert np.array_equal(np.concatenate([w.events for w in got]), inside)


def test_geometry_inference_picks_the_smallest_sensor_that_fits():
    from evtui.events.geometry import infer_geometry

    assert infer_geometry(319, 239) == (320, 240)  # DVXplorer Lite, not GenX320
    assert infer_geometry(319, 300) == (320, 320)
    assert infer_geometry(639, 479) == (640, 480)
    assert infer_geometry(2000, 100) == (2016, 112)  # unknown: extent rounded up to 16
