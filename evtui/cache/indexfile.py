"""On-disk form of the near-duplicate index: one base snapshot plus per-process segments.

Loading 1.2 M fingerprints from diskcache would take 1.2 M SQLite reads; these files load in
a few large reads. Layout of `<cache dir>/index/`:

* `base.fpx`: a snapshot written whole (temp file, fsync, rename), so readers see the old
  or the new one, never a mix. It holds the rows, the multi-index tables built for them
  (rebuilding them costs ~0.5 s at 1.2 M rows) and, per segment, the byte offset up to which
  that segment's rows are already in the snapshot (its watermark). Each section has a CRC32.
* `seg-<pid>-<token>.fpx`: one per open cache that has written, append-only (O_APPEND), rows
  of 56 bytes each carrying their own checksum, so a torn tail or a damaged row is found and
  skipped. The owner holds an exclusive flock on it while open: a segment nobody holds is
  dead and may be folded into the base and deleted.
* `.lock`: flock serialising the writers of `base.fpx` (compaction, prune, clear).

Two processes therefore never write the same file, except `base.fpx`, which is only ever
replaced under the lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no liveness detection, segments are kept
    fcntl = None  # type: ignore[assignment]

MAGIC = b"EVTFPX01"
VERSION = 1
KIND_BASE = 1
KIND_SEGMENT = 2
HEADER = struct.Struct("<8sIIII16sQI")  # magic version kind rec_size fp_bits token meta crc
HEADER_SIZE = 64
BASE_NAME = "base.fpx"
LOCK_NAME = ".lock"
SEGMENT_PREFIX = "seg-"
SUFFIX = ".fpx"
_ALIGN = 64

RECORD = np.dtype(
    [
        ("fp", "<u8", (2,)),  # fingerprint, little-endian words
        ("ph", "<u8", (2,)),  # pixel hash (128 bits): with `part`, names the stored record
        ("part", "<u8"),  # partition: prompt version + scope key + variant
        ("created", "<i8"),  # µs since the epoch
        ("size", "<u4"),  # bytes of the stored record, for size-based pruning
        ("chk", "<u4"),
    ]
)
assert RECORD.itemsize == 56
_WORDS = (RECORD.itemsize - 4) // 4
_MIX = np.array(
    [(0x9E3779B97F4A7C15 * (2 * i + 1)) & 0xFFFFFFFFFFFFFFFF | 1 for i in range(_WORDS)],
    dtype=np.uint64,
)
_SEED = np.uint64(0xA0761D6478BD642F)


class CorruptIndex(Exception):
    """An index file that cannot be trusted; the message names the file and the problem."""


def _checksum(records: np.ndarray) -> np.ndarray:
    """Per-row 32-bit checksum of everything but `chk`; an all-zero row does not pass."""
    words = np.ascontiguousarray(records).view("<u4").reshape(-1, RECORD.itemsize // 4)
    acc = np.full(len(records), _SEED, dtype=np.uint64)
    for i in range(_WORDS):
        acc += words[:, i].astype(np.uint64) * _MIX[i]
    acc ^= acc >> np.uint64(29)
    acc *= np.uint64(0xBF58476D1CE4E5B9)
    acc ^= acc >> np.uint64(32)
    return (acc & np.uint64(0xFFFFFFFF)).astype("<u4")


def make_records(
    fp: np.ndarray, ph: np.ndarray, part: np.ndarray, created: np.ndarray, size: np.ndarray
) -> np.ndarray:
    """Rows ready to append, checksummed."""
    rec = np.zeros(len(part), dtype=RECORD)
    rec["fp"] = np.asarray(fp, dtype=np.uint64).reshape(-1, 2)
    rec["ph"] = np.asarray(ph, dtype=np.uint64).reshape(-1, 2)
    rec["part"] = part
    rec["created"] = created
    rec["size"] = size
    rec["chk"] = _checksum(rec)
    return rec


def valid_rows(records: np.ndarray) -> np.ndarray:
    """Boolean mask of rows whose checksum matches."""
    return _checksum(records) == records["chk"]


def _header(kind: int, token: bytes, meta: bytes) -> bytes:
    head = HEADER.pack(MAGIC, VERSION, kind, RECORD.itemsize, 128, token, len(meta), 0)
    crc = zlib.crc32(meta, zlib.crc32(head[: HEADER.size - 4]))
    head = head[: HEADER.size - 4] + struct.pack("<I", crc)
    return head.ljust(HEADER_SIZE, b"\0")


def _parse_header(path: Path, raw: bytes, kind: int) -> tuple[bytes, int]:
    """(token, meta length) after checking magic, version, kind and sizes."""
    if len(raw) < HEADER_SIZE:
        raise CorruptIndex(f"{path}: {len(raw)} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, k, rec_size, bits, token, meta_len, _crc = HEADER.unpack(raw[: HEADER.size])
    if magic != MAGIC:
        raise CorruptIndex(f"{path}: byte 0: expected magic {MAGIC!r}, got {magic!r}")
    if version != VERSION or k != kind or rec_size != RECORD.itemsize or bits != 128:
        raise CorruptIndex(
            f"{path}: byte 8: expected version {VERSION}, kind {kind}, {RECORD.itemsize}-byte "
            f"rows of 128-bit fingerprints; got version {version}, kind {k}, {rec_size}, {bits}"
        )
    return token, meta_len


def _check_header_crc(path: Path, raw: bytes, meta: bytes) -> None:
    (stored,) = struct.unpack_from("<I", raw, HEADER.size - 4)
    if zlib.crc32(meta, zlib.crc32(raw[: HEADER.size - 4])) != stored:
        raise CorruptIndex(f"{path}: byte 0: header checksum mismatch")


# ------------------------------------------------------------------------------ locking


@contextlib.contextmanager
def exclusive_lock(directory: Path) -> Iterator[None]:
    """Hold `.lock` in `directory`: one base writer at a time, across processes."""
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def segment_is_live(path: Path) -> bool:
    """True while some process holds the segment open for appending."""
    if fcntl is None:  # pragma: no cover
        return True
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# ------------------------------------------------------------------------------ segments


class SegmentWriter:
    """This process's append-only segment; created on first append, flocked while open."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = f"{SEGMENT_PREFIX}{os.getpid()}-{secrets.token_hex(6)}{SUFFIX}"
        self.path = directory / self.name
        self._fd: int | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def _open(self) -> int:
        # Locked and given its header under a hidden name first: a compactor listing the
        # directory must never see an unlocked segment of a live process and delete it.
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f".{self.name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, _header(KIND_SEGMENT, secrets.token_bytes(16), b""))
            os.rename(tmp, self.path)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        self._fd = fd
        return fd

    def append(self, records: np.ndarray) -> None:
        """One write(2) per batch: a crash leaves whole rows plus at most one torn row."""
        if len(records) == 0:
            return
        fd = self._fd if self._fd is not None else self._open()
        data = np.ascontiguousarray(records, dtype=RECORD).tobytes()
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]

    def close(self, *, fsync: bool = True, delete: bool = False) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if fsync:
                with contextlib.suppress(OSError):
                    os.fsync(fd)
            if delete:
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
        finally:
            os.close(fd)


