"""Any OpenAI-compatible server or gateway: vLLM, Ollama, LM Studio, LiteLLM, Bifrost, Portkey.

Same request shape as OpenAI, but the base URL and path are the user's, the key is
optional, many servers still want `max_tokens`, and the error bodies vary: `error`
as an object or a string, `code` as an int, a string or null, gateway envelopes.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from evtui.providers.base import (
    JSON_CONTENT_TYPE,
    ErrorInfo,
    ResponseContext,
    looks_like_image_too_large,
    lower_keys,
    parse_error_body,
)
from evtui.providers.errors import (
    AuthRejected,
    BadRequest,
    ImageTooLarge,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ServerError,
    Timeout,
)
from evtui.providers.openai import OpenAIAdapter
from evtui.providers.prices import PriceTable
from evtui.providers.ratelimits import Headers, openai_snapshot
from evtui.providers.types import Completion, RateLimitSnapshot

MAX_TOKENS_FIELDS = ("max_tokens", "max_completion_tokens")
_BUDGET = re.compile(r"budget_exceeded|budget has been exceeded|exceeded (?:the |your )?budget")
# LiteLLM prefixes messages with the exception it mapped the failure to.
_LITELLM = re.compile(r"litellm\.(\w+)")
_LITELLM_CLASSES: dict[str, type[ProviderError]] = {
    "RateLimitError": RateLimited,
    "BudgetExceededError": QuotaExhausted,
    "AuthenticationError": AuthRejected,
    "PermissionDeniedError": AuthRejected,
    "ServiceUnavailableError": Overloaded,
    "InternalServerError": ServerError,
    "APIConnectionError": ServerError,
    "Timeout": Timeout,
    "BadRequestError": BadRequest,
    "ContextWindowExceededError": BadRequest,
    "NotFoundError": BadRequest,
    "ContentPolicyViolationError": BadRequest,
}


class OpenAICompatibleAdapter(OpenAIAdapter):
    """Options: path (default /v1/chat/completions), max_tokens_field (max_tokens |
    max_completion_tokens; default max_tokens), detail, extra_headers (non-secret)."""

    protocol = "openai-compatible"
    default_base_url = "http://127.0.0.1:8000"
    option_names = frozenset({"path", "max_tokens_field", "detail", "extra_headers"})

    def __init__(
        self,
        name: str | None = None,
        base_url: str | None = None,
        options: dict[str, Any] | None = None,
        *,
        prices: PriceTable | None = None,
    ) -> None:
        super().__init__(name, base_url, options, prices=prices)
        field = self.options.get("max_tokens_field") or "max_tokens"
        if field not in MAX_TOKENS_FIELDS:
            raise ValueError(
                f"openai-compatible adapter: max_tokens_field must be one of "
                f"{', '.join(MAX_TOKENS_FIELDS)}, not {field!r}"
            )
        self.max_tokens_field = field
        self.path = self.options.get("path") or "/v1/chat/completions"
        extra = self.options.get("extra_headers") or {}
        if not isinstance(extra, dict):
            raise ValueError("openai-compatible adapter: extra_headers must be a mapping")
        self._extra_headers = {str(k): str(v) for k, v in extra.items()}

    def _make_headers(self, key: str) -> dict[str, str]:
        headers = {"Content-Type": JSON_CONTENT_TYPE, **self._extra_headers}
        if key:  # local servers (Ollama, LM Studio) need none
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _completion(self, data: dict[str, Any], ctx: ResponseContext) -> Completion:
        if "choices" not in data and ("error" in data or data.get("status") == "failure"):
            # A gateway that wraps a failure in a 2xx: classify it by what the body says.
            body = orjson.dumps(data)
            embedded = parse_error_body(body).embedded_status
            raise self.classify_error(
                embedded if embedded and embedded >= 400 else 502,
                {},
                body,
                key=ctx.key,
                rate_limits=ctx.rate_limits,
            )
        return super()._completion(data, ctx)

    def _refine(
        self, status: int, info: ErrorInfo, headers: Headers, limits: RateLimitSnapshot
    ) -> type[ProviderError] | None:
        words = " ".join(w for w in (info.type, info.code) if w).lower()
        message = info.message.lower()
        if _BUDGET.search(words) or _BUDGET.search(message) or "insufficient_quota" in message:
            return QuotaExhausted
        litellm = _LITELLM.search(info.message)
        if litellm and litellm.group(1) in _LITELLM_CLASSES:
            cls = _LITELLM_CLASSES[litellm.group(1)]
            if cls is BadRequest and looks_like_image_too_large(info):
                return ImageTooLarge
            return cls
        if "throttling_error" in words:
            return RateLimited
        if status == 503:  # vLLM "Request queue full.", Ollama "server busy"
            return Overloaded
        return super()._refine(status, info, headers, limits)

    def rate_limits(
        self, headers: Headers, body: bytes, *, now: float | None = None
    ) -> RateLimitSnapshot:
        return openai_snapshot(lower_keys(headers), now)
