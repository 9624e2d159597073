"""What evtui knows about each model: protocol, image-token rules, image limits.

Model ids are matched by their longest known prefix ending at a boundary ('-', '@', ':'
or the end), so dated versions resolve to their family: "gpt-4o-2024-08-06" → gpt-4o,
"claude-haiku-4-5-20251001" → claude-haiku-4-5, while "gpt-4o-mini" stays itself. A
leading path ("models/", "publishers/google/models/", "openai/") is ignored. A '.' is not
a boundary: "gpt-5.2" is not "gpt-5" (their image rules differ), it is unknown; an id
ending in '.' or '-' ("gemini-3.") matches as a bare prefix ("gemini-3.5-flash").

Limits are the conservative ones from the provider reference (§1.3): the per-image byte
cap is on the raw bytes, before base64 (which adds a third).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

PROTOCOLS = ("openai", "anthropic", "gemini", "openai-compatible")

_JPEG_PNG_WEBP = ("image/jpeg", "image/png", "image/webp")


@dataclass(frozen=True)
class ModelInfo:
    """One catalogue entry. `image_rules` names a rule family in `evtui.providers.images`.

    `tier` is the image-resolution class where a provider has several ('standard' or
    'high-res' for Claude, 'tile' or 'patch' for OpenAI, '2.5' or '3' for Gemini).
    """

    id: str
    protocol: str
    image_rules: str
    media_types: tuple[str, ...] = _JPEG_PNG_WEBP
    max_image_bytes: int | None = None
    max_image_side: int | None = None
    max_image_pixels: int | None = None
    tier: str = ""
    known: bool = True


# Per-protocol image limits (reference §1.3), raw bytes:
#  - OpenAI states no per-image cap, only a 50 MB request payload (2025 docs): 20 MB raw
#    leaves room for base64 and the rest of the body.
#  - Anthropic: 10 MB base64 on the direct API but 5 MB on Bedrock / Google Cloud; 3.75 MB
#    raw is 5 MB once base64-encoded, valid everywhere. Hard reject above 8000 px a side.
#  - Gemini: 100 MB inline payload on the API but 7 MB inline on Vertex: 5 MB raw fits both.
#  - OpenAI-compatible servers (vLLM, Ollama, LM Studio) vary: 5 MB raw is safe in practice.
_LIMITS: dict[str, dict[str, int | None]] = {
    "openai": {"max_image_bytes": 20_000_000, "max_image_side": None},
    "anthropic": {"max_image_bytes": 3_750_000, "max_image_side": 8000},
    "gemini": {"max_image_bytes": 5_000_000, "max_image_side": None},
    "openai-compatible": {"max_image_bytes": 5_000_000, "max_image_side": None},
}


def _entry(model_id: str, protocol: str, rules: str, tier: str) -> ModelInfo:
    return ModelInfo(
        id=model_id, protocol=protocol, image_rules=rules, tier=tier, **_LIMITS[protocol]
    )


# fmt: off
_CATALOGUE: dict[str, ModelInfo] = {m.id: m for m in (
    # OpenAI tile models (reference §5.1): base + tiles of 512 px.
    _entry("gpt-4o", "openai", "openai-tile-4o", "tile"),
    _entry("gpt-4.1", "openai", "openai-tile-4o", "tile"),
    _entry("gpt-4.5", "openai", "openai-tile-4o", "tile"),
    _entry("gpt-4o-mini", "openai", "openai-tile-4o-mini", "tile"),
    _entry("gpt-5", "openai", "openai-tile-5", "tile"),
    _entry("gpt-5.1", "openai", "openai-tile-5", "tile"),
    _entry("o1", "openai", "openai-tile-o", "tile"),
    _entry("o1-pro", "openai", "openai-tile-o", "tile"),
    _entry("o3", "openai", "openai-tile-o", "tile"),
    # OpenAI patch models: 32-px patches, a budget and a multiplier.
    _entry("gpt-4.1-mini", "openai", "openai-patch-4.1-mini", "patch"),
    _entry("gpt-4.1-nano", "openai", "openai-patch-4.1-nano", "patch"),
    _entry("o4-mini", "openai", "openai-patch-o4-mini", "patch"),
    _entry("gpt-5-mini", "openai", "openai-patch-5-mini", "patch"),
    _entry("gpt-5-nano", "openai", "openai-patch-5-nano", "patch"),
    _entry("gpt-5.4", "openai", "openai-patch-5.4", "patch"),
    _entry("gpt-5.5", "openai", "openai-patch-5.5", "patch"),
    _entry("gpt-5.6", "openai", "openai-patch-5.6", "patch"),
    # Anthropic: 28-px patches; standard tier up to 4.6 and Sonnet 5.x, high-res from 4.7.
    _entry("claude-3", "anthropic", "anthropic-standard", "standard"),
    _entry("claude-haiku-4", "anthropic", "anthropic-standard", "standard"),
    _entry("claude-sonnet-4", "anthropic", "anthropic-standard", "standard"),
    _entry("claude-opus-4", "anthropic", "anthropic-standard", "standard"),
    _entry("claude-sonnet-5", "anthropic", "anthropic-standard", "standard"),
    _entry("claude-opus-4-7", "anthropic", "anthropic-high-res", "high-res"),
    _entry("claude-opus-4-8", "anthropic", "anthropic-high-res", "high-res"),
    _entry("claude-opus-5", "anthropic", "anthropic-high-res", "high-res"),
    _entry("claude-mythos", "anthropic", "anthropic-high-res", "high-res"),
    # Any other Claude (e.g. Haiku 5.5, whose tier the reference does not give) is assumed
    # high-res: its estimate is an upper bound and sending up to 2576 px wastes no tokens.
    _entry("claude", "anthropic", "anthropic-high-res", "high-res"),
    # Gemini: 2.x (and 1.5) count 258-token tiles; 3.x a fixed budget per image.
    _entry("gemini-1.5", "gemini", "gemini-2.5", "2.5"),
    _entry("gemini-2.0", "gemini", "gemini-2.5", "2.5"),
    _entry("gemini-2.5", "gemini", "gemini-2.5", "2.5"),
    _entry("gemini-3", "gemini", "gemini-3", "3"),
    _entry("gemini-3.", "gemini", "gemini-3", "3"),  # any 3.x: a trailing '.' is a bare prefix
)}
# fmt: on

# What an unknown model on each protocol is assumed to be.
_PROTOCOL_DEFAULT_RULES = {
    "openai": "default",
    "anthropic": "anthropic-high-res",
    "gemini": "gemini-3",
    "openai-compatible": "default",
}

_BOUNDARY = frozenset("-@:")
_BARE_PREFIX = frozenset("-.")


def _normalise(model: str) -> str:
    return model.strip().rsplit("/", 1)[-1].lower()


def resolve_model_id(model: str, known: Iterable[str]) -> str | None:
    """The longest id in `known` that is `model` or a prefix of it ending at a boundary."""
    name = _normalise(model)
    best: str | None = None
    for candidate in known:
        c = candidate.lower()
        if (
            name.startswith(c)
            and (len(name) == len(c) or name[len(c)] in _BOUNDARY or c[-1] in _BARE_PREFIX)
            and (best is None or len(c) > len(best))
        ):
            best = candidate
    return best


@lru_cache(maxsize=1024)
def lookup(model: str, protocol: str | None = None) -> ModelInfo:
    """The catalogue entry for `model`; unknown models get their protocol's defaults.

    An unknown model on an unknown protocol is treated as an OpenAI-compatible server
    with the conservative `default` image rules (see `evtui.providers.images`).
    """
    key = resolve_model_id(model, _CATALOGUE)
    if key is not None:
        info = _CATALOGUE[key]
        if protocol in (None, info.protocol):
            return info
        # Same model behind another protocol (a gateway): its image rules, their limits.
        return ModelInfo(
            id=info.id,
            protocol=protocol,
            image_rules=info.image_rules,
            tier=info.tier,
            **_LIMITS.get(protocol, _LIMITS["openai-compatible"]),
        )
    proto = protocol if protocol in _LIMITS else "openai-compatible"
    return ModelInfo(
        id=_normalise(model),
        protocol=proto,
        image_rules=_PROTOCOL_DEFAULT_RULES[proto],
        tier="unknown",
        known=False,
        **_LIMITS[proto],
    )


def known_models() -> tuple[str, ...]:
    """Catalogue ids (family prefixes), for messages and the CLI."""
    return tuple(_CATALOGUE)
