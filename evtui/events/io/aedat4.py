"""iniVation AEDAT 4.0: an IO-header FlatBuffer with an XML stream list, then packets.

A packet is `<i4 stream id, <i4 size` and a body compressed as the IO header says
(none, LZ4 frame, Zstd frame). A decompressed body is a size-prefixed FlatBuffer whose
root table's first field is a vector: 16-byte structs (t i64, x i16, y i16, on u8) for
EVTS streams, tables (t i64, source i8) for TRIG streams. FlatBuffers are read here with
a few bounds-checked helpers (no flatbuffers dependency); every offset is checked against
the buffer, so a corrupt packet is reported with its byte offset instead of crashing.

Events come from the first EVTS stream (lowest id). TRIG packets become trigger edges:
external-signal sources on channel 0, external-generator sources on channel 1
(rising/pulse = 1, falling = 0). Timestamp resets and frame/exposure markers, IMU and
frame packets are skipped.
"""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from evtui.events.errors import MissingDependency, RecordingError
from evtui.events.io.base import EventReader, EventWriter, RecordingInfo
from evtui.events.types import EVENT_DTYPE, TRIGGER_DTYPE, Block, Checkpoint, empty_triggers

MAGIC = b"#!AER-DAT4.0\r\n"
DATA_START_MIN = len(MAGIC) + 4

# IO header compression enum.
_COMPRESSION_NAMES = {0: "none", 1: "LZ4", 2: "LZ4 (high)", 3: "Zstd", 4: "Zstd (high)"}

_EVENT_BYTES = 16
_NO_WORDS = np.zeros(0, "<u8")

# dv TriggerSource -> (channel, value); other sources are not edges of an external line.
_TRIGGER_EDGES = {1: (0, 1), 2: (0, 0), 3: (0, 1), 4: (1, 1), 5: (1, 0)}


class _Corrupt(Exception):
    """A FlatBuffer offset or size that does not fit its buffer."""


def _u16(buf: bytes, pos: int) -> int:
    if pos < 0 or pos + 2 > len(buf):
        raise _Corrupt(f"offset {pos} outside the {len(buf)}-byte buffer")
    return int.from_bytes(buf[pos : pos + 2], "little")


def _u32(buf: bytes, pos: int) -> int:
    if pos < 0 or pos + 4 > len(buf):
        raise _Corrupt(f"offset {pos} outside the {len(buf)}-byte buffer")
    return int.from_bytes(buf[pos : pos + 4], "little")


def _i32(buf: bytes, pos: int) -> int:
    if pos < 0 or pos + 4 > len(buf):
        raise _Corrupt(f"offset {pos} outside the {len(buf)}-byte buffer")
    return int.from_bytes(buf[pos : pos + 4], "little", signed=True)


def _root(buf: bytes, size_prefixed: bool) -> int:
    """Position of the root table."""
    base = 0
    if size_prefixed:
        if _u32(buf, 0) > len(buf) - 4:
            raise _Corrupt(f"size prefix {_u32(buf, 0)} exceeds the {len(buf)}-byte buffer")
        base = 4
    return base + _u32(buf, base)


def _field(buf: bytes, table: int, index: int) -> int | None:
    """Position of field `index` of the table at `table`, None when the field is absent."""
    vtable = table - _i32(buf, table)
    vt_size = _u16(buf, vtable)
    table_size = _u16(buf, vtable + 2)
    if vt_size < 4 or vt_size % 2 or vtable + vt_size > len(buf):
        raise _Corrupt(f"vtable at {vtable} has a bad size {vt_size}")
    if table + table_size > len(buf):
        raise _Corrupt(f"table at {table} runs past the buffer")
    slot = 4 + 2 * index
    if slot + 2 > vt_size:
        return None
    off = _u16(buf, vtable + slot)
    if off == 0:
        return None
    if off < 4 or off >= table_size:
        raise _Corrupt(f"field {index} offset {off} outside its {table_size}-byte table")
    return table + off


def _vector(buf: bytes, field: int, elem_size: int) -> tuple[int, int]:
    """(first element position, count) of the vector referenced at `field`."""
    vec = field + _u32(buf, field)
    count = _u32(buf, vec)
    start = vec + 4
    if start + count * elem_size > len(buf):
        raise _Corrupt(f"vector of {count} x {elem_size} bytes at {vec} runs past the buffer")
    return start, count


def _string(buf: bytes, field: int) -> bytes:
    start, n = _vector(buf, field, 1)
    return buf[start : start + n]


