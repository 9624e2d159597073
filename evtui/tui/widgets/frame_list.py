"""The frame list: one line per frame with its state per slot and its review marks.

A ScrollView drawing only the visible lines, so a filtered list of thousands of frames
costs what the screen shows. Lines are cached per frame until that frame changes, and a
cursor move that does not scroll repaints two lines, not the list.
Glyphs: ● done, ✗ failed, · skipped, ○ pending; then ✓ accepted, ✗ rejected, ✎ edited,
★ preferred, ≠ providers disagree, c cache hit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.geometry import Region, Size
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
        self._lines: dict[int, Strip] = {}  # frame -> its line without the cursor
        self._lines_for: tuple[int, Style] | None = None  # (width, base style) they fit
        self._base = Style()
        self._st: dict[str, Style] = {}

    def show(self, frames: np.ndarray, current: int) -> None:
        """New list contents and cursor; scrolls so the cursor stays in view."""
        before = self.current
        same = frames is self.frames or np.array_equal(frames, self.frames)
        self.frames = frames
        self.current = current
        self.virtual_size = Size(self._digits + 2 + len(self.book.slots) + 5, int(frames.size))
        pos = self.position(current)
        top = int(self.scroll_offset.y)
        h = max(self.scrollable_content_region.height, 1)
        if pos is not None and pos < top:
            self.scroll_to(y=pos, animate=False)
        elif pos is not None and pos >= top + h:
            self.scroll_to(y=pos - h + 1, animate=False)
        elif same and pos is not None:  # the cursor moved within the view: two lines
            old = self.position(before)
            if old is not None:
                self.refresh_line(old)
            self.refresh_line(pos)
            return
        self.refresh()

    def forget(self, frames: set[int]) -> None:
        """These frames changed: their cached lines are stale."""
        for f in frames:
            self._lines.pop(f, None)

    def refresh_if_showing(self, frames: set[int]) -> None:
        """Forget the lines of `frames`; repaint those on screen (others change nothing)."""
        if not frames or not self.frames.size:
            return
        self.forget(frames)
        top = int(self.scroll_offset.y)
        shown = self.frames[top : top + self.scrollable_content_region.height]
        if not shown.size or not any(int(shown[0]) <= f <= int(shown[-1]) for f in frames):
            return
        for f in frames:
            pos = self.position(f)
            if pos is not None and top <= pos < top + shown.size:
                self.refresh_line(pos)

    def position(self, frame: int) -> int | None:
        i = int(np.searchsorted(self.frames, frame))
        return i if i < self.frames.size and int(self.frames[i]) == frame else None

    def _styles(self) -> dict[str, Style]:
        return {
            n.removeprefix("framelist--"): self.get_component_rich_style(n)
            for n in self.COMPONENT_CLASSES
        }

    def render_lines(self, crop: Region) -> list[Strip]:
        # Styles once per paint, not per line: each lookup walks the widget's ancestors.
        self._base = self.rich_style
        self._st = self._styles()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        row = int(self.scroll_offset.y) + y
        if not self._st:  # called outside a paint (tests)
            self._base, self._st = self.rich_style, self._styles()
        base = self._base
        if not 0 <= row < self.frames.size:
            return Strip.blank(width, base)
        f = int(self.frames[row])
        if f == self.current:
            return self._line(f, width, base, cursor=True)
        if self._lines_for != (width, base):
            self._lines_for = (width, base)
            self._lines.clear()
        line = self._lines.get(f)
        if line is None:
            if len(self._lines) > 4096:
                self._lines.clear()
            line = self._lines[f] = self._line(f, width, base, cursor=False)
        return line

    def _line(self, f: int, width: int, base: Style, *, cursor: bool) -> Strip:
        st = self._st
        book = self.book
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
