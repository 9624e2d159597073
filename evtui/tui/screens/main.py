"""The main screen: frame list, preview, routing panel, caption columns, progress.

State lives here (current frame, filter, selected column, preview method); data comes
from the Session. The app calls `apply()` on each 10 Hz tick; everything else happens
on a keypress. Only what changed is redrawn: the preview on frame/method/size, the
captions when the current frame got a new answer or review, the frame list when a line
it shows changed, the progress line on a new snapshot and the routing panel at ~3 Hz.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any, ClassVar

import numpy as np
from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from evtui.events.render import list_methods
from evtui.tui.bindings import MAIN
from evtui.tui.book import FILTERS
from evtui.tui.commands import EvtuiCommands
from evtui.tui.screens.dialogs import ChoiceScreen, EditScreen, GotoScreen, WeightsScreen
from evtui.tui.screens.explain import ExplainScreen
from evtui.tui.session import Session, View
from evtui.tui.widgets.captions import CaptionBoard
from evtui.tui.widgets.frame_list import FrameList
from evtui.tui.widgets.preview import FramePreview
from evtui.tui.widgets.progress import JobProgress
from evtui.tui.widgets.routing import RoutingPanel, all_down

NEXT_FILTER = {"unreviewed": "unreviewed", "failed": "failed", "disagreement": "disagree"}


class MainScreen(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [b.binding() for b in MAIN]
    COMMANDS: ClassVar[set[Any]] = {EvtuiCommands}

    def __init__(self, session: Session) -> None:
        super().__init__(id="main")
        self.session = session
        self.book = session.book
        self.frame = 0
        self.filter = "all"
        self.method = session.method
        self.col = 0  # selected caption column
        self.frames = np.arange(self.book.n)
        self._version = -1
        self._traces: list[dict[str, Any]] = []
        self._banner = ""
        self._ready = False
        self._panel_state = ""
        self.shown: tuple[int, str] | None = None  # (frame, method) the preview shows

    # -- layout -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        with Horizontal(id="body"):
            yield FrameList(self.book, id="frames")
            with Vertical(id="center"):
                with Horizontal(id="top"):
                    with Vertical(id="preview-box"):
                        yield FramePreview(id="preview")
                        yield Static("", id="meta")
                    yield RoutingPanel(self.session.route_mode, id="routing")
                yield CaptionBoard(self.book, self.session.route_mode, id="captions")
        yield Static("", id="banner")
        yield JobProgress(id="progress")
        yield Footer()

    def on_mount(self) -> None:
        self._progress = self.query_one(JobProgress)
        self._routing = self.query_one(RoutingPanel)
        self._list = self.query_one(FrameList)
        self._ready = True
        self._routing.border_title = "routing"
        self.query_one("#preview-box").border_title = "frame"
        self.query_one("#frames").border_title = "frames"
        self.goto(0)
        self.apply()
        self.apply_panel()

    # -- the tick ---------------------------------------------------------------------
    def apply(self) -> None:
        """New snapshot and answers from the app's tick: redraw only what changed."""
        if not self._ready or not self.is_attached:
            return
        s = self.session
        snap = s.snapshot
        if self.app.screen is self:  # hidden panels do not refresh
            self._progress.show(snap)
            if snap.state != self._panel_state:  # a new state shows at once
                self.apply_panel()
        self._set_banner(s.problem() or all_down(snap) or _budget(snap))
        book = self.book
        if book.version != self._version:
            self._version = book.version
            touched = book.touched
            current_changed = self.frame in touched
            if self.filter == "all":  # the list itself is fixed: redraw if a shown line moved
                self._list.refresh_if_showing(touched)
            else:
                self._list.forget(touched)
                self._refilter()
            book.touched = set()
            if current_changed:
                self._traces = s.traces(self.frame)
                self._show_captions()

    def apply_panel(self) -> None:
        """The routing panel from the newest snapshot (the app calls this at ~3 Hz)."""
        if not self._ready or not self.is_attached or self.app.screen is not self:
            return
        snap = self.session.snapshot
        self._panel_state = snap.state
        self._routing.show(snap)

    @property
    def banner(self) -> str:
        """The must-see problem shown above the progress line ('' when none)."""
        return self._banner

    def _set_banner(self, text: str) -> None:
        if text == self._banner:
            return
        self._banner = text
        banner = self.query_one("#banner", Static)
        banner.update(text)
        banner.display = bool(text)

    # -- frames -------------------------------------------------------------------------
    def _refilter(self) -> None:
        frames = np.flatnonzero(self.book.mask(self.filter))
        if np.array_equal(frames, self.frames):
            self._list.refresh()
            return
        self.frames = frames
        self._list.show(self.frames, self.frame)

    def goto(self, k: int) -> None:
        """Show frame k: preview, metadata, captions, list cursor."""
        k = int(min(max(k, 0), max(self.book.n - 1, 0)))
        self.frame = k
        self._show_preview()
        self._list.show(self.frames, k)
        # The captions (route records to read, words to compare, text to wrap: ~5 ms) in
        # their own slice of the loop, after the frame is on screen: a keypress or a paint
        # waiting meanwhile goes first.
        self.call_after_refresh(self._load_captions, k)

    def _load_captions(self, k: int) -> None:
        if k != self.frame or not self.is_attached:
            return  # moved on already: the newer move loads its own
        self._traces = self.session.traces(k)
        asyncio.get_running_loop().call_soon(self._captions_of, k)  # the loop's next turn

    def _captions_of(self, k: int) -> None:
        if k == self.frame and self.is_attached:
            self._show_captions()

    def _show_preview(self) -> None:
        """The frame if it is rendered; else a note, and the preview worker renders it.

        Windows are rendered in a worker process, never on this loop (a window can cost
        tens of milliseconds to decode); the neighbours in the list are rendered ahead,
        so stepping through frames finds them ready.
        """
        s, k, method = self.session, self.frame, self.method
        v = s.cached_view(k, method)
        if v is not None:
            self._show_view(v)
        else:
            self.query_one(FramePreview).show_message(f"rendering frame {k}…")
            self.shown = None
            self._show_meta(None)
            loop = asyncio.get_running_loop()
            s.request_view(k, method).add_done_callback(
                lambda fut: loop.call_soon_threadsafe(self._view_done, fut)
            )
        # Neighbours from the list as shown (a hint: the list may trail the newest answers);
        # asking the book's masks would scan every frame three more times per move.
        i = int(np.searchsorted(self.frames, k))
        near = self.frames[max(i - 1, 0) : i + 3].tolist()
        s.want_views([k, *(j for j in near if j != k)], method)

    def _view_done(self, fut: Future[View]) -> None:
        if fut.cancelled() or not self.is_attached:
            return
        err = fut.exception()
        if err is not None:  # the worker itself failed (render errors come back as views)
            v = View(self.frame, 0, 0, 0, self.method, None, f"cannot render: {err}")
        else:
            v = fut.result()
        if (v.index, v.method) == (self.frame, self.method):
            self._show_view(v)

    def _show_view(self, v: View) -> None:
        self.shown = (v.index, v.method)
        preview = self.query_one(FramePreview)
        if v.pixels is not None:
            preview.show(v.pixels)
        else:
            preview.show_message(v.error)
        self._show_meta(v)

    def _show_meta(self, v: View | None) -> None:
        job_method = self.session.method
        method = v.method if v is not None else self.method
        parts: list[Any] = [
            ("frame ", "$text-muted"),
            (f"{self.frame}", "bold $accent"),
            (f"/{self.book.n - 1}", "$text-muted"),
        ]
        if v is not None and not v.error:
            parts += [
                f"  {v.t0_us / 1e6:.3f}–{v.t1_us / 1e6:.3f} s  ",
                f"{v.events:,} ev  ",
            ]
        else:
            parts.append("  ")
        parts.append((method, "bold $secondary"))
        if method != job_method:
            parts.append((f" (preview; job renders {job_method})", "$warning"))
        if self.filter != "all":
            parts.append((f"  filter {self.filter} ({self.frames.size})", "$accent"))
        self.query_one("#meta", Static).update(Content.assemble(*parts), layout=False)

    def _show_captions(self) -> None:
        cols = self.book.columns_for(self.frame)
        self.col = min(self.col, len(cols) - 1)
        self.query_one(CaptionBoard).show(self.frame, self._traces, cols[self.col])

    @property
    def selected(self) -> str:
        return self.book.columns_for(self.frame)[self.col]

    def step(self, frame: int, step: int) -> int | None:
        """The neighbour of `frame` in the current list (explain view steps with it too)."""
        return self.book.next_in(self.book.mask(self.filter), frame, step)

    def set_filter(self, name: str) -> None:
        if name not in FILTERS:
            return
        mask = self.book.mask(name)
        if name != "all" and not mask.any():
            self.notify(f"no frames match filter {name!r}", severity="warning")
            return
        self.filter = name
        self._refilter()
        if not mask[self.frame]:
            self.goto(int(np.flatnonzero(mask)[0]))
        else:
            self._show_preview()
        self.notify(f"filter: {FILTERS[name]} ({self.frames.size})")

    def set_method(self, method: str) -> None:
        if method not in list_methods():
            return
        self.method = method
        self._show_preview()

    def goto_checked(self, k: int) -> None:
        if not 0 <= k < self.book.n:
            self.notify(f"no frame {k}: frames are 0 to {self.book.n - 1}", severity="warning")
            return
        if not self.book.mask(self.filter)[k]:
            self.filter = "all"
            self._refilter()
        self.goto(k)

    # -- actions: moving ------------------------------------------------------------------
    def _move(self, step: int) -> None:
        nxt = self.step(self.frame, step)
        if nxt is None:
            self.notify("no more frames this way", timeout=1.5)
            return
        self.goto(nxt)

    def action_next_frame(self) -> None:
        self._move(1)

    def action_prev_frame(self) -> None:
        self._move(-1)

    def action_first_frame(self) -> None:
        if self.frames.size:
            self.goto(int(self.frames[0]))

    def action_last_frame(self) -> None:
        if self.frames.size:
            self.goto(int(self.frames[-1]))

    def action_goto_frame(self) -> None:
        def done(k: int | None) -> None:
            if k is not None:
                self.goto_checked(k)

        self.app.push_screen(GotoScreen(self.book.n), done)

    def _next(self, what: str) -> None:
        mask = self.book.mask(NEXT_FILTER[what])
        nxt = self.book.next_in(mask, self.frame, 1)
        if nxt is None:
            nxt = self.book.next_in(mask, -1, 1)  # wrap around
        if nxt is None:
            self.notify(f"no {what} frames", timeout=2)
            return
        if not self.book.mask(self.filter)[nxt]:
            self.filter = "all"
            self._refilter()
        self.goto(nxt)

    def action_next_unreviewed(self) -> None:
        self._next("unreviewed")

    def action_next_failed(self) -> None:
        self._next("failed")

    def action_next_disagreement(self) -> None:
        self._next("disagreement")

    def action_next_column(self) -> None:
        self.col = (self.col + 1) % len(self.book.columns_for(self.frame))
        self._show_captions()

    def action_prev_column(self) -> None:
        self.col = (self.col - 1) % len(self.book.columns_for(self.frame))
        self._show_captions()

    # -- actions: review ------------------------------------------------------------------
    def _review(self, decision: str, col: str, text: str | None = None) -> None:
        try:
            self.session.review(self.frame, col, decision, text)
        except Exception as e:  # a write failure or a refused record: say it, lose nothing
            self.notify(f"review not saved: {e}", severity="error")
            return
        self.book.touched.discard(self.frame)
        self._version = self.book.version
        self._list.forget({self.frame})
        self._refilter()
        self._show_captions()

    def action_review(self, decision: str) -> None:
        col = self.selected
        r = self.book.newest(self.frame, col)
        if r is None or not isinstance(r.get("caption"), str):
            self.notify(
                f"{col} has no caption for frame {self.frame} to {decision}", severity="warning"
            )
            return
        self._review(decision, col)

    def action_edit_caption(self) -> None:
        col = self.selected
        r = self.book.newest(self.frame, col)
        prev = self.book.decision(self.frame, col)
        text = (prev or {}).get("text") or (r or {}).get("caption") or ""
        frame = self.frame

        def done(new: str | None) -> None:
            if new is not None and frame == self.frame:
                self._review("edit", col, new)

        self.app.push_screen(EditScreen(f"Edit {col}'s caption of frame {frame}", text), done)

    def action_prefer(self) -> None:
        self.prefer_col(self.selected)

    def prefer_col(self, col: str) -> None:
        if self.book.newest(self.frame, col) is None:
            self.notify(f"{col} has not answered frame {self.frame}", severity="warning")
            return
        self._review("prefer", col)

    # -- actions: engine --------------------------------------------------------------------
    def action_toggle_pause(self) -> None:
        state = self.session.toggle_pause()
        self.notify(f"engine {state}", timeout=2)

    def _rerun(self, cols: list[str] | None) -> None:
        if not self.session.alive:
            self.notify("the engine has stopped: reruns need a running session", severity="warning")
            return
        try:
            slots = self.session.rerun(self.frame, cols)
        except Exception as e:
            self.notify(f"rerun failed: {e}", severity="error")
            return
        if not slots:
            self.notify(f"{cols[0] if cols else '?'} is not a slot of this job", severity="warning")
            return
        self.notify(f"rerun of frame {self.frame} on {', '.join(slots)} requested", timeout=2)

    def rerun_on(self, col: str) -> None:
        self._rerun([col])

    def action_rerun_one(self) -> None:
        if self.session.route_mode:
            self.notify("route mode: the router picks the target of a rerun", timeout=2)
        self._rerun([self.selected])

    def action_rerun_all(self) -> None:
        self._rerun(None)

    def action_explain(self) -> None:
        s = self.session
        self.app.push_screen(
            ExplainScreen(self.book, self.frame, s.traces, self.step, s.route_mode)
        )

    def action_pick_render(self) -> None:
        job = self.session.method
        choices = [(m, f"{m}{'  (the job’s)' if m == job else ''}") for m in list_methods()]

        def done(m: str | None) -> None:
            if m is not None:
                self.set_method(m)

        self.app.push_screen(ChoiceScreen("Preview render method", choices, self.method), done)

    def action_edit_weights(self) -> None:
        note = "" if self.session.route_mode else "compare mode: every target gets every frame"

        def done(ws: dict[str, float] | None) -> None:
            if ws is not None:
                self.session.set_weights(ws)
                self.notify("weights: " + ", ".join(f"{k} {v:g}" for k, v in ws.items()))

        self.app.push_screen(WeightsScreen(self.session.weights(), note), done)

    def action_pick_filter(self) -> None:
        counts = {n: int(self.book.mask(n).sum()) for n in FILTERS}
        choices = [(n, f"{n:<11} {counts[n]:>6}  {d}") for n, d in FILTERS.items()]

        def done(name: str | None) -> None:
            if name is not None:
                self.set_filter(name)

        self.app.push_screen(ChoiceScreen("Filter the frame list", choices, self.filter), done)

    def on_frame_list_selected(self, event: FrameList.Selected) -> None:
        self.goto(event.frame)


def _budget(snap: Any) -> str:
    return snap.message if snap.state == "budget" and snap.message else ""
