"""The explain view: everything the job recorded about one frame, target by target.

Every route record (pick and weights, each attempt with key, outcome, status, wait,
latency, bytes, retry-after; fallbacks, cache, final), every answer as the provider
sent it (the first and any reruns) and every review decision.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import BindingType
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Footer, Static

from evtui.tui.bindings import EXPLAIN
from evtui.tui.book import FrameBook, column_of
from evtui.tui.text import key_label, route_summary, secs, usd

TraceLoader = Callable[[int], list[dict[str, Any]]]


def _attempt_rows(attempts: Sequence[Mapping[str, Any]]) -> list[Any]:
    """One aligned row per attempt; columns as wide as their longest value."""
    tw = min(max((len(str(a.get("target", ""))) for a in attempts), default=6), 32)
    kw = min(max((len(key_label(str(a.get("key", "")))) for a in attempts), default=3), 22)
    ow = min(max((len(str(a.get("outcome", ""))) for a in attempts), default=7), 18)
    tw, kw, ow = max(tw, 6), max(kw, 3), max(ow, 7)
    head = f"  {'#':>2}  {'target':<{tw}}  {'key':<{kw}}  {'outcome':<{ow}} {'st':>4} "
    head += f"{'waited':>8} {'latency':>8} {'bytes':>7}  note"
    rows: list[Any] = [(head, "bold $text-muted"), "\n"]
    for i, a in enumerate(attempts, 1):
        outcome = str(a.get("outcome", ""))
        style = "$success" if outcome == "ok" else "$warning"
        note = []
        if a.get("retry_after_s") is not None:
            note.append(f"retry {secs(a['retry_after_s'])}")
        if a.get("counted") is False:
            note.append("not counted")
        if a.get("note"):
            note.append(str(a["note"]))
        rows += [
            f"  {i:>2}  {str(a.get('target', ''))[:tw]:<{tw}}  "
            f"{key_label(str(a.get('key', '')))[:kw]:<{kw}}  ",
            (f"{outcome[:ow]:<{ow}}", style),
            f" {a.get('status') or '-':>4} {secs(a.get('waited_s')):>8} "
            f"{secs(a.get('latency_s')):>8} {a.get('bytes', 0):>7}  {', '.join(note)}",
            "\n",
        ]
    return rows


def route_block(tr: Mapping[str, Any], n: int, of: int) -> Content:
    pick = tr.get("pick") or {}
    weights = pick.get("weights") or {}
    final = tr.get("final") or {}
    which = "rerun" if tr.get("rerun") else "first"
    parts: list[Any] = [
        (f"route record {n} of {of} ({which}) · slot {tr.get('slot')}", "bold $secondary"),
        "\n",
        ("  pick ", "$text-muted"),
        str(pick.get("target", "-")),
    ]
    if weights:
        ws = ", ".join(f"{k} {v:g}" for k, v in weights.items())
        parts += [("   weights ", "$text-muted"), ws]
    parts.append("\n")
    parts += _attempt_rows(tr.get("attempts") or [])
    fb = " → ".join(tr.get("fallbacks") or []) or "none"
    parts += [("  fallbacks ", "$text-muted"), fb, ("   cache ", "$text-muted")]
    parts += [str(tr.get("cache", "off")), "\n"]
    state = str(final.get("state", "?"))
    parts += [
        ("  final ", "$text-muted"),
        (state, "bold $success" if state == "done" else "bold $error"),
        f" · {final.get('target') or '-'} · {final.get('input_tokens', 0)} in / "
        f"{final.get('output_tokens', 0)} out · {usd(final.get('cost_usd') or 0.0)}",
    ]
    if final.get("reason"):
        parts += [" · ", (str(final["reason"]), "$error")]
    parts += ["\n", ("  summary ", "$text-muted"), route_summary(tr)]
    return Content.assemble(*parts)


def answers_block(book: FrameBook, frame: int, col: str) -> Content:
    parts: list[Any] = []
    hist = book.history(frame, col)
    for i, r in enumerate(hist):
        label = "first answer (as recorded)" if i == 0 else f"rerun {i}"
        if i:
            parts.append("\n")
        parts += [(f"answer {i + 1}: {label} · {r.get('state')}", "bold $secondary"), "\n  "]
        if isinstance(r.get("caption"), str):
            parts.append(r["caption"])
        else:
            parts.append((str(r.get("reason") or "-"), "$error"))
    for rv in book.reviews.get(frame, []):
        if rv.get("target") != col:
            continue
        parts += ["\n", (f"review: {rv.get('decision')}", "bold $accent")]
        if rv.get("text"):
            parts += [" ", (str(rv["text"]), "italic")]
        if rv.get("at"):
            parts += [(f"  ({rv['at']})", "$text-muted")]
    if not parts:
        parts.append(("no answer recorded yet", "italic $text-muted"))
    return Content.assemble(*parts)


def explain_content(
    book: FrameBook, frame: int, traces: Sequence[Mapping[str, Any]], *, route_mode: bool = False
) -> Content:
    """Per column: its route records and answers. Route mode lists only who was involved
    (a route record sits under the target that gave the final answer)."""
    blocks: list[Content] = []
    cols = [] if route_mode else book.columns_for(frame)
    cols += [c for c in book.answers.get(frame, {}) if c not in cols]
    by_col: dict[str, list[Mapping[str, Any]]] = {c: [] for c in cols}
    for tr in traces:
        final = tr.get("final") or {}
        col = column_of({"target": final.get("target"), "slot": tr.get("slot")})
        by_col.setdefault(col, []).append(tr)
    for col, trs in by_col.items():
        blocks.append(Content.styled(f"━━ {col} ", "bold $primary"))
        for i, tr in enumerate(trs, 1):
            blocks.append(route_block(tr, i, len(trs)))
        if not trs:
            blocks.append(Content.styled("no route record yet", "italic $text-muted"))
        blocks.append(answers_block(book, frame, col))
        blocks.append(Content(""))
    if not blocks:
        blocks.append(Content.styled("nothing recorded for this frame yet", "italic $text-muted"))
    return Content("\n").join(blocks)


class ExplainScreen(Screen[None]):
    """Full route records of one frame; left/right step through frames."""

    BINDINGS: ClassVar[list[BindingType]] = [b.binding() for b in EXPLAIN]

    def __init__(
        self, book: FrameBook, frame: int, traces: TraceLoader, frames: Any, route_mode: bool
    ) -> None:
        super().__init__()
        self.route_mode = route_mode
        self.book = book
        self.frame = frame
        self._traces = traces
        self._frames = frames  # callable: (frame, step) -> next frame or None

    def compose(self) -> ComposeResult:
        yield Static("", id="explain-title")
        with VerticalScroll(id="explain-scroll"):
            yield Static("", id="explain-body")
        yield Footer()

    def on_mount(self) -> None:
        self.refresh_view()

    def refresh_view(self) -> None:
        traces = self._traces(self.frame)
        self.query_one("#explain-title", Static).update(
            Content.assemble(
                ("Explain ", "bold"),
                (f"frame {self.frame}", "bold $accent"),
                (f" · {len(traces)} route record{'s' if len(traces) != 1 else ''}", "$text-muted"),
                (" · esc to close", "$text-muted"),
            )
        )
        self.query_one("#explain-body", Static).update(
            explain_content(self.book, self.frame, traces, route_mode=self.route_mode)
        )

    def action_close(self) -> None:
        self.dismiss(None)

    def action_step(self, step: int) -> None:
        nxt = self._frames(self.frame, step)
        if nxt is not None:
            self.frame = nxt
            self.refresh_view()