def _gather(u8: np.ndarray, pos: np.ndarray, dtype: str) -> np.ndarray:
    """Values of `dtype` at byte positions `pos` (already bounds-checked)."""
    size = np.dtype(dtype).itemsize
    return u8[pos[:, None] + np.arange(size)].view(dtype).reshape(len(pos))


def _decompressor(path: Path, compression: int) -> Callable[[bytes], bytes]:
    """The body decoder for the file's compression, imported only when needed."""
    if compression == 0:
        return bytes
    if compression in (1, 2):
        try:
            import lz4.frame
        except ImportError:
            raise MissingDependency(path, "AEDAT4 LZ4 packets", "aedat") from None
        return lz4.frame.decompress
    if compression in (3, 4):
        try:
            import zstandard
        except ImportError:
            raise MissingDependency(path, "AEDAT4 Zstd packets", "aedat") from None
        dctx = zstandard.ZstdDecompressor()

        def unzstd(body: bytes) -> bytes:
            try:
                return dctx.decompress(body)
            except zstandard.ZstdError:
                # dv may write frames without a content size; stream them instead.
                return dctx.decompressobj().decompress(body)

        return unzstd
    msg = f"unknown AEDAT4 compression {compression} (expected 0-4)"
    raise RecordingError(path, msg, DATA_START_MIN)


def _streams(path: Path, xml: bytes) -> dict[int, tuple[str, int | None, int | None]]:
    """Stream id -> (type identifier, sizeX, sizeY) from the infoNode XML."""
    try:
        root = ET.fromstring(xml.decode("utf-8", "replace"))
    except ET.ParseError as e:
        msg = f"stream description XML is malformed: {e}"
        raise RecordingError(path, msg, DATA_START_MIN) from None
    out: dict[int, tuple[str, int | None, int | None]] = {}
    outinfo = next((n for n in root.iter("node") if n.get("name") == "outInfo"), None)
    if root.tag != "dv" or outinfo is None:
        raise RecordingError(path, "stream description has no <dv>/outInfo node", DATA_START_MIN)

    def attr(node: ET.Element, key: str) -> str | None:
        for a in node.findall("attr"):
            if a.get("key") == key:
                return (a.text or "").strip()
        return None

    for node in outinfo.findall("node"):
        try:
            sid = int(node.get("name", ""))
        except ValueError:
            continue
        kind = attr(node, "typeIdentifier") or ""
        w = h = None
        info = next((n for n in node.findall("node") if n.get("name") == "info"), None)
        if info is not None:
            try:
                w, h = int(attr(info, "sizeX") or ""), int(attr(info, "sizeY") or "")
            except ValueError:
                w = h = None
        out[sid] = (kind, w, h)
    return out


