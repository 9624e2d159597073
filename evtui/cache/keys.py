"""What a cached caption is keyed on: scope, partition and the exact (pixel) key.

A caption may be reused only for the same prompt version, within the same scope (the same
target, the same provider, or any), and for the same render variant. Those three make a
*partition*, a 64-bit hash; the exact key adds the frame's pixel hash, the near-duplicate
index searches fingerprints inside one partition.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import Literal

Scope = Literal["target", "provider", "any"]
SCOPES: tuple[str, ...] = ("target", "provider", "any")
_HEX32 = re.compile(r"[0-9a-f]{32}")


def scope_key(target: str, scope: str) -> str:
    """The part of a target that must match for a caption to be shared under `scope`.

    target: `provider/model`; scope: "target" (same model), "provider" (any model of the
    provider), "any" (every target shares).
    """
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f"a target is 'provider/model', got {target!r}")
    if scope == "target":
        return target
    if scope == "provider":
        return target.split("/", 1)[0]
    if scope == "any":
        return "*"
    raise ValueError(f"cache scope must be one of {', '.join(SCOPES)}, got {scope!r}")


@functools.lru_cache(maxsize=4096)
def partition(prompt_version: str, scope_key: str, variant: str = "") -> int:
    """64-bit id of (prompt version, scope key, variant)."""
    blob = "\x1f".join((str(prompt_version), scope_key, str(variant))).encode()
    return int.from_bytes(hashlib.blake2b(blob, digest_size=8).digest(), "little")


def pixel_key(pixel_hash: str) -> bytes:
    """16 bytes naming the frame's pixels: `frame_pixel_hash` hex as is, anything else hashed."""
    if not isinstance(pixel_hash, str) or not pixel_hash:
        raise ValueError(f"a pixel hash is a non-empty string, got {pixel_hash!r}")
    if _HEX32.fullmatch(pixel_hash):
        return bytes.fromhex(pixel_hash)
    return hashlib.blake2b(pixel_hash.encode(), digest_size=16).digest()


def record_key(part: int, pixel: bytes) -> str:
    """The diskcache key of the caption stored for (partition, pixels)."""
    return f"{part:016x}{pixel.hex()}"
