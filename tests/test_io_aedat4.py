"""AEDAT 4.0 reader/writer against aedat and faery, event for event."""

from __future__ import annotations

import struct
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from evtui.events.errors import MissingDependency, RecordingError
from evtui.events.io import aedat4
from evtui.events.io.aedat4 import MAGIC, Aedat4Reader, Aedat4Writer
from evtui.events.types import EVENT_DTYPE, Checkpoint
from tests import helpers
from tests.helpers import read_faery, same

W, H = 346, 260
random_events = partial(helpers.random_events, t0=1_600_000_000_000_000, step=4, width=W, height=H)


def aedat_read(path: Path) -> np.ndarray:
    aedat = pytest.importorskip("aedat")
    parts = [pk["events"] for pk in aedat.Decoder(str(path)) if "events" in pk]
    return np.concatenate(parts) if parts else np.zeros(0, [("t", "<u8"), ("on", "?")])


def write(path: Path, ev: np.ndarray, compression: str = "lz4", **options) -> Path:
    with Aedat4Writer(path, W, H, compression=compression, **options) as w:
        w.write(ev)
    return path


def read_all(path: Path, **kw) -> tuple[Aedat4Reader, np.ndarray]:
    r = Aedat4Reader(path, **kw)
    parts = [b.events for b in r.blocks()]
    return r, np.concatenate(parts, dtype=EVENT_DTYPE) if parts else np.zeros(0, EVENT_DTYPE)


# --- cross-decoding ---------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_faery_written_decodes_identically(tmp_path: Path, compression: str) -> None:
    faery = pytest.importorskip("faery")
    ev = random_events(30_000, seed=1)
    arr = np.zeros(len(ev), faery.EVENTS_DTYPE)
    arr["t"], arr["x"], arr["y"], arr["on"] = ev["t"], ev["x"], ev["y"], ev["p"] == 1
    path = tmp_path / f"faery_{compression}.aedat4"
    faery.events_stream_from_array(arr, (W, H)).to_file(
        path, zero_t0=False, compression=(compression, 3 if compression == "zstd" else 1)
    )
    r, got = read_all(path)
    assert r.info.size == (W, H)
    assert same(got, ev["t"], ev["x"], ev["y"], ev["p"])
    assert not r.diagnostics


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
def test_evtui_written_decodes_identically_in_aedat_and_faery(
    tmp_path: Path, compression: str
) -> None:
    ev = random_events(50_000, seed=2)
    path = write(tmp_path / f"ours_{compression}.aedat4", ev, compression)
    ref = aedat_read(path)
    assert same(ev, ref["t"], ref["x"], ref["y"], ref["on"])
    ref = read_faery(path)
    assert same(ev, ref["t"], ref["x"], ref["y"], ref["on"])
    _, got = read_all(path)
    assert same(got, ev["t"], ev["x"], ev["y"], ev["p"])


def test_real_dvxplorer_sample_matches_aedat(real_file) -> None:
    path = real_file("tonic_sample.aedat4")
    r, got = read_all(path)
    ref = aedat_read(path)
    assert len(got) == len(ref) == 111_954
    assert same(got, ref["t"], ref["x"], ref["y"], ref["on"])
    assert r.info.size == (320, 240)
    assert "TRIG" in r.info.header["streams"] and "IMUS" in r.info.header["streams"]
    assert not r.diagnostics


def test_written_ioheader_stream_list_as_aedat_sees_it(tmp_path: Path) -> None:
    aedat = pytest.importorskip("aedat")
    path = write(tmp_path / "s.aedat4", random_events(10))
    streams = aedat.Decoder(str(path)).id_to_stream()
    assert streams == {0: {"type": "events", "width": W, "height": H}}


# --- writer properties ------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["lz4", "zstd", "none"])
def test_writer_is_deterministic_whatever_the_write_sizes(tmp_path: Path, compression) -> None:
    ev = random_events(40_000, seed=3)
    a = write(tmp_path / "a.aedat4", ev, compression)
    with Aedat4Writer(tmp_path / "b.aedat4", W, H, compression=compression) as w:
        for i in range(0, len(ev), 7_777):
            w.write(ev[i : i + 7_777])
    assert a.read_bytes() == (tmp_path / "b.aedat4").read_bytes()


