"""The event simulator: deterministic, physically sane, and honest about its scene."""

from __future__ import annotations

import importlib.util
import itertools
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from evtui.events.synth import (
    BUSY_SCRIPT,
    DEFAULT_SCRIPT,
    PAN_MARGIN,
    ProceduralScene,
    Scene,
    Shot,
    SimConfig,
    scene_segments,
    simulate,
    simulate_all,
)
from evtui.events.types import EVENT_DTYPE

QUIET = SimConfig(noise_rate_hz=0.0, leak_rate_hz=0.0, hot_pixels=0, jitter_us=0)
"""Signal only: what the scene causes, without noise."""


class PixelScene:
    """A tiny scene whose log intensity follows a given function of time."""

    def __init__(self, log_of_t, duration_us: int, width: int = 1, height: int = 1) -> None:
        self.log_of_t = log_of_t
        self.width, self.height = width, height
        self.duration_us = duration_us
        self.boundaries_us = [0, duration_us]

    def changed(self, ta: int, tb: int):
        return (0, self.height, 0, self.width)

    def render(self, t_us: int, rect):
        y0, y1, x0, x1 = rect
        level = math.exp(self.log_of_t(t_us)) - QUIET.eps
        return np.full((y1 - y0, x1 - x0), level, dtype=np.float64)


def exact_pixel(**kw) -> SimConfig:
    """One pixel with exactly known thresholds and nothing random in its response."""
    base = dict(width=1, height=1, threshold_sigma=0.0, refractory_us=0, random_reference=False)
    return replace(QUIET, **{**base, **kw})


def rates(ev: np.ndarray, segments) -> list[float]:
    t = ev["t"]
    out = []
    for s in segments:
        n = np.searchsorted(t, s.t1_us) - np.searchsorted(t, s.t0_us)
        out.append(n / ((s.t1_us - s.t0_us) * 1e-6))
    return out


# -- the default script at the sample-data settings, simulated once -----------------------

SAMPLE_LIKE = SimConfig(noise_rate_hz=0.05, seed=3)


@pytest.fixture(scope="module")
def default_run() -> np.ndarray:
    return simulate_all(DEFAULT_SCRIPT, SAMPLE_LIKE)


def test_events_are_typed_sorted_and_on_the_sensor(default_run):
    ev = default_run
    cfg = SAMPLE_LIKE
    assert ev.dtype == EVENT_DTYPE
    assert len(ev) > 50_000
    assert np.all(np.diff(ev["t"]) >= 0)
    assert ev["x"].max() < cfg.width and ev["y"].max() < cfg.height
    assert set(np.unique(ev["p"]).tolist()) == {0, 1}
    duration = sum(s.duration_us for s in DEFAULT_SCRIPT)
    assert ev["t"][0] >= 0 and ev["t"][-1] < duration


def test_static_stretches_show_noise_only_and_motion_far_more(default_run):
    cfg = SAMPLE_LIKE
    segs = scene_segments(DEFAULT_SCRIPT)
    noise = (cfg.noise_rate_hz + cfg.leak_rate_hz) * cfg.width * cfg.height
    noise += cfg.hot_pixels * cfg.hot_rate_hz
    for seg, rate in zip(segs, rates(default_run, segs), strict=True):
        if seg.static:
            assert 0.8 * noise < rate < 1.2 * noise, (seg, rate, noise)
        else:
            assert rate > 2.5 * noise, (seg, rate, noise)


def test_brightening_segment_is_mostly_on(default_run):
    (seg,) = [s for s in scene_segments(DEFAULT_SCRIPT) if "brighten" in s.label]
    t = default_run["t"]
    p = default_run["p"][(t >= seg.t0_us) & (t < seg.t1_us)]
    assert p.mean() > 0.85


@pytest.mark.parametrize(("light", "polarity"), [(0.4, 1), (-0.4, 0)])
def test_a_lighting_ramp_gives_one_polarity_only(light, polarity):
    cfg = replace(QUIET, width=64, height=48)
    script = [Shot(100_000, "still"), Shot(200_000, "ramp", light=light)]
    ev = simulate_all(script, cfg)
    assert len(ev) > 64 * 48  # |0.4| crosses 0.25 at least once at every pixel
    assert np.all(ev["p"] == polarity)
    assert ev["t"].min() >= 100_000


