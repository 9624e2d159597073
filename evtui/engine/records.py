"""What the engine hands on: frames in, one result and one route record per frame × slot.

A *slot* is what was asked for: in route mode the frame's one caption (`"route"`), in
compare mode one column per target (the target id). The *target* of a result is who
answered. Results and route records are plain dicts, the shape the job files store
(`captions.jsonl`, `trace.jsonl`), so nothing converts them on the hot path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from evtui.providers.types import ImagePart

ROUTE_SLOT = "route"


@dataclass(frozen=True, slots=True)
class FrameWork:
    """One rendered and encoded frame, ready to send.

    `images` may give a target its own encoding (another size or format); every other
    target gets `image`. `fingerprint` feeds the semantic cache.
    """

    index: int
    image: ImagePart
    t0_us: int = 0
    t1_us: int = 0
    events: int = 0
    pixel_hash: str = ""
    fingerprint: Any = None
    images: Mapping[str, ImagePart] | None = None
    skip_reason: str | None = None  # e.g. "empty: 3 events < floor 50"

    def image_for(self, target: str) -> ImagePart:
        imgs = self.images
        if imgs is not None:
            img = imgs.get(target)
            if img is not None:
                return img
        return self.image


@dataclass(slots=True)
class Attempt:
    """One request on the wire (or one decision not to send), in route-record form."""

    target: str
    key: str  # masked key id: "key#2 sk-…abcd"
    outcome: str  # ok | rate_limited | overloaded | server_error | timeout | …
    status: int | None
    waited_s: float  # queued for headroom, cooldown or backoff before this attempt
    latency_s: float
    bytes_sent: int
    retry_after_s: float | None = None
    counted: bool = True  # against the frame's retry budget (not when a breaker took it)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "target": self.target,
            "key": self.key,
            "outcome": self.outcome,
            "status": self.status,
            "waited_s": round(self.waited_s, 4),
            "latency_s": round(self.latency_s, 4),
            "bytes": self.bytes_sent,
        }
        if self.retry_after_s is not None:
            d["retry_after_s"] = round(self.retry_after_s, 4)
        if not self.counted:
            d["counted"] = False
        if self.note:
            d["note"] = self.note
        return d


@dataclass(slots=True)
class Route:
    """Everything one frame × slot went through, built as it happens."""

    frame: int
    slot: str
    pick: dict[str, Any] = field(default_factory=dict)
    attempts: list[Attempt] = field(default_factory=list)
    fallbacks: list[str] = field(default_factory=list)
    cache: str = "off"  # off | miss | exact | near
    rerun: bool = False

    def as_dict(self, final: Mapping[str, Any]) -> dict[str, Any]:
        d = {
            "frame": self.frame,
            "slot": self.slot,
            "pick": self.pick,
            "attempts": [a.as_dict() for a in self.attempts],
            "fallbacks": self.fallbacks,
            "cache": self.cache,
            "final": dict(final),
        }
        if self.rerun:
            d["rerun"] = True
        return d

    def summary(self) -> str:
        """One line for the caption column: 'key#2 429 → fell back → ok 1.4 s'."""
        parts: list[str] = []
        for i, a in enumerate(self.attempts):
            if i and a.target != self.attempts[i - 1].target:
                parts.append("fell back")
            label = a.key.split(" ")[0] if a.key else a.target
            what = "ok" if a.outcome == "ok" else (str(a.status) if a.status else a.outcome)
            if a.outcome == "ok":
                parts.append(f"{label} ok {a.latency_s:.1f} s")
            else:
                parts.append(f"{label} {what}")
        if self.cache in ("exact", "near"):
            parts.append(f"cache {self.cache}")
        return " → ".join(parts) if parts else "-"
