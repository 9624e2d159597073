"""Frames/s of every renderer, next to tonic's ToFrame measured on the same windows.

Run: python benchmarks/bench_render.py [--quick]

Windows are synthetic and seeded (moving edges, a moving disc, uniform noise), so runs are
comparable across machines and need no sample data. Each cell is the median over repeated
calls cycling through a few distinct windows; evtui renders into a pre-allocated `out=`.
tonic gets the same events converted once, outside the timing, to the x/y/t/p structured
array it expects. It only counts (no colouring), so the ratio flatters tonic slightly.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

try:
    import evtui  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evtui.events.render import RENDERERS
from evtui.events.types import EVENT_DTYPE

TARGET_FPS = 300.0  # histogram, 640x480, typical window
WINDOW_US = 33_000
SIZES = ((640, 480), (1280, 720))
LOADS = (("typical", 50_000), ("busy", 300_000))
N_WINDOWS = 3


def synthetic_window(width: int, height: int, n: int, seed: int) -> np.ndarray:
    """n events in one 33 ms window: two sweeping bars, a moving disc rim, 10 % noise."""
    rng = np.random.default_rng(seed)
    n_noise = n // 10
    n_bar = (n - n_noise) // 3
    n_disc = n - n_noise - 2 * n_bar
    parts = []
    for k in range(2):  # vertical bars sweeping right; leading edge ON, trailing OFF
        t = rng.integers(0, WINDOW_US, n_bar)
        x0 = width * (0.15 + 0.4 * k) + 0.3 * width * t / WINDOW_US
        trailing = rng.random(n_bar) < 0.5
        x = x0 - trailing * width * 0.05 + rng.normal(0, 1.5, n_bar)
        y = rng.uniform(0.1 * height, 0.9 * height, n_bar)
        parts.append((t, x, y, ~trailing))
    t = rng.integers(0, WINDOW_US, n_disc)  # disc moving down-left, its rim fires
    ang = rng.uniform(0, 2 * np.pi, n_disc)
    r = 0.12 * height + rng.normal(0, 1.0, n_disc)
    cx = 0.7 * width - 0.2 * width * t / WINDOW_US
    cy = 0.3 * height + 0.3 * height * t / WINDOW_US
    parts.append((t, cx + r * np.cos(ang), cy + r * np.sin(ang), np.cos(ang) < 0))
    parts.append(
        (
            rng.integers(0, WINDOW_US, n_noise),
            rng.uniform(0, width, n_noise),
            rng.uniform(0, height, n_noise),
            rng.random(n_noise) < 0.5,
        )
    )
    t, x, y, p = (np.concatenate(c) for c in zip(*parts, strict=True))
    order = np.argsort(t, kind="stable")
    ev = np.zeros(n, dtype=EVENT_DTYPE)
    ev["t"] = t[order] + seed * WINDOW_US
    ev["x"] = np.clip(np.rint(x[order]), 0, width - 1)
    ev["y"] = np.clip(np.rint(y[order]), 0, height - 1)
    ev["p"] = p[order]
    return ev


def to_tonic(ev: np.ndarray) -> np.ndarray:
    out = np.empty(
        ev.size, dtype=np.dtype([("x", "<i8"), ("y", "<i8"), ("t", "<i8"), ("p", "<i8")])
    )
    for f in ("x", "y", "t", "p"):
        out[f] = ev[f]
    return out


def _render_into(
    fn: Callable[..., np.ndarray], w: int, h: int, out: np.ndarray, ev: np.ndarray
) -> None:
    fn(ev, w, h, out=out)


def frames_per_s(
    fn: Callable[[np.ndarray], object], windows: list[np.ndarray], budget: float
) -> float:
    """Median frames/s of fn over the windows, repeating until `budget` seconds are spent."""
    for w in windows:  # warm-up: first-touch allocations, caches
        fn(w)
    times: list[float] = []
    spent = 0.0
    i = 0
    while spent < budget or len(times) < 5:
        w = windows[i % len(windows)]
        t0 = time.perf_counter()
        fn(w)
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
        i += 1
    return 1.0 / float(np.median(times))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="shorter timing budget per cell")
    args = ap.parse_args(argv)
    budget = 0.15 if args.quick else 0.6

    try:
        from tonic.transforms import ToFrame
    except ImportError:
        ToFrame = None
        print("tonic not installed: the baseline column is skipped (pip install 'evtui[bench]')")

    columns = [(w, h, load, n) for (w, h) in SIZES for (load, n) in LOADS]
    header = ["method"] + [f"{w}x{h} {load} {n // 1000}K" for (w, h, load, n) in columns]
    rows: dict[str, list[float]] = {name: [] for name in RENDERERS}
    rows["tonic ToFrame"] = []
    for w, h, _load, n in columns:
        windows = [synthetic_window(w, h, n, seed) for seed in range(N_WINDOWS)]
        out = np.empty((h, w, 3), dtype=np.uint8)
        for name, fn in RENDERERS.items():
            call = functools.partial(_render_into, fn, w, h, out)
            rows[name].append(frames_per_s(call, windows, budget))
        if ToFrame is not None:
            to_frame = ToFrame(sensor_size=(w, h, 2), n_time_bins=1)
            tonic_windows = [to_tonic(ev) for ev in windows]
            rows["tonic ToFrame"].append(frames_per_s(to_frame, tonic_windows, budget))

    widths = [max(16, len(c)) for c in header]
    print("frames/s (median), one core; evtui renders into a pre-allocated out=")
    print(
        "  ".join(
            c.rjust(wd) if i else c.ljust(wd)
            for i, (c, wd) in enumerate(zip(header, widths, strict=True))
        )
    )
    for name, vals in rows.items():
        if not vals:
            continue
        cells = [name.ljust(widths[0])] + [
            f"{v:,.0f}".rjust(wd) for v, wd in zip(vals, widths[1:], strict=True)
        ]
        print("  ".join(cells))
    if rows["tonic ToFrame"]:
        ratios = [a / b for a, b in zip(rows["histogram"], rows["tonic ToFrame"], strict=True)]
        cells = ["ratio hist/tonic".ljust(widths[0])] + [
            f"{r:.1f}x".rjust(wd) for r, wd in zip(ratios, widths[1:], strict=True)
        ]
        print("  ".join(cells))
    got = rows["histogram"][0]
    verdict = "PASS" if got >= TARGET_FPS else "FAIL"
    print(
        f"target: histogram 640x480 typical >= {TARGET_FPS:.0f} frames/s: {got:,.0f} -> {verdict}"
    )
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    raise SystemExit(main())