def test_hot_pixels_stand_out(default_run):
    cfg = SAMPLE_LIKE
    counts = np.bincount(
        default_run["y"].astype(np.int64) * cfg.width + default_run["x"],
        minlength=cfg.width * cfg.height,
    )
    top = np.sort(counts)[::-1]
    expected = cfg.hot_rate_hz * sum(s.duration_us for s in DEFAULT_SCRIPT) * 1e-6
    assert np.all(top[: cfg.hot_pixels] > 0.8 * expected)
    assert top[cfg.hot_pixels] < 0.5 * expected


# -- determinism and streaming ---------------------------------------------------------------

SHORT = (DEFAULT_SCRIPT[0], DEFAULT_SCRIPT[1], DEFAULT_SCRIPT[5])
SMALL = SimConfig(width=160, height=120, seed=11)


def test_same_seed_same_bytes_other_seed_other_events():
    a = simulate_all(SHORT, SMALL)
    b = simulate_all(SHORT, SMALL)
    c = simulate_all(SHORT, replace(SMALL, seed=12))
    assert a.tobytes() == b.tobytes()
    assert not (len(a) == len(c) and np.array_equal(a, c))


def test_chunks_concatenate_to_the_single_shot_stream():
    whole = simulate_all(SHORT, SMALL)
    for chunk_us in (1_000, 33_333, 10**9):
        chunks = list(simulate(SHORT, SMALL, chunk_us=chunk_us))
        assert all(len(c) for c in chunks)
        assert b"".join(c.tobytes() for c in chunks) == whole.tobytes()
        longest_step = max(SMALL.step_us, SMALL.idle_step_us)
        assert max(int(c["t"][-1] - c["t"][0]) for c in chunks) < chunk_us + longest_step
    assert len(list(simulate(SHORT, SMALL, chunk_us=50_000))) > 10


def test_start_time_shifts_every_event():
    a = simulate_all(SHORT, SMALL)
    b = simulate_all(SHORT, replace(SMALL, t0_us=1_700_000_000_000_000))
    assert np.array_equal(b["t"] - 1_700_000_000_000_000, a["t"])
    assert np.array_equal(a[["x", "y", "p"]], b[["x", "y", "p"]])


# -- the pixel model ---------------------------------------------------------------------------


def test_refractory_period_is_respected_per_pixel():
    script = [Shot(300_000, "flicker", flicker_hz=200.0), Shot(200_000, "pan", pan=(0.1, 0.05))]
    base = replace(SimConfig(width=96, height=72, seed=5), hot_rate_hz=5000.0)

    def gaps(cfg: SimConfig) -> np.ndarray:
        ev = simulate_all(script, cfg)
        pix = ev["y"].astype(np.int64) * cfg.width + ev["x"]
        order = np.lexsort((ev["t"], pix))
        pix, t = pix[order], ev["t"][order]
        same = pix[1:] == pix[:-1]
        return np.diff(t)[same]

    assert np.min(gaps(replace(base, refractory_us=0))) < 1000  # the check can fail
    assert np.min(gaps(replace(base, refractory_us=1000))) >= 1000


@pytest.mark.parametrize("dl", [1.1, 0.74, -0.8, -0.26])
@pytest.mark.parametrize(
    ("step_us", "substeps"), [(1_000, 1), (7_000, 1), (100_000, 1), (100_000, 8)]
)
def test_a_log_ramp_crosses_floor_dl_over_c_times(dl, step_us, substeps):
    c = 0.25
    duration = 100_000
    cfg = exact_pixel(threshold_on=c, threshold_off=c, step_us=step_us, max_substeps=substeps)
    scene = PixelScene(lambda t: -1.0 + dl * t / duration, duration)
    assert isinstance(scene, Scene)
    ev = simulate_all(scene, cfg)
    n = math.floor(abs(dl) / c)
    assert len(ev) == n
    assert np.all(ev["p"] == (1 if dl > 0 else 0))
    # each crossing is timed where the ramp meets ref + k·C, whatever the step size
    expected = np.array([k * c / abs(dl) * duration for k in range(1, n + 1)])
    assert np.all(np.abs(ev["t"] - expected) <= 1.0), (ev["t"], expected)


