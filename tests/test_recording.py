"""Recording: random access to window k equals streaming, starts from a checkpoint,
and the index is cached under the file's content fingerprint."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from evtui.events import recording as recmod
from evtui.events.recording import Recording, file_fingerprint
from evtui.events.windows import WindowSpec
from tests.test_windows import events_with_jitter

SAMPLE_EVT3 = Path(__file__).resolve().parent.parent / "sample_data" / "sample.evt3.raw"


@pytest.fixture
def npz_file(tmp_path):
    ev = events_with_jitter(20_000, seed=7)
    path = tmp_path / "rec.npz"
    np.savez(path, t=ev["t"], x=ev["x"], y=ev["y"], p=ev["p"].astype(np.uint8))
    return path, ev


def open_small(path, **kw):
    return Recording(path, block_bytes=8192, index_block_bytes=4096, **kw)


SPECS = [
    WindowSpec(duration_us=5_000),
    WindowSpec(duration_us=5_000, stride=2_000),
    WindowSpec(duration_us=3_000, stride=7_000, start_us=60_000, end_us=300_000),
    WindowSpec(count=1_000),
    WindowSpec(count=700, stride=300),
    WindowSpec(count=500, start_us=100_000, end_us=250_000),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.describe())
def test_random_access_equals_streaming(npz_file, spec):
    path, _ = npz_file
    rec = open_small(path)
    streamed = list(rec.windows(spec))
    n = rec.window_count(spec)
    assert n == len(streamed) > 3
    for k in [0, 1, n // 2, n - 1]:
        w = rec.window(spec, k)
        s = streamed[k]
        assert (w.index, w.t0_us, w.t1_us) == (s.index, s.t0_us, s.t1_us)
        assert np.array_equal(w.events, s.events)


def test_window_k_decodes_from_a_checkpoint_not_the_start(npz_file, monkeypatch):
    path, _ = npz_file
    rec = open_small(path)
    spec = WindowSpec(duration_us=5_000)
    n = rec.window_count(spec)
    starts = []
    original = rec.open_reader

    def spying_open(block_bytes=None):
        reader = original(block_bytes)
        inner = reader.blocks

        def blocks(start=None):
            starts.append(start)
            return inner(start)

        reader.blocks = blocks
        return reader

    monkeypatch.setattr(rec, "open_reader", spying_open)
    rec.window(spec, n - 2)
    assert starts and starts[0] is not None and starts[0].position > 0


def test_index_is_cached_by_content(npz_file, tmp_path, monkeypatch):
    path, ev = npz_file
    first = open_small(path).index()
    assert first.event_count == len(ev)
    assert (first.t_min_all, first.t_max_all) == (int(ev["t"].min()), int(ev["t"].max()))
    calls = []
    real_build = recmod.build_index
    monkeypatch.setattr(
        recmod, "build_index", lambda *a, **k: calls.append(1) or real_build(*a, **k)
    )
    copy = tmp_path / "copy.npz"
    shutil.copy(path, copy)
    again = open_small(copy).index()  # same content elsewhere: cache hit
    assert calls == [] and again.event_count == first.event_count
    ev2 = ev[:-5]
    np.savez(path, t=ev2["t"], x=ev2["x"], y=ev2["y"], p=ev2["p"].astype(np.uint8))
    assert open_small(path).index().event_count == len(ev2)  # changed content: rebuilt
    assert calls == [1]


def test_fingerprint_follows_content_not_name(tmp_path):
    a = tmp_path / "a.bin"
    b = tmp_path / "b.bin"
    data = np.random.default_rng(0).bytes(3 << 20)
    a.write_bytes(data)
    b.write_bytes(data)
    assert file_fingerprint(a) == file_fingerprint(b)
    b.write_bytes(data[: (3 << 20) // 2] + b"\x00" + data[(3 << 20) // 2 + 1 :])
    # A change in the middle falls in a sampled region only by chance; the size and the
    # sampled regions are what the fingerprint promises. A change at the edges is caught:
    b.write_bytes(b"\x01" + data[1:])
    assert file_fingerprint(a) != file_fingerprint(b)


def test_stats_and_inferred_geometry(npz_file):
    path, ev = npz_file
    rec = open_small(path)
    idx = rec.index()
    # No size in the file: the smallest known sensor holding x < 64, y < 48 (DVS128).
    assert rec.info.size is None
    assert (rec.size, rec.geometry_source) == ((128, 128), "inferred")
    duration_s = (int(ev["t"].max()) - int(ev["t"][0]) + 1) / 1e6
    assert idx.mean_rate == pytest.approx(len(ev) / duration_s, rel=1e-6)
    assert idx.peak_rate >= idx.mean_rate


@pytest.mark.parametrize(
    "window,overlap,start,end",
    [
        ("33ms", None, None, None),
        ("50ms", "50%", None, None),
        ("20000ev", "50%", None, None),
        ("10ms", None, "1s", "3s"),
    ],
)
def test_windows_between_equals_the_same_windows_streamed(window, overlap, start, end):
    rec = Recording(SAMPLE_EVT3)
    spec = WindowSpec.parse(window, overlap=overlap, start=start, end=end)
    n = rec.window_count(spec)
    every = list(rec.windows(spec))
    assert len(every) == n
    for k0, k1 in [(0, min(10, n)), (min(5, n - 2), min(40, n)), (n // 2, n // 2 + 3), (n - 7, n)]:
        got = list(rec.windows_between(spec, k0, k1))
        assert [w.index for w in got] == list(range(k0, k1))
        for w in got:
            ref = every[w.index]
            assert (w.t0_us, w.t1_us) == (ref.t0_us, ref.t1_us)
            assert np.array_equal(w.events, ref.events)
