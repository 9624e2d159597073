"""Renderers: one time window of events -> an RGB uint8 image of shape (H, W, 3).

Every renderer is a pure function `(events, width, height, **params) -> image` (channel order
RGB; the frame encoder converts to what the model needs). The first docstring line of each is
its formula; `describe_method` shows it on the CLI. Rendering is vectorised: pixel histograms
are `np.bincount` on the flat index `y*W + x`, and "last event wins" is `np.maximum.at` on
event indices, which is exact whatever order numpy applies repeated indices in (plain fancy
assignment with repeated indices is documented as unordered).

Notation (events.md §2): s_i = +1 for ON, -1 for OFF; robust maxima are the q-th percentile
(inverted CDF, i.e. an actual data value) of the non-zero values, so one hot pixel does not
darken the whole frame.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from evtui.events.types import EVENT_DTYPE

Renderer = Callable[..., np.ndarray]
"""`renderer(events, width, height, **params) -> (H, W, 3) uint8 RGB image`."""

# Metavision palettes (openeb colors_impl.h floats x255 + 0.5, truncated), RGB order.
CD_PALETTES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]] = {
    # name: (background, ON, OFF)
    "dark": ((30, 37, 52), (255, 255, 255), (64, 126, 200)),
    "light": ((255, 255, 255), (64, 126, 200), (30, 37, 52)),
    "coolwarm": ((217, 224, 237), (255, 113, 117), (87, 123, 198)),
    "gray": ((128, 128, 128), (255, 255, 255), (0, 0, 0)),
}

# Polarity-channel palettes for count-like renderers: name -> (ON channel, OFF channel).
CHANNEL_PALETTES: dict[str, tuple[int, int]] = {
    "redblue": (0, 2),  # ON red, OFF blue, both magenta (events.md §2.2)
    "greenred": (1, 0),  # ON green, OFF red, both yellow
}

_MAX_SIDE = 1 << 16  # x and y are uint16


# --------------------------------------------------------------------------- helpers


def _check_size(width: int, height: int) -> tuple[int, int]:
    w, h = int(width), int(height)
    if not (0 < w <= _MAX_SIDE and 0 < h <= _MAX_SIDE):
        raise ValueError(f"sensor size must be 1..{_MAX_SIDE} per side, got {width}x{height}")
    return w, h


def _fields(events: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, y, p views, after checking that every event lands on the sensor."""
    names = getattr(getattr(events, "dtype", None), "names", None) or ()
    if not {"t", "x", "y", "p"} <= set(names) or events.ndim != 1:
        raise ValueError("events must be a 1-D structured array with fields t, x, y, p")
    x, y, p = events["x"], events["y"], events["p"]
    if events.size:
        # One strided pass each; without them an x beyond the width silently lands on the
        # next row and a polarity of -1 would index another pixel.
        if int(x.max()) >= w or int(y.max()) >= h:
            raise ValueError(
                f"event at x={int(x.max())}, y={int(y.max())} is outside the {w}x{h} sensor"
            )
        if (x.dtype.kind == "i" and int(x.min()) < 0) or (y.dtype.kind == "i" and int(y.min()) < 0):
            raise ValueError(f"event with a negative coordinate is outside the {w}x{h} sensor")
        # Viewed as unsigned, a negative polarity is large: one pass catches both ends.
        if p.dtype.itemsize == 1:
            bad = int(p.view(np.uint8).max()) > 1
        else:
            bad = int(p.min()) < 0 or int(p.max()) > 1
        if bad:
            raise ValueError("event polarity must be 0 (OFF) or 1 (ON)")
    return x, y, p


def _pixel_index(x: np.ndarray, y: np.ndarray, w: int) -> np.ndarray:
    pix = np.multiply(y, w, dtype=np.intp)
    pix += x
    return pix


