"""Append-only JSON-lines files: torn-tail repair, fast chunked parsing, durable appends.

Only complete lines (ending in a newline) exist: a process killed mid-write leaves at
most one unterminated fragment at the end, which was never acknowledged and is cut off
on the next open. Readers never look past the last newline, so they can read a file
while its writer appends.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import orjson

from evtui.jobs.errors import JobCorrupt, JobWriteError

CHUNK_BYTES = 4 << 20
DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE


def dump(record: dict[str, Any]) -> bytes:
    """One record as one line; a value orjson cannot encode is stored as its str()."""
    return orjson.dumps(record, option=DUMP_OPTIONS, default=str)


def complete_size(path: Path, size: int | None = None) -> int:
    """Bytes up to and including the last newline: the part every reader may trust."""
    if size is None:
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return 0
    if size == 0:
        return 0
    with open(path, "rb") as f:
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            block = f.read(step)
            nl = block.rfind(b"\n")
            if nl >= 0:
                return pos - step + nl + 1
            pos -= step
    return 0


def repair_tail(path: Path) -> int:
    """Cut an unterminated last line (a write killed midway); returns the bytes cut."""
    size = path.stat().st_size
    keep = complete_size(path, size)
    if keep == size:
        return 0
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, keep)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        raise JobWriteError(path, e, "could not cut the torn last line") from e
    return size - keep


def iter_chunks(path: Path, start: int = 0, end: int | None = None) -> Iterator[tuple[int, bytes]]:
    """(byte offset, block of whole lines) from `start` to the last newline before `end`."""
    if end is None:
        end = complete_size(path)
    if end <= start:
        return
    with open(path, "rb") as f:
        f.seek(start)
        pos, carry = start, b""
        while pos < end:
            block = carry + f.read(min(CHUNK_BYTES, end - pos))
            pos += len(block) - len(carry)
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                carry = block
                continue
            yield pos - len(block), block[:cut]
            carry = block[cut:]


def parse_block(block: bytes) -> list[Any] | None:
    """All lines of a block in one orjson call; None when some line is not one JSON value."""
    n = block.count(b"\n")
    try:
        items = orjson.loads(b"[" + block[:-1].replace(b"\n", b",") + b"]")
    except orjson.JSONDecodeError:
        return None
    return items if len(items) == n else None


class Block:
    """Whole lines of a file parsed at once; `corrupt(i, expected)` blames the i-th line."""

    def __init__(self, path: Path, offset: int, first_line: int, raw: bytes, items: list[Any]):
        self.path = path
        self.offset = offset
        self.first_line = first_line
        self.raw = raw
        self.items = items

    def corrupt(self, index: int, expected: str) -> NoReturn:
        pos = 0
        for _ in range(index):
            pos = self.raw.index(b"\n", pos) + 1
        line = self.first_line + index if self.first_line else 0
        raise JobCorrupt(self.path, line, self.offset + pos, expected)


def scan(
    path: Path, start: int = 0, end: int | None = None, first_line: int = 1
) -> Iterator[Block]:
    """Parsed blocks of whole lines; a line that is not JSON raises JobCorrupt at once.

    Line numbers count from `first_line` at `start`; 0 means unknown (a reader starting
    mid-file), and messages then name the byte offset only.
    """
    line = first_line
    for offset, raw in iter_chunks(path, start, end):
        items = parse_block(raw)
        if items is None:
            items = _parse_lines(path, raw, offset, line)
        yield Block(path, offset, line, raw, items)
        if line:
            line += len(items)


def _parse_lines(path: Path, raw: bytes, offset: int, line: int) -> list[Any]:
    items, pos = [], 0
    for i, text in enumerate(raw.split(b"\n")[:-1]):
        try:
            items.append(orjson.loads(text))
        except orjson.JSONDecodeError as e:
            what = "an empty line" if not text.strip() else f"invalid JSON ({e.msg})"
            raise JobCorrupt(
                path, line + i if line else 0, offset + pos, f"{what}; expected one JSON object"
            ) from None
        pos += len(text) + 1
    return items


def grep_frame(path: Path, frame: int, end: int | None = None) -> Iterator[dict[str, Any]]:
    """Records whose line mentions `"frame":N`, parsed and checked: a fast path for one frame."""
    pattern = re.compile(rb'"frame":%d[,}]' % frame)
    for _, block in iter_chunks(path, 0, end):
        last = -1
        for m in pattern.finditer(block):
            lo = block.rfind(b"\n", 0, m.start()) + 1
            if lo == last:
                continue  # the same line again (a nested "frame" such as a cache source)
            last = lo
            hi = block.index(b"\n", m.end())
            item = orjson.loads(block[lo:hi])
            if isinstance(item, dict) and item.get("frame") == frame:
                yield item


class Appender:
    """An append-only file whose batches are all-or-nothing: a failed write is truncated away."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise JobWriteError(path, e) from e
        self.size = os.fstat(self.fd).st_size

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]

    def sync(self) -> None:
        os.fdatasync(self.fd)

    def rollback(self, size: int) -> None:
        os.ftruncate(self.fd, size)
        os.fdatasync(self.fd)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
