"""Caption guard: answers that are not captions, caught before they become training data.

Flags: `empty`, `refusal` ("I can't help with that"), `asks_for_image` (the model did
not see the image it was sent), `truncated` (cut off at the token limit) and
`boilerplate` (the same text on many frames whose pixels differ). The first three are
worth another target's try; all but boilerplate (a long static stretch may honestly earn
one caption) count towards a target's degenerate rate, and a target whose rate over its
last `window` answers crosses `pause_rate` is paused: a model
that has started refusing everything should not be paid for another thousand refusals.
"""

from __future__ import annotations

import hashlib
import re
from collections import deque
from dataclasses import dataclass

REROUTABLE = frozenset({"empty", "refusal", "asks_for_image"})

_REFUSAL = re.compile(
    r"^\W*(i'?m sorry|sorry,|i apologi[sz]e|i(?: am|'m)? (?:unable|not able)|"
    r"i (?:can(?:no|')t|won'?t be able)|unfortunately,? i (?:can|am)|as an ai)",
    re.IGNORECASE,
)
_ASKS_FOR_IMAGE = re.compile(
    r"(please (?:provide|upload|share|attach)|could you (?:share|provide|upload)|"
    r"(?:don'?t|do not|can'?t|cannot) see (?:an|the|any) image|no image (?:was )?"
    r"(?:attached|provided|included))",
    re.IGNORECASE,
)
_NORM = re.compile(r"[^a-z0-9]+")


def flags_for(text: str, finish_reason: str) -> list[str]:
    """The content-free problems of one answer, from its text alone."""
    out: list[str] = []
    stripped = text.strip()
    if not stripped:
        return ["empty"]
    head = stripped[:200]
    if _REFUSAL.search(head):
        out.append("refusal")
    if _ASKS_FOR_IMAGE.search(head):
        out.append("asks_for_image")
    if finish_reason == "length":
        out.append("truncated")
    return out


@dataclass(frozen=True, slots=True)
class GuardSettings:
    enabled: bool = True
    reroute: bool = True
    pause_rate: float = 0.2
    window: int = 100
    boilerplate_frames: int = 50


class CaptionGuard:
    """Per-run memory: which texts recur on different frames, each target's recent rate."""

    def __init__(self, settings: GuardSettings) -> None:
        self.s = settings
        self._texts: dict[bytes, set[str]] = {}
        self._recent: dict[str, deque[bool]] = {}

    def check(self, text: str, finish_reason: str, pixel_hash: str) -> list[str]:
        if not self.s.enabled:
            return []
        flags = flags_for(text, finish_reason)
        if flags and flags[0] == "empty":
            return flags
        if not pixel_hash:
            return flags  # frames we cannot tell apart: no boilerplate verdict
        key = hashlib.blake2b(_NORM.sub(" ", text.lower()).encode(), digest_size=12).digest()
        frames = self._texts.get(key)
        if frames is None:
            if len(self._texts) > 200_000:  # bounded: forget the oldest half
                for k in list(self._texts)[:100_000]:
                    del self._texts[k]
            frames = self._texts[key] = set()
        limit = self.s.boilerplate_frames
        if len(frames) < limit:
            frames.add(pixel_hash)
        if len(frames) >= limit:
            flags.append("boilerplate")
        return flags

    def record(self, target: str, degenerate: bool) -> float | None:
        """Note one answer; returns the degenerate rate when it crossed the threshold."""
        q = self._recent.get(target)
        if q is None:
            q = self._recent[target] = deque(maxlen=self.s.window)
        q.append(degenerate)
        if len(q) < min(self.s.window, 20):
            return None
        rate = sum(q) / len(q)
        return rate if rate > self.s.pause_rate else None

    def reset(self, target: str) -> None:
        self._recent.pop(target, None)
