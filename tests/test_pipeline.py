"""Recording → encoded frames in worker processes: order, resume subsets, skips, equality
of the sliding cdframe with cdframe (overlap, gaps, skipped windows, repeated pixels)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evtui.frames.pipeline as pipeline
from evtui.events.recording import Recording
from evtui.events.render import cdframe, renderer
from evtui.events.types import make_events
from evtui.events.windows import Window, WindowSpec
from evtui.frames import allocator
from evtui.frames.encode import EncodeSpec, frame_pixel_hash
from evtui.frames.pipeline import (
    FramePlan,
    SlidingCD,
    _scale_into,
    encoded_windows,
    make_executor,
    ranges,
    render_range,
)

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "sample.evt3.raw"


@pytest.mark.parametrize("overlap", ["90%", "50%", None])
@pytest.mark.parametrize("size", [(320, 240), (160, 120), (213, 160)])
def test_sliding_cdframe_equals_cdframe_of_each_window(overlap: str | None, size) -> None:
    rec = Recording(SAMPLE)
    spec = WindowSpec.parse("33ms", overlap=overlap)
    ref = renderer("cdframe", *size, palette="coolwarm")
    slide = SlidingCD(rec.size, size, "coolwarm")
    for w in rec.windows_between(spec, 40, 90):
        got = slide(w)
        ev = w.events.copy()
        _scale_into(ev, rec.size, size)
        assert np.array_equal(got, ref(ev)), w.index


def test_ranges_group_dense_runs_and_keep_sparse_lists() -> None:
    assert ranges(range(10), 4) == [(0, 4, None), (4, 8, None), (8, 10, None)]
    assert ranges([1, 2, 5, 100, 101], 4) == [(1, 6, [1, 2, 5]), (100, 102, None)]
    assert ranges([], 4) == []


def test_encoded_windows_in_order_for_a_subset_with_near_empty_skipped() -> None:
    spec = WindowSpec.parse("10ms")
    plan = FramePlan(
        str(SAMPLE), spec, "cdframe", size=(160, 120), encode=EncodeSpec(), min_events=200
    )
    want = [3, 4, 5, 90, 91, 400, 401, 402, 1100]

    async def go() -> list:
        with make_executor("process", 2) as pool:
            return [ew async for ew in encoded_windows(plan, want, executor=pool, chunk=2)]

    got = asyncio.run(go())
    assert [ew.index for ew in got] == want
    rec = Recording(SAMPLE)
    for ew in got:
        w = rec.window(spec, ew.index)
        assert (ew.t0_us, ew.t1_us, ew.events) == (w.t0_us, w.t1_us, len(w.events))
        if ew.events < 200:
            assert ew.skip_reason and not ew.data
        else:
            assert ew.skip_reason is None and ew.media_type == "image/jpeg"
            img = cv2.imdecode(np.frombuffer(ew.data, np.uint8), cv2.IMREAD_COLOR)
            assert img.shape == (120, 160, 3) and (ew.width, ew.height) == (160, 120)
            assert ew.pixel_hash.startswith("enc:")  # no cache: a cheap content hash
    assert any(ew.skip_reason for ew in got) and any(not ew.skip_reason for ew in got)


def test_render_range_same_frames_whatever_the_range_boundaries() -> None:
    plan = FramePlan(
        str(SAMPLE), WindowSpec.parse("33ms", overlap="80%"), size=(160, 120), min_events=0
    )
    whole = render_range(plan, 100, 130)
    parts = render_range(plan, 100, 111) + render_range(plan, 111, 130)
    assert [a.data for a in whole] == [b.data for b in parts]


def _window(ev: np.ndarray, t0: int, t1: int) -> Window:
    """The window [t0, t1) of time-sorted events, as Recording yields it."""
    lo, hi = np.searchsorted(ev["t"], [t0, t1])
    return Window(0, t0, t1, ev[lo:hi])


def _cd(ev: np.ndarray, sensor: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    ev = ev.copy()
    _scale_into(ev, sensor, size)
    return cdframe(ev, *size, palette="light")


def test_repeated_pixels_take_the_last_event_even_at_equal_times() -> None:
    # Pixel (1, 1): ON then OFF at the same time; (2, 0): OFF, ON, OFF, ON; a 4x2 sensor
    # drawn at 2x1 folds (0..1, 0..1) onto render pixel 0, whose last event is ON at t=9.
    t = [1, 1, 2, 3, 4, 5, 6, 9]
    x = [1, 1, 2, 2, 2, 2, 0, 1]
    y = [1, 1, 0, 0, 0, 0, 0, 0]
    p = [1, 0, 0, 1, 0, 1, 0, 1]
    ev = make_events(t, x, y, p)
    for size in ((4, 2), (2, 1)):
        got = SlidingCD((4, 2), size, "light")(Window(0, 0, 10, ev))
        assert np.array_equal(got, _cd(ev, (4, 2), size)), size
    img = SlidingCD((4, 2), (4, 2), "light")(Window(0, 0, 10, ev))
    _, on, off = pipeline.CD_PALETTES["light"]
    assert tuple(img[1, 1]) == off and tuple(img[0, 2]) == on


def test_colour_expires_when_the_last_event_leaves_the_window() -> None:
    ev = make_events([0, 5, 10, 20], [0, 1, 1, 2], [0, 0, 0, 0], [1, 1, 0, 1])
    bg, on, off = pipeline.CD_PALETTES["dark"]
    slide = SlidingCD((3, 1), (3, 1), "dark")
    assert [tuple(c) for c in slide(_window(ev, 0, 15))[0]] == [on, off, bg]
    # x=0 left, x=1's ON at 5 left but its OFF at 10 stays, x=2 arrived
    assert [tuple(c) for c in slide(_window(ev, 6, 21))[0]] == [bg, off, on]
    assert [tuple(c) for c in slide(_window(ev, 11, 26))[0]] == [bg, bg, on]


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 400),
    duration=st.integers(1, 40),
    steps=st.lists(st.integers(0, 60), min_size=1, max_size=12),
    size=st.sampled_from([(7, 5), (3, 2), (5, 5)]),
)
def test_sliding_cdframe_equals_cdframe_for_any_sequence_of_windows(
    seed: int, n: int, duration: int, steps: list[int], size: tuple[int, int]
) -> None:
    """Overlapping, touching, gapped, repeated and skipped windows: every call draws exactly
    what cdframe draws from that window's own events (dense repeats on a tiny sensor)."""
    rng = np.random.default_rng(seed)
    sensor = (7, 5)
    t = np.sort(rng.integers(0, 200, n))
    ev = make_events(t, rng.integers(0, 7, n), rng.integers(0, 5, n), rng.integers(0, 2, n))
    slide = SlidingCD(sensor, size, "light")
    t0 = 0
    for step in steps:  # step 0 draws the same window again; > duration leaves a gap
        t0 += step
        win = _window(ev, t0, t0 + duration)
        assert np.array_equal(slide(win), _cd(win.events, sensor, size)), (t0, duration)


