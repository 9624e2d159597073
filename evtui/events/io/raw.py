"""Prophesee RAW container: the `%` header shared by EVT 2.0 and EVT 3.0 files.

A RAW file is ASCII `% key value` lines, then a little-endian word stream. The encoding
comes from `% format EVT3;width=..;height=..` (Metavision ≥ 3), else the legacy
`% evt 3.0`. Older camera files name neither and only say which plugin recorded them;
then the plugin decides (Gen3 sensors stream EVT 2.0, Gen4/IMX636 EVT 3.0, as in
OpenEB), and failing that the payload itself: EVT 2.0 read as 16-bit words, or EVT 3.0
read as 32-bit words, is full of reserved word types, so the plausible reading wins.

The geometry comes from `% geometry WxH`, else the format options, else the plugin /
system id as OpenEB maps them; otherwise it is left unknown for the caller to infer.

`RawReader` holds what both decoders share: bounded reads, checkpoints at word
boundaries, the truncated tail, and a `read_all` that decodes into one array.
`RawWriter` writes the header and puts events and triggers in an order and on a clock
the encodings can express.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, NamedTuple

import numpy as np

from evtui.events.errors import Diagnostics, RecordingError
from evtui.events.geometry import geometry_from_hints
from evtui.events.io.base import (
    EventReader,
    EventWriter,
    RecordingInfo,
)
from evtui.events.io.percent_header import parse_percent_header, read_percent_header
from evtui.events.types import (
    EVENT_DTYPE,
    TRIGGER_DTYPE,
    Block,
    Checkpoint,
    concat_events,
    make_events,
)

EVT2 = "evt2"
EVT21 = "evt21"
EVT3 = "evt3"
ENCODING_NAMES = {EVT2: "EVT 2.0", EVT21: "EVT 2.1", EVT3: "EVT 3.0"}

_LEGACY = {"2.0": EVT2, "2": EVT2, "2.1": EVT21, "3.0": EVT3, "3": EVT3}
_FORMAT = {"EVT2": EVT2, "EVT20": EVT2, "EVT21": EVT21, "EVT3": EVT3, "EVT30": EVT3}

# Keys only camera RAW headers carry (DAT headers have Version/Width/Height/Data).
_CAMERA_KEYS = (
    "plugin_name",
    "system_id",
    "serial_number",
    "integrator_name",
    "camera_integrator_name",
    "plugin_integrator_name",
    "firmware_version",
    "sensor_generation",
    "subsystem_id",
)
# Plugin names whose sensor streams one encoding by default (OpenEB's plugin table).
# GenX320 is absent on purpose: it streams 2.0, 2.1 or 3.0 depending on its setup.
_PLUGIN_ENCODING = (
    ("gen41", EVT3),
    ("imx636", EVT3),
    ("gen4", EVT3),
    ("gen31", EVT2),
    ("gen3", EVT2),
)

# Word types each encoding defines (everything else is reserved).
_EVT2_TYPES = np.zeros(16, bool)
_EVT2_TYPES[[0x0, 0x1, 0x8, 0xA, 0xD, 0xE, 0xF]] = True
_EVT3_TYPES = np.zeros(16, bool)
_EVT3_TYPES[[0x0, 0x2, 0x3, 0x4, 0x5, 0x6, 0x7, 0x8, 0xA, 0xD, 0xE, 0xF]] = True
_GUESS_BYTES = 1 << 16
_GUESS_MIN_WORDS = 64
_GUESS_VALID = 0.98
"""A stream is taken for one encoding when ≥ 98 % of its words have a defined type there
and it has a TIME_HIGH. Real streams have no reserved words; read with the other word
size, the real samples here keep only 20-62 % defined types."""

MAX_SENSOR = 2048
"""EVT 2.0 and 3.0 carry x and y in 11 bits."""


class Decoded(NamedTuple):
    """What a decoder makes of a run of words."""

    events: np.ndarray
    triggers: np.ndarray
    state: tuple[int, ...]
    problems: dict[str, int]
    steady: bool = False
    """No event steps back more than BACKWARD_TOLERANCE_US below the latest before it
    (known from the few time words), so the per-event clock check can be skipped."""
    extent: tuple[int, int] | None = None
    """Bounds (x, y) no event exceeds, when the decoder had them at little cost."""


@dataclass(frozen=True)
class RawHeader:
    """What a RAW header says, with where each answer came from."""

    keys: dict[str, str]
    payload_offset: int
    encoding: str | None
    encoding_source: str  # format | evt | plugin | payload | none
    size: tuple[int, int] | None
    geometry_source: str  # header | hint | unknown
    big_endian: bool = False


def _format_key(value: str) -> tuple[str | None, dict[str, str]]:
    """`EVT3;width=1280;height=720` -> ("evt3", {"width": "1280", ...})."""
    name, *opts = value.split(";")
    options = {}
    for opt in opts:
        k, _, v = opt.partition("=")
        options[k.strip().lower()] = v.strip()
    norm = "".join(ch for ch in name.upper() if ch.isalnum())
    return _FORMAT.get(norm), options


def _parse_size(w: str | None, h: str | None) -> tuple[int, int] | None:
    try:
        size = int(str(w).strip()), int(str(h).strip())
    except ValueError:
        return None
    return size if 0 < size[0] <= MAX_SENSOR and 0 < size[1] <= MAX_SENSOR else None


def guess_encoding(payload: bytes) -> str | None:
    """EVT 2.0 or 3.0 from the first payload bytes, or None when neither is plausible."""
    n = min(len(payload), _GUESS_BYTES) // 4
    if n * 2 < _GUESS_MIN_WORDS:
        return None
    w32 = np.frombuffer(payload, "<u4", count=n)
    w16 = np.frombuffer(payload, "<u2", count=2 * n)
    t2 = w32 >> 28
    t3 = w16 >> 12
    ok2 = float(np.mean(_EVT2_TYPES[t2])) >= _GUESS_VALID and bool(np.any(t2 == 0x8))
    ok3 = float(np.mean(_EVT3_TYPES[t3])) >= _GUESS_VALID and bool(np.any(t3 == 0x8))
    if ok2 == ok3:
        return None
    return EVT2 if ok2 else EVT3


def interpret_header(keys: dict[str, str], payload_offset: int, payload: bytes) -> RawHeader:
    """Encoding and geometry from parsed header keys (and the payload when they are silent)."""
    encoding: str | None = None
    source = "none"
    options: dict[str, str] = {}
    if "format" in keys:
        encoding, options = _format_key(keys["format"])
        source = "format"
    if encoding is None and "evt" in keys:
        encoding = _LEGACY.get(keys["evt"].strip())
        source = "evt"
    if encoding is None:
        plugin = keys.get("plugin_name", "").lower()
        for hint, enc in _PLUGIN_ENCODING:
            if hint in plugin:
                encoding, source = enc, "plugin"
                break
    if encoding is None:
        encoding = guess_encoding(payload)
        source = "payload" if encoding else "none"

    size = None
    if "geometry" in keys:
        a, _, b = keys["geometry"].lower().partition("x")
        size = _parse_size(a, b)
    if size is None and "width" in options and "height" in options:
        size = _parse_size(options["width"], options["height"])
    geometry_source = "header"
    if size is None:
        size = geometry_from_hints(keys.get("plugin_name"), keys.get("system_id"))
        geometry_source = "hint" if size else "unknown"
    big = options.get("endianness", "little").lower().startswith("big")
    return RawHeader(keys, payload_offset, encoding, source, size, geometry_source, big)


def looks_like_raw(keys: dict[str, str]) -> bool:
    """A `%` header that belongs to a RAW file rather than a DAT file."""
    if "format" in keys:
        return _format_key(keys["format"])[0] is not None
    return "evt" in keys or any(k in keys for k in _CAMERA_KEYS)


def sniff_encoding(head: bytes) -> str | None:
    """The encoding of a RAW file from its first bytes; None when it is not RAW."""
    parsed = parse_percent_header(head)
    if parsed is None:
        return None
    keys, offset = parsed
    if not keys or not looks_like_raw(keys):
        return None
    return interpret_header(keys, offset, head[offset:]).encoding


class RawReader(EventReader):
    """Block loop shared by the EVT decoders: bounded reads, word-aligned checkpoints.

    Files are read `block_bytes` at a time, but blocks hold at most `decode_bytes` of
    input: the decoders' working arrays then stay in the L2 cache, which measured ~1.6x
    faster here than decoding 4 MiB at once, and joining cache-sized pieces into bigger
    blocks would cost a copy. Each block's checkpoint state is the decoder state.
    """

    encoding: ClassVar[str]
    word: ClassVar[np.dtype]
    decode_bytes: ClassVar[int] = 1 << 17

    def _open(self) -> RecordingInfo:
        try:
            with self.path.open("rb") as f:
                keys, offset = read_percent_header(f, self.path)
                if not keys or not looks_like_raw(keys):
                    raise RecordingError(
                        self.path,
                        "not a Prophesee RAW header (expected `% evt` or `% format EVT..`)",
                        0,
                    )
                hdr = interpret_header(keys, offset, b"")
                if hdr.encoding is None:  # only then is the payload worth a look
                    hdr = interpret_header(keys, offset, f.read(_GUESS_BYTES))
                f.seek(0, 2)
                self._file_size = f.tell()
        except OSError as e:
            raise RecordingError(self.path, f"cannot read: {e.strerror or e}") from None
        want = ENCODING_NAMES[self.encoding]
        if hdr.encoding == EVT21:
            raise RecordingError(
                self.path, "EVT 2.1 RAW files are not supported yet (only EVT 2.0 and 3.0)", 0
            )
        if hdr.encoding is None:
            raise RecordingError(
                self.path,
                "RAW header names no encoding (`% evt` / `% format`) and the payload is not "
                f"recognisably EVT 2.0 or 3.0; expected {want}",
                offset,
            )
        if hdr.encoding != self.encoding:
            raise RecordingError(
                self.path, f"header says {ENCODING_NAMES[hdr.encoding]}, expected {want}", 0
            )
        if hdr.big_endian:
            raise RecordingError(self.path, f"big-endian {want} payloads are not supported", 0)
        self._payload = offset
        w, h = hdr.size if hdr.size else (None, None)
        return RecordingInfo(self.path, self.format, w, h, keys, hdr.geometry_source)

    @abstractmethod
    def _initial_state(self) -> tuple[int, ...]:
        """Decoder state at the start of the payload."""

    @abstractmethod
    def _decode_words(
        self, words: np.ndarray, state: tuple[int, ...], out: np.ndarray | None
    ) -> Decoded:
        """Words -> events and the state after them, into `out[:n]` when it is long enough."""

    def _blocks(self, start: Checkpoint | None) -> Iterator[Block]:
        for cp, d in self._decoded(start):
            yield Block(cp, d.events, d.triggers)

    def _decoded(self, start: Checkpoint | None) -> Iterator[tuple[Checkpoint, Decoded]]:
        """(checkpoint, decoded events and triggers) per decode unit."""
        wb = self.word.itemsize
        if start is None:
            start = Checkpoint(self._payload, self._initial_state(), 0)
        pos, state, before = start.position, tuple(start.state), start.events_before
        if pos < self._payload or (pos - self._payload) % wb:
            raise RecordingError(self.path, f"checkpoint is not at a {wb}-byte word boundary", pos)
        if len(state) != len(self._initial_state()):
            raise RecordingError(self.path, "checkpoint state is not from this decoder", pos)
        unit = max(wb, min(self.block_bytes, self.decode_bytes) // wb * wb)
        step = max(unit, self.block_bytes // unit * unit)
        buf = bytearray(step)  # reused: decoded events never point into it
        with self.path.open("rb") as f:
            f.seek(pos)
            while True:
                got = _read_full(f, buf)
                usable = got // wb * wb
                if got > usable:
                    self.diagnostics.add("truncated trailing bytes", got - usable, pos + usable)
                for sub in range(0, usable, unit):
                    n = min(unit, usable - sub) // wb
                    words = np.frombuffer(buf, self.word, count=n, offset=sub)
                    cp = Checkpoint(pos + sub, state, before)
                    d = self._decode_words(words, state, None)
                    for what, count in d.problems.items():
                        self.diagnostics.add(what, count, pos + sub)
                    state = d.state
                    before += len(d.events)
                    yield cp, d
                pos += usable
                if got < step:
                    return


def _read_full(f: BinaryIO, buf: bytearray) -> int:
    """Fill `buf` unless the file ends first (readinto may return short reads)."""
    view = memoryview(buf)
    got = 0
    while got < len(buf):
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def raw_header_bytes(encoding: str, width: int, height: int) -> bytes:
    """The header evtui writes: legacy and modern encoding keys, geometry, `% end`."""
    legacy = {EVT2: "2.0", EVT3: "3.0"}[encoding]
    name = {EVT2: "EVT2", EVT3: "EVT3"}[encoding]
    return (
        f"% evt {legacy}\n"
        f"% format {name};width={width};height={height}\n"
        f"% geometry {width}x{height}\n"
        "% end\n"
    ).encode("ascii")


def time_high_values(
    high: np.ndarray, prev: np.ndarray, bits: int, fill_max: int
) -> tuple[np.ndarray, np.ndarray]:
    """TIME_HIGH values to write where the clock's high part moves from `prev` to `high`.

    Both are absolute counts of TIME_HIGH periods (wraps included); `prev` < 0 marks the
    file start, where readers' clocks begin in loop 0. Forward moves of at most
    `fill_max` write every value in between, as sensors do. Longer moves, and a start
    past the first loop, go top -> 0 once per wrap, which every wrap rule recognises
    (OpenEB's strictest wants a near-full drop). Backward moves write the value.
    Returns (index into the inputs per word, value), in write order.
    """
    top = (1 << bits) - 1
    start = prev < 0
    d = high - prev
    fill = (d > 0) & (d <= fill_max) & ~start
    jump = ~fill & (d > 0)
    loops = np.where(jump, (high >> bits) - (np.maximum(prev, 0) >> bits), 0)
    lead0 = (jump & start & (loops > 0)).astype(np.int64)  # TIME_HIGH 0 opens loop 0
    last = ((high & top) != 0) | (lead0 + 2 * loops == 0)
    count = np.where(fill, d, np.where(jump, lead0 + 2 * loops + last, 1))
    owner = np.repeat(np.arange(len(high)), count)
    k = np.arange(len(owner)) - np.repeat(np.cumsum(count) - count, count)
    h, p, z, n2 = (np.take(a, owner) for a in (high, prev, lead0, 2 * loops))
    wrap = (k >= z) & (k - z < n2)
    values = np.where(np.take(fill, owner), p + 1 + k, h)
    values = np.where(np.take(jump, owner) & (k < z), 0, values)
    values = np.where(np.take(jump, owner) & wrap, np.where((k - z) % 2 == 0, top, 0), values)
    return owner, values & top


class RawWriter(EventWriter):
    """Opens the file, writes the header, and orders events and triggers for the encoders.

    Triggers go before the first event later than them. Problems the encoding cannot
    carry are counted in `diagnostics`, as readers do, rather than failing the write:
    events outside the sensor are not written, and a timestamp further back than the
    clock can step (or before 0) is moved forward to the earliest time it can express.
    The tail of each `write` that later events could still join is held back, so the
    bytes do not depend on how the caller splits the stream.
    """

    encoding: ClassVar[str]
    extensions = (".raw",)
    word: ClassVar[np.dtype]
    _hold_runs: ClassVar[bool] = False  # hold trailing same-time events (EVT3 vectors)
    _back_limit: ClassVar[int]  # furthest step back (µs) the clock can take
    _loop_bits: ClassVar[int]  # the clock wraps every 2**_loop_bits µs

    def __init__(self, path: str | Path, width: int, height: int, **options: Any) -> None:
        super().__init__(path, width, height, **options)
        if not (0 < self.width <= MAX_SENSOR and 0 < self.height <= MAX_SENSOR):
            raise RecordingError(
                self.path,
                f"{ENCODING_NAMES[self.encoding]} holds sensors up to {MAX_SENSOR}x{MAX_SENSOR}, "
                f"not {self.width}x{self.height}",
            )
        self.diagnostics = Diagnostics()
        self._pending = np.zeros(0, EVENT_DTYPE)
        self._pending_triggers = np.zeros(0, TRIGGER_DTYPE)
        self._latest = 0  # latest event time before the pending ones
        try:
            self._f: BinaryIO = self.path.open("wb")
        except OSError as e:
            raise RecordingError(self.path, f"cannot write: {e.strerror or e}") from None
        self._f.write(raw_header_bytes(self.encoding, self.width, self.height))

    def write(self, events: np.ndarray, triggers: np.ndarray | None = None) -> None:
        if self._closed:
            raise RecordingError(self.path, "write after close")
        ev = (
            events
            if events.dtype == EVENT_DTYPE
            else make_events(events["t"], events["x"], events["y"], events["p"])
        )
        inside = (ev["x"] < self.width) & (ev["y"] < self.height)
        if not inside.all():
            self.diagnostics.add(
                f"events outside the {self.width}x{self.height} sensor not written",
                len(ev) - int(inside.sum()),
            )
            ev = ev[inside]
        tr = np.zeros(0, TRIGGER_DTYPE) if triggers is None else triggers
        if tr.dtype != TRIGGER_DTYPE:
            tr = _as_triggers(tr)
        ev = concat_events([self._pending, ev])
        tr = concat_events([self._pending_triggers, tr], TRIGGER_DTYPE)
        self._stage(ev, tr, final=False)

    def _flush_pending(self) -> None:
        self._stage(self._pending, self._pending_triggers, final=True)

    def _stage(self, ev: np.ndarray, tr: np.ndarray, final: bool) -> None:
        t = ev["t"].astype(np.int64)
        env = np.maximum.accumulate(np.maximum(t, self._latest))  # running latest time
        n = len(ev)
        if final:
            hold, until = n, None
        else:
            until = int(env[-1]) if n else self._latest
            hold = int(np.searchsorted(env, until)) if self._hold_runs and n else n
        tt = tr["t"].astype(np.int64)
        now = np.ones(len(tr), bool) if until is None else tt < until
        self._pending = ev[hold:]
        self._pending_triggers = tr[~now]
        tr, tt = tr[now], tt[now]
        ev, t, env = ev[:hold], t[:hold], env[:hold]
        latest = self._latest
        if hold:
            self._latest = int(env[-1])
        # Earliest time each event may take: the clock steps back only so far, never
        # across a wrap, never below 0.
        floor = np.maximum(env - self._back_limit, (env >> self._loop_bits) << self._loop_bits)
        moved = t < floor
        at = np.searchsorted(env, tt, side="right")
        if hold:
            tenv = np.where(at > 0, np.take(env, np.maximum(at - 1, 0)), latest)
        else:
            tenv = np.full(len(tt), latest, np.int64)
        tfloor = np.maximum(tenv - self._back_limit, (tenv >> self._loop_bits) << self._loop_bits)
        tmoved = tt < tfloor
        n_moved = int(moved.sum()) + int(tmoved.sum())
        if n_moved:
            self.diagnostics.add(
                f"timestamps moved forward ({ENCODING_NAMES[self.encoding]} cannot step back "
                "that far)",
                n_moved,
            )
            t = np.maximum(t, floor)
            tt = np.maximum(tt, tfloor)
        if not hold and not len(tr):
            return
        kind = np.insert(np.zeros(hold, bool), at, True)
        words = self._encode(
            np.insert(t, at, tt),
            np.insert(ev["x"].astype(np.int64), at, tr["channel"].astype(np.int64)),
            np.insert(ev["y"].astype(np.int64), at, 0),
            np.insert((ev["p"] > 0).astype(np.int64), at, (tr["value"] > 0).astype(np.int64)),
            kind,
        )
        self._f.write(words.astype(self.word, copy=False).tobytes())

    @abstractmethod
    def _encode(
        self, t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray, trig: np.ndarray
    ) -> np.ndarray:
        """Items in write order -> words. Triggers (`trig`) carry channel in x, edge in p."""

    def _finish(self) -> None:
        try:
            self._flush_pending()
        finally:
            self._f.close()


def _as_triggers(tr: np.ndarray) -> np.ndarray:
    out = np.zeros(len(tr), TRIGGER_DTYPE)
    for name in ("t", "channel", "value"):
        out[name] = tr[name]
    return out