class Aedat4Reader(EventReader):
    """AEDAT 4.0 files (DV software, dv-processing, faery): events and trigger edges."""

    format = "aedat4"
    description = "iniVation AEDAT 4.0 (FlatBuffer packets, LZ4/Zstd)"
    extensions = (".aedat4",)

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return head.startswith(MAGIC)

    def _open(self) -> RecordingInfo:
        path = self.path
        try:
            with path.open("rb") as f:
                head = f.read(DATA_START_MIN)
                if not head.startswith(MAGIC):
                    raise RecordingError(path, f"not AEDAT 4.0: first bytes {head[:14]!r}", 0)
                if len(head) < DATA_START_MIN:
                    raise RecordingError(path, "file ends inside the IO header", len(head))
                n = int.from_bytes(head[len(MAGIC) :], "little", signed=True)
                f.seek(0, 2)
                size = f.tell()
                if n < 8 or DATA_START_MIN + n > size:
                    raise RecordingError(
                        path, f"IO header size {n} does not fit the {size}-byte file", len(MAGIC)
                    )
                f.seek(DATA_START_MIN)
                header = f.read(n)
        except OSError as e:
            raise RecordingError(path, f"cannot read: {e.strerror or e}") from None
        try:
            root = _root(header, size_prefixed=False)
            at = _field(header, root, 0)
            compression = _i32(header, at) if at is not None else 0
            at = _field(header, root, 1)
            table_pos = -1
            if at is not None:
                if at + 8 > len(header):
                    raise _Corrupt("data table position runs past the header")
                table_pos = int.from_bytes(header[at : at + 8], "little", signed=True)
            at = _field(header, root, 2)
            xml = _string(header, at) if at is not None else None
        except _Corrupt as e:
            msg = f"IO header FlatBuffer is corrupt: {e}"
            raise RecordingError(path, msg, DATA_START_MIN) from None
        if xml is None:
            raise RecordingError(path, "IO header has no stream description", DATA_START_MIN)
        self._decompress = _decompressor(path, compression)
        self._streams = _streams(path, xml)
        self._data_start = DATA_START_MIN + n
        self._file_size = size
        self._end = size
        if table_pos >= 0:
            if self._data_start <= table_pos <= size:
                self._end = table_pos
            else:
                self.diagnostics.add(
                    "data table position outside the file (ignored)", 1, DATA_START_MIN
                )
        events = sorted(sid for sid, (kind, _, _) in self._streams.items() if kind == "EVTS")
        self._events_id = events[0] if events else None
        w = h = None
        if self._events_id is not None:
            _, w, h = self._streams[self._events_id]
        meta = {
            "compression": _COMPRESSION_NAMES.get(compression, str(compression)),
            "streams": ",".join(f"{s}:{k}" for s, (k, _, _) in sorted(self._streams.items())),
        }
        if not (w and h and w > 0 and h > 0):
            return RecordingInfo(path, self.format, None, None, meta, "unknown")
        return RecordingInfo(path, self.format, w, h, meta, "header")

    def _blocks(self, start: Checkpoint | None) -> Iterator[Block]:
        pos = start.position if start is not None else self._data_start
        before = start.events_before if start is not None else 0
        if not self._data_start <= pos <= self._end:
            raise RecordingError(self.path, "checkpoint outside the packet area", pos)
        with self.path.open("rb") as f:
            f.seek(pos)
            while pos < self._end:
                block_pos = pos
                events: list[np.ndarray] = []
                triggers: list[np.ndarray] = []
                decoded = 0
                # Bounded by decoded bytes too: packets inflate 2-5x, and fresh arrays much
                # past ~8 MB cost page faults that halve the decode speed.
                while pos < self._end and max(pos - block_pos, decoded) < self.block_bytes:
                    had = len(events)
                    read = self._packet(f, pos, events, triggers)
                    if read is None:
                        pos = self._end
                        break
                    pos += read
                    if len(events) > had:
                        decoded += events[-1].nbytes
                # Joined as plain 64-bit words: numpy copies padded structs field by field,
                # ~10x slower than this memcpy.
                if events:
                    ev = self._normalise(np.concatenate(events), block_pos)
                else:
                    ev = np.zeros(0, EVENT_DTYPE)
                trig = (
                    np.concatenate(triggers, dtype=TRIGGER_DTYPE) if triggers else empty_triggers()
                )
                yield Block(Checkpoint(block_pos, (), before), ev, trig)
                before += len(ev)

    def _packet(
        self, f: BinaryIO, pos: int, events: list[np.ndarray], triggers: list[np.ndarray]
    ) -> int | None:
        """Decode the packet at `pos` into the lists; its length, None at a cut-off end."""
        head = f.read(8)
        if len(head) < 8:
            self.diagnostics.add("truncated trailing bytes", len(head), pos)
            return None
        sid, size = struct.unpack("<ii", head)
        if size < 0:
            raise RecordingError(self.path, f"packet size {size} is negative", pos + 4)
        if pos + 8 + size > self._end:
            if self._end == self._file_size:
                self.diagnostics.add("truncated trailing bytes", self._file_size - pos, pos)
                return None
            raise RecordingError(
                self.path,
                f"packet of {size} bytes runs past the data table at byte {self._end}",
                pos,
            )
        stream = self._streams.get(sid)
        kind = stream[0] if stream else None
        if sid == self._events_id or kind == "TRIG":
            body = f.read(size)
            if len(body) < size:  # the file shrank under us
                self.diagnostics.add("truncated trailing bytes", 8 + len(body), pos)
                return None
            if sid == self._events_id:
                ev = self._events(body, pos)
                if len(ev):
                    events.append(ev)
            else:
                trig = self._triggers(body, pos)
                if len(trig):
                    triggers.append(trig)
        else:
            if stream is None:
                self.diagnostics.add("packets of an undeclared stream id skipped", 1, pos)
            elif kind == "EVTS":
                self.diagnostics.add("packets of a second event stream skipped", 1, pos)
            f.seek(size, 1)
        return 8 + size

    def _body(self, body: bytes, pos: int, identifier: bytes) -> tuple[bytes, int | None]:
        """Decompress and find the root's first field; (buffer, field position or None)."""
        try:
            buf = self._decompress(body)
        except Exception as e:  # lz4/zstandard raise their own types; all mean a bad body
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise RecordingError(
                self.path, f"packet body does not decompress: {msg}", pos
            ) from None
        try:
            root = _root(buf, size_prefixed=True)
            if buf[8:12] != identifier:
                raise _Corrupt(f"identifier {bytes(buf[8:12])!r}, expected {identifier!r}")
            return buf, _field(buf, root, 0)
        except _Corrupt as e:
            raise RecordingError(self.path, f"packet FlatBuffer is corrupt: {e}", pos) from None

    def _events(self, body: bytes, pos: int) -> np.ndarray:
        buf, at = self._body(body, pos, b"EVTS")
        if at is None:
            self.diagnostics.add("event packets without events", 1, pos)
            return _NO_WORDS
        try:
            first, count = _vector(buf, at, _EVENT_BYTES)
        except _Corrupt as e:
            raise RecordingError(self.path, f"packet FlatBuffer is corrupt: {e}", pos) from None
        # The dv Event struct has EVENT_DTYPE's layout (x/y as int16: negative ones become
        # large uint16 and fall outside the sensor), so the words are the events.
        return np.frombuffer(buf, "<u8", 2 * count, first)

    def _normalise(self, words: np.ndarray, pos: int) -> np.ndarray:
        """Events from joined struct words: polarity to 0/1, padding bytes to zero."""
        ev = words.view(EVENT_DTYPE)
        p = ev["p"].view(np.uint8)
        if int(p.max()) > 1:
            odd = p > 1
            self.diagnostics.add("polarity bytes other than 0/1 (read as ON)", int(odd.sum()), pos)
            p[odd] = 1
        words[1::2] &= 0xFF_FFFF_FFFF
        return ev

    def _triggers(self, body: bytes, pos: int) -> np.ndarray:
        buf, at = self._body(body, pos, b"TRIG")
        if at is None:
            return empty_triggers()
        try:
            first, count = _vector(buf, at, 4)
        except _Corrupt as e:
            raise RecordingError(self.path, f"packet FlatBuffer is corrupt: {e}", pos) from None
        if count == 0:
            return empty_triggers()
        u8 = np.frombuffer(buf, np.uint8)
        size = len(buf)
        slots = first + 4 * np.arange(count, dtype=np.int64)
        tables = slots + np.frombuffer(buf, "<u4", count, first).astype(np.int64)
        bad = "trigger table offsets outside the buffer"
        if int(tables.max()) + 4 > size:
            raise RecordingError(self.path, f"packet FlatBuffer is corrupt: {bad}", pos)
        vtables = tables - _gather(u8, tables, "<i4")
        if int(vtables.min()) < 0 or int(vtables.max()) + 4 > size:
            raise RecordingError(self.path, f"packet FlatBuffer is corrupt: {bad}", pos)
        vt_size = _gather(u8, vtables, "<u2").astype(np.int64)
        table_size = _gather(u8, vtables + 2, "<u2").astype(np.int64)
        if int((vtables + vt_size).max()) > size or int((tables + table_size).max()) > size:
            raise RecordingError(self.path, f"packet FlatBuffer is corrupt: {bad}", pos)

        def field(index: int, width: int, dtype: str) -> np.ndarray:
            slot = 4 + 2 * index
            has = vt_size >= slot + 2
            off = np.zeros(count, np.int64)
            off[has] = _gather(u8, vtables[has] + slot, "<u2")
            if np.any(off + width > np.where(off > 0, table_size, width)):
                raise RecordingError(self.path, f"packet FlatBuffer is corrupt: {bad}", pos)
            out = np.zeros(count, dtype)
            present = off > 0
            out[present] = _gather(u8, tables[present] + off[present], dtype)
            return out

        t = field(0, 8, "<i8")
        source = field(1, 1, "i1")
        channel = np.full(count, -1, np.int64)
        value = np.zeros(count, np.int8)
        for src, (ch, val) in _TRIGGER_EDGES.items():
            hit = source == src
            channel[hit] = ch
            value[hit] = val
        keep = channel >= 0
        skipped = count - int(keep.sum())
        if skipped:
            self.diagnostics.add("trigger markers that are not signal edges skipped", skipped, pos)
        out = np.zeros(int(keep.sum()), TRIGGER_DTYPE)
        out["t"] = t[keep]
        out["channel"] = channel[keep]
        out["value"] = value[keep]
        return out


