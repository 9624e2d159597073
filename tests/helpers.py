"""Event fixtures and comparisons shared by the reader/writer tests."""

from __future__ import annotations

import numpy as np

from evtui.events.types import make_events


def random_events(
    n: int,
    seed: int = 0,
    t0: int = 1_000_000,
    step: int = 8,
    width: int = 640,
    height: int = 480,
) -> np.ndarray:
    """n time-ordered events, uniform over the sensor, gaps uniform in [0, step) µs."""
    rng = np.random.default_rng(seed)
    return make_events(
        t0 + np.cumsum(rng.integers(0, step, n)),
        rng.integers(0, width, n),
        rng.integers(0, height, n),
        rng.integers(0, 2, n),
    )


def same(ev: np.ndarray, t, x, y, p) -> bool:
    """Event-for-event equality of our events with another library's columns."""
    return (
        len(ev) == len(t)
        and np.array_equal(ev["t"], np.asarray(t).astype(np.int64))
        and np.array_equal(ev["x"], np.asarray(x).astype(np.uint16))
        and np.array_equal(ev["y"], np.asarray(y).astype(np.uint16))
        and np.array_equal(ev["p"], np.asarray(p).astype(np.int8))
    )
