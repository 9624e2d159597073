"""Text/CSV: dialects, seconds rounding, faery and numpy cross-checks, errors, checkpoints."""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import pytest

from evtui.events.errors import RecordingError
from evtui.events.io import detect_format, open_recording, open_writer
from evtui.events.io.text import TextReader, TextWriter, parse_block
from evtui.events.types import EVENT_DTYPE
from tests import helpers

random_events = partial(helpers.random_events, step=9, width=1280, height=720)


def write(path, ev, parts=(0.3, 0.31), **options):
    with TextWriter(path, 1280, 720, **options) as w:
        cuts = [0, *(int(f * len(ev)) for f in parts), len(ev)]
        for a, b in itertools.pairwise(cuts):
            w.write(ev[a:b])
    return path


def read(path, **kw) -> np.ndarray:
    with TextReader(path, **kw) as r:
        return r.read_all()


# --- writer -> reader ------------------------------------------------------------------------


def test_us_lines_round_trip_and_match_python_formatting(tmp_path):
    ev = random_events(20_000)
    ev["t"][:3] = [-12, 0, 7]  # signs and zero
    path = write(tmp_path / "a.txt", ev)
    expected = "".join(f"{t} {x} {y} {p}\n" for t, x, y, p in ev.tolist())
    assert path.read_text() == expected
    out = read(path, block_bytes=4096)
    assert out.dtype == EVENT_DTYPE and np.array_equal(out, ev)


def test_seconds_lines_are_exact_decimal_and_round_trip(tmp_path):
    ev = random_events(5000, seed=1)
    ev["t"][:4] = [-1_500_000, -500_000, -3, 0]
    path = write(tmp_path / "s.txt", ev, seconds=True)
    lines = path.read_text().splitlines()
    assert lines[:4] == [
        f"-1.500000 {ev['x'][0]} {ev['y'][0]} {ev['p'][0]}",
        f"-0.500000 {ev['x'][1]} {ev['y'][1]} {ev['p'][1]}",
        f"-0.000003 {ev['x'][2]} {ev['y'][2]} {ev['p'][2]}",
        f"0.000000 {ev['x'][3]} {ev['y'][3]} {ev['p'][3]}",
    ]
    assert lines[10].split()[0] == f"{ev['t'][10] / 1e6:.6f}"
    with TextReader(path) as r:
        assert r.info.header["time_unit"] == "s"
        assert np.array_equal(r.read_all(), ev)


def test_csv_path_writes_faery_dialect_with_geometry(tmp_path):
    ev = random_events(3000, seed=2)
    path = write(tmp_path / "a.csv", ev)
    assert path.read_text().splitlines()[:2] == [
        "t,x@1280,y@720,on",
        f"{ev['t'][0]},{ev['x'][0]},{ev['y'][0]},{ev['p'][0]}",
    ]
    assert detect_format(path) == "text"
    with open_recording(path) as r:
        assert r.info.size == (1280, 720)
        assert np.array_equal(r.read_all(), ev)


def test_geometry_line_option(tmp_path):
    ev = random_events(100, seed=3)
    path = write(tmp_path / "g.txt", ev, geometry_line=True)
    assert path.read_text().startswith("1280 720\n")
    with TextReader(path) as r:
        assert r.info.size == (1280, 720) and np.array_equal(r.read_all(), ev)


def test_open_writer_chooses_text_for_txt(tmp_path):
    with open_writer(tmp_path / "o.txt", 10, 10) as w:
        assert isinstance(w, TextWriter)


# --- independent producers ------------------------------------------------------------------


def test_rpg_seconds_with_ns_digits_round_like_python(tmp_path):
    rng = np.random.default_rng(4)
    n = 20_000
    t_ns = 1_468_940_000_000_000 + np.cumsum(rng.integers(0, 20_000, n))
    xs, ys, ps = rng.integers(0, 240, n), rng.integers(0, 180, n), rng.integers(0, 2, n)
    lines = [
        f"{t // 10**9}.{t % 10**9:09d} {x} {y} {p}\n"
        for t, x, y, p in zip(t_ns, xs, ys, ps, strict=True)
    ]
    lines[5] = "1468940000.000000500 1 2 1\n"  # exactly half a µs
    (tmp_path / "events.txt").write_text("".join(lines))
    expected = [round(float(line.split()[0]) * 1e6) for line in lines]  # never int()
    out = read(tmp_path / "events.txt", block_bytes=8192)
    assert out["t"].tolist() == expected
    assert out["x"].tolist() == [int(line.split()[1]) for line in lines]
    # np.loadtxt + rint is the same definition, computed by different code:
    ref = np.loadtxt(tmp_path / "events.txt")
    assert np.array_equal(np.rint(ref[:, 0] * 1e6).astype(np.int64), out["t"])