# --- writer -----------------------------------------------------------------------------

_WRITER_COMPRESSION = {"none": (0, "NONE"), "lz4": (1, "LZ4"), "zstd": (3, "ZSTD")}
LZ4_LEVEL = 0
ZSTD_LEVEL = 3
PACKET_EVENTS = 16384
"""Events per packet: big enough that per-packet costs vanish, small enough for dv tools."""

_IOHEADER_FIELD_OFFSET = 32  # dataTablePosition, from the size prefix (see _io_header)


def _description(width: int, height: int, compression: str) -> bytes:
    """infoNode XML with one EVTS stream named 'events'; fixed text, no clock."""
    p = "/mainloop/Recorder/outInfo/"
    return (
        '<dv version="2.0">\n'
        f'    <node name="outInfo" path="{p}">\n'
        f'        <node name="0" path="{p}0/">\n'
        f'            <attr key="compression" type="string">{compression}</attr>\n'
        '            <attr key="originalModuleName" type="string">evtui</attr>\n'
        '            <attr key="originalOutputName" type="string">events</attr>\n'
        '            <attr key="typeDescription" type="string">'
        "Array of events (polarity ON/OFF).</attr>\n"
        '            <attr key="typeIdentifier" type="string">EVTS</attr>\n'
        f'            <node name="info" path="{p}0/info/">\n'
        f'                <attr key="sizeX" type="int">{width}</attr>\n'
        f'                <attr key="sizeY" type="int">{height}</attr>\n'
        '                <attr key="source" type="string">evtui</attr>\n'
        '                <attr key="tsOffset" type="long">0</attr>\n'
        "            </node>\n"
        "        </node>\n"
        "    </node>\n"
        "</dv>\n"
    ).encode("ascii")


