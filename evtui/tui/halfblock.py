"""RGB frames as terminal cells: one `▀` per cell, upper pixel in front, lower behind.

Works in any truecolor terminal and in tmux. Everything per pixel is numpy/OpenCV; Python only
touches one Segment per run of equal cells. Colours are quantised (5 bits a channel)
so an event frame has a few dozen (upper, lower) pairs and their Styles come from a
module cache: Textual's own per-segment filters stay within their caches too.
"""

from __future__ import annotations

import cv2
import numpy as np
from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

HALF = "▀"
QUANT_MASK = np.uint8(0xF8)  # keep 5 bits a channel: at most 32 levels of grey
_STYLE_CACHE: dict[int, Style] = {}
_STYLE_CACHE_MAX = 8192


def fit(src_w: int, src_h: int, max_cols: int, max_rows: int) -> tuple[int, int]:
    """The largest cells (cols, rows) showing a src_w x src_h image at its aspect ratio.

    A cell holds two square-ish pixels stacked, so rows cover 2 * rows pixel rows.
    """
    if src_w <= 0 or src_h <= 0 or max_cols <= 0 or max_rows <= 0:
        return (0, 0)
    scale = min(max_cols / src_w, 2 * max_rows / src_h)
    cols = max(1, min(max_cols, round(src_w * scale)))
    rows = max(1, min(max_rows, round(src_h * scale / 2)))
    return (cols, rows)


def resample(img: np.ndarray, cols: int, rows: int) -> np.ndarray:
    """Resize to (2*rows, cols, 3), quantised.

    Shrinking averages areas: event frames are thin edges and single pixels that
    nearest-neighbour sampling would drop (or turn into noise). Growing repeats pixels.
    """
    if img.ndim == 2:  # greyscale
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = np.ascontiguousarray(img[:, :, :3], dtype=np.uint8)
    h, w = img.shape[:2]
    size = (cols, 2 * rows)
    if (w, h) != size:
        shrink = cols < w and 2 * rows < h
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_NEAREST)
    return img & QUANT_MASK


def _style(key: int) -> Style:
    style = _STYLE_CACHE.get(key)
    if style is None:
        if len(_STYLE_CACHE) >= _STYLE_CACHE_MAX:
            _STYLE_CACHE.clear()
        up, lo = key >> 24, key & 0xFFFFFF
        style = Style(
            color=Color.from_rgb(up >> 16, (up >> 8) & 0xFF, up & 0xFF),
            bgcolor=Color.from_rgb(lo >> 16, (lo >> 8) & 0xFF, lo & 0xFF),
        )
        _STYLE_CACHE[key] = style
    return style


def frame_strips(img: np.ndarray, cols: int, rows: int) -> list[Strip]:
    """`rows` Strips of `cols` cells showing `img` (HxWx3 uint8 RGB, or HxW grey)."""
    if cols <= 0 or rows <= 0 or img.size == 0:
        return []
    px = resample(img, cols, rows).astype(np.int64)
    rgb = (px[:, :, 0] << 16) | (px[:, :, 1] << 8) | px[:, :, 2]
    keys = (rgb[0::2] << 24) | rgb[1::2]  # (rows, cols): upper pixel, lower pixel
    uniq, inverse = np.unique(keys, return_inverse=True)
    inverse = inverse.reshape(rows, cols)
    styles = [_style(int(k)) for k in uniq.tolist()]
    # Runs of equal cells: a run starts at column 0 or where the pair changes.
    starts = np.ones((rows, cols), bool)
    starts[:, 1:] = inverse[:, 1:] != inverse[:, :-1]
    r_idx, c_idx = np.nonzero(starts)
    ends = np.empty_like(c_idx)
    ends[:-1] = c_idx[1:]
    row_change = np.ones(r_idx.size, bool)
    row_change[:-1] = r_idx[1:] != r_idx[:-1]
    ends[row_change] = cols
    lengths = (ends - c_idx).tolist()
    style_ids = inverse[r_idx, c_idx].tolist()
    row_of = r_idx.tolist()
    lines: list[list[Segment]] = [[] for _ in range(rows)]
    texts = {n: HALF * n for n in set(lengths)}
    for r, n, s in zip(row_of, lengths, style_ids, strict=True):
        lines[r].append(Segment(texts[n], styles[s]))
    return [Strip(segs, cols) for segs in lines]


__all__ = ["HALF", "fit", "frame_strips", "resample"]
