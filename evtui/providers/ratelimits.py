"""Rate-limit signals from response headers and bodies, parsed on every response.

Each provider speaks its own dialect: OpenAI resets are relative Go durations
("6m0s"), Anthropic resets are absolute RFC 3339 times, Gemini sends no headers at
all and puts `RetryInfo.retryDelay` ("33s") in the error body. The values repeat
from one response to the next, so the string parsers are memoised.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from evtui.providers.types import Limit, RateLimitSnapshot

Headers = Mapping[str, str]

EMPTY_LIMIT = Limit()
EMPTY_SNAPSHOT = RateLimitSnapshot()

_GO_FULL = re.compile(r"(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|h|m|s))+")
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|h|m|s)")
_GO_UNIT = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6}
_GO_UNIT["ns"] = 1e-9
_PROTO = re.compile(r"(\d+(?:\.\d*)?|\.\d+)s")

# Memo tables: header values repeat (same reset string for a second, same few limits).
_MEMO_MAX = 4096
_go_memo: dict[str, float | None] = {}
_rfc_memo: dict[str, float | None] = {}


def _remember(memo: dict[str, float | None], key: str, value: float | None) -> float | None:
    if len(memo) >= _MEMO_MAX:
        memo.clear()
    memo[key] = value
    return value


def go_duration_s(value: str | None) -> float | None:
    """OpenAI reset header ("1s", "6m0s", "12ms", "1h2m3.5s", "0s") in seconds; None if garbage."""
    if value is None:
        return None
    try:
        return _go_memo[value]
    except KeyError:
        pass
    v = value.strip()
    if v == "0":
        return _remember(_go_memo, value, 0.0)
    if not _GO_FULL.fullmatch(v):
        return _remember(_go_memo, value, None)
    total = sum(float(n) * _GO_UNIT[u] for n, u in _GO_PART.findall(v))
    return _remember(_go_memo, value, total)


def rfc3339_epoch(value: str | None) -> float | None:
    """Anthropic reset header ("2025-08-21T12:40:59Z", offsets allowed) as epoch seconds."""
    if value is None:
        return None
    try:
        return _rfc_memo[value]
    except KeyError:
        pass
    try:
        dt = datetime.fromisoformat(value.strip())
    except ValueError:
        return _remember(_rfc_memo, value, None)
    if dt.tzinfo is None:  # RFC 3339 requires an offset; a naive time is unusable
        return _remember(_rfc_memo, value, None)
    return _remember(_rfc_memo, value, dt.timestamp())


def proto_duration_s(value: Any) -> float | None:
    """Protobuf Duration JSON ("33s", "0.5s", "600.5s") in seconds; None if garbage."""
    if not isinstance(value, str):
        return None
    m = _PROTO.fullmatch(value.strip())
    return float(m.group(1)) if m else None


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        f = float(value)
    except ValueError:
        return None
    return f if f == f and f not in (float("inf"), float("-inf")) else None


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        f = _number(value)
        return int(f) if f is not None else None


def retry_after_s(headers: Headers, now: float | None = None) -> float | None:
    """`retry-after-ms` first, then `retry-after` as seconds or an HTTP-date (past → 0)."""
    ms = _number(headers.get("retry-after-ms"))
    if ms is not None and ms >= 0:
        return ms / 1000.0
    ra = headers.get("retry-after")
    if ra is None:
        return None
    secs = _number(ra)
    if secs is not None:
        return secs if secs >= 0 else None
    try:
        when = parsedate_to_datetime(ra)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None or when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def flexible_reset_s(value: str | None, now: float | None = None) -> float | None:
    """Reset headers of unknown servers: Go duration, plain seconds, or an epoch timestamp."""
    if value is None:
        return None
    d = go_duration_s(value)
    if d is not None:
        return d
    n = _number(value)
    if n is not None:
        if n > 1e9:  # an absolute epoch time (LiteLLM and others sometimes send one)
            return max(0.0, n - (time.time() if now is None else now))
        return n if n >= 0 else None
    epoch = rfc3339_epoch(value)
    if epoch is not None:
        return max(0.0, epoch - (time.time() if now is None else now))
    return None


_OPENAI_NAMES = {
    kind: tuple(f"x-ratelimit-{part}-{kind}" for part in ("limit", "remaining", "reset"))
    for kind in ("requests", "tokens")
}


def _openai_limit(headers: Headers, kind: str, now: float | None) -> Limit:
    n_lim, n_rem, n_rst = _OPENAI_NAMES[kind]
    lim = headers.get(n_lim)
    rem = headers.get(n_rem)
    rst = headers.get(n_rst)
    if lim is None and rem is None and rst is None:
        return EMPTY_LIMIT
    return Limit(_int(lim), _int(rem), flexible_reset_s(rst, now))


def openai_snapshot(headers: Headers, now: float | None = None) -> RateLimitSnapshot:
    """`x-ratelimit-{limit,remaining,reset}-{requests,tokens}` plus retry-after(-ms)."""
    requests = _openai_limit(headers, "requests", now)
    tokens = _openai_limit(headers, "tokens", now)
    retry = retry_after_s(headers, now)
    if requests is EMPTY_LIMIT and tokens is EMPTY_LIMIT and retry is None:
        return EMPTY_SNAPSHOT
    # Every field passed: the dataclass's default factories cost more than the parsing.
    return RateLimitSnapshot(
        requests=requests,
        tokens=tokens,
        input_tokens=EMPTY_LIMIT,
        output_tokens=EMPTY_LIMIT,
        retry_after=retry,
    )


_ANTHROPIC_NAMES = {
    kind: tuple(f"anthropic-ratelimit-{kind}-{part}" for part in ("limit", "remaining", "reset"))
    for kind in ("requests", "tokens", "input-tokens", "output-tokens")
}


def _anthropic_limit(headers: Headers, kind: str, now: float) -> Limit:
    n_lim, n_rem, n_rst = _ANTHROPIC_NAMES[kind]
    lim = headers.get(n_lim)
    rem = headers.get(n_rem)
    rst = headers.get(n_rst)
    if lim is None and rem is None and rst is None:
        return EMPTY_LIMIT
    epoch = rfc3339_epoch(rst)
    reset = None if epoch is None else max(0.0, epoch - now)
    return Limit(_int(lim), _int(rem), reset)


def anthropic_snapshot(headers: Headers, now: float | None = None) -> RateLimitSnapshot:
    """`anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-*` plus retry-after."""
    if now is None:
        now = time.time()
    requests = _anthropic_limit(headers, "requests", now)
    tokens = _anthropic_limit(headers, "tokens", now)
    inp = _anthropic_limit(headers, "input-tokens", now)
    out = _anthropic_limit(headers, "output-tokens", now)
    retry = retry_after_s(headers, now)
    if retry is None and requests is tokens is inp is out is EMPTY_LIMIT:
        return EMPTY_SNAPSHOT
    return RateLimitSnapshot(
        requests=requests, tokens=tokens, input_tokens=inp, output_tokens=out, retry_after=retry
    )


def gemini_retry_delay(body: bytes) -> float | None:
    """`RetryInfo.retryDelay` from a Gemini error body (which may be a one-element array)."""
    if b"retryDelay" not in body:
        return None
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and data:
        data = data[0]
    err = data.get("error") if isinstance(data, dict) else None
    details = err.get("details") if isinstance(err, dict) else None
    if not isinstance(details, list):
        return None
    for d in details:
        if isinstance(d, dict) and "retryDelay" in d:
            return proto_duration_s(d["retryDelay"])
    return None


def gemini_snapshot(headers: Headers, body: bytes, now: float | None = None) -> RateLimitSnapshot:
    """Gemini has no rate-limit headers: only retry-after (rare) and the body's retryDelay."""
    retry = retry_after_s(headers, now)
    if retry is None:
        retry = gemini_retry_delay(body)
    if retry is None:
        return EMPTY_SNAPSHOT
    return RateLimitSnapshot(
        requests=EMPTY_LIMIT,
        tokens=EMPTY_LIMIT,
        input_tokens=EMPTY_LIMIT,
        output_tokens=EMPTY_LIMIT,
        retry_after=retry,
    )


def wait_hint_s(snapshot: RateLimitSnapshot) -> float | None:
    """The delay to honour after a 429: the explicit one, else the reset of an empty bucket."""
    if snapshot.retry_after is not None:
        return snapshot.retry_after
    waits = [
        lim.reset_s
        for lim in (
            snapshot.requests,
            snapshot.tokens,
            snapshot.input_tokens,
            snapshot.output_tokens,
        )
        if lim.remaining == 0 and lim.reset_s is not None
    ]
    return max(waits) if waits else None