def _io_header(compression: int, table_pos: int, xml: bytes) -> bytes:
    """Size-prefixed IOHE FlatBuffer laid out as dv does (i64 8-aligned from the prefix).

    Layout from the prefix: 0 size, 4 root offset, 8 "IOHE", 12 vtable (5 x u16), 24 table
    (soffset, compression i32, pad, dataTablePosition i64, description offset), 44 string.
    """
    body = struct.pack(
        "<I4s5H2xiiqI",
        24 - 4,  # root table offset, from byte 4
        b"IOHE",
        10, 20, 4, 8, 16,  # vtable: its size, table size, field offsets
        24 - 12,  # table -> vtable
        compression,
        table_pos,
        4,  # description string right after the table
    )  # fmt: skip
    data = body + struct.pack("<I", len(xml)) + xml + b"\0"
    data += b"\0" * (-(len(data) + 4) % 8)
    return struct.pack("<I", len(data)) + data


def _event_words(ev: np.ndarray) -> np.ndarray:
    """Events as dv Event structs (2 little-endian words each, padding zeroed)."""
    rec = np.zeros(len(ev), EVENT_DTYPE)
    rec["t"] = ev["t"]
    rec["x"] = ev["x"]
    rec["y"] = ev["y"]
    rec["p"] = ev["p"] != 0
    return rec.view("<u8")


def _events_flatbuffer(words: np.ndarray) -> bytes:
    """Size-prefixed EVTS FlatBuffer with dv's layout: header 32 bytes, then the structs."""
    n = len(words) // 2
    head = struct.pack("<II4s2x3Hiii", 28 + 16 * n, 16, b"EVTS", 6, 8, 4, 6, 4, n)
    return head + words.tobytes()


def _file_data_table(rows: list[tuple[int, int, int, int, int]]) -> bytes:
    """Size-prefixed FTAB FlatBuffer: one FileDataDefinition table per packet.

    rows: (body byte offset, body size, element count, first t, last t), stream id 0.
    """
    m = len(rows)
    vec = 28
    vt = vec + 4 + 4 * m
    t0 = (vt + 14 + 7) // 8 * 8
    total = t0 + 48 * m
    out = bytearray(total)
    struct.pack_into("<II4s2x3Hiii", out, 0, total - 4, 16, b"FTAB", 6, 8, 4, 6, 4, m)
    struct.pack_into("<7H", out, vt, 14, 48, 8, 16, 24, 32, 40)
    if m:
        tables = t0 + 48 * np.arange(m, dtype=np.int64)
        slots = vec + 4 + 4 * np.arange(m, dtype=np.int64)
        out[vec + 4 : vt] = (tables - slots).astype("<u4").tobytes()
        recs = np.zeros((m, 12), "<i4")
        recs[:, 0] = tables - vt
        r = np.asarray(rows, dtype=np.int64)
        as64 = recs.view("<i8")
        as64[:, 1] = r[:, 0]
        recs[:, 4] = 0
        recs[:, 5] = r[:, 1]
        as64[:, 3] = r[:, 2]
        as64[:, 4] = r[:, 3]
        as64[:, 5] = r[:, 4]
        out[t0:] = recs.tobytes()
    return bytes(out)


