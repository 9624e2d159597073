"""The bundled sample recordings: every file holds exactly the ground-truth events, as
evtui and independent decoders (faery, evlib, h5py, numpy) read them; the CLI converts
them through every writable format and back without losing an event."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from evtui.cli import main
from evtui.events.io import open_recording, writable_formats, writer_class
from tests.conftest import SAMPLE_DATA

SCENE = json.loads((SAMPLE_DATA / "scene.json").read_text())
FILES = {f["name"]: f["format"] for f in SCENE["files"]}
PACKED = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "u1")])


def sha256_of(ev: np.ndarray) -> str:
    packed = np.empty(len(ev), PACKED)
    for field in PACKED.names:
        packed[field] = ev[field]
    return hashlib.sha256(packed.tobytes()).hexdigest()


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    with open_recording(SAMPLE_DATA / "sample.npz") as r:
        return r.read_all()


@pytest.mark.parametrize("name", sorted(FILES))
def test_evtui_decodes_the_ground_truth(name):
    with open_recording(SAMPLE_DATA / name) as r:
        assert r.info.format == FILES[name]
        assert r.info.size == (SCENE["sensor"]["width"], SCENE["sensor"]["height"])
        ev = r.read_all()
        assert not r.diagnostics, r.diagnostics.lines(name)
    assert len(ev) == SCENE["events"]["count"]
    assert sha256_of(ev) == SCENE["events"]["sha256"]


def _equal(ev: np.ndarray, t, x, y, p) -> None:
    assert len(ev) == len(t)
    assert np.array_equal(ev["t"], np.asarray(t, np.int64))
    assert np.array_equal(ev["x"], np.asarray(x, np.int64))
    assert np.array_equal(ev["y"], np.asarray(y, np.int64))
    assert np.array_equal(ev["p"] > 0, np.asarray(p) > 0)


@pytest.mark.parametrize(
    "name", ["sample.evt3.raw", "sample.evt2.raw", "sample.dat", "sample.aedat4"]
)
def test_faery_decodes_each_file_identically(name, truth):
    faery = pytest.importorskip("faery")
    arr = np.concatenate(list(faery.events_stream_from_file(SAMPLE_DATA / name)))
    _equal(truth, arr["t"], arr["x"], arr["y"], arr["on"])


@pytest.mark.parametrize("name", ["sample.evt3.raw", "sample.evt2.raw", "sample.aedat4"])
def test_evlib_decodes_each_file_identically(name, truth):
    evlib = pytest.importorskip("evlib")
    df = evlib.load_events(str(SAMPLE_DATA / name)).collect().sort("t", maintain_order=True)
    t = df["t"].dt.total_microseconds().to_numpy()
    _equal(truth, t, df["x"].to_numpy(), df["y"].to_numpy(), df["polarity"].to_numpy())


def test_h5py_reads_the_dsec_layout(truth):
    h5py = pytest.importorskip("h5py")
    pytest.importorskip("hdf5plugin")
    with h5py.File(SAMPLE_DATA / "sample.h5", "r") as f:
        t = f["events/t"][:].astype(np.int64) + int(f["t_offset"][()])
        _equal(truth, t, f["events/x"][:], f["events/y"][:], f["events/p"][:])


def test_numpy_reads_the_npz_arrays():
    with np.load(SAMPLE_DATA / "sample.npz") as z:
        ev = np.zeros(len(z["t"]), PACKED)
        for k in PACKED.names:
            assert z[k].dtype == PACKED[k]
            ev[k] = z[k]
    assert sha256_of(ev) == SCENE["events"]["sha256"]


@pytest.mark.parametrize("fmt", writable_formats())
def test_cli_convert_round_trips_through_every_writable_format(fmt, tmp_path, truth):
    ext = writer_class(fmt).extensions[0]
    mid = tmp_path / f"mid{ext}"
    back = tmp_path / "back.npz"
    assert main(["convert", str(SAMPLE_DATA / "sample.evt3.raw"), str(mid), "--to", fmt]) == 0
    assert main(["convert", str(mid), str(back)]) == 0
    with np.load(back) as z:
        _equal(truth, z["t"], z["x"], z["y"], z["p"])
        assert (int(z["width"]), int(z["height"])) == (320, 240)
