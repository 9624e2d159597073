"""The frame, drawn with half blocks through Textual's Line API.

Strips are built once per (image, size, style), centred and padded to the widget, and
then only indexed: moving to another frame or resizing the terminal rebuilds them,
nothing else does (no redraw on the 10 Hz tick).
"""

from __future__ import annotations

import textwrap

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.geometry import Region
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
        self._built_for: tuple[int, int, int, Style] | None = None  # (image, w, h, style)
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
        style = self.rich_style
        key = (self._serial, w, h, style)
        if key == self._built_for:
            return
        self._built_for = key
        img = self._image
        if img is None or w <= 0 or h <= 0:
            self._strips = self._message_lines(w, h, style)
            return
        cols, rows = fit(img.shape[1], img.shape[0], w, h)
        strips = frame_strips(img, cols, rows)
        blank = Strip.blank(w, style)
        top = (h - len(strips)) // 2
        left = max((w - cols) // 2, 0)
        right = max(w - cols - left, 0)
        self._strips = (
            [blank] * top
            + [s.crop_pad(cols, left, right, style) for s in strips]
            + [blank] * (h - top - len(strips))
        )
        self.builds += 1

    def _message_lines(self, w: int, h: int, style: Style) -> list[Strip]:
        lines = textwrap.wrap(self._message, max(w - 2, 8)) if self._message else []
        top = (h - len(lines)) // 2
        out = [Strip.blank(w, style)] * max(h, 0)
        for i, text in enumerate(lines):
            if 0 <= top + i < h:
                text = text[:w]
                pad = " " * max((w - len(text)) // 2, 0)
                out[top + i] = Strip([Segment(pad + text, style)]).adjust_cell_length(w, style)
        return out

    def render_lines(self, crop: Region) -> list[Strip]:
        self._ensure()  # once per paint: the widget's style is costly to look up per line
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        built = self._built_for
        if built is None or built[:3] != (self._serial, self.size.width, self.size.height):
            self._ensure()  # called outside a paint (tests)
        if 0 <= y < len(self._strips):
            return self._strips[y]
        return Strip.blank(self.size.width)