def test_short_seconds_use_the_fast_path_and_agree_with_float(tmp_path):
    rng = np.random.default_rng(5)
    t = np.sort(rng.uniform(0, 100, 30_000))
    text = "".join(f"{v:.9f} {i % 240} {i % 180} {i % 2}\n" for i, v in enumerate(t))
    (tmp_path / "s.txt").write_text(text)
    expected = [round(float(line.split()[0]) * 1e6) for line in text.splitlines()]
    assert read(tmp_path / "s.txt")["t"].tolist() == expected


def test_faery_csv_reads_identically(tmp_path):
    faery = pytest.importorskip("faery")
    ev = random_events(10_000, seed=6)
    arr = np.zeros(len(ev), faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"].astype(bool)
    faery.events_stream_from_array(arr, dimensions=(1280, 720)).to_file(
        str(tmp_path / "f.csv"), zero_t0=False
    )
    with TextReader(tmp_path / "f.csv", block_bytes=4096) as r:
        assert r.info.header["dialect"] == "csv" and r.info.size == (1280, 720)
        assert np.array_equal(r.read_all(), ev)


def test_faery_reads_evtui_csv_identically(tmp_path):
    faery = pytest.importorskip("faery")
    ev = random_events(10_000, seed=7)
    path = write(tmp_path / "e.csv", ev)
    arr = faery.events_stream_from_file(str(path)).to_array()
    assert np.array_equal(arr["t"].astype(np.int64), ev["t"])
    assert np.array_equal(arr["x"], ev["x"]) and np.array_equal(arr["y"], ev["y"])
    assert np.array_equal(arr["on"], ev["p"].astype(bool))


def test_metavision_csv_with_geometry_line(tmp_path):
    ev = random_events(500, seed=8)
    body = "".join(f"{x},{y},{p},{t}\n" for t, x, y, p in ev.tolist())
    (tmp_path / "mv.csv").write_text("%geometry:1280,720\n" + body)
    with TextReader(tmp_path / "mv.csv") as r:
        assert r.info.size == (1280, 720) and r.info.header["dialect"] == "metavision"
        assert np.array_equal(r.read_all(), ev)


def test_metavision_csv_with_geometry_and_names(tmp_path):
    ev = random_events(200, seed=14)
    body = "".join(f"{x},{y},{p},{t}\n" for t, x, y, p in ev.tolist())
    (tmp_path / "mv.csv").write_text("%geometry:640,480\nx,y,polarity,timestamp\n" + body)
    with TextReader(tmp_path / "mv.csv") as r:
        assert r.info.size == (640, 480)
        assert np.array_equal(r.read_all(), ev[(ev["x"] < 640) & (ev["y"] < 480)])
        assert r.diagnostics  # events outside the declared sensor are counted


def test_named_header_in_any_order(tmp_path):
    ev = random_events(300, seed=9)
    body = "".join(f"{x}, {p}, {t}, {y}\n" for t, x, y, p in ev.tolist())
    (tmp_path / "h.csv").write_text("x, polarity, timestamp, y\n" + body)
    assert np.array_equal(read(tmp_path / "h.csv"), ev)


def test_numpy_savetxt_default_exponent_format(tmp_path):
    ev = random_events(2000, seed=10)
    cols = np.stack([ev["t"], ev["x"], ev["y"], ev["p"]], axis=1).astype(np.float64)
    np.savetxt(tmp_path / "us.txt", cols)  # '%.18e': µs that happen to have an exponent
    with TextReader(tmp_path / "us.txt") as r:
        assert r.info.header["time_unit"] == "us"
        assert np.array_equal(r.read_all(), ev)
    cols[:, 0] = cols[:, 0] / 1e6 + 0.25e-6
    np.savetxt(tmp_path / "s.txt", cols)
    with TextReader(tmp_path / "s.txt") as r:
        assert r.info.header["time_unit"] == "s"
        assert np.array_equal(r.read_all()["t"], np.rint(cols[:, 0] * 1e6).astype(np.int64))


def test_irregular_whitespace_crlf_and_blank_lines(tmp_path):
    ev = random_events(4000, seed=11)
    rows = [f"  {t}\t {x}  {y} {p}  \r\n" for t, x, y, p in ev.tolist()]
    for i in range(0, len(rows), 37):
        rows[i] = "\r\n" + rows[i]
    (tmp_path / "w.txt").write_text("".join(rows), newline="")
    assert np.array_equal(read(tmp_path / "w.txt", block_bytes=4096), ev)


def test_last_line_without_newline_is_an_event(tmp_path):
    (tmp_path / "n.txt").write_text("1 2 3 1\n4 5 6 0")
    assert read(tmp_path / "n.txt")["t"].tolist() == [1, 4]
    (tmp_path / "h.csv").write_text("t,x,y,p\n7,1,2,1")
    assert read(tmp_path / "h.csv")["t"].tolist() == [7]


def test_header_only_file_has_no_events(tmp_path):
    (tmp_path / "e.csv").write_text("t,x@640,y@480,on\n")
    with TextReader(tmp_path / "e.csv") as r:
        assert len(r.read_all()) == 0 and r.info.size == (640, 480)


# --- checkpoints -------------------------------------------------------------------------------


@pytest.mark.parametrize("seconds", [False, True])
def test_resume_from_every_checkpoint(tmp_path, seconds):
    ev = random_events(6000, seed=12)
    path = write(tmp_path / "r.txt", ev, seconds=seconds)
    with TextReader(path, block_bytes=4096) as r:
        blocks = list(r.blocks())
        assert len(blocks) > 10
        for b in blocks:
            again = np.concatenate([x.events for x in r.blocks(b.start)])
            assert np.array_equal(again, ev[b.start.events_before :])


def test_checkpoint_line_numbers_stay_right_for_errors(tmp_path):
    ev = random_events(3000, seed=13)
    text = "".join(f"{t} {x} {y} {p}\n" for t, x, y, p in ev.tolist())
    lines = text.splitlines(keepends=True)
    lines[2500] = "12 34 oops 1\n"
    (tmp_path / "b.txt").write_text("".join(lines))
    offset = sum(len(line) for line in lines[:2500])
    with TextReader(tmp_path / "b.txt", block_bytes=4096) as r:
        first = next(r.blocks())
        cps = [b.start for b in itertools.islice(r.blocks(first.start), 3)]
        with pytest.raises(RecordingError) as e:
            for _ in r.blocks(cps[-1]):
                pass
    assert e.value.offset == offset
    assert "line 2501:" in str(e.value) and "field 3" in str(e.value)


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("12 34 56\n", r"expected 4 fields \(t x y p\), found 3"),
        ("12 34 56 1 9\n", r"expected 4 fields \(t x y p\), found 5"),
        ("12 -4 56 1\n", r"x coordinate"),
        ("12 4 70000 1\n", r"y coordinate"),
        ("12 4 7 1x\n", r"polarity"),
        ("1.5 4 7 1\n", r"integer µs time"),
        ("12 4.5 7 1\n", r"x coordinate"),
        ("nan 4 7 1\n", r"integer µs time"),
    ],
)
def test_malformed_line_names_line_and_offset(tmp_path, bad, match):
    # Past the first 64 KiB, which decide seconds or µs for the whole file.
    good = "".join(f"{i} {i % 7} {i % 5} {i % 2}\n" for i in range(10_000))
    (tmp_path / "m.txt").write_text(good + bad + good)
    with pytest.raises(RecordingError, match=match) as e:
        read(tmp_path / "m.txt", block_bytes=4096)
    assert e.value.offset == len(good)
    assert "line 10001:" in str(e.value) and "\n" not in str(e.value)


