"""Short human forms of the numbers the app shows: seconds, money, tokens, sparklines, routes."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

SPARK = "▁▂▃▄▅▆▇█"


def secs(s: float | None) -> str:
    """0.43 s, 12 s, 3m05s, 1h02m; '--' when unknown."""
    if s is None or not math.isfinite(s):
        return "--"
    if s < 10:
        return f"{s:.2f} s" if s < 1 else f"{s:.1f} s"
    s = int(s)
    if s < 60:
        return f"{s} s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def usd(x: float | None) -> str:
    if x is None:
        return "--"
    return f"${x:,.4f}" if abs(x) < 10 else f"${x:,.2f}"


def count(n: float) -> str:
    """12, 1.2k, 3.4M."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}"


def pct(x: float) -> str:
    return f"{x * 100:.0f}%"


def sparkline(series: Sequence[int | float], width: int) -> str:
    """The last `width` values as block characters scaled to the largest of them."""
    vals = list(series)[-width:] if width > 0 else []
    top = max(vals, default=0)
    if top <= 0:
        return SPARK[0] * len(vals)
    n = len(SPARK) - 1
    return "".join(SPARK[min(n, math.ceil(v / top * n))] for v in vals)


def key_label(key: str) -> str:
    """'openai key#2 sk-…abcd' → 'key#2 sk-…abcd' (the target already names the provider)."""
    _, _, rest = key.partition(" ")
    return rest if rest.startswith("key#") else key


def route_summary(record: Mapping[str, Any] | None) -> str:
    """'key#2 429 → fell back → anthropic key#1 ok 1.4 s' for one route record.

    The engine's Route.summary names the provider; a caption column already does, so
    this names the key, and the provider only where the route fell back to another.
    """
    if not record:
        return "-"
    parts: list[str] = []
    prev = None
    for a in record.get("attempts") or ():
        target = str(a.get("target", ""))
        label = key_label(str(a.get("key", ""))).split(" ")[0] or target
        if prev is not None and target != prev:
            parts.append("fell back")
            label = f"{target.partition('/')[0]} {label}"
        prev = target
        if a.get("outcome") == "ok":
            parts.append(f"{label} ok {secs(a.get('latency_s'))}")
        else:
            parts.append(f"{label} {a.get('status') or a.get('outcome')}")
    if record.get("cache") in ("exact", "near"):
        parts.append(f"cache {record['cache']}")
    return " → ".join(parts) if parts else "-"


def clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


__all__ = [
    "clip",
    "count",
    "key_label",
    "pct",
    "route_summary",
    "secs",
    "sparkline",
    "usd",
]