def _ftab(path: Path) -> tuple[int, list[tuple[int, int, int, int, int, int]]]:
    """(table position, [(byte offset, stream, size, count, t first, t last)]) of a file."""
    r = Aedat4Reader(path)
    data = path.read_bytes()
    pos = r._end
    buf = r._decompress(data[pos:])
    assert buf[8:12] == b"FTAB"
    root = aedat4._root(buf, size_prefixed=True)
    first, count = aedat4._vector(buf, aedat4._field(buf, root, 0), 4)
    rows = []
    for i in range(count):
        slot = first + 4 * i
        table = slot + aedat4._u32(buf, slot)
        f = [aedat4._field(buf, table, k) for k in range(5)]
        off, cnt, t0, t1 = (struct.unpack_from("<q", buf, f[k])[0] for k in (0, 2, 3, 4))
        sid, size = struct.unpack_from("<ii", buf, f[1])
        rows.append((off, sid, size, cnt, t0, t1))
    return pos, rows


def test_file_data_table_indexes_every_packet(tmp_path: Path) -> None:
    ev = random_events(40_000, seed=4)
    path = write(tmp_path / "t.aedat4", ev, packet_events=10_000)
    data = path.read_bytes()
    table_pos, rows = _ftab(path)
    assert struct.unpack_from("<q", data, len(MAGIC) + 32)[0] == table_pos
    assert [r[3] for r in rows] == [10_000] * 4
    for i, (off, sid, size, _cnt, t0, t1) in enumerate(rows):
        assert sid == 0
        assert struct.unpack_from("<ii", data, off - 8) == (0, size)
        assert (t0, t1) == (ev["t"][i * 10_000], ev["t"][i * 10_000 + 9_999])
    assert rows[-1][0] + rows[-1][2] == table_pos


def test_empty_file_is_valid(tmp_path: Path) -> None:
    with Aedat4Writer(tmp_path / "e.aedat4", W, H):
        pass
    assert len(aedat_read(tmp_path / "e.aedat4")) == 0
    _, got = read_all(tmp_path / "e.aedat4")
    assert len(got) == 0


def test_writer_option_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordingError, match="lz4, zstd or none"):
        Aedat4Writer(tmp_path / "a.aedat4", W, H, compression="gzip")
    with pytest.raises(RecordingError, match="no option"):
        Aedat4Writer(tmp_path / "b.aedat4", W, H, event_type=12)
    with pytest.raises(RecordingError, match=r"1\.\.32767"):
        Aedat4Writer(tmp_path / "c.aedat4", 40000, H)
    ev = random_events(5)
    ev["x"][2] = W
    with Aedat4Writer(tmp_path / "d.aedat4", W, H) as w, pytest.raises(RecordingError):
        w.write(ev)


# --- restart ----------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["lz4", "none"])
def test_resume_from_every_checkpoint(tmp_path: Path, compression: str) -> None:
    ev = random_events(30_000, seed=5)
    path = write(tmp_path / "r.aedat4", ev, compression, packet_events=1000)
    blocks = list(Aedat4Reader(path, block_bytes=4096).blocks())
    assert len(blocks) >= 10
    for b in blocks:
        rest = [x.events for x in Aedat4Reader(path, block_bytes=4096).blocks(b.start)]
        got = np.concatenate(rest, dtype=EVENT_DTYPE)
        assert b.start.events_before + len(got) == len(ev)
        assert same(got, *(ev[k][b.start.events_before :] for k in "txyp"))


def test_checkpoint_outside_packets_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.aedat4", random_events(100))
    with pytest.raises(RecordingError, match="checkpoint"):
        next(Aedat4Reader(path).blocks(Checkpoint(3)))


# --- triggers ---------------------------------------------------------------------------


def _trigger_packet(t: np.ndarray, source: np.ndarray, short: np.ndarray) -> bytes:
    """A TRIG FlatBuffer as a builder lays it out: a vector of offsets to tables.

    Elements with `short` set have a vtable without the source slot (source = default 0).
    """
    n = len(t)
    vec = 28
    e0 = (vec + 4 + 4 * n + 7) // 8 * 8
    out = bytearray(e0 + 24 * n)
    struct.pack_into("<II4s2x3Hiii", out, 0, len(out) - 4, 16, b"TRIG", 6, 8, 4, 6, 4, n)
    for i in range(n):
        vt = e0 + 24 * i
        table = vt + 8
        struct.pack_into("<I", out, vec + 4 + 4 * i, table - (vec + 4 + 4 * i))
        if short[i]:
            struct.pack_into("<3H", out, vt, 6, 16, 8)
        else:
            struct.pack_into("<4H", out, vt, 8, 16, 8, 4)
        struct.pack_into("<ibxxxq", out, table, table - vt, int(source[i]), int(t[i]))
    return bytes(out)


