"""npy/npz readers and writers: the interchange layout, producer conventions, checkpoints."""

from __future__ import annotations

import hashlib
import itertools
import zipfile
from functools import partial

import numpy as np
import pytest

from evtui.events.errors import RecordingError
from evtui.events.io import detect_format, open_recording, open_writer
from evtui.events.io.numpy_files import NpyReader, NpyWriter, NpzReader, NpzWriter
from evtui.events.types import EVENT_DTYPE
from tests import helpers

random_events = partial(helpers.random_events, step=7)


def write_in_parts(cls, path, ev, parts=(0.1, 0.5, 0.55), **options):
    with cls(path, 640, 480, **options) as w:
        cuts = [0, *(int(f * len(ev)) for f in parts), len(ev)]
        for a, b in itertools.pairwise(cuts):
            w.write(ev[a:b])
    return path


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- writers: the interchange layout ------------------------------------------------------


def test_npz_writer_produces_exactly_the_interchange_arrays(tmp_path):
    ev = random_events(5000)
    path = write_in_parts(NpzWriter, tmp_path / "a.npz", ev)
    with np.load(path) as z:  # numpy itself, not our reader
        assert sorted(z.files) == ["height", "p", "t", "width", "x", "y"]
        assert z["t"].dtype == np.dtype("<i8") and np.array_equal(z["t"], ev["t"])
        assert z["x"].dtype == np.dtype("<u2") and np.array_equal(z["x"], ev["x"])
        assert z["y"].dtype == np.dtype("<u2") and np.array_equal(z["y"], ev["y"])
        assert z["p"].dtype == np.dtype("u1") and np.array_equal(z["p"], ev["p"])
        assert int(z["width"]) == 640 and int(z["height"]) == 480
    with zipfile.ZipFile(path) as zf:
        assert all(i.compress_type == zipfile.ZIP_DEFLATED for i in zf.infolist())
        assert [i.filename for i in zf.infolist()][:4] == ["t.npy", "x.npy", "y.npy", "p.npy"]


def test_open_writer_picks_npz_and_npy_from_the_extension(tmp_path):
    ev = random_events(100)
    for name, cls in (("o.npz", NpzWriter), ("o.npy", NpyWriter)):
        with open_writer(tmp_path / name, 640, 480) as w:
            assert isinstance(w, cls)
            w.write(ev)
        assert detect_format(tmp_path / name) == name[-3:]
        with open_recording(tmp_path / name) as r:
            assert np.array_equal(r.read_all(), ev)


@pytest.mark.parametrize("compress", [True, False])
def test_npz_round_trip_is_bit_exact(tmp_path, compress):
    ev = random_events(20_000, seed=3)
    path = write_in_parts(NpzWriter, tmp_path / "a.npz", ev, compress=compress)
    with NpzReader(path, block_bytes=4096) as r:
        assert r.info.size == (640, 480)
        out = r.read_all()
    assert out.dtype == EVENT_DTYPE
    assert np.array_equal(out, ev)


def test_npz_bytes_are_deterministic_whatever_the_write_sizes(tmp_path):
    ev = random_events(30_000, seed=4)
    a = write_in_parts(NpzWriter, tmp_path / "a.npz", ev)
    b = write_in_parts(NpzWriter, tmp_path / "b.npz", ev, parts=(0.3,))
    assert md5(a) == md5(b)
    with zipfile.ZipFile(a) as zf:
        assert {i.date_time for i in zf.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_npz_writer_leaves_no_spool_files(tmp_path):
    write_in_parts(NpzWriter, tmp_path / "a.npz", random_events(1000))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]


def test_empty_npz_and_npy_round_trip(tmp_path):
    for cls, rcls, name in ((NpzWriter, NpzReader, "e.npz"), (NpyWriter, NpyReader, "e.npy")):
        with cls(tmp_path / name, 10, 10):
            pass
        with rcls(tmp_path / name) as r:
            assert len(r.read_all()) == 0
        assert (
            len(np.load(tmp_path / name, allow_pickle=False)["t"]) == 0
            if name.endswith("npz")
            else len(np.load(tmp_path / name)) == 0
        )


