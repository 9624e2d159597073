"""Fuzzing the EVT 2.0 / 3.0 decoders and writers: bad bytes never escape as tracebacks."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtui.events.errors import RecordingError
from evtui.events.io import open_recording
from evtui.events.io.base import BACKWARD_TOLERANCE_US
from evtui.events.io.evt2 import Evt2Reader, Evt2Writer, decode_evt2
from evtui.events.io.evt3 import Evt3Reader, Evt3Writer, decode_evt3
from evtui.events.io.raw import raw_header_bytes
from evtui.events.types import EVENT_DTYPE, TRIGGER_DTYPE, concat_events, make_events

FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFF_FFFF)
evt3_state = st.tuples(
    st.integers(0, 1),
    st.integers(0, 4095),
    st.integers(0, 1000),
    st.integers(0, 4095),
    st.integers(0, 2047),
    st.integers(0, 4095),
    st.integers(0, 1),
)
evt2_state = st.tuples(st.integers(0, 1), st.integers(0, (1 << 28) - 1), st.integers(0, 1000))
# Word streams biased towards the types that carry state, so that runs, vectors and
# time words actually meet.
evt3_words = st.lists(
    st.one_of(
        u16,
        st.tuples(st.sampled_from([0, 2, 3, 4, 5, 6, 8, 0xA]), st.integers(0, 0xFFF)).map(
            lambda k: (k[0] << 12) | k[1]
        ),
    ),
    max_size=400,
)
evt2_words = st.lists(
    st.one_of(
        u32,
        st.tuples(st.sampled_from([0, 1, 8, 0xA, 0xE]), st.integers(0, (1 << 28) - 1)).map(
            lambda k: (k[0] << 28) | k[1]
        ),
    ),
    max_size=300,
)


def in_bounds(ev: np.ndarray, tr: np.ndarray) -> None:
    assert ev.dtype == EVENT_DTYPE and tr.dtype == TRIGGER_DTYPE
    if len(ev):
        assert int(ev["x"].max()) < 2048 and int(ev["y"].max()) < 2048
        assert set(np.unique(ev["p"]).tolist()) <= {0, 1}
        assert int(ev["t"].min()) >= 0
    if len(tr):
        assert int(tr["t"].min()) >= 0 and set(np.unique(tr["value"]).tolist()) <= {0, 1}


def hints_hold(ev: np.ndarray, steady: bool, extent: tuple[int, int] | None) -> None:
    """The shortcuts read_all takes on a decoder's word must be true of its events."""
    if steady and len(ev):
        t = ev["t"]
        assert np.all(np.maximum.accumulate(t) - t <= BACKWARD_TOLERANCE_US)
    if extent is not None and len(ev):
        assert int(ev["x"].max()) <= extent[0] and int(ev["y"].max()) <= extent[1]


@FUZZ
@given(words=evt3_words, state=evt3_state, cut=st.integers(0, 400))
def test_evt3_decoder_any_words_any_split(words, state, cut):
    w = np.array(words, np.uint16)
    ev, tr, after, _, steady, extent = decode_evt3(w, state)
    in_bounds(ev, tr)
    hints_hold(ev, steady, extent)
    assert len(after) == 7 and all(isinstance(v, int) for v in after)
    a, tra, mid, *_ = decode_evt3(w[:cut], state)
    b, trb, end, *_ = decode_evt3(w[cut:], mid)
    assert np.array_equal(np.concatenate([a, b]), ev)
    assert np.array_equal(np.concatenate([tra, trb]), tr)
    assert end == after


@FUZZ
@given(words=evt2_words, state=evt2_state, cut=st.integers(0, 300))
def test_evt2_decoder_any_words_any_split(words, state, cut):
    w = np.array(words, np.uint32)
    ev, tr, after, _, steady, extent = decode_evt2(w, state)
    in_bounds(ev, tr)
    hints_hold(ev, steady, extent)
    a, tra, mid, *_ = decode_evt2(w[:cut], state)
    b, trb, end, *_ = decode_evt2(w[cut:], mid)
    assert np.array_equal(np.concatenate([a, b]), ev)
    assert np.array_equal(np.concatenate([tra, trb]), tr)
    assert end == after


def _read_everything(path: Path, reader: type) -> None:
    """Open, read, and resume; only RecordingError may come out."""
    try:
        r = open_recording(path) if reader is None else reader(path, block_bytes=4096)
        full = r.read_all()
        blocks = list(r.blocks())
    except RecordingError:
        return
    tr = concat_events([b.triggers for b in blocks], TRIGGER_DTYPE)
    in_bounds(full, tr)
    if r.info.size:
        assert len(full) == 0 or int(full["x"].max()) < r.info.size[0]
    joined = np.concatenate([b.events for b in blocks]) if blocks else full[:0]
    assert np.array_equal(joined, full)
    if len(blocks) > 1:
        cp = blocks[len(blocks) // 2].start
        tail = np.concatenate([b.events for b in r.blocks(cp)])
        assert np.array_equal(tail, full[cp.events_before :])


@FUZZ
@given(
    data=st.binary(max_size=20_000),
    encoding=st.sampled_from(["evt2", "evt3"]),
    geometry=st.sampled_from([(640, 480), (32, 16)]),
)
def test_random_payload_behind_a_valid_header(tmp_path, data, encoding, geometry):
    path = tmp_path / "r.raw"
    path.write_bytes(raw_header_bytes(encoding, *geometry) + data)
    _read_everything(path, {"evt2": Evt2Reader, "evt3": Evt3Reader}[encoding])


@FUZZ
@given(head=st.binary(max_size=300), body=st.binary(max_size=2000))
def test_random_headers(tmp_path, head, body):
    path = tmp_path / "h.raw"
    path.write_bytes(b"%" + head + b"\n" + body)
    for reader in (None, Evt2Reader, Evt3Reader):
        _read_everything(path, reader)


def _valid_file(tmp_path: Path, encoding: str) -> Path:
    rng = np.random.default_rng(0)
    n = 3000
    t = np.cumsum(rng.integers(0, 40, n))
    x = np.minimum(rng.integers(0, 620, n) + np.arange(n) % 7, 639)
    ev = make_events(t, x, rng.integers(0, 480, n), (np.arange(n) // 7) % 2)
    path = tmp_path / f"valid_{encoding}.raw"
    with (Evt3Writer if encoding == "evt3" else Evt2Writer)(path, 640, 480) as w:
        w.write(ev)
    return path


@FUZZ
@given(
    encoding=st.sampled_from(["evt2", "evt3"]),
    flips=st.lists(st.tuples(st.integers(0, 1 << 30), st.integers(0, 255)), max_size=30),
    cut=st.integers(0, 1 << 30),
)
def test_mutated_and_truncated_files(tmp_path, encoding, flips, cut):
    good = _valid_file(tmp_path, encoding).read_bytes()
    data = bytearray(good)
    for at, byte in flips:
        data[at % len(data)] = byte
    path = tmp_path / "m.raw"
    path.write_bytes(bytes(data[: max(1, cut % (len(data) + 1))]))
    _read_everything(path, None)


@FUZZ
@given(
    t=st.lists(st.integers(-(1 << 20), 1 << 36), min_size=1, max_size=200),
    encoding=st.sampled_from(["evt2", "evt3"]),
    parts=st.integers(1, 4),
)
def test_writer_round_trip_any_times(tmp_path, t, encoding, parts):
    n = len(t)
    rng = np.random.default_rng(n)
    ev = make_events(t, rng.integers(0, 64, n), rng.integers(0, 32, n), rng.integers(0, 2, n))
    path = tmp_path / "w.raw"
    writer = Evt3Writer if encoding == "evt3" else Evt2Writer
    with writer(path, 64, 32) as w:
        for a, b in itertools.pairwise(np.linspace(0, n, parts + 1).astype(int)):
            w.write(ev[a:b])
    with open_recording(path) as r:
        got = r.read_all()
    assert np.array_equal(got["x"], ev["x"]) and np.array_equal(got["y"], ev["y"])
    assert np.array_equal(got["p"], ev["p"])
    if not w.diagnostics:
        assert np.array_equal(got["t"], ev["t"])
    else:
        moved = got["t"] != ev["t"]
        assert np.all(got["t"][moved] > ev["t"][moved])  # only ever moved forward
    if all(b >= a >= 0 for a, b in itertools.pairwise([0, *t])):
        assert not w.diagnostics  # time-ordered input is written exactly
