"""Recording → encoded frames in worker processes: order, resume subsets, skips, equality."""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest

from evtui.events.recording import Recording
from evtui.events.render import renderer
from evtui.events.windows import WindowSpec
from evtui.frames.encode import EncodeSpec
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
