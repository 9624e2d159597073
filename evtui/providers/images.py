"""How many input tokens one image costs on each model, and what size the model really uses.

The formulas are the providers' published ones (reference §5), one rule family per
resize/billing scheme; `evtui.providers.models` maps a model id to its family. They are
estimates until the provider's `usage` says otherwise: `ImageTokenCalibrator` learns the
truth from responses (Gemini reports image tokens per modality; elsewhere it is the input
tokens minus the prompt's text tokens).

`detail` means what the protocol means by it: OpenAI `low | high | auto | original` (None
is `auto`); Gemini `low | medium | high | ultra_high` media resolution (`MEDIA_RESOLUTION_*`
spellings accepted; None means the API default); ignored for Claude.

Unknown models get the `default` family: the largest of three common rules (28-px patches
without a cap, as Qwen-VL style models served by vLLM/Ollama count; the gpt-4o tiles; the
Gemini 2.5 tiles), so budgets and rate limits err on the safe side until calibrated.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from evtui.providers.models import lookup

Size = tuple[int, int]


class ImageRule(Protocol):
    """One provider's resize-and-bill scheme for a single image."""

    def resize(self, w: int, h: int, detail: str | None) -> Size: ...

    def tokens(self, w: int, h: int, detail: str | None) -> int: ...


def _norm_detail(detail: str | None) -> str | None:
    if detail is None:
        return None
    d = detail.strip().lower().replace("-", "_")
    return d.removeprefix("media_resolution_") or None