@dataclass
class SegmentRead:
    rows: np.ndarray
    end: int  # byte offset after the last valid row read: where the next read starts
    problems: list[str] = field(default_factory=list)


def read_segment(path: Path, start: int = 0) -> SegmentRead:
    """Valid rows of a segment from byte `start` (0: just after the header).

    A short or damaged row after the last valid one is left unread (an append may still be
    in progress); damaged rows between valid ones are skipped and reported.
    """
    with open(path, "rb") as f:
        raw = f.read(HEADER_SIZE)
        _parse_header(path, raw, KIND_SEGMENT)
        _check_header_crc(path, raw, b"")
        start = max(int(start), HEADER_SIZE)
        f.seek(start)
        data = f.read()
    n = len(data) // RECORD.itemsize
    rows = np.frombuffer(data, dtype=RECORD, count=n)
    ok = valid_rows(rows)
    if not ok.all():
        last = int(np.nonzero(ok)[0][-1]) + 1 if ok.any() else 0
        bad = int(np.count_nonzero(~ok[:last]))
        problems = (
            [f"{path}: {bad} damaged row(s) between byte {start} and {start + last * 56} skipped"]
            if bad
            else []
        )
        return SegmentRead(rows[:last][ok[:last]].copy(), start + last * RECORD.itemsize, problems)
    return SegmentRead(rows.copy(), start + n * RECORD.itemsize)


def list_segments(directory: Path) -> list[Path]:
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(
        directory / n for n in names if n.startswith(SEGMENT_PREFIX) and n.endswith(SUFFIX)
    )


# ------------------------------------------------------------------------------ base


@dataclass
class Base:
    token: bytes
    rows: np.ndarray  # RECORD, len >= n: spare room for rows appended later
    n: int
    order: np.ndarray | None  # (8, len(rows)) int32, first n columns valid; None: build it
    starts: np.ndarray | None  # (8, 65537) int64
    watermarks: dict[str, int]


def read_base_token(path: Path) -> bytes | None:
    """The base's token (changes on every rewrite), from its header alone; None if absent."""
    try:
        with open(path, "rb") as f:
            raw = f.read(HEADER_SIZE)
    except FileNotFoundError:
        return None
    try:
        return _parse_header(path, raw, KIND_BASE)[0]
    except CorruptIndex:
        return b"corrupt"


