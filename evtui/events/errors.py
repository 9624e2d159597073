"""Errors and warnings for bad recordings: one line naming the file and the byte offset."""

from __future__ import annotations

from collections import Counter
from pathlib import Path


class RecordingError(Exception):
    """A recording cannot be read. Printed as `file: byte N: what was expected`."""

    def __init__(self, path: str | Path, message: str, offset: int | None = None) -> None:
        self.path = str(path)
        self.offset = offset
        self.message = message
        where = f"{self.path}: byte {offset}" if offset is not None else self.path
        super().__init__(f"{where}: {message}")


class UnknownFormat(RecordingError):
    """No reader recognises the file's content."""


class MissingDependency(RecordingError):
    """The format needs an optional extra that is not installed."""

    def __init__(self, path: str | Path, what: str, extra: str) -> None:
        hint = f"pip install 'evtui[{extra}]'"
        super().__init__(path, f"reading {what} requires the '{extra}' extra: {hint}")
        self.extra = extra


class Diagnostics:
    """Counts of recoverable problems met while decoding, reported once with totals."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.first_offset: dict[str, int] = {}

    def add(self, what: str, n: int = 1, offset: int | None = None) -> None:
        if n <= 0:
            return
        self.counts[what] += int(n)
        if offset is not None and what not in self.first_offset:
            self.first_offset[what] = int(offset)

    def __bool__(self) -> bool:
        return bool(self.counts)

    def lines(self, path: str | Path) -> list[str]:
        out = []
        for what, n in sorted(self.counts.items()):
            at = self.first_offset.get(what)
            where = f" (first at byte {at})" if at is not None else ""
            out.append(f"{path}: warning: {n} {what}{where}")
        return out