def test_a_window_before_the_last_one_is_drawn_from_scratch() -> None:
    ev = make_events([0, 10, 30], [0, 1, 2], [0, 0, 0], [1, 1, 1])
    slide = SlidingCD((3, 1), (3, 1), "light")
    slide(_window(ev, 5, 35))
    back = _window(ev, 0, 12)
    assert np.array_equal(slide(back), _cd(back.events, (3, 1), (3, 1)))


def test_draws_in_pieces_give_the_same_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    x, y, pol = rng.integers(0, 4, 500), rng.integers(0, 3, 500), rng.integers(0, 2, 500)
    ev = make_events(np.arange(500), x, y, pol)
    whole = SlidingCD((4, 3), (4, 3), "gray")(_window(ev, 0, 500))
    monkeypatch.setattr(pipeline, "_MAX_DRAW", 7)
    assert np.array_equal(SlidingCD((4, 3), (4, 3), "gray")(_window(ev, 0, 500)), whole)


def test_bgr_is_the_rgb_frame_reversed_in_a_reused_buffer() -> None:
    rec = Recording(SAMPLE)
    spec = WindowSpec.parse("33ms", overlap="90%")
    a, b = list(rec.windows_between(spec, 40, 42))
    slide = SlidingCD(rec.size, (160, 120), "coolwarm")
    first = slide.bgr(a)
    rgb_b = SlidingCD(rec.size, (160, 120), "coolwarm")(b)
    second = slide.bgr(b)
    assert second is first  # valid until the next call, as documented
    assert np.array_equal(second[..., ::-1], rgb_b)


