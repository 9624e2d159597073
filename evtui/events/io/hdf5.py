"""HDF5 event recordings: DSEC-style, Prophesee `/CD/events` and evlib layouts (events.md §1.5).

h5py and hdf5plugin are the optional extra 'hdf5' and are imported only when an HDF5
file is opened or written, so the rest of evtui never pays for them. hdf5plugin is
what lets DSEC's Blosc/Zstd-compressed files decode.

Layouts read:
* DSEC: `/events/{x,y,t,p}` with `t` µs relative to `/t_offset` (u32 in DSEC, any
  integer here) and `/ms_to_idx`, the index of the first event at or after each ms.
* Prophesee (Metavision ≥ 4): compound `/CD/events {x,y,p,t}`. Its usual ECF codec
  (filter 0x8ECF) is in neither h5py nor hdf5plugin, so such files are refused at open
  with a message that says how to convert them, instead of failing at the first read.
* evlib's writer: `/events/{xs,ys,ts,ps}`, `ts` float µs, `ps` ±1 or 0/1.

Checkpoints are event indexes: HDF5 datasets are random access, so a checkpoint costs
nothing to resume. Blocks are aligned to the datasets' chunk length so that each
compressed chunk is decoded once.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from evtui.events.errors import MissingDependency, RecordingError
from evtui.events.io.base import EventReader, EventWriter, RecordingInfo
from evtui.events.io.numpy_files import float_time_scale, pack_columns
from evtui.events.types import Block, Checkpoint

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
ECF_FILTER_ID = 0x8ECF
"""Prophesee's ECF codec (36559): registered with the HDF Group, shipped only by Metavision."""

CHUNK_EVENTS = 1 << 16
"""Writer chunk length: big enough for Zstd to find structure, small enough to seek."""

_MS_INDEX_LIMIT = 1 << 27
"""ms_to_idx entries (~37 h) past which the writer drops the index instead of growing it."""

_BISECT_SPAN = 1 << 16
_LINE = re.compile(r"\s+")


def _import_h5py(path: str | Path) -> Any:
    try:
        import h5py
    except ImportError:
        raise MissingDependency(path, "HDF5 recordings", "hdf5") from None
    with contextlib.suppress(ImportError):
        import hdf5plugin  # noqa: F401 - registers Blosc/Zstd/LZ4/... with HDF5 on import
    return h5py


def _one_line(e: BaseException) -> str:
    """h5py errors can span several lines; a RecordingError is one."""
    text = _LINE.sub(" ", str(e)).strip()
    return text[:200] or type(e).__name__


def _filters(ds: Any) -> list[tuple[int, int, str]]:
    """(id, flags, name) of each filter in a dataset's pipeline."""
    plist = ds.id.get_create_plist()
    out = []
    for i in range(plist.get_nfilters()):
        code, flags, _values, name = plist.get_filter(i)
        text = name.decode("latin-1", "replace").split(";")[0].strip()[:60]
        out.append((int(code), int(flags), text))
    return out


def _int_attr(v: Any) -> int | None:
    try:
        a = np.asarray(v)
        if a.size != 1 or a.dtype.kind not in "iuf":
            return None
        i = int(a.reshape(()))
    except (TypeError, ValueError, OverflowError):
        return None
    return i if 0 < i <= 65536 else None


def geometry_from_attrs(attrs: Mapping[str, Any]) -> tuple[int, int] | None:
    """Sensor size from the attributes writers use: width/height, geometry, resolution..."""
    lower = {str(k).lower(): v for k, v in attrs.items()}
    for wk, hk in (("width", "height"), ("sensor_width", "sensor_height")):
        if wk in lower and hk in lower:
            w, h = _int_attr(lower[wk]), _int_attr(lower[hk])
            if w and h:
                return w, h
    for key in ("geometry", "sensor_resolution", "resolution", "sensor_size", "format"):
        if key not in lower:
            continue
        v = lower[key]
        if isinstance(v, bytes):
            v = v.decode("latin-1", "replace")
        if isinstance(v, str):
            m = re.search(r"width=(\d+).*?height=(\d+)", v)
            if m is not None:
                w, h = int(m.group(1)), int(m.group(2))
            elif m := re.search(r"height=(\d+).*?width=(\d+)", v):
                w, h = int(m.group(2)), int(m.group(1))
            elif m := re.search(r"(\d+)\s*[x×,: ]\s*(\d+)", v):
                w, h = int(m.group(1)), int(m.group(2))
            else:
                continue
            w, h = _int_attr(w), _int_attr(h)
        else:
            a = np.asarray(v).ravel()
            if a.size < 2 or a.dtype.kind not in "iuf":
                continue
            w, h = _int_attr(a[0]), _int_attr(a[1])
        if w and h:
            return w, h
    return None


