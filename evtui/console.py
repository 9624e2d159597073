"""Plain terminal output for headless commands: one updating progress line, no Textual."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def human_count(n: float) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.3g}"


def human_duration_us(us: float) -> str:
    s = us / 1e6
    if s >= 3600:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m{s % 60:04.1f}s"
    if s >= 60:
        return f"{int(s // 60)}m{s % 60:04.1f}s"
    if s >= 1:
        return f"{s:.3f} s"
    return f"{us / 1000:.3f} ms"


class Progress:
    """A single self-overwriting line on a terminal, redrawn at most 10 times a second.

    Off a terminal it stays silent until `close`, so logs get one summary line, not noise.
    """

    def __init__(self, label: str, total: int | None = None, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self._last_draw = 0.0
        self._tty = self.stream.isatty()
        self._width = 0

    def advance(self, n: int = 1, note: str = "") -> None:
        self.done += n
        now = time.monotonic()
        if self._tty and now - self._last_draw >= 0.1:
            self._last_draw = now
            self._draw(note)

    def _draw(self, note: str = "") -> None:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "█" * int(frac * 24) + "░" * (24 - int(frac * 24))
            eta = (self.total - self.done) / rate if rate > 0 else 0
            text = (
                f"{self.label} {bar} {self.done}/{self.total} {frac:4.0%}"
                f" {rate:.1f}/s ETA {eta:.0f}s"
            )
        else:
            text = f"{self.label} {self.done} {rate:.1f}/s"
        if note:
            text += f" {note}"
        pad = max(0, self._width - len(text))
        self._width = len(text)
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()

    def clear(self) -> None:
        """Erase the line (for output that follows on stdout)."""
        if self._tty and self._width:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._width = 0

    def close(self, summary: str | None = None) -> None:
        if self._tty:
            self._draw()
            self.stream.write("\n")
        if summary:
            self.stream.write(summary + "\n")
        self.stream.flush()