class Aedat4Writer(EventWriter):
    """Writes one EVTS stream, LZ4 (default), Zstd or uncompressed, with a data table.

    Output bytes depend only on the events and options (fixed levels, no clock), so the
    same input always gives the same file.
    """

    format = "aedat4"
    extensions = (".aedat4",)

    def __init__(
        self, path: str | Path, width: int, height: int, compression: str = "lz4", **options: Any
    ) -> None:
        super().__init__(path, width, height, compression=compression, **options)
        unknown = set(options) - {"packet_events"}
        if unknown:
            raise RecordingError(self.path, f"AEDAT4 writer has no option {sorted(unknown)[0]!r}")
        name = str(compression).lower()
        if name not in _WRITER_COMPRESSION:
            raise RecordingError(
                self.path, f"AEDAT4 compression must be lz4, zstd or none, got {compression!r}"
            )
        if not (0 < self.width < 32768 and 0 < self.height < 32768):
            raise RecordingError(
                self.path, f"AEDAT4 sizes must be 1..32767, got {self.width}x{self.height}"
            )
        self._packet_events = max(1, int(options.get("packet_events", PACKET_EVENTS)))
        code, label = _WRITER_COMPRESSION[name]
        self._compress = self._compressor(name)
        self._pending: list[np.ndarray] = []
        self._pending_n = 0
        self._rows: list[tuple[int, int, int, int, int]] = []
        self._f: BinaryIO = self.path.open("wb")
        header = _io_header(code, -1, _description(self.width, self.height, label))
        self._f.write(MAGIC + header)
        self._pos = len(MAGIC) + len(header)

    def _compressor(self, name: str) -> Callable[[bytes], bytes]:
        if name == "none":
            return bytes
        if name == "lz4":
            try:
                import lz4.frame
            except ImportError:
                raise MissingDependency(self.path, "AEDAT4 LZ4 packets", "aedat") from None

            def lz4_frame(data: bytes) -> bytes:
                return lz4.frame.compress(data, compression_level=LZ4_LEVEL)

            return lz4_frame
        try:
            import zstandard
        except ImportError:
            raise MissingDependency(self.path, "AEDAT4 Zstd packets", "aedat") from None
        cctx = zstandard.ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True)
        return cctx.compress

    def write(self, events: np.ndarray, triggers: np.ndarray | None = None) -> None:
        """Append events; trigger edges are not written (the file has no TRIG stream)."""
        if not len(events):
            return
        if int(events["x"].max()) >= self.width or int(events["y"].max()) >= self.height:
            raise RecordingError(
                self.path, f"an event lies outside the declared {self.width}x{self.height} sensor"
            )
        # Kept as struct words: joining padded structured arrays is ~10x slower.
        self._pending.append(_event_words(events))
        self._pending_n += len(events)
        if self._pending_n < self._packet_events:
            return
        words = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        k = 2 * self._packet_events
        full = len(words) // k * k
        for i in range(0, full, k):
            self._packet(words[i : i + k])
        rest = words[full:]
        self._pending = [rest] if len(rest) else []
        self._pending_n = len(rest) // 2

    def _packet(self, words: np.ndarray) -> None:
        body = self._compress(_events_flatbuffer(words))
        self._f.write(struct.pack("<ii", 0, len(body)) + body)
        t = words[0::2].view("<i8")
        self._rows.append((self._pos + 8, len(body), len(t), int(t[0]), int(t[-1])))
        self._pos += 8 + len(body)

    def _finish(self) -> None:
        try:
            if self._pending_n:
                self._packet(np.concatenate(self._pending))
                self._pending = []
            # The table follows the last packet with no packet header, as dv writes it.
            self._f.write(self._compress(_file_data_table(self._rows)))
            self._f.seek(len(MAGIC) + _IOHEADER_FIELD_OFFSET)
            self._f.write(struct.pack("<q", self._pos))
        finally:
            self._f.close()