def _file_with_triggers(path: Path, ev: np.ndarray, trig_t, source, short) -> Path:
    xml = (
        '<dv version="2.0">\n<node name="outInfo" path="/o/">\n'
        '<node name="0" path="/o/0/">\n'
        '<attr key="compression" type="string">LZ4</attr>\n'
        '<attr key="typeIdentifier" type="string">EVTS</attr>\n'
        '<node name="info" path="/o/0/info/">\n'
        f'<attr key="sizeX" type="int">{W}</attr>\n<attr key="sizeY" type="int">{H}</attr>\n'
        "</node>\n</node>\n"
        '<node name="1" path="/o/1/">\n'
        '<attr key="compression" type="string">LZ4</attr>\n'
        '<attr key="typeIdentifier" type="string">TRIG</attr>\n'
        "</node>\n</node>\n</dv>\n"
    ).encode()
    lz4_frame = pytest.importorskip("lz4.frame")
    out = MAGIC + aedat4._io_header(1, -1, xml)
    half = len(trig_t) // 2
    for sid, body in (
        (0, aedat4._events_flatbuffer(aedat4._event_words(ev[:100]))),
        (1, _trigger_packet(trig_t[:half], source[:half], short[:half])),
        (0, aedat4._events_flatbuffer(aedat4._event_words(ev[100:]))),
        (1, _trigger_packet(trig_t[half:], source[half:], short[half:])),
    ):
        c = lz4_frame.compress(body)
        out += struct.pack("<ii", sid, len(c)) + c
    path.write_bytes(out)
    return path


def test_trigger_packets_match_aedat(tmp_path: Path) -> None:
    aedat = pytest.importorskip("aedat")
    rng = np.random.default_rng(6)
    ev = random_events(300, seed=6)
    n = 40
    trig_t = ev["t"][0] + np.sort(rng.integers(0, 1000, n))
    source = rng.integers(0, 10, n)
    short = rng.random(n) < 0.2
    path = _file_with_triggers(tmp_path / "trig.aedat4", ev, trig_t, source, short)
    ref = [pk["triggers"] for pk in aedat.Decoder(str(path)) if "triggers" in pk]
    ref = np.concatenate(ref)
    assert len(ref) == n
    r = Aedat4Reader(path)
    got = r.read_triggers()
    edges = {1: (0, 1), 2: (0, 0), 3: (0, 1), 4: (1, 1), 5: (1, 0)}
    keep = np.array([int(s) in edges for s in ref["source"]])
    assert np.array_equal(got["t"], ref["t"][keep].astype(np.int64))
    assert got["channel"].tolist() == [edges[int(s)][0] for s in ref["source"][keep]]
    assert got["value"].tolist() == [edges[int(s)][1] for s in ref["source"][keep]]
    skipped = r.diagnostics.counts["trigger markers that are not signal edges skipped"]
    assert skipped == n - keep.sum() > 0
    _, events = read_all(path)
    assert same(events, *(ev[k] for k in "txyp"))


# --- optional extra ---------------------------------------------------------------------


@pytest.mark.parametrize(("compression", "module"), [("lz4", "lz4"), ("zstd", "zstandard")])
def test_missing_extra_is_named(tmp_path: Path, monkeypatch, compression, module) -> None:
    path = write(tmp_path / "m.aedat4", random_events(100), compression)
    for name in list(sys.modules):
        if name == module or name.startswith(module + "."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)
    if module == "lz4":
        monkeypatch.setitem(sys.modules, "lz4.frame", None)
    with pytest.raises(MissingDependency) as e:
        Aedat4Reader(path)
    assert e.value.extra == "aedat"
    assert "pip install 'evtui[aedat]'" in str(e.value)
    with pytest.raises(MissingDependency):
        Aedat4Writer(tmp_path / "w.aedat4", W, H, compression=compression)
    # Uncompressed files need neither.
    _, got = read_all(write(tmp_path / "n.aedat4", random_events(100), "none"))
    assert len(got) == 100


# --- bad input ---------------------------------------------------------------------------


def _packets(path: Path) -> list[tuple[int, int, int]]:
    """(offset, stream id, body size) of every packet, walked independently."""
    data = path.read_bytes()
    pos = len(MAGIC) + 4 + struct.unpack_from("<i", data, len(MAGIC))[0]
    end = struct.unpack_from("<q", data, len(MAGIC) + 32)[0]
    out = []
    while pos < end:
        sid, size = struct.unpack_from("<ii", data, pos)
        out.append((pos, sid, size))
        pos += 8 + size
    return out


def test_wrong_magic(tmp_path: Path) -> None:
    path = tmp_path / "x.aedat4"
    path.write_bytes(b"#!AER-DAT3.1\r\n" + b"\0" * 100)
    assert not Aedat4Reader.sniff(path.read_bytes())
    with pytest.raises(RecordingError, match=r"not AEDAT 4\.0") as e:
        Aedat4Reader(path)
    assert e.value.offset == 0


