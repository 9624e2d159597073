"""Prophesee DAT: a `%` header, a type/size byte pair, then 8-byte CD records.

Each record is `<u4 t` (µs, wraps every 2^32 µs ≈ 71.6 min) and `<u4` packing x in
bits 0-13, y in bits 14-27 and polarity in bits 28-31. The wrap is undone with a
running count carried in each block's checkpoint, so any block can be decoded alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np

from evtui.events.errors import RecordingError
from evtui.events.io.base import EventReader, EventWriter, RecordingInfo
from evtui.events.io.percent_header import parse_percent_header, read_percent_header
from evtui.events.types import EVENT_DTYPE, Block, Checkpoint

EVENT_2D = 0x00
EVENT_CD = 0x0C
_TYPE_NAMES = {
    EVENT_2D: "Event2D",
    EVENT_CD: "EventCD",
    0x0E: "EventExtTrigger",
    0x28: "optical flow",
}
RECORD_BYTES = 8

_WRAP = 1 << 32
_HALF = 1 << 31
"""A step larger than half the 32-bit range is a wrap (backward) or an event that arrived
just before a wrap (forward), never a real gap."""
_NO_PREVIOUS = -1

_XY_MAX = (1 << 14) - 1

# Header keys that only DAT writers use; RAW headers carry `evt` or `format` instead.
_DAT_KEYS = ("version", "width", "height")


def _header_geometry(keys: dict[str, str]) -> tuple[int, int] | None:
    """`% Width`/`% Height` (Metavision, faery) or `% geometry WxH`; None when absent."""
    try:
        if "width" in keys and "height" in keys:
            w, h = int(keys["width"]), int(keys["height"])
        elif "geometry" in keys:
            a, _, b = keys["geometry"].lower().partition("x")
            w, h = int(a), int(b)
        else:
            return None
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None


class DatReader(EventReader):
    """Prophesee DAT files of CD (0x0C) or legacy Event2D (0x00) records."""

    format = "dat"
    description = "Prophesee DAT (CD/Event2D records, 8 bytes each)"
    extensions = (".dat",)

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        parsed = parse_percent_header(head)
        if parsed is None:
            return False
        keys, _ = parsed
        if not keys or "evt" in keys or "format" in keys:
            return False
        if keys.get("data", "").lower().startswith("file containing"):
            return True
        return any(k in keys for k in _DAT_KEYS)

    def _open(self) -> RecordingInfo:
        try:
            with self.path.open("rb") as f:
                keys, payload = read_percent_header(f, self.path)
                type_size = f.read(2)
                f.seek(0, 2)
                self._file_size = f.tell()
        except OSError as e:
            raise RecordingError(self.path, f"cannot read: {e.strerror or e}") from None
        self._data_start = payload + 2
        self.event_type: int | None = None
        if len(type_size) < 2:
            # A header with no records: an empty recording (or a cut one).
            self.diagnostics.add("truncated trailing bytes", len(type_size), payload)
            self._data_start = self._file_size
        else:
            etype, esize = type_size[0], type_size[1]
            if etype not in (EVENT_2D, EVENT_CD):
                name = _TYPE_NAMES.get(etype, "unknown")
                raise RecordingError(
                    self.path,
                    f"DAT event type byte 0x{etype:02X} ({name}) is not supported "
                    "(expected 0x00 Event2D or 0x0C EventCD)",
                    payload,
                )
            if esize != RECORD_BYTES:
                raise RecordingError(
                    self.path,
                    f"DAT event size byte is {esize}, expected {RECORD_BYTES}",
                    payload + 1,
                )
            self.event_type = etype
        size = _header_geometry(keys)
        return RecordingInfo(
            self.path,
            self.format,
            size[0] if size else None,
            size[1] if size else None,
            keys,
            "header" if size else "unknown",
        )

    def _blocks(self, start: Checkpoint | None) -> Iterator[Block]:
        if start is None:
            start = Checkpoint(self._data_start, (0, _NO_PREVIOUS), 0)
        pos = start.position
        if pos < self._data_start or (pos - self._data_start) % RECORD_BYTES:
            raise RecordingError(self.path, "checkpoint is not at a DAT record boundary", pos)
        wraps, prev = start.state if len(start.state) == 2 else (0, _NO_PREVIOUS)
        before = start.events_before
        step = max(RECORD_BYTES, self.block_bytes // RECORD_BYTES * RECORD_BYTES)
        # One input buffer for the whole pass: events never point into it.
        buf = bytearray(step)
        with self.path.open("rb") as f:
            f.seek(pos)
            while True:
                got = f.readinto(buf)
                n = got // RECORD_BYTES
                if got % RECORD_BYTES:
                    self.diagnostics.add(
                        "truncated trailing bytes", got % RECORD_BYTES, pos + n * RECORD_BYTES
                    )
                if n == 0:
                    return
                events, wraps_after, last = self._decode(buf, n, wraps, prev, pos)
                yield Block(Checkpoint(pos, (wraps, prev), before), events)
                wraps, prev = wraps_after, last
                before += n
                pos += n * RECORD_BYTES
                if n * RECORD_BYTES < step:
                    return

    def _decode(
        self, buf: bytes | bytearray, n: int, wraps: int, prev: int, pos: int
    ) -> tuple[np.ndarray, int, int]:
        """Records -> events, vectorised; returns the wrap count and raw t after the block."""
        words = np.frombuffer(buf, "<u4", count=2 * n).reshape(n, 2)
        t32 = words[:, 0]
        packed = words[:, 1]
        out = np.empty(n, EVENT_DTYPE)
        first, last = int(t32[0]), int(t32[-1])
        wraps_in = wraps
        if prev != _NO_PREVIOUS:
            wraps_in += (prev - first > _HALF) - (first - prev > _HALF)
        if int(t32.max()) - int(t32.min()) <= _HALF:
            # No step inside the block can be a wrap: the common, fast path.
            out["t"] = t32
            wraps_out = wraps_in
            if wraps_in:
                out["t"] += wraps_in * _WRAP
        else:
            t = t32.astype(np.int64)
            d = np.diff(t)
            step = np.empty(n, np.int64)
            step[0] = wraps_in
            step[1:] = d < -_HALF
            step[1:] -= d > _HALF
            np.cumsum(step, out=step)
            wraps_out = int(step[-1])
            step <<= 32
            t += step
            out["t"] = t
        # x and y as one uint32 (x in the low half, y in the high half), written in place.
        u32 = out.view("<u4").reshape(n, 4)
        xy = u32[:, 2]
        np.bitwise_and(packed, 0x3FFF, out=xy)
        hi = packed << 2
        hi &= 0x3FFF0000
        xy |= hi
        pol = np.right_shift(packed, 28, out=u32[:, 3])  # p byte plus zeroed padding
        if int(pol.max()) > 1:
            odd = pol > 1
            self.diagnostics.add("polarity values other than 0/1 (read as ON)", int(odd.sum()), pos)
            pol[odd] = 1
        return out, wraps_out, last


class DatWriter(EventWriter):
    """Writes DAT v2 with a CD (0x0C, default) or Event2D (0x00) type byte.

    Timestamps are stored modulo 2^32 µs, as the format does; readers unwrap them.
    """

    format = "dat"
    extensions = (".dat",)

    def __init__(self, path: Any, width: int, height: int, **options: Any) -> None:
        super().__init__(path, width, height, **options)
        unknown = set(options) - {"event_type"}
        if unknown:
            raise RecordingError(self.path, f"DAT writer has no option {sorted(unknown)[0]!r}")
        etype = int(options.get("event_type", EVENT_CD))
        if etype not in (EVENT_2D, EVENT_CD):
            raise RecordingError(
                self.path, f"DAT event_type must be 0x00 or 0x0C, got 0x{etype:02X}"
            )
        if not (0 < self.width <= _XY_MAX + 1 and 0 < self.height <= _XY_MAX + 1):
            raise RecordingError(
                self.path, f"DAT stores 14-bit x/y; {self.width}x{self.height} does not fit"
            )
        kind = "CD" if etype == EVENT_CD else "Event2D"
        header = (
            f"% Data file containing {kind} events\n"
            "% Version 2\n"
            f"% Width {self.width}\n"
            f"% Height {self.height}\n"
        ).encode("ascii")
        self._f: BinaryIO = self.path.open("wb")
        self._f.write(header + bytes([etype, RECORD_BYTES]))

    def write(self, events: np.ndarray, triggers: np.ndarray | None = None) -> None:
        """Append events; triggers have no place in a CD file and are ignored."""
        n = len(events)
        if n == 0:
            return
        t = events["t"]
        x = events["x"]
        y = events["y"]
        if int(t.min()) < 0:
            raise RecordingError(self.path, "DAT cannot store negative timestamps")
        if int(x.max()) > _XY_MAX or int(y.max()) > _XY_MAX:
            raise RecordingError(self.path, "DAT stores 14-bit x/y; an event is out of range")
        rec = np.empty((n, 2), "<u4")
        rec[:, 0] = t & 0xFFFFFFFF
        packed = rec[:, 1]
        packed[:] = x
        packed |= y.astype("<u4") << 14
        packed |= (events["p"] != 0).astype("<u4") << 28
        self._f.write(rec.tobytes())

    def _finish(self) -> None:
        self._f.close()
