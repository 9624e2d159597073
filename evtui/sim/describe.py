"""Reads a rendered event frame and says what is in it, so simulated captions follow the content.

The simulator answers caption requests from the frame itself: comparing providers side by side
only means something if captions change with the picture. This runs for every simulated request,
so it decodes at reduced scale (JPEG's DCT scaling; a box average after decoding PNG and WebP),
reads everything from one linear "unmixing" pass over a ~80x60 image, and caches by content hash.

How a frame is read (renders of evtui/events/render.py; its palettes are repeated here because
evtui/sim may not import evtui/events):
- background: the most common colour, snapped to a known palette background when close;
- each reduced pixel is unmixed into ON and OFF weights, `pixel ≈ bg + a·(ON - bg) + b·(OFF -
  bg)`. Reduced decoding averages s x s blocks, so `a` is the share of the block's pixels that
  are ON events, and sums estimate full-resolution activity whatever the decode scale;
- structure: active blocks whose 3x3 neighbourhood holds more events than sensor noise puts
  there (noise grows with the area, s², an edge only with its length, s). Sums over a
  neighbourhood survive JPEG's smearing of single events, which per-pixel tests do not;
- direction: an object moving through a window leaves a band of one polarity at its leading edge
  and of the other at its trailing edge. Which one leads depends on whether the object is darker
  or brighter than what it passes over, and one frame cannot tell; we assume a darker object
  (OFF leads, as for the sample's disc and most of its textured wall), so motion points from the
  ON centroid towards the OFF centroid. ON and OFF spread alike over a compact spot is flicker,
  not motion; opposite offsets at the two ends of a structure is rotation (its sense has the
  same ambiguity, so it is not reported); edges all over the frame are camera motion, and
  one-sided polarity all over it a change of lighting.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

import cv2
import numpy as np

STYLES = ("openai", "anthropic", "gemini", "compat")
DEGENERATE_KINDS = ("refusal", "boilerplate", "empty", "please_provide_image")

# --------------------------------------------------------------------------- description


@dataclass(frozen=True, slots=True)
class SceneDescription:
    """What a frame shows, in the terms a caption needs; `signature` identifies the bytes."""

    signature: str  # content hash of the image bytes: cache key and caption seed
    media_type: str  # from the bytes' magic, not from what the request declared
    width: int
    height: int
    # cd-dark | cd-light | cd-coolwarm | histogram | histogram-greenred | grey | binary | unknown
    palette: str
    background: tuple[int, int, int]  # RGB
    activity: float  # fraction of pixels that differ from the background (event-weighted)
    structure: float  # fraction of pixels in edges and blobs rather than isolated speckle
    density: str  # empty | sparse noise | moderate | dense
    where: str  # a 3x3 cell ("upper left" … "centre"), "left side" …, "across the frame", "nowhere"
    direction: str  # left | right | up | down | none: apparent motion of the content
    axis: str  # horizontal | vertical | none: motion axis, also when its sign is unclear
    motion: str  # none | translation | camera | rotation | flicker | brightness | unclear
    polarity: str  # brightening | darkening | balanced | unknown
    on_share: float  # ON / (ON + OFF); 0.5 when the render has no polarity
    shape: str  # compact blob | elongated streak | scattered speckle | extended edges | none
    grid: tuple[float, ...]  # share of the activity in each 3x3 cell, row-major

    @property
    def moving(self) -> bool:
        """Whether anything beyond sensor noise happens in the window."""
        return self.density in ("moderate", "dense")


# --------------------------------------------------------------------------- tuning

# RGB (background, ON, OFF) of evtui's colour renders (evtui/events/render.py). Grey renders
# (signed, timesurface, voxel, reconstruction, the gray CD palette) are read by brightness.
_PALETTES: dict[str, tuple[tuple[int, int, int], tuple[int, int, int], tuple[int, int, int]]] = {
    "cd-dark": ((30, 37, 52), (255, 255, 255), (64, 126, 200)),
    "cd-light": ((255, 255, 255), (64, 126, 200), (30, 37, 52)),
    "cd-coolwarm": ((217, 224, 237), (255, 113, 117), (87, 123, 198)),
    "histogram": ((0, 0, 0), (255, 0, 0), (0, 0, 255)),  # ON red, OFF blue
    "histogram-greenred": ((0, 0, 0), (0, 255, 0), (255, 0, 0)),  # ON green, OFF red
}
_SNAP_DISTANCE = 40  # L1 distance (RGB) within which a measured background is a known one
_FLOOR = {"image/jpeg": 6.0, "image/webp": 6.0, "image/png": 2.0}  # weight (of 255) = codec noise
_EMPTY_ACTIVITY = 1e-4  # fraction of event pixels below which a frame is blank
_NOISE_ACTIVITY = 0.005  # sensor noise rarely covers more (about 0.2% in 33 ms in the sample)
_NOISE_STRUCTURE = 2e-4  # structured fraction below which activity is only noise
_DENSE_ACTIVITY = 0.05
_STRUCTURE_EVENTS = 1.5  # events per block side in a 3x3-block neighbourhood that make structure
_DIRECTION_MIN_OFFSET = 0.25  # ON→OFF centroid offset, in units of the structure's spread
_FLICKER_SPREAD = 0.45  # ON and OFF maps this alike (total variation) flicker in place
_MAX_SIDE = 16384
_MAX_PIXELS = 64_000_000
_CELLS = ("upper left", "top", "upper right", "left", "centre", "right")
_CELLS += ("lower left", "bottom", "lower right")
_COLUMNS = ("left side", "centre", "right side")
_ROWS = ("upper part", "centre", "lower part")

# --------------------------------------------------------------------------- bytes


def signature_of(data: bytes) -> str:
    """Stable content hash. SHA-256 uses the CPU's SHA extensions: ~3x faster than BLAKE2b here."""
    return hashlib.sha256(data).hexdigest()[:32]