def _fit_long_edge(w: int, h: int, max_side: int) -> Size:
    """Scale down (never up) so the long side is at most `max_side`; floor the short side."""
    long_side = max(w, h)
    if long_side <= max_side:
        return w, h
    if w >= h:
        return max_side, max(h * max_side // w, 1)
    return max(w * max_side // h, 1), max_side


# --------------------------------------------------------------------------- OpenAI tiles


@dataclass(frozen=True)
class OpenAITiles:
    """gpt-4o family: fit 2048×2048, short side to 768, 512-px tiles; `low` = base only."""

    base: int
    tile: int

    def resize(self, w: int, h: int, detail: str | None) -> Size:
        if detail == "low":
            return _fit_long_edge(w, h, 512)
        w, h = _fit_long_edge(w, h, 2048)
        short = min(w, h)
        if short > 768:
            w, h = (768, max(h * 768 // w, 1)) if w <= h else (max(w * 768 // h, 1), 768)
        return w, h

    def tokens(self, w: int, h: int, detail: str | None) -> int:
        if detail == "low":
            return self.base
        w, h = self.resize(w, h, detail)
        return self.base + self.tile * math.ceil(w / 512) * math.ceil(h / 512)


# --------------------------------------------------------------------------- OpenAI patches


@dataclass(frozen=True)
class PatchMode:
    """One `detail` setting of a patch model: pixel limit (long edge) and patch budget."""

    max_side: int | None
    budget: int | None


@dataclass(frozen=True)
class OpenAIPatches:
    """gpt-4.1-mini and later: 32-px patches within a budget, billed × a multiplier.

    The arithmetic is float, as published: 300 patches × 1.62 = 486.00000000000006,
    billed ⌈·⌉ = 487 (the reference's own worked value).
    """

    multiplier: float
    modes: dict[str, PatchMode]  # keys: low, high, original; "auto" may alias one of them
    auto: str = "high"

    def _mode(self, detail: str | None) -> PatchMode:
        d = self.auto if detail in (None, "auto") else detail
        return self.modes.get(d) or self.modes[self.auto]

    def resize(self, w: int, h: int, detail: str | None) -> Size:
        mode = self._mode(detail)
        if mode.max_side is not None:
            w, h = _fit_long_edge(w, h, mode.max_side)
        if mode.budget is not None and math.ceil(w / 32) * math.ceil(h / 32) > mode.budget:
            s = math.sqrt(32 * 32 * mode.budget / (w * h))
            pw, ph = w * s / 32, h * s / 32
            s *= min(max(math.floor(pw), 1) / pw, max(math.floor(ph), 1) / ph)
            w, h = max(math.floor(w * s), 1), max(math.floor(h * s), 1)
        return w, h

    def tokens(self, w: int, h: int, detail: str | None) -> int:
        w, h = self.resize(w, h, detail)
        return math.ceil(math.ceil(w / 32) * math.ceil(h / 32) * self.multiplier)


def _patch(
    multiplier: float,
    high: PatchMode,
    *,
    low: PatchMode | None = None,
    original: PatchMode | None = None,
    auto: str = "high",
) -> OpenAIPatches:
    modes = {"high": high, "low": low or high, "original": original or high}
    return OpenAIPatches(multiplier, modes, auto)


_P1536 = PatchMode(None, 1536)  # 2025 rule: budget only, same for every detail

# --------------------------------------------------------------------------- Anthropic


@dataclass(frozen=True)
class ClaudePatches:
    """28-px patches; downscale (aspect kept) to the largest size within both the long-edge
    limit (sides rounded up to 28) and the token budget; the short side rounds half-to-even.
    """

    max_edge: int
    max_tokens: int

    def _fits(self, a: int, b: int) -> bool:
        ca, cb = math.ceil(a / 28), math.ceil(b / 28)
        return ca * 28 <= self.max_edge and cb * 28 <= self.max_edge and ca * cb <= self.max_tokens

    def resize(self, w: int, h: int, detail: str | None = None) -> Size:
        if self._fits(w, h):
            return w, h
        if h > w:
            y, x = self.resize(h, w)
            return x, y
        r, lo, hi = w / h, 1, w
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if self._fits(mid, max(round(mid / r), 1)):
                lo = mid
            else:
                hi = mid
        return lo, max(round(lo / r), 1)

    def tokens(self, w: int, h: int, detail: str | None = None) -> int:
        w, h = self.resize(w, h)
        return math.ceil(w / 28) * math.ceil(h / 28)


# --------------------------------------------------------------------------- Gemini


_GEMINI25_MEDIA = {"low": 64, "medium": 256, "high": 256}
_GEMINI3_MEDIA = {"low": 280, "medium": 560, "high": 1120, "ultra_high": 2240}


@dataclass(frozen=True)
class Gemini25Tiles:
    """258 tokens if both sides ≤ 384 px, else 258 per crop tile (crop = ⌊short/1.5⌋).

    Each crop is scaled to a 768×768 tile, so a short side beyond 1152 px (crop > 768)
    adds no detail: `resize` stops there (inferred from the 768-px tiles, not published).
    A global `mediaResolution` replaces the rule with 64 / 256 / 256 tokens.
    """

    def resize(self, w: int, h: int, detail: str | None) -> Size:
        short = min(w, h)
        if detail in _GEMINI25_MEDIA or short <= 1152:
            return w, h
        if w <= h:
            return 1152, max(h * 1152 // w, 1)
        return max(w * 1152 // h, 1), 1152

    def tokens(self, w: int, h: int, detail: str | None) -> int:
        if detail in _GEMINI25_MEDIA:
            return _GEMINI25_MEDIA[detail]
        if w <= 384 and h <= 384:
            return 258
        crop = max(math.floor(min(w, h) / 1.5), 1)
        return 258 * math.ceil(w / crop) * math.ceil(h / crop)


@dataclass(frozen=True)
class Gemini3Fixed:
    """A fixed budget per image by media resolution (default HIGH, 1120); no known resize."""

    def resize(self, w: int, h: int, detail: str | None) -> Size:
        return w, h

    def tokens(self, w: int, h: int, detail: str | None) -> int:
        return _GEMINI3_MEDIA.get(detail or "high", _GEMINI3_MEDIA["high"])


# --------------------------------------------------------------------------- unknown models


@dataclass(frozen=True)
class Conservative:
    """The largest of: uncapped 28-px patches, gpt-4o tiles, Gemini 2.5 tiles. No resize."""

    def resize(self, w: int, h: int, detail: str | None) -> Size:
        return w, h

    def tokens(self, w: int, h: int, detail: str | None) -> int:
        return max(
            math.ceil(w / 28) * math.ceil(h / 28),
            _TILES_4O.tokens(w, h, None),
            _GEMINI25.tokens(w, h, None),
        )


_TILES_4O = OpenAITiles(85, 170)
_GEMINI25 = Gemini25Tiles()

# fmt: off
RULES: dict[str, ImageRule] = {
    "openai-tile-4o": _TILES_4O,
    "openai-tile-4o-mini": OpenAITiles(2833, 5667),
    "openai-tile-5": OpenAITiles(70, 140),
    "openai-tile-o": OpenAITiles(75, 150),
    # gpt-4.1-mini: the late-2026 docs' rule (2048 px, 6,144 patches, every detail); the 2025
    # rule (1,536 patches) gives less above ~1 MP and is kept as its own family.
    "openai-patch-4.1-mini": _patch(1.62, PatchMode(2048, 6144)),
    "openai-patch-4.1-mini-2025": _patch(1.62, _P1536),
    "openai-patch-4.1-nano": _patch(2.46, _P1536),
    "openai-patch-o4-mini": _patch(1.72, _P1536),
    "openai-patch-5-mini": _patch(1.2, _P1536),
    "openai-patch-5-nano": _patch(1.5, _P1536),
    # gpt-5.4: low is 2048 px & 6,144 patches, so it can cost more than high; auto = high.
    "openai-patch-5.4": _patch(1.2, PatchMode(2048, 2500), low=PatchMode(2048, 6144),
                               original=PatchMode(6000, 10_000)),
    # gpt-5.5: low fits 512×512; auto = original.
    "openai-patch-5.5": _patch(1.2, PatchMode(2048, 2500), low=PatchMode(512, None),
                               original=PatchMode(6000, 10_000), auto="original"),
    # gpt-5.6: original/auto up to 65,535 px with no budget; low is undocumented (= high).
    "openai-patch-5.6": _patch(1.2, PatchMode(2048, 2500), original=PatchMode(65_535, None),
                               auto="original"),
    "anthropic-standard": ClaudePatches(1568, 1568),
    "anthropic-high-res": ClaudePatches(2576, 4784),
    "gemini-2.5": _GEMINI25,
    "gemini-3": Gemini3Fixed(),
    "default": Conservative(),
}
# fmt: on


def _rule(model: str, rules: str | None) -> ImageRule:
    name = rules or lookup(model).image_rules
    try:
        return RULES[name]
    except KeyError:
        raise ValueError(f"unknown image rules {name!r}; known: {', '.join(RULES)}") from None


def _check(width: int, height: int) -> Size:
    w, h = int(width), int(height)
    if w < 1 or h < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    return w, h


@lru_cache(maxsize=4096)
def estimate_image_tokens(
    model: str, width: int, height: int, detail: str | None = None, *, rules: str | None = None
) -> int:
    """Input tokens one `width`×`height` image costs on `model` (published formula).

    `rules` names a family in `RULES` to use instead of the catalogue's (config can map a
    local model to, say, `anthropic-standard`).
    """
    w, h = _check(width, height)
    return _rule(model, rules).tokens(w, h, _norm_detail(detail))


@lru_cache(maxsize=4096)
def provider_resize(
    model: str, width: int, height: int, detail: str | None = None, *, rules: str | None = None
) -> Size:
    """The size `model` downscales the image to anyway: pixels beyond it are paid in
    bandwidth and encode time but never seen. Never larger than the input."""
    w, h = _check(width, height)
    return _rule(model, rules).resize(w, h, _norm_detail(detail))


def estimate_text_tokens(text: str) -> int:
    """Rough token count of a prompt: ~4 UTF-8 bytes per token, plus a few for framing.

    Only used to subtract the prompt from observed input tokens when a provider does not
    report image tokens; the calibrator's per-model ratio absorbs its bias.
    """
    return math.ceil(len(text.encode()) / 4) + 4


# --------------------------------------------------------------------------- calibration


_Key = tuple[str, int, int, str | None]


class ImageTokenCalibrator:
    """Learns what images really cost from responses and corrects the formula's estimate.

    Per (model, width, height, detail) it keeps the recent observations; per model, the
    recent ratios observed/estimated. `estimate` prefers, in order: the median observed for
    that exact size (one reported observation suffices; derived ones need `min_observations`),
    then the formula × the model's median ratio (once it has `min_observations`), then
    the formula alone. All state lives in dicts and deques updated without awaiting, so it
    is safe to share inside one asyncio loop (not across threads).
    """

    def __init__(
        self,
        min_observations: int = 3,
        window: int = 32,
        rules: Mapping[str, str] | None = None,
    ) -> None:
        """`rules` maps models to rule families, as passed to `estimate_image_tokens`."""
        if min_observations < 1 or window < 1:
            raise ValueError("min_observations and window must be >= 1")
        self.min_observations = min_observations
        self.window = window
        self._rules = dict(rules or {})
        self._by_size: dict[_Key, deque[int]] = {}
        self._exact: set[_Key] = set()
        self._ratios: dict[str, deque[float]] = {}

    def _formula(self, key: _Key) -> int:
        model, w, h, detail = key
        return estimate_image_tokens(model, w, h, detail, rules=self._rules.get(model))

    def observe(
        self,
        model: str,
        width: int,
        height: int,
        image_tokens: int,
        *,
        detail: str | None = None,
        reported: bool = True,
    ) -> None:
        """Record the image tokens one request used. `reported` = the provider said so
        (Gemini's IMAGE modality count) rather than our subtraction. Nonsense is ignored."""
        if image_tokens <= 0 or width < 1 or height < 1:
            return
        key = (model, int(width), int(height), _norm_detail(detail))
        estimate = self._formula(key)
        ratio = image_tokens / estimate
        if not 0.02 <= ratio <= 50:  # a wrong text estimate or a misattributed model
            return
        self._by_size.setdefault(key, deque(maxlen=self.window)).append(int(image_tokens))
        if reported:
            self._exact.add(key)
        self._ratios.setdefault(model, deque(maxlen=self.window)).append(ratio)

    def observe_input(
        self,
        model: str,
        width: int,
        height: int,
        input_tokens: int,
        text_tokens: int,
        *,
        detail: str | None = None,
    ) -> None:
        """Record a response that reports only total input tokens (cached included)."""
        self.observe(
            model, width, height, input_tokens - text_tokens, detail=detail, reported=False
        )

    def ratio(self, model: str) -> float | None:
        """Median observed/estimated for `model`, once there are enough observations."""
        ratios = self._ratios.get(model)
        if not ratios or len(ratios) < self.min_observations:
            return None
        return statistics.median(ratios)

    def estimate(self, model: str, width: int, height: int, detail: str | None = None) -> int:
        """The best current guess of the image tokens for this model and size."""
        key = (model, int(width), int(height), _norm_detail(detail))
        seen = self._by_size.get(key)
        if seen and (key in self._exact or len(seen) >= self.min_observations):
            return math.ceil(statistics.median(seen))
        base = self._formula(key)
        r = self.ratio(model)
        return base if r is None else max(math.ceil(base * r), 1)

    def snapshot(self) -> dict[str, float]:
        """Model → current median ratio, for telemetry and `evtui explain`."""
        out: dict[str, float] = {}
        for model in self._ratios:
            r = self.ratio(model)
            if r is not None:
                out[model] = r
        return out