def read_base(path: Path, spare: int = 0, grow: float = 0.0) -> Base | None:
    """The snapshot, verified, read straight into arrays with room for `spare` + `grow` x n
    more rows (growing later copies everything); None when there is none. Raises
    CorruptIndex on damage."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, readinto needs the handle
    except FileNotFoundError:
        return None
    with f:
        raw = f.read(HEADER_SIZE)
        token, meta_len = _parse_header(path, raw, KIND_BASE)
        meta_raw = f.read(meta_len)
        if len(meta_raw) != meta_len:
            raise CorruptIndex(f"{path}: byte {HEADER_SIZE}: metadata truncated")
        _check_header_crc(path, raw, meta_raw)
        try:
            meta = json.loads(meta_raw)
            n = int(meta["rows"])
            sections = meta["sections"]
            watermarks = {str(k): int(v) for k, v in meta.get("watermarks", {}).items()}
        except (ValueError, KeyError, TypeError) as e:
            raise CorruptIndex(f"{path}: byte {HEADER_SIZE}: bad metadata ({e})") from e
        cap = n + max(0, int(spare)) + max(0, int(n * grow))
        rows = np.empty(cap, dtype=RECORD)
        _read_section(f, path, sections["rows"], [rows[:n]])
        order = starts = None
        if "order" in sections and n:
            order = np.empty((8, cap), dtype=np.int32)
            starts = np.empty((8, 65537), dtype=np.int64)
            _read_section(f, path, sections["order"], [order[c, :n] for c in range(8)])
            _read_section(f, path, sections["starts"], [starts])
            if (
                np.any(starts[:, 0] != 0)
                or np.any(starts[:, -1] != n)
                or np.any(np.diff(starts, axis=1) < 0)
                or int(order[:, :n].min()) < 0
                or int(order[:, :n].max()) >= n
            ):
                raise CorruptIndex(f"{path}: multi-index tables inconsistent with {n} rows")
    return Base(token, rows, n, order, starts, watermarks)


def _read_section(f, path: Path, spec: list[int], outs: list[np.ndarray]) -> None:
    """Fill `outs` (contiguous arrays, in order) from one section, checking its CRC."""
    offset, nbytes, crc = (int(v) for v in spec)
    want = sum(o.nbytes for o in outs)
    if nbytes != want:
        raise CorruptIndex(f"{path}: byte {offset}: section of {nbytes} bytes, expected {want}")
    f.seek(offset)
    got_crc = 0
    for out in outs:
        buf = memoryview(out.reshape(-1).view(np.uint8))
        if f.readinto(buf) != len(buf):
            raise CorruptIndex(f"{path}: byte {offset}: expected {nbytes} bytes, file ends first")
        got_crc = zlib.crc32(buf, got_crc)
    if got_crc != crc:
        raise CorruptIndex(f"{path}: byte {offset}: section checksum mismatch")


def write_base(
    path: Path,
    rows: np.ndarray,
    order: np.ndarray | None,
    starts: np.ndarray | None,
    watermarks: dict[str, int],
) -> bytes:
    """Replace the snapshot atomically; returns its new token."""
    token = secrets.token_bytes(16)
    arrays: list[tuple[str, np.ndarray]] = [("rows", np.ascontiguousarray(rows, dtype=RECORD))]
    if order is not None and starts is not None and len(rows):
        arrays.append(("order", np.ascontiguousarray(order, dtype=np.int32)))
        arrays.append(("starts", np.ascontiguousarray(starts, dtype=np.int64)))
    # Offsets depend on the metadata's length, which depends on the offsets: fix its size.
    sections: dict[str, list[int]] = {name: [0, a.nbytes, 0] for name, a in arrays}
    for name, a in arrays:
        sections[name][2] = zlib.crc32(memoryview(a.reshape(-1).view(np.uint8)))

    def meta_bytes() -> bytes:
        meta = {"rows": len(rows), "sections": sections, "watermarks": watermarks}
        return json.dumps(meta, sort_keys=True).encode()

    pos = 0
    for _ in range(3):
        pos = _aligned(HEADER_SIZE + len(meta_bytes()) + 64)
        for name, a in arrays:
            sections[name][0] = pos
            pos = _aligned(pos + a.nbytes)
    meta = meta_bytes()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(_header(KIND_BASE, token, meta))
            f.write(meta)
            for name, a in arrays:
                f.seek(sections[name][0])
                f.write(memoryview(a.reshape(-1).view(np.uint8)))
            f.truncate(pos)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_dir(path.parent)
    return token


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
