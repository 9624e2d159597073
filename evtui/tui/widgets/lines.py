"""A scrollable view of Content lines drawn through the Line API, for panels that change often.

A Static in a scroll container re-lays-out and repaints the whole screen whenever its
height changes, and re-renders all its text on every update. Here a change of line count
only moves this widget's scroll extent (its scrollbar is always shown, `overflow-y:
scroll`, so nothing else shifts), each line is rendered once per (content, width, style),
and only lines whose content changed are repainted.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import events
from textual.content import Content
from textual.geometry import Region, Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.style import Style as VisualStyle
from textual.visual import Visual
from textual.widget import Widget

_EMPTY = Strip([])


class ContentView(ScrollView, can_focus=False):
    """Shows `Content`: one wrapped block (`wrap=True`) or lines taken as they are."""

    def __init__(
        self, *, wrap: bool = False, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.wrap = wrap
        self.lines: tuple[Content, ...] = ()
        self._keys: tuple[object, ...] = ()
        self._strips: list[Strip] = []
        self._cache: dict[object, Strip] = {}  # one line's key -> its strip (wrap=False)
        self._made_for: tuple[int, VisualStyle] | None = None  # (width, style) of the strips

    @property
    def text(self) -> str:
        """What the view says, as plain text."""
        return "\n".join(c.plain for c in self.lines)

    def set_lines(self, lines: Sequence[Content] | Content, *, top: bool = False) -> None:
        """Show `lines` (a single Content when wrapping); `top` scrolls back to line 0."""
        new = (lines,) if isinstance(lines, Content) else tuple(lines)
        keys = tuple(map(_key, new))
        if keys == self._keys:
            return
        old = self._strips
        self.lines, self._keys = new, keys
        if self._stale():
            self._make()
            self.refresh()
        else:
            self._make()
            if self.wrap or len(old) != len(self._strips):
                self.refresh()
            else:  # same extent: repaint only the lines that changed
                for y, (a, b) in enumerate(zip(old, self._strips, strict=True)):
                    if a is not b:
                        self.refresh_line(y)
        if top:
            self.scroll_to(y=0, animate=False, immediate=True)

    def _stale(self) -> bool:
        return self._made_for != (self.scrollable_content_region.width, self.visual_style)

    def _make(self) -> None:
        width = self.scrollable_content_region.width
        style = self.visual_style
        if self._made_for != (width, style):
            self._made_for = (width, style)
            self._cache.clear()
        if width <= 0:
            self._strips = []
        elif self.wrap:
            self._strips = [
                s for c in self.lines for s in Visual.to_strips(self, c, width, None, style)
            ]
        else:
            cache = self._cache
            if len(cache) > 4 * len(self.lines) + 64:
                cache.clear()
            strips = []
            for c, k in zip(self.lines, self._keys, strict=True):
                s = cache.get(k)
                if s is None:
                    got = Visual.to_strips(self, c, width, 1, style)
                    s = cache[k] = got[0] if got else _EMPTY
                strips.append(s)
            self._strips = strips
        extent = Size(width, len(self._strips))
        if extent != self.virtual_size:
            # Without the reactive's layout pass: only this widget's scrollbar depends on it.
            self.set_reactive(Widget.virtual_size, extent)
            bar = self.vertical_scrollbar
            bar.window_virtual_size = extent.height
            bar.window_size = self.scrollable_content_region.height
            bar.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self._stale():
            self._make()
            self.refresh()

    def render_lines(self, crop: Region) -> list[Strip]:
        if self._stale():  # once per paint, not per line
            self._make()
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        row = int(self.scroll_offset.y) + y
        # Unpadded: the styles cache pads with the widget's own background, as for a Static.
        return self._strips[row] if 0 <= row < len(self._strips) else _EMPTY


def _key(c: Content) -> object:
    """Content compares by text alone; a line's look also depends on its spans."""
    return (c.plain, tuple(c.spans))


__all__ = ["ContentView"]
