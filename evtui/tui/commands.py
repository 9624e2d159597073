"""The command palette: every main-screen binding, plus commands with an argument.

Typing a number offers "Go to frame N"; render methods, filters, reruns on one target
and "prefer" each get a command, so nothing needs its key to be remembered.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from evtui.events.render import list_methods
from evtui.tui.bindings import MAIN
from evtui.tui.book import FILTERS

Command = tuple[str, str, Callable[[], Any]]


class EvtuiCommands(Provider):
    def _commands(self) -> list[Command]:
        screen: Any = self.screen
        if not hasattr(screen, "session"):
            return []
        out: list[Command] = [
            (b.description, b.tooltip, partial(screen.run_action, b.action))
            for b in MAIN
            if b.palette
        ]
        out += [
            (f"Render method: {m}", "preview this render method", partial(screen.set_method, m))
            for m in list_methods()
        ]
        out += [(f"Filter: {n}", d, partial(screen.set_filter, n)) for n, d in FILTERS.items()]
        for col in screen.book.columns:
            out.append(
                (f"Rerun on {col}", "caption this frame again there", partial(screen.rerun_on, col))
            )
            out.append(
                (
                    f"Prefer {col}",
                    "mark it the best for this frame",
                    partial(screen.prefer_col, col),
                )
            )
        return out

    async def discover(self) -> Hits:
        for name, help_text, cb in self._commands():
            yield DiscoveryHit(name, cb, help=help_text)

    async def search(self, query: str) -> Hits:
        screen: Any = self.screen
        q = query.strip()
        if q.isdigit() and hasattr(screen, "goto_checked"):
            yield Hit(1.0, f"Go to frame {q}", partial(screen.goto_checked, int(q)))
            return  # a number is a frame, not a fuzzy match on model names ("4-5")
        matcher = self.matcher(query)
        for name, help_text, cb in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), cb, help=help_text)
