"""Small inline SVG plots for the self-contained report: no plotting library, no assets.

Each function returns one `<svg>` element as text, sized in CSS pixels, with its text
escaped; the HTML report embeds them as they are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

import numpy as np

PALETTE = ("#3b82f6", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#14b8a6", "#ec4899", "#64748b")
_FONT = 'font-family="system-ui,sans-serif" font-size="11"'


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass(frozen=True)
class Series:
    name: str
    xs: Sequence[float]
    ys: Sequence[float]
    color: str
    step: bool = False  # a histogram outline: xs are the len(ys) + 1 bin edges


@dataclass(frozen=True)
class Mark:
    x: float
    y: float
    label: str
    color: str


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else [0.0]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    out = []
    v = first
    while v <= hi + step * 1e-9:
        out.append(round(v, 12))
        v += step
    return out


def fmt(v: float) -> str:
    a = abs(v)
    if a >= 1e6:
        return f"{v / 1e6:.3g}M"
    if a >= 1e3:
        return f"{v / 1e3:.3g}k"
    if a >= 1 or a == 0:
        return f"{v:.3g}"
    return f"{v:.2g}"


def line_plot(
    series: Sequence[Series],
    *,
    x_label: str,
    y_label: str,
    marks: Sequence[Mark] = (),
    width: int = 560,
    height: int = 260,
    title: str = "",
) -> str:
    """Lines (or histogram outlines) on shared linear axes, with labelled points."""
    xs = [float(x) for s in series for x in s.xs] + [m.x for m in marks]
    ys = [float(y) for s in series for y in s.ys] + [m.y for m in marks]
    xs = [x for x in xs if math.isfinite(x)]
    ys = [y for y in ys if math.isfinite(y)]
    if not xs or not ys:
        return _empty(width, height, title or "no data")
    x0, x1 = min(xs), max(xs)
    y0, y1 = 0.0, max(ys) * 1.15 or 1.0
    if x1 <= x0:
        x1 = x0 + 1.0
    legend = len(series) > 1
    left, right, top, bottom = 56, 190 if legend else 12, 24 if title else 10, 38
    pw, ph = width - left - right, height - top - bottom

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * pw

    def py(y: float) -> float:
        return top + ph - (y - y0) / (y1 - y0) * ph

    parts = [_open(width, height)]
    if title:
        parts.append(f'<text x="{left}" y="15" {_FONT} font-weight="600">{escape(title)}</text>')
    parts += [
        f'<line x1="{left}" x2="{left + pw}" y1="{py(t):.1f}" y2="{py(t):.1f}" '
        'stroke="#e5e7eb"/>'
        f'<text x="{left - 4}" y="{py(t) + 4:.1f}" {_FONT} text-anchor="end" '
        f'fill="#6b7280">{fmt(t)}</text>'
        for t in nice_ticks(y0, y1)
    ]
    parts += [
        f'<text x="{px(t):.1f}" y="{top + ph + 14}" {_FONT} text-anchor="middle" '
        f'fill="#6b7280">{fmt(t)}</text>'
        for t in nice_ticks(x0, x1)
    ]
    parts.append(
        f'<line x1="{left}" x2="{left + pw}" y1="{top + ph}" y2="{top + ph}" stroke="#9ca3af"/>'
        f'<text x="{left + pw / 2:.1f}" y="{height - 6}" {_FONT} text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="12" y="{top + ph / 2:.1f}" {_FONT} text-anchor="middle" '
        f'transform="rotate(-90 12 {top + ph / 2:.1f})">{escape(y_label)}</text>'
    )
    for s in series:
        if s.step:
            edges = [float(x) for x in s.xs]
            d = " ".join(
                f"{px(a):.1f},{py(float(y)):.1f} {px(b):.1f},{py(float(y)):.1f}"
                for a, b, y in zip(edges[:-1], edges[1:], s.ys, strict=True)
            )
        else:
            pts = [(float(x), float(y)) for x, y in zip(s.xs, s.ys, strict=True)]
            pts = [(x, y) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
            d = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        if not d:
            continue
        parts.append(
            f'<polyline fill="none" stroke="{s.color}" stroke-width="2" points="{d}">'
            f"<title>{escape(s.name)}</title></polyline>"
        )
    for m in marks:
        if not (math.isfinite(m.x) and math.isfinite(m.y)):
            continue
        parts.append(
            f'<circle cx="{px(m.x):.1f}" cy="{py(m.y):.1f}" r="5" fill="{m.color}" '
            f'stroke="#fff"><title>{escape(m.label)}</title></circle>'
            f'<text x="{px(m.x) + 7:.1f}" y="{py(m.y) - 6:.1f}" {_FONT} fill="{m.color}">'
            f"{escape(m.label)}</text>"
        )
    if legend:
        parts.append(_legend([s.name for s in series], [s.color for s in series], width, top))
    parts.append("</svg>")
    return "".join(parts)


def histograms(
    data: Sequence[tuple[str, Sequence[float], str]],
    *,
    bins: int = 20,
    x_label: str,
    y_label: str = "share of captions",
    width: int = 640,
    height: int = 240,
    title: str = "",
) -> str:
    """Overlaid normalised histograms (outlines) sharing one set of bins."""
    values = [np.asarray(v, np.float64) for _, v, _ in data]
    every = np.concatenate(values) if values else np.zeros(0)
    if not len(every):
        return _empty(width, height, title or "no data")
    lo, hi = float(every.min()), float(every.max())
    if hi <= lo:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    series = []
    for (name, _, col), v in zip(data, values, strict=True):
        counts, _ = np.histogram(v, edges)
        share = counts / max(len(v), 1)
        series.append(Series(name, list(edges), list(share), col, step=True))
    return line_plot(
        series, x_label=x_label, y_label=y_label, width=width, height=height, title=title
    )


def range_bars(
    rows: Sequence[tuple[str, float | None, float | None, str]],
    *,
    unit: str,
    width: int = 560,
    title: str = "",
) -> str:
    """One bar per row from 0 to its p95 with a tick at its p50 (latency at a glance)."""
    vals = [v for _, a, b, _ in rows for v in (a, b) if v is not None and math.isfinite(v)]
    height = 30 + 22 * len(rows) + (18 if title else 0)
    if not vals:
        return _empty(width, height, title or "no data")
    top = 24 if title else 6
    left, right = 200, 60
    pw = width - left - right
    vmax = max(vals) or 1.0

    def px(v: float) -> float:
        return left + v / vmax * pw

    parts = [_open(width, height)]
    if title:
        parts.append(f'<text x="6" y="15" {_FONT} font-weight="600">{escape(title)}</text>')
    for i, (name, p50, p95, col) in enumerate(rows):
        y = top + i * 22
        parts.append(
            f'<text x="{left - 6}" y="{y + 13}" {_FONT} text-anchor="end">{escape(name)}</text>'
        )
        if p95 is not None:
            parts.append(
                f'<rect x="{left}" y="{y + 3}" width="{max(px(p95) - left, 1):.1f}" height="14" '
                f'fill="{col}" opacity="0.35"><title>p95 {p95:.3g} {escape(unit)}</title></rect>'
                f'<text x="{px(p95) + 4:.1f}" y="{y + 14}" {_FONT} fill="#374151">'
                f"{p95:.3g}</text>"
            )
        if p50 is not None:
            parts.append(
                f'<rect x="{px(p50) - 1.5:.1f}" y="{y + 1}" width="3" height="18" fill="{col}">'
                f"<title>p50 {p50:.3g} {escape(unit)}</title></rect>"
            )
    parts.append(
        f'<text x="{left}" y="{height - 6}" {_FONT} fill="#6b7280">bar: p95, tick: p50 '
        f"({escape(unit)})</text></svg>"
    )
    return "".join(parts)


def _legend(names: Sequence[str], colors: Sequence[str], right: float, top: float) -> str:
    """Swatches and names in the right margin, clear of the data."""
    out = []
    for i, (n, c) in enumerate(zip(names, colors, strict=True)):
        y = top + 4 + i * 16
        out.append(
            f'<rect x="{right - 184}" y="{y}" width="10" height="10" fill="{c}"/>'
            f'<text x="{right - 170}" y="{y + 9}" {_FONT}>{escape(n[:30])}</text>'
        )
    return "".join(out)


def _open(width: int, height: int) -> str:
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'role="img" class="plot">'
    )


def _empty(width: int, height: int, text: str) -> str:
    return (
        f"{_open(width, height)}<text x='{width / 2}' y='{height / 2}' {_FONT} "
        f"text-anchor='middle' fill='#6b7280'>{escape(text)}</text></svg>"
    )


__all__ = [
    "PALETTE",
    "Mark",
    "Series",
    "color",
    "histograms",
    "line_plot",
    "nice_ticks",
    "range_bars",
]
