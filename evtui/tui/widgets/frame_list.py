"""The frame list: one line per frame with its state per slot and its review marks.

A ScrollView drawing only the visible lines, so a filtered list of thousands of frames
costs what the screen shows. Glyphs: ● done, ✗ failed, · skipped, ○ pending; then
✓ accepted, ✗ rejected, ✎ edited, ★ preferred, ≠ providers disagree, c cache hit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from evtui.tui.book import DONE, FAILED, SKIPPED, FrameBook

GLYPH = {DONE: "●", FAILED: "✗", SKIPPED: "·"}
MARK = {"accept": "✓", "reject": "✗", "edit": "✎"}


class FrameList(ScrollView, can_focus=False):
    """Frames of the current filter; the current one highlighted. Click to select."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "framelist--cursor",
        "framelist--done",
        "framelist--failed",
        "framelist--skipped",
        "framelist--pending",
        "framelist--mark",
        "framelist--flag",
        "framelist--index",
    }

    @dataclass
    class Selected(Message):
        frame: int

    def __init__(self, book: FrameBook, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.book = book
        self.frames = np.arange(book.n)
        self.current = 0
        self._digits = len(str(max(book.n - 1, 0)))

    def show(self, frames: np.ndarray, current: int) -> None:
        """New list contents and cursor; scrolls so the cursor stays in view."""
        self.frames = frames
        self.current = current
        self.virtual_size = Size(self._digits + 2 + len(self.book.slots) + 5, int(frames.size))
        pos = self.position(current)
        if pos is not None:
            top = int(self.scroll_offset.y)
            h = max(self.scrollable_content_region.height, 1)
            if pos < top:
                self.scroll_to(y=pos, animate=False)
            elif pos >= top + h:
                self.scroll_to(y=pos - h + 1, animate=False)
        self.refresh()

    def refresh_if_showing(self, frames: set[int]) -> None:
        """Redraw when any of `frames` is on screen (new answers elsewhere change nothing)."""
        if not frames or not self.frames.size:
            return
        top = int(self.scroll_offset.y)
        shown = self.frames[top : top + self.scrollable_content_region.height]
        if shown.size and any(int(shown[0]) <= f <= int(shown[-1]) for f in frames):
            self.refresh()

    def position(self, frame: int) -> int | None:
        i = int(np.searchsorted(self.frames, frame))
        return i if i < self.frames.size and int(self.frames[i]) == frame else None

    def _styles(self) -> dict[str, Style]:
        return {
            n.removeprefix("framelist--"): self.get_component_rich_style(n)
            for n in self.COMPONENT_CLASSES
        }

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        row = int(self.scroll_offset.y) + y
        base = self.rich_style
        if not 0 <= row < self.frames.size:
            return Strip.blank(width, base)
        st = self._styles()
        f = int(self.frames[row])
        book = self.book
        cursor = f == self.current
        segs = [Segment(f" {f:>{self._digits}} ", st["index"])]
        for si in range(len(book.slots)):
            code = int(book.state[si, f])
            name = {DONE: "done", FAILED: "failed", SKIPPED: "skipped"}.get(code, "pending")
            segs.append(Segment(GLYPH.get(code, "○"), st[name]))
        marks = "".join(
            MARK[d["decision"]]
            for c in book.columns_for(f)
            if (d := book.decision(f, c)) is not None
        )
        segs.append(Segment(" " + marks[:2], st["mark"]))
        if book.preferred(f) is not None:
            segs.append(Segment("★", st["mark"]))
        if book.disagree[f]:
            segs.append(Segment("≠", st["flag"]))
        if book.cache[f]:
            segs.append(Segment("c", st["flag"]))
        if cursor:
            over = st["cursor"]
            base = base + over
            segs = [Segment(t, (s or Style()) + over) for t, s, _ in segs]
        return Strip(segs).adjust_cell_length(width, base)

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:  # the border or the scrollbar
            return
        row = int(self.scroll_offset.y) + offset.y
        if 0 <= row < self.frames.size:
            self.post_message(self.Selected(int(self.frames[row])))
