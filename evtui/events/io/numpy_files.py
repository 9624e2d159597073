"""NumPy `.npy` / `.npz` event files, whatever library wrote them (events.md §1.8).

Readers accept the layouts people actually save: structured arrays with fields named
t/x/y/p (OpenEB EventCD, expelliarmus, tonic, faery `on`, dv `timestamp`/`polarity`),
npz archives with one array per field, and plain (N, 4) arrays in t, x, y, p order.
Both stream: `.npy` through a memory map, `.npz` members by reading their zip streams
in lockstep, so a file larger than memory is never loaded whole. Checkpoints are event
indexes; restarting inside a *compressed* npz member decompresses it again from its
start up to that index (zip streams cannot seek), which is correct but O(index).

The writers produce the interchange layout other parts of evtui rely on: an npz with
exactly the arrays `t` (<i8 µs), `x` (<u2), `y` (<u2), `p` (u1, 0/1) plus the scalars
`width` and `height`; an npy with the packed 13-byte record {t <i8, x <u2, y <u2, p i1}.
"""

from __future__ import annotations

import ast
import shutil
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from evtui.events.errors import Diagnostics, RecordingError
from evtui.events.io.base import EventReader, EventWriter, RecordingInfo
from evtui.events.types import EVENT_DTYPE, Block, Checkpoint

NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"

# Field names each producer uses, in order of preference (events.md §1.8).
T_NAMES = ("t", "ts", "timestamp", "timestamps")
X_NAMES = ("x", "xs")
Y_NAMES = ("y", "ys")
P_NAMES = ("p", "polarity", "on", "ps", "pol")
EXPECTED_FIELDS = "fields t|ts|timestamp, x, y, p|polarity|on"

UNIT_SAMPLE_EVENTS = 65536
"""Float times: seconds or µs is decided from this many first events, whatever the block size."""

