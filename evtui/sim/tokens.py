"""Billing as the real services do: image and text tokens, from the published formulas.

The simulator bills image tokens with its own implementation of the published
formulas, on purpose: it stands in for the real services, and sharing evtui's
estimator (evtui/providers/images.py) would make every "estimate vs billed usage"
check, and the calibrator's tests, agree with itself by construction."""

from __future__ import annotations

import math
from typing import Any


def openai_tile_tokens(w: int, h: int, base: int, tile: int, low: bool) -> int:
    """Tile models: fit 2048², short side to 768, 512-px tiles (reference §5.1)."""
    if low:
        return base
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = math.floor(w * s), math.floor(h * s)
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = math.floor(w * s), math.floor(h * s)
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


def openai_patch_tokens(w: int, h: int, budget: int | None, max_side: int, mult: float) -> int:
    """Patch models: 32-px patches under a pixel and patch budget, times a multiplier."""
    if max(w, h) > max_side:
        s = max_side / max(w, h)
        w, h = max(math.floor(w * s), 1), max(math.floor(h * s), 1)
    patches = math.ceil(w / 32) * math.ceil(h / 32)
    if budget is not None and patches > budget:
        s = math.sqrt(32 * 32 * budget / (w * h))
        s *= min(math.floor(w * s / 32) / (w * s / 32), math.floor(h * s / 32) / (h * s / 32))
        w, h = math.floor(w * s), math.floor(h * s)
        patches = math.ceil(w / 32) * math.ceil(h / 32)
    return math.ceil(patches * mult)


# (prefix, rule): longest prefix wins. Tile: (base, tile). Patch: {detail: (budget, side, mult)}.
_OPENAI_RULES: list[tuple[str, tuple[str, Any]]] = [
    ("gpt-4o-mini", ("tile", (2833, 5667))),
    ("gpt-4o", ("tile", (85, 170))),
    ("gpt-4.5", ("tile", (85, 170))),
    ("gpt-4.1-mini", ("patch", {"*": (6144, 2048, 1.62)})),
    ("gpt-4.1-nano", ("patch", {"*": (1536, 10**9, 2.46)})),
    ("gpt-4.1", ("tile", (85, 170))),
    ("gpt-5-mini", ("patch", {"*": (1536, 10**9, 1.2)})),
    ("gpt-5-nano", ("patch", {"*": (1536, 10**9, 1.5)})),
    (
        "gpt-5.4",
        (
            "patch",
            {
                "high": (2500, 2048, 1.2),
                "original": (10000, 6000, 1.2),
                "low": (6144, 2048, 1.2),
                "auto": (2500, 2048, 1.2),
            },
        ),
    ),
    (
        "gpt-5.5",
        (
            "patch",
            {
                "high": (2500, 2048, 1.2),
                "original": (10000, 6000, 1.2),
                "low": (256, 512, 1.2),
                "auto": (10000, 6000, 1.2),
            },
        ),
    ),
    (
        "gpt-5.6",
        (
            "patch",
            {
                "high": (2500, 2048, 1.2),
                "original": (None, 65535, 1.2),
                "low": (256, 512, 1.2),
                "auto": (None, 65535, 1.2),
            },
        ),
    ),
    ("gpt-5", ("tile", (70, 140))),
    ("o1", ("tile", (75, 150))),
    ("o3", ("tile", (75, 150))),
    ("o4-mini", ("patch", {"*": (1536, 10**9, 1.72)})),
]
_OPENAI_RULES.sort(key=lambda r: -len(r[0]))
_TOKENS: dict[tuple[Any, ...], int] = {}


def _openai_rule(model: str) -> tuple[str, Any]:
    for prefix, rule in _OPENAI_RULES:
        if model.startswith(prefix):
            return rule
    return "tile", (85, 170)


