"""Anthropic Messages: POST /v1/messages, x-api-key, anthropic-version pinned to 2023-06-01.

2023-06-01 is pinned on purpose: the 2026-10-21 version rejects `temperature` with a
400 even at default values (reference §0.1).
"""

from __future__ import annotations

from typing import Any

from evtui.providers.base import (
    JSON_CONTENT_TYPE,
    ErrorInfo,
    ProviderAdapter,
    ResponseContext,
    as_int,
    image_base64,
    join_text,
    lower_keys,
)
from evtui.providers.errors import (
    AuthRejected,
    ImageTooLarge,
    MalformedResponse,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
)
from evtui.providers.ratelimits import Headers, anthropic_snapshot
from evtui.providers.types import CaptionRequest, Completion, RateLimitSnapshot, Usage

API_VERSION = "2023-06-01"
SPEND_CODES = frozenset(
    {
        "enforced_spend_limit_reached",
        "contract_spend_limit_reached",
        "linked_organization_spend_limit_reached",
    }
)
FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "refusal",
}
EMPTY_USAGE = Usage()


def anthropic_usage(u: Any) -> Usage:
    """`input_tokens` already excludes cache reads and writes: copy, do not subtract."""
    if not isinstance(u, dict):
        return EMPTY_USAGE
    od = u.get("output_tokens_details")
    return Usage(
        input_tokens=as_int(u.get("input_tokens")),
        output_tokens=as_int(u.get("output_tokens")),
        cached_input_tokens=as_int(u.get("cache_read_input_tokens")),
        cache_write_tokens=as_int(u.get("cache_creation_input_tokens")),
        reasoning_tokens=as_int(od.get("thinking_tokens")) if isinstance(od, dict) else 0,
    )


class AnthropicAdapter(ProviderAdapter):
    """api.anthropic.com. Options: version (default 2023-06-01), oversized_image."""

    protocol = "anthropic"
    default_base_url = "https://api.anthropic.com"
    option_names = frozenset({"version", "oversized_image"})
    request_id_header = "request-id"

    def _make_url(self, model: str) -> str:
        return self.join("/v1/messages")

    def _make_headers(self, key: str) -> dict[str, str]:
        return {
            "x-api-key": key,
            "anthropic-version": str(self.options.get("version") or API_VERSION),
            "content-type": JSON_CONTENT_TYPE,
        }

    def _payload(self, req: CaptionRequest) -> dict[str, Any]:
        image: dict[str, Any] = {
            "type": "image",
            "source": {
                "type": "base64",
                "media_type": req.image.media_type,
                "data": image_base64(req.image),
            },
        }
        if self.options.get("oversized_image"):
            image["transformations"] = {"oversized_image": self.options["oversized_image"]}
        payload: dict[str, Any] = {
            "model": req.model,
            "max_tokens": req.max_output_tokens,
            "messages": [
                {"role": "user", "content": [image, {"type": "text", "text": req.prompt}]}
            ],
        }
        if req.system:
            payload["system"] = req.system
        if req.temperature is not None:
            payload["temperature"] = req.temperature
        return payload

    def _completion(self, data: dict[str, Any], ctx: ResponseContext) -> Completion:
        status, key = ctx.status, ctx.key
        raw = data.get("stop_reason")
        raw = raw if isinstance(raw, str) else None
        content = data.get("content")
        if not isinstance(content, list):
            raise MalformedResponse(
                f"{status} answer has no content blocks", provider=self.name, status=status
            )
        text = join_text(content).strip()
        if raw == "refusal":
            why = "model refused (stop_reason refusal)" + (f": {text}" if text else "")
            raise self.refused(status, why, "refusal", key)
        if not text:
            raise self.no_text(status, raw, key)
        return self._answer(
            text,
            raw,
            FINISH.get(raw, "other") if raw else "other",
            anthropic_usage(data.get("usage")),
            data.get("model"),
            ctx,
        )

    def _refine(
        self, status: int, info: ErrorInfo, headers: Headers, limits: RateLimitSnapshot
    ) -> type[ProviderError] | None:
        if info.detail_code in SPEND_CODES:
            return QuotaExhausted
        if info.type == "billing_error":
            return QuotaExhausted
        if info.type == "overloaded_error":
            return Overloaded
        if info.type in ("authentication_error", "permission_error"):
            return AuthRejected
        if info.type == "request_too_large":
            return ImageTooLarge
        if status == 429:
            # The spend-cap 429 is a rate_limit_error without retry-after (reference §3).
            if (
                info.type == "rate_limit_error"
                and limits.retry_after is None
                and info.detail_code != "ramp_limit_exceeded"
            ):
                return QuotaExhausted
            return RateLimited
        return super()._refine(status, info, headers, limits)

    def rate_limits(
        self, headers: Headers, body: bytes, *, now: float | None = None
    ) -> RateLimitSnapshot:
        return anthropic_snapshot(lower_keys(headers), now)
