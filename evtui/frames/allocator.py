"""glibc's allocator, tuned for processes that stream frame-sized buffers.

Every frame passes through a few 50-600 KB buffers (pixels, JPEG bytes, base64 text,
request bodies). With glibc's defaults, blocks from 128 KB up are mmapped and unmapped
one by one, and the heap's free top is handed back to the kernel as soon as it passes
128 KB, so the next frame faults the same pages in again: measured 22 page faults a
frame in the engine's process alone. Keeping freed memory for reuse (up to the limits
below) removes that churn; resident memory grows by at most those limits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 16 << 20  # blocks below this come from the heap and are reused
TRIM_THRESHOLD = 64 << 20  # free heap top kept before any is handed back
TOP_PAD = 4 << 20  # the heap grows in steps of at least this

_done = False


def tune_allocator() -> bool:
    """Apply the settings once per process (glibc only; elsewhere a no-op). True if set."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = all(
        mallopt(param, value) == 1
        for param, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
            (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
            (M_TOP_PAD, TOP_PAD),
        )
    )
    return _done


def tuned() -> bool:
    """Whether this process's allocator was tuned."""
    return _done


__all__ = ["tune_allocator", "tuned"]