def test_window_views_hold_the_same_events_read_only() -> None:
    rec = Recording(SAMPLE)
    spec = WindowSpec.parse("20ms", overlap="50%")
    copies = list(rec.windows_between(spec, 10, 30))
    views = list(rec.windows_between(spec, 10, 30, copy=False))
    assert [w.index for w in views] == [w.index for w in copies]
    for c, v in zip(copies, views, strict=True):
        assert np.array_equal(c.events, v.events) and not v.events.flags.writeable
        assert c.events.flags.writeable


def test_a_sparse_range_renders_what_the_dense_one_does() -> None:
    """Windows left out of a resume are never drawn; the ones kept come out the same."""
    plan = FramePlan(
        str(SAMPLE), WindowSpec.parse("33ms", overlap="90%"), size=(160, 120), min_events=0
    )
    whole = {ew.index: ew.data for ew in render_range(plan, 200, 260)}
    want = [200, 203, 204, 230, 259]  # steps inside the overlap and a gap beyond it
    sparse = render_range(plan, 200, 260, want)
    assert [ew.index for ew in sparse] == want
    assert all(ew.data == whole[ew.index] for ew in sparse)


def test_kept_pixels_and_the_cache_hash_are_of_the_rgb_frame() -> None:
    rec = Recording(SAMPLE)
    spec = WindowSpec.parse("33ms", overlap="90%")
    seen: list[np.ndarray] = []

    def fp(img: np.ndarray) -> bytes:
        seen.append(img.copy())
        return b"fp"

    plan = FramePlan(str(SAMPLE), spec, size=(160, 120), fingerprint=fp, keep_pixels=True)
    got = render_range(plan, 50, 53)
    for ew, img in zip(got, seen, strict=True):
        ev = rec.window(spec, ew.index).events
        _scale_into(ev, rec.size, (160, 120))
        assert np.array_equal(ew.pixels, cdframe(ev, 160, 120))
        assert np.array_equal(img, ew.pixels) and ew.fingerprint == b"fp"
        assert ew.pixel_hash == frame_pixel_hash(ew.pixels)
    assert got[0].pixels is not got[1].pixels  # each frame its own array


def test_worker_processes_run_opencv_single_threaded_with_the_allocator_tuned() -> None:
    with make_executor("process", 1) as pool:
        assert pool.submit(cv2.getNumThreads).result() == 1
        if allocator.tune_allocator():  # glibc: the workers keep freed memory too
            assert pool.submit(allocator.tuned).result() is True


def test_the_engine_plan_sends_only_the_base64_text() -> None:
    plan = FramePlan(str(SAMPLE), WindowSpec.parse("33ms", overlap="90%"), size=(160, 120))
    full = render_range(plan, 300, 304)
    lean = render_range(replace(plan, keep_bytes=False), 300, 304)
    assert [ew.data for ew in lean] == [b""] * 4
    assert [ew.b64 for ew in lean] == [ew.b64 for ew in full]
    assert [ew.pixel_hash for ew in lean] == [ew.pixel_hash for ew in full]
    assert [base64.b64decode(ew.b64) for ew in lean] == [ew.data for ew in full]


def test_base64_text_is_the_standard_one() -> None:
    data = bytes(range(256)) * 41 + b"\xff\x00"
    assert pipeline.b64text(data) == base64.b64encode(data).decode("ascii")
    assert pipeline.b64text(b"") == ""


def test_encoded_hash_tells_the_frames_of_a_range_apart() -> None:
    plan = FramePlan(str(SAMPLE), WindowSpec.parse("33ms", overlap="90%"), size=(160, 120))
    got = render_range(plan, 300, 340)
    hashes = {ew.pixel_hash for ew in got}
    assert len(hashes) == len({ew.data for ew in got}) == len(got)
    ew = got[0]
    assert ew.pixel_hash == pipeline.encoded_hash(bytes(ew.data))
    assert pipeline.encoded_hash(ew.data[:-1] + b"\x00") != ew.pixel_hash


def test_allocator_tuning_is_idempotent() -> None:
    first = allocator.tune_allocator()
    assert allocator.tune_allocator() is first is allocator.tuned()
