"""The routing panel: per target and key, what the engine is doing right now.

Built from the telemetry snapshot on the 10 Hz tick, and only when the snapshot object
changed. Per target: breaker, rate sparkline, in flight against the concurrency cap,
429s / overloads / 5xx / timeouts, latency p50/p95, weight against the share it really
got, spend. Per key: the same counts, learned limits and headroom, cooldown countdown
and why a key is disabled.
"""

from __future__ import annotations

from typing import Any

from textual import events
from textual.content import Content

from evtui.tui.text import clip, count, key_label, pct, secs, sparkline, usd
from evtui.tui.widgets.lines import ContentView

BREAKER = {
    "closed": ("● closed", "$success"),
    "open": ("● open", "bold $error"),
    "half_open": ("◐ half-open", "$warning"),
    "ramping": ("◑ ramping", "$warning"),
}


def _n(label: str, n: int, bad: str = "$warning") -> tuple[str, str]:
    return (f"{label} {n}", bad if n else "$text-muted")


def _line(parts: list[Any], width: int) -> Content:
    c = Content.assemble(*parts)
    return c if c.cell_length <= width else c.truncate(width, ellipsis=True)


def _limit(left: float | None, limit: float | None) -> str:
    if limit is None:
        return "?"
    return f"{count(left) if left is not None else '?'}/{count(limit)}"


def target_lines(t: Any, width: int, route_mode: bool) -> list[Content]:
    label, style = BREAKER.get(t.breaker, (t.breaker, "$warning"))
    if t.breaker == "open" and t.breaker_reopens_in_s > 0:
        label += f" · retry in {secs(t.breaker_reopens_in_s)}"
    head = clip(t.id, max(width - len(label) - 1, 8))
    pad = max(width - len(head) - len(label), 1)
    lines = [_line([(head, "bold $primary"), " " * pad, (label, style)], width)]
    spark_w = max(width - 10, 4)
    lines.append(_line([(sparkline(t.rps_series, spark_w), "$accent"), f" {t.rps:5.1f}/s"], width))
    lines.append(
        _line(
            [
                f"in flight {t.in_flight}/{t.concurrency_cap}  ",
                _n("429", t.rate_limited),
                "  ",
                _n("ovl", t.overloaded),
                "  ",
                _n("5xx", t.server_errors, "$error"),
                "  ",
                _n("t/o", t.timeouts + t.connection_errors, "$error"),
            ],
            width,
        )
    )
    lines.append(
        _line(
            [
                f"p50 {secs(t.latency_p50_s)}  p95 {secs(t.latency_p95_s)}  ",
                (usd(t.spend_usd), "bold"),
                (f"  cache {t.cache_hits}", "$text-muted"),
            ],
            width,
        )
    )
    if route_mode:
        share = f"weight {t.weight:g}  share {pct(t.share)} → got {pct(t.effective_share)}"
    else:
        share = f"weight {t.weight:g}  (compare: every frame)"
    fb = f"  fell back ×{t.fallbacks_out}" if t.fallbacks_out else ""
    lines.append(_line([(share, "$text-muted"), (fb, "$warning")], width))
    for ln in t.lanes:
        lines += lane_lines(ln, width)
    return lines


def lane_lines(ln: Any, width: int) -> list[Content]:
    out = [
        _line(
            [
                (" " + key_label(ln.key), "bold"),
                f"  ok {ln.ok} ",
                _n("429", ln.rate_limited),
                f" fl {ln.in_flight} {ln.rps:.1f}/s",
            ],
            width,
        )
    ]
    pace = ln.pace
    if pace.rpm_limit is None and pace.tpm_limit is None:
        limits = "limits not learned yet"
    else:
        limits = f"rpm {_limit(pace.rpm_left, pace.rpm_limit)} · "
        limits += f"tpm {_limit(pace.tpm_left, pace.tpm_limit)}"
        if pace.source:
            limits += f" ({pace.source})"
    out.append(
        _line(
            [
                (f"   p50 {secs(ln.latency_p50_s)} p95 {secs(ln.latency_p95_s)} ", "$text-muted"),
                (usd(ln.spend_usd), "$text-muted"),
            ],
            width,
        )
    )
    out.append(_line([("   " + limits, "$text-muted")], width))
    if ln.disabled:
        out.append(_line([("   disabled: " + ln.disabled, "bold $error")], width))
    elif ln.cooldown_left_s > 0:
        out.append(_line([(f"   cooldown {secs(ln.cooldown_left_s)}", "bold $warning")], width))
    return out


def all_down(snap: Any) -> str | None:
    """Why no target can answer (every breaker open or every key disabled), else None."""
    if not snap.targets:
        return None
    why = []
    for t in snap.targets:
        if t.lanes and all(ln.disabled for ln in t.lanes):
            reasons = sorted({str(ln.disabled).split(":")[0] for ln in t.lanes})
            why.append(f"{t.id}: every key disabled ({', '.join(reasons)})")
        elif t.breaker == "open":
            why.append(f"{t.id}: failing, retry in {secs(t.breaker_reopens_in_s)}")
        else:
            return None
    return (
        "Every provider is down — "
        + "; ".join(why)
        + ". Waiting frames stay pending; failed ones are retried with --retry-failed."
    )


class RoutingPanel(ContentView):
    """Per-target and per-key routing state; redrawn from each new snapshot.

    Most ticks change a few numbers: only those lines are rendered and repainted again.
    """

    def __init__(self, route_mode: bool, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.route_mode = route_mode
        self._last: Any = None
        self._width = 0

    def show(self, snap: Any) -> None:
        width = max(self.scrollable_content_region.width, 20)
        if snap is self._last and width == self._width:
            return
        self._last, self._width = snap, width
        if not snap.targets:
            lines = [Content.styled("waiting for the engine…", "italic $text-muted")]
        else:
            lines = []
            for i, t in enumerate(snap.targets):
                if i:
                    lines.append(Content(""))
                lines += target_lines(t, width, self.route_mode)
        self.set_lines(lines)

    def on_resize(self, event: events.Resize) -> None:
        if self._last is not None:
            self.show(self._last)
        super().on_resize(event)
