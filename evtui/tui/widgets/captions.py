"""Caption columns: one per target, side by side, words only one provider used marked.

Each column shows the newest answer (a rerun replaces the first in view; the first stays
in the job files and in the explain view), its latency, tokens, cost, cache badge,
review marks and the one-line route summary. Colours are theme variables only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content

from evtui.tui.book import FrameBook
from evtui.tui.diff import unique_words
from evtui.tui.text import count, route_summary, secs, usd
from evtui.tui.widgets.lines import ContentView

BADGE = {
    "accept": ("✓ accepted", "bold $success"),
    "reject": ("✗ rejected", "bold $error"),
    "edit": ("✎ edited", "bold $warning"),
}


def newest_trace(traces: Sequence[Mapping[str, Any]], col: str) -> Mapping[str, Any] | None:
    """The last route record that answered for (or was asked of) a column."""
    for tr in reversed(traces):
        final = tr.get("final") or {}
        if final.get("target") == col or tr.get("slot") == col:
            return tr
    return None


def cache_source(r: Mapping[str, Any]) -> str:
    src = r.get("cache_source")
    if isinstance(src, Mapping):
        src = src.get("frame", src.get("key"))
    return f" · from frame {src}" if src is not None else ""


def column_content(
    book: FrameBook,
    frame: int,
    col: str,
    words: Sequence[tuple[str, bool]] | None,
    trace: Mapping[str, Any] | None,
    *,
    route_mode: bool,
) -> Content:
    """Everything one column says about one frame."""
    r = book.newest(frame, col)
    parts: list[str | tuple[str, str] | Content] = []
    if r is None:
        why = "not captioned yet"
        if route_mode and book.answers.get(frame):
            who = ", ".join(book.answers[frame])
            why = f"not asked: the router sent this frame to {who}"
        return Content.styled(why, "italic $text-muted")
    state = r.get("state")
    if state in ("done", "duplicate") and isinstance(r.get("caption"), str):
        for tok, unique in words or [(r["caption"], False)]:
            parts.append((tok, "bold underline $warning") if unique else tok)
    elif state == "skipped":
        parts.append((f"skipped: {r.get('reason') or ''}", "italic $text-muted"))
    else:
        parts.append((f"failed: {r.get('reason') or 'no reason recorded'}", "bold $error"))
    parts.append("\n\n")
    lat = r.get("latency_s")
    meta = (
        f"{secs(lat) if lat is not None else '--'} · "
        f"{count(r.get('input_tokens') or 0)}→{count(r.get('output_tokens') or 0)} tok · "
        f"{usd(r.get('cost_usd') or 0.0)}"
    )
    parts.append((meta, "$text-muted"))
    badges: list[tuple[str, str]] = []
    if r.get("cache_hit"):
        badges.append((f"cache hit{cache_source(r)}", "bold $accent"))
    n = len(book.history(frame, col))
    if n > 1:
        badges.append((f"rerun ×{n - 1}", "bold $secondary"))
    decision = book.decision(frame, col)
    if decision is not None:
        badges.append(BADGE[decision["decision"]])
    if book.preferred(frame) == col:
        badges.append(("★ preferred", "bold $accent"))
    if "truncated" in (r.get("flags") or ()):
        badges.append(("truncated", "bold $warning"))
    if badges:
        parts.append("\n")
        for i, b in enumerate(badges):
            if i:
                parts.append("  ")
            parts.append(b)
    if decision is not None and decision.get("decision") == "edit":
        parts.append("\n")
        parts.append(("✎ ", "bold $warning"))
        parts.append((str(decision.get("text", "")), "italic"))
    parts.append("\n")
    parts.append((route_summary(trace), "$text-muted"))
    return Content.assemble(*parts)


class CaptionColumn(ContentView):
    """One target's column: a bordered, scrollable caption (no screen layout on update)."""

    def __init__(self, col: str) -> None:
        super().__init__(wrap=True, classes="caption-column")
        self.col = col
        self.border_title = col

    def update(self, content: Content) -> None:
        """Show `content` from its first line."""
        self.set_lines(content, top=True)


class CaptionBoard(Horizontal):
    """The row of caption columns for the current frame."""

    def __init__(self, book: FrameBook, route_mode: bool, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.book = book
        self.route_mode = route_mode
        self.columns: list[CaptionColumn] = []
        self.selected = ""
        self._serial = 0  # bumped by each show; columns still waiting from an older one drop

    def compose(self) -> ComposeResult:
        self.columns = [CaptionColumn(c) for c in self.book.columns]
        yield from self.columns

    def show(self, frame: int, traces: Sequence[Mapping[str, Any]], selected: str) -> None:
        """Redraw every column for `frame`; called on frame change or new answers only."""
        book = self.book
        wanted = book.columns_for(frame)
        have = [c.col for c in self.columns]
        if wanted != have:
            for c in self.columns[len(book.columns) :]:
                c.remove()
            self.columns = self.columns[: len(book.columns)]
            extra = [CaptionColumn(c) for c in wanted[len(book.columns) :]]
            if extra:
                self.mount_all(extra)
            self.columns += extra
        self.selected = selected
        self._serial += 1
        words = unique_words(book.captions(frame))
        todo = []
        for c in self.columns:
            c.set_class(c.col == selected, "-selected")
            trace = newest_trace(traces, c.col)
            todo.append(
                (
                    c,
                    column_content(
                        book, frame, c.col, words.get(c.col), trace, route_mode=self.route_mode
                    ),
                )
            )
        self._wrap_next(self._serial, todo)

    def _wrap_next(self, serial: int, todo: list[tuple[CaptionColumn, Content]]) -> None:
        """Wrap one column now and the next on the loop's next turn (~1 ms each), so a
        keypress or a paint never waits behind all of them; a newer `show` supersedes."""
        if serial != self._serial or not todo or not self.is_attached:
            return
        col, content = todo[0]
        col.update(content)
        if len(todo) > 1:
            asyncio.get_running_loop().call_soon(self._wrap_next, serial, todo[1:])