def sniff_image(data: bytes) -> tuple[str, int, int]:
    """(media type, width, height) from the header alone; ValueError when it is no image."""
    b = data  # bytes, bytearray or memoryview: only slices and indexing are used
    if b[:8] == b"\x89PNG\r\n\x1a\n":
        if len(b) < 24 or b[12:16] != b"IHDR":
            raise ValueError("truncated PNG header")
        return "image/png", int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    if b[:3] == b"\xff\xd8\xff":
        return ("image/jpeg", *_jpeg_size(b))
    if b[:4] == b"RIFF" and b[8:12] == b"WEBP":
        return ("image/webp", *_webp_size(b))
    if b[:6] in (b"GIF87a", b"GIF89a"):
        raise ValueError("GIF images are not supported by the simulator")
    if not b:
        raise ValueError("empty image data")
    raise ValueError(f"not a JPEG, PNG or WebP image (starts with {b[:8].hex()})")


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(b: bytes) -> tuple[int, int]:
    i, n = 2, len(b)
    while i + 4 <= n:
        if b[i] != 0xFF:
            raise ValueError("corrupt JPEG: bad marker")
        m = b[i + 1]
        if m == 0xFF:  # fill byte
            i += 1
            continue
        if m == 0x01 or 0xD0 <= m <= 0xD8:  # markers without a length
            i += 2
            continue
        if m in _SOF:
            if i + 9 > n:
                break
            return int.from_bytes(b[i + 7 : i + 9], "big"), int.from_bytes(b[i + 5 : i + 7], "big")
        if m in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            break
        i += 2 + int.from_bytes(b[i + 2 : i + 4], "big")
    raise ValueError("corrupt JPEG: no frame header")


