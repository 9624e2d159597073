"""Pieces every simulated protocol shares: the simulated marker, replies, time formats."""

from __future__ import annotations

import math
import time
from typing import Any

SIM_HEADER = "x-evtui-simulated"
FINGERPRINT = "fp_evtui_sim"
_JSON = "application/json"


class Reply(Exception):
    """A finished non-success answer: status, body, extra headers, and a label for stats."""

    def __init__(
        self,
        status: int,
        body: bytes | dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        label: str = "error",
        content_type: str = _JSON,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.label = label
        self.content_type = content_type


# --------------------------------------------------------------------------- durations


_GO: dict[int, str] = {}


def go_duration(seconds: float) -> str:
    """Seconds as Go's time.Duration prints them, to the millisecond: '12ms', '6m0s', '1.5s'."""
    ms = round(seconds * 1000)
    text = _GO.get(ms)
    if text is None:
        if len(_GO) > 4096:
            _GO.clear()
        text = _GO[ms] = _go_ms(ms)
    return text


def _go_ms(ms: int) -> str:
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s = f"{rem // 1000}" if rem % 1000 == 0 else f"{rem / 1000:.3f}".rstrip("0")
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def proto_duration(seconds: float) -> str:
    """A protobuf Duration in JSON: '33s', '0.5s'."""
    ms = max(round(seconds * 1000), 0)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms / 1000:.3f}".rstrip("0") + "s"


_RFC3339: dict[int, str] = {}


def rfc3339(epoch_s: float) -> str:
    """UTC time to the second, as Anthropic's reset headers carry it (cached per second)."""
    sec = math.ceil(epoch_s)
    text = _RFC3339.get(sec)
    if text is None:
        if len(_RFC3339) > 512:
            _RFC3339.clear()
        text = _RFC3339[sec] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))
    return text
