"""Keys never appear unmasked in a message, log, trace or screenshot."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Shapes of real provider keys, masked even when we were not told they are secrets.
_KEY_SHAPES = re.compile(r"(sk-ant-[A-Za-z0-9_-]{8,}|sk-[A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{20,})")


def mask_key(key: str) -> str:
    """'sk-proj-abc…wxyz' → 'sk-…wxyz': enough to tell keys apart, not to use one."""
    if not key:
        return ""
    tail = key[-4:] if len(key) >= 12 else ""
    head = key[:3] if len(key) >= 12 else ""
    return f"{head}…{tail}" if (head or tail) else "…"


def mask_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every known secret and anything shaped like a provider key."""
    for s in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(s, mask_key(s))
    return _KEY_SHAPES.sub(lambda m: mask_key(m.group(0)), text)
