"""EVT 3.0 reader and writer, checked event for event against faery and evlib."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from evtui.events.errors import RecordingError
from evtui.events.io import detect_format, open_recording
from evtui.events.io.evt3 import Evt3Reader, Evt3Writer, decode_evt3
from evtui.events.io.raw import (
    guess_encoding,
    raw_header_bytes,
    sniff_encoding,
    time_high_values,
)
from evtui.events.types import EVENT_DTYPE, TRIGGER_DTYPE, Checkpoint, make_events
from tests.helpers import read_evlib, read_faery, same

W, H = 640, 480


def sensor_events(n: int, seed: int = 0, width: int = W, height: int = H) -> np.ndarray:
    """Time-ordered readout: row runs sharing t/y/p (vectors), gaps in runs, lone events."""
    rng = np.random.default_rng(seed)
    runs = n // 4 + 1
    length = np.where(rng.random(runs) < 0.5, 1, rng.integers(2, 30, runs))
    t = np.cumsum(rng.integers(0, 4, runs)) + 5_000
    y = rng.integers(0, height, runs)
    p = rng.integers(0, 2, runs)
    x0 = rng.integers(0, width, runs)
    length = np.minimum(length, width - x0)
    src = np.repeat(np.arange(runs), length)
    within = np.arange(len(src)) - np.repeat(np.cumsum(length) - length, length)
    keep = (rng.random(len(src)) < 0.8) | (within == 0)
    src, within = src[keep], within[keep]
    return make_events(t[src], x0[src] + within, y[src], p[src])[:n]


def write_raw(path: Path, words: list[int] | np.ndarray, header: bytes | None = None) -> Path:
    head = header if header is not None else raw_header_bytes("evt3", W, H)
    path.write_bytes(head + np.asarray(words, "<u2").tobytes())
    return path


def w3(kind: int, payload: int) -> int:
    return (kind << 12) | payload


def write_faery(ev: np.ndarray, path: Path, version: str = "evt3") -> Path:
    faery = pytest.importorskip("faery")
    arr = np.zeros(len(ev), faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"] > 0
    faery.events_stream_from_array(arr, (W, H)).to_file(path, version=version, zero_t0=False)
    return path


def write_evtui(ev: np.ndarray, path: Path, triggers: np.ndarray | None = None) -> Path:
    with Evt3Writer(path, W, H) as w:
        w.write(ev, triggers)
    return path


# ---------------------------------------------------------------- real recording


def test_real_gen41_sample_matches_evlib(real_file):
    path = real_file("evt3_sample.raw")
    assert detect_format(path) == "evt3"
    with open_recording(path) as r:
        ev = r.read_all()
        assert r.info.size == (1280, 720)  # no geometry line: from plugin gen41 / system 48
        assert r.info.geometry_source == "hint"
        assert not r.diagnostics
    assert len(ev) == 219_596
    # The spec says ~8.8 ms (expelliarmus' TIME_LOW-wrap reading says 53.9 ms).
    assert 8_700 < int(ev["t"].max() - ev["t"].min()) < 8_900
    assert same(ev, *read_evlib(path))


def test_real_sample_small_blocks_resume(real_file):
    path = real_file("evt3_sample.raw")
    with open_recording(path, block_bytes=4096) as r:
        full = r.read_all()
        blocks = list(r.blocks())
        assert len(blocks) > 100
        for cp in [b.start for b in blocks[::37]]:
            tail = np.concatenate([b.events for b in r.blocks(cp)])
            assert np.array_equal(tail, full[cp.events_before :])


# ---------------------------------------------------------------- other writers


@pytest.mark.parametrize("seed", [0, 1])
def test_faery_written_file_decodes_identically(tmp_path, seed):
    ev = sensor_events(60_000, seed)
    path = write_faery(ev, tmp_path / "f.raw")
    with open_recording(path) as r:
        assert r.info.format == "evt3"
        got = r.read_all()
    assert same(got, ev["t"], ev["x"], ev["y"], ev["p"])


def test_faery_vector_heavy_file(tmp_path):
    # Long contiguous runs: faery writes mostly VECT_BASE_X + VECT words.
    rng = np.random.default_rng(3)
    runs = 4000
    length = rng.integers(8, 24, runs)
    t = np.repeat(np.cumsum(rng.integers(1, 3, runs)), length)
    x = np.repeat(rng.integers(0, W - 24, runs), length) + (
        np.arange(length.sum()) - np.repeat(np.cumsum(length) - length, length)
    )
    y = np.repeat(rng.integers(0, H, runs), length)
    p = np.repeat(rng.integers(0, 2, runs), length)
    ev = make_events(t, x, y, p)
    path = write_faery(ev, tmp_path / "v.raw")
    words = np.frombuffer(path.read_bytes()[-2 * 20_000 :], "<u2") >> 12
    assert np.count_nonzero(words >= 4) > np.count_nonzero(words == 2)  # vectors dominate
    assert same(open_recording(path).read_all(), t, x, y, p)


def test_evtui_file_decodes_identically_in_faery_and_evlib(tmp_path):
    ev = sensor_events(80_000, 5)
    path = write_evtui(ev, tmp_path / "e.raw")
    assert same(open_recording(path).read_all(), ev["t"], ev["x"], ev["y"], ev["p"])
    f = read_faery(path)
    assert same(ev, f["t"], f["x"], f["y"], f["on"])
    assert same(ev, *read_evlib(path))


def test_evtui_file_with_small_time_inversions_matches_evlib(tmp_path):
    # Sensors emit small backward steps; faery would clamp them, evlib keeps them.
    ev = sensor_events(20_000, 7)
    rng = np.random.default_rng(7)
    ev["t"] = ev["t"] - rng.integers(0, 12, len(ev)) * (rng.random(len(ev)) < 0.2)
    assert np.any(np.diff(ev["t"]) < 0)
    path = write_evtui(ev, tmp_path / "inv.raw")
    assert same(open_recording(path).read_all(), ev["t"], ev["x"], ev["y"], ev["p"])
    assert same(ev, *read_evlib(path))


def test_writer_uses_vectors_for_row_runs(tmp_path):
    t = np.full(32, 100)
    x = np.arange(32) + 64
    ev = make_events(t, x, np.full(32, 9), np.ones(32))
    path = write_evtui(ev, tmp_path / "run.raw")
    with open_recording(path) as r:
        words = np.frombuffer(path.read_bytes()[r._payload :], "<u2")
        assert same(r.read_all(), t, x, np.full(32, 9), np.ones(32))
    kinds = (words >> 12).tolist()
    assert kinds.count(3) == 1 and kinds.count(4) == 2 and kinds.count(5) == 1
    assert kinds.count(2) == 0  # no singles
    assert len(words) < 32 // 4


def test_writer_is_deterministic_and_chunk_invariant(tmp_path):
    ev = sensor_events(30_000, 11)
    tr = np.zeros(5, TRIGGER_DTYPE)
    tr["t"] = np.sort(np.random.default_rng(1).choice(ev["t"], 5))
    tr["channel"], tr["value"] = [0, 1, 2, 3, 4], [1, 0, 1, 0, 1]
    a = write_evtui(ev, tmp_path / "a.raw", tr).read_bytes()
    b = write_evtui(ev, tmp_path / "b.raw", tr).read_bytes()
    with Evt3Writer(tmp_path / "c.raw", W, H) as w:
        cuts = [0, 1, 2, 999, 1000, 1001, 15_000, 29_999, 30_000]
        for i, (s, e) in enumerate(itertools.pairwise(cuts)):
            w.write(ev[s:e], tr if i == 3 else None)
    assert a == b == (tmp_path / "c.raw").read_bytes()
    assert a.startswith(b"% evt 3.0\n% format EVT3;width=640;height=480\n% geometry 640x480\n")


def test_writer_header_is_read_back(tmp_path):
    path = write_evtui(sensor_events(10, 0), tmp_path / "h.raw")
    with open_recording(path) as r:
        assert r.info.size == (W, H)
        assert r.info.geometry_source == "header"
        assert r.info.header["evt"] == "3.0"


# ---------------------------------------------------------------- time


def test_wrap_past_2_24_us_matches_evlib(tmp_path):
    rng = np.random.default_rng(2)
    # Starts in the 2nd loop, crosses several 16.8 s loops, with a 30 s silent gap.
    t = np.sort(
        np.concatenate(
            [rng.integers(20_000_000, 40_000_000, 3000), rng.integers(70_000_000, 90_000_000, 3000)]
        )
    )
    ev = make_events(t, rng.integers(0, W, len(t)), rng.integers(0, H, len(t)), t % 2)
    path = write_evtui(ev, tmp_path / "wrap.raw")
    got = open_recording(path).read_all()
    assert got["t"].max() > 5 * (1 << 24)
    assert same(got, ev["t"], ev["x"], ev["y"], ev["p"])
    assert same(ev, *read_evlib(path))


def test_time_rules_of_the_hal_decoder(tmp_path):
    words = [
        w3(0, 1),  # before the first TIME_HIGH: skipped
        w3(2, 1),
        w3(8, 100),
        w3(6, 5),
        w3(0, 7),
        w3(2, 10),  # t = 100<<12 | 5
        w3(8, 100),  # same high: keeps the low part
        w3(2, 11),
        w3(6, 811),
        w3(6, 800),  # small backward TIME_LOW: not a wrap
        w3(2, 12),
        w3(8, 101),  # new high: low resets to 0 until the next TIME_LOW
        w3(2, 13),
        w3(8, 4095),
        w3(6, 1),
        w3(2, 14),
        w3(8, 2047),  # drop of 2048: a wrap (OpenEB HAL)
        w3(6, 2),
        w3(2, 15),
        w3(8, 1),  # drop of 2046: not a wrap
        w3(6, 3),
        w3(2, 16),
    ]
    path = write_raw(tmp_path / "t.raw", words)
    with open_recording(path) as r:
        ev = r.read_all()
        assert r.diagnostics.counts["EVT3 words before the first TIME_HIGH skipped"] == 2
    loop = 1 << 24
    assert ev["t"].tolist() == [
        (100 << 12) | 5,
        (100 << 12) | 5,
        (100 << 12) | 800,
        101 << 12,
        (4095 << 12) | 1,
        loop + (2047 << 12) + 2,
        loop + (1 << 12) + 3,
    ]
    assert ev["x"].tolist() == [10, 11, 12, 13, 14, 15, 16]
    assert set(ev["y"].tolist()) == {7}


# ---------------------------------------------------------------- word types


def test_every_word_type(tmp_path):
    words = [
        w3(8, 1),
        w3(6, 10),
        w3(0, 0x800 | 5),  # ADDR_Y with the system-type bit: y = 5
        w3(2, 0x800 | 3),  # single ON at x=3
        w3(3, 100),  # vector base x=100, OFF
        w3(4, 0b1000_0000_0101),  # x=100,102,111
        w3(5, 0b0000_0000),  # empty VECT_8: base moves by 8 all the same
        w3(5, 0b1000_0001),  # x=120,127
        w3(0xE, 0x014),  # OTHERS + CONTINUED_12 + CONTINUED_4: skipped
        w3(0xF, 0xABC),
        w3(7, 0x3),
        w3(0xA, 0x301),  # trigger channel 3, rising
        w3(1, 0x5),  # reserved types: skipped and counted
        w3(9, 0x5),
        w3(0xB, 0x5),
        w3(0xC, 0x5),
        w3(0xD, 0x123),  # IMU: skipped
        w3(6, 20),
        w3(4, 0b1),  # base now 128: x=128
        w3(0xA, 0x200),  # trigger channel 2, falling
        w3(2, 0x800 | 0x7FF),  # x=2047 is outside 640x480
    ]
    path = write_raw(tmp_path / "all.raw", words)
    with open_recording(path) as r:
        ev = r.read_all()
        counts = dict(r.diagnostics.counts)
        tr = r.read_triggers()
    t1 = (1 << 12) | 10
    t2 = (1 << 12) | 20
    assert ev["x"].tolist() == [3, 100, 102, 111, 120, 127, 128]
    assert ev["y"].tolist() == [5] * 7
    assert ev["p"].tolist() == [1, 0, 0, 0, 0, 0, 0]
    assert ev["t"].tolist() == [t1] * 6 + [t2]
    assert tr.tolist() == [(t1, 3, 1), (t2, 2, 0)]
    assert counts["reserved EVT3 words skipped"] == 4
    assert counts["events outside the 640x480 sensor dropped"] == 1


def test_vectors_past_x_2047_are_dropped_not_wrapped(tmp_path):
    words = [w3(8, 1), w3(6, 0), w3(0, 2), w3(3, 2040), w3(4, 0xFFF)]
    path = write_raw(tmp_path / "edge.raw", words, raw_header_bytes("evt3", 2048, 2048))
    with open_recording(path) as r:
        ev = r.read_all()
        assert r.diagnostics.counts["vector events past x=2047 dropped"] == 4
    assert ev["x"].tolist() == list(range(2040, 2048))


# ---------------------------------------------------------------- checkpoints


def _stream_with_boundaries() -> np.ndarray:
    """Words where vector runs, TIME_HIGH/TIME_LOW pairs and triggers all occur."""
    ev = sensor_events(400, 9)
    ev["t"] *= 997  # runs keep their shared time; the high part changes every few runs
    return ev


@pytest.mark.parametrize("unit", [2, 6])
def test_resume_from_every_checkpoint(tmp_path, unit):
    ev = _stream_with_boundaries()
    tr = np.zeros(3, TRIGGER_DTYPE)
    tr["t"] = ev["t"][[10, 200, 390]]
    path = write_evtui(ev, tmp_path / "cp.raw", tr)
    r = Evt3Reader(path)
    r.decode_bytes = unit  # a checkpoint after every word (or three)
    blocks = list(r.blocks())
    full = np.concatenate([b.events for b in blocks])
    assert same(full, ev["t"], ev["x"], ev["y"], ev["p"])
    words = np.frombuffer(path.read_bytes()[r._payload :], "<u2") >> 12
    starts = [(b.start.position - r._payload) // 2 for b in blocks]
    before = {int(words[s - 1]) for s in starts if s}
    assert {3, 4, 8} <= before  # boundaries right after VECT_BASE_X, VECT_12, TIME_HIGH
    for i, b in enumerate(blocks):
        # A wrong restart state shows in the next events; 60 blocks on keeps this O(n).
        tail = [x.events for x in itertools.islice(r.blocks(b.start), 60)]
        got = np.concatenate(tail) if tail else np.zeros(0, EVENT_DTYPE)
        end = blocks[i + 60].start.events_before if i + 60 < len(blocks) else len(full)
        assert np.array_equal(got, full[b.start.events_before : end])
    trig = np.concatenate([x.triggers for x in r.blocks(blocks[len(blocks) // 2].start)])
    assert len(trig) >= 1


def test_bad_checkpoint_is_a_recording_error(tmp_path):
    path = write_evtui(sensor_events(100), tmp_path / "c.raw")
    r = Evt3Reader(path)
    with pytest.raises(RecordingError, match="word boundary"):
        list(r.blocks(Checkpoint(r._payload + 1, (0,) * 7)))
    with pytest.raises(RecordingError, match="state"):
        list(r.blocks(Checkpoint(r._payload, (1, 2))))


def test_read_all_equals_joined_blocks_with_diagnostics(tmp_path):
    ev = sensor_events(20_000, 4)
    ev["t"][5000:] -= 5_000  # one step back by > 1 ms
    ev["x"][[10, 20, 30]] = [700, 800, 900]  # outside a 640-wide sensor
    path = tmp_path / "d.raw"
    with Evt3Writer(path, 1024, 480) as w:
        w.write(ev)
    a = Evt3Reader(path, geometry=(W, H), block_bytes=4096)
    b = Evt3Reader(path, geometry=(W, H), block_bytes=4096)
    joined = np.concatenate([blk.events for blk in b.blocks()])
    assert np.array_equal(a.read_all(), joined)
    assert len(joined) == len(ev) - 3
    assert a.diagnostics.counts == b.diagnostics.counts
    assert a.diagnostics.counts["events outside the 640x480 sensor dropped"] == 3
    assert a.diagnostics.counts["timestamps going back by more than 1 ms"] == 1


# ---------------------------------------------------------------- headers


def test_sniff_and_header_variants(tmp_path):
    body = np.array([w3(8, 1), w3(6, 2), w3(0, 3), w3(2, 4)] * 40, "<u2").tobytes()
    assert sniff_encoding(b"% evt 3.0\n" + body) == "evt3"
    assert sniff_encoding(b"% format EVT3;width=320;height=320\n% end\n" + body) == "evt3"
    assert sniff_encoding(b"% plugin_name hal_plugin_imx636_evk4\n" + body) == "evt3"
    assert sniff_encoding(b"% serial_number 00001\n" + body) == "evt3"  # from the payload
    assert guess_encoding(body) == "evt3"
    assert sniff_encoding(b"% Version 2\n% Width 640\n% Height 480\n\x0c\x08") is None  # DAT
    assert not Evt3Reader.sniff(b"% evt 2.0\n" + body)
    assert not Evt3Reader.sniff(b"\x00\x01garbage")
    p = tmp_path / "fmt.raw"
    p.write_bytes(b"% format EVT3;width=320;height=320\n% end\n" + body)
    with open_recording(p) as r:
        assert r.info.size == (320, 320) and r.info.geometry_source == "header"
    p.write_bytes(b"% evt 3.0\n" + body)
    with open_recording(p) as r:
        assert r.info.size is None and r.info.geometry_source == "unknown"
        assert len(r.read_all()) == 40


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"% evt 2.0\n" + bytes(64), "header says EVT 2.0"),
        (b"% evt 2.1\n" + bytes(64), "EVT 2.1 RAW files are not supported yet"),
        (b"% Version 2\n% Width 640\n\x0c\x08", "not a Prophesee RAW header"),
        (b"% evt 3.0\n% plugin_name x", "header line has no end"),
        (b"% serial_number 1\n" + bytes(range(256)) * 4, "names no encoding"),
        (b"% format EVT3;endianness=big\n" + bytes(8), "big-endian"),
    ],
)
def test_bad_headers_are_one_line_errors(tmp_path, content, message):
    p = tmp_path / "bad.raw"
    p.write_bytes(content)
    with pytest.raises(RecordingError, match=message) as e:
        Evt3Reader(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_truncated_file_and_empty_payload(tmp_path):
    ev = sensor_events(500, 2)
    path = write_evtui(ev, tmp_path / "tr.raw")
    data = path.read_bytes()
    path.write_bytes(data + b"\x42")  # half a word
    with open_recording(path) as r:
        assert same(r.read_all(), ev["t"], ev["x"], ev["y"], ev["p"])
        assert r.diagnostics.counts["truncated trailing bytes"] == 1
    path.write_bytes(raw_header_bytes("evt3", W, H))
    with open_recording(path) as r:
        assert len(r.read_all()) == 0 and not r.diagnostics


def test_garbage_payload_only_diagnostics(tmp_path):
    rng = np.random.default_rng(0)
    path = write_raw(tmp_path / "g.raw", rng.integers(0, 1 << 16, 50_000).astype("<u2"))
    with open_recording(path) as r:
        ev = r.read_all()
    assert ev.dtype == EVENT_DTYPE
    assert int(ev["x"].max()) < W and int(ev["y"].max()) < H
    assert set(np.unique(ev["p"]).tolist()) <= {0, 1}
    assert r.diagnostics.counts["reserved EVT3 words skipped"] > 0


# ---------------------------------------------------------------- writer edge cases


def test_writer_counts_what_it_cannot_write(tmp_path):
    ev = make_events([10, 20, 30, 40], [1, 700, 2, 3], [1, 1, 500, 1], [1, 1, 1, 0])
    ev = np.concatenate([ev, make_events([-5, 30_000_000, 10], [4, 5, 6], [1, 1, 1], [1, 1, 1])])
    path = tmp_path / "w.raw"
    with Evt3Writer(path, W, H) as w:
        w.write(ev)
    got = open_recording(path).read_all()
    assert w.diagnostics.counts["events outside the 640x480 sensor not written"] == 2
    assert w.diagnostics.counts["timestamps moved forward (EVT 3.0 cannot step back that far)"] == 2
    # -5 -> 0; 10 after 30 s: moved to the furthest step back the clock can take.
    assert got["t"].tolist() == [10, 40, 0, 30_000_000, 30_000_000 - (2000 << 12)]
    with pytest.raises(RecordingError, match="2048x2048"):
        Evt3Writer(tmp_path / "big.raw", 4096, 10)


def test_writer_triggers_round_trip(tmp_path):
    ev = sensor_events(2000, 3)
    tr = np.zeros(4, TRIGGER_DTYPE)
    tr["t"] = [ev["t"][0] - 1, ev["t"][500], ev["t"][1500] + 1, ev["t"][-1] + 100]
    tr["channel"] = [0, 5, 15, 1]
    tr["value"] = [1, 0, 1, 0]
    path = write_evtui(ev, tmp_path / "tr.raw", tr)
    with open_recording(path) as r:
        assert np.array_equal(r.read_triggers(), tr)
        assert same(r.read_all(), ev["t"], ev["x"], ev["y"], ev["p"])


def test_decode_function_is_exact_at_any_split(tmp_path):
    ev = sensor_events(3000, 8)
    path = write_evtui(ev, tmp_path / "s.raw")
    words = np.frombuffer(path.read_bytes()[len(raw_header_bytes("evt3", W, H)) :], "<u2")
    rng = np.random.default_rng(0)
    for _ in range(20):
        cuts = np.sort(rng.integers(0, len(words), 5))
        state = (0,) * 7
        parts = []
        for a, b in zip([0, *cuts], [*cuts, len(words)], strict=True):
            d = decode_evt3(words[a:b], state)
            state = d.state
            parts.append(d.events)
        assert same(np.concatenate(parts), ev["t"], ev["x"], ev["y"], ev["p"])


@pytest.mark.parametrize(
    ("prev", "high", "fill", "words"),
    [
        (-1, 5, 4096, [5]),  # file start
        (-1, 4096 + 5, 4096, [0, 4095, 0, 5]),  # start in the 2nd loop
        (10, 13, 4096, [11, 12, 13]),  # a gap: every value in between
        (4090, 4096 + 2, 4096, [4091, 4092, 4093, 4094, 4095, 0, 1, 2]),
        (100, 3 * 4096, 4096, [4095, 0, 4095, 0, 4095, 0]),  # past whole loops
        (100, 90, 4096, [90]),  # a step back
        (10, 13, 0, [13]),  # EVT2-style: no filling
    ],
)
def test_time_high_sequences(prev, high, fill, words):
    owner, values = time_high_values(np.array([high]), np.array([prev]), 12, fill)
    assert values.tolist() == words
    assert owner.tolist() == [0] * len(words)