def _out_image(out: np.ndarray | None, w: int, h: int) -> np.ndarray:
    if out is None:
        return np.empty((h, w, 3), dtype=np.uint8)
    if (
        not isinstance(out, np.ndarray)
        or out.shape != (h, w, 3)
        or out.dtype != np.uint8
        or not out.flags.c_contiguous
    ):
        got = f"{getattr(out, 'shape', None)} {getattr(out, 'dtype', type(out).__name__)}"
        raise ValueError(f"out must be a C-contiguous ({h}, {w}, 3) uint8 array, got {got}")
    return out


def _check_percentile(name: str, q: float) -> float:
    q = float(q)
    if not 0.0 < q <= 100.0:
        raise ValueError(f"{name} must be in (0, 100], got {q}")
    return q


def _check_positive(name: str, v: float) -> float:
    v = float(v)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {v}")
    return v


def _choice(name: str, value: str, options: dict[str, Any]) -> str:
    if value not in options:
        raise ValueError(f"unknown {name} {value!r}; choose from {', '.join(options)}")
    return value


def _rank(n: int, q: float) -> int:
    """0-based index of the q-th percentile of n sorted values (inverted CDF, H&F type 1)."""
    return min(n - 1, max(0, math.ceil(q * n / 100.0) - 1))


def _robust_max(values: np.ndarray, q: float) -> float:
    """q-th percentile of |values| over the non-zero values; 0 when all are zero."""
    nz = np.abs(values[values != 0])
    if nz.size == 0:
        return 0.0
    j = _rank(nz.size, q)
    return float(np.partition(nz, j)[j])


def _count_percentile(count_at_event: np.ndarray, q: float) -> int:
    """q-th percentile of the non-zero bin counts in O(events), not O(bins).

    `count_at_event[i]` is the count of event i's bin. A bin holding k events is seen k times
    among the events, so the number of bins with count k is (events whose bin has count k) / k.
    """
    per_count = np.bincount(count_at_event)
    return _percentile_of_histogram(per_count[1:] // np.arange(1, per_count.size), q)


def _percentile_of_histogram(items_with: np.ndarray, q: float) -> int:
    """q-th percentile (inverted CDF) when value v occurs items_with[v-1] times; 0 if empty."""
    cum = np.cumsum(items_with)
    if cum.size == 0 or cum[-1] == 0:
        return 0
    return int(np.searchsorted(cum, _rank(int(cum[-1]), q), side="right")) + 1


def _merge_planes(planes: list[np.ndarray], out: np.ndarray) -> np.ndarray:
    res = cv2.merge(planes, dst=out)
    if res is not out:  # pragma: no cover - cv2 honours a matching dst
        out[...] = res
    return out


def _grey_to_rgb(grey: np.ndarray, out: np.ndarray) -> np.ndarray:
    res = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB, dst=out)
    if res is not out:  # pragma: no cover
        out[...] = res
    return out


def _signed_lut(a_max: float, span: int) -> np.ndarray:
    """Grey levels for integer values -span..span: clip(round(128 + 127 v / a_max), 1, 255)."""
    v = np.arange(-span, span + 1, dtype=np.float64)
    g = np.floor(128.0 + 127.0 * v / a_max + 0.5)
    return np.clip(g, 1, 255).astype(np.uint8)


def _signed_grey(values: np.ndarray, a_max: float) -> np.ndarray:
    """Float values -> uint8 clip(round(128 + 127 v / a_max), 1, 255); 128 when a_max is 0."""
    if a_max <= 0:
        return np.full(values.shape, 128, dtype=np.uint8)
    g = values.astype(np.float32)
    g *= np.float32(127.0 / a_max)
    g += np.float32(128.5)
    np.clip(g, 1.0, 255.0, out=g)
    return np.floor(g, out=g).astype(np.uint8)


# --------------------------------------------------------------------------- raw representations


