"""A moving-camera recording at Prophesee Gen4 HD size, generated fast and cached on disk.

evtui's ESIM-style simulator (`evtui.events.synth`) is exact but costs ~33 s per second
of 1280x720 busy scene here, far beyond a benchmark's budget, so this module draws the
same physics statistically: a camera pans over a static textured wall (a smooth
Lissajous path, so speed and direction change all the time and drop to zero at the turns)
while a dark disc crosses it. A wall pixel at log-intensity gradient g fires
|g . v| / C events per second under camera velocity v (C the contrast threshold), with
the polarity of g . v; events are drawn per 1 ms step from the wall's edge pixels by
inverse-CDF sampling on weights precomputed for 16 flow directions, and placed where the
camera sees that wall pixel during the step (it moves < 0.5 px in one), plus background
noise and a few hot pixels. Rates are scaled so the mean over the recording is
`rate_mev` Mev/s; at the default 2 Mev/s, 100 ms slices range from ~0.4 (a turn) to
~3 Mev/s (the fastest pan), what a handheld Gen4 HD camera produces in a busy room.

Everything is seeded, so equal parameters give the same file; the file is written once
under evtui's cache directory (`$EVTUI_CACHE_DIR/bench/`) keyed by its parameters.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from evtui.events.index import cache_dir
from evtui.events.io import open_writer
from evtui.events.types import EVENT_DTYPE

GENERATOR_VERSION = 1  # bump when the events change for the same parameters


@dataclass(frozen=True)
class RecordingSpec:
    """What the generated recording is; every field goes into the cache key."""

    width: int = 1280
    height: int = 720
    seconds: float = 20.0
    rate_mev: float = 2.0  # mean events per second over the recording, in millions
    noise_hz: float = 0.1  # background activity per pixel
    seed: int = 4
    format: str = "evt2"

    @property
    def suffix(self) -> str:
        return {"evt2": ".evt2.raw", "evt3": ".evt3.raw", "dat": ".dat"}[self.format]

    def key(self) -> str:
        blob = json.dumps({**asdict(self), "v": GENERATOR_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


STEP_US = 1000
CHUNK_US = 100_000
N_DIRS = 16
THRESHOLD = 0.25
PAN_X, PAN_Y = 0.16, 0.12  # pan amplitude, fractions of the sensor size
PAN_HZ_X, PAN_HZ_Y = 0.23, 0.37


def _wall(w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    """Log intensity of a textured wall: rectangles, discs and lines over smooth shading."""
    img = np.full((h, w), 110, np.uint8)
    shade = cv2.resize(rng.uniform(60, 160, (h // 120 + 2, w // 120 + 2)), (w, h))
    img = cv2.addWeighted(img, 0.5, shade.astype(np.uint8), 0.5, 0)
    scale = w / 1280
    for _ in range(int(120 * scale * scale) + 40):
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        s = int(rng.integers(8, 90) * scale) + 4
        colour = int(rng.integers(10, 250))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + s, y + int(s * rng.uniform(0.4, 2))), colour, -1)
        elif kind == 1:
            cv2.circle(img, (x, y), s // 2, colour, -1)
        else:
            x2, y2 = x + int(rng.integers(-3 * s, 3 * s)), y + int(rng.integers(-3 * s, 3 * s))
            cv2.line(img, (x, y), (x2, y2), colour, int(rng.integers(1, 6)))
    img = cv2.GaussianBlur(img, (0, 0), 1.2)
    return np.log(img.astype(np.float32) + 8.0)


class _Edges:
    """Edge pixels of the wall and, per flow direction, the CDF of |g . u| over them."""

    def __init__(self, logi: np.ndarray, min_grad: float = 0.02) -> None:
        gx = cv2.Sobel(logi, cv2.CV_32F, 1, 0, ksize=3) / 8
        gy = cv2.Sobel(logi, cv2.CV_32F, 0, 1, ksize=3) / 8
        ys, xs = np.nonzero(np.hypot(gx, gy) > min_grad)
        self.x = xs.astype(np.int32)
        self.y = ys.astype(np.int32)
        self.gx = gx[ys, xs]
        self.gy = gy[ys, xs]
        self.cdf = []
        for k in range(N_DIRS):
            a = math.pi * k / N_DIRS  # |g . u| is the same for u and -u
            wgt = np.abs(self.gx * math.cos(a) + self.gy * math.sin(a)).astype(np.float64)
            self.cdf.append(np.cumsum(wgt))

    @staticmethod
    def direction(vx: np.ndarray, vy: np.ndarray) -> np.ndarray:
        a = np.arctan2(vy, vx) % math.pi
        return np.rint(a / math.pi * N_DIRS).astype(np.int64) % N_DIRS

    def total(self, k: np.ndarray) -> np.ndarray:
        return np.array([self.cdf[i][-1] for i in range(N_DIRS)])[k]

    def draw(self, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """n edge pixels drawn by weight |g . u_k|, in random order."""
        cdf = self.cdf[k]
        # Sorted queries walk the CDF once (random ones miss the cache on every probe);
        # the shuffle restores independence from the event times they are paired with.
        u = np.sort(rng.random(n)) * cdf[-1]
        return rng.permutation(np.searchsorted(cdf, u))


def _pan(t_s: np.ndarray, w: int, h: int) -> tuple[np.ndarray, ...]:
    """Camera offset (wall px) and its velocity (px/s) at times t_s."""
    ax, ay = PAN_X * w, PAN_Y * h
    wx, wy = 2 * math.pi * PAN_HZ_X, 2 * math.pi * PAN_HZ_Y
    ox = ax * (1 + np.sin(wx * t_s))
    oy = ay * (1 + np.sin(wy * t_s + 0.7))
    return ox, oy, ax * wx * np.cos(wx * t_s), ay * wy * np.cos(wy * t_s + 0.7)


class _Scene:
    """Per-step camera state; `chunk` turns a run of 1 ms steps into events."""

    def __init__(self, spec: RecordingSpec) -> None:
        self.spec = spec
        w, h = spec.width, spec.height
        self.rng = np.random.default_rng(spec.seed)
        ww, wh = w + 2 * round(PAN_X * w) + 2, h + 2 * round(PAN_Y * h) + 2
        self.edges = _Edges(_wall(ww, wh, self.rng))
        self.n_steps = round(spec.seconds * 1e6 / STEP_US)
        mid = (np.arange(self.n_steps) + 0.5) * STEP_US / 1e6
        ox, oy, vx, vy = _pan(mid, w, h)
        # Within one step the camera moves < 0.5 px: one offset and flow per step.
        self.ox, self.oy = np.rint(ox).astype(np.int32), np.rint(oy).astype(np.int32)
        self.vx, self.vy = vx.astype(np.float32), vy.astype(np.float32)
        self.dirs = _Edges.direction(vx, vy)
        # What the pan would fire over the whole wall at each step; only part is in view,
        # and which part changes, so the share kept is measured on sample steps.
        self.pan_rate = self.edges.total(self.dirs) * np.hypot(vx, vy) / THRESHOLD
        probe = np.linspace(0, self.n_steps - 1, min(self.n_steps, 400)).astype(np.int64)
        kept = sum(len(self._pan_events(np.array([s]), 1.0)[0]) for s in probe)
        in_view = kept / max(float(self.pan_rate[probe].sum()) * STEP_US / 1e6, 1.0)
        self.disc_rate = 2 * math.pi * 0.07 * h * 0.25 * w * math.log(3) / THRESHOLD
        self.noise_rate = spec.noise_hz * w * h
        signal = max(spec.rate_mev * 1e6 - self.noise_rate, 0.0)
        self.scale = signal / max(float(self.pan_rate.mean()) * in_view + self.disc_rate, 1.0)
        self.hot = self.rng.integers(0, [w, h], (5, 2))

    def _pan_events(self, steps: np.ndarray, scale: float) -> tuple[np.ndarray, ...]:
        """Edge events of `steps`: (t, x, y, p), unsorted, only those in view."""
        rng, e = self.rng, self.edges
        counts = rng.poisson(self.pan_rate[steps] * scale * STEP_US / 1e6)
        step_of = np.repeat(steps, counts)
        idx = np.empty(len(step_of), np.int64)
        for k in np.unique(self.dirs[steps]):  # the flow direction changes slowly
            sel = np.flatnonzero(self.dirs[step_of] == k)
            idx[sel] = e.draw(int(k), len(sel), rng)
        t = step_of * STEP_US + rng.integers(0, STEP_US, len(step_of))
        x = e.x[idx] - self.ox[step_of]
        y = e.y[idx] - self.oy[step_of]
        # Seen from the camera the wall moves by -v: a pixel's brightness changes by g . v.
        p = e.gx[idx] * self.vx[step_of] + e.gy[idx] * self.vy[step_of] > 0
        keep = (x >= 0) & (x < self.spec.width) & (y >= 0) & (y < self.spec.height)
        return t[keep], x[keep], y[keep], p[keep]

    def chunk(self, s0: int, s1: int) -> np.ndarray:
        """Events of steps s0 … s1-1 in time order: pan, a crossing dark disc, noise, hot
        pixels."""
        w, h = self.spec.width, self.spec.height
        rng = self.rng
        ta, tb = s0 * STEP_US, s1 * STEP_US
        dur = (tb - ta) / 1e6
        parts = [self._pan_events(np.arange(s0, s1), self.scale)]
        m = rng.poisson(self.disc_rate * self.scale * dur)  # the disc's rim
        td = rng.integers(ta, tb, m)
        cx = (0.1 + 0.8 * ((td / 1e6 * 0.25) % 1.0)) * w
        cy = 0.5 * h + 0.25 * h * np.sin(td / 1e6 * 1.3)
        ang = rng.uniform(0, 2 * math.pi, m)
        r = 0.07 * h + rng.normal(0, 0.7, m)
        xd, yd = np.rint(cx + r * np.cos(ang)), np.rint(cy + r * np.sin(ang))
        ok = (xd >= 0) & (xd < w) & (yd >= 0) & (yd < h)
        parts.append((td[ok], xd[ok], yd[ok], np.cos(ang[ok]) < 0))  # dark: ON behind
        k = rng.poisson(self.noise_rate * dur)  # background activity
        parts.append(
            (
                rng.integers(ta, tb, k),
                rng.integers(0, w, k),
                rng.integers(0, h, k),
                rng.random(k) < 0.5,
            )
        )
        n_hot = round(200 * dur) * len(self.hot)  # hot pixels, ~200 Hz each
        which = rng.integers(0, len(self.hot), n_hot)
        parts.append(
            (
                rng.integers(ta, tb, n_hot),
                self.hot[which, 0],
                self.hot[which, 1],
                np.ones(n_hot, bool),
            )
        )
        t, x, y, p = (np.concatenate(c) for c in zip(*parts, strict=True))
        order = np.argsort(t, kind="stable")
        out = np.empty(len(t), EVENT_DTYPE)
        out["t"] = t[order]
        out["x"] = x[order]
        out["y"] = y[order]
        out["p"] = p[order]
        return out


def events(spec: RecordingSpec) -> Iterator[np.ndarray]:
    """The recording's events in time order, in chunks of CHUNK_US."""
    scene = _Scene(spec)
    per = CHUNK_US // STEP_US
    for s0 in range(0, scene.n_steps, per):
        yield scene.chunk(s0, min(s0 + per, scene.n_steps))


def recording(
    spec: RecordingSpec, folder: Path | None = None, log: Callable[[str], None] = print
) -> Path:
    """The recording for `spec`: from the cache, else generated (atomically) into it."""
    folder = folder or cache_dir() / "bench"
    path = folder / f"pipeline-{spec.width}x{spec.height}-{spec.key()}{spec.suffix}"
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    t0 = time.perf_counter()
    n = 0
    try:
        with open_writer(tmp, spec.width, spec.height, format=spec.format) as wr:
            for ev in events(spec):
                wr.write(ev)
                n += len(ev)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    log(
        f"generated {path.name}: {n / 1e6:.1f} M events over {spec.seconds:g} s "
        f"({n / spec.seconds / 1e6:.2f} Mev/s) in {time.perf_counter() - t0:.1f} s"
    )
    return path