def openai_image_tokens(model: str, w: int, h: int, detail: str) -> int:
    key = ("openai", model, w, h, detail)
    n = _TOKENS.get(key)
    if n is None:
        kind, p = _openai_rule(model)
        if kind == "tile":
            n = openai_tile_tokens(w, h, p[0], p[1], detail == "low")
        else:
            budget, side, mult = p.get(detail) or p.get("high") or p["*"]
            n = openai_patch_tokens(w, h, budget, side, mult)
        _remember(key, n)
    return n


def claude_image_tokens(w: int, h: int, max_edge: int = 1568, max_tok: int = 1568) -> int:
    """28-px patches after the downscale that satisfies both the edge and token limits."""

    def fits(a: int, b: int) -> bool:
        ca, cb = math.ceil(a / 28), math.ceil(b / 28)
        return ca * 28 <= max_edge and cb * 28 <= max_edge and ca * cb <= max_tok

    def size(a: int, b: int) -> tuple[int, int]:
        if fits(a, b):
            return a, b
        if b > a:
            y, x = size(b, a)
            return x, y
        r, lo, hi = a / b, 1, a
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if fits(mid, max(round(mid / r), 1)):
                lo = mid
            else:
                hi = mid
        return lo, max(round(lo / r), 1)

    a, b = size(w, h)
    return math.ceil(a / 28) * math.ceil(b / 28)


def claude_hires(model: str) -> bool:
    """Claude 4.7 and later Opus, Opus 5+, Mythos use the high-resolution image tier."""
    if "mythos" in model:
        return True
    i = model.find("opus-")
    if i < 0:
        return False
    parts = model[i + 5 :].split("-")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 and len(parts[1]) == 1 else 0
    except ValueError:
        return False
    return (major, minor) >= (4, 7)


def anthropic_image_tokens(model: str, w: int, h: int) -> int:
    key = ("anthropic", model, w, h)
    n = _TOKENS.get(key)
    if n is None:
        hires = claude_hires(model)
        n = claude_image_tokens(w, h, 2576, 4784) if hires else claude_image_tokens(w, h)
        _remember(key, n)
    return n


_GEMINI3_RES = {"MEDIA_RESOLUTION_LOW": 280, "MEDIA_RESOLUTION_MEDIUM": 560}
_GEMINI25_RES = {"MEDIA_RESOLUTION_LOW": 64, "MEDIA_RESOLUTION_MEDIUM": 256}
_GEMINI25_RES["MEDIA_RESOLUTION_HIGH"] = 256


def gemini_image_tokens(model: str, w: int, h: int, resolution: str | None) -> int:
    """Gemini 3: fixed budget per media_resolution; older: 258 per 768-px crop tile."""
    if model.startswith("gemini-3"):
        return _GEMINI3_RES.get(resolution or "", 1120)
    if resolution in _GEMINI25_RES:
        return _GEMINI25_RES[resolution]  # type: ignore[index]
    if w <= 384 and h <= 384:
        return 258
    crop = max(math.floor(min(w, h) / 1.5), 1)
    return 258 * math.ceil(w / crop) * math.ceil(h / crop)


def compat_image_tokens(w: int, h: int) -> int:
    """Qwen-VL style (a common vLLM vision model): one token per 28-px patch, capped."""
    return min(math.ceil(w / 28) * math.ceil(h / 28), 16384)


def _remember(key: tuple[Any, ...], n: int) -> None:
    if len(_TOKENS) > 4096:
        _TOKENS.clear()
    _TOKENS[key] = n


def text_tokens(chars: int, messages: int) -> int:
    """~4 characters a token, plus a few tokens of framing per message."""
    return (chars + 3) // 4 + 3 * messages + 3


def output_tokens(text: str) -> int:
    return max((len(text) + 3) // 4, 1) if text else 0


def fit_caption(text: str, budget: int | None) -> tuple[str, bool]:
    """The caption cut to `budget` tokens (~4 chars each); True when it was cut."""
    if budget is None or output_tokens(text) <= budget:
        return text, False
    return text[: max(budget, 0) * 4].rstrip(), True
