"""Pilot sampling: uniform spacing, seeded reproducibility, strata coverage, index activity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtui.events.recording import Recording
from evtui.events.windows import WindowSpec
from evtui.pilot.sample import sample_windows, window_activity

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "sample.evt3.raw"


def test_uniform_is_evenly_spaced_and_centred() -> None:
    s = sample_windows(100, 10, "uniform")
    assert s.frames.tolist() == [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]
    gaps = np.diff(sample_windows(1000, 7, "uniform").frames)
    assert gaps.max() - gaps.min() <= 1  # as even as integers allow


def test_asking_for_more_than_the_recording_takes_every_window() -> None:
    for method in ("uniform", "random"):
        assert sample_windows(12, 50, method).frames.tolist() == list(range(12))
    act = np.arange(12, dtype=float)
    assert sample_windows(12, 50, "stratified", activity=act).frames.tolist() == list(range(12))


def test_random_is_reproducible_by_seed() -> None:
    a = sample_windows(10_000, 200, "random", seed=3).frames
    b = sample_windows(10_000, 200, "random", seed=3).frames
    c = sample_windows(10_000, 200, "random", seed=4).frames
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert len(np.unique(a)) == 200 and a.min() >= 0 and a.max() < 10_000
    assert np.all(np.diff(a) > 0)


def test_stratified_covers_every_activity_level_equally() -> None:
    rng = np.random.default_rng(0)
    # Five activity levels of 200 windows each, scattered through the recording; the
    # busiest level is rare in time order, so a uniform sample could miss parts of it.
    levels = np.repeat([10.0, 100.0, 1_000.0, 10_000.0, 100_000.0], 200)
    act = rng.permutation(levels)
    s = sample_windows(1000, 50, "stratified", seed=1, activity=act)
    assert len(s.frames) == 50
    assert s.strata_counts == (10, 10, 10, 10, 10)
    got = np.unique(act[s.frames], return_counts=True)
    assert got[0].tolist() == [10.0, 100.0, 1_000.0, 10_000.0, 100_000.0]
    assert got[1].tolist() == [10] * 5
    for (lo, hi), level in zip(s.strata_bounds, [10.0, 100.0, 1e3, 1e4, 1e5], strict=True):
        assert lo == hi == level
    again = sample_windows(1000, 50, "stratified", seed=1, activity=act)
    assert np.array_equal(s.frames, again.frames)
    other = sample_windows(1000, 50, "stratified", seed=2, activity=act)
    assert not np.array_equal(s.frames, other.frames)


def test_stratified_leaves_out_windows_that_would_be_skipped() -> None:
    act = np.concatenate([np.zeros(900), np.linspace(50, 500, 100)])
    s = sample_windows(1000, 40, "stratified", activity=act, min_activity=20)
    assert len(s.frames) == 40 and np.all(act[s.frames] >= 20)
    assert s.eligible == 100
    # Too few active windows: the near-empty ones are used rather than sampling fewer.
    s2 = sample_windows(1000, 150, "stratified", activity=act, min_activity=20)
    assert len(s2.frames) == 150


def test_stratified_with_heavy_ties_still_fills_the_sample() -> None:
    act = np.zeros(500)
    act[::50] = 7.0
    s = sample_windows(500, 25, "stratified", seed=5, activity=act, strata=5)
    assert len(np.unique(s.frames)) == 25 and sum(s.strata_counts) == 25


def test_bad_requests_are_value_errors() -> None:
    with pytest.raises(ValueError, match="unknown sample method"):
        sample_windows(10, 5, "clustered")
    with pytest.raises(ValueError, match="at least one frame"):
        sample_windows(10, 0)
    with pytest.raises(ValueError, match="activity"):
        sample_windows(10, 5, "stratified")
    with pytest.raises(ValueError, match="no windows"):
        sample_windows(0, 5)


@settings(max_examples=150, deadline=None)
@given(
    n_windows=st.integers(1, 3000),
    n=st.integers(1, 400),
    seed=st.integers(0, 2**31),
    method=st.sampled_from(["uniform", "random", "stratified"]),
    strata=st.integers(1, 9),
)
def test_any_sample_is_sorted_unique_in_range_and_full(
    n_windows: int, n: int, seed: int, method: str, strata: int
) -> None:
    act = np.random.default_rng(seed).integers(0, 5, n_windows).astype(float)
    s = sample_windows(n_windows, n, method, seed=seed, activity=act, strata=strata)
    f = s.frames
    assert len(f) == min(n, n_windows)
    assert np.all(np.diff(f) > 0) and f[0] >= 0 and f[-1] < n_windows
    if method == "stratified":
        assert sum(s.strata_counts) == len(f)


def test_window_activity_matches_decoded_windows() -> None:
    rec = Recording(SAMPLE)
    spec = WindowSpec.parse("33ms")
    est = window_activity(rec, spec)
    true = np.array([len(w) for w in rec.windows(spec)])
    assert est.unit == "events" and len(est.values) == len(true) == rec.window_count(spec)
    assert abs(est.values.sum() - true.sum()) <= 2
    assert np.corrcoef(est.values, true)[0, 1] > 0.99
    rel = np.abs(est.values - true) / np.maximum(true, 1)
    assert np.median(rel) < 0.05
    by_count = window_activity(rec, WindowSpec.parse("2000ev"))
    wins = list(rec.windows(WindowSpec.parse("2000ev")))
    rate = np.array([len(w) / max(w.t1_us - w.t0_us, 1) * 1e6 for w in wins])
    assert by_count.unit == "events/s" and len(by_count.values) == len(wins)
    assert np.corrcoef(by_count.values, rate)[0, 1] > 0.95
