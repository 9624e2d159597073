"""Random and mutated bytes into the DAT and AEDAT4 decoders: RecordingError or sane events."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtui.events.errors import RecordingError
from evtui.events.io.aedat4 import MAGIC, Aedat4Reader, Aedat4Writer
from evtui.events.io.dat import DatReader, DatWriter
from evtui.events.types import EVENT_DTYPE, TRIGGER_DTYPE, make_events

W, H = 64, 48
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _events(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = 1000 + np.cumsum(rng.integers(0, 50, n))
    return make_events(t, rng.integers(0, W, n), rng.integers(0, H, n), rng.integers(0, 2, n))


def _valid_dat() -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.dat"
        with DatWriter(p, W, H) as w:
            w.write(_events(300, 1))
        return p.read_bytes()


def _valid_aedat(compression: str) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "v.aedat4"
        with Aedat4Writer(p, W, H, compression=compression, packet_events=50) as w:
            w.write(_events(300, 2))
        return p.read_bytes()


VALID_DAT = _valid_dat()
VALID_AEDAT = {c: _valid_aedat(c) for c in ("none", "lz4", "zstd")}


def _decode(reader_cls, data: bytes, block_bytes: int) -> None:
    """Decode `data` fully; only RecordingError may escape, events must be well-formed."""
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "f.bin"
        p.write_bytes(data)
        try:
            r = reader_cls(p, block_bytes=block_bytes)
            for b in r.blocks():
                ev = b.events
                assert ev.dtype == EVENT_DTYPE
                assert b.triggers.dtype == TRIGGER_DTYPE
                if len(ev):
                    assert set(np.unique(ev["p"]).tolist()) <= {0, 1}
                    if r.info.size is not None:
                        assert int(ev["x"].max()) < r.info.width
                        assert int(ev["y"].max()) < r.info.height
                if len(b.triggers):
                    assert set(np.unique(b.triggers["value"]).tolist()) <= {0, 1}
        except RecordingError as e:
            assert "\n" not in str(e)


def _mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for pos, val in edits:
        out[pos % len(out)] = val
    if cut is not None:
        out = out[: cut % (len(out) + 1)]
    return bytes(out)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8)
CUT = st.one_of(st.none(), st.integers(0, 1 << 20))


@FUZZ
@given(body=st.binary(max_size=600), header=st.sampled_from([b"% Version 2\n", b"% Width 64\n"]))
def test_dat_random_payload(body: bytes, header: bytes) -> None:
    _decode(DatReader, header + body, 4096)


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_dat_mutated_file(edits, cut) -> None:
    _decode(DatReader, _mutate(VALID_DAT, edits, cut), 4096)


@FUZZ
@given(body=st.binary(max_size=600))
def test_aedat_random_after_magic(body: bytes) -> None:
    _decode(Aedat4Reader, MAGIC + body, 4096)


@FUZZ
@given(compression=st.sampled_from(["none", "lz4", "zstd"]), edits=EDITS, cut=CUT)
def test_aedat_mutated_file(compression: str, edits, cut) -> None:
    _decode(Aedat4Reader, _mutate(VALID_AEDAT[compression], edits, cut), 4096)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), min_size=1, max_size=4))
def test_aedat_mutated_ioheader(edits) -> None:
    # Target the IO header FlatBuffer (vtable, offsets, compression, table position).
    data = bytearray(VALID_AEDAT["lz4"])
    for pos, val in edits:
        data[len(MAGIC) + pos] = val
    _decode(Aedat4Reader, bytes(data), 4096)