PACKED_DTYPE = np.dtype([("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("p", "i1")])
"""What NpyWriter stores: EVENT_DTYPE's fields without the padding (13 B/event)."""

NPZ_COLUMNS: tuple[tuple[str, np.dtype], ...] = (
    ("t", np.dtype("<i8")),
    ("x", np.dtype("<u2")),
    ("y", np.dtype("<u2")),
    ("p", np.dtype("u1")),
)
"""The npz interchange layout: one member per field, in this order."""

_INT64_MAX = np.iinfo(np.int64).max
_COPY_BYTES = 1 << 20
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def pack_columns(
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    p: np.ndarray,
    *,
    t_scale: float | None = None,
    diagnostics: Diagnostics | None = None,
    offset: int | None = None,
) -> np.ndarray:
    """EVENT_DTYPE events from four parallel columns of any numeric dtype.

    Shared by every container reader so that they all normalise alike: float times are
    rounded (never truncated) after scaling by `t_scale`, polarity is `p > 0` (0/1, ±1
    and bool all work), and rows whose time or coordinates cannot be represented are
    dropped and counted rather than wrapped silently.
    """
    n = len(t)
    out = np.empty(n, EVENT_DTYPE)
    if n == 0:
        return out
    bad: np.ndarray | None = None

    def flag(mask: np.ndarray) -> None:
        nonlocal bad
        bad = mask if bad is None else (bad | mask)

    if t.dtype.kind == "f":
        tf = np.asarray(t, np.float64)
        if t_scale is not None and t_scale != 1:
            tf = tf * t_scale
        tf = np.rint(tf)
        ok = np.abs(tf) < 9.2e18  # False for NaN and ±inf too
        if not ok.all():
            flag(~ok)
            tf[~ok] = 0
        out["t"] = tf
    else:
        if t.dtype.kind == "u" and t.dtype.itemsize == 8 and int(t.max()) > _INT64_MAX:
            flag(t > _INT64_MAX)
        out["t"] = t
    for name, col in (("x", x), ("y", y)):
        if col.dtype.kind == "f":
            ok = (col >= 0) & (col <= 65535) & (np.floor(col) == col)
            if not ok.all():
                flag(~ok)
                col = np.where(ok, col, 0)
        elif (
            col.dtype.kind in "iu"
            and not (col.dtype.kind == "u" and col.dtype.itemsize <= 2)
            and (int(col.min()) < 0 or int(col.max()) > 65535)
        ):
            ok = (col >= 0) & (col <= 65535)
            flag(~ok)
            col = np.where(ok, col, 0)
        out[name] = col
    if p.dtype.kind == "b":
        out["p"] = p
    elif p.dtype.kind == "u":
        out["p"] = p != 0
    else:
        out["p"] = p > 0
    if bad is not None:
        nbad = int(np.count_nonzero(bad))
        if nbad:
            if diagnostics is not None:
                diagnostics.add(
                    "events with a time or x/y that is not a valid number dropped", nbad, offset
                )
            out = out[~bad]
    return out


def _check_numeric(path: Path, what: str, dtype: np.dtype, kinds: str, where: str) -> None:
    if dtype.kind not in kinds or dtype.shape != ():
        raise RecordingError(path, f"{where}: {what} has dtype {dtype}, expected a number")


def _pick(names: list[str] | tuple[str, ...], choices: tuple[str, ...]) -> str | None:
    lower = {n.lower(): n for n in names}
    for c in choices:
        if c in lower:
            return lower[c]
    return None


def structured_fields(dtype: np.dtype) -> tuple[str, str, str, str] | None:
    """The (t, x, y, p) field names of a structured dtype, or None if it lacks one."""
    if dtype.names is None:
        return None
    names = dtype.names
    picked = (
        _pick(names, T_NAMES),
        _pick(names, X_NAMES),
        _pick(names, Y_NAMES),
        _pick(names, P_NAMES),
    )
    if any(f is None for f in picked):
        return None
    return picked  # type: ignore[return-value]


def float_time_scale(sample: np.ndarray) -> float | None:
    """1e6 when float timestamps look like seconds (a fractional part), else None (µs)."""
    if sample.dtype.kind != "f" or len(sample) == 0:
        return None
    finite = sample[np.isfinite(sample)]
    return 1e6 if bool(np.any(finite != np.floor(finite))) else None


def _layout_error(
    path: Path, where: str, dtype: np.dtype, shape: tuple[int, ...]
) -> RecordingError:
    found = f"fields {', '.join(dtype.names)}" if dtype.names else f"dtype {dtype}"
    return RecordingError(
        path,
        f"{where}: unknown event layout ({found}, shape {shape}); expected a structured "
        f"array with {EXPECTED_FIELDS}, or an (N, 4) numeric array in t, x, y, p order",
    )


# --- .npy headers -----------------------------------------------------------------------


def read_npy_header(fp: IO[bytes]) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    """(dtype, shape, fortran_order, header length) of the .npy stream at `fp`.

    Raises ValueError on anything that is not a well-formed header; callers turn it
    into a RecordingError with their own context.
    """
    try:
        return _read_npy_header(fp)
    except (ValueError, OSError):
        raise
    except Exception as e:  # numpy's header parser raises tokenize/syntax/type errors too
        raise ValueError(f"{type(e).__name__}: {e}") from None


def _read_npy_header(fp: IO[bytes]) -> tuple[np.dtype, tuple[int, ...], bool, int]:
    start = fp.tell()
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=1 << 16)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=1 << 16)
    else:  # 3.0 only differs in the header's text encoding
        hlen = struct.unpack("<I", fp.read(4))[0]
        if hlen > 1 << 16:
            raise ValueError("header too large")
        d = ast.literal_eval(fp.read(hlen).decode("utf8"))
        shape, fortran = tuple(d["shape"]), bool(d["fortran_order"])
        dtype = np.lib.format.descr_to_dtype(d["descr"])
    if dtype.hasobject:
        raise ValueError("it holds Python objects, not numbers")
    return dtype, tuple(int(s) for s in shape), bool(fortran), fp.tell() - start


_NPY_HEADER_BYTES = 192
"""Fixed header size for the npy writer: room for any count, so it can be rewritten at close."""


def npy_header(dtype: np.dtype, shape: tuple[int, ...]) -> bytes:
    """A version 1.0 .npy header of exactly `_NPY_HEADER_BYTES` bytes (64-aligned data)."""
    descr = np.lib.format.dtype_to_descr(dtype)
    text = f"{{'descr': {descr!r}, 'fortran_order': False, 'shape': {shape!r}, }}"
    room = _NPY_HEADER_BYTES - 10
    if len(text) + 1 > room:
        raise ValueError("npy header does not fit")
    text = text.ljust(room - 1) + "\n"
    return NPY_MAGIC + b"\x01\x00" + struct.pack("<H", room) + text.encode("latin1")


# --- how an array's rows become columns -------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Where t, x, y, p are in one array: structured fields or columns of an (N, 4) array."""

    fields: tuple[str, str, str, str] | None  # structured field names, else (N, 4) columns
    t_scale: float | None = None

    def columns(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.fields is not None:
            return tuple(rows[f] for f in self.fields)
        return tuple(rows[:, i] for i in range(4))


def _array_layout(
    path: Path, where: str, dtype: np.dtype, shape: tuple[int, ...]
) -> tuple[_Layout, int]:
    """The layout and event count of a whole-recording array, or RecordingError."""
    if dtype.names is not None:
        fields = structured_fields(dtype)
        if fields is None or len(shape) != 1:
            raise _layout_error(path, where, dtype, shape)
        for role, f in zip("txyp", fields, strict=True):
            _check_numeric(path, f"field '{f}'", dtype[f], "iuf" if role != "p" else "biuf", where)
        return _Layout(fields), shape[0]
    if len(shape) == 2 and shape[1] == 4 and dtype.kind in "iuf":
        return _Layout(None), shape[0]
    raise _layout_error(path, where, dtype, shape)


def _with_unit(layout: _Layout, sample: np.ndarray) -> _Layout:
    if len(sample) == 0:
        return layout
    t = layout.columns(sample)[0]
    return _Layout(layout.fields, float_time_scale(np.asarray(t)))


def _pack(layout: _Layout, rows: np.ndarray, diagnostics: Diagnostics) -> np.ndarray:
    t, x, y, p = layout.columns(rows)
    return pack_columns(t, x, y, p, t_scale=layout.t_scale, diagnostics=diagnostics)


def _events_per_block(block_bytes: int, row_bytes: int) -> int:
    return max(1024, block_bytes // max(1, row_bytes))


# --- .npy reader ------------------------------------------------------------------------


class NpyReader(EventReader):
    """A `.npy` event array, memory-mapped and sliced per block."""

    format = "npy"
    description = "NumPy .npy event array (structured t/x/y/p or (N, 4) t, x, y, p)"
    extensions = (".npy",)

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(NPY_MAGIC)

    def _open(self) -> RecordingInfo:
        try:
            size = self.path.stat().st_size
            with self.path.open("rb") as f:
                dtype, shape, fortran, hlen = read_npy_header(f)
        except ValueError as e:
            raise RecordingError(self.path, f"not a valid .npy header ({e})", 0) from None
        except OSError as e:
            raise RecordingError(self.path, f"cannot read: {e.strerror or e}") from None
        layout, count = _array_layout(self.path, ".npy", dtype, shape)
        row_bytes = dtype.itemsize * (1 if layout.fields is not None else 4)
        available = (size - hlen) // row_bytes if row_bytes else 0
        if available < count:
            if fortran:
                raise RecordingError(
                    self.path,
                    f"truncated: {count} column-major rows need {count * row_bytes} bytes, "
                    f"the file has {size - hlen}",
                    size,
                )
            self.diagnostics.add("truncated trailing bytes", 1, hlen + available * row_bytes)
            count = available
        elif size - hlen > count * row_bytes and not fortran:
            self.diagnostics.add("unexpected trailing bytes ignored", 1, hlen + count * row_bytes)
        self._count = count
        self._row_bytes = row_bytes
        self._array: np.ndarray | None = None
        if count:
            full = (count,) if layout.fields is not None else (count, 4)
            self._array = np.memmap(
                self.path, dtype=dtype, mode="r", offset=hlen, shape=full,
                order="F" if fortran else "C",
            )  # fmt: skip
        sample = self._array[:UNIT_SAMPLE_EVENTS] if self._array is not None else dtype.type(0)
        self._layout = _with_unit(layout, np.asarray(sample)) if count else layout
        header = {"layout": _describe(self._layout, dtype), "events": str(count)}
        if self._layout.t_scale:
            header["time_unit"] = "s"
        return RecordingInfo(self.path, self.format, None, None, header, "unknown")

    def _blocks(self, start: Checkpoint | None) -> Iterator[Block]:
        i = start.position if start is not None else 0
        step = _events_per_block(self.block_bytes, self._row_bytes)
        while i < self._count:
            j = min(self._count, i + step)
            assert self._array is not None
            ev = _pack(self._layout, self._array[i:j], self.diagnostics)
            yield Block(Checkpoint(i, (), i), ev)
            i = j

    def close(self) -> None:
        self._array = None


def _describe(layout: _Layout, dtype: np.dtype) -> str:
    if layout.fields is not None:
        return "structured " + ",".join(layout.fields)
    return f"(N, 4) {dtype} t,x,y,p"


# --- .npz reader ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Member:
    """One array inside the archive: where its data starts and how it is stored."""

    info: zipfile.ZipInfo
    dtype: np.dtype
    shape: tuple[int, ...]
    fortran: bool
    header_len: int
    data_offset: int | None  # absolute file offset of the data when stored uncompressed

    @property
    def name(self) -> str:
        return self.info.filename[:-4]


@dataclass(frozen=True)
class _Source:
    """A run of `dtype` items starting `skip` bytes into a member's data."""

    member: _Member
    dtype: np.dtype
    skip: int = 0


class NpzReader(EventReader):
    """A `.npz` archive read incrementally, one zip stream per column, in lockstep."""

    format = "npz"
    description = "NumPy .npz archive (arrays t, x, y, p; or one event array)"
    extensions = (".npz",)

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        if not head.startswith(ZIP_MAGIC) or len(head) < 30:
            return False
        name_len = int.from_bytes(head[26:28], "little")
        name = head[30 : 30 + name_len]
        return name.endswith(b".npy")

    def _open(self) -> RecordingInfo:
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (zipfile.BadZipFile, EOFError, ValueError, NotImplementedError) as e:
            raise RecordingError(self.path, f"not a readable .npz (zip) archive: {e}", 0) from None
        except OSError as e:
            raise RecordingError(self.path, f"cannot read: {e.strerror or e}") from None
        try:
            return self._open_members()
        except BaseException:
            self._zip.close()
            raise

    def _open_members(self) -> RecordingInfo:
        infos = {i.filename[:-4]: i for i in self._zip.infolist() if i.filename.endswith(".npy")}
        names = list(infos)
        picked = [_pick(names, c) for c in (T_NAMES, X_NAMES, Y_NAMES, P_NAMES)]
        geometry = self._geometry(infos)
        sources: list[_Source]
        if all(picked):
            members = [self._member(infos[n]) for n in picked]  # type: ignore[index]
            for role, m in zip("txyp", members, strict=True):
                if len(m.shape) != 1:
                    raise RecordingError(
                        self.path, f"member '{m.name}' has shape {m.shape}, expected (N,)"
                    )
                _check_numeric(
                    self.path, f"array '{m.name}'", m.dtype, "biuf" if role == "p" else "iuf",
                    ".npz",
                )  # fmt: skip
            counts = [m.shape[0] for m in members]
            count = min(counts)
            if max(counts) != count:
                self.diagnostics.add("events missing a field dropped", max(counts) - count)
            sources = [_Source(m, m.dtype) for m in members]
            layout = _Layout(("t", "x", "y", "p"))
        else:
            single = [n for n in names if n not in ("width", "height")]
            pick = "events" if "events" in single else (single[0] if len(single) == 1 else None)
            if pick is None:
                raise RecordingError(
                    self.path,
                    f"unknown npz layout (arrays {', '.join(names) or 'none'}); expected "
                    "arrays t|ts|timestamp, x, y, p|polarity|on, or one event array",
                )
            m = self._member(infos[pick])
            layout, count = _array_layout(self.path, f"npz array '{pick}'", m.dtype, m.shape)
            if layout.fields is not None:
                sources = [_Source(m, m.dtype)]
            elif m.fortran:  # column-major (N, 4): four runs, one per column
                sources = [_Source(m, m.dtype, c * count * m.dtype.itemsize) for c in range(4)]
            else:
                sources = [_Source(m, np.dtype((m.dtype, (4,))))]
        self._sources = sources
        self._columns = len(sources) == 4  # t, x, y, p each from its own run
        self._layout = layout
        self._count = self._check_sizes(count)
        if self._count:
            k = min(self._count, UNIT_SAMPLE_EVENTS)
            parts = self._wrap_errors(lambda: self._read_rows(0, k))
            t = parts[0] if self._columns else layout.columns(parts[0])[0]
            self._layout = _Layout(layout.fields, float_time_scale(np.asarray(t)))
        header = {"layout": ",".join(s.member.name for s in sources), "events": str(self._count)}
        if self._layout.t_scale:
            header["time_unit"] = "s"
        w, h = geometry if geometry else (None, None)
        return RecordingInfo(
            self.path, self.format, w, h, header, "header" if geometry else "unknown"
        )

    def _member(self, info: zipfile.ZipInfo) -> _Member:
        where = f"member '{info.filename}'"
        try:
            with self._zip.open(info) as fp:
                dtype, shape, fortran, hlen = read_npy_header(fp)
        except ValueError as e:
            raise RecordingError(
                self.path, f"{where}: not a valid .npy header ({e})", info.header_offset
            ) from None
        except (zipfile.BadZipFile, zlib.error, OSError, RuntimeError, NotImplementedError) as e:
            raise RecordingError(self.path, f"{where}: {e}", info.header_offset) from None
        data_offset = None
        if info.compress_type == zipfile.ZIP_STORED and not info.flag_bits & 0x1:
            data_offset = self._stored_data_offset(info) + hlen
        return _Member(info, dtype, shape, fortran, hlen, data_offset)

    def _stored_data_offset(self, info: zipfile.ZipInfo) -> int:
        """File offset of a stored member's bytes (after its local header): lets us mmap it."""
        with self.path.open("rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
        if len(local) < 30 or not local.startswith(ZIP_MAGIC):
            raise RecordingError(
                self.path, f"member '{info.filename}': bad local header", info.header_offset
            )
        name_len, extra_len = struct.unpack("<HH", local[26:30])
        return info.header_offset + 30 + name_len + extra_len

    def _check_sizes(self, count: int) -> int:
        """Clamp the count to what each member really holds (a lying header is truncation)."""
        file_size = self.path.stat().st_size
        for s in self._sources:
            m = s.member
            size = m.info.file_size - m.header_len
            if m.data_offset is not None:
                size = min(size, file_size - m.data_offset)
            room = (size - s.skip) // s.dtype.itemsize
            if room < count:
                self.diagnostics.add("truncated trailing bytes", 1, m.info.header_offset)
                count = max(0, room)
        return count

    def _geometry(self, infos: dict[str, zipfile.ZipInfo]) -> tuple[int, int] | None:
        if "width" not in infos or "height" not in infos:
            return None
        vals = []
        for key in ("width", "height"):
            info = infos[key]
            if info.file_size > 4096:
                return None
            try:
                with self._zip.open(info) as fp:
                    v = np.lib.format.read_array(fp, allow_pickle=False)
            except Exception:  # optional metadata: a bad one only loses the geometry
                return None
            if v.shape not in ((), (1,)) or v.dtype.kind not in "iu":
                return None
            vals.append(int(v.reshape(())))
        w, h = vals
        return (w, h) if 0 < w <= 65536 and 0 < h <= 65536 else None

    def _readers(self, start: int, streams: list[IO[bytes]]) -> list[Callable[[int], Any]]:
        """One `read(k)` per source, each positioned at event `start`. Zip streams opened
        are added to `streams`, which the caller closes: each iteration owns its own."""
        readers = []
        for s in self._sources:
            m = s.member
            if m.data_offset is not None:
                readers.append(self._mmap_reader(m, s, start))
            else:
                readers.append(self._stream_reader(m, s, start, streams))
        return readers

    def _mmap_reader(self, m: _Member, s: _Source, start: int) -> Callable[[int], np.ndarray]:
        assert m.data_offset is not None
        mm = np.memmap(
            self.path, dtype=s.dtype, mode="r", offset=m.data_offset + s.skip, shape=(self._count,)
        )
        pos = start

        def read(k: int) -> np.ndarray:
            nonlocal pos
            out = mm[pos : pos + k]
            pos += k
            return out

        return read

    def _stream_reader(
        self, m: _Member, s: _Source, start: int, streams: list[IO[bytes]]
    ) -> Callable[[int], np.ndarray]:
        fp = self._zip.open(m.info)
        streams.append(fp)
        size = s.dtype.itemsize
        # A compressed zip stream seeks by decompressing up to the target.
        fp.seek(m.header_len + s.skip + start * size)

        def read(k: int) -> np.ndarray:
            data = fp.read(k * size)
            if len(data) != k * size:
                raise RecordingError(
                    self.path,
                    f"member '{m.info.filename}' ends early (expected {k * size} more bytes)",
                    m.info.header_offset,
                )
            return np.frombuffer(data, s.dtype)

        return read

    def _read_rows(self, start: int, k: int) -> list[np.ndarray]:
        streams: list[IO[bytes]] = []
        try:
            return [r(k) for r in self._readers(start, streams)]
        finally:
            for fp in streams:
                fp.close()

    def _blocks(self, start: Checkpoint | None) -> Iterator[Block]:
        i = start.position if start is not None else 0
        row_bytes = sum(s.dtype.itemsize for s in self._sources)
        step = _events_per_block(self.block_bytes, row_bytes)
        if i >= self._count:
            return
        streams: list[IO[bytes]] = []
        try:
            readers = self._wrap_errors(lambda: self._readers(i, streams))
            while i < self._count:
                k = min(self._count, i + step) - i
                parts = self._wrap_errors(lambda: [r(k) for r in readers])  # noqa: B023
                if self._columns:
                    t, x, y, p = parts
                    ev = pack_columns(
                        t, x, y, p, t_scale=self._layout.t_scale, diagnostics=self.diagnostics
                    )
                else:
                    ev = _pack(self._layout, parts[0], self.diagnostics)
                yield Block(Checkpoint(i, (), i), ev)
                i += k
        finally:
            for fp in streams:
                fp.close()

    def _wrap_errors(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as e:
            raise RecordingError(self.path, f"corrupt npz member: {e}") from None
        except (RuntimeError, NotImplementedError) as e:  # encrypted, unknown compression
            raise RecordingError(self.path, f"unreadable npz member: {e}") from None

    def close(self) -> None:
        self._zip.close()


# --- writers ----------------------------------------------------------------------------


def _as_events(events: np.ndarray) -> np.ndarray:
    names = events.dtype.names
    if events.dtype != EVENT_DTYPE and (names is None or not set("txyp") <= set(names)):
        raise TypeError(f"expected EVENT_DTYPE events, got {events.dtype}")
    return events


class NpyWriter(EventWriter):
    """Streams the packed record array; the header's count is rewritten at close."""

    format = "npy"
    extensions = (".npy",)

    def __init__(self, path: str | Path, width: int, height: int, **options: Any) -> None:
        super().__init__(path, width, height, **options)
        self._f = self.path.open("wb")
        self._n = 0
        self._f.write(npy_header(PACKED_DTYPE, (0,)))

    def write(self, events: np.ndarray, triggers: np.ndarray | None = None) -> None:
        ev = _as_events(events)
        rows = np.empty(len(ev), PACKED_DTYPE)
        for f in "txyp":
            rows[f] = ev[f]
        self._f.write(rows.tobytes())
        self._n += len(ev)

    def _finish(self) -> None:
        try:
            self._f.seek(0)
            self._f.write(npy_header(PACKED_DTYPE, (self._n,)))
        finally:
            self._f.close()


class NpzWriter(EventWriter):
    """Streams the npz interchange layout with memory bounded by the copy buffer.

    A zip member's npy header holds the final length, unknown until close, so each
    field is spooled raw to an anonymous temp file beside the output (13 B/event of
    scratch disk) and the archive is assembled at close. Bytes are deterministic:
    fixed member order, timestamps (1980-01-01) and attributes. Options:
    `compress` (default True: ZIP_DEFLATED), `compresslevel` (zlib, default 1: measured
    3x faster than level 6 for 9 % more bytes).
    """

    format = "npz"
    extensions = (".npz",)

    def __init__(self, path: str | Path, width: int, height: int, **options: Any) -> None:
        super().__init__(path, width, height, **options)
        self._compress = bool(options.get("compress", True))
        self._level = int(options.get("compresslevel", 1))
        # Anonymous temp files (closed, hence deleted, in _finish) beside the output.
        self._spools = [self._spool(name) for name, _ in NPZ_COLUMNS]
        self._n = 0

    def write(self, events: np.ndarray, triggers: np.ndarray | None = None) -> None:
        ev = _as_events(events)
        for (name, dtype), spool in zip(NPZ_COLUMNS, self._spools, strict=True):
            col = ev[name]
            if name == "p":
                col = col > 0
            spool.write(np.ascontiguousarray(col, dtype=dtype).data)
        self._n += len(ev)

    def _spool(self, name: str) -> IO[bytes]:
        prefix = f".{self.path.name}.{name}."
        return tempfile.TemporaryFile(dir=self.path.parent, prefix=prefix)

    def _finish(self) -> None:
        method = zipfile.ZIP_DEFLATED if self._compress else zipfile.ZIP_STORED
        try:
            with zipfile.ZipFile(
                self.path, "w", compression=method, compresslevel=self._level, allowZip64=True
            ) as zf:
                for (name, dtype), spool in zip(NPZ_COLUMNS, self._spools, strict=True):
                    spool.seek(0)
                    head = npy_header(dtype, (self._n,))
                    with zf.open(
                        self._info(name, method, len(head) + self._n * dtype.itemsize), "w"
                    ) as out:
                        out.write(head)
                        shutil.copyfileobj(spool, out, _COPY_BYTES)
                for name, value in (("width", self.width), ("height", self.height)):
                    arr = np.array(value, dtype="<i8")
                    body = npy_header(arr.dtype, ()) + arr.tobytes()
                    with zf.open(self._info(name, method, len(body)), "w") as out:
                        out.write(body)
        finally:
            for spool in self._spools:
                spool.close()

    def _info(self, name: str, method: int, size: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
        info.compress_type = method
        if method == zipfile.ZIP_DEFLATED:
            # The attribute is `_compresslevel` before Python 3.13, `compress_level` after.
            attr = "compress_level" if hasattr(info, "compress_level") else "_compresslevel"
            setattr(info, attr, self._level)
        info.create_system = 3
        info.external_attr = 0o644 << 16
        info.file_size = size  # lets zipfile choose ZIP64 up front for members >= 2 GiB
        return info
