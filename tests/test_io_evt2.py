"""EVT 2.0 reader and writer, checked event for event against expelliarmus, faery and evlib."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from evtui.events.errors import RecordingError
from evtui.events.io import detect_format, open_recording
from evtui.events.io.evt2 import Evt2Reader, Evt2Writer, decode_evt2
from evtui.events.io.raw import raw_header_bytes, sniff_encoding
from evtui.events.types import EVENT_DTYPE, TRIGGER_DTYPE, Checkpoint, make_events
from tests.helpers import read_evlib, read_faery, same

W, H = 640, 480


def sensor_events(n: int, seed: int = 0) -> np.ndarray:
    """Time-ordered events with bursts at one timestamp and quiet stretches."""
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.integers(0, 3, n) * (rng.random(n) < 0.6)) + 1_000
    t[n // 2 :] += 200_000  # a gap of many TIME_HIGH periods
    return make_events(t, rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n))


def w2(kind: int, payload: int) -> int:
    return (kind << 28) | payload


def cd(p: int, ts: int, x: int, y: int) -> int:
    return w2(p, (ts << 22) | (x << 11) | y)


def write_raw(path: Path, words: list[int], header: bytes | None = None) -> Path:
    head = header if header is not None else raw_header_bytes("evt2", W, H)
    path.write_bytes(head + np.asarray(words, "<u4").tobytes())
    return path


def write_evtui(ev: np.ndarray, path: Path, triggers: np.ndarray | None = None) -> Path:
    with Evt2Writer(path, W, H) as w:
        w.write(ev, triggers)
    return path


def read_expelliarmus(path: Path) -> np.ndarray:
    expelliarmus = pytest.importorskip("expelliarmus")
    return expelliarmus.Wizard(encoding="evt2").read(path)


def test_real_gen3_sample_matches_evlib_and_expelliarmus(real_file):
    path = real_file("evt2_sample.raw")
    assert detect_format(path) == "evt2"
    with open_recording(path) as r:
        ev = r.read_all()
        assert r.info.size == (640, 480)  # plugin gen3
        assert not r.diagnostics
    assert len(ev) == 539_481
    assert same(ev, *read_evlib(path))
    e = read_expelliarmus(path)
    assert same(ev, e["t"], e["x"], e["y"], e["p"])


def test_faery_and_expelliarmus_files_decode_identically(tmp_path):
    faery = pytest.importorskip("faery")
    expelliarmus = pytest.importorskip("expelliarmus")
    ev = sensor_events(50_000, 1)
    arr = np.zeros(len(ev), faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"] > 0
    fpath = tmp_path / "faery.raw"
    faery.events_stream_from_array(arr, (W, H)).to_file(fpath, version="evt2", zero_t0=False)
    assert same(open_recording(fpath).read_all(), ev["t"], ev["x"], ev["y"], ev["p"])
    xarr = np.zeros(len(ev), [("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")])
    xarr["t"], xarr["x"], xarr["y"], xarr["p"] = ev["t"], ev["x"], ev["y"], ev["p"]
    xpath = tmp_path / "expelliarmus.raw"
    expelliarmus.Wizard(encoding="evt2").save(xpath, xarr)
    with open_recording(xpath) as r:
        assert r.info.format == "evt2"
        assert same(r.read_all(), ev["t"], ev["x"], ev["y"], ev["p"])


def test_evtui_file_decodes_identically_elsewhere(tmp_path):
    ev = sensor_events(60_000, 2)
    path = write_evtui(ev, tmp_path / "e.raw")
    assert same(open_recording(path).read_all(), ev["t"], ev["x"], ev["y"], ev["p"])
    e = read_expelliarmus(path)
    assert same(ev, e["t"], e["x"], e["y"], e["p"])
    f = read_faery(path)
    assert same(ev, f["t"], f["x"], f["y"], f["on"])
    assert same(ev, *read_evlib(path))


def test_wrap_past_2_34_us_matches_faery(tmp_path):
    # evlib adds 2^34 again at every TIME_HIGH after a wrap and expelliarmus never
    # unwraps, so faery is the independent check here.
    rng = np.random.default_rng(3)
    t = np.sort(rng.integers((1 << 34) - 3_000_000, (1 << 34) + 3_000_000, 5000))
    t = np.concatenate([t, t[-1] + (1 << 35) + np.arange(10)])  # a jump over two wraps
    ev = make_events(t, rng.integers(0, W, len(t)), rng.integers(0, H, len(t)), t % 2)
    path = write_evtui(ev, tmp_path / "wrap.raw")
    got = open_recording(path).read_all()
    assert got["t"].max() > 3 * (1 << 34)
    assert same(got, ev["t"], ev["x"], ev["y"], ev["p"])
    f = read_faery(path)
    assert same(ev, f["t"], f["x"], f["y"], f["on"])


def test_every_word_type_and_the_wrap_rule(tmp_path):
    top = (1 << 28) - 1
    words = [
        cd(1, 1, 9, 9),  # before the first TIME_HIGH: skipped
        w2(8, 100),
        cd(1, 5, 10, 20),
        cd(0, 6, 11, 21),
        w2(0xA, (7 << 22) | (17 << 8) | 1),  # trigger channel 17, rising
        w2(0xE, 0x1234),  # OTHERS + CONTINUED: skipped
        w2(0xF, 0x1234),
        w2(0xD, 0x1),  # IMU: skipped
        w2(0x3, 0x5),  # reserved: skipped and counted
        w2(8, top),
        cd(1, 63, 12, 22),
        w2(8, top - (1 << 27)),  # a drop of exactly half the range: a wrap
        cd(1, 0, 13, 23),
        w2(8, 1),  # a drop smaller than half: not a wrap (a step back in time)
        cd(0, 2, 14, 24),
        cd(0, 2, 2047, 25),  # outside the sensor
    ]
    path = write_raw(tmp_path / "all.raw", words)
    with open_recording(path) as r:
        ev = r.read_all()
        counts = dict(r.diagnostics.counts)
        tr = r.read_triggers()
    loop = 1 << 34
    assert ev["t"].tolist() == [
        (100 << 6) | 5,
        (100 << 6) | 6,
        (top << 6) | 63,
        loop + ((top - (1 << 27)) << 6),
        loop + (1 << 6) + 2,
    ]
    assert ev["x"].tolist() == [10, 11, 12, 13, 14]
    assert ev["y"].tolist() == [20, 21, 22, 23, 24]
    assert ev["p"].tolist() == [1, 0, 1, 1, 0]
    assert tr.tolist() == [((100 << 6) | 7, 17, 1)]
    assert counts["EVT2 words before the first TIME_HIGH skipped"] == 1
    assert counts["reserved EVT2 words skipped"] == 1
    assert counts["events outside the 640x480 sensor dropped"] == 1
    assert counts["timestamps going back by more than 1 ms"] == 1


@pytest.mark.parametrize("unit", [4, 12])
def test_resume_from_every_checkpoint(tmp_path, unit):
    ev = sensor_events(300, 4)
    ev["t"] *= 50  # a TIME_HIGH every event or two
    tr = np.zeros(2, TRIGGER_DTYPE)
    tr["t"] = ev["t"][[100, 250]]
    path = write_evtui(ev, tmp_path / "cp.raw", tr)
    r = Evt2Reader(path)
    r.decode_bytes = unit
    blocks = list(r.blocks())
    full = np.concatenate([b.events for b in blocks])
    assert same(full, ev["t"], ev["x"], ev["y"], ev["p"])
    for i, b in enumerate(blocks):
        # A wrong restart state shows in the next events; 60 blocks on keeps this O(n).
        tail = [x.events for x in itertools.islice(r.blocks(b.start), 60)]
        got = np.concatenate(tail) if tail else np.zeros(0, EVENT_DTYPE)
        end = blocks[i + 60].start.events_before if i + 60 < len(blocks) else len(full)
        assert np.array_equal(got, full[b.start.events_before : end])
    assert np.array_equal(np.concatenate([b.triggers for b in blocks]), tr)


def test_decode_function_is_exact_at_any_split(tmp_path):
    ev = sensor_events(4000, 5)
    path = write_evtui(ev, tmp_path / "s.raw")
    words = np.frombuffer(path.read_bytes()[len(raw_header_bytes("evt2", W, H)) :], "<u4")
    rng = np.random.default_rng(1)
    for _ in range(20):
        cuts = np.sort(rng.integers(0, len(words), 4))
        state = (0, 0, 0)
        parts = []
        for a, b in itertools.pairwise([0, *cuts, len(words)]):
            d = decode_evt2(words[a:b], state)
            state = d.state
            parts.append(d.events)
        assert same(np.concatenate(parts), ev["t"], ev["x"], ev["y"], ev["p"])


def test_headers_and_errors(tmp_path):
    body = np.array([w2(8, 1), cd(1, 2, 3, 4)] * 40, "<u4").tobytes()
    assert sniff_encoding(b"% evt 2.0\n" + body) == "evt2"
    assert sniff_encoding(b"% plugin_name hal_plugin_gen31_fx3\n" + body) == "evt2"
    assert sniff_encoding(b"% integrator_name Prophesee\n" + body) == "evt2"  # payload
    assert Evt2Reader.sniff(b"% format EVT21;width=320;height=320\n" + body)
    p = tmp_path / "e21.raw"
    p.write_bytes(b"% format EVT21;width=320;height=320\n% end\n" + bytes(64))
    assert detect_format(p) == "evt2"
    with pytest.raises(RecordingError, match=r"EVT 2\.1 RAW files are not supported yet"):
        open_recording(p)
    p.write_bytes(b"% evt 3.0\n" + body)
    with pytest.raises(RecordingError, match=r"header says EVT 3\.0"):
        Evt2Reader(p)
    p.write_bytes(b"% evt 2.0\n% geometry 320x240\n" + body + b"\x01\x02\x03")
    with open_recording(p) as r:
        assert r.info.size == (320, 240) and r.info.geometry_source == "header"
        assert len(r.read_all()) == 40
        assert r.diagnostics.counts["truncated trailing bytes"] == 3
    p.write_bytes(b"% evt 2.0\n" + body)  # no geometry anywhere
    with open_recording(p) as r:
        assert r.info.size is None and r.info.geometry_source == "unknown"
        assert r.read_all()["x"].tolist() == [3] * 40
    r = Evt2Reader(p)
    with pytest.raises(RecordingError, match="word boundary"):
        list(r.blocks(Checkpoint(r._payload + 2, (0, 0, 0))))


def test_writer_is_deterministic_and_chunk_invariant(tmp_path):
    ev = sensor_events(20_000, 6)
    tr = np.zeros(3, TRIGGER_DTYPE)
    tr["t"] = [ev["t"][0], ev["t"][9_999], ev["t"][-1] + 5]
    tr["channel"] = [1, 2, 31]
    tr["value"] = [1, 0, 1]
    a = write_evtui(ev, tmp_path / "a.raw", tr).read_bytes()
    with Evt2Writer(tmp_path / "b.raw", W, H) as w:
        for s, e in itertools.pairwise([0, 1, 10_000, 10_001, 20_000]):
            w.write(ev[s:e], tr if s == 1 else None)
    assert a == (tmp_path / "b.raw").read_bytes()
    assert a.startswith(b"% evt 2.0\n% format EVT2;width=640;height=480\n% geometry 640x480\n")
    with open_recording(tmp_path / "a.raw") as r:
        assert np.array_equal(r.read_triggers(), tr)


def test_writer_counts_what_it_cannot_write(tmp_path):
    ev = make_events([5, -3, 100, 50], [1, 2, 900, 3], [1, 2, 3, 4], [1, 0, 1, 1])
    path = tmp_path / "w.raw"
    with Evt2Writer(path, W, H) as w:
        w.write(ev)
    got = open_recording(path).read_all()
    assert got["t"].tolist() == [5, 0, 50]
    assert w.diagnostics.counts["events outside the 640x480 sensor not written"] == 1
    assert w.diagnostics.counts["timestamps moved forward (EVT 2.0 cannot step back that far)"] == 1
