"""HDF5: DSEC layout written and read, cross-checked with raw h5py and evlib; ECF refusal."""

from __future__ import annotations

import hashlib
import itertools
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
hdf5plugin = pytest.importorskip("hdf5plugin")

# evlib re-registers hdf5plugin's filters when imported, which fails while any HDF5
# dataset is open: import it once, up front.
try:
    import evlib
except ImportError:  # pragma: no cover - evlib is a test dependency
    evlib = None

from evtui.events.errors import MissingDependency, RecordingError  # noqa: E402
from evtui.events.io import detect_format, open_recording  # noqa: E402
from evtui.events.io.hdf5 import ECF_FILTER_ID, Hdf5Reader, Hdf5Writer  # noqa: E402
from evtui.events.types import EVENT_DTYPE, make_events  # noqa: E402
from tests import helpers  # noqa: E402

random_events = partial(helpers.random_events, t0=1_600_000_123_456, step=40)


def write(path, ev, parts=(0.2, 0.21, 0.7), **options):
    with Hdf5Writer(path, 640, 480, **options) as w:
        cuts = [0, *(int(f * len(ev)) for f in parts), len(ev)]
        for a, b in itertools.pairwise(cuts):
            w.write(ev[a:b])
    return path


def write_dsec_with_h5py(path, ev, *, t_dtype="<u4", ms_index=True, compression=None):
    """A DSEC events.h5 the way DSEC's scripts lay it out, with hdf5plugin Zstd."""
    comp = compression if compression is not None else hdf5plugin.Zstd()
    t_offset = int(ev["t"][0]) - 777  # not ms-aligned, as in DSEC
    t_rel = ev["t"] - t_offset
    with h5py.File(path, "w") as f:
        g = f.create_group("events")
        g.create_dataset("x", data=ev["x"].astype("<u2"), chunks=True, **comp)
        g.create_dataset("y", data=ev["y"].astype("<u2"), chunks=True, **comp)
        g.create_dataset("p", data=ev["p"].astype("u1"), chunks=True, **comp)
        g.create_dataset("t", data=t_rel.astype(t_dtype), chunks=True, **comp)
        f.create_dataset("t_offset", data=np.int64(t_offset))
        if ms_index:
            ms = np.searchsorted(t_rel, np.arange(int(t_rel[-1]) // 1000 + 1) * 1000)
            f.create_dataset("ms_to_idx", data=ms.astype("<u8"), **comp)
    return path


# --- round trip, determinism, raw h5py -------------------------------------------------------


def test_round_trip_is_bit_exact_and_keeps_geometry(tmp_path):
    ev = random_events(50_000)
    path = write(tmp_path / "a.h5", ev)
    assert detect_format(path) == "hdf5"
    with open_recording(path, block_bytes=8192) as r:
        assert isinstance(r, Hdf5Reader)
        assert r.info.size == (640, 480)
        out = r.read_all()
    assert out.dtype == EVENT_DTYPE and np.array_equal(out, ev)


def test_plain_h5py_sees_the_dsec_layout(tmp_path):
    ev = random_events(30_000, seed=1)
    path = write(tmp_path / "a.h5", ev)
    with h5py.File(path, "r") as f:
        t_offset = int(f["t_offset"][()])
        assert t_offset == int(ev["t"][0]) // 1000 * 1000
        t = f["events/t"][:]
        assert f["events/x"].dtype == np.dtype("<u2") and f["events/p"].dtype == np.dtype("u1")
        assert np.array_equal(t + t_offset, ev["t"])
        assert np.array_equal(f["events/x"][:], ev["x"])
        assert np.array_equal(f["events/y"][:], ev["y"])
        assert np.array_equal(f["events/p"][:], ev["p"])
        ms = f["ms_to_idx"][:]
        assert np.array_equal(ms, np.searchsorted(t, np.arange(len(ms)) * 1000))
        assert len(ms) == int(t[-1]) // 1000 + 1
        assert int(f.attrs["width"]) == 640 and int(f.attrs["height"]) == 480
        codes = [f["events/t"].id.get_create_plist().get_filter(i)[0] for i in range(2)]
        assert codes == [h5py.h5z.FILTER_SHUFFLE, 32015]  # shuffle, then Zstd


def test_two_writes_give_identical_bytes(tmp_path):
    ev = random_events(40_000, seed=2)
    a = write(tmp_path / "a.h5", ev)
    b = write(tmp_path / "b.h5", ev, parts=(0.5,))
    assert hashlib.md5(a.read_bytes()).digest() == hashlib.md5(b.read_bytes()).digest()


def test_gzip_fallback_when_hdf5plugin_is_missing(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "hdf5plugin", None)
    ev = random_events(5000, seed=3)
    path = write(tmp_path / "g.h5", ev)
    with h5py.File(path, "r") as f:
        assert f["events/t"].compression == "gzip"
    with Hdf5Reader(path) as r:
        assert np.array_equal(r.read_all(), ev)


def test_small_backward_steps_keep_ms_to_idx_exact(tmp_path):
    t = np.array([5000, 5990, 5985, 6001, 6000, 9000, 8999, 12000])
    ev = make_events(t, np.arange(8), np.arange(8), np.ones(8))
    path = write(tmp_path / "b.h5", ev, parts=(0.4,))
    with h5py.File(path, "r") as f:
        ms = f["ms_to_idx"][:]
        rel = f["events/t"][:]
    expected = [int(np.argmax(rel >= k * 1000)) for k in range(len(ms))]  # first index >= k ms
    assert ms.tolist() == expected
    with Hdf5Reader(path) as r:
        assert np.array_equal(r.read_all(), ev)


def test_a_days_long_gap_drops_ms_to_idx_but_seeking_still_works(tmp_path):
    t = np.array([0, 10, 20, 40 * 3600 * 10**6, 40 * 3600 * 10**6 + 5])  # 40 h gap
    ev = make_events(t, [1, 2, 3, 4, 5], [1, 1, 1, 1, 1], [0, 1, 0, 1, 0])
    path = write(tmp_path / "gap.h5", ev, parts=(0.5,))
    with h5py.File(path, "r") as f:
        assert "ms_to_idx" not in f  # 1.4e8 entries would be 1 GB of index
    with Hdf5Reader(path) as r:
        assert np.array_equal(r.read_all(), ev)
        assert [r.time_to_index(int(q)) for q in (-1, 15, 21, t[3], t[4] + 1)] == [0, 2, 3, 3, 5]


def test_t_offset_is_written_with_the_first_events(tmp_path):
    ev = random_events(100, seed=13)
    with Hdf5Writer(tmp_path / "open.h5", 640, 480) as w:
        assert "t_offset" not in w._f
        w.write(ev)  # HDF5 forbids opening it a second time here: look through the writer
        assert int(w._f["t_offset"][()]) == int(ev["t"][0]) // 1000 * 1000


# --- independent producers ---------------------------------------------------------------------


@pytest.mark.parametrize("t_dtype", ["<u4", "<i8"])
@pytest.mark.parametrize("ms_index", [True, False])
def test_reads_dsec_files_written_with_raw_h5py(tmp_path, t_dtype, ms_index):
    ev = random_events(60_000, seed=4, t0=10**9)
    path = write_dsec_with_h5py(tmp_path / "events.h5", ev, t_dtype=t_dtype, ms_index=ms_index)
    with Hdf5Reader(path, block_bytes=8192) as r:
        assert r.info.header["layout"] == "dsec"
        assert np.array_equal(r.read_all(), ev)
        assert r.info.size is None
        rng = np.random.default_rng(5)
        queries = [*rng.integers(int(ev["t"][0]) - 5000, int(ev["t"][-1]) + 5000, 300)]
        queries += [int(v) for v in ev["t"][::5000]]
        for q in queries:
            assert r.time_to_index(int(q)) == int(np.searchsorted(ev["t"], q)), q
        cp = r.checkpoint_at(int(ev["t"][12_345]))
        first = next(r.blocks(cp)).events
        assert first["t"][0] == ev["t"][12_345] and cp.events_before <= 12_345


def test_a_wrong_ms_to_idx_costs_speed_not_correctness(tmp_path):
    ev = random_events(20_000, seed=6)
    path = write_dsec_with_h5py(tmp_path / "events.h5", ev)
    with h5py.File(path, "r+") as f:
        ms = f["ms_to_idx"][:]
        del f["ms_to_idx"]
        f.create_dataset("ms_to_idx", data=ms[::-1])
    with Hdf5Reader(path) as r:
        for q in ev["t"][::997]:
            assert r.time_to_index(int(q)) == int(np.searchsorted(ev["t"], q))


@pytest.mark.skipif(evlib is None, reason="evlib not installed")
def test_evlib_reads_evtui_dsec_files(tmp_path):
    ev = random_events(30_000, seed=7)
    path = write(tmp_path / "a.h5", ev)
    t_offset = int(ev["t"][0]) // 1000 * 1000
    df = evlib.load_events(str(path), sort=False).collect()
    # evlib ignores t_offset and maps polarity 0 -> -1.
    assert np.array_equal(df["t"].dt.total_microseconds().to_numpy(), ev["t"] - t_offset)
    assert np.array_equal(df["x"].to_numpy(), ev["x"])
    assert np.array_equal(df["y"].to_numpy(), ev["y"])
    assert np.array_equal(df["polarity"].to_numpy(), ev["p"].astype(np.int8) * 2 - 1)


@pytest.mark.skipif(evlib is None, reason="evlib not installed")
def test_reads_evlib_written_files(tmp_path):
    ev = random_events(8000, seed=8, t0=1000)
    path = tmp_path / "evlib.h5"
    evlib.save_events_to_hdf5(
        ev["x"].astype(np.int64),
        ev["y"].astype(np.int64),
        ev["t"].astype(np.float64),
        ev["p"].astype(np.int64) * 2 - 1,
        str(path),
    )
    with Hdf5Reader(path) as r:
        assert r.info.header["layout"] == "evlib"
        assert np.array_equal(r.read_all(), ev)


def test_reads_prophesee_cd_events_without_ecf(tmp_path):
    ev = random_events(20_000, seed=9)
    cd = np.dtype(
        {
            "names": ["x", "y", "p", "t"],
            "formats": ["<u2", "<u2", "<i2", "<i8"],
            "offsets": [0, 2, 4, 8],
            "itemsize": 16,
        }
    )
    arr = np.zeros(len(ev), cd)
    for f in "txyp":
        arr[f] = ev[f]
    with h5py.File(tmp_path / "p.hdf5", "w") as f:
        f.attrs["geometry"] = "1280x720"
        f.create_group("CD").create_dataset("events", data=arr, chunks=(16384,), compression="gzip")
    with Hdf5Reader(tmp_path / "p.hdf5", block_bytes=4096) as r:
        assert r.info.header["layout"] == "prophesee"
        assert r.info.size == (1280, 720)
        assert np.array_equal(r.read_all(), ev)
        q = int(ev["t"][777])
        assert r.time_to_index(q) == int(np.searchsorted(ev["t"], q))


# --- errors ----------------------------------------------------------------------------------


def _ecf_file(path):
    """A Prophesee-style /CD/events whose pipeline lists ECF (0x8ECF) as optional, with one
    chunk written raw through write_direct_chunk, as Metavision does."""
    cd = np.dtype([("x", "<u2"), ("y", "<u2"), ("p", "<i2"), ("t", "<i8")])
    with h5py.File(path, "w") as f:
        g = f.create_group("CD")
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((16384,))
        dcpl.set_filter(ECF_FILTER_ID, h5py.h5z.FLAG_OPTIONAL, ())
        space = h5py.h5s.create_simple((0,), (h5py.h5s.UNLIMITED,))
        dsid = h5py.h5d.create(g.id, b"events", h5py.h5t.py_create(cd), space, dcpl=dcpl)
        ds = h5py.Dataset(dsid)
        ds.resize((100,))
        ds.id.write_direct_chunk((0,), b"\x01ECF-compressed-bytes" * 8, filter_mask=0)
    return path


def test_ecf_is_refused_at_open_with_what_to_do(tmp_path):
    path = _ecf_file(tmp_path / "ecf.hdf5")
    with h5py.File(path, "r") as f:  # the fixture really lists the filter
        assert f["CD/events"].id.get_create_plist().get_filter(0)[0] == 0x8ECF
    with pytest.raises(RecordingError) as e:
        Hdf5Reader(path)
    msg = str(e.value)
    assert "ECF compression filter (id 0x8ECF)" in msg
    assert "h5py/hdf5plugin do not provide" in msg
    assert "Metavision" in msg and "evlib" in msg
    assert "\n" not in msg


@pytest.mark.parametrize("cls", ["reader", "writer"])
def test_missing_extra_names_it(tmp_path, monkeypatch, cls):
    path = write(tmp_path / "a.h5", random_events(10))
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(MissingDependency) as e:
        if cls == "reader":
            Hdf5Reader(path)
        else:
            Hdf5Writer(tmp_path / "b.h5", 10, 10)
    assert e.value.extra == "hdf5"
    assert "reading HDF5 recordings requires the 'hdf5' extra: pip install 'evtui[hdf5]'" in str(
        e.value
    )


def test_zstd_file_without_hdf5plugin_says_what_to_install(tmp_path):
    """Filters register process-wide, so this runs in a fresh interpreter."""
    path = write_dsec_with_h5py(tmp_path / "z.h5", random_events(100, seed=14))
    code = (
        "import sys; sys.modules['hdf5plugin'] = None\n"
        "from evtui.events.io.hdf5 import Hdf5Reader\n"
        "from evtui.events.errors import RecordingError\n"
        f"try:\n    Hdf5Reader({str(path)!r})\nexcept RecordingError as e:\n    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    env["HDF5_PLUGIN_PATH"] = str(tmp_path)  # no plugins there
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "/events/t uses HDF5 filter 32015 (HDF5 zstd filter)" in out.stdout
    assert "pip install hdf5plugin" in out.stdout


def test_resume_from_every_checkpoint(tmp_path):
    ev = random_events(20_000, seed=10)
    path = write(tmp_path / "a.h5", ev, chunk_events=1024)
    with Hdf5Reader(path, block_bytes=4096) as r:
        blocks = list(r.blocks())
        assert len(blocks) > 5
        for b in blocks:
            assert b.start.position % 1024 == 0  # chunk-aligned
            again = np.concatenate([x.events for x in r.blocks(b.start)])
            assert np.array_equal(again, ev[b.start.position :])


def test_truncated_and_garbage_files_are_one_line_errors(tmp_path):
    path = write(tmp_path / "a.h5", random_events(20_000))
    data = path.read_bytes()
    (tmp_path / "trunc.h5").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.h5").write_bytes(data[:8] + bytes(range(256)) * 8)
    for name in ("trunc.h5", "garbage.h5"):
        with pytest.raises(RecordingError) as e:
            Hdf5Reader(tmp_path / name).read_all()
        assert "\n" not in str(e.value) and name in str(e.value)


def test_corrupt_chunk_names_its_byte_offset(tmp_path):
    ev = random_events(20_000, seed=11)
    path = write(tmp_path / "a.h5", ev, chunk_events=2048)
    with h5py.File(path, "r") as f:
        info = f["events/x"].id.get_chunk_info_by_coord((4096,))
    data = bytearray(path.read_bytes())
    data[info.byte_offset : info.byte_offset + info.size] = b"\xff" * info.size
    path.write_bytes(bytes(data))
    with Hdf5Reader(path, block_bytes=4096) as r, pytest.raises(RecordingError) as e:
        r.read_all()
    assert e.value.offset == info.byte_offset
    assert "/events/x" in str(e.value) and "4096" in str(e.value)


def test_unknown_layout_lists_what_is_there(tmp_path):
    with h5py.File(tmp_path / "o.h5", "w") as f:
        f.create_dataset("images", data=np.zeros(3))
        f.create_group("calib")
    with pytest.raises(RecordingError, match=r"top level holds: calib, images.*expected"):
        Hdf5Reader(tmp_path / "o.h5")


def test_unequal_columns_use_the_common_length(tmp_path):
    ev = random_events(1000, seed=12)
    with h5py.File(tmp_path / "u.h5", "w") as f:
        g = f.create_group("events")
        g["x"], g["y"], g["p"] = ev["x"], ev["y"][:900], ev["p"]
        g["t"] = ev["t"]
    with Hdf5Reader(tmp_path / "u.h5") as r:
        assert np.array_equal(r.read_all(), ev[:900])
        assert r.diagnostics.counts["events missing a field dropped"] == 100


def test_sniff_finds_the_signature_after_a_user_block(tmp_path):
    with h5py.File(tmp_path / "ub.h5", "w", userblock_size=1024) as f:
        g = f.create_group("events")
        for k in "txyp":
            g[k] = np.arange(5)
    head = (tmp_path / "ub.h5").read_bytes()[:65536]
    assert not head.startswith(b"\x89HDF")
    assert Hdf5Reader.sniff(head)
    assert not Hdf5Reader.sniff(b"\0" * 4096)
    with Hdf5Reader(tmp_path / "ub.h5") as r:
        assert r.read_all()["x"].tolist() == [0, 1, 2, 3, 4]


def test_geometry_attributes(tmp_path):
    from evtui.events.io.hdf5 import geometry_from_attrs

    assert geometry_from_attrs({"width": 346, "height": np.int64(260)}) == (346, 260)
    assert geometry_from_attrs({"geometry": b"1280x720"}) == (1280, 720)
    assert geometry_from_attrs({"format": "EVT3;height=720;width=1280"}) == (1280, 720)
    assert geometry_from_attrs({"sensor_resolution": np.array([640, 480])}) == (640, 480)
    assert geometry_from_attrs({"width": 0, "height": 5}) is None
    assert geometry_from_attrs({}) is None


def test_nested_iterations_are_independent(tmp_path):
    ev = random_events(6000, seed=21)
    path = write(tmp_path / "i.h5", ev, chunk_events=1024)
    with Hdf5Reader(path, block_bytes=4096) as r:
        seen = []
        for b in r.blocks():
            seen.append(b.events)
            tail = np.concatenate([x.events for x in r.blocks(b.start)])
            assert np.array_equal(tail, ev[b.start.events_before :])
    assert np.array_equal(np.concatenate(seen), ev)
