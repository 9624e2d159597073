"""A 128-bit perceptual fingerprint of a rendered frame, for the semantic cache.

Two frames of the same content rendered from different event samples never share pixels
(shot noise, hot pixels, jitter), so the exact pixel hash (`encode.frame_pixel_hash`) cannot
find them; this fingerprint can. It is a DCT pHash (Zauner 2010) taken on two planes of the
area-downsampled frame, so that it keeps event polarity whatever the palette:

* L = R + G + B: where events are and how many (every renderer raises or lowers it);
* C = R - B: which polarity (red vs blue in the histogram palettes, white vs blue in the
  CD-frame ones); zero for grey renderers, whose polarity is already in L.

Each plane is averaged down to 32x32 (INTER_AREA: a box blur, so single noise events and
1-2 px jitter barely move a cell), transformed with a 2-D DCT, and its 64 lowest-frequency
AC coefficients (zigzag order, DC skipped) become 64 bits: 1 where the coefficient is above
that plane's median. The background colour, a constant, only shifts DC, so no background
estimate is needed. Bits are interleaved so each 16-bit chunk mixes frequencies of both
planes, which keeps the buckets of the cache's multi-index balanced.

Measured on the bundled sample (`evtui.cache.quality`; 33 ms windows, cdframe and histogram,
three window phases, 2,182 frames): consecutive frames of one motion are typically 6-14 bits
apart; no window was matched to one showing other content up to 16 bits; windows that
straddle a cut start matching the other side's frames from 8 bits on (0.14 % of frames at 8,
0.37 % at 12, 0.92 % at 16); sensor-noise-only frames are ~64 bits apart (their bits are as
random as the noise). Hence `DEFAULT_THRESHOLD = 12`: 10 % of all frames and 39 % of the
moving ones reuse a caption. Synthetic 640x480 scenes through a noisier sensor (10 % events
lost, 20 % more shot noise, hot pixels, 2 px jitter) stay within 6 bits; a disc moved by a
quarter of the width, or the motion reversed (polarity swapped), is 34+ bits away
(tests/test_fingerprint.py). The voxel renderer's per-bin normalisation makes its frames
much less stable (up to ~36 bits under similar noise).
"""

from __future__ import annotations

import cv2
import numpy as np

FINGERPRINT_BITS = 128
FINGERPRINT_BYTES = FINGERPRINT_BITS // 8
DEFAULT_THRESHOLD = 12
"""Hamming distance (bits of 128) at or under which two frames count as near-duplicates."""

_GRID = 32
_COEFFS = 64  # per plane
_CHUNKS = 8  # 16-bit chunks; each holds 8 bits of L and 8 of C
_EPS = 1e-3  # coefficients this small are float noise of a flat plane: treat as 0
_HALVE_ABOVE = 4 * _GRID  # halve with the fast 2x INTER_AREA path while both sides exceed this


def _zigzag(n: int, count: int) -> np.ndarray:
    """Flat indices of the `count` lowest-frequency AC coefficients of an n x n DCT."""
    u, v = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    order = np.lexsort((u.ravel(), (u + v).ravel()))
    return order[1 : count + 1]


_ZIGZAG = _zigzag(_GRID, _COEFFS)
# bit position in the fingerprint of (plane p, coefficient k): chunk k % 8, L then C inside it
_LAYOUT = np.empty(2 * _COEFFS, dtype=np.intp)
for _p in range(2):
    for _k in range(_COEFFS):
        _LAYOUT[_p * _COEFFS + _k] = (_k % _CHUNKS) * 16 + _p * 8 + _k // _CHUNKS


def _downsample(image: np.ndarray) -> np.ndarray:
    """(32, 32, 3) float32 box average of an (H, W, 3) image, cheaply.

    Exact 2x INTER_AREA on uint8 is a fast path in OpenCV (~0.1 ms at 640x480 against
    ~0.3 ms for one arbitrary-ratio resize); the rounding it adds is far below one event.
    """
    img = image
    h, w = img.shape[:2]
    while h > _HALVE_ABOVE and w > _HALVE_ABOVE and h % 2 == 0 and w % 2 == 0:
        img = cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        h, w = img.shape[:2]
    small = cv2.resize(img.astype(np.float32), (_GRID, _GRID), interpolation=cv2.INTER_AREA)
    return small


def _as_rgb(image: np.ndarray) -> np.ndarray:
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3) or a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"a frame must be (H, W) or (H, W, 3), got shape {a.shape}")
    if a.dtype != np.uint8:
        if a.dtype.kind not in "uif":
            raise ValueError(f"a frame must hold numbers, got dtype {a.dtype}")
        a = a.astype(np.float32)
    if a.shape[2] == 1:
        # Grey is R = G = B: the same fingerprint as its RGB replica.
        a = np.repeat(a, 3, axis=2) if a.dtype != np.uint8 else cv2.merge([a[:, :, 0]] * 3)
    return np.ascontiguousarray(a)


def fingerprint(image: np.ndarray) -> bytes:
    """16-byte perceptual fingerprint of a rendered frame; near frames are few bits apart.

    Deterministic: equal pixels give equal fingerprints. A flat frame (no events) gives
    all zero bits.
    """
    small = _downsample(_as_rgb(image))
    r, g, b = small[:, :, 0], small[:, :, 1], small[:, :, 2]
    planes = (r + g + b, r - b)
    coeffs = np.empty((2, _COEFFS), dtype=np.float32)
    for i, plane in enumerate(planes):
        coeffs[i] = cv2.dct(np.ascontiguousarray(plane)).ravel()[_ZIGZAG]
    coeffs[np.abs(coeffs) < _EPS] = 0.0
    med = np.partition(coeffs, (_COEFFS // 2 - 1, _COEFFS // 2), axis=1)
    median = 0.5 * (med[:, _COEFFS // 2 - 1] + med[:, _COEFFS // 2])
    bits = (coeffs > median[:, None]).ravel()
    out = np.empty(FINGERPRINT_BITS, dtype=bool)
    out[_LAYOUT] = bits
    return np.packbits(out, bitorder="little").tobytes()


def hamming(a: bytes, b: bytes) -> int:
    """Number of differing bits between two fingerprints of the same length."""
    if len(a) != len(b):
        raise ValueError(f"fingerprints differ in length: {len(a)} and {len(b)} bytes")
    return (int.from_bytes(a, "little") ^ int.from_bytes(b, "little")).bit_count()


def fingerprint_bits(fp: bytes) -> np.ndarray:
    """(2, 64) bool: the L-plane and C-plane bits in zigzag order (for inspection and tests)."""
    if len(fp) != FINGERPRINT_BYTES:
        raise ValueError(f"a fingerprint is {FINGERPRINT_BYTES} bytes, got {len(fp)}")
    bits = np.unpackbits(np.frombuffer(fp, dtype=np.uint8), bitorder="little").astype(bool)
    return bits[_LAYOUT].reshape(2, _COEFFS)


def threshold_bits(fraction: float) -> int:
    """Config's `cache.threshold` (a fraction of the fingerprint, 0..1) in bits."""
    f = float(fraction)
    if not 0.0 <= f <= 1.0:
        raise ValueError(f"a threshold fraction must be in [0, 1], got {fraction}")
    return round(f * FINGERPRINT_BITS)
