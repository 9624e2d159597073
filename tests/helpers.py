"""Event fixtures and comparisons shared by the reader/writer tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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


def read_faery(path: Path) -> np.ndarray:
    """Every event as faery decodes it (an independent reader): fields t, x, y, on."""
    faery = pytest.importorskip("faery")
    return np.concatenate(list(faery.events_stream_from_file(path)))


def read_evlib(path: Path) -> tuple[np.ndarray, ...]:
    """(t, x, y, on) as evlib decodes it, in file order (evlib sorts by default)."""
    evlib = pytest.importorskip("evlib")
    df = evlib.load_events(str(path), sort=False).collect()
    return (
        df["t"].cast(int).to_numpy(),
        df["x"].to_numpy(),
        df["y"].to_numpy(),
        df["polarity"].to_numpy() > 0,
    )
