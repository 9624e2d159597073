"""The files of a run directory and the small helpers that read or create them.

manifest.json   the settings the results depend on: {format, run_id, created_at,
                updated_at, manifest}; `manifest.config` is the caller's redacted config
history.jsonl   one line per open (created / resumed / accepted / forced, with the
                differences and torn lines cut) and per new total
captions.jsonl  one line per done key, exactly one each
ledger.jsonl    failed and skipped results (the last line of a key wins), and
                "duplicate" lines: results for a key already done, kept for their cost
trace.jsonl     route records, each with its frame
reviews.jsonl   human review decisions (accept / reject / edit / prefer)
status.npz      a snapshot of the state for `read_status` (a cache: rebuilt if lost)
.lock           flock held by the one writing process; holds its pid
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from evtui.jobs import lines
from evtui.jobs.errors import JobCorrupt, JobError, JobWriteError
from evtui.jobs.state import Table

MANIFEST = "manifest.json"
HISTORY = "history.jsonl"
CAPTIONS = "captions.jsonl"
LEDGER = "ledger.jsonl"
TRACE = "trace.jsonl"
REVIEWS = "reviews.jsonl"
SNAPSHOT = "status.npz"
FORMAT = 1


def ingest_file(table: Table, path: Path, done: bool, start: int, end: int, first_line: int) -> int:
    """Apply a file's records from `start` to `end` to `table`; returns the lines read."""
    n = 0
    for block in lines.scan(path, start, end, first_line):
        table.ingest(block.items, done, block.corrupt)
        n += len(block.items)
    return n


def nonempty(path: Path) -> bool:
    """Whether a file exists with something in it (an empty file is what a fresh open makes)."""
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:
        return False


def write_atomic(path: Path, data: bytes) -> None:
    """Replace a file whole (tmp, fsync, rename, fsync the directory): old or new, never half."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise JobWriteError(path, e) from e


def fsync_dir(path: Path) -> None:
    """New files and renames survive a power cut only once their directory is synced."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_manifest(run_dir: Path) -> dict[str, Any] | None:
    """The stored manifest envelope, or None when the directory holds no run yet."""
    path = Path(run_dir) / MANIFEST
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise JobError(f"cannot read {path}: {e.strerror}") from None
    try:
        env = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise JobCorrupt(path, e.lineno, e.pos, f"invalid JSON ({e.msg})") from None
    if (
        not isinstance(env, dict)
        or not isinstance(env.get("manifest"), dict)
        or "run_id" not in env
    ):
        raise JobCorrupt(path, 1, 0, "expected {format, run_id, created_at, manifest: {...}}")
    return env


def history_total(run_dir: Path) -> int | None:
    """The last total given by set_total, as history.jsonl recorded it."""
    path = run_dir / HISTORY
    total = None
    if path.exists():
        for block in lines.scan(path):
            for event in block.items:
                if isinstance(event, dict) and type(event.get("total")) is int:
                    total = event["total"]
    return total


def read_reviews(run_dir: Path, end: int | None = None) -> list[dict[str, Any]]:
    """Every review decision in the order made (complete lines only)."""
    path = Path(run_dir) / REVIEWS
    if not path.exists():
        return []
    out: list[dict[str, Any]] = []
    for block in lines.scan(path, 0, end):
        for i, r in enumerate(block.items):
            if not (
                isinstance(r, dict)
                and type(r.get("frame")) is int
                and isinstance(r.get("target"), str)
            ):
                block.corrupt(i, "expected a review {frame, target, decision, text?, at}")
        out.extend(block.items)
    return out
