"""The pilot report: a plain-text summary for the terminal and one self-contained HTML file.

The HTML has no external assets at all — inline CSS, thumbnails as `data:` URIs, plots as
inline SVG — so it can be mailed, archived with the run or opened offline. Everything
from a provider (captions, reasons) is escaped; keys appear only as "key#N".
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Sequence
from html import escape
from typing import Any

import cv2
import numpy as np

from evtui.pilot.analysis import PilotAnalysis, Projection
from evtui.pilot.measure import TargetMeasure
from evtui.pilot.project import IN_FLIGHT, Plan, describe_shares, human_minutes
from evtui.pilot.stats import StyleStats, classify, words
from evtui.pilot.svg import Mark, Series, color, histograms, line_plot, range_bars

THUMB_WIDTH = 192


def thumbnail_uri(rgb: np.ndarray, width: int = THUMB_WIDTH, quality: int = 80) -> str:
    """A small JPEG of an RGB frame as a data: URI (a few KB each)."""
    h, w = rgb.shape[:2]
    if w > width:
        rgb = cv2.resize(rgb, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
        [cv2.IMWRITE_JPEG_QUALITY, quality],
    )  # fmt: skip
    if not ok:
        return ""
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _usd(v: float) -> str:
    if v >= 100:
        return f"${v:,.0f}"
    if v >= 1:
        return f"${v:,.2f}"
    return f"${v:.4f}"


def _rate(v: float) -> str:
    return "unbounded" if not math.isfinite(v) else f"{v:,.0f} frames/min"


def _state_line(a: PilotAnalysis) -> str:
    if a.state == "done":
        return f"done in {a.elapsed_s:.1f} s"
    return f"{a.state} after {a.elapsed_s:.1f} s: the report covers the frames finished so far"


# -- text ---------------------------------------------------------------------------------


def projection_lines(p: Projection) -> list[str]:
    """The projection as sentences (shared by the terminal and the HTML report)."""
    out = [
        f"full recording: {p.windows:,} windows, ~{p.frames:,} to send "
        f"({p.windows - p.frames:,} near-empty, skipped)"
    ]
    c = p.configured
    if c is not None:
        out.append(
            f"configured weights ({describe_shares(c.shares)}): {_usd(c.cost_usd)}, "
            f"{human_minutes(c.minutes)} at {_rate(c.rate_per_min)}"
        )
    b = p.binding
    if b is not None:
        if b.limit.kind == "in_flight":
            out.append(
                f"binds first: {b.limit.describe()} → caps the job at {_rate(b.plan.rate_per_min)}"
            )
        else:
            need = (
                f" (its share needs {_rate(b.needed_per_min)})"
                if math.isfinite(b.needed_per_min)
                else ""
            )
            out.append(
                f"binds first: {b.limit.describe()} → caps {b.limit.target} at "
                f"{_rate(b.target_cap_per_min)}{need}"
            )
        nxt = b.next_binder
        then = ""
        if nxt and nxt != b.plan.binder:
            then = f"; then {'the engine in-flight cap' if nxt == IN_FLIGHT else nxt} binds"
        if b.saving > 0:
            out.append(
                f"raising it ×{b.factor:g}: {human_minutes(b.raised.minutes)} instead of "
                f"{human_minutes(b.plan.minutes)} (−{_pct(b.saving)}% time){then}"
            )
        else:
            out.append(f"raising it ×{b.factor:g} alone saves no time{then}")
    if p.cheapest is not None and p.reference_minutes:
        saving = p.saving
        vs = (
            f" ({'−' if saving >= 0 else '+'}{_pct(abs(saving))}% vs configured)"
            if (saving is not None)
            else ""
        )
        out.append(
            f"cheapest mix within {human_minutes(p.reference_minutes)}: "
            f"{describe_shares(p.cheapest.shares)} → {_usd(p.cheapest.cost_usd)}, "
            f"{human_minutes(p.cheapest.minutes)}{vs}"
        )
    if p.fastest is not None and p.reference_usd is not None:
        faster = ""
        if c is not None and math.isfinite(c.minutes) and c.minutes > 0:
            faster = f" (−{_pct(max(0.0, 1 - p.fastest.minutes / c.minutes))}% time vs configured)"
        out.append(
            f"fastest mix within {_usd(p.reference_usd)}: {describe_shares(p.fastest.shares)} → "
            f"{human_minutes(p.fastest.minutes)}, {_usd(p.fastest.cost_usd)}{faster}"
        )
    if p.compare is not None:
        out.append(
            f"compare mode (every target on every frame): {_usd(p.compare.cost_usd)}, "
            f"{human_minutes(p.compare.minutes)}"
        )
    out += [f"note: {n}" for n in p.notes]
    return out


def _target_rows(ms: Sequence[TargetMeasure]) -> list[list[str]]:
    return [
        [
            m.id,
            f"{m.done}/{m.frames}",
            _pct(m.error_rate),
            _pct(m.rate_limited_rate),
            _s(m.latency_p50_s),
            _s(m.latency_p95_s),
            f"{m.input_per_frame:.0f}",
            f"{m.output_per_frame:.0f}",
            f"{m.cost_per_1k:.4f}",
            _limits(m),
        ]
        for m in ms
    ]


def _limits(m: TargetMeasure) -> str:
    parts = []
    for ln in m.lanes:
        lim = [f"{ln.rpm:,.0f} rpm" if ln.rpm else "", f"{ln.tpm:,.0f} tpm" if ln.tpm else ""]
        text = ", ".join(x for x in lim if x) or "unknown"
        parts.append(f"{ln.key}: {text}" + (f" ({ln.source})" if ln.source else ""))
    return "; ".join(parts) or "-"


_TARGET_HEAD = [
    "target", "ok/frames", "err%", "429%", "p50 s", "p95 s", "in tok/fr", "out tok/fr",
    "$/1k frames", "limits",
]  # fmt: skip
_STYLE_HEAD = [
    "target", "words", "p95", "dist-1", "dist-2", "vocab", "boiler%", "refusal%", "same%",
    "cut%", "top opening",
]  # fmt: skip


def _style_rows(ss: Sequence[StyleStats]) -> list[list[str]]:
    return [
        [
            s.target,
            f"{s.words_mean:.1f}",
            f"{s.words_p95:.0f}",
            f"{s.distinct_1:.2f}",
            f"{s.distinct_2:.2f}",
            str(s.vocabulary),
            _pct(s.boilerplate_rate),
            _pct(s.refusal_rate),
            _pct(s.identical_share),
            _pct(s.truncated_rate),
            f'"{s.top_opener}" ({_pct(s.top_opener_share)}%)' if s.top_opener else "-",
        ]
        for s in ss
    ]


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = [
        (lambda v, w=w: v.ljust(w)) if i == 0 or i == len(head) - 1 else (lambda v, w=w: v.rjust(w))
        for i, w in enumerate(widths)
    ]
    return ["  ".join(f(v) for f, v in zip(fmt, r, strict=True)).rstrip() for r in [head, *rows]]


def text_report(a: PilotAnalysis, html_path: str | None = None) -> str:
    """The terminal report: plain text, no colour codes, fits a log file."""
    lines = [
        f"evtui pilot: {a.config_path} on {a.recording_path}",
        f"sample: {a.sample.describe()}"
        + (f"; {a.skipped} skipped as near-empty" if a.skipped else ""),
        f"run: {a.run_dir} ({_state_line(a)})",
        "",
        *_table(_TARGET_HEAD, _target_rows(a.measures)),
        "",
        *_table(_STYLE_HEAD, _style_rows(a.styles)),
        "",
        "agreement between targets (ROUGE-L F / word Jaccard, mean over frames both captioned):",
    ]
    lines += [
        f"  {p.a} × {p.b}: {p.rouge_l:.2f} / {p.jaccard:.2f} ({p.frames} frames)"
        for p in a.agreement.pairs
    ]
    if not a.agreement.pairs:
        lines.append("  (one target: nothing to compare)")
    lines += ["", "projection:"]
    lines += [f"  {x}" for x in projection_lines(a.projection)]
    if html_path:
        lines += ["", f"report: {html_path}"]
    return "\n".join(lines)


# -- HTML -------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#111827;
background:#f9fafb;line-height:1.4}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#4b5563;font-size:13px}
table{border-collapse:collapse;background:#fff;font-size:13px}
th,td{border:1px solid #e5e7eb;padding:4px 8px;vertical-align:top}
th{background:#f3f4f6;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:16px}.plot{background:#fff;border:1px solid #e5e7eb}
ul.proj{background:#fff;border:1px solid #e5e7eb;padding:10px 28px;font-size:14px}
.gallery td.cap{white-space:pre-wrap;max-width:360px;font-size:12.5px}
.gallery img{display:block;width:192px;image-rendering:pixelated;border-radius:3px}
.sub{color:#6b7280;font-size:11px}.bad{background:#fef2f2}.tag{display:inline-block;
padding:0 6px;border-radius:8px;font-size:11px;background:#fde68a}
.swatch{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}
"""