def test_npy_writer_packed_layout_and_round_trip(tmp_path):
    ev = random_events(12_345, seed=5)
    path = write_in_parts(NpyWriter, tmp_path / "a.npy", ev)
    arr = np.load(path)
    assert arr.dtype.names == ("t", "x", "y", "p") and arr.dtype.itemsize == 13
    for f in "txyp":
        assert np.array_equal(arr[f], ev[f])
    with NpyReader(path, block_bytes=4096) as r:
        assert np.array_equal(r.read_all(), ev)
    b = write_in_parts(NpyWriter, tmp_path / "b.npy", ev, parts=(0.9,))
    assert md5(path) == md5(b)


# --- producer conventions (events.md §1.8) ------------------------------------------------


def _structured(dtype, ev, names=("t", "x", "y", "p"), p=None):
    arr = np.zeros(len(ev), dtype)
    for field, src in zip(names, ("t", "x", "y", "p"), strict=True):
        arr[field] = ev[src] if src != "p" or p is None else p(ev["p"])
    return arr


CONVENTIONS = {
    "metavision_eventcd": (
        np.dtype(
            {
                "names": ["x", "y", "p", "t"],
                "formats": ["<u2", "<u2", "<i2", "<i8"],
                "offsets": [0, 2, 4, 8],
                "itemsize": 16,
            }
        ),
        ("t", "x", "y", "p"),
        None,
    ),
    "expelliarmus": (
        np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "u1")], align=True),
        ("t", "x", "y", "p"),
        None,
    ),
    "faery": (
        np.dtype([("t", "<u8"), ("x", "<u2"), ("y", "<u2"), (("p", "on"), "?")]),
        ("t", "x", "y", "on"),
        lambda p: p.astype(bool),
    ),
    "dv_processing": (
        np.dtype([("timestamp", "<i8"), ("x", "<i2"), ("y", "<i2"), ("polarity", "i1")]),
        ("timestamp", "x", "y", "polarity"),
        None,
    ),
    "signed_polarity": (
        np.dtype([("x", "<i2"), ("y", "<i2"), ("t", "<i8"), ("p", "i1")]),
        ("t", "x", "y", "p"),
        lambda p: p.astype(np.int8) * 2 - 1,
    ),
    "evtui": (EVENT_DTYPE, ("t", "x", "y", "p"), None),
}


@pytest.mark.parametrize("name", sorted(CONVENTIONS))
def test_npy_reads_each_producer_convention(tmp_path, name):
    dtype, names, p = CONVENTIONS[name]
    ev = random_events(7000, seed=6)
    np.save(tmp_path / "c.npy", _structured(dtype, ev, names, p))
    with NpyReader(tmp_path / "c.npy", block_bytes=4096) as r:
        assert np.array_equal(r.read_all(), ev)
    assert not r.diagnostics


def test_npy_from_expelliarmus_and_faery_on_a_real_recording(tmp_path, real_file):
    expelliarmus = pytest.importorskip("expelliarmus")
    faery = pytest.importorskip("faery")
    raw = real_file("evt2_sample.raw")
    arr = expelliarmus.Wizard(encoding="evt2").read(raw)
    fa = faery.events_stream_from_file(raw).to_array()
    np.save(tmp_path / "e.npy", arr)
    np.save(tmp_path / "f.npy", fa)
    with NpyReader(tmp_path / "e.npy") as r:
        ev = r.read_all()
    with NpyReader(tmp_path / "f.npy") as r:
        ev_f = r.read_all()
    assert len(ev) == len(arr) > 100_000
    assert np.array_equal(ev["t"], arr["t"]) and np.array_equal(ev["x"], arr["x"])
    assert np.array_equal(ev["y"], arr["y"]) and np.array_equal(ev["p"], arr["p"])
    assert np.array_equal(ev_f["t"], fa["t"].astype(np.int64))
    assert np.array_equal(ev_f["p"], fa["on"].astype(np.int8))


def test_npy_reads_tonic_structured_arrays(tmp_path):
    tonic_io = pytest.importorskip("tonic.io")
    ev = random_events(3000, seed=7)
    arr = tonic_io.make_structured_array(ev["x"], ev["y"], ev["t"], ev["p"].astype(bool))
    np.save(tmp_path / "t.npy", arr)
    with NpyReader(tmp_path / "t.npy") as r:
        assert np.array_equal(r.read_all(), ev)


