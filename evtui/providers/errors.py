"""Every way a provider call fails, as one taxonomy whose names read as the problem.

The engine decides what to do from the class alone: wait (`RateLimited`, with the
provider's own delay), stop the key (`QuotaExhausted`, `AuthRejected`), fall over
(`Overloaded`, `ServerError`, `Timeout`, `ConnectionFailed`, `MalformedResponse`), or
give up on the frame (`BadRequest`, `ContentRefused`) — except `ImageTooLarge`, which
is re-encoded smaller once. Messages never carry an unmasked key.
"""

from __future__ import annotations

from evtui.providers.types import RateLimitSnapshot


class ProviderError(Exception):
    """A failed provider call. `retryable` says whether the same request may succeed later."""

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        rate_limits: RateLimitSnapshot | None = None,
        request_id: str | None = None,
    ) -> None:
        self.message = message
        self.provider = provider
        self.status = status
        self.code = code
        self.retry_after = retry_after
        self.rate_limits = rate_limits
        self.request_id = request_id
        super().__init__(self._describe())

    def _describe(self) -> str:
        head = self.provider or "provider"
        if self.status is not None:
            head += f" {self.status}"
        if self.code:
            head += f" {self.code}"
        text = f"{head}: {self.message}"
        if self.retry_after is not None:
            text += f" (retry after {self.retry_after:.3g} s)"
        return text

    @property
    def kind(self) -> str:
        """Short class name for counters and route traces: 'rate_limited', 'overloaded'…"""
        name = type(self).__name__
        return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class RateLimited(ProviderError):
    """Too many requests or tokens for now; `retry_after` is the provider's own delay."""

    retryable = True


class QuotaExhausted(ProviderError):
    """Billing, credit or spend cap reached (often a 429 in disguise): never retry."""


class Overloaded(ProviderError):
    """The service as a whole is busy (Anthropic 529, 503, a gateway's full queue)."""

    retryable = True


class AuthRejected(ProviderError):
    """Key invalid, revoked or not allowed (401/403, Gemini API_KEY_INVALID)."""


class BadRequest(ProviderError):
    """The request itself is wrong; resending it unchanged fails again."""


class ImageTooLarge(BadRequest):
    """The image exceeds a size or dimension limit: re-encode smaller and resend once."""


class ContentRefused(ProviderError):
    """The model or a safety filter declined to answer (refusal, SAFETY, blocked prompt)."""


class ServerError(ProviderError):
    """5xx other than overload, 408/409 conflicts: transient on the provider's side."""

    retryable = True


class Timeout(ProviderError):
    """No complete answer within the client's timeout."""

    retryable = True


class ConnectionFailed(ProviderError):
    """No HTTP exchange at all: refused, reset, DNS, TLS."""

    retryable = True


class MalformedResponse(ProviderError):
    """An answer we cannot read: HTML, empty, wrong JSON shape, no text, oversized body."""

    retryable = True


ERROR_CLASSES: tuple[type[ProviderError], ...] = (
    RateLimited,
    QuotaExhausted,
    Overloaded,
    AuthRejected,
    BadRequest,
    ImageTooLarge,
    ContentRefused,
    ServerError,
    Timeout,
    ConnectionFailed,
    MalformedResponse,
)
