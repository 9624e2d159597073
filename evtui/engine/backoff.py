"""Exponential backoff with jitter (AWS architecture blog, "Exponential Backoff and
Jitter"): full jitter spreads retries of many frames evenly instead of in waves."""

from __future__ import annotations

import random


def backoff_s(
    n: int, base_s: float, cap_s: float, jitter: str = "full", rng: random.Random | None = None
) -> float:
    """Delay before the `n`-th retry round (n ≥ 0): min(cap, base·2ⁿ), jittered."""
    ceiling = min(cap_s, base_s * (2.0 ** min(n, 62)))
    r = (rng or random).random()
    if jitter == "full":
        return ceiling * r
    if jitter == "equal":
        return ceiling / 2 + ceiling / 2 * r
    return ceiling