@pytest.mark.parametrize("fortran", [False, True])
def test_npy_plain_n_by_4_integer_array(tmp_path, fortran):
    ev = random_events(5000, seed=8)
    arr = np.stack([ev["t"], ev["x"], ev["y"], ev["p"]], axis=1).astype(np.int64)
    np.save(tmp_path / "n4.npy", np.asfortranarray(arr) if fortran else arr)
    with NpyReader(tmp_path / "n4.npy", block_bytes=4096) as r:
        assert np.array_equal(r.read_all(), ev)


def test_npy_n_by_4_float_seconds_are_rounded_not_truncated(tmp_path):
    t_s = np.array([0.1234565, 0.000001, 1.9999999, 2.5e-7, 12.3456789])
    arr = np.stack([t_s, [1, 2, 3, 4, 5], [5, 4, 3, 2, 1], [-1, 1, -1, 1, 1]], axis=1)
    np.save(tmp_path / "f.npy", arr)
    with NpyReader(tmp_path / "f.npy") as r:
        ev = r.read_all()
        assert r.info.header["time_unit"] == "s"
    expected = [round(float(v) * 1e6) for v in t_s]  # Python's own rounding
    assert ev["t"].tolist() == expected
    assert ev["p"].tolist() == [0, 1, 0, 1, 1]


@pytest.mark.parametrize(
    ("names", "p_of"),
    [
        (("t", "x", "y", "p"), lambda p: p.astype(np.uint8)),
        (("timestamp", "x", "y", "polarity"), lambda p: p.astype(np.int8) * 2 - 1),
        (("ts", "x", "y", "on"), lambda p: p.astype(bool)),
    ],
)
def test_npz_separate_arrays_under_each_naming(tmp_path, names, p_of):
    ev = random_events(9000, seed=9)
    cols = dict(
        zip(names, (ev["t"], ev["x"].astype(np.int32), ev["y"], p_of(ev["p"])), strict=True)
    )
    np.savez_compressed(tmp_path / "s.npz", **cols)
    with NpzReader(tmp_path / "s.npz", block_bytes=4096) as r:
        assert np.array_equal(r.read_all(), ev)
        assert r.info.size is None


def test_npz_with_one_structured_or_n_by_4_member(tmp_path):
    ev = random_events(4000, seed=10)
    n4 = np.stack([ev["t"], ev["x"], ev["y"], ev["p"]], axis=1)
    dtype, names, _ = CONVENTIONS["dv_processing"]
    np.savez(tmp_path / "a.npz", events=_structured(dtype, ev, names))
    np.savez_compressed(tmp_path / "b.npz", n4)
    np.savez(tmp_path / "c.npz", arr=np.asfortranarray(n4))
    for name in ("a.npz", "b.npz", "c.npz"):
        with NpzReader(tmp_path / name, block_bytes=4096) as r:
            assert np.array_equal(r.read_all(), ev), name


# --- checkpoints ---------------------------------------------------------------------------


def _check_resume(reader_cls, path, ev, block_bytes=4096):
    with reader_cls(path, block_bytes=block_bytes) as r:
        blocks = list(r.blocks())
        assert len(blocks) > 3
        for b in blocks:
            assert b.start.position == b.start.events_before
            again = np.concatenate([x.events for x in r.blocks(b.start)])
            assert np.array_equal(again, ev[b.start.position :])


@pytest.mark.parametrize("compress", [True, False])
def test_npz_resumes_from_every_checkpoint(tmp_path, compress):
    ev = random_events(6000, seed=11)
    path = write_in_parts(NpzWriter, tmp_path / "a.npz", ev, compress=compress)
    _check_resume(NpzReader, path, ev)


@pytest.mark.parametrize("compress", [True, False])
def test_npz_iterations_do_not_share_streams(tmp_path, compress):
    """A resume that runs to the end must not close the zip streams of an outer loop."""
    ev = random_events(6000, seed=15)
    path = write_in_parts(NpzWriter, tmp_path / "a.npz", ev, compress=compress)
    with NpzReader(path, block_bytes=4096) as r:
        seen = []
        for b in r.blocks():
            seen.append(b.events)
            tail = np.concatenate([x.events for x in r.blocks(b.start)])
            assert np.array_equal(tail, ev[b.start.position :])
    assert np.array_equal(np.concatenate(seen), ev)


def test_npz_stored_members_are_memory_mapped(tmp_path):
    ev = random_events(3000, seed=12)
    path = write_in_parts(NpzWriter, tmp_path / "a.npz", ev, compress=False)
    with NpzReader(path) as r:
        assert all(s.member.data_offset is not None for s in r._sources)


