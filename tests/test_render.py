"""Renderers: exact pixel values on hand-made windows, oracles, and tonic cross-checks."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtui.events import render as R
from evtui.events.types import EVENT_DTYPE, make_events

W, H = 8, 6


def ev(*rows: tuple[int, int, int, int]) -> np.ndarray:
    """Events from (t, x, y, p) rows."""
    if not rows:
        return np.zeros(0, dtype=EVENT_DTYPE)
    t, x, y, p = zip(*rows, strict=True)
    return make_events(t, x, y, p)


def random_events(n: int, w: int, h: int, seed: int, t_span: int = 33_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(
        np.sort(rng.integers(0, t_span, n)),
        rng.integers(0, w, n),
        rng.integers(0, h, n),
        rng.integers(0, 2, n),
    )


def oracle_percentile(values: np.ndarray, q: float) -> float:
    """Inverted-CDF percentile of the non-zero |values|, by sorting (H&F type 1)."""
    nz = np.sort(np.abs(values[values != 0]).ravel())
    return float(nz[max(0, math.ceil(q * nz.size / 100) - 1)])


def rgb(img: np.ndarray, x: int, y: int) -> tuple[int, int, int]:
    return tuple(int(v) for v in img[y, x])


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("method", R.list_methods())
def test_every_method_returns_rgb_uint8_and_honours_out(method):
    events = random_events(500, 40, 30, seed=1)
    img = R.render(events, 40, 30, method)
    assert img.shape == (30, 40, 3) and img.dtype == np.uint8
    out = np.full((30, 40, 3), 7, dtype=np.uint8)
    got = R.render(events, 40, 30, method, out=out)
    assert got is out
    np.testing.assert_array_equal(out, img)


EMPTY_BACKGROUND = {
    "histogram": (0, 0, 0),
    "cdframe": (30, 37, 52),
    "signed": (128, 128, 128),
    "binary": (0, 0, 0),
    "timesurface": (128, 128, 128),
    "voxel": (128, 128, 128),
    "reconstruction": (128, 128, 128),
}


@pytest.mark.parametrize("method", R.list_methods())
def test_empty_window_is_the_background(method):
    img = R.render(ev(), W, H, method, out=np.full((H, W, 3), 99, dtype=np.uint8))
    assert (img == np.array(EMPTY_BACKGROUND[method], dtype=np.uint8)).all()


def test_registry_lists_every_renderer_with_a_one_line_formula():
    assert R.list_methods() == list(R.RENDERERS)
    assert set(R.list_methods()) == set(EMPTY_BACKGROUND)
    for name in R.list_methods():
        line = R.describe_method(name)
        assert line and "\n" not in line and "=" in line


def test_render_dispatches_to_the_named_function():
    events = random_events(300, W, H, seed=2)
    np.testing.assert_array_equal(
        R.render(events, W, H, "signed", percentile=90), R.signed(events, W, H, percentile=90)
    )
    np.testing.assert_array_equal(R.render(events, W, H), R.histogram(events, W, H))


# --------------------------------------------------------------------------- histogram


def test_histogram_channel_mapping_exact():
    events = ev(
        (0, 1, 1, 1), (1, 1, 1, 1),  # (1,1): 2 ON
        (2, 3, 2, 0),  # (3,2): 1 OFF
        (3, 5, 4, 1), (4, 5, 4, 0),  # (5,4): 1 ON + 1 OFF
    )  # fmt: skip
    img = R.histogram(events, W, H, max_count=2, gamma=1.0)
    assert rgb(img, 1, 1) == (255, 0, 0)
    assert rgb(img, 3, 2) == (0, 0, 128)  # round(255 * 1/2)
    assert rgb(img, 5, 4) == (128, 0, 128)
    assert rgb(img, 0, 0) == (0, 0, 0)
    assert int(img.sum()) == 255 + 128 * 3
    img = R.histogram(events, W, H, max_count=2, gamma=1.0, palette="greenred")
    assert rgb(img, 1, 1) == (0, 255, 0)
    assert rgb(img, 3, 2) == (128, 0, 0)
    # gamma 0.5: 1 count of max 4 -> 255 * sqrt(1/4)
    assert rgb(R.histogram(events, W, H, max_count=4), 3, 2) == (0, 0, 128)
    assert rgb(R.histogram(events, W, H, max_count=4), 1, 1) == (180, 0, 0)  # 255*sqrt(.5)


def expected_histogram(events, w, h, q, gamma):
    counts = R.polarity_counts(events, w, h).astype(np.int64)
    m = oracle_percentile(counts, q)
    level = np.floor(255 * np.minimum(1.0, counts / m) ** gamma + 0.5).astype(np.uint8)
    out = np.zeros((h, w, 3), dtype=np.uint8)
    out[..., 0], out[..., 2] = level[1], level[0]
    return out


@pytest.mark.parametrize(
    ("n", "w", "h", "q"),
    [
        (200, 64, 48, 99.0),  # sparse path: 3N < W·H
        (5000, 16, 12, 99.0),  # dense path, many repeats per pixel
        (3000, 32, 24, 50.0),
        (3000, 32, 24, 100.0),
    ],
)
def test_histogram_matches_reference_formula_with_robust_max(n, w, h, q):
    events = random_events(n, w, h, seed=n + w)
    got = R.histogram(events, w, h, percentile=q, gamma=0.5)
    np.testing.assert_array_equal(got, expected_histogram(events, w, h, q, 0.5))


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 400),
    w=st.integers(1, 20),
    h=st.integers(1, 20),
    q=st.floats(0.5, 100.0),
    seed=st.integers(0, 2**16),
)
def test_histogram_and_signed_property_match_reference(n, w, h, q, seed):
    events = random_events(n, w, h, seed)
    np.testing.assert_array_equal(
        R.histogram(events, w, h, percentile=q), expected_histogram(events, w, h, q, 0.5)
    )
    acc = R.polarity_counts(events, w, h).astype(np.int64)
    if (acc[1] != acc[0]).any():
        np.testing.assert_array_equal(
            R.signed(events, w, h, percentile=q), expected_signed(events, w, h, q)
        )


def test_polarity_counts_equal_tonic_to_frame():
    tonic_transforms = pytest.importorskip("tonic.transforms")
    w, h = 64, 48
    events = random_events(20_000, w, h, seed=3)
    events["t"][-1] = events["t"][-2] + 1  # tonic's one time bin drops events at t_last
    tev = np.empty(events.size, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    for f in "xytp":
        tev[f] = events[f]
    frames = tonic_transforms.ToFrame(sensor_size=(w, h, 2), n_time_bins=1)(tev)
    assert frames.shape == (1, 2, h, w)
    ours = R.polarity_counts(events[:-1], w, h)
    assert ours.dtype == np.uint32 and ours.shape == (2, h, w)
    np.testing.assert_array_equal(ours, frames[0])
    assert int(ours.sum()) == events.size - 1


# --------------------------------------------------------------------------- cdframe

# Metavision palettes as floats (openeb colors_impl.h): background, positive, negative.
METAVISION_FLOATS = {
    "dark": ((0.1171875, 0.14453125, 0.203125), (1.0, 1.0, 1.0), (0.25, 0.4921875, 0.78515625)),
    "light": ((1.0, 1.0, 1.0), (0.25, 0.4921875, 0.78515625), (0.1171875, 0.14453125, 0.203125)),
    "coolwarm": (
        (0.8509804, 0.8784314, 0.9294118),
        (1.0, 0.4431373, 0.4588235),
        (0.3411765, 0.4823529, 0.7764706),
    ),
    "gray": ((0.5, 0.5, 0.5), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0)),
}


@pytest.mark.parametrize("palette", list(METAVISION_FLOATS))
def test_cdframe_palettes_exact(palette):
    bg, on, off = (tuple(int(c * 255 + 0.5) for c in col) for col in METAVISION_FLOATS[palette])
    img = R.cdframe(ev((0, 2, 1, 1), (1, 4, 3, 0)), W, H, palette=palette)
    assert rgb(img, 2, 1) == on
    assert rgb(img, 4, 3) == off
    assert rgb(img, 0, 0) == bg
    assert (img.reshape(-1, 3) == bg).all(axis=1).sum() == W * H - 2


def test_cdframe_spec_colours():
    assert R.CD_PALETTES["dark"] == ((30, 37, 52), (255, 255, 255), (64, 126, 200))
    assert R.CD_PALETTES["coolwarm"] == ((217, 224, 237), (255, 113, 117), (87, 123, 198))


def test_cdframe_last_event_wins_counts_ignored():
    events = ev(
        (0, 1, 1, 1), (1, 1, 1, 1), (2, 1, 1, 1), (3, 1, 1, 0),  # 3 ON then OFF -> OFF
        (4, 2, 2, 0), (5, 2, 2, 0), (6, 2, 2, 1),  # OFF, OFF, ON -> ON
    )  # fmt: skip
    img = R.cdframe(events, W, H)
    assert rgb(img, 1, 1) == (64, 126, 200)
    assert rgb(img, 2, 2) == (255, 255, 255)


def test_cdframe_last_wins_matches_loop_oracle_with_heavy_repeats():
    w, h = 5, 4  # 20 pixels, 5000 events: every pixel is hit hundreds of times
    events = random_events(5000, w, h, seed=4)
    bg, on, off = R.CD_PALETTES["dark"]
    expect = np.empty((h, w, 3), dtype=np.uint8)
    expect[...] = bg
    for e in events:  # oracle: paint in order
        expect[e["y"], e["x"]] = on if e["p"] else off
    np.testing.assert_array_equal(R.cdframe(events, w, h), expect)
    # Same events, reversed order: the other polarity may now be last.
    rev = events[::-1].copy()
    expect_rev = np.empty_like(expect)
    expect_rev[...] = bg
    for e in rev:
        expect_rev[e["y"], e["x"]] = on if e["p"] else off
    np.testing.assert_array_equal(R.cdframe(rev, w, h), expect_rev)
    assert not np.array_equal(expect, expect_rev)  # the test can tell order apart


# --------------------------------------------------------------------------- signed, binary


def test_signed_sign_and_scale():
    events = ev(
        (0, 1, 1, 1), (1, 1, 1, 1), (2, 1, 1, 1), (3, 1, 1, 0),  # A = +2
        (4, 2, 2, 0), (5, 2, 2, 0), (6, 2, 2, 0), (7, 2, 2, 0),  # A = -4
        (8, 3, 3, 1), (9, 3, 3, 0),  # A = 0
    )  # fmt: skip
    img = R.signed(events, W, H, a_max=4)
    assert rgb(img, 1, 1) == (192, 192, 192)  # 128 + 127/2 = 191.5 -> 192
    assert rgb(img, 2, 2) == (1, 1, 1)
    assert rgb(img, 3, 3) == (128, 128, 128)
    assert rgb(img, 0, 0) == (128, 128, 128)
    # Robust a_max over non-zero |A| = {2, 4}: the 50th percentile is 2, so +2 saturates.
    img = R.signed(events, W, H, percentile=50)
    assert rgb(img, 1, 1) == (255, 255, 255)
    assert rgb(img, 2, 2) == (1, 1, 1)


def expected_signed(events, w, h, q):
    c = R.polarity_counts(events, w, h).astype(np.int64)
    acc = c[1] - c[0]
    a_max = oracle_percentile(acc, q)
    grey = np.clip(np.floor(128 + 127 * acc / a_max + 0.5), 1, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


@pytest.mark.parametrize(("n", "w", "h"), [(3000, 24, 16), (300, 64, 48)])  # dense, sparse
def test_signed_matches_reference_formula(n, w, h):
    events = random_events(n, w, h, seed=5)
    np.testing.assert_array_equal(R.signed(events, w, h), expected_signed(events, w, h, 99))


def test_binary_marks_any_event():
    img = R.binary(ev((0, 1, 1, 1), (1, 1, 1, 0), (2, 7, 5, 0)), W, H)
    assert rgb(img, 1, 1) == (255, 255, 255)
    assert rgb(img, 7, 5) == (255, 255, 255)
    assert int((img[..., 0] == 255).sum()) == 2
    assert int(img.sum()) == 255 * 3 * 2


# --------------------------------------------------------------------------- time surface


def test_timesurface_decay_value_at_known_pixels():
    tau = 20_000
    events = ev((0, 1, 1, 1), (0, 2, 1, 0), (0, 3, 3, 1), (10_000, 3, 3, 0), (20_000, 6, 5, 1))
    img = R.timesurface(events, W, H, tau_us=tau)  # t_ref = last event = 20 ms
    e1 = math.exp(-1.0)
    assert rgb(img, 1, 1)[0] == math.floor(255 * (1 + e1) / 2 + 0.5) == 174
    assert rgb(img, 2, 1)[0] == math.floor(255 * (1 - e1) / 2 + 0.5) == 81
    # latest polarity at (3,3) is OFF at 10 ms
    assert rgb(img, 3, 3)[0] == math.floor(255 * (1 - math.exp(-0.5)) / 2 + 0.5)
    assert rgb(img, 6, 5) == (255, 255, 255)
    assert rgb(img, 0, 0) == (128, 128, 128)
    later = R.timesurface(events, W, H, tau_us=tau, t_end=40_000)
    assert rgb(later, 6, 5)[0] == 174  # decayed by exp(-1) too


def test_timesurface_polarity_mode_channels():
    events = ev((0, 3, 3, 1), (10_000, 3, 3, 0), (20_000, 6, 5, 1))
    img = R.timesurface(events, W, H, mode="polarity", tau_us=10_000, t_end=20_000)
    assert rgb(img, 3, 3) == (
        math.floor(255 * math.exp(-2) + 0.5),
        0,
        math.floor(255 * math.exp(-1) + 0.5),
    )
    assert rgb(img, 6, 5) == (255, 0, 0)
    assert rgb(img, 0, 0) == (0, 0, 0)


def test_timesurface_polarity_mode_matches_tonic():
    tonic_functional = pytest.importorskip("tonic.functional")
    w, h, dt, tau = 32, 24, 50_000, 15_000
    events = random_events(3000, w, h, seed=6, t_span=dt)
    events["t"][0] = 0
    sentinel = ev((dt, 0, 0, 0))  # makes tonic's one window [0, dt) complete
    tev = np.empty(events.size + 1, dtype=[("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    both = np.concatenate([events, sentinel])
    for f in "xytp":
        tev[f] = both[f]
    surf = tonic_functional.to_timesurface_numpy(tev, (w, h, 2), dt=dt, tau=tau)
    assert surf.shape == (1, 2, h, w)
    img = R.timesurface(events, w, h, mode="polarity", tau_us=tau, t_end=dt)
    expect = np.floor(255 * surf[0] + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(img[..., 0], expect[1])
    np.testing.assert_array_equal(img[..., 2], expect[0])


# --------------------------------------------------------------------------- voxel


def test_voxel_splits_one_event_between_two_bins_with_b_minus_1():
    # span 0..1000 µs, B = 5: t* = 4 (t - 0) / 1000
    events = ev((0, 0, 0, 1), (300, 2, 1, 1), (375, 3, 1, 0), (1000, 7, 5, 0))
    grid = R.voxel_grid(events, W, H, bins=5)
    assert grid.shape == (5, H, W) and grid.dtype == np.float32
    np.testing.assert_allclose(grid[:, 1, 2], [0, 0.8, 0.2, 0, 0], atol=1e-6)  # t* = 1.2
    np.testing.assert_allclose(grid[:, 1, 3], [0, -0.5, -0.5, 0, 0], atol=1e-6)  # t* = 1.5
    np.testing.assert_allclose(grid[:, 0, 0], [1, 0, 0, 0, 0])
    np.testing.assert_allclose(grid[:, 5, 7], [0, 0, 0, 0, -1])  # last event in the last bin
    # every event's weights sum to one: total |mass| per polarity is the event count
    np.testing.assert_allclose(grid.sum(), 1 + 1 - 1 - 1, atol=1e-6)
    sel = R.voxel_grid(events, W, H, bins=5, select=(1, 2))
    np.testing.assert_array_equal(sel, grid[[1, 2]])


def test_voxel_grid_matches_loop_oracle():
    w, h, b = 12, 9, 7
    events = random_events(400, w, h, seed=7)
    t = events["t"].astype(np.float64)
    tstar = (b - 1) * (t - t.min()) / (t.max() - t.min())
    expect = np.zeros((b, h, w))
    for e, ts in zip(events, tstar, strict=True):
        s = 1.0 if e["p"] else -1.0
        for k in range(b):
            expect[k, e["y"], e["x"]] += s * max(0.0, 1 - abs(k - ts))
    np.testing.assert_allclose(R.voxel_grid(events, w, h, bins=b), expect, atol=1e-5)


def test_voxel_render_shows_first_middle_last_bins():
    events = ev((0, 1, 1, 1), (500, 2, 2, 1), (1000, 3, 3, 0), (250, 4, 4, 1))
    img = R.voxel(events, W, H, bins=5)  # bins 0, 2, 4 -> R, G, B
    assert rgb(img, 1, 1) == (255, 128, 128)
    assert rgb(img, 2, 2) == (128, 255, 128)
    assert rgb(img, 3, 3) == (128, 128, 1)
    assert rgb(img, 4, 4) == (128, 128, 128)  # t* = 1: only in bin 1, not shown
    assert rgb(img, 0, 0) == (128, 128, 128)


# --------------------------------------------------------------------------- reconstruction


def loop_reconstruction(events, w, h, alpha, c_on, c_off, t_b, state=None):
    """Per-event high-pass filter (Scheerlinck et al. 2018, β = 0): the oracle."""
    log_i = np.zeros((h, w)) if state is None else state[0].copy()
    t_prev = np.zeros((h, w), dtype=np.int64) if state is None else state[1].copy()
    for e in events:
        x, y, t = int(e["x"]), int(e["y"]), int(e["t"])
        log_i[y, x] = math.exp(-alpha * (t - t_prev[y, x]) * 1e-6) * log_i[y, x]
        log_i[y, x] += c_on if e["p"] else c_off
        t_prev[y, x] = t
    return log_i * np.exp(-alpha * (t_b - t_prev) * 1e-6)


def test_reconstruction_closed_form_equals_per_event_loop():
    w, h = 10, 8
    events = random_events(600, w, h, seed=8, t_span=1_000_000)  # 1 s, ~7 events per pixel
    cutoff = 1.0
    got = R.reconstruct(events, w, h, cutoff_hz=cutoff, c_on=0.2, c_off=-0.15, t_end=1_020_000)
    expect = loop_reconstruction(events, w, h, 2 * math.pi * cutoff, 0.2, -0.15, 1_020_000)
    np.testing.assert_allclose(got.log_intensity, expect, rtol=1e-10, atol=1e-12)
    assert (got.t_prev == 1_020_000).all()
    assert np.abs(expect).max() > 0.05  # the leak did not erase everything


def test_reconstruction_state_over_two_windows_equals_one_window():
    w, h = 10, 8
    events = random_events(500, w, h, seed=9, t_span=600_000)
    split = 250
    t_split = int(events["t"][split])  # window 1 = [.., t_split), window 2 = [t_split, ..]
    first = events[events["t"] < t_split]
    second = events[events["t"] >= t_split]
    kw = {"cutoff_hz": 2.0, "c_on": 0.1, "c_off": -0.1}
    state = R.ReconstructionState.zeros(w, h)
    img1 = R.reconstruction(first, w, h, state=state, t_end=t_split, **kw)
    assert (state.t_prev == t_split).all()
    img2 = R.reconstruction(second, w, h, state=state, **kw)
    whole = R.reconstruct(events, w, h, **kw)
    np.testing.assert_allclose(state.log_intensity, whole.log_intensity, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(state.t_prev, whole.t_prev)
    assert np.abs(R.reconstruction(events, w, h, **kw).astype(int) - img2).max() <= 1
    assert not np.array_equal(img1, img2)
    # and the per-event oracle agrees with the carried state
    oracle = loop_reconstruction(events, w, h, 2 * math.pi * 2.0, 0.1, -0.1, whole.t_prev[0, 0])
    np.testing.assert_allclose(state.log_intensity, oracle, rtol=1e-10, atol=1e-12)


def test_reconstruction_is_pure_without_state_and_reconstruct_never_mutates():
    w, h = 10, 8
    events = random_events(300, w, h, seed=10)
    a = R.reconstruction(events, w, h, blur_sigma=0.8)
    b = R.reconstruction(events, w, h, blur_sigma=0.8)
    np.testing.assert_array_equal(a, b)
    state = R.ReconstructionState.zeros(w, h)
    state.log_intensity[2, 3] = 1.0
    before = state.log_intensity.copy()
    new = R.reconstruct(events, w, h, state=state)
    np.testing.assert_array_equal(state.log_intensity, before)
    assert (state.t_prev == 0).all() and new is not state


def test_reconstruction_display_maps_exp_l_robustly():
    # one ON pixel (L = +0.1), one OFF pixel (L = -0.1), rest L = 0; no leak
    events = ev((0, 1, 1, 1), (0, 2, 2, 0))
    img = R.reconstruction(events, W, H, cutoff_hz=0.0)
    lo, hi = math.exp(-0.1), math.exp(0.1)
    assert rgb(img, 1, 1) == (255, 255, 255)
    assert rgb(img, 2, 2) == (0, 0, 0)
    mid = math.floor(255 * (1 - lo) / (hi - lo) + 0.5)
    assert rgb(img, 0, 0) == (mid, mid, mid)


# --------------------------------------------------------------------------- stats


def test_render_stats():
    events = ev((1000, 1, 1, 1), (2000, 1, 1, 0), (3000, 4, 2, 1), (11_000, 5, 5, 1))
    s = R.render_stats(events, W, H)
    assert s["events"] == 4 and s["on"] == 3 and s["off"] == 1
    assert s["active_pixels"] == 3
    assert s["active_fraction"] == pytest.approx(3 / (W * H))
    assert s["duration_us"] == 10_000
    assert s["rate_ev_s"] == pytest.approx(400.0)
    s = R.render_stats(events, W, H, t_start=0, t_end=40_000)
    assert s["rate_ev_s"] == pytest.approx(100.0)
    empty = R.render_stats(ev(), W, H)
    assert empty["events"] == 0 and empty["active_fraction"] == 0 and empty["rate_ev_s"] == 0


# --------------------------------------------------------------------------- errors


GOOD = ev((0, 1, 1, 1), (5, 2, 2, 0))


@pytest.mark.parametrize(
    ("method", "params", "message"),
    [
        ("histogram", {"percentile": 0}, "percentile must be in"),
        ("histogram", {"percentile": 101}, "percentile must be in"),
        ("histogram", {"gamma": 0}, "gamma must be"),
        ("histogram", {"max_count": -1}, "max_count must be"),
        ("histogram", {"palette": "rainbow"}, "unknown palette 'rainbow'"),
        ("cdframe", {"palette": "neon"}, "unknown palette"),
        ("signed", {"a_max": float("nan")}, "a_max must be"),
        ("timesurface", {"tau_us": -5}, "tau_us must be"),
        ("timesurface", {"mode": "hots"}, "unknown mode"),
        ("timesurface", {"t_end": 3}, "before the last event"),
        ("voxel", {"bins": 1}, "bins must be an integer in 2..256"),
        ("voxel", {"bins": 2.5}, "bins must be"),
        ("reconstruction", {"cutoff_hz": -1}, "cutoff_hz must be"),
        ("reconstruction", {"c_on": -0.1}, "c_on must be"),
        ("reconstruction", {"c_off": 0.1}, "c_off must be"),
        ("reconstruction", {"blur_sigma": -1}, "blur_sigma must be"),
        ("reconstruction", {"low_percentile": 99, "high_percentile": 1}, "must not exceed"),
        ("reconstruction", {"t_end": 2}, "before the last event"),
        ("histogram", {"out": np.zeros((H, W), dtype=np.uint8)}, "out must be"),
        ("binary", {"out": np.zeros((H, W, 3), dtype=np.float32)}, "out must be"),
        ("histogram", {"bins": 3}, "unknown parameter"),
    ],
)
def test_bad_parameters_raise_value_error(method, params, message):
    with pytest.raises(ValueError, match=message):
        R.render(GOOD, W, H, method, **params)


@pytest.mark.parametrize("method", R.list_methods())
def test_bad_events_and_sizes_raise_value_error(method):
    with pytest.raises(ValueError, match="outside the 8x6 sensor"):
        R.render(ev((0, 8, 0, 1)), W, H, method)
    with pytest.raises(ValueError, match="outside"):
        R.render(ev((0, 0, 6, 1)), W, H, method)
    bad_p = ev((0, 1, 1, 1))
    bad_p["p"] = -1
    with pytest.raises(ValueError, match="polarity must be 0"):
        R.render(bad_p, W, H, method)
    with pytest.raises(ValueError, match="sensor size"):
        R.render(GOOD, 0, H, method)
    signed_xy = np.zeros(1, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    signed_xy["x"] = -1
    with pytest.raises(ValueError, match="negative coordinate"):
        R.render(signed_xy, W, H, method)
    with pytest.raises(ValueError, match="structured array"):
        R.render(np.zeros((3, 4)), W, H, method)


def test_unknown_method_and_state_mismatch():
    with pytest.raises(ValueError, match="unknown render method 'nope'; choose from histogram"):
        R.render(GOOD, W, H, "nope")
    with pytest.raises(ValueError, match="reconstruction state is"):
        R.reconstruction(GOOD, W, H, state=R.ReconstructionState.zeros(W + 1, H))
    late = R.ReconstructionState.zeros(W, H, t=1_000)
    with pytest.raises(ValueError, match="before the state's t_prev"):
        R.reconstruction(GOOD, W, H, state=late)
    with pytest.raises(ValueError, match="select must name bins"):
        R.voxel_grid(GOOD, W, H, bins=3, select=(0, 3))


@pytest.mark.parametrize("method", R.list_methods())
def test_other_event_layouts_render_identically(method):
    # expelliarmus-like aligned layout with signed coordinates and unsigned polarity
    events = random_events(400, 20, 15, seed=11)
    other = np.zeros(events.size, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    for f in "txyp":
        other[f] = events[f]
    np.testing.assert_array_equal(R.render(other, 20, 15, method), R.render(events, 20, 15, method))


# --------------------------------------------------------------------------- renderer() factory


@dataclass
class Win:
    """Duck-typed window: events in [t0_us, t1_us)."""

    t0_us: int
    t1_us: int
    events: np.ndarray


def cut(events: np.ndarray, t0: int, t1: int) -> Win:
    t = events["t"]
    return Win(t0, t1, events[(t >= t0) & (t < t1)])


def test_renderer_checks_names_and_values_before_any_window():
    with pytest.raises(ValueError, match="percentile must be in"):
        R.renderer("histogram", W, H, percentile=0)
    with pytest.raises(ValueError, match="unknown parameter"):
        R.renderer("cdframe", W, H, gamma=2)
    with pytest.raises(ValueError, match="unknown render method"):
        R.renderer("nope", W, H)
    with pytest.raises(ValueError, match="renderer\\(\\) manages them"):
        R.renderer("reconstruction", W, H, state=R.ReconstructionState.zeros(W, H))


def test_renderer_on_arrays_and_windows():
    events = random_events(400, W, H, seed=12, t_span=30_000)
    draw = R.renderer("signed", W, H, percentile=90)
    np.testing.assert_array_equal(draw(events), R.signed(events, W, H, percentile=90))
    draw_ts = R.renderer("timesurface", W, H, tau_us=5_000)
    win = cut(events, 0, 40_000)
    np.testing.assert_array_equal(
        draw_ts(win), R.timesurface(events, W, H, tau_us=5_000, t_end=40_000)
    )
    assert not np.array_equal(draw_ts(win), R.timesurface(events, W, H, tau_us=5_000))


@pytest.mark.parametrize("stride", [20_000, 10_000])  # adjacent, then 50 % overlap
def test_renderer_carries_reconstruction_state_across_windows(stride):
    w, h = 12, 9
    events = random_events(2000, w, h, seed=13, t_span=100_000)
    kw = {"cutoff_hz": 5.0}
    draw = R.renderer("reconstruction", w, h, **kw)
    starts = range(0, 100_000 - 20_000 + 1, stride)
    images = [draw(cut(events, t0, t0 + 20_000)) for t0 in starts]
    t_end = starts[-1] + 20_000
    whole = R.reconstruction(events[events["t"] < t_end], w, h, t_end=t_end, **kw)
    assert np.abs(images[-1].astype(int) - whole).max() <= 1
    alone = R.reconstruction(cut(events, starts[-1], t_end).events, w, h, t_end=t_end, **kw)
    assert np.abs(alone.astype(int) - whole).max() > 1  # the carried state mattered
    # a window that goes back in time restarts from zero
    again = draw(cut(events, 0, 20_000))
    np.testing.assert_array_equal(again, images[0])
