"""The evtui app: `run_app(job)` for a job, `run_app_error(message)` when there is none.

The engine runs on its own thread (`Job.start_thread`); the app reads its snapshot and
drains its events together ten times a second and sends commands back through the
thread's methods. Nothing the engine does calls into the UI.

Quitting drains: in-flight requests finish and are recorded, unfinished frames stay
pending for the next run of the same command; quitting again stops at once.
Exit codes: 0 done, 1 some frames failed, 2 the engine could not go on (or the app
could not start), 3 budget reached, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Footer, Header, Static

from evtui.tui.bindings import APP, KeymapError, load_keymap
from evtui.tui.screens.main import MainScreen
from evtui.tui.session import EXIT_BAD_INPUT, Session, Source
from evtui.tui.themes import DEFAULT_THEME, load_themes

CSS = Path(__file__).with_name("app.tcss")
GC_PARK_S = 3.0
PANEL_EVERY = 3  # ticks between routing panel redraws
POLL_S = 0.1
NOTIFY = {
    "key_disabled": "warning",
    "breaker_open": "warning",
    "budget": "error",
    "error": "error",
    "done": "information",
    "draining": "information",
}


class _Themed(App[int]):
    """Theme loading shared by the job app and the error app."""

    CSS_PATH = CSS
    TITLE = "evtui"

    def __init__(self, theme: str | None = None, themes_dirs: tuple[Path, ...] | None = None):
        super().__init__()
        self._want_theme = theme
        self._themes_dirs = themes_dirs
        self.start_problems: list[str] = []

    def _load_themes(self) -> None:
        themes, problems = load_themes(self._themes_dirs)
        for t in themes.values():
            self.register_theme(t)
        self.start_problems += problems
        name = self._want_theme or DEFAULT_THEME
        if name not in self.available_themes:
            self.start_problems.append(
                f"unknown theme {name!r}; available: {', '.join(sorted(self.available_themes))}"
            )
            name = DEFAULT_THEME if DEFAULT_THEME in self.available_themes else "textual-dark"
        self.theme = name


class EvtuiApp(_Themed):
    """The app for one job. `source` replaces the engine thread (tests feed a fixed one)."""

    BINDINGS: ClassVar[list[BindingType]] = [b.binding() for b in APP]

    def __init__(
        self,
        job: Any,
        *,
        source: Source | None = None,
        theme: str | None = None,
        keymap_path: str | Path | None = None,
        themes_dirs: tuple[Path, ...] | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__(theme, themes_dirs)
        self.session = Session(job, source)
        self._keymap_path = keymap_path
        self._poll_s = poll_s
        self.main: MainScreen | None = None
        rec = Path(str(getattr(job.recording, "path", "") or ""))
        self.sub_title = f"{rec.name} · {job.cfg.mode} · run {Path(job.store.run_dir).name}"

    def on_mount(self) -> None:
        self._load_themes()
        try:
            self.set_keymap(load_keymap(self._keymap_path))
        except KeymapError as e:
            self.start_problems.append("keymap not applied:\n" + str(e))
        s = self.session
        try:
            s.load()
        except Exception as e:  # a damaged job file: say so, still run (new answers show)
            self.start_problems.append(f"could not read the job's earlier results: {e}")
        s.start()
        s.tick()
        self.main = MainScreen(s)
        self.push_screen(self.main)
        for p in self.start_problems:
            self.notify(p, severity="error", timeout=10)
        self.set_interval(self._poll_s, self._tick)
        # The routing panel at ~3 Hz, in its own callback: never in the same slice as a
        # tick's captions or a keypress.
        self.set_interval(self._poll_s * PANEL_EVERY, self._panel_tick)
        # The frame book only grows; rescanning it in full collections paused the UI for
        # ~180 ms. Park what exists every few seconds where the collector never looks.
        self._gc_before = gc.get_threshold()
        gc.set_threshold(self._gc_before[0], self._gc_before[1], 1_000)
        gc.freeze()
        self.set_interval(GC_PARK_S, _park_garbage_collector)

    def on_unmount(self) -> None:
        before = getattr(self, "_gc_before", None)
        if before is not None:
            gc.set_threshold(*before)
            gc.unfreeze()

    async def _tick(self) -> None:
        s = self.session
        for e in s.poll():
            sev = NOTIFY.get(e.kind)
            if sev is not None:
                self.notify(e.message, severity=sev, timeout=6)  # type: ignore[arg-type]
        # Hundreds of captions a tick at full rate: filed in slices, so a keypress that
        # arrives meanwhile is handled within a few milliseconds, not after all of them.
        while s.absorb():
            await asyncio.sleep(0)
        if self.main is not None:
            self.main.apply()
        if s.quitting and not s.alive:
            self.exit(s.exit_code())

    def _panel_tick(self) -> None:
        if self.main is not None:
            self.main.apply_panel()

    def action_quit(self) -> None:  # type: ignore[override]
        what = self.session.quit()
        if what == "done":
            self.exit(self.session.exit_code())
        elif what == "draining":
            self.notify("finishing in-flight requests, then quitting; q again to stop at once")
        else:
            self.notify("stopping now; in-flight requests are abandoned (they stay pending)")

    def action_screenshot(self) -> None:
        path = self.save_screenshot(path=str(self.session.run_dir))
        self.notify(f"screenshot saved: {path}")


def _park_garbage_collector() -> None:
    gc.freeze()


class ErrorApp(_Themed):
    """Shows why evtui cannot start (config, recording, key) and waits for a key."""

    BINDINGS: ClassVar[list[BindingType]] = [("q,escape,enter", "quit", "Quit")]

    def __init__(self, message: str, *, theme: str | None = None, **kw: Any) -> None:
        super().__init__(theme, **kw)
        self.message = message

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Vertical(id="error-box"):
            yield Static(Content.styled("evtui cannot start", "bold $error"), id="error-title")
            yield Static(Content(self.message), id="error-message")
            yield Static(
                Content.styled(
                    "Fix what is listed above and run the same command again. "
                    "This text is also printed when you quit.",
                    "$text-muted",
                ),
                id="error-hint",
            )
        yield Footer()

    def on_mount(self) -> None:
        self._load_themes()

    def action_quit(self) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT)


def run_app(job: Any, *, theme: str | None = None, keymap_path: str | Path | None = None) -> int:
    """Run the app on an opened Job until the user quits; returns the exit code.

    The job is not closed here (its opener closes it); the engine thread is stopped.
    `theme` and `keymap_path` default to the job config's `ui:` section.
    """
    ui = getattr(getattr(job, "cfg", None), "ui", None)
    if ui is not None:
        theme = theme or ui.theme
        keymap_path = keymap_path or ui.keymap
    app = EvtuiApp(job, theme=theme, keymap_path=keymap_path)
    code: int | None = None
    try:
        code = app.run()
    finally:
        app.session.close()
    s = app.session
    if code is None:  # the app ended without a verdict (it crashed; Textual has said why)
        code = EXIT_BAD_INPUT
    # The same words the app showed: every provider down, the engine stopped, the budget.
    banner = app.main.banner if app.main is not None else ""
    for text in dict.fromkeys(t for t in (s.problem(), banner) if t):
        print(f"evtui: {text}", file=sys.stderr)
    print(s.verdict_text(), file=sys.stderr)
    return code


def run_app_error(message: str) -> int:
    """Show a config/recording/key error in the app, then print it to stderr; returns 2."""
    ErrorApp(message).run()
    print(message, file=sys.stderr)
    return EXIT_BAD_INPUT


__all__ = ["ErrorApp", "EvtuiApp", "run_app", "run_app_error"]