def _attr_text(attrs: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, bytes):
            v = v.decode("latin-1", "replace")
        if isinstance(v, str | int | float | np.generic) or (
            isinstance(v, np.ndarray) and v.size <= 8
        ):
            out[str(k)] = str(v.tolist() if isinstance(v, np.ndarray) else v)[:200]
    return out


class Hdf5Reader(EventReader):
    """DSEC, Prophesee (non-ECF) and evlib HDF5 event files, sliced per chunk-aligned block."""

    format = "hdf5"
    description = "HDF5 events (DSEC /events + t_offset, Prophesee /CD/events, evlib)"
    extensions = (".h5", ".hdf5")

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        # The superblock may follow a user block of 512, 1024, 2048... bytes.
        at = 0
        while at + len(HDF5_MAGIC) <= len(head):
            if head[at : at + len(HDF5_MAGIC)] == HDF5_MAGIC:
                return True
            at = 512 if at == 0 else at * 2
        return False

    def _open(self) -> RecordingInfo:
        h5py = _import_h5py(self.path)
        self._h5py = h5py
        try:
            self._file = h5py.File(self.path, "r", rdcc_nbytes=8 << 20)
        except FileNotFoundError:
            raise RecordingError(self.path, "no such file") from None
        except (OSError, ValueError, RuntimeError, KeyError) as e:
            raise RecordingError(
                self.path, f"not a readable HDF5 file ({_one_line(e)})", 0
            ) from None
        try:
            return self._open_layout()
        except RecordingError:
            self._file.close()
            raise
        except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
            self._file.close()
            raise RecordingError(self.path, f"corrupt HDF5 file ({_one_line(e)})", 0) from None

    def _dataset(self, name: str) -> Any | None:
        obj = self._file.get(name)
        return obj if isinstance(obj, self._h5py.Dataset) else None

    def _open_layout(self) -> RecordingInfo:
        f = self._file
        self._t_offset = 0
        self._ms_to_idx: np.ndarray | None = None
        self._compound: Any | None = None
        self._t_scale: float | None = None
        header: dict[str, str] = _attr_text(f.attrs)
        attrs: dict[str, Any] = dict(f.attrs)
        ev = f.get("events")
        names = set(ev.keys()) if isinstance(ev, self._h5py.Group) else set()
        if {"x", "y", "t", "p"} <= names:
            layout = "dsec"
            cols = [self._dataset(f"events/{k}") for k in ("t", "x", "y", "p")]
        elif {"xs", "ys", "ts", "ps"} <= names:
            layout = "evlib"
            cols = [self._dataset(f"events/{k}") for k in ("ts", "xs", "ys", "ps")]
        elif self._dataset("CD/events") is not None:
            layout = "prophesee"
            cols = []
        else:
            found = ", ".join(sorted(f.keys())) or "nothing"
            raise RecordingError(
                self.path,
                f"no event datasets found (top level holds: {found}); expected "
                "/events/{x,y,t,p} (DSEC), /CD/events (Prophesee) or /events/{xs,ys,ts,ps}",
            )
        header["layout"] = layout
        if layout == "prophesee":
            ds = self._dataset("CD/events")
            self._check_filters(ds, "/CD/events")
            fields = ds.dtype.names or ()
            if ds.ndim != 1 or not {"x", "y", "p", "t"} <= set(fields):
                raise RecordingError(
                    self.path,
                    f"/CD/events has dtype {ds.dtype} and shape {ds.shape}; expected a 1-D "
                    "compound dataset with fields x, y, p, t",
                )
            self._compound = ds
            self._columns: list[Any] = []
            count = ds.shape[0]
            self._chunk = ds.chunks[0] if ds.chunks else None
            attrs.update(f["CD"].attrs)
        else:
            for ds, role in zip(cols, "txyp", strict=True):
                where = ds.name if ds is not None else f"/events/{role}"
                if ds is None or ds.ndim != 1 or ds.dtype.kind not in "biuf":
                    raise RecordingError(
                        self.path,
                        f"{where} is not a 1-D numeric dataset; expected one value per event",
                    )
                if role != "p" and ds.dtype.kind == "b":
                    raise RecordingError(self.path, f"{where} is boolean, expected numbers")
                self._check_filters(ds, ds.name)
            self._columns = cols
            counts = [c.shape[0] for c in cols]
            count = min(counts)
            if max(counts) != count:
                self.diagnostics.add("events missing a field dropped", max(counts) - count)
            self._chunk = cols[0].chunks[0] if cols[0].chunks else None
            attrs.update(ev.attrs)
            if layout == "dsec":
                self._read_dsec_index(count)
                header["t_offset"] = str(self._t_offset)
                if cols[0].dtype.kind == "f" and count:
                    self._t_scale = float_time_scale(cols[0][: min(count, 65536)])
        self._count = count
        header["events"] = str(count)
        size = geometry_from_attrs(attrs)
        w, h = size if size else (None, None)
        return RecordingInfo(self.path, self.format, w, h, header, "header" if size else "unknown")

    def _read_dsec_index(self, count: int) -> None:
        off = self._dataset("t_offset")
        if off is None:
            off = self._dataset("events/t_offset")
        if off is not None:
            v = np.asarray(off[()])
            if v.size != 1 or v.dtype.kind not in "iu":
                raise RecordingError(
                    self.path, f"/t_offset is {v.dtype} {v.shape}, expected one integer"
                )
            self._t_offset = int(v.reshape(()))
        ms = self._dataset("ms_to_idx")
        if ms is None:
            ms = self._dataset("events/ms_to_idx")
        if ms is not None and ms.ndim == 1 and ms.dtype.kind in "iu" and ms.shape[0] > 0:
            with contextlib.suppress(OSError, ValueError):
                # ~8 bytes per ms of recording: 29 MB per hour, small enough to keep.
                self._ms_to_idx = np.clip(ms[()].astype(np.int64), 0, count)

    def _check_filters(self, ds: Any, where: str) -> None:
        """Fail at open, with what to do, when a dataset's codec is not available here."""
        for code, _flags, name in _filters(ds):
            if code == ECF_FILTER_ID:
                raise RecordingError(
                    self.path,
                    f"{where} uses Prophesee's ECF compression filter (id 0x8ECF), which "
                    "h5py/hdf5plugin do not provide; convert the file with Metavision "
                    "(e.g. to RAW or DAT) or with evlib (evlib reads ECF), then open that",
                )
            if not self._h5py.h5z.filter_avail(code):
                try:  # an optional filter may have been skipped for every chunk
                    ds[:1]
                except (OSError, ValueError, RuntimeError):
                    hint = "; pip install hdf5plugin" if code >= 256 else ""
                    raise RecordingError(
                        self.path,
                        f"{where} uses HDF5 filter {code} ({name or 'unnamed'}), which is not "
                        f"available here{hint}",
                    ) from None

    # --- decoding -------------------------------------------------------------------------

    def _step(self) -> int:
        step = max(1024, self.block_bytes // 16)
        if self._chunk:
            step = max(self._chunk, step // self._chunk * self._chunk)
        return step

    def _read(self, i: int, j: int) -> np.ndarray:
        if self._compound is not None:
            rows = self._compound[i:j]
            return pack_columns(
                rows["t"], rows["x"], rows["y"], rows["p"], diagnostics=self.diagnostics
            )
        t, x, y, p = (c[i:j] for c in self._columns)
        ev = pack_columns(t, x, y, p, t_scale=self._t_scale, diagnostics=self.diagnostics)
        if self._t_offset:
            ev["t"] += self._t_offset
        return ev

    def _blocks(self, start: Checkpoint | None) -> Iterator[Block]:
        i = start.position if start is not None else 0
        step = self._step()
        while i < self._count:
            j = min(self._count, i + step)
            try:
                ev = self._read(i, j)
            except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
                raise self._read_error(i, j, e) from None
            yield Block(Checkpoint(i, (), i), ev)
            i = j

    def _read_error(self, i: int, j: int, e: BaseException) -> RecordingError:
        """Name the bad chunk's byte offset: cheap to find once, and what a user can act on."""
        dsets = [self._compound] if self._compound is not None else self._columns
        for ds in dsets:
            chunk = ds.chunks[0] if ds.chunks else None
            if chunk is None:
                continue
            for c in range(i // chunk * chunk, j, chunk):
                try:
                    ds[c : min(c + chunk, ds.shape[0])]
                except (OSError, ValueError, RuntimeError):
                    offset = None
                    with contextlib.suppress(Exception):
                        offset = int(ds.id.get_chunk_info_by_coord((c,)).byte_offset)
                    return RecordingError(
                        self.path,
                        f"{ds.name}: cannot decode the chunk holding events {c}.."
                        f"{c + chunk - 1} ({_one_line(e)})",
                        offset,
                    )
        return RecordingError(self.path, f"cannot read events {i}..{j - 1} ({_one_line(e)})")

    # --- seeking --------------------------------------------------------------------------

    def _t_at(self, i: int, j: int) -> np.ndarray:
        """Absolute µs of events i..j-1, as `_read` would give them."""
        if self._compound is not None:
            return self._compound.fields("t")[i:j].astype(np.int64)
        t = self._columns[0][i:j]
        if t.dtype.kind == "f":
            return np.rint(t * (self._t_scale or 1)).astype(np.int64)
        return t.astype(np.int64) + self._t_offset

    def time_to_index(self, t_us: int) -> int:
        """Index of the first event with t >= t_us, for a time-sorted file (as DSEC is).

        O(1) reads through `/ms_to_idx` when the file has one (checked against the data, so
        a wrong index only costs speed), otherwise a bisection over `t` reading a few chunks.
        """
        lo, hi = 0, self._count
        ms = self._ms_to_idx
        if ms is not None and self._compound is None:
            k = (int(t_us) - self._t_offset) // 1000
            if k >= 0:
                a = int(ms[min(k, len(ms) - 1)])
                b = int(ms[k + 1]) if k + 1 < len(ms) else self._count
                ok_lo = a == 0 or int(self._t_at(a - 1, a)[0]) < t_us
                ok_hi = b >= self._count or int(self._t_at(b, b + 1)[0]) >= t_us
                if a <= b and ok_lo and ok_hi:
                    lo, hi = a, b
        while hi - lo > _BISECT_SPAN:
            mid = (lo + hi) // 2
            if int(self._t_at(mid, mid + 1)[0]) < t_us:
                lo = mid + 1
            else:
                hi = mid
        return lo + int(np.searchsorted(self._t_at(lo, hi), t_us, side="left"))

    def checkpoint_at(self, t_us: int) -> Checkpoint:
        """A checkpoint whose first event is the first at or after `t_us`."""
        i = self.time_to_index(t_us)
        return Checkpoint(i, (), i)

    def close(self) -> None:
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()


class Hdf5Writer(EventWriter):
    """DSEC layout, streamed into resizable chunked datasets, with `/ms_to_idx`.

    `t` is stored as int64 µs relative to `/t_offset` (the first event's time floored
    to the ms): DSEC uses u32, which cannot hold the small backward steps EVT3 streams
    have. Compression: Zstd (after byte shuffle) when hdf5plugin is installed, else gzip;
    option `compression` = "zstd" | "gzip" | "none". Output bytes are deterministic for
    the same input (no object timestamps). Trigger edges have no place in the DSEC
    layout and are not written.
    """

    format = "hdf5"
    extensions = (".h5", ".hdf5")

    def __init__(self, path: str | Path, width: int, height: int, **options: Any) -> None:
        super().__init__(path, width, height, **options)
        h5py = _import_h5py(self.path)
        self._chunk = int(options.get("chunk_events", CHUNK_EVENTS))
        self._flush_at = self._chunk * 16
        comp = self._compression(str(options.get("compression", "zstd")))
        self._f = h5py.File(self.path, "w", libver="earliest")
        try:
            self._f.attrs["width"] = np.int64(self.width)
            self._f.attrs["height"] = np.int64(self.height)
            g = self._f.create_group("events")
            self._ds = {
                name: g.create_dataset(
                    name, shape=(0,), maxshape=(None,), dtype=dtype, chunks=(self._chunk,),
                    track_times=False, **comp,
                )
                for name, dtype in (("x", "<u2"), ("y", "<u2"), ("p", "u1"), ("t", "<i8"))
            }  # fmt: skip
            self._ms = self._f.create_dataset(
                "ms_to_idx", shape=(0,), maxshape=(None,), dtype="<i8", chunks=(4096,),
                track_times=False, **comp,
            )  # fmt: skip
        except BaseException:
            self._f.close()
            raise
        self._buf: dict[str, list[np.ndarray]] = {k: [] for k in self._ds}
        self._buffered = 0
        self._written = 0
        self._t_offset: int | None = None
        self._run_max = np.iinfo(np.int64).min
        self._next_ms = 0
        self._ms_buf: list[np.ndarray] = []
        self._ms_ok = True

    @staticmethod
    def _compression(name: str) -> dict[str, Any]:
        if name == "none":
            return {}
        if name == "zstd":
            try:
                import hdf5plugin
            except ImportError:
                name = "gzip"
            else:
                return {"shuffle": True, **hdf5plugin.Zstd(clevel=3)}
        if name == "gzip":
            return {"shuffle": True, "compression": "gzip", "compression_opts": 4}
        raise ValueError(f"unknown HDF5 compression '{name}' (zstd, gzip, none)")

    def write(self, events: np.ndarray, triggers: np.ndarray | None = None) -> None:
        n = len(events)
        if n == 0:
            return
        t = events["t"].astype(np.int64, copy=False)
        if self._t_offset is None:
            self._t_offset = int(t[0]) // 1000 * 1000
            self._write_t_offset()
        rel = t - self._t_offset
        self._index(rel)
        for name in ("x", "y"):
            self._buf[name].append(np.array(events[name], dtype="<u2"))
        self._buf["p"].append((events["p"] > 0).astype("u1"))
        self._buf["t"].append(rel)
        self._buffered += n
        if self._buffered >= self._flush_at:
            self._flush(final=False)

    def _index(self, rel: np.ndarray) -> None:
        """Extend ms_to_idx: entry k = first event with t >= k ms (a running max tolerates
        EVT3's tiny backward steps; on sorted data it is exactly DSEC's definition)."""
        if not self._ms_ok:
            return
        cm = np.maximum.accumulate(rel)
        np.maximum(cm, self._run_max, out=cm)
        self._run_max = int(cm[-1])
        last = self._run_max // 1000
        if last < self._next_ms:
            return
        if last >= _MS_INDEX_LIMIT:
            self._ms_ok = False  # a time jump of days: bisection will do instead
            self._ms_buf = []
            return
        thresholds = np.arange(self._next_ms, last + 1, dtype=np.int64) * 1000
        base = self._written + self._buffered
        self._ms_buf.append(base + np.searchsorted(cm, thresholds, side="left"))
        self._next_ms = last + 1

    def _flush(self, *, final: bool) -> None:
        if self._buffered == 0 and not (final and self._ms_buf):
            return
        cols = {k: np.concatenate(v) if v else np.zeros(0) for k, v in self._buf.items()}
        n = self._buffered if final else self._buffered // self._chunk * self._chunk
        end = self._written + n
        for name, ds in self._ds.items():
            ds.resize((end,))
            ds[self._written : end] = cols[name][:n]
            rest = cols[name][n:]
            self._buf[name] = [rest] if len(rest) else []
        self._written = end
        self._buffered -= n
        if self._ms_buf:
            ms = np.concatenate(self._ms_buf)
            self._ms_buf = []
            m0 = self._ms.shape[0]
            self._ms.resize((m0 + len(ms),))
            self._ms[m0:] = ms

    def _write_t_offset(self) -> None:
        """Written with the first events, so that a file cut short keeps absolute times."""
        self._f.create_dataset("t_offset", data=np.int64(self._t_offset or 0), track_times=False)

    def _finish(self) -> None:
        try:
            self._flush(final=True)
            if not self._ms_ok:
                del self._f["ms_to_idx"]
            if self._t_offset is None:
                self._write_t_offset()
        finally:
            self._f.close()
