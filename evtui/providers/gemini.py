"""Gemini generateContent: POST /v1beta/models/{model}:generateContent, x-goog-api-key.

Gemini sends no rate-limit headers; a 429 carries RetryInfo.retryDelay and the
QuotaFailure quotaId in its body, and a quotaId with `PerDay` means "stop until
midnight Pacific", not "wait a bit".
"""

from __future__ import annotations

import re
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
    MalformedResponse,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
)
from evtui.providers.ratelimits import Headers, gemini_snapshot
from evtui.providers.types import CaptionRequest, Completion, RateLimitSnapshot, Usage

FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
}
# Billing stops that arrive as RESOURCE_EXHAUSTED. Not "billing" alone: every free-tier
# per-minute 429 says "check your plan and billing details".
_BILLING_STOP = re.compile(
    r"prepa(?:y|id)|credit balance|balance (?:is )?(?:depleted|exhausted)"
    r"|spend(?:ing)?[- ](?:based )?(?:cap|limit)|billing (?:is )?(?:not enabled|disabled)"
    r"|enable billing",
    re.IGNORECASE,
)
_FLASH_25 = re.compile(r"^(?:models/)?gemini-2\.5-flash")
EMPTY_USAGE = Usage()


def gemini_usage(u: Any) -> Usage:
    """`promptTokenCount` includes cached tokens; thoughts are billed as output."""
    if not isinstance(u, dict):
        return EMPTY_USAGE
    prompt = as_int(u.get("promptTokenCount"))
    cached = as_int(u.get("cachedContentTokenCount"))
    thoughts = as_int(u.get("thoughtsTokenCount"))
    image: int | None = None
    details = u.get("promptTokensDetails")
    if isinstance(details, list):
        for d in details:
            if isinstance(d, dict) and d.get("modality") == "IMAGE":
                image = (image or 0) + as_int(d.get("tokenCount"))
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=as_int(u.get("candidatesTokenCount")) + thoughts,
        cached_input_tokens=cached,
        image_tokens=image,
        reasoning_tokens=thoughts,
    )


class GeminiAdapter(ProviderAdapter):
    """generativelanguage.googleapis.com with an AI Studio key.

    Options: api_version (v1beta), media_resolution (MEDIA_RESOLUTION_LOW…),
    thinking_budget: "auto" (default: 0 on gemini-2.5-flash*, whose thinking otherwise
    eats small output budgets), an int to always send, or None to never send.
    """

    protocol = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com"
    option_names = frozenset({"api_version", "media_resolution", "thinking_budget"})
    request_id_header = None

    def _make_url(self, model: str) -> str:
        version = self.options.get("api_version") or "v1beta"
        model = model.removeprefix("models/")
        return self.join(f"/{version}/models/{model}:generateContent")

    def _make_headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key, "Content-Type": JSON_CONTENT_TYPE}

    def thinking_budget(self, model: str) -> int | None:
        budget = self.options.get("thinking_budget", "auto")
        if budget == "auto":
            return 0 if _FLASH_25.match(model) else None
        return None if budget is None else int(budget)

    def _payload(self, req: CaptionRequest) -> dict[str, Any]:
        config: dict[str, Any] = {"maxOutputTokens": req.max_output_tokens}
        if req.temperature is not None:
            config["temperature"] = req.temperature
        budget = self.thinking_budget(req.model)
        if budget is not None:
            config["thinkingConfig"] = {"thinkingBudget": budget}
        if self.options.get("media_resolution"):
            config["mediaResolution"] = self.options["media_resolution"]
        payload: dict[str, Any] = {
            "contents": [
                {
                    "role": "user",
                    "parts": [
                        {
                            "inline_data": {
                                "mime_type": req.image.media_type,
                                "data": image_base64(req.image),
                            }
                        },
                        {"text": req.prompt},
                    ],
                }
            ],
            "generationConfig": config,
        }
        if req.system:
            payload["systemInstruction"] = {"parts": [{"text": req.system}]}
        return payload

    def _completion(self, data: dict[str, Any], ctx: ResponseContext) -> Completion:
        status, key = ctx.status, ctx.key
        feedback = data.get("promptFeedback")
        block = feedback.get("blockReason") if isinstance(feedback, dict) else None
        candidates = data.get("candidates")
        if block:
            raise self.refused(status, f"prompt blocked: blockReason {block}", str(block), key)
        if not isinstance(candidates, list) or not candidates:
            raise MalformedResponse(
                f"{status} answer has no candidates", provider=self.name, status=status
            )
        cand = candidates[0]
        raw = cand.get("finishReason")
        raw = raw if isinstance(raw, str) else None
        content = cand.get("content")
        parts = content.get("parts") if isinstance(content, dict) else None
        text = join_text(parts).strip() if isinstance(parts, list) else ""
        finish = FINISH.get(raw, "other") if raw else "other"
        if finish == "content_filter":
            raise self.refused(status, f"answer blocked: finishReason {raw}", raw, key)
        if not text:
            if raw == "MAX_TOKENS":
                raise MalformedResponse(
                    "MAX_TOKENS with no text: thinking used the whole output budget; "
                    "set thinking_budget 0 (Flash) or raise max_output_tokens",
                    provider=self.name,
                    status=status,
                    code="MAX_TOKENS",
                )
            raise self.no_text(status, raw, key)
        rid = data.get("responseId")
        return self._answer(
            text,
            raw,
            finish,
            gemini_usage(data.get("usageMetadata")),
            data.get("modelVersion"),
            ctx,
            request_id=rid if isinstance(rid, str) else None,
        )

    def _refine(
        self, status: int, info: ErrorInfo, headers: Headers, limits: RateLimitSnapshot
    ) -> type[ProviderError] | None:
        if "API_KEY_INVALID" in info.reasons or info.status in (
            "UNAUTHENTICATED",
            "PERMISSION_DENIED",
        ):
            return AuthRejected
        if status == 429 or info.status == "RESOURCE_EXHAUSTED":
            if any("PerDay" in q for q in info.quota_ids):
                return QuotaExhausted
            if any("PerMinute" in q for q in info.quota_ids):
                return RateLimited
            if _BILLING_STOP.search(info.message):
                return QuotaExhausted
            return RateLimited
        if info.status == "FAILED_PRECONDITION":  # free tier unavailable: enable billing
            return QuotaExhausted
        if info.status == "UNAVAILABLE":
            return Overloaded
        return super()._refine(status, info, headers, limits)

    def _code(self, info: ErrorInfo) -> str | None:
        if info.reasons:
            return info.reasons[0]
        return info.status or super()._code(info)

    def rate_limits(
        self, headers: Headers, body: bytes, *, now: float | None = None
    ) -> RateLimitSnapshot:
        return gemini_snapshot(lower_keys(headers), body, now)
