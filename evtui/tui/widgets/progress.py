"""One line of job progress: state, done/total, rate, ETA, spend against projection and budget."""

from __future__ import annotations

from typing import Any

from textual.content import Content
from textual.widgets import Static

from evtui.tui.text import secs, usd

STATE_STYLE = {
    "starting": "$text-muted",
    "running": "bold $success",
    "paused": "bold $warning",
    "idle": "bold $primary",
    "draining": "bold $warning",
    "budget": "bold $error",
    "done": "bold $success",
    "stopped": "bold $warning",
    "failed": "bold $error",
}
BAR = 20


def progress_content(snap: Any, bar: int = BAR) -> Content:
    total = snap.slots_total or 0
    done = snap.finished
    frac = min(done / total, 1.0) if total else 0.0
    full = round(frac * bar)
    parts: list[Any] = [
        (f" {snap.state:<8} ", STATE_STYLE.get(snap.state, "bold")),
        ("█" * full, "$primary"),
        ("░" * (bar - full), "$text-disabled"),
        f" {done}/{total or '?'} {frac:6.1%}  {snap.rate:6.1f}/s  ETA {secs(snap.eta_s)}  ",
        (usd(snap.spend_usd), "bold"),
    ]
    if snap.projected_usd is not None:
        over = snap.budget_usd is not None and snap.projected_usd > snap.budget_usd
        parts.append((f" of ~{usd(snap.projected_usd)}", "bold $warning" if over else ""))
    if snap.budget_usd is not None:
        parts.append((f" (budget {usd(snap.budget_usd)})", "$text-muted"))
    if snap.failed:
        parts.append((f"  {snap.failed} failed", "bold $error"))
    if snap.skipped:
        parts.append((f"  {snap.skipped} skipped", "$text-muted"))
    parts.append((f"  cache {snap.cache_hits}  in flight {snap.in_flight}", "$text-muted"))
    return Content.assemble(*parts)


class JobProgress(Static):
    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._last: Any = None

    def show(self, snap: Any) -> None:
        if snap is self._last:
            return
        self._last = snap
        self.update(progress_content(snap), layout=False)  # always one line
