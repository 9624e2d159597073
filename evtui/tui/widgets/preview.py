"""The frame, drawn with half blocks through Textual's Line API.

Strips are built once per (image, size) and then only indexed: moving to another frame
or resizing the terminal rebuilds them, nothing else does (no redraw on the 10 Hz tick).
"""

from __future__ import annotations

import textwrap

import numpy as np
from rich.segment import Segment
from textual.strip import Strip
from textual.widget import Widget

from evtui.tui.halfblock import fit, frame_strips


class FramePreview(Widget):
    """Shows one RGB frame as large as fits, centred, at its own aspect ratio."""

    DEFAULT_CSS = "FramePreview { height: 1fr; width: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._image: np.ndarray | None = None
        self._message = ""
        self._strips: list[Strip] = []
        self._built_for: tuple[int, int, int] | None = None  # (image id, width, height)
        self._serial = 0
        self.builds = 0  # how many times strips were built (tests, benchmarks)

    @property
    def image(self) -> np.ndarray | None:
        return self._image

    def show(self, image: np.ndarray) -> None:
        """A new frame: strips are rebuilt at the next paint."""
        self._image = image
        self._message = ""
        self._serial += 1
        self.refresh()

    def show_message(self, text: str) -> None:
        """No frame, a reason instead (e.g. the recording cannot be read there)."""
        self._image = None
        self._message = text
        self._serial += 1
        self.refresh()

    def _ensure(self) -> None:
        w, h = self.size.width, self.size.height
        key = (self._serial, w, h)
        if key == self._built_for:
            return
        self._built_for = key
        img = self._image
        if img is None or w <= 0 or h <= 0:
            self._strips = []
            return
        cols, rows = fit(img.shape[1], img.shape[0], w, h)
        self._strips = frame_strips(img, cols, rows)
        self.builds += 1

    def render_line(self, y: int) -> Strip:
        self._ensure()
        w, h = self.size.width, self.size.height
        style = self.rich_style
        strips = self._strips
        if not strips:
            lines = textwrap.wrap(self._message, max(w - 2, 8)) if self._message else []
            i = y - (h - len(lines)) // 2
            if 0 <= i < len(lines):
                text = lines[i][:w]
                left = max((w - len(text)) // 2, 0)
                return Strip([Segment(" " * left + text, style)]).adjust_cell_length(w, style)
            return Strip.blank(w, style)
        top = (h - len(strips)) // 2
        i = y - top
        if not 0 <= i < len(strips):
            return Strip.blank(w, style)
        strip = strips[i]
        left = max((w - strip.cell_length) // 2, 0)
        right = max(w - strip.cell_length - left, 0)
        return strip.crop_pad(strip.cell_length, left, right, style)