def test_per_pixel_thresholds_vary():
    cfg = replace(QUIET, width=80, height=60, refractory_us=0)
    ev = simulate_all([Shot(400_000, "ramp", light=1.0)], cfg)
    per_pixel = np.bincount(ev["y"].astype(np.int64) * 80 + ev["x"], minlength=80 * 60)
    # 1.0 / N(0.25, 0.03) gives 3 to 5 crossings: not one count for every pixel
    assert set(np.unique(per_pixel).tolist()) >= {3, 4}
    assert per_pixel.min() >= 2


def test_photoreceptor_low_pass_delays_a_step_response():
    def jump(t: int) -> float:
        return math.log(0.1) if t < 10_000 else math.log(0.9)

    fast = simulate_all(PixelScene(jump, 200_000), exact_pixel())
    slow = simulate_all(PixelScene(jump, 200_000), exact_pixel(cutoff_hz=20.0))
    n = math.floor(math.log(0.9 / 0.1) / 0.25)
    assert len(fast) == n and fast["t"].max() < 11_000
    assert len(slow) >= n - 1
    assert slow["t"].max() > 20_000


# -- the scene script and its ground truth ----------------------------------------------------


def test_segments_are_contiguous_and_scene_ids_name_identical_images():
    t0 = 5_000
    segs = scene_segments(DEFAULT_SCRIPT, t0_us=t0)
    assert len(segs) == len(DEFAULT_SCRIPT)
    assert segs[0].t0_us == t0
    assert segs[-1].t1_us == t0 + sum(s.duration_us for s in DEFAULT_SCRIPT)
    assert all(a.t1_us == b.t0_us for a, b in itertools.pairwise(segs))
    assert [s.label for s in segs] == [s.label for s in DEFAULT_SCRIPT]
    motions = [s.scene_id for s in segs if not s.static]
    assert len(set(motions)) == len(motions)
    static = [s for s in segs if s.static]
    assert len(static) > len({s.scene_id for s in static})  # a view comes back
    assert sum(s.t1_us - s.t0_us for s in static) > 0.6 * (segs[-1].t1_us - t0)

    scene = ProceduralScene(DEFAULT_SCRIPT, 160, 120, seed=0)
    full = (0, 120, 0, 160)
    images = [scene.render((s.t0_us + s.t1_us) // 2 - t0, full) for s in static]
    for i, a in enumerate(static):
        for j, b in enumerate(static):
            same = np.array_equal(images[i], images[j])
            assert same == (a.scene_id == b.scene_id), (a, b)


def test_static_shots_render_the_same_image_throughout():
    scene = ProceduralScene(DEFAULT_SCRIPT, 160, 120, seed=0)
    seg = scene_segments(DEFAULT_SCRIPT)[2]
    assert seg.static
    full = (0, 120, 0, 160)
    assert scene.changed(seg.t0_us, seg.t1_us) is None
    assert np.array_equal(scene.render(seg.t0_us, full), scene.render(seg.t1_us - 1, full))


def test_busy_script_ends_where_it_starts_so_it_can_repeat():
    scene = ProceduralScene(BUSY_SCRIPT * 2, 64, 48, seed=0)
    full = (0, 48, 0, 64)
    end = scene.duration_us
    assert np.array_equal(scene.render(0, full), scene.render(end // 2, full))
    assert np.array_equal(scene.render(0, full), scene.render(end, full))


def test_scripts_that_leave_the_wall_or_are_empty_are_refused():
    with pytest.raises(ValueError, match="pans the camera"):
        scene_segments([Shot(1000, "too far", pan=(PAN_MARGIN + 0.01, 0.0))])
    with pytest.raises(ValueError, match="empty"):
        simulate_all([], SMALL)
    with pytest.raises(ValueError, match="duration"):
        scene_segments([Shot(0, "nothing")])


# -- the committed sample files ---------------------------------------------------------------


@pytest.mark.slow
def test_committed_samples_match_what_the_code_makes_now():
    root = Path(__file__).resolve().parents[1] / "sample_data"
    if not (root / "scene.json").is_file():
        pytest.skip("sample_data/ has not been generated yet")
    spec = importlib.util.spec_from_file_location("make_samples", root / "make_samples.py")
    assert spec is not None and spec.loader is not None
    make_samples = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make_samples)
    assert make_samples.check(root) == []
