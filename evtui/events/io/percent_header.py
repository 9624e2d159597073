"""The `% key value` ASCII header that Prophesee RAW and DAT files start with."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from evtui.events.errors import RecordingError

MAX_HEADER_BYTES = 1 << 20
"""A header is a few hundred bytes; past this the file is not what it claims to be."""


def parse_percent_header(head: bytes) -> tuple[dict[str, str], int] | None:
    """Keys (lower-cased) and the payload offset from a file's first bytes.

    The payload starts at the first line that does not begin with `%`, or right after
    a `% end` line. Returns None when `head` ends inside the header (read more).
    """
    keys: dict[str, str] = {}
    pos = 0
    n = len(head)
    while pos < n and head[pos : pos + 1] == b"%":
        nl = head.find(b"\n", pos)
        if nl < 0:
            return None
        line = head[pos + 1 : nl].decode("latin-1").strip()
        pos = nl + 1
        if not line:
            continue
        key, _, value = line.partition(" ")
        key = key.lower()
        if key == "end" and not value:
            break
        keys.setdefault(key, value.strip())
    return keys, pos


def read_percent_header(f: BinaryIO, path: str | Path) -> tuple[dict[str, str], int]:
    """Parse the header from an open file; leaves the file positioned at the payload."""
    f.seek(0)
    size = 4096
    while True:
        head = f.read(size)
        f.seek(0)
        parsed = parse_percent_header(head)
        if parsed is not None:
            f.seek(parsed[1])
            return parsed
        if len(head) < size:
            raise RecordingError(path, "header line has no end (file truncated?)", len(head))
        if size >= MAX_HEADER_BYTES:
            raise RecordingError(path, f"header longer than {MAX_HEADER_BYTES} bytes", 0)
        size *= 4
