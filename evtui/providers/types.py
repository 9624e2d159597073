"""What goes into a provider call and what comes out, independent of the wire protocol."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ImagePart:
    """An encoded frame: bytes as sent, their media type and pixel size.

    `b64` is the base64 text when the encoder already made it: done in the encoding
    worker processes, it keeps ~120 µs per 60 KB frame off the event loop, more than the
    rest of the send path costs. With `b64`, `data` may be empty (the pipeline sends only
    the text across processes); `raw()` gives the bytes either way.
    """

    data: bytes
    media_type: str  # image/jpeg | image/png | image/webp
    width: int
    height: int
    b64: str | None = None

    def raw(self) -> bytes:
        """The encoded bytes (decoded from `b64` when only the text was kept)."""
        if self.data or self.b64 is None:
            return self.data
        return base64.b64decode(self.b64)


@dataclass(frozen=True)
class CaptionRequest:
    """One frame to caption with one model."""

    model: str
    prompt: str
    image: ImagePart
    max_output_tokens: int = 300
    temperature: float | None = None
    system: str | None = None
    detail: str | None = None  # OpenAI image detail: low | high | auto | original


@dataclass(frozen=True)
class Usage:
    """Tokens as billed. `input_tokens` excludes cached tokens on every protocol.

    (OpenAI and Gemini report prompt tokens including cached ones; Anthropic excludes
    them: adapters normalise so that cost = input·p_in + cached·p_cached + output·p_out.)
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    image_tokens: int | None = None  # when the provider reports them (Gemini per modality)
    reasoning_tokens: int = 0  # included in output_tokens

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cached_input_tokens + self.cache_write_tokens


@dataclass(frozen=True)
class Limit:
    """One rate-limit bucket as last reported: `reset_s` is seconds until fully restored."""

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None


@dataclass(frozen=True)
class RateLimitSnapshot:
    """Rate-limit state parsed from one response's headers (and Gemini's error body).

    `retry_after` is the provider's explicit delay (retry-after-ms, retry-after,
    RetryInfo.retryDelay) when it sent one.
    """

    requests: Limit = field(default_factory=Limit)
    tokens: Limit = field(default_factory=Limit)
    input_tokens: Limit = field(default_factory=Limit)
    output_tokens: Limit = field(default_factory=Limit)
    retry_after: float | None = None

    @property
    def empty(self) -> bool:
        return self == RateLimitSnapshot()


@dataclass(frozen=True)
class Completion:
    """A successful answer: the caption and everything needed to account for it."""

    text: str
    finish_reason: str  # normalised: stop | length | content_filter | refusal | other
    raw_finish_reason: str | None
    usage: Usage
    model: str
    provider: str
    request_id: str | None = None
    rate_limits: RateLimitSnapshot = field(default_factory=RateLimitSnapshot)
    latency_s: float = 0.0
    simulated: bool = False
    cost_usd: float | None = None  # priced by the adapter's table for the requested model


@dataclass(frozen=True)
class HttpRequest:
    """A fully built request: what goes on the wire, nothing protocol-specific left."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes
