"""Bounded fuzzing of the HDF5, npy/npz and text readers: bad bytes only ever raise
RecordingError, decoded events stay in range, and the vectorised text parser agrees
with a plain-Python reading of the same lines."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from evtui.events.errors import RecordingError
from evtui.events.io.numpy_files import NpyReader, NpyWriter, NpzReader, NpzWriter
from evtui.events.io.text import TextReader, TextWriter
from evtui.events.types import EVENT_DTYPE, make_events

FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def small_events(n: int = 300, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return make_events(
        np.cumsum(rng.integers(0, 30, n)),
        rng.integers(0, 64, n),
        rng.integers(0, 48, n),
        rng.integers(0, 2, n),
    )


def drain(reader_cls, path, block_bytes=4096) -> np.ndarray:
    """All events, or RecordingError; anything else fails the test."""
    try:
        with reader_cls(path, block_bytes=block_bytes) as r:
            ev = r.read_all()
    except RecordingError as e:
        assert "\n" not in str(e)
        return np.zeros(0, EVENT_DTYPE)
    assert ev.dtype == EVENT_DTYPE
    assert set(np.unique(ev["p"]).tolist()) <= {0, 1}
    return ev


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    b = bytearray(data)
    for pos, val in edits:
        b[pos % len(b)] = val
    return bytes(b[:cut] if cut is not None else b)


EDITS = st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=8)
CUT = st.one_of(st.none(), st.integers(0, 4000))


def _valid(workdir, name, writer, **options) -> bytes:
    path = workdir / name
    if not path.exists():
        with writer(path, 64, 48, **options) as w:
            w.write(small_events())
    return path.read_bytes()


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mutated_npy(workdir, edits, cut):
    data = mutate(_valid(workdir, "v.npy", NpyWriter), edits, cut)
    (workdir / "m.npy").write_bytes(data)
    drain(NpyReader, workdir / "m.npy")


@FUZZ
@given(edits=EDITS, cut=CUT, compress=st.booleans())
def test_mutated_npz(workdir, edits, cut, compress):
    name = f"v{int(compress)}.npz"
    data = mutate(_valid(workdir, name, NpzWriter, compress=compress), edits, cut)
    (workdir / "m.npz").write_bytes(data)
    drain(NpzReader, workdir / "m.npz")


@FUZZ
@given(
    dtype=st.sampled_from(["<i1", "<u1", "<i2", "<u2", ">i4", "<u8", "<i8", "<f4", "<f8", "?"]),
    values=st.lists(st.integers(-(2**40), 2**40), min_size=4, max_size=64),
    structured=st.booleans(),
)
def test_npy_of_any_numeric_dtype(workdir, dtype, values, structured):
    vals = np.array(values[: len(values) // 4 * 4], dtype=np.int64).reshape(-1, 4)
    with np.errstate(all="ignore"):
        cols = [vals[:, i].astype(dtype) for i in range(4)]
    if structured:
        arr = np.zeros(len(vals), [(n, dtype) for n in ("t", "x", "y", "p")])
        for n, c in zip("txyp", cols, strict=True):
            arr[n] = c
    else:
        arr = np.stack(cols, axis=1)
    np.save(workdir / "d.npy", arr)
    ev = drain(NpyReader, workdir / "d.npy")
    if np.dtype(dtype).kind not in "iu" or (np.dtype(dtype) == np.uint64 and not structured):
        return  # floats may be read as seconds; bounds were checked by drain()
    t, x, y, p = (c.astype(object) for c in cols)  # exact Python ints
    keep = [
        0 <= xi <= 65535 and 0 <= yi <= 65535 and ti < 2**63
        for ti, xi, yi in zip(t, x, y, strict=True)
    ]
    expected = [
        (int(ti), int(xi), int(yi), int(pi > 0))
        for ti, xi, yi, pi, k in zip(t, x, y, p, keep, strict=True)
        if k
    ]
    assert ev[["t", "x", "y", "p"]].tolist() == expected


# --- HDF5 ------------------------------------------------------------------------------------


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=EDITS, cut=CUT)
def test_mutated_hdf5(workdir, edits, cut):
    pytest.importorskip("h5py")
    from evtui.events.io.hdf5 import Hdf5Reader, Hdf5Writer

    path = workdir / "v.h5"
    if not path.exists():
        with Hdf5Writer(path, 64, 48, chunk_events=64) as w:
            w.write(small_events())
    (workdir / "m.h5").write_bytes(mutate(path.read_bytes(), edits, cut))
    drain(Hdf5Reader, workdir / "m.h5")


# --- text ------------------------------------------------------------------------------------

TEXT_ALPHABET = st.sampled_from(list("0123456789 ,.-+\n\r\teE%xyz@:"))


@FUZZ
@given(text=st.lists(TEXT_ALPHABET, max_size=600).map("".join))
def test_random_text(workdir, text):
    (workdir / "r.txt").write_text("0 1 2 1\n" + text)
    drain(TextReader, workdir / "r.txt", block_bytes=4096)


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_mutated_text(workdir, edits, cut):
    data = _valid(workdir, "v.txt", TextWriter)
    (workdir / "m.txt").write_bytes(mutate(data, edits, cut))
    drain(TextReader, workdir / "m.txt")


def _int_token(draw, lo, hi, signs=("", "+")) -> str:
    v = draw(st.integers(lo, hi))
    zeros = "0" * draw(st.integers(0, 2))
    sign = "-" if v < 0 else draw(st.sampled_from(signs))
    return f"{sign}{zeros}{abs(v)}"


@st.composite
def event_lines(draw, seconds: bool):
    rows = []
    for _ in range(draw(st.integers(1, 40))):
        if seconds:
            whole = draw(st.integers(0, 10**10))
            digits = draw(st.integers(0, 12))
            frac = draw(st.integers(0, 10**digits - 1)) if digits else 0
            sign = draw(st.sampled_from(["", "", "-"]))
            t = f"{sign}{whole}." + (f"{frac:0{digits}d}" if digits else "")
            if draw(st.booleans()) and whole == 0:
                t = f"{sign}.{frac:0{max(digits, 1)}d}"
        else:
            t = _int_token(draw, -(4 * 10**15), 4 * 10**15)  # below 2**53 µs (285 years)
        x = _int_token(draw, 0, 65535)
        y = _int_token(draw, 0, 65535)
        p = draw(st.sampled_from(["0", "1", "-1", "+1", "2", "00"]))
        seps = [draw(st.sampled_from([" ", ",", "\t", "  ", ", "])) for _ in range(3)]
        end = draw(st.sampled_from(["\n", "\r\n", " \n"]))
        rows.append(f"{t}{seps[0]}{x}{seps[1]}{y}{seps[2]}{p}{end}")
    return rows


def reference(rows: list[str], seconds: bool) -> list[tuple[int, int, int, int]]:
    out = []
    for row in rows:
        t, x, y, p = row.replace(",", " ").split()
        tt = round(float(t) * 1e6) if seconds else int(t)
        out.append((tt, int(x), int(y), int(int(p) > 0)))
    return out


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=event_lines(seconds=False), block=st.integers(4096, 8192))
def test_text_parser_matches_python_for_integer_us(workdir, rows, block):
    (workdir / "us.txt").write_text("".join(rows), newline="")
    with TextReader(workdir / "us.txt", block_bytes=block) as r:
        ev = r.read_all()
    assert ev[["t", "x", "y", "p"]].tolist() == reference(rows, False)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=event_lines(seconds=True))
def test_text_parser_matches_python_for_seconds(workdir, rows):
    (workdir / "s.txt").write_text("".join(rows), newline="")
    with TextReader(workdir / "s.txt") as r:
        assert r.info.header["time_unit"] == "s"
        ev = r.read_all()
    assert ev[["t", "x", "y", "p"]].tolist() == reference(rows, True)


def test_zip_that_is_not_numpy(workdir):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("t.npy", b"not a numpy header at all")
    (workdir / "z.npz").write_bytes(buf.getvalue())
    with pytest.raises(RecordingError, match=r"member 't\.npy': not a valid \.npy header"):
        NpzReader(workdir / "z.npz")