def polarity_counts(events: np.ndarray, width: int, height: int) -> np.ndarray:
    """H_p(x, y) = #{i: x_i = x, y_i = y, p_i = p}, shape (2, H, W) uint32, index p (0 OFF, 1 ON).

    Same layout as one time bin of tonic's ToFrame, so the two can be compared directly.
    """
    w, h = _check_size(width, height)
    return _planar_counts(events, w, h)[0].reshape(2, h, w).astype(np.uint32)


def _planar_counts(events: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(counts int64 of length 2*W*H, bin of each event): OFF plane first, then ON."""
    x, y, p = _fields(events, w, h)
    key = np.multiply(p, w * h, dtype=np.intp)
    key += _pixel_index(x, y, w)
    return np.bincount(key, minlength=2 * w * h), key


def voxel_grid(
    events: np.ndarray,
    width: int,
    height: int,
    bins: int = 5,
    *,
    select: tuple[int, ...] | None = None,
) -> np.ndarray:
    """V(b,x,y) = Σ_i s_i max(0, 1 - |b - t*_i|), t*_i = (B-1)(t_i - t_first)/(t_last - t_first).

    Zhu et al. 2019 / E2VID normalisation by B-1 (tonic uses B; events.md §2.6). Returns the
    bins listed in `select` (default all) as (len(select), H, W) float32. When every event has
    the same time, t* = 0 for all of them.
    """
    w, h = _check_size(width, height)
    bins = _check_bins(bins)
    chosen = tuple(range(bins)) if select is None else tuple(int(b) for b in select)
    if any(not 0 <= b < bins for b in chosen):
        raise ValueError(f"select must name bins in 0..{bins - 1}, got {chosen}")
    x, y, p = _fields(events, w, h)
    grid = np.zeros((len(chosen), h, w), dtype=np.float32)
    if events.size == 0:
        return grid
    t = events["t"]
    t_first = int(t.min())
    span = int(t.max()) - t_first
    tstar = np.subtract(t, t_first, dtype=np.float64)
    if span > 0:
        tstar *= bins - 1
        tstar /= span
    else:
        tstar[:] = 0.0
    sign = p.astype(np.float64)
    sign *= 2.0
    sign -= 1.0
    pix = _pixel_index(x, y, w)
    for c, b in enumerate(chosen):
        wgt = np.abs(tstar - b)
        np.subtract(1.0, wgt, out=wgt)
        np.maximum(wgt, 0.0, out=wgt)
        wgt *= sign
        grid[c] = np.bincount(pix, weights=wgt, minlength=w * h).reshape(h, w)
    return grid


def _check_bins(bins: int) -> int:
    if isinstance(bins, bool) or int(bins) != bins or not 2 <= int(bins) <= 256:
        raise ValueError(f"bins must be an integer in 2..256, got {bins}")
    return int(bins)


@dataclass
class ReconstructionState:
    """Per-pixel log intensity `log_intensity` (H, W) float64, valid at time `t_prev` (µs).

    Carried from one window to the next so the leaky integrator remembers earlier windows.
    """

    log_intensity: np.ndarray
    t_prev: np.ndarray

    @classmethod
    def zeros(cls, width: int, height: int, t: int = 0) -> ReconstructionState:
        w, h = _check_size(width, height)
        return cls(np.zeros((h, w), dtype=np.float64), np.full((h, w), int(t), dtype=np.int64))

    def check(self, w: int, h: int) -> None:
        if self.log_intensity.shape != (h, w) or self.t_prev.shape != (h, w):
            raise ValueError(
                f"reconstruction state is {self.log_intensity.shape}, expected ({h}, {w})"
            )


def reconstruct(
    events: np.ndarray,
    width: int,
    height: int,
    *,
    state: ReconstructionState | None = None,
    t_end: int | None = None,
    cutoff_hz: float = 0.06,
    c_on: float = 0.1,
    c_off: float = -0.1,
) -> ReconstructionState:
    """L(t_b) = L0 e^{-α(t_b - t_prev)} + Σ_i c_{p_i} e^{-α(t_b - t_i)}, α = 2π cutoff_hz.

    Closed form of Scheerlinck et al.'s per-event high-pass filter (ACCV 2018, β = 0), so a
    window costs two bincount-sized passes instead of a per-event loop. Pure: returns a new
    state valid at t_b (window end, default the last event's time); L0 = 0 without a state.
    """
    w, h = _check_size(width, height)
    cutoff_hz = float(cutoff_hz)
    if not (math.isfinite(cutoff_hz) and cutoff_hz >= 0):
        raise ValueError(f"cutoff_hz must be a finite number >= 0, got {cutoff_hz}")
    c_on = _check_positive("c_on", c_on)
    if not (math.isfinite(float(c_off)) and float(c_off) < 0):
        raise ValueError(f"c_off must be a finite number < 0, got {c_off}")
    c_off = float(c_off)
    if state is not None:
        state.check(w, h)
    x, y, p = _fields(events, w, h)
    t = events["t"]
    t_last = int(t.max()) if events.size else None
    if t_end is None:
        if t_last is not None:
            t_b = t_last
        elif state is not None:
            t_b = int(state.t_prev.max())
        else:
            t_b = 0
    else:
        t_b = int(t_end)
        if t_last is not None and t_b < t_last:
            raise ValueError(f"t_end={t_b} is before the last event (t={t_last})")
    if state is not None and t_b < int(state.t_prev.max()):
        raise ValueError(f"window end t={t_b} is before the state's t_prev={state.t_prev.max()}")
    neg_alpha_us = -2.0 * math.pi * cutoff_hz * 1e-6
    if events.size:
        wgt = np.subtract(t_b, t, dtype=np.float64)
        wgt *= neg_alpha_us
        np.exp(wgt, out=wgt)
        wgt *= np.where(p.astype(bool), c_on, c_off)
        log_i = np.bincount(_pixel_index(x, y, w), weights=wgt, minlength=w * h).reshape(h, w)
    else:
        log_i = np.zeros((h, w), dtype=np.float64)
    if state is not None:
        decay = np.subtract(t_b, state.t_prev, dtype=np.float64)
        decay *= neg_alpha_us
        np.exp(decay, out=decay)
        decay *= state.log_intensity
        log_i += decay
    return ReconstructionState(log_i, np.full((h, w), t_b, dtype=np.int64))


# --------------------------------------------------------------------------- renderers


def histogram(
    events: np.ndarray,
    width: int,
    height: int,
    *,
    percentile: float = 99.0,
    gamma: float = 0.5,
    max_count: float | None = None,
    palette: str = "redblue",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """ch_p = round(255·min(1, H_p/m)^γ), m = percentile of the non-zero H_p (or max_count).

    ON and OFF counts go to the channels of `palette` (redblue: ON red, OFF blue; greenred:
    ON green, OFF red); one m for both so their brightness compares. Black where no event.
    """
    w, h = _check_size(width, height)
    percentile = _check_percentile("percentile", percentile)
    gamma = _check_positive("gamma", gamma)
    if max_count is not None:
        max_count = _check_positive("max_count", max_count)
    on_ch, off_ch = CHANNEL_PALETTES[_choice("palette", palette, CHANNEL_PALETTES)]
    img = _out_image(out, w, h)
    counts, key = _planar_counts(events, w, h)
    if events.size == 0:
        img.fill(0)
        return img
    count_at_event = counts[key]
    m = max_count if max_count is not None else float(_count_percentile(count_at_event, percentile))
    levels = np.arange(math.ceil(m) + 1, dtype=np.float64)
    np.minimum(levels / m, 1.0, out=levels)
    lut = np.floor(255.0 * levels**gamma + 0.5).astype(np.uint8)
    # mode="clip": counts above m saturate on the last entry (255).
    if 3 * events.size < w * h:
        # Sparse window: write only the events' bins (each write of a bin carries the same
        # value, so repeated bins are harmless) instead of reading all 2·W·H counts.
        grey = np.zeros(2 * w * h, dtype=np.uint8)
        grey[key] = np.take(lut, count_at_event, mode="clip")
    else:
        grey = np.take(lut, counts, mode="clip")
    planes = [np.zeros((h, w), dtype=np.uint8)] * 3
    planes[off_ch] = grey[: w * h].reshape(h, w)
    planes[on_ch] = grey[w * h :].reshape(h, w)
    return _merge_planes(planes, img)


def cdframe(
    events: np.ndarray,
    width: int,
    height: int,
    *,
    palette: str = "dark",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """pixel = ON/OFF colour of the last event at (x, y), background elsewhere (counts ignored).

    Metavision's CD frame look (events.md §2.3); palettes dark (default), light, coolwarm,
    gray with Metavision's exact colours.
    """
    w, h = _check_size(width, height)
    bg, on, off = CD_PALETTES[_choice("palette", palette, CD_PALETTES)]
    img = _out_image(out, w, h)
    x, y, p = _fields(events, w, h)
    if events.size == 0:
        img.reshape(h, -1)[:] = np.tile(np.array(bg, dtype=np.uint8), w)
        return img
    pix = _pixel_index(x, y, w)
    # Label 0 background, 1 OFF, 2 ON. Every event of a pixel writes that pixel's one final
    # label, so the order numpy applies repeated indices in does not matter.
    label = np.zeros(w * h, dtype=np.uint8)
    label[pix] = _last_polarity(pix, p, w * h) + 1
    label = label.reshape(h, w)
    lut = np.zeros((256, 1, 3), dtype=np.uint8)
    lut[:3, 0] = (bg, off, on)
    res = cv2.LUT(cv2.merge([label, label, label]), lut, dst=img)
    if res is not img:  # pragma: no cover - cv2 honours a matching dst
        img[...] = res
    return img


def _last_key(pix: np.ndarray, size: int, key: np.ndarray) -> np.ndarray:
    """For each event, the largest `key` among the events at its pixel (keys must be >= 0)."""
    best = np.full(size, -1, dtype=np.int64)
    np.maximum.at(best, pix, key)
    return best[pix]


def _last_polarity(pix: np.ndarray, p: np.ndarray, size: int) -> np.ndarray:
    """Polarity of the last event (array order) at each event's pixel."""
    key = np.arange(0, 2 * pix.size, 2, dtype=np.int64)
    key += p
    return (_last_key(pix, size, key) & 1).astype(np.intp)


def signed(
    events: np.ndarray,
    width: int,
    height: int,
    *,
    percentile: float = 99.0,
    a_max: float | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """grey = clip(round(128 + 127·A/a_max), 1, 255), A = Σ s_i per pixel, a_max robust |A|."""
    w, h = _check_size(width, height)
    percentile = _check_percentile("percentile", percentile)
    if a_max is not None:
        a_max = _check_positive("a_max", a_max)
    img = _out_image(out, w, h)
    counts, key = _planar_counts(events, w, h)
    if events.size == 0:
        img.fill(128)
        return img
    pix = key % (w * h)
    acc_at_event = counts[pix + w * h] - counts[pix]
    if a_max is not None:
        scale = a_max
    else:
        # A pixel with n events is seen n times: weight each event 1/n to count pixels.
        n_at_event = counts[pix] + counts[pix + w * h]
        per_value = np.bincount(np.abs(acc_at_event), weights=1.0 / n_at_event)
        scale = float(_percentile_of_histogram(np.rint(per_value[1:]).astype(np.int64), percentile))
    if scale <= 0:
        img.fill(128)
        return img
    span = math.ceil(scale)
    lut = _signed_lut(scale, span)
    if 3 * events.size < w * h:  # sparse: write the events' pixels only (see histogram)
        grey = np.full(w * h, 128, dtype=np.uint8)
        grey[pix] = np.take(lut, acc_at_event + span, mode="clip")
    else:
        grey = np.take(lut, counts[w * h :] - counts[: w * h] + span, mode="clip")
    return _grey_to_rgb(grey.reshape(h, w), img)


def binary(
    events: np.ndarray,
    width: int,
    height: int,
    *,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """grey = 255 if any event at (x, y) else 0."""
    w, h = _check_size(width, height)
    img = _out_image(out, w, h)
    x, y, _ = _fields(events, w, h)
    mask = np.zeros(w * h, dtype=np.uint8)
    mask[_pixel_index(x, y, w)] = 255
    return _grey_to_rgb(mask.reshape(h, w), img)


def timesurface(
    events: np.ndarray,
    width: int,
    height: int,
    *,
    tau_us: float = 20_000.0,
    t_end: int | None = None,
    mode: str = "signed",
    out: np.ndarray | None = None,
) -> np.ndarray:
    """v = ±exp(-(t_ref - t_last)/τ) by latest polarity; grey = round(255(1+v)/2), 128 if none.

    t_ref = `t_end` (window end; default the last event's time). mode "signed" is Metavision's
    grey time-decay frame; mode "polarity" is HOTS' per-polarity S_p = exp(-(t_ref-t_last,p)/τ)
    as round(255 S_p) in red (ON) and blue (OFF), black where a polarity never fired. "Latest"
    is the last in array order (windows are time-ordered).
    """
    w, h = _check_size(width, height)
    tau_us = _check_positive("tau_us", tau_us)
    modes = {"signed": None, "polarity": None}
    mode = _choice("mode", mode, modes)
    img = _out_image(out, w, h)
    x, y, p = _fields(events, w, h)
    if events.size == 0:
        img.fill(128 if mode == "signed" else 0)
        return img
    t = events["t"]
    t_last = int(t.max())
    t_ref = t_last if t_end is None else int(t_end)
    if t_ref < t_last:
        raise ValueError(f"t_end={t_ref} is before the last event (t={t_last})")
    pix = _pixel_index(x, y, w)
    if mode == "signed":
        key = np.arange(0, 2 * pix.size, 2, dtype=np.int64)
        key += p
        last = _last_key(pix, w * h, key)
        v = _decay(t_ref, t[last >> 1], tau_us)
        v *= (last & 1) * 2 - 1
        v += 1.0
        v *= 127.5
        v += 0.5
        grey = np.full(w * h, 128, dtype=np.uint8)
        grey[pix] = np.floor(v).astype(np.uint8)
        return _grey_to_rgb(grey.reshape(h, w), img)
    key = np.multiply(p, w * h, dtype=np.intp)
    key += pix
    last = _last_key(key, 2 * w * h, np.arange(pix.size, dtype=np.int64))
    v = _decay(t_ref, t[last], tau_us)
    v *= 255.0
    v += 0.5
    planes = np.zeros(2 * w * h, dtype=np.uint8)
    planes[key] = np.floor(v).astype(np.uint8)
    zero = np.zeros((h, w), dtype=np.uint8)
    return _merge_planes([planes[w * h :].reshape(h, w), zero, planes[: w * h].reshape(h, w)], img)


def _decay(t_ref: int, t_last: np.ndarray, tau_us: float) -> np.ndarray:
    d = np.subtract(t_ref, t_last, dtype=np.float64)
    d *= -1.0 / tau_us
    return np.exp(d, out=d)


def voxel(
    events: np.ndarray,
    width: int,
    height: int,
    *,
    bins: int = 5,
    percentile: float = 99.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """RGB = clip(round(128 + 127·V_b/v_b)), b = first, middle (B//2), last of B voxel bins.

    V is `voxel_grid` (Zhu et al. 2019, (B-1) normalisation, linear splat in time); each
    channel has its own robust v_b (percentile of the non-zero |V_b|), grey 128 where empty.
    """
    w, h = _check_size(width, height)
    bins = _check_bins(bins)
    percentile = _check_percentile("percentile", percentile)
    img = _out_image(out, w, h)
    grid = voxel_grid(events, w, h, bins, select=(0, bins // 2, bins - 1))
    planes = [_signed_grey(g, _robust_max(g, percentile)) for g in grid]
    return _merge_planes(planes, img)


def reconstruction(
    events: np.ndarray,
    width: int,
    height: int,
    *,
    state: ReconstructionState | None = None,
    t_end: int | None = None,
    cutoff_hz: float = 0.06,
    c_on: float = 0.1,
    c_off: float = -0.1,
    low_percentile: float = 1.0,
    high_percentile: float = 99.0,
    blur_sigma: float = 0.0,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """grey = 255·(e^L - e^lo)/(e^hi - e^lo), L = `reconstruct(...)`, lo/hi robust (incl. 0).

    lo = min(0, low_percentile of non-zero L), hi = max(0, high_percentile), so untouched
    pixels (L = 0) keep one mid level; uniform 128 when L is 0 everywhere. Defaults follow
    Scheerlinck's pure_event_reconstruction (c = ±0.1, cut-off 0.06 Hz). With `state`, the
    state is updated in place to the window end, so consecutive windows integrate like one.
    `blur_sigma` > 0 applies a Gaussian blur (pixels) to the display to hide speckle.
    """
    w, h = _check_size(width, height)
    lo_q = _check_percentile("low_percentile", low_percentile)
    hi_q = _check_percentile("high_percentile", high_percentile)
    if lo_q > hi_q:
        raise ValueError(f"low_percentile ({lo_q}) must not exceed high_percentile ({hi_q})")
    blur_sigma = float(blur_sigma)
    if not (math.isfinite(blur_sigma) and 0.0 <= blur_sigma <= 50.0):
        raise ValueError(f"blur_sigma must be in [0, 50] pixels, got {blur_sigma}")
    img = _out_image(out, w, h)
    new = reconstruct(
        events, w, h, state=state, t_end=t_end, cutoff_hz=cutoff_hz, c_on=c_on, c_off=c_off
    )
    if state is not None:
        state.log_intensity[...] = new.log_intensity
        state.t_prev[...] = new.t_prev
    log_i = new.log_intensity
    nz = log_i[log_i != 0]
    if nz.size == 0:
        img.fill(128)
        return img
    srt = np.partition(nz, (_rank(nz.size, lo_q), _rank(nz.size, hi_q)))
    lo = math.exp(min(0.0, float(srt[_rank(nz.size, lo_q)])))
    hi = math.exp(max(0.0, float(srt[_rank(nz.size, hi_q)])))
    if hi <= lo:  # L so small that e^L rounds to 1 everywhere: nothing to show
        img.fill(128)
        return img
    disp = np.exp(log_i.astype(np.float32))
    disp -= np.float32(lo)
    disp *= np.float32(255.0 / (hi - lo))
    np.clip(disp, 0.0, 255.0, out=disp)
    if blur_sigma > 0:
        disp = cv2.GaussianBlur(disp, (0, 0), blur_sigma)
    disp += 0.5
    grey = np.floor(disp, out=disp).astype(np.uint8)
    return _grey_to_rgb(grey, img)


# --------------------------------------------------------------------------- registry


RENDERERS: dict[str, Renderer] = {
    "histogram": histogram,
    "cdframe": cdframe,
    "signed": signed,
    "binary": binary,
    "timesurface": timesurface,
    "voxel": voxel,
    "reconstruction": reconstruction,
}

_PARAMS: dict[str, frozenset[str]] = {
    name: frozenset(
        pname
        for pname, par in inspect.signature(fn).parameters.items()
        if par.kind is inspect.Parameter.KEYWORD_ONLY
    )
    for name, fn in RENDERERS.items()
}


def list_methods() -> list[str]:
    """Renderer names accepted by `render(method=...)` and the CLI."""
    return list(RENDERERS)


def describe_method(method: str) -> str:
    """The one-line formula of a renderer (its docstring's first line)."""
    fn = RENDERERS[_choice("render method", method, RENDERERS)]
    return (fn.__doc__ or "").strip().splitlines()[0]


def _check_params(method: str, params: dict[str, Any]) -> Renderer:
    fn = RENDERERS[_choice("render method", method, RENDERERS)]
    unknown = sorted(set(params) - _PARAMS[method])
    if unknown:
        accepted = ", ".join(sorted(_PARAMS[method]))
        raise ValueError(f"unknown parameter(s) {unknown} for {method!r}; accepted: {accepted}")
    return fn


def render(
    events: np.ndarray,
    width: int,
    height: int,
    method: str = "histogram",
    **params: Any,
) -> np.ndarray:
    """Render one window with the named method; unknown methods or params are ValueErrors."""
    return _check_params(method, params)(events, width, height, **params)


def renderer(method: str, width: int, height: int, **params: Any) -> Callable[[Any], np.ndarray]:
    """Bind a method, sensor size and params once, for a stream of windows.

    Bad names or values raise ValueError here, before any window is read (an empty window is
    rendered once to check them). The returned `draw(window)` takes a Window (anything with
    `events` and an exclusive end `t1_us`) or a bare event array. For a Window, timesurface and
    reconstruction take t_ref = t1_us (tonic's convention) unless `t_end` is given, and
    reconstruction carries its state from window to window: windows in time order integrate
    like one long window, events already integrated (overlapping windows) are skipped, events
    between non-adjacent windows are never seen, and a window ending before the state restarts
    it from zero. Bare arrays render statelessly. Each call returns a new image.
    """
    fn = _check_params(method, params)
    managed = sorted({"state", "out"} & set(params))
    if managed:
        raise ValueError(f"{managed} cannot be bound: renderer() manages them per window")
    w, h = _check_size(width, height)
    fn(np.zeros(0, dtype=EVENT_DTYPE), w, h, **params)
    uses_end = method in ("timesurface", "reconstruction") and "t_end" not in params
    carry = method == "reconstruction"
    state: ReconstructionState | None = None

    def draw(window: Any) -> np.ndarray:
        nonlocal state
        events = getattr(window, "events", window)
        t1 = getattr(window, "t1_us", None)
        if t1 is None:
            return fn(events, w, h, **params)
        kw = dict(params)
        if uses_end:
            kw["t_end"] = int(t1)
        if not carry:
            return fn(events, w, h, **kw)
        t_b = int(kw.get("t_end", t1))
        if state is None or t_b < int(state.t_prev.max()):
            state = ReconstructionState.zeros(w, h, t=t_b)
        else:
            events = events[events["t"] >= int(state.t_prev.max())]
        return fn(events, w, h, state=state, **kw)

    return draw


def render_stats(
    events: np.ndarray,
    width: int,
    height: int,
    *,
    t_start: int | None = None,
    t_end: int | None = None,
) -> dict[str, int | float]:
    """Counts, active-pixel fraction and rate, cheap enough to decide whether to render at all.

    The rate is events per second over [t_start, t_end) when both are given, else over the
    span of the event times; 0.0 when that span is empty.
    """
    w, h = _check_size(width, height)
    x, y, p = _fields(events, w, h)
    n = int(events.size)
    n_on = int(np.count_nonzero(p))
    mask = np.zeros(w * h, dtype=bool)
    mask[_pixel_index(x, y, w)] = True
    active = int(np.count_nonzero(mask))
    if t_start is not None and t_end is not None:
        duration = int(t_end) - int(t_start)
    elif n:
        duration = int(events["t"].max()) - int(events["t"].min())
    else:
        duration = 0
    return {
        "events": n,
        "on": n_on,
        "off": n - n_on,
        "active_pixels": active,
        "active_fraction": active / (w * h),
        "duration_us": duration,
        "rate_ev_s": n / (duration * 1e-6) if duration > 0 else 0.0,
    }
