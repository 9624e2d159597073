"""Synthetic event streams from a scripted scene, in the manner of ESIM and v2e.

evtui ships no real recordings, so the demo, the tests and the benchmarks need data
whose content is known: a procedurally rendered scene (a textured wall, a disc, a bar,
a lamp, the lights of the room) follows a *scene script* of timed shots, and each shot
carries the ground-truth label that the provider simulator later treats as the true
caption. Long static stretches are deliberate: there the semantic cache should hit,
and `scene_segments` says which stretches show the same view (a shared `scene_id`).

The pixel model is the usual one: each pixel compares its log intensity with a stored
reference and emits one event per threshold crossing, timed by linear interpolation
between render steps, then stays blind for a refractory period. Background noise,
ON leak events, a few hot pixels and timestamp jitter are added. Everything is seeded,
and the only functions whose last bit may vary between machines (log, exp) work in
float64 on values compared with thresholds ~0.25 apart, so the same seed gives the same
bytes. It streams: memory is the sensor-sized state plus one chunk of events.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from evtui.events.types import EVENT_DTYPE, concat_events

Rect = tuple[int, int, int, int]
"""(y0, y1, x0, x1): rows y0..y1-1 and columns x0..x1-1 of the sensor."""

# ---------------------------------------------------------------------------------------
# The scene script


@dataclass(frozen=True)
class Shot:
    """One timed stretch of the scene script; the changes are spread evenly over it.

    Distances are fractions of the sensor width (x) and height (y), so one script
    plays the same at any resolution. `light` is a change of natural-log intensity,
    the unit of the contrast thresholds (0.25 is about one event per pixel).
    """

    duration_us: int
    label: str
    pan: tuple[float, float] = (0.0, 0.0)
    disc: tuple[float, float] = (0.0, 0.0)
    bar_turn_deg: float = 0.0
    light: float = 0.0
    flicker_hz: float = 0.0

    @property
    def static(self) -> bool:
        return (
            self.pan == (0.0, 0.0)
            and self.disc == (0.0, 0.0)
            and self.bar_turn_deg == 0.0
            and self.light == 0.0
            and self.flicker_hz == 0.0
        )


@dataclass(frozen=True)
class Segment:
    """Ground truth for a stretch of the stream. Equal `scene_id`: the same image."""

    t0_us: int
    t1_us: int
    label: str
    scene_id: str
    static: bool


_STILL = "nothing moves; only sensor noise"

DEFAULT_SCRIPT: tuple[Shot, ...] = (
    Shot(1_800_000, f"static view of a textured wall with a dark disc, a bar and a lamp; {_STILL}"),
    Shot(500_000, "the camera pans right across the textured wall", pan=(0.03, 0.0)),
    Shot(1_500_000, f"static view, the camera panned slightly right; {_STILL}"),
    Shot(500_000, "the camera pans back left to the first view", pan=(-0.03, 0.0)),
    Shot(1_500_000, f"static view, back at the first view; {_STILL}"),
    Shot(800_000, "a dark disc moves right across the wall", disc=(0.2, 0.0)),
    Shot(1_500_000, f"static view, the dark disc now left of centre; {_STILL}"),
    Shot(600_000, "a bright bar rotates a quarter turn clockwise", bar_turn_deg=90.0),
    Shot(1_500_000, f"static view, the bar now tilted the other way; {_STILL}"),
    Shot(300_000, "the room lights brighten", light=0.1),
    Shot(300_000, "a small lamp in the lower right flickers at 100 Hz", flicker_hz=100.0),
    Shot(1_200_000, f"static view in brighter light; {_STILL}"),
)
"""12 s: five static views (the first seen twice) between pans, motions, light and flicker."""

BUSY_SCRIPT: tuple[Shot, ...] = (
    Shot(
        1_000_000,
        "the camera pans right and down while the disc crosses and the bar spins",
        pan=(0.2, 0.1),
        disc=(0.3, 0.0),
        bar_turn_deg=180.0,
    ),
    Shot(
        1_000_000,
        "the camera pans left and up while the disc returns and the bar spins",
        pan=(-0.2, -0.1),
        disc=(-0.3, 0.0),
        bar_turn_deg=180.0,
    ),
)
"""2 s of dense ego-motion for benchmarks; it ends where it starts, so `BUSY_SCRIPT * k`
plays k times as long."""


def scene_segments(script: Sequence[Shot], t0_us: int = 0) -> list[Segment]:
    """The script's ground truth: contiguous segments, one per shot.

    Static shots that show the same image share a scene_id (`view1`, `view2`, …);
    every moving shot gets its own (`motion1`, …) since its content changes.
    """
    _check_script(script)
    views: dict[tuple[float, ...], str] = {}
    out: list[Segment] = []
    t = int(t0_us)
    pose = _Pose.start()
    motions = 0
    for shot in script:
        if shot.static:
            sid = views.setdefault(pose.key(), f"view{len(views) + 1}")
        else:
            motions += 1
            sid = f"motion{motions}"
        out.append(Segment(t, t + shot.duration_us, shot.label, sid, shot.static))
        t += shot.duration_us
        pose = pose.after(shot)
    return out


def _check_script(script: Sequence[Shot]) -> None:
    if not script:
        raise ValueError("the scene script is empty")
    pose = _Pose.start()
    for i, shot in enumerate(script):
        if int(shot.duration_us) <= 0:
            raise ValueError(f"shot {i} ({shot.label!r}): duration_us must be > 0")
        pose = pose.after(shot)
        if abs(pose.cam_x) > PAN_MARGIN + 1e-9 or abs(pose.cam_y) > PAN_MARGIN + 1e-9:
            raise ValueError(
                f"shot {i} ({shot.label!r}) pans the camera to ({pose.cam_x:+.3f}, "
                f"{pose.cam_y:+.3f}); the wall extends only ±{PAN_MARGIN} sensor sizes"
            )


# ---------------------------------------------------------------------------------------
# The procedural scene

PAN_MARGIN = 0.25
"""The wall extends this fraction of the sensor size beyond each edge of the first view."""

# Layout in sensor fractions (x of width, y and sizes of height) at the first view.
_DISC = (0.22, 0.62, 0.085, 0.12)  # x, y, radius, intensity
_BAR = (0.68, 0.33, 0.18, 0.022, 20.0, 0.85)  # x, y, half length, half width, angle, intensity
_LAMP = (0.87, 0.80, 0.035, 0.9, 0.25)  # x, y, radius, intensity, flicker depth
_SNAP = 9  # shot-boundary poses are rounded so that returning views render identically


@dataclass(frozen=True)
class _Pose:
    """Where everything is, in sensor fractions (camera, disc), degrees and log units."""

    cam_x: float = 0.0
    cam_y: float = 0.0
    disc_x: float = _DISC[0]
    disc_y: float = _DISC[1]
    bar_deg: float = _BAR[4]
    light: float = 0.0

    @classmethod
    def start(cls) -> _Pose:
        return cls()

    def after(self, shot: Shot) -> _Pose:
        """The pose at the end of `shot`, snapped so that equal poses render identically."""
        v = [round(a + d, _SNAP) for a, d in zip(self.key(), _deltas(shot), strict=True)]
        v[4] %= 180.0  # a bar turned by half a turn looks the same
        return _Pose(*v)

    def key(self) -> tuple[float, ...]:
        return (self.cam_x, self.cam_y, self.disc_x, self.disc_y, self.bar_deg, self.light)

    def lerp(self, shot: Shot, frac: float) -> _Pose:
        return _Pose(*(a + frac * d for a, d in zip(self.key(), _deltas(shot), strict=True)))


def _deltas(shot: Shot) -> tuple[float, ...]:
    return (*shot.pan, *shot.disc, shot.bar_turn_deg, shot.light)


@runtime_checkable
class Scene(Protocol):
    """What the simulator needs from a scene; `ProceduralScene` is the usual one.

    Times are µs from the start of the scene. `boundaries_us` are times a render step
    must not straddle (the scene's motion is smooth between them).
    """

    width: int
    height: int
    duration_us: int
    boundaries_us: Sequence[int]

    def changed(self, ta: int, tb: int) -> Rect | None:
        """The rectangle whose pixels may differ between times ta and tb (None: none)."""
        ...

    def render(self, t_us: int, rect: Rect) -> np.ndarray:
        """Linear intensity (float32 or float64, about 0..1) of `rect` at time t_us."""
        ...


class ProceduralScene:
    """A wall texture the camera pans over, a disc, a bar, a lamp and room lighting."""

    def __init__(self, script: Sequence[Shot], width: int, height: int, seed: int) -> None:
        _check_script(script)
        self.shots = tuple(script)
        self.width = int(width)
        self.height = int(height)
        starts = [0]
        poses = [_Pose.start()]
        for shot in self.shots:
            starts.append(starts[-1] + int(shot.duration_us))
            poses.append(poses[-1].after(shot))
        self.boundaries_us: list[int] = starts
        self.duration_us = starts[-1]
        self._poses = poses
        self._mx = math.ceil(PAN_MARGIN * self.width) + 1
        self._my = math.ceil(PAN_MARGIN * self.height) + 1
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]))
        self._wall = _wall_texture(
            self.height + 2 * self._my + 1, self.width + 2 * self._mx + 1, self.height, rng
        )

    def _shot_at(self, t_us: int) -> int:
        """The shot that contains t_us (a step starting there never straddles two)."""
        i = bisect.bisect_right(self.boundaries_us, t_us) - 1
        return min(max(i, 0), len(self.shots) - 1)

    def pose_at(self, t_us: int) -> _Pose:
        i = self._shot_at(t_us)
        frac = (t_us - self.boundaries_us[i]) / self.shots[i].duration_us
        if frac <= 0.0:
            return self._poses[i]
        if frac >= 1.0:
            return self._poses[i + 1]
        return self._poses[i].lerp(self.shots[i], frac)

    # -- what changes between two times ------------------------------------------------

    def changed(self, ta: int, tb: int) -> Rect | None:
        shot = self.shots[self._shot_at(ta)]
        if shot.static:
            return None
        full = (0, self.height, 0, self.width)
        if shot.pan != (0.0, 0.0) or shot.light != 0.0:
            return full
        rects: list[Rect] = []
        for pose in (self.pose_at(ta), self.pose_at(tb)):
            if shot.disc != (0.0, 0.0):
                rects.append(self._disc_box(pose))
            if shot.bar_turn_deg != 0.0:
                rects.append(self._bar_box(pose))
            if shot.flicker_hz != 0.0:
                rects.append(self._lamp_box(pose))
        return _clip(_union(rects, pad=2), full)

    # -- geometry in sensor pixels ------------------------------------------------------

    def _cam_px(self, pose: _Pose) -> tuple[float, float]:
        return pose.cam_x * self.width, pose.cam_y * self.height

    def _disc_geom(self, pose: _Pose) -> tuple[float, float, float]:
        cx, cy = self._cam_px(pose)
        return pose.disc_x * self.width - cx, pose.disc_y * self.height - cy, _DISC[2] * self.height

    def _bar_geom(self, pose: _Pose) -> tuple[float, float, float, float, float]:
        cx, cy = self._cam_px(pose)
        h = self.height
        return (
            _BAR[0] * self.width - cx,
            _BAR[1] * h - cy,
            _BAR[2] * h,
            _BAR[3] * h,
            math.radians(pose.bar_deg),
        )

    def _lamp_geom(self, pose: _Pose) -> tuple[float, float, float]:
        cx, cy = self._cam_px(pose)
        return _LAMP[0] * self.width - cx, _LAMP[1] * self.height - cy, _LAMP[2] * self.height

    def _disc_box(self, pose: _Pose) -> Rect:
        x, y, r = self._disc_geom(pose)
        return _box(x - r, x + r, y - r, y + r)

    def _lamp_box(self, pose: _Pose) -> Rect:
        x, y, r = self._lamp_geom(pose)
        return _box(x - r, x + r, y - r, y + r)

    def _bar_box(self, pose: _Pose) -> Rect:
        x, y, hl, hw, a = self._bar_geom(pose)
        ex = abs(hl * math.cos(a)) + abs(hw * math.sin(a))
        ey = abs(hl * math.sin(a)) + abs(hw * math.cos(a))
        return _box(x - ex, x + ex, y - ey, y + ey)

    # -- rendering ----------------------------------------------------------------------

    def render(self, t_us: int, rect: Rect) -> np.ndarray:
        pose = self.pose_at(t_us)
        y0, y1, x0, x1 = rect
        cx, cy = self._cam_px(pose)
        img = _sample_shifted(self._wall, self._my + cy + y0, self._mx + cx + x0, y1 - y0, x1 - x0)
        i = self._shot_at(t_us)
        shot = self.shots[i]
        lamp = _LAMP[3]
        if shot.flicker_hz:
            phase = 2.0 * math.pi * shot.flicker_hz * (t_us - self.boundaries_us[i]) * 1e-6
            lamp *= 1.0 + _LAMP[4] * math.sin(phase)
        lx, ly, lr = self._lamp_geom(pose)
        _paint_disc(img, rect, lx, ly, lr, lamp)
        dx, dy, dr = self._disc_geom(pose)
        _paint_disc(img, rect, dx, dy, dr, _DISC[3])
        _paint_bar(img, rect, *self._bar_geom(pose), _BAR[5])
        if pose.light:
            img *= math.exp(pose.light)
        return img


def _box(xa: float, xb: float, ya: float, yb: float) -> Rect:
    return math.floor(ya) - 1, math.ceil(yb) + 2, math.floor(xa) - 1, math.ceil(xb) + 2


def _union(rects: Sequence[Rect], pad: int) -> Rect | None:
    if not rects:
        return None
    return (
        min(r[0] for r in rects) - pad,
        max(r[1] for r in rects) + pad,
        min(r[2] for r in rects) - pad,
        max(r[3] for r in rects) + pad,
    )


def _clip(rect: Rect | None, bounds: Rect) -> Rect | None:
    if rect is None:
        return None
    y0, y1 = max(rect[0], bounds[0]), min(rect[1], bounds[1])
    x0, x1 = max(rect[2], bounds[2]), min(rect[3], bounds[3])
    if y0 >= y1 or x0 >= x1:
        return None
    return y0, y1, x0, x1


def _sample_shifted(tex: np.ndarray, top: float, left: float, h: int, w: int) -> np.ndarray:
    """A h×w window of `tex` at a sub-pixel offset (bilinear, plain arithmetic)."""
    iy, ix = math.floor(top), math.floor(left)
    fy, fx = top - iy, left - ix
    a = tex[iy : iy + h + 1, ix : ix + w + 1]
    if fx:
        b = a[:, 1:] - a[:, :-1]
        b *= fx
        b += a[:, :-1]
        a = b
    else:
        a = a[:, :-1]
    if fy:
        b = a[1:] - a[:-1]
        b *= fy
        b += a[:-1]
        return b
    return a[:-1].copy()


def _grid(rect: Rect, box: Rect) -> tuple[np.ndarray, np.ndarray, tuple[slice, slice]] | None:
    """Pixel-centre coordinates of rect ∩ box, and where that lies inside rect."""
    inter = _clip(box, rect)
    if inter is None:
        return None
    y0, y1, x0, x1 = inter
    ys = np.arange(y0, y1, dtype=np.float64)[:, None]
    xs = np.arange(x0, x1, dtype=np.float64)[None, :]
    return ys, xs, (slice(y0 - rect[0], y1 - rect[0]), slice(x0 - rect[2], x1 - rect[2]))


def _paint_disc(img: np.ndarray, rect: Rect, x: float, y: float, r: float, level: float) -> None:
    g = _grid(rect, _box(x - r, x + r, y - r, y + r))
    if g is None:
        return
    ys, xs, where = g
    d = np.sqrt((xs - x) ** 2 + (ys - y) ** 2)
    cover = np.clip(r + 0.5 - d, 0.0, 1.0)
    sub = img[where]
    sub += cover * (level - sub)


def _paint_bar(
    img: np.ndarray,
    rect: Rect,
    x: float,
    y: float,
    hl: float,
    hw: float,
    angle: float,
    level: float,
) -> None:
    ex = abs(hl * math.cos(angle)) + abs(hw * math.sin(angle))
    ey = abs(hl * math.sin(angle)) + abs(hw * math.cos(angle))
    g = _grid(rect, _box(x - ex, x + ex, y - ey, y + ey))
    if g is None:
        return
    ys, xs, where = g
    c, s = math.cos(angle), math.sin(angle)
    u = (xs - x) * c + (ys - y) * s
    v = (ys - y) * c - (xs - x) * s
    cover = np.clip(hl + 0.5 - np.abs(u), 0.0, 1.0) * np.clip(hw + 0.5 - np.abs(v), 0.0, 1.0)
    sub = img[where]
    sub += cover * (level - sub)


def _value_noise(h: int, w: int, cell: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth noise in 0..1: random values on a grid, smoothstep-interpolated."""
    gh, gw = int(h / cell) + 3, int(w / cell) + 3
    grid = rng.random((gh, gw))
    gy = np.arange(h) / cell
    gx = np.arange(w) / cell
    iy, ix = gy.astype(np.int64), gx.astype(np.int64)
    fy, fx = gy - iy, gx - ix
    fy = fy * fy * (3.0 - 2.0 * fy)
    fx = fx * fx * (3.0 - 2.0 * fx)
    rows = grid[:, ix] + fx * (grid[:, ix + 1] - grid[:, ix])
    return rows[iy] + fy[:, None] * (rows[iy + 1] - rows[iy])


def _wall_texture(h: int, w: int, scale: int, rng: np.random.Generator) -> np.ndarray:
    """Intensity of the wall: soft noise plus patches and blobs with soft edges.

    Sizes follow `scale` (the sensor height), so a larger sensor sees the same wall.
    The edges are what make a pan produce events; the blur keeps the texture free of
    detail near the pixel pitch, which bilinear panning would turn into flicker.
    """
    tex = 0.45 + 0.25 * (_value_noise(h, w, 0.5 * scale, rng) - 0.5)
    tex += 0.12 * (_value_noise(h, w, 0.12 * scale, rng) - 0.5)
    full = (0, h, 0, w)
    n_shapes = max(8, round(22 * h * w / scale**2))
    for _ in range(n_shapes):
        x, y = rng.random() * w, rng.random() * h
        rx, ry = (0.03 + 0.09 * rng.random(2)) * scale
        level = 0.15 + 0.6 * rng.random()
        alpha = 0.5 + 0.5 * rng.random()
        g = _grid(full, _box(x - rx, x + rx, y - ry, y + ry))
        if g is None:
            continue
        ys, xs, where = g
        if rng.random() < 0.5:
            edge = np.minimum(rx - np.abs(xs - x), ry - np.abs(ys - y))
        else:
            edge = (1.0 - np.sqrt(((xs - x) / rx) ** 2 + ((ys - y) / ry) ** 2)) * min(rx, ry)
        cover = alpha * np.clip(edge / 1.5 + 0.5, 0.0, 1.0)
        sub = tex[where]
        sub += cover * (level - sub)
    for _ in range(2):  # binomial [1 2 1]/4 blur along both axes
        tex[:, 1:-1] = 0.25 * tex[:, :-2] + 0.5 * tex[:, 1:-1] + 0.25 * tex[:, 2:]
        tex[1:-1, :] = 0.25 * tex[:-2, :] + 0.5 * tex[1:-1, :] + 0.25 * tex[2:, :]
    return np.clip(tex, 0.05, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------
# The sensor


@dataclass(frozen=True)
class SimConfig:
    """Sensor and noise settings. Rates are per pixel; times in µs; thresholds in log units."""

    width: int = 320
    height: int = 240
    seed: int = 0
    t0_us: int = 0
    threshold_on: float = 0.25
    threshold_off: float = 0.25
    threshold_sigma: float = 0.03
    threshold_min: float = 0.05
    refractory_us: int = 250
    """Dead time after an event; crossings in it are lost (the reference still moves)."""
    noise_rate_hz: float = 0.1
    """Background activity, random polarity."""
    leak_rate_hz: float = 0.01
    """ON-only events from reset-switch leakage."""
    hot_pixels: int = 3
    hot_rate_hz: float = 40.0
    jitter_us: int = 2
    """Signal timestamps move by a uniform ±jitter_us (kept within their render step)."""
    step_us: int = 1000
    """Longest render step while something changes."""
    idle_step_us: int = 20_000
    """Step while nothing changes: only noise is drawn, so it need not be fine."""
    adaptive_dl: float = 0.3
    """A step where a firing pixel's log intensity moved more than this is split."""
    max_substeps: int = 8
    cutoff_hz: float | None = None
    """Photoreceptor low-pass cutoff at full intensity (slower when darker); None: off."""
    eps: float = 1e-3
    random_reference: bool = True
    """Start each pixel's reference at a random level within its thresholds (real sensors
    do not start synchronised); False: the reference is the first frame's level."""

    def __post_init__(self) -> None:
        if self.width <= 0 or self.height <= 0 or self.width > 65535 or self.height > 65535:
            raise ValueError(f"sensor size {self.width}x{self.height} out of range")
        if self.step_us <= 0 or self.max_substeps < 1 or self.refractory_us < 0:
            raise ValueError("step_us and max_substeps must be >= 1, refractory_us >= 0")
        if self.hot_pixels > self.width * self.height:
            raise ValueError("more hot pixels than pixels")

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


class _Sensor:
    """Per-pixel state and the event model; `step` turns one render step into events.

    The model is the log one (an event each time log(I + eps) moves C away from the
    pixel's reference), but the test runs in linear intensity against per-pixel
    trigger levels exp(ref ± C) - eps: a step costs two comparisons per pixel, and
    logs are taken only for the pixels that fire. The images are float32 (exact and
    reproducible arithmetic); the log-domain state is float64.
    """

    def __init__(self, config: SimConfig, first: np.ndarray) -> None:
        self.cfg = c = config
        ss = np.random.SeedSequence([int(c.seed), 2])
        pix_ss, noise_ss = ss.spawn(2)
        prng = np.random.default_rng(pix_ss)
        self.rng = np.random.default_rng(noise_ss)
        shape = (c.height, c.width)
        self.npix = c.height * c.width
        self.c_on = np.maximum(
            prng.normal(c.threshold_on, c.threshold_sigma, shape), c.threshold_min
        )
        self.c_off = np.maximum(
            prng.normal(c.threshold_off, c.threshold_sigma, shape), c.threshold_min
        )
        self.hot = np.sort(prng.choice(self.npix, size=c.hot_pixels, replace=False))
        self.lin = np.asarray(first, np.float32).copy()  # what the comparators see
        log = np.log(self.lin.astype(np.float64) + c.eps)
        self.lf = log if c.cutoff_hz is not None else None  # low-pass state
        if c.random_reference:
            u = prng.random(shape)
            self.ref = log - self.c_on + u * (self.c_on + self.c_off)
        else:
            self.ref = log.copy()
        self.hi = np.empty(shape, np.float32)
        self.lo = np.empty(shape, np.float32)
        self._set_levels(slice(None))
        self.last_t = np.full(self.npix, np.iinfo(np.int64).min // 2, dtype=np.int64)

    def _set_levels(self, flat: np.ndarray | slice) -> None:
        ref = self.ref.reshape(-1)[flat]
        eps = self.cfg.eps
        self.hi.reshape(-1)[flat] = np.exp(ref + self.c_on.reshape(-1)[flat]) - eps
        self.lo.reshape(-1)[flat] = np.exp(ref - self.c_off.reshape(-1)[flat]) - eps

    def _effective(
        self, img: np.ndarray, rect: Rect, dt_us: int
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """What the comparators see after dt_us, and the new low-pass state (if any)."""
        c = self.cfg
        if c.cutoff_hz is None or self.lf is None:
            return img, None
        # v2e-style photoreceptor: a first-order low-pass whose cutoff grows with intensity
        y0, y1, x0, x1 = rect
        alpha = np.minimum(1.0, (2.0 * math.pi * c.cutoff_hz * dt_us * 1e-6) * np.maximum(img, 0.1))
        prev = self.lf[y0:y1, x0:x1]
        lf1 = prev + alpha * (np.log(img.astype(np.float64) + c.eps) - prev)
        return (np.exp(lf1) - c.eps).astype(np.float32), lf1

    def _detect(
        self, lin1: np.ndarray, rect: Rect
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Pixels of `rect` past a trigger level: (global flat, index in rect, log0, log1)."""
        y0, y1, x0, x1 = rect
        fire = lin1 >= self.hi[y0:y1, x0:x1]
        fire |= lin1 <= self.lo[y0:y1, x0:x1]
        nz = np.flatnonzero(fire)
        ry, rx = np.divmod(nz, x1 - x0)
        flat = (ry + y0) * self.cfg.width + (rx + x0)
        eps = self.cfg.eps
        l0 = np.log(self.lin.reshape(-1)[flat].astype(np.float64) + eps)
        l1 = np.log(lin1.reshape(-1)[nz].astype(np.float64) + eps)
        return flat, nz, l0, l1

    def _commit(
        self,
        lin1: np.ndarray,
        lf1: np.ndarray | None,
        rect: Rect,
        found: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
        ta: int,
        tb: int,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Move the references past the crossings; the events as (flat pixel, time, p)."""
        y0, y1, x0, x1 = rect
        self.lin[y0:y1, x0:x1] = lin1
        if lf1 is not None and self.lf is not None:
            self.lf[y0:y1, x0:x1] = lf1
        flat, _, l0, l1 = found
        if not len(flat):
            return _EMPTY_I, _EMPTY_F, _EMPTY_P
        ref0 = self.ref.reshape(-1)[flat]
        dn = l1 - ref0
        up = dn > 0
        cc = np.where(up, self.c_on.reshape(-1)[flat], self.c_off.reshape(-1)[flat])
        nn = np.floor(np.abs(dn) / cc).astype(np.int64)
        step = np.where(up, cc, -cc)
        self.ref.reshape(-1)[flat] = ref0 + nn * step
        self._set_levels(flat)
        owner = np.repeat(np.arange(len(flat)), nn)
        k = np.arange(len(owner)) - np.repeat(np.cumsum(nn) - nn, nn) + 1
        # level k sits at ref + k·C; its time by linear interpolation between ta and tb
        span = (l1 - l0)[owner]
        frac = (ref0 - l0)[owner] + step[owner] * k
        np.divide(frac, span, out=frac, where=span != 0)
        frac[span == 0] = 1.0
        np.clip(frac, 0.0, 1.0, out=frac)
        return flat[owner], ta + frac * (tb - ta), up.view(np.int8)[owner]

    def crossings(
        self, img: np.ndarray, rect: Rect, ta: int, tb: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Threshold crossings of `rect` when it shows `img` at tb (no sub-steps)."""
        lin1, lf1 = self._effective(img, rect, tb - ta)
        return self._commit(lin1, lf1, rect, self._detect(lin1, rect), ta, tb)

    def step(
        self, scene: Scene, ta: int, tb: int, rect: Rect | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Signal crossings of one render step, sub-divided where pixels change fast.

        Only firing pixels are looked at: a step is split when one of them moved by more
        than `adaptive_dl` in log intensity, since that is where interpolated times and
        multiple crossings need finer samples.
        """
        c = self.cfg
        if rect is None:
            return _EMPTY_I, _EMPTY_F, _EMPTY_P
        img = scene.render(tb, rect).astype(np.float32, copy=False)
        lin1, lf1 = self._effective(img, rect, tb - ta)
        found = self._detect(lin1, rect)
        n_sub = 1
        if c.max_substeps > 1 and tb - ta > 1 and len(found[0]):
            dl = float(np.max(np.abs(found[3] - found[2])))
            if dl > c.adaptive_dl:
                n_sub = min(c.max_substeps, math.ceil(dl / c.adaptive_dl), tb - ta)
        if n_sub == 1:
            return self._commit(lin1, lf1, rect, found, ta, tb)
        parts = []
        t_prev = ta
        for j in range(1, n_sub + 1):
            t = ta + ((tb - ta) * j) // n_sub
            sub = img if j == n_sub else scene.render(t, rect).astype(np.float32, copy=False)
            parts.append(self.crossings(sub, rect, t_prev, t))
            t_prev = t
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
        )

    def emit(
        self, pix: np.ndarray, tf: np.ndarray, pol: np.ndarray, ta: int, tb: int
    ) -> np.ndarray:
        """Add noise to one step's crossings, quantise, apply refractoriness, sort."""
        c = self.cfg
        rng = self.rng
        dt = tb - ta
        # the order of the draws is fixed whatever the rates, so chunking never changes them
        jitter = rng.uniform(-c.jitter_us, c.jitter_us, len(tf)) if c.jitter_us else 0.0
        t_sig = np.clip(np.floor(tf + jitter).astype(np.int64), ta, tb - 1)
        n_bg = int(rng.poisson(c.noise_rate_hz * self.npix * dt * 1e-6))
        n_leak = int(rng.poisson(c.leak_rate_hz * self.npix * dt * 1e-6))
        hot_n = rng.poisson(c.hot_rate_hz * dt * 1e-6, len(self.hot))
        n_hot = int(hot_n.sum())
        n_noise = n_bg + n_leak + n_hot
        noise_pix = np.concatenate(
            [rng.integers(0, self.npix, n_bg + n_leak), np.repeat(self.hot, hot_n)]
        )
        noise_t = ta + rng.integers(0, dt, n_noise)
        noise_p = rng.integers(0, 2, n_noise).astype(np.int8)
        noise_p[n_bg : n_bg + n_leak] = 1
        if n_noise:
            pix = np.concatenate([pix, noise_pix])
            t = np.concatenate([t_sig, noise_t])
            pol = np.concatenate([pol, noise_p])
        else:
            t = t_sig
        if not len(t):
            return np.zeros(0, EVENT_DTYPE)
        # by pixel, then time: the refractory filter walks each pixel's events in order
        order = np.argsort(pix * dt + (t - ta), kind="stable")
        pix, t, pol = pix[order], t[order], pol[order]
        if c.refractory_us > 0:
            keep = _refractory(pix, t, self.last_t, c.refractory_us)
            pix, t, pol = pix[keep], t[keep], pol[keep]
        else:
            self.last_t[pix] = t
        # by time, then row, then column: rows read out together, as sensors do
        order = np.argsort((t - ta) * self.npix + pix, kind="stable")
        out = np.zeros(len(order), EVENT_DTYPE)  # zeroed padding: reproducible bytes
        out["t"] = t[order] + c.t0_us
        y, x = np.divmod(pix[order], c.width)
        out["x"] = x
        out["y"] = y
        out["p"] = pol[order]
        return out


_EMPTY_I = np.zeros(0, np.int64)
_EMPTY_F = np.zeros(0, np.float64)
_EMPTY_P = np.zeros(0, np.int8)


def _refractory(pix: np.ndarray, t: np.ndarray, last_t: np.ndarray, r_us: int) -> np.ndarray:
    """Which events (sorted by pixel, then time) survive each pixel's dead time.

    Exact greedy rule: an event is kept when it comes r_us or more after the last
    *kept* event of its pixel. Vectorised over pixels by taking every pixel's first
    candidate, then every pixel's second, …: the loop runs as many times as the
    busiest pixel has candidates in this step, a handful at most.
    """
    n = len(pix)
    first = np.empty(n, bool)
    first[0] = True
    np.not_equal(pix[1:], pix[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    if len(starts) == n:
        keep = t >= last_t[pix] + r_us
        last_t[pix[keep]] = t[keep]
        return keep
    rank = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    by_rank = np.argsort(rank, kind="stable")
    keep = np.zeros(n, bool)
    pos = 0
    for count in np.bincount(rank):
        sel = by_rank[pos : pos + count]
        pos += count
        p, tt = pix[sel], t[sel]
        ok = tt >= last_t[p] + r_us
        last_t[p[ok]] = tt[ok]
        keep[sel[ok]] = True
    return keep


def _steps(scene: Scene, cfg: SimConfig) -> Iterator[tuple[int, int]]:
    """Render steps; stretches where nothing changes take long steps (noise only)."""
    for a, b in itertools.pairwise(scene.boundaries_us):
        idle = cfg.cutoff_hz is None and scene.changed(a, b) is None
        step = max(cfg.step_us, cfg.idle_step_us) if idle else cfg.step_us
        for t in range(a, b, step):
            yield t, min(t + step, b)


def simulate(
    script: Sequence[Shot] | Scene = DEFAULT_SCRIPT,
    config: SimConfig | None = None,
    *,
    chunk_us: int = 100_000,
) -> Iterator[np.ndarray]:
    """Events of the scene in time order, in chunks of about `chunk_us` of scene time.

    The chunking never changes the events: concatenated, any chunk_us gives the same
    array. Empty chunks are not yielded.
    """
    cfg = config or SimConfig()
    if chunk_us <= 0:
        raise ValueError("chunk_us must be > 0")
    if isinstance(script, Scene):
        scene = script
        if (scene.width, scene.height) != (cfg.width, cfg.height):
            raise ValueError("the scene's size differs from the config's sensor size")
    else:
        scene = ProceduralScene(script, cfg.width, cfg.height, cfg.seed)
    full: Rect = (0, cfg.height, 0, cfg.width)
    sensor = _Sensor(cfg, scene.render(0, full))
    pending: list[np.ndarray] = []
    chunk_start = 0
    for ta, tb in _steps(scene, cfg):
        rect = full if cfg.cutoff_hz is not None else scene.changed(ta, tb)
        pix, tf, pol = sensor.step(scene, ta, tb, rect)
        ev = sensor.emit(pix, tf, pol, ta, tb)
        if len(ev):
            pending.append(ev)
        if tb - chunk_start >= chunk_us:
            if pending:
                yield concat_events(pending)
            pending = []
            chunk_start = tb
    if pending:
        yield concat_events(pending)


def simulate_all(
    script: Sequence[Shot] | Scene = DEFAULT_SCRIPT, config: SimConfig | None = None
) -> np.ndarray:
    """Every event at once: for tests and small scenes (memory grows with the stream)."""
    return concat_events(list(simulate(script, config)))
