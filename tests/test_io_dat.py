"""DAT reader/writer against expelliarmus and faery, event for event."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from evtui.events.errors import RecordingError
from evtui.events.io.dat import DatReader, DatWriter
from evtui.events.types import EVENT_DTYPE
from tests import helpers
from tests.helpers import read_faery, same


def random_events(n: int, seed: int = 0, t0: int = 1000, step: int = 5):
    return helpers.random_events(n, seed, t0, step, W, H)


W, H = 640, 480


def expelliarmus_array(ev: np.ndarray) -> np.ndarray:
    dt = np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")], align=True)
    out = np.zeros(len(ev), dt)
    for k in "txyp":
        out[k] = ev[k]
    return out


def write_dat(path: Path, ev: np.ndarray, **options) -> Path:
    with DatWriter(path, W, H, **options) as w:
        w.write(ev)
    return path


# --- cross-decoding ---------------------------------------------------------------------


def test_faery_dat2_decodes_identically(tmp_path: Path) -> None:
    faery = pytest.importorskip("faery")
    ev = random_events(20_000, seed=1)
    arr = np.zeros(len(ev), faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"] == 1
    path = tmp_path / "faery.dat"
    faery.events_stream_from_array(arr, (W, H)).to_file(path, version="dat2", zero_t0=False)
    r = DatReader(path)
    assert r.event_type == 0x0C
    assert r.info.size == (W, H)
    assert same(r.read_all(), ev["t"], ev["x"], ev["y"], ev["p"])


def test_expelliarmus_dat_decodes_identically(tmp_path: Path) -> None:
    expelliarmus = pytest.importorskip("expelliarmus")
    ev = random_events(20_000, seed=2)
    path = tmp_path / "exp.dat"
    expelliarmus.Wizard(encoding="dat").save(path, expelliarmus_array(ev))
    r = DatReader(path)
    assert r.event_type == 0x00
    assert r.info.size is None  # expelliarmus writes no geometry
    assert same(r.read_all(), ev["t"], ev["x"], ev["y"], ev["p"])


@pytest.mark.parametrize("event_type", [0x0C, 0x00])
def test_evtui_dat_decodes_identically_in_expelliarmus(tmp_path: Path, event_type: int) -> None:
    expelliarmus = pytest.importorskip("expelliarmus")
    ev = random_events(20_000, seed=3)
    path = write_dat(tmp_path / "ours.dat", ev, event_type=event_type)
    assert path.read_bytes()[DatReader(path)._data_start - 2] == event_type
    ref = expelliarmus.Wizard(encoding="dat").read(path)
    assert same(ev, ref["t"], ref["x"], ref["y"], ref["p"])


def test_evtui_cd_dat_decodes_identically_in_faery(tmp_path: Path) -> None:
    ev = random_events(20_000, seed=4)
    path = write_dat(tmp_path / "ours.dat", ev)
    ref = read_faery(path)
    assert same(ev, ref["t"], ref["x"], ref["y"], ref["on"])


def test_real_ncars_matches_expelliarmus(real_file) -> None:
    expelliarmus = pytest.importorskip("expelliarmus")
    path = real_file("sample_ncars.dat")
    r = DatReader(path)
    ev = r.read_all()
    ref = expelliarmus.Wizard(encoding="dat").read(path)
    assert r.event_type == 0x00
    assert len(ev) == len(ref) > 0
    assert same(ev, ref["t"], ref["x"], ref["y"], ref["p"])
    assert not r.diagnostics
    assert DatReader.sniff(path.read_bytes()[:65536])


# --- header, sniffing, geometry --------------------------------------------------------


def test_sniff_accepts_dat_headers_and_rejects_raw(tmp_path: Path, real_file) -> None:
    ours = write_dat(tmp_path / "a.dat", random_events(10)).read_bytes()
    assert DatReader.sniff(ours)
    assert DatReader.sniff(b"% Data file containing Event2D events.\n% Version 2\n\x00\x08")
    assert DatReader.sniff(b"% Version 2\n% Width 304\n% Height 240\n\x0c\x08")
    assert not DatReader.sniff(b"% evt 2.0\n% Version 2\n\x00\x00\x00\x80")
    assert not DatReader.sniff(b"% format EVT3;width=1280;height=720\n% Width 1280\n\x00\x80")
    assert not DatReader.sniff(b"% date 2020-09-14\n% plugin_name gen3\n\x00\x00")
    assert not DatReader.sniff(b"#!AER-DAT4.0\r\n")
    for raw in ("evt2_sample.raw", "evt3_sample.raw"):
        head = real_file(raw).read_bytes()[:65536]
        assert not DatReader.sniff(head)


@pytest.mark.parametrize(
    ("header", "size"),
    [
        (b"% Width 304\n% Height 240\n", (304, 240)),
        (b"% geometry 1280x720\n", (1280, 720)),
        (b"% Data file containing CD events\n", None),
        (b"% Width abc\n% Height 240\n", None),
    ],
)
def test_geometry_from_header(tmp_path: Path, header: bytes, size) -> None:
    path = tmp_path / "g.dat"
    path.write_bytes(b"% Version 2\n" + header + b"\x0c\x08")
    r = DatReader(path)
    assert r.info.size == size
    assert len(r.read_all()) == 0


def test_writer_header_is_cd_v2_with_geometry(tmp_path: Path) -> None:
    path = write_dat(tmp_path / "h.dat", random_events(5))
    r = DatReader(path)
    assert r.info.header["version"] == "2"
    assert (r.info.width, r.info.height) == (W, H)
    assert r.event_type == 0x0C


# --- time wrap and restart --------------------------------------------------------------


def test_timestamp_wrap_is_unwrapped_and_carried_in_checkpoints(tmp_path: Path) -> None:
    # ~2.5 wraps of the 32-bit clock, in big steps so the file stays small.
    n = 6000
    t = np.arange(n, dtype=np.int64) * 1_800_000 + (1 << 32) - 5_000_000
    ev = random_events(n, seed=5)
    ev["t"] = t
    path = write_dat(tmp_path / "wrap.dat", ev)
    r = DatReader(path, block_bytes=4096)
    blocks = list(r.blocks())
    got = np.concatenate([b.events for b in blocks], dtype=EVENT_DTYPE)
    assert np.array_equal(got["t"], t)
    wraps = [b.start.state[0] for b in blocks]
    assert wraps[0] == 0 and wraps[-1] == 3
    assert wraps == sorted(wraps)
    for b in blocks:
        again = next(r.blocks(b.start))
        assert np.array_equal(again.events, b.events)


def _raw_dat(path: Path, t32: np.ndarray) -> Path:
    rec = np.zeros((len(t32), 2), "<u4")
    rec[:, 0] = t32
    rec[:, 1] = 1 << 28
    path.write_bytes(b"% Version 2\n\x0c\x08" + rec.tobytes())
    return path


@pytest.mark.parametrize("lead", [505, 508, 510, 511, 512])
def test_late_event_across_a_wrap_keeps_its_epoch(tmp_path: Path, lead: int) -> None:
    # An event stamped just before the wrap arriving after a wrapped one must not count as
    # a second wrap; `lead` moves the jitter across the 512-record block boundary.
    top = 1 << 32
    before = top - 2000 + np.arange(lead, dtype=np.int64)
    jitter = np.array([top + 2, top - 3, top + 5, top + 8], np.int64)
    after = top + 10 + np.arange(600, dtype=np.int64)
    t = np.concatenate([before, jitter, after])
    path = _raw_dat(tmp_path / "j.dat", t % top)
    r = DatReader(path, block_bytes=4096)
    blocks = list(r.blocks())
    assert len(blocks) > 1
    got = np.concatenate([b.events["t"] for b in blocks])
    assert np.array_equal(got, t)
    for b in blocks:
        assert np.array_equal(
            next(DatReader(path, block_bytes=4096).blocks(b.start)).events, b.events
        )


def test_late_start_is_not_a_wrap(tmp_path: Path) -> None:
    t = np.array([3_000_000_000, 3_000_000_001, 4_000_000_000], np.int64)
    got = DatReader(_raw_dat(tmp_path / "s.dat", t)).read_all()
    assert np.array_equal(got["t"], t)


def test_resume_from_every_checkpoint(tmp_path: Path) -> None:
    ev = random_events(30_000, seed=6)
    path = write_dat(tmp_path / "r.dat", ev)
    r = DatReader(path, block_bytes=4096)
    blocks = list(r.blocks())
    assert len(blocks) > 10
    for b in blocks:
        rest = np.concatenate(
            [x.events for x in DatReader(path, block_bytes=4096).blocks(b.start)], dtype=EVENT_DTYPE
        )
        assert b.start.events_before + len(rest) == len(ev)
        assert same(rest, *(ev[k][b.start.events_before :] for k in "txyp"))


def test_checkpoint_off_record_boundary_is_refused(tmp_path: Path) -> None:
    path = write_dat(tmp_path / "c.dat", random_events(100))
    r = DatReader(path)
    first = next(r.blocks())
    bad = type(first.start)(first.start.position + 3, first.start.state, 0)
    with pytest.raises(RecordingError, match="record boundary"):
        next(r.blocks(bad))


# --- bad input ---------------------------------------------------------------------------


def test_unsupported_type_byte_names_byte_and_offset(tmp_path: Path) -> None:
    head = b"% Data file containing trigger events\n% Version 2\n"
    path = tmp_path / "trig.dat"
    path.write_bytes(head + b"\x0e\x08" + b"\0" * 16)
    with pytest.raises(RecordingError) as e:
        DatReader(path)
    assert e.value.offset == len(head)
    assert "0x0E" in str(e.value)
    assert "\n" not in str(e.value)


def test_wrong_event_size_byte(tmp_path: Path) -> None:
    path = tmp_path / "size.dat"
    path.write_bytes(b"% Version 2\n\x0c\x10" + b"\0" * 32)
    with pytest.raises(RecordingError, match="size byte is 16") as e:
        DatReader(path)
    assert e.value.offset == len(b"% Version 2\n") + 1


def test_truncated_last_record_is_counted(tmp_path: Path) -> None:
    ev = random_events(1000, seed=7)
    path = write_dat(tmp_path / "t.dat", ev)
    path.write_bytes(path.read_bytes()[:-3])
    r = DatReader(path)
    got = r.read_all()
    assert same(got, *(ev[k][:-1] for k in "txyp"))
    assert r.diagnostics.counts["truncated trailing bytes"] == 5


def test_header_without_type_bytes_is_empty(tmp_path: Path) -> None:
    path = tmp_path / "e.dat"
    path.write_bytes(b"% Version 2\n% Width 10\n% Height 10\n")
    r = DatReader(path)
    assert len(r.read_all()) == 0
    assert not r.diagnostics


def test_header_without_end_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "n.dat"
    path.write_bytes(b"% Version 2\n% Width 10")
    with pytest.raises(RecordingError):
        DatReader(path)


def test_polarity_nibble_other_than_0_1_is_on_and_counted(tmp_path: Path) -> None:
    rec = np.zeros((4, 2), "<u4")
    rec[:, 0] = [1, 2, 3, 4]
    rec[:, 1] = np.array([0, 1, 3, 15], "<u4") << 28 | 5 | (7 << 14)
    path = tmp_path / "p.dat"
    path.write_bytes(b"% Version 2\n\x0c\x08" + rec.tobytes())
    r = DatReader(path)
    ev = r.read_all()
    assert ev["p"].tolist() == [0, 1, 1, 1]
    assert ev["x"].tolist() == [5] * 4 and ev["y"].tolist() == [7] * 4
    assert r.diagnostics.counts["polarity values other than 0/1 (read as ON)"] == 2


def test_writer_refuses_what_dat_cannot_hold(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="event_type"):
        DatWriter(tmp_path / "a.dat", W, H, event_type=0x0E)
    with pytest.raises(RecordingError, match="no option"):
        DatWriter(tmp_path / "b.dat", W, H, compression="lz4")
    with pytest.raises(RecordingError, match="14-bit"):
        DatWriter(tmp_path / "c.dat", 20000, H)
    ev = random_events(3)
    ev["t"][0] = -1
    with DatWriter(tmp_path / "d.dat", W, H) as w, pytest.raises(RecordingError, match="negative"):
        w.write(ev)


def test_writer_output_is_deterministic(tmp_path: Path) -> None:
    ev = random_events(5000, seed=8)
    a = write_dat(tmp_path / "a.dat", ev)
    with DatWriter(tmp_path / "b.dat", W, H) as w:
        w.write(ev[:1234])
        w.write(ev[1234:])
    assert a.read_bytes() == (tmp_path / "b.dat").read_bytes()