def _h(v: Any) -> str:
    return escape(str(v))


def _html_table(head: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    th = "".join(f"<th>{_h(x)}</th>" for x in head)
    body = []
    for r in rows:
        tds = []
        for i, v in enumerate(r):
            cls = ' class="n"' if numeric_from <= i < len(r) - 1 else ""
            tds.append(f"<td{cls}>{_h(v)}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


def _agreement_matrix(a: PilotAnalysis) -> str:
    ts = a.targets
    head = "".join(f"<th>{_h(t)}</th>" for t in ts)
    rows = []
    for x in ts:
        cells = []
        for y in ts:
            if x == y:
                cells.append('<td class="n">-</td>')
                continue
            p = a.agreement.pair(x, y)
            if p is None or not p.frames:
                cells.append('<td class="n">n/a</td>')
                continue
            shade = int(255 - 120 * p.rouge_l)
            cells.append(
                f'<td class="n" style="background:rgb({shade},{255},{shade})" '
                f'title="{p.frames} frames">{p.rouge_l:.2f} / {p.jaccard:.2f}</td>'
            )
        rows.append(f"<tr><th>{_h(x)}</th>{''.join(cells)}</tr>")
    return f"<table><tr><th>ROUGE-L F / Jaccard</th>{head}</tr>{''.join(rows)}</table>"


def _frontier_plot(p: Projection) -> str:
    if not p.frontier:
        return ""
    pts = [q for q in p.frontier if math.isfinite(q.minutes)]
    if not pts:
        return ""
    longest = max([q.minutes for q in pts] + [p.configured.minutes if p.configured else 0.0])
    hours = longest > 120
    scale = 1 / 60 if hours else 1.0
    unit = "hours" if hours else "minutes"
    marks = []

    def mark(plan: Plan | None, label: str, col: str) -> None:
        if plan is not None and math.isfinite(plan.minutes):
            marks.append(Mark(plan.minutes * scale, plan.cost_usd, label, col))

    mark(p.configured, "configured", "#ef4444")
    mark(p.cheapest, "cheapest, same time", "#10b981")
    if p.binding is not None and p.configured is not None:
        mark(p.binding.raised, f"limit ×{p.binding.factor:g}", "#8b5cf6")
    series = [
        Series(
            "cheapest mix for each duration",
            [q.minutes * scale for q in pts],
            [q.cost_usd for q in pts],
            "#3b82f6",
        )
    ]
    return line_plot(
        series,
        x_label=f"duration of the full run ({unit})",
        y_label="cost (USD)",
        marks=marks,
        title="cost against duration: the cheapest weight mix for each target time",
        width=640,
        height=300,
    )


def _activity_plot(a: PilotAnalysis) -> str:
    vals = np.log10(1.0 + a.activity.values)
    if not len(vals):
        return ""
    picked = vals[a.sample.frames[a.sample.frames < len(vals)]]
    return histograms(
        [("all windows", vals, "#9ca3af"), ("pilot sample", picked, "#3b82f6")],
        bins=24,
        x_label=f"log10(1 + {a.activity.unit} per window)",
        y_label="share of windows",
        title="activity: the sample against the whole recording",
    )


def _length_plot(a: PilotAnalysis) -> str:
    data = []
    for i, t in enumerate(a.targets):
        lens = [
            len(words(row[t].get("caption")))
            for row in a.table.values()
            if t in row and row[t].get("state") == "done" and row[t].get("target") == t
        ]
        if lens:
            data.append((t, lens, color(i)))
    if not data:
        return ""
    return histograms(data, bins=20, x_label="caption length (words)", title="caption length")


def _latency_plot(a: PilotAnalysis) -> str:
    rows = [(m.id, m.latency_p50_s, m.latency_p95_s, color(i)) for i, m in enumerate(a.measures)]
    return range_bars(rows, unit="s", title="latency per request")


def _cell(r: dict[str, Any] | None, slot: str) -> str:
    if r is None:
        return '<td class="cap sub">not run</td>'
    state = r.get("state")
    if state == "skipped":
        return f'<td class="cap sub">skipped: {_h(r.get("reason") or "")}</td>'
    if state != "done":
        return f'<td class="cap bad">failed: {_h(r.get("reason") or "")}</td>'
    text = r.get("caption") or ""
    kind = classify(text)
    cls = "cap" if kind == "ok" else "cap bad"
    flag = "" if kind == "ok" else f'<span class="tag">{_h(kind.replace("_", " "))}</span> '
    by = r.get("target")
    who = f" · answered by {_h(by)}" if by and by != slot else ""
    cache = " · cache" if r.get("cache_hit") else ""
    meta = (
        f'<div class="sub">{float(r.get("latency_s") or 0):.2f} s · '
        f"{int(r.get('input_tokens') or 0)}+{int(r.get('output_tokens') or 0)} tok · "
        f"${float(r.get('cost_usd') or 0):.5f}{cache}{who}</div>"
    )
    return f'<td class="{cls}">{flag}{_h(text) if text else "<i>(empty)</i>"}{meta}</td>'


def _gallery(a: PilotAnalysis) -> str:
    head = "".join(
        f'<th><span class="swatch" style="background:{color(i)}"></span>{_h(t)}</th>'
        for i, t in enumerate(a.targets)
    )
    rows = []
    for frame, why in a.gallery:
        row = a.table.get(frame, {})
        any_r = next(iter(row.values()), {})
        t0, t1 = any_r.get("t0_us"), any_r.get("t1_us")
        span = f"{t0 / 1e6:.3f}–{t1 / 1e6:.3f} s" if t0 is not None and t1 is not None else ""
        uri = a.thumbnails.get(frame, "")
        img = f'<img alt="frame {frame}" src="{uri}">' if uri else ""
        score = a.agreement.per_frame.get(frame)
        tag = (
            f'<span class="tag">disagreement {score:.2f}</span>'
            if why == "disagreement" and score is not None
            else (f'<span class="sub">agreement {score:.2f}</span>' if score is not None else "")
        )
        meta = (
            f'<div class="sub">frame {frame} · {span} · {int(any_r.get("events") or 0)} events'
            f"</div>{tag}"
        )
        cells = "".join(_cell(row.get(t), t) for t in a.targets)
        rows.append(f"<tr><td>{img}{meta}</td>{cells}</tr>")
    return f'<table class="gallery"><tr><th>frame</th>{head}</tr>{"".join(rows)}</table>'


def html_report(a: PilotAnalysis) -> str:
    """The whole report as one HTML document with no external references."""
    plots = [_activity_plot(a), _latency_plot(a), _length_plot(a)]
    proj = "".join(f"<li>{_h(x)}</li>" for x in projection_lines(a.projection))
    pair_lines = "".join(
        f"<li>{_h(p.a)} × {_h(p.b)}: ROUGE-L F {p.rouge_l:.2f}, Jaccard {p.jaccard:.2f} "
        f"over {p.frames} frames</li>"
        for p in a.agreement.pairs
    )
    strata = ""
    if a.sample.strata_counts:
        strata = (
            f"<p class='meta'>strata (activity in {_h(a.activity.unit)} per window → frames): "
            + ", ".join(
                f"{lo:,.0f}–{hi:,.0f} → {n}"
                for (lo, hi), n in zip(a.sample.strata_bounds, a.sample.strata_counts, strict=True)
            )
            + "</p>"
        )
    created = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return "".join(
        [
            "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
            f"<title>evtui pilot: {_h(a.recording_path)}</title>",
            f"<style>{_CSS}</style></head><body>",
            f"<h1>evtui pilot report</h1><p class='meta'>config {_h(a.config_path)} · recording "
            f"{_h(a.recording_path)} · run {_h(a.run_dir)} · {_h(_state_line(a))} · {created}</p>",
            f"<p class='meta'>sample: {_h(a.sample.describe())}"
            + (f"; {a.skipped} skipped as near-empty" if a.skipped else "")
            + "</p>",
            strata,
            "<h2>Projection for the full recording</h2>",
            f"<ul class='proj'>{proj}</ul>",
            f"<div class='plots'>{_frontier_plot(a.projection)}</div>",
            "<h2>Targets</h2>",
            _html_table(_TARGET_HEAD, _target_rows(a.measures)),
            "<h2>Caption style</h2>",
            _html_table(_STYLE_HEAD, _style_rows(a.styles)),
            "<p class='meta'>boiler%: captions whose first four words are shared by ≥10% of "
            "that target's captions; refusal%: refusals, requests for the image, and empty "
            "answers; same%: captions repeated word for word on other frames; cut%: stopped "
            "at the output-token limit.</p>",
            "<h2>Agreement between targets</h2>",
            _agreement_matrix(a),
            f"<ul class='meta'>{pair_lines}</ul>",
            f"<h2>Plots</h2><div class='plots'>{''.join(plots)}</div>",
            "<h2>Frames and captions</h2>",
            f"<p class='meta'>{sum(1 for _, w in a.gallery if w == 'sample')} frames spread "
            "over the sample, plus the frames the targets agree on least.</p>",
            _gallery(a),
            "</body></html>",
        ]
    )


__all__ = ["html_report", "projection_lines", "text_report", "thumbnail_uri"]