def _webp_size(b: bytes) -> tuple[int, int]:
    chunk = b[12:16]
    if chunk == b"VP8 " and len(b) >= 30 and b[23:26] == b"\x9d\x01\x2a":
        return (
            int.from_bytes(b[26:28], "little") & 0x3FFF,
            int.from_bytes(b[28:30], "little") & 0x3FFF,
        )
    if chunk == b"VP8L" and len(b) >= 25 and b[20] == 0x2F:
        bits = int.from_bytes(b[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(b) >= 30:
        return int.from_bytes(b[24:27], "little") + 1, int.from_bytes(b[27:30], "little") + 1
    raise ValueError("corrupt WebP header")


def _block_side(width: int, height: int) -> int:
    """The smallest of 1, 2, 4, 8 that brings the short side to 64 pixels or less."""
    short = min(width, height)
    for s in (1, 2, 4):
        if short <= 64 * s:
            return s
    return 8


_JPEG_FLAGS = {
    1: cv2.IMREAD_COLOR,
    2: cv2.IMREAD_REDUCED_COLOR_2,
    4: cv2.IMREAD_REDUCED_COLOR_4,
    8: cv2.IMREAD_REDUCED_COLOR_8,
}


def _decode(data: bytes, media_type: str, width: int, height: int) -> tuple[np.ndarray, int]:
    """BGR image reduced by the block side s (a box average), and s."""
    if not (0 < width <= _MAX_SIDE and 0 < height <= _MAX_SIDE) or width * height > _MAX_PIXELS:
        raise ValueError(f"image size {width}x{height} is outside what the simulator decodes")
    s = _block_side(width, height)
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        if media_type == "image/jpeg":
            img = cv2.imdecode(buf, _JPEG_FLAGS[s] | cv2.IMREAD_IGNORE_ORIENTATION)
        else:
            # OpenCV's reduced modes subsample PNG and WebP, dropping isolated events: decode
            # fully, then box-average.
            img = cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
            if img is not None and s > 1:
                size = (max(img.shape[1] // s, 1), max(img.shape[0] // s, 1))
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
    except cv2.error as exc:
        reason = str(exc).strip().splitlines()[-1][:120]
        raise ValueError(f"undecodable {media_type} image: {reason}") from None
    if img is None or img.size == 0:
        raise ValueError(f"undecodable {media_type} image ({len(data)} bytes)")
    return img, s


# --------------------------------------------------------------------------- unmixing


@dataclass(frozen=True, slots=True)
class _Unmix:
    palette: str
    background: tuple[int, int, int]  # RGB
    # 3x4 float32 for cv2.transform: (B, G, R, 1) -> (ON, OFF, 0) weights x255. Three outputs
    # because OpenCV's vectorised path needs them (two outputs run ~7x slower).
    matrix: np.ndarray
    polar: bool  # False when the render carries no polarity (binary)


def _matrix(rows: np.ndarray) -> np.ndarray:
    m = np.zeros((3, 4), dtype=np.float32)
    m[:2] = rows
    m.flags.writeable = False
    return m


@lru_cache(maxsize=64)
def _colour_unmix(name: str, floor: float) -> _Unmix:
    bg, on, off = (np.array(c, dtype=np.float64)[::-1] for c in _PALETTES[name])  # BGR
    p = np.linalg.pinv(np.stack([on - bg, off - bg], axis=1)) * 255.0  # 2x3
    offset = -p @ bg - floor
    return _Unmix(name, _PALETTES[name][0], _matrix(np.hstack([p, offset[:, None]])), True)


@lru_cache(maxsize=512)
def _grey_unmix(name: str, level: int, floor: float, polar: bool) -> _Unmix:
    """ON brighter, OFF darker than a grey background at `level` (binary: any brighter)."""
    k_on = 255.0 / max(255.0 - level, 1.0) / 3.0
    k_off = 255.0 / max(float(level), 1.0) / 3.0
    rows = np.array(
        [
            [k_on, k_on, k_on, -3 * k_on * level - floor],
            [-k_off, -k_off, -k_off, 3 * k_off * level - floor],
        ]
    )
    return _Unmix(name, (level, level, level), _matrix(rows), polar)


@lru_cache(maxsize=512)
def _generic_unmix(bg_rgb: tuple[int, int, int], floor: float) -> _Unmix:
    """Unknown palette: ON is whiter or redder than the background, OFF bluer or darker."""
    w = np.array([1 / 3 - 0.5, 1 / 3, 1 / 3 + 0.5])  # BGR: brightness + (red - blue) / 2
    base = float(w @ np.array(bg_rgb[::-1], dtype=np.float64))
    rows = np.array([[*w, -base - floor], [*(-w), base - floor]])
    return _Unmix("unknown", bg_rgb, _matrix(rows), True)


def _unmixer(img: np.ndarray, floor: float) -> _Unmix:
    """The palette whose background is the frame's most common colour.

    The mode is taken over 17 levels per channel centred on multiples of 16, on every other
    row; the background is the mean colour of that bin.
    """
    sub = img[::2]  # a row stride OpenCV takes without a copy
    hist = cv2.calcHist([sub], [0, 1, 2], None, [17, 17, 17], [-8, 264, -8, 264, -8, 264])
    k = int(hist.argmax())
    if hist.flat[k] < 0.25 * sub.shape[0] * sub.shape[1]:
        return _densest_fit(img, floor)
    centre = [16 * int(v) for v in np.unravel_index(k, hist.shape)]  # BGR
    lo = tuple(max(v - 8, 0) for v in centre)
    hi = tuple(min(v + 7, 255) for v in centre)
    bg = np.array(cv2.mean(sub, mask=cv2.inRange(sub, lo, hi))[2::-1])  # RGB
    for name in ("cd-dark", "cd-coolwarm", "cd-light"):
        if np.abs(bg - _PALETTES[name][0]).sum() <= _SNAP_DISTANCE:
            return _colour_unmix(name, floor)
    level = round(float(bg.mean()))
    if float(np.ptp(bg)) > 12:
        return _generic_unmix(tuple(round(float(v)) for v in bg), floor)
    if level > 24:
        return _grey_unmix("grey", level, floor, True)
    # Black: histogram (ON red, OFF blue), its green/red variant, or binary (white events).
    b, g, r, _ = cv2.sumElems(img)
    top = max(r, g, b)
    if top > 0 and min(r, g, b) >= 0.8 * top:
        return _grey_unmix("binary", 0, floor, False)
    if top > 0 and b <= 0.3 * max(r, g) and g > 0.3 * r:
        return _colour_unmix("histogram-greenred", floor)
    return _colour_unmix("histogram", floor)


def _densest_fit(img: np.ndarray, floor: float) -> _Unmix:
    """No dominant background (a dense frame): the known palette that explains the pixels best.

    A pixel mixing background, ON and OFF lies in the triangle the palette spans; the error is
    the distance from it (negative or over-full weights count as misfit). The dark and light CD
    palettes span the same three colours in other roles, so among equally good fits the one
    leaving most weight on the background wins: events rarely outnumber it.
    """
    px = img.reshape(-1, 3)[::3].astype(np.float32)
    looks = dict(_PALETTES)
    looks["grey"] = ((128, 128, 128), (255, 255, 255), (0, 0, 0))
    fits = []
    for name, (bg_rgb, on_rgb, off_rgb) in looks.items():
        bg, on, off = (np.array(c[::-1], dtype=np.float32) for c in (bg_rgb, on_rgb, off_rgb))
        u = np.stack([on - bg, off - bg], axis=1)
        coef = np.clip((px - bg) @ np.linalg.pinv(u).T, 0.0, 1.0)
        coef /= np.maximum(coef.sum(axis=1, keepdims=True), 1.0)
        err = float(np.abs(px - bg - coef @ u.T).mean())
        fits.append((err, float(coef.sum(axis=1).mean()), name))
    best_err = min(err for err, _, _ in fits)
    _, name = min((load, name) for err, load, name in fits if err <= best_err + 2.0)
    return _grey_unmix("grey", 128, floor, True) if name == "grey" else _colour_unmix(name, floor)


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True, slots=True)
class _Mass:
    """Raw moments of a weight map, added across maps (raw moments are linear)."""

    m00: float
    m10: float
    m01: float
    m20: float
    m11: float
    m02: float

    ZERO: ClassVar[_Mass]

    @classmethod
    def of(cls, img: np.ndarray) -> _Mass:
        mo = cv2.moments(img)
        return cls(mo["m00"], mo["m10"], mo["m01"], mo["m20"], mo["m11"], mo["m02"])

    def __add__(self, o: _Mass) -> _Mass:
        return _Mass(
            self.m00 + o.m00,
            self.m10 + o.m10,
            self.m01 + o.m01,
            self.m20 + o.m20,
            self.m11 + o.m11,
            self.m02 + o.m02,
        )

    def centre(self) -> tuple[float, float]:
        return self.m10 / self.m00, self.m01 / self.m00

    def covariance(self) -> tuple[float, float, float]:
        """(var x, cov xy, var y) about the centroid."""
        cx, cy = self.centre()
        return (
            max(self.m20 / self.m00 - cx * cx, 0.0),
            self.m11 / self.m00 - cx * cy,
            max(self.m02 / self.m00 - cy * cy, 0.0),
        )


_Mass.ZERO = _Mass(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)


def _analyse(img: np.ndarray, s: int, floor: float, head: dict[str, Any]) -> SceneDescription:
    """Describe a reduced BGR image (block side s); `head` holds the fields about the bytes."""
    unmix = _unmixer(img, floor)
    on, off, _ = cv2.split(cv2.transform(img, unmix.matrix))  # uint8; negatives saturate to 0
    h, w = on.shape
    norm = float(h * w) * 255.0
    on_sum, off_sum = cv2.sumElems(on)[0], cv2.sumElems(off)[0]
    activity = (on_sum + off_sum) / norm
    polar = unmix.polar and on_sum + off_sum > 0
    on_share = on_sum / (on_sum + off_sum) if polar else 0.5
    polarity = _polarity(on_share, activity, polar=polar)
    common: dict[str, Any] = {"palette": unmix.palette, "background": unmix.background}
    common["activity"] = activity
    common.update(head, polarity=polarity, on_share=on_share)
    if activity < _EMPTY_ACTIVITY:
        return SceneDescription(
            structure=0.0,
            density="empty",
            where="nowhere",
            direction="none",
            axis="none",
            motion="none",
            shape="none",
            grid=(0.0,) * 9,
            **common,
        )
    tot = cv2.add(on, off)
    local = cv2.boxFilter(tot, cv2.CV_32F, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    mask = cv2.compare(local, 255.0 * _STRUCTURE_EVENTS / s, cv2.CMP_GE)
    maps = None
    mass_on = mass_off = _Mass.ZERO
    if cv2.countNonZero(mask):  # else speckle only, the common static frame: no moments
        st_on, st_off = cv2.bitwise_and(on, mask), cv2.bitwise_and(off, mask)
        mass_on, mass_off = _Mass.of(st_on), _Mass.of(st_off)
        maps = (st_on, st_off, cv2.add(st_on, st_off, dtype=cv2.CV_32F))
    mass = mass_on + mass_off
    structure = mass.m00 / norm
    density = _density(activity, structure)
    shape = _shape(mass, structure, activity, h, w)
    grid = _grid(maps[2] if maps is not None and structure >= 0.05 * activity else tot)
    where = _where(grid)
    motion, direction, axis = "none", "none", "none"
    if density in ("moderate", "dense"):
        motion, direction, axis = _movement(
            polarity, shape, where, maps, mass_on, mass_off, polar=polar
        )
    return SceneDescription(
        structure=structure,
        density=density,
        where=where,
        direction=direction,
        axis=axis,
        motion=motion,
        shape=shape,
        grid=grid,
        **common,
    )


def _movement(
    polarity: str,
    shape: str,
    where: str,
    maps: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    mass_on: _Mass,
    mass_off: _Mass,
    *,
    polar: bool,
) -> tuple[str, str, str]:
    """(motion, direction, axis) of a frame with more than noise in it.

    Checked in this order because each test is only sound once the earlier ones failed: a
    one-sided polarity everywhere is a lighting change, edges all over the frame are the
    camera, co-located ON and OFF is flicker, separated ON and OFF is a translation, and
    opposite offsets at the two ends of a structure are a rotation.
    """
    if polarity in ("brightening", "darkening") and (
        shape == "scattered speckle" or where == "across the frame"
    ):
        return "brightness", "none", "none"
    if maps is None:
        return "unclear", "none", "none"
    st_on, st_off, st = maps
    direction = _direction(mass_on, mass_off) if polar else "none"
    if shape == "extended edges" and where == "across the frame":
        motion = "camera"
    elif polar and shape == "compact blob" and _co_located(st_on, st_off):
        return "flicker", "none", "none"
    elif direction != "none":
        motion = "translation"
    elif polar and shape != "scattered speckle" and _rotating(st_on, st_off, mass_on + mass_off):
        return "rotation", "none", "none"
    else:
        motion = "unclear"
    return motion, direction, _axis(st, direction)


def _density(activity: float, structure: float) -> str:
    if activity < _EMPTY_ACTIVITY:
        return "empty"
    if structure < _NOISE_STRUCTURE and activity < _NOISE_ACTIVITY:
        return "sparse noise"
    return "dense" if activity >= _DENSE_ACTIVITY else "moderate"


def _polarity(on_share: float, activity: float, *, polar: bool) -> str:
    if not polar or activity < _EMPTY_ACTIVITY:
        return "unknown"
    if on_share >= 0.7:
        return "brightening"
    return "darkening" if on_share <= 0.3 else "balanced"


def _grid(mass: np.ndarray) -> tuple[float, ...]:
    """Share of the mass in each cell of a 3x3 grid, row-major."""
    cells = cv2.resize(mass.astype(np.float32, copy=False), (3, 3), interpolation=cv2.INTER_AREA)
    total = float(cells.sum())
    if total <= 0:
        return (0.0,) * 9
    return tuple((cells.ravel() / total).round(4).tolist())


def _where(grid: tuple[float, ...]) -> str:
    if sum(grid) == 0:
        return "nowhere"
    top = max(range(9), key=grid.__getitem__)
    if grid[top] >= 0.45:
        return _CELLS[top]
    cols = [grid[i] + grid[i + 3] + grid[i + 6] for i in range(3)]
    rows = [grid[3 * i] + grid[3 * i + 1] + grid[3 * i + 2] for i in range(3)]
    col, row = max(range(3), key=cols.__getitem__), max(range(3), key=rows.__getitem__)
    if cols[col] >= 0.7 and cols[col] >= rows[row]:
        return _COLUMNS[col]
    if rows[row] >= 0.7:
        return _ROWS[row]
    return "across the frame"


def _shape(mass: _Mass, structure: float, activity: float, h: int, w: int) -> str:
    if structure < 0.3 * activity or mass.m00 <= 0:
        return "scattered speckle"
    a, b, c = mass.covariance()
    root = math.sqrt((a - c) ** 2 + 4 * b * b)
    major, minor = (a + c + root) / 2, max((a + c - root) / 2, 1e-9)
    if math.sqrt(major + minor) > 0.18 * math.hypot(w, h):
        return "extended edges"
    return "elongated streak" if major >= 9.0 * minor else "compact blob"


def _co_located(on: np.ndarray, off: np.ndarray) -> bool:
    """ON and OFF spread alike (flicker), judged a few blocks wide so that a cdframe's
    pixel-by-pixel mix of last polarities and codec colour bleeding count as the same place:
    the total variation between the two normalised, box-blurred maps is small."""
    a = cv2.boxFilter(on, cv2.CV_32F, (3, 3))
    b = cv2.boxFilter(off, cv2.CV_32F, (3, 3))
    sa, sb = cv2.sumElems(a)[0], cv2.sumElems(b)[0]
    if sa <= 0 or sb <= 0:
        return False
    return 0.5 * cv2.norm(a / sa, b / sb, cv2.NORM_L1) <= _FLICKER_SPREAD


def _direction(on: _Mass, off: _Mass) -> str:
    """From the ON centroid towards the OFF centroid (OFF leads: see the module docstring)."""
    if min(on.m00, off.m00) <= 0.15 * (on.m00 + off.m00):
        return "none"
    (x_on, y_on), (x_off, y_off) = on.centre(), off.centre()
    a, _, c = (on + off).covariance()
    dx, dy = x_off - x_on, y_off - y_on
    if math.hypot(dx, dy) < _DIRECTION_MIN_OFFSET * math.sqrt(a + c):
        return "none"
    if abs(dx) >= abs(dy):
        return "right" if dx > 0 else "left"
    return "down" if dy > 0 else "up"


def _axis(st: np.ndarray, direction: str) -> str:
    """Moving edges leave bands along the edge: streaks along y mean motion along x."""
    if direction in ("left", "right"):
        return "horizontal"
    if direction in ("up", "down"):
        return "vertical"
    e = float(np.vdot(st, st))
    if e <= 0:
        return "none"
    along_y = float(np.vdot(st[1:], st[:-1])) / e
    along_x = float(np.vdot(st[:, 1:], st[:, :-1])) / e
    if along_y > 1.3 * along_x:
        return "horizontal"
    return "vertical" if along_x > 1.3 * along_y else "none"


def _rotating(on: np.ndarray, off: np.ndarray, mass: _Mass) -> bool:
    """The two ends of the structure have opposite ON→OFF offsets across its major axis."""
    if mass.m00 <= 0:
        return False
    cx, cy = mass.centre()
    a, b, c = mass.covariance()
    theta = 0.5 * math.atan2(2 * b, a - c)
    ax, ay = math.cos(theta), math.sin(theta)
    ys, xs = _coords(*on.shape)
    along = (xs - cx) * ax + (ys - cy) * ay
    across = (ys - cy) * ax - (xs - cx) * ay
    onf, offf = on.astype(np.float32), off.astype(np.float32)
    offsets = []
    for half in (along > 0, along <= 0):
        m_on, m_off = onf[half], offf[half]
        s_on, s_off = float(m_on.sum()), float(m_off.sum())
        if s_on <= 0 or s_off <= 0:
            return False
        a_half = across[half]
        offsets.append(float(a_half @ m_off) / s_off - float(a_half @ m_on) / s_on)
    lo, hi = sorted(abs(v) for v in offsets)
    return offsets[0] * offsets[1] < 0 and lo >= 1.0 and lo >= 0.4 * hi


@lru_cache(maxsize=16)
def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    ys.flags.writeable = False
    xs.flags.writeable = False
    return ys, xs


# --------------------------------------------------------------------------- cache


class Describer:
    """`describe(data, media_type)` with a bounded LRU keyed by content hash.

    Unusable images are remembered too (their one-line reason), so a client that keeps
    resending a broken frame does not make the simulator decode it again. Thread-safe; the
    lock is held only around the dictionary, not while decoding.
    """

    def __init__(self, maxsize: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.maxsize = maxsize
        self._cache: OrderedDict[str, SceneDescription | str] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    def describe(self, data: bytes, media_type: str | None = None) -> SceneDescription:
        """Describe encoded image bytes; ValueError (one line) when they are no usable image.

        `media_type` is what the request declared; the bytes decide how they are decoded.
        Compare it with `SceneDescription.media_type` to emulate a provider that rejects a
        mismatch.
        """
        if not isinstance(data, bytes):
            data = bytes(data)
        sig = signature_of(data)
        with self._lock:
            known = self._cache.get(sig)
            if known is not None:
                self._cache.move_to_end(sig)
                self.hits += 1
        if known is None:
            try:
                known = _describe_uncached(data, sig)
            except ValueError as exc:
                known = str(exc)
            with self._lock:
                self.misses += 1
                self._cache[sig] = known
                self._cache.move_to_end(sig)
                while len(self._cache) > self.maxsize:
                    self._cache.popitem(last=False)
        if isinstance(known, str):
            raise ValueError(known)
        return known

    def clear(self) -> None:
        """Forget every description and reset the counters."""
        with self._lock:
            self._cache.clear()
            self.hits = self.misses = 0


def _describe_uncached(data: bytes, sig: str) -> SceneDescription:
    media_type, width, height = sniff_image(data)
    img, s = _decode(data, media_type, width, height)
    head = {"signature": sig, "media_type": media_type, "width": width, "height": height}
    return _analyse(img, s, _FLOOR[media_type], head)


_DEFAULT = Describer()


def describe_image(data: bytes, media_type: str | None = None) -> SceneDescription:
    """Describe a frame through the process-wide cache (see `Describer.describe`)."""
    return _DEFAULT.describe(data, media_type)


def default_describer() -> Describer:
    """The process-wide cache behind `describe_image` (for its hit counts, or to clear it)."""
    return _DEFAULT


# --------------------------------------------------------------------------- captions

_WHERE = {
    "upper left": "in the upper left",
    "top": "at the top",
    "upper right": "in the upper right",
    "left": "on the left",
    "centre": "in the centre",
    "right": "on the right",
    "lower left": "in the lower left",
    "bottom": "at the bottom",
    "lower right": "in the lower right",
    "left side": "along the left side",
    "right side": "along the right side",
    "upper part": "in the upper part of the frame",
    "lower part": "in the lower part of the frame",
    "across the frame": "across the whole frame",
    "nowhere": "nowhere in particular",
}
_TOWARDS = {"left": "to the left", "right": "to the right", "up": "upward", "down": "downward"}
_PAN = {
    "left": "pan to the right",
    "right": "pan to the left",
    "up": "tilt down",
    "down": "tilt up",
}
_SUBJECT = {
    "compact blob": ("a compact object", "compact blob", "a round shape"),
    "elongated streak": ("an elongated, bar-like edge", "elongated streak", "a long line"),
    "extended edges": ("edges", "extended edges", "lots of lines"),
    "scattered speckle": ("scattered speckle", "scattered speckle", "lots of small dots"),
    "none": ("nothing", "none", "nothing"),
}
_POLARITY = {
    "brightening": ("mostly ON (brightening) events", "mostly ON (brightening)"),
    "darkening": ("mostly OFF (darkening) events", "mostly OFF (darkening)"),
    "balanced": ("a balanced mix of ON and OFF events", "balanced ON/OFF"),
    "unknown": ("events whose polarity this render does not show", "not shown"),
}
# How a plain small model names the colours: (ON, OFF, background).
_COLOURS = {
    "cd-dark": ("white", "blue", "dark blue"),
    "cd-light": ("blue", "dark", "white"),
    "cd-coolwarm": ("red", "blue", "light grey"),
    "histogram": ("red", "blue", "black"),
    "histogram-greenred": ("green", "red", "black"),
    "grey": ("light", "dark", "grey"),
    "binary": ("white", "white", "black"),
    "unknown": ("bright", "dark", "coloured"),
}
_DEGENERATE: dict[str, dict[str, str]] = {
    "refusal": {
        "openai": "I'm sorry, but I can't help with that request.",
        "anthropic": "I'm not able to help with describing this image.",
        "gemini": "I can't help with that.",
        "compat": "Sorry, I cannot assist with that.",
    },
    "boilerplate": {
        "openai": "This image shows a scene with various elements.",
        "anthropic": (
            "This image contains some visual content. Let me know if you would like me to "
            "focus on any particular aspect of it."
        ),
        "gemini": "Image: various shapes and colors.",
        "compat": "The image shows a picture.",
    },
    "empty": {"openai": "", "anthropic": "", "gemini": "", "compat": ""},
    "please_provide_image": {
        "openai": "Please provide the image you would like me to describe.",
        "anthropic": (
            "I don't see an image attached to your message. Could you share the image you'd "
            "like me to describe?"
        ),
        "gemini": "Please upload an image so I can describe it.",
        "compat": "Please provide an image.",
    },
}


def caption(desc: SceneDescription, style: str, *, max_words: int | None = None) -> str:
    """A caption in one provider's house style, stating the frame's facts.

    Deterministic: the wording variant is chosen by the frame's signature, so the same frame
    always gets the same caption and different frames vary. `max_words` cuts the text the way
    an output-token limit would.
    """
    if style not in _STYLE_WRITERS:
        raise ValueError(f"unknown caption style {style!r}; choose from {', '.join(STYLES)}")
    if max_words is not None and max_words < 0:
        raise ValueError(f"max_words must be >= 0, got {max_words}")
    seed = int(desc.signature[:8], 16) if desc.signature[:8] else 0
    text = _STYLE_WRITERS[style](desc, seed)
    if max_words is not None:
        ends = [m.end() for m in _WORD.finditer(text)]
        if len(ends) > max_words:
            text = text[: ends[max_words - 1]].rstrip(",;:") if max_words else ""
    return text


def degenerate_caption(kind: str, style: str) -> str:
    """A content-free answer for fault scenarios: refusal, boilerplate, empty, or a request
    for the image the prompt already carried."""
    if kind not in _DEGENERATE:
        raise ValueError(
            f"unknown degenerate kind {kind!r}; choose from {', '.join(DEGENERATE_KINDS)}"
        )
    if style not in STYLES:
        raise ValueError(f"unknown caption style {style!r}; choose from {', '.join(STYLES)}")
    return _DEGENERATE[kind][style]


def _pct(desc: SceneDescription) -> str:
    return f"{100 * desc.activity:.2g}% of pixels"


def _motion_phrase(desc: SceneDescription) -> str:
    """The motion as a verb phrase: '... is moving to the right'."""
    m, d = desc.motion, desc.direction
    if m == "translation":
        return f"moving {_TOWARDS[d]}"
    if m == "camera":
        if d != "none":
            return f"shifting {_TOWARDS[d]}, as from a camera {_PAN[d]}"
        if desc.axis != "none":
            return f"shifting {desc.axis}ly, as from a camera pan"
        return "shifting as a whole, as from camera motion"
    if m == "rotation":
        return "turning in place"
    if m == "flicker":
        return "flickering in place"
    if m == "brightness":
        return "brightening overall" if desc.polarity == "brightening" else "darkening overall"
    if desc.axis != "none":
        return f"changing along a {desc.axis} axis"
    return "changing without a clear direction"


def _openai(desc: SceneDescription, seed: int) -> str:
    where = _WHERE[desc.where]
    pol = _POLARITY[desc.polarity][0]
    if desc.density == "empty":
        return (
            "The frame is blank, with no events at all.",
            "No events appear anywhere in this frame.",
        )[seed % 2]
    if desc.density == "sparse noise":
        variants = (
            f"Only sparse sensor noise is scattered {where} in an otherwise still scene, "
            f"with {pol}.",
            f"The scene is static, with a light sprinkling of noise events ({_pct(desc)}) "
            f"{where} and {pol}.",
        )
        return variants[seed % 2]
    if desc.motion == "brightness":
        variants = (
            f"The scene is {_motion_phrase(desc)}, with scattered events {where}, {desc.density} "
            f"activity and {pol}.",
            f"Scattered events {where} show the scene {_motion_phrase(desc)}, with {pol}.",
        )
        return variants[seed % 2]
    subject = _SUBJECT[desc.shape][0]
    subject = subject[0].upper() + subject[1:]
    verb = "are" if desc.shape == "extended edges" else "is"
    moving = _motion_phrase(desc)
    variants = (
        f"{subject} {where} {verb} {moving}, with {desc.density} activity and {pol}.",
        f"{subject} {where} {verb} {moving} in a {desc.density} event frame with {pol}.",
    )
    return variants[seed % 2]


def _anthropic(desc: SceneDescription, seed: int) -> str:
    where = _WHERE[desc.where]
    pol = _POLARITY[desc.polarity][0]
    if desc.density == "empty":
        return (
            "This frame appears to be empty: there are no visible events. In an event camera "
            "that usually means nothing changed during the window, although filtered or missing "
            "sensor output would look the same."
        )
    if desc.density == "sparse noise":
        lead = (
            "This appears to be an event-camera frame of a static scene",
            "This looks like a quiet event-camera frame",
        )[seed % 2]
        return (
            f"{lead}: only sparse, isolated events ({_pct(desc)}) are scattered {where}, with "
            f"{pol}. These are most likely sensor noise, such as background activity or hot "
            "pixels, rather than real motion, though one frame is not enough to be certain."
        )
    subject = _SUBJECT[desc.shape][0]
    if desc.motion == "brightness":
        first = (
            "This looks like an event-camera frame in which the scene as a whole appears to be "
            f"{_motion_phrase(desc)}, with scattered events {where}."
        )
    else:
        verb = "appear" if desc.shape == "extended edges" else "appears"
        first = (
            f"This looks like an event-camera frame in which {subject} {where} {verb} to be "
            f"{_motion_phrase(desc)}."
        )
    second = f"Activity is {desc.density}, about {_pct(desc)}, with {pol}."
    if desc.direction != "none":
        hedge = (
            "The direction is inferred from which polarity leads, so if the object is brighter "
            "than its surroundings the motion could be the opposite.",
            "I'm reading the direction from the ON/OFF layout, which assumes a darker object, "
            "so treat it as a best guess.",
        )[seed % 2]
    else:
        hedge = (
            "Some isolated events are probably sensor noise rather than scene content.",
            "Event frames only show change, so static parts of the scene are not visible here.",
        )[seed % 2]
    return f"{first} {second} {hedge}"


def _gemini(desc: SceneDescription, seed: int) -> str:
    pol = _POLARITY[desc.polarity][1]
    if desc.density == "empty":
        return "Empty frame; no events; no motion."
    if desc.density == "sparse noise":
        where = _WHERE[desc.where]
        return f"Static scene; sparse noise ({_pct(desc)}) {where}; polarity {pol}; no motion."
    facts = (
        ("Object", _SUBJECT[desc.shape][1]),
        ("Location", desc.where),
        ("Motion", _motion_phrase(desc)),
        ("Activity", f"{desc.density} ({_pct(desc)})"),
        ("Polarity", pol),
    )
    if seed % 2:
        return "\n".join(f"- {k}: {v}" for k, v in facts)
    return "; ".join(f"{k.lower()}: {v}" for k, v in facts) + "."


def _compat(desc: SceneDescription, seed: int) -> str:
    on_c, off_c, bg_c = _COLOURS[desc.palette]
    where = _WHERE[desc.where].replace("in the centre", "in the middle")
    if desc.density == "empty":
        return f"The image is a plain {bg_c} background. There is nothing in it."
    amount = {"sparse noise": "a few", "moderate": "some", "dense": "a lot of"}[desc.density]
    dots = f"{on_c} and {off_c} dots" if on_c != off_c else f"{on_c} dots"
    tone = {
        "brightening": f"Most dots are {on_c}, so it is getting brighter.",
        "darkening": f"Most dots are {off_c}, so it is getting darker.",
        "balanced": f"There are about as many {on_c} dots as {off_c} dots.",
        "unknown": "The dots are all the same colour.",
    }[desc.polarity]
    if desc.density == "sparse noise":
        return (
            f"The image shows a {bg_c} background with {amount} {dots} {where}. "
            f"It looks like noise and nothing is moving. {tone}"
        )
    thing = _SUBJECT[desc.shape][2]
    return (
        f"The image shows {thing} {where} on a {bg_c} background. It looks like it is "
        f"{_motion_phrase(desc)}. There are {amount} {dots}. {tone}"
    )


_WORD = re.compile(r"\S+")
_STYLE_WRITERS = {"openai": _openai, "anthropic": _anthropic, "gemini": _gemini, "compat": _compat}