def test_truncated_last_line_is_counted_not_fatal(tmp_path):
    (tmp_path / "t.txt").write_text("1 2 3 1\n4 5 6 0\n7 8")
    with TextReader(tmp_path / "t.txt") as r:
        assert r.read_all()["t"].tolist() == [1, 4]
        assert r.diagnostics.counts["truncated trailing bytes"] == 1
        assert r.diagnostics.first_offset["truncated trailing bytes"] == 16


def test_garbage_first_line_fails_at_open(tmp_path):
    (tmp_path / "g.txt").write_text("hello world\n1 2 3 4\n")
    with pytest.raises(RecordingError, match=r"unknown CSV header 'hello,world'"):
        TextReader(tmp_path / "g.txt")
    (tmp_path / "h.txt").write_text("1 2 3\n")
    with pytest.raises(RecordingError, match=r"byte 0: line 1: expected an event line"):
        TextReader(tmp_path / "h.txt")


def test_sniff_accepts_event_text_only():
    assert TextReader.sniff(b"0.000 1 2 1\n0.001 3 4 0\n")
    assert TextReader.sniff(b"t,x@640,y@480,on\n1,2,3,1\n")
    assert TextReader.sniff(b"%geometry:640,480\n1,2,1,5\n")
    assert TextReader.sniff(b"240 180\n0.1 1 2 1\n")
    assert TextReader.sniff(b"t,x@640,y@480,on\n")  # faery writes the header for 0 events
    assert not TextReader.sniff(b"% evt 3.0\n\x00\x80\x12\xff")
    assert not TextReader.sniff(b"hello world, this is prose.\n")
    assert not TextReader.sniff(b"1 2 3\n")
    assert not TextReader.sniff(b"")


def test_parse_block_reports_dotted_time_column():
    ev, lines, dotted = parse_block(b"0.5 1 2 1\n1.25 3 4 0\n", (0, 1, 2, 3), None)
    assert dotted and lines == 2 and ev["t"].tolist() == [500_000, 1_250_000]
    _, _, dotted = parse_block(b"5 1 2 1\n", (0, 1, 2, 3), None)
    assert not dotted


def test_nested_iterations_are_independent(tmp_path):
    ev = random_events(6000, seed=21)
    path = write(tmp_path / "i.txt", ev)
    with TextReader(path, block_bytes=4096) as r:
        seen = []
        for b in r.blocks():
            seen.append(b.events)
            tail = np.concatenate([x.events for x in r.blocks(b.start)])
            assert np.array_equal(tail, ev[b.start.events_before :])
    assert np.array_equal(np.concatenate(seen), ev)