def test_npy_resumes_from_every_checkpoint(tmp_path):
    ev = random_events(6000, seed=13)
    path = write_in_parts(NpyWriter, tmp_path / "a.npy", ev)
    _check_resume(NpyReader, path, ev)


# --- bad input -------------------------------------------------------------------------------


def test_truncated_npy_keeps_whole_records_and_reports(tmp_path):
    ev = random_events(1000, seed=14)
    path = write_in_parts(NpyWriter, tmp_path / "a.npy", ev)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 13 * 10 - 5])
    with NpyReader(path) as r:
        out = r.read_all()
        assert np.array_equal(out, ev[: 1000 - 11])
        assert r.diagnostics.counts["truncated trailing bytes"] == 1


def test_truncated_npz_is_a_recording_error(tmp_path):
    path = write_in_parts(NpzWriter, tmp_path / "a.npz", random_events(5000))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match=r"not a readable \.npz"):
        NpzReader(path)


def test_corrupt_deflate_stream_is_a_recording_error(tmp_path):
    path = write_in_parts(NpzWriter, tmp_path / "a.npz", random_events(50_000))
    data = bytearray(path.read_bytes())
    for i in range(2000, 2400):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(RecordingError) as e:
        NpzReader(path).read_all()
    assert "\n" not in str(e.value) and str(path) in str(e.value)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: np.zeros(10, [("a", "i8"), ("b", "u2")]), r"fields a, b.*expected"),
        (lambda: np.zeros((10, 3)), r"shape \(10, 3\).*\(N, 4\)"),
        (lambda: np.array([1, "a"], dtype=object), r"Python objects"),
        (lambda: np.zeros(10, [("t", "i8"), ("x", "S2"), ("y", "u2"), ("p", "u1")]), "'x'"),
    ],
)
def test_npy_unknown_layouts_are_one_line_errors(tmp_path, make, match):
    np.save(tmp_path / "bad.npy", make(), allow_pickle=True)
    with pytest.raises(RecordingError, match=match) as e:
        NpyReader(tmp_path / "bad.npy")
    assert "\n" not in str(e.value)


def test_npz_without_event_arrays_names_what_it_found(tmp_path):
    np.savez(tmp_path / "bad.npz", a=np.zeros(3), b=np.zeros(3))
    with pytest.raises(RecordingError, match=r"arrays a, b.*expected"):
        NpzReader(tmp_path / "bad.npz")


def test_garbage_npy_header(tmp_path):
    (tmp_path / "g.npy").write_bytes(b"\x93NUMPY\x01\x00\x10\x00{'descr': nope}\n" + b"\0" * 64)
    with pytest.raises(RecordingError, match=r"byte 0: not a valid \.npy header"):
        NpyReader(tmp_path / "g.npy")


def test_out_of_range_coordinates_are_dropped_and_counted(tmp_path):
    arr = np.zeros(4, [("t", "<i8"), ("x", "<i4"), ("y", "<i2"), ("p", "i1")])
    arr["t"] = [1, 2, 3, 4]
    arr["x"] = [5, -1, 70000, 6]
    arr["y"] = [1, 1, 1, -3]
    np.save(tmp_path / "r.npy", arr)
    with NpyReader(tmp_path / "r.npy") as r:
        ev = r.read_all()
        assert ev["t"].tolist() == [1]
        assert sum(r.diagnostics.counts.values()) == 3


def test_npz_with_unequal_arrays_uses_the_common_length(tmp_path):
    ev = random_events(100)
    np.savez(tmp_path / "u.npz", t=ev["t"], x=ev["x"], y=ev["y"][:90], p=ev["p"])
    with NpzReader(tmp_path / "u.npz") as r:
        assert np.array_equal(r.read_all(), ev[:90])
        assert r.diagnostics.counts["events missing a field dropped"] == 10


def test_sniffing(tmp_path):
    assert NpyReader.sniff(b"\x93NUMPY\x01\x00")
    assert not NpyReader.sniff(b"PK\x03\x04")
    ev = random_events(10)
    write_in_parts(NpzWriter, tmp_path / "a.npz", ev)
    head = (tmp_path / "a.npz").read_bytes()[:65536]
    assert NpzReader.sniff(head) and not NpyReader.sniff(head)
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert not NpzReader.sniff((tmp_path / "other.zip").read_bytes())