def test_ioheader_size_past_end(tmp_path: Path) -> None:
    path = tmp_path / "h.aedat4"
    path.write_bytes(MAGIC + struct.pack("<i", 1 << 20) + b"\0" * 64)
    with pytest.raises(RecordingError, match="IO header size") as e:
        Aedat4Reader(path)
    assert e.value.offset == len(MAGIC)


def test_truncated_file_stops_cleanly_with_diagnostics(tmp_path: Path) -> None:
    ev = random_events(20_000, seed=7)
    path = write(tmp_path / "t.aedat4", ev, "lz4", packet_events=2000)
    packets = _packets(path)
    cut = packets[5][0] + 8 + packets[5][2] // 2
    path.write_bytes(path.read_bytes()[:cut])
    r, got = read_all(path)
    assert same(got, *(ev[k][:10_000] for k in "txyp"))
    assert r.diagnostics.counts["truncated trailing bytes"] == cut - packets[5][0]
    assert r.diagnostics.counts["data table position outside the file (ignored)"] == 1


def test_negative_packet_size(tmp_path: Path) -> None:
    path = write(tmp_path / "n.aedat4", random_events(5000, seed=8), packet_events=1000)
    off = _packets(path)[2][0]
    data = bytearray(path.read_bytes())
    struct.pack_into("<i", data, off + 4, -5)
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="negative") as e:
        read_all(path)
    assert e.value.offset == off + 4


def test_packet_size_past_the_data_table(tmp_path: Path) -> None:
    path = write(tmp_path / "p.aedat4", random_events(5000, seed=9), packet_events=1000)
    off, _, size = _packets(path)[3]
    data = bytearray(path.read_bytes())
    struct.pack_into("<i", data, off + 4, size + 100_000)
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="runs past the data table") as e:
        read_all(path)
    assert e.value.offset == off


@pytest.mark.parametrize("compression", ["lz4", "zstd"])
def test_corrupt_compressed_body(tmp_path: Path, compression: str) -> None:
    path = write(
        tmp_path / "c.aedat4", random_events(5000, seed=10), compression, packet_events=1000
    )
    off, _, size = _packets(path)[2]
    data = bytearray(path.read_bytes())
    data[off + 8 : off + 8 + size] = bytes(size)  # magic and all: not a frame any more
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="does not decompress") as e:
        read_all(path)
    assert e.value.offset == off
    assert "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("where", "value", "match"),
    [
        (4, 1 << 30, "outside"),  # root offset
        (20, -(1 << 20), "outside"),  # table -> vtable
        (24, 1 << 30, "outside"),  # vector offset
        (28, 1 << 28, "runs past"),  # vector length
        (8, 0x53525453, "identifier"),  # "STRS"
    ],
)
def test_corrupt_flatbuffer_offsets(tmp_path: Path, where: int, value: int, match: str) -> None:
    path = write(tmp_path / "f.aedat4", random_events(3000, seed=11), "none", packet_events=1000)
    off, _, _ = _packets(path)[1]
    data = bytearray(path.read_bytes())
    struct.pack_into("<i" if value < 0 else "<I", data, off + 8 + where, value)
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=match) as e:
        read_all(path)
    assert e.value.offset == off


def test_unknown_stream_packets_are_skipped_and_counted(tmp_path: Path) -> None:
    ev = random_events(3000, seed=12)
    path = write(tmp_path / "u.aedat4", ev, "none", packet_events=1000)
    off, _, _ = _packets(path)[1]
    data = bytearray(path.read_bytes())
    struct.pack_into("<i", data, off, 7)
    path.write_bytes(bytes(data))
    r, got = read_all(path)
    assert same(got, *(np.concatenate([ev[k][:1000], ev[k][2000:]]) for k in "txyp"))
    assert r.diagnostics.counts["packets of an undeclared stream id skipped"] == 1


def test_polarity_bytes_other_than_0_1(tmp_path: Path) -> None:
    ev = random_events(10, seed=13)
    path = write(tmp_path / "p.aedat4", ev, "none")
    off, _, _ = _packets(path)[0]
    data = bytearray(path.read_bytes())
    data[off + 8 + 32 + 16 * 3 + 12] = 7
    data[off + 8 + 32 + 16 * 4 + 13] = 9  # padding byte: ignored, zeroed
    path.write_bytes(bytes(data))
    r, got = read_all(path)
    assert got["p"][3] == 1
    assert r.diagnostics.counts["polarity bytes other than 0/1 (read as ON)"] == 1
    assert got.view("<u8")[1::2].max() >> 40 == 0
