"""OpenAI Chat Completions: POST /v1/chat/completions, Bearer key, image as a data URL."""

from __future__ import annotations

from typing import Any

from evtui.providers.base import (
    JSON_CONTENT_TYPE,
    ErrorInfo,
    ProviderAdapter,
    ResponseContext,
    as_int,
    image_data_url,
    join_text,
    lower_keys,
)
from evtui.providers.errors import (
    MalformedResponse,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
)
from evtui.providers.ratelimits import Headers, openai_snapshot
from evtui.providers.types import CaptionRequest, Completion, RateLimitSnapshot, Usage

# 429s (or 403s) that no amount of waiting fixes: the money ran out.
QUOTA_CODES = frozenset(
    {
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
        "billing_hard_limit_reached",
        "billing_not_active",
    }
)
OVERLOAD_CODES = frozenset(
    {"server_is_overloaded", "service_unavailable_error", "engine_overloaded"}
)

FINISH = {"stop": "stop", "length": "length", "content_filter": "content_filter"}
EMPTY_USAGE = Usage()


def openai_usage(u: Any) -> Usage:
    """`prompt_tokens` includes cached (and cache-write) tokens; `input_tokens` must not."""
    if not isinstance(u, dict):
        return EMPTY_USAGE
    prompt = as_int(u.get("prompt_tokens"))
    completion = as_int(u.get("completion_tokens"))
    pd = u.get("prompt_tokens_details")
    cd = u.get("completion_tokens_details")
    cached = write = 0
    image: int | None = None
    if isinstance(pd, dict):
        cached = as_int(pd.get("cached_tokens"))
        write = as_int(pd.get("cache_write_tokens"))
        if type(pd.get("image_tokens")) is int:
            image = pd["image_tokens"]
    reasoning = as_int(cd.get("reasoning_tokens")) if isinstance(cd, dict) else 0
    return Usage(
        input_tokens=max(prompt - cached - write, 0),
        output_tokens=completion,
        cached_input_tokens=cached,
        cache_write_tokens=write,
        image_tokens=image,
        reasoning_tokens=reasoning,
    )


class OpenAIAdapter(ProviderAdapter):
    """api.openai.com. Options: organization, project, detail (default image detail)."""

    protocol = "openai"
    default_base_url = "https://api.openai.com"
    option_names = frozenset({"organization", "project", "detail"})
    path = "/v1/chat/completions"
    max_tokens_field = "max_completion_tokens"

    def _make_url(self, model: str) -> str:
        return self.join(self.path)

    def _make_headers(self, key: str) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key}", "Content-Type": JSON_CONTENT_TYPE}
        if self.options.get("organization"):
            headers["OpenAI-Organization"] = str(self.options["organization"])
        if self.options.get("project"):
            headers["OpenAI-Project"] = str(self.options["project"])
        return headers

    def _payload(self, req: CaptionRequest) -> dict[str, Any]:
        image_url: dict[str, Any] = {"url": image_data_url(req.image)}
        detail = req.detail or self.options.get("detail")
        if detail:
            image_url["detail"] = detail
        user = {
            "role": "user",
            "content": [
                {"type": "text", "text": req.prompt},
                {"type": "image_url", "image_url": image_url},
            ],
        }
        messages = [{"role": "system", "content": req.system}, user] if req.system else [user]
        payload: dict[str, Any] = {
            "model": req.model,
            "messages": messages,
            self.max_tokens_field: req.max_output_tokens,
        }
        if req.temperature is not None:
            payload["temperature"] = req.temperature
        return payload

    def _completion(self, data: dict[str, Any], ctx: ResponseContext) -> Completion:
        status, key = ctx.status, ctx.key
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise MalformedResponse(
                f"{status} answer has no choices", provider=self.name, status=status
            )
        choice = choices[0]
        message = choice.get("message")
        if not isinstance(message, dict):
            message = {}
        raw = choice.get("finish_reason")
        raw = raw if isinstance(raw, str) else None
        refusal = message.get("refusal")
        if isinstance(refusal, str) and refusal.strip():
            raise self.refused(status, f"model refused: {refusal}", "refusal", key)
        if raw == "content_filter":
            raise self.refused(
                status, "answer withheld by the content filter", "content_filter", key
            )
        content = message.get("content")
        if isinstance(content, str):
            text = content.strip()
        elif isinstance(content, list):
            text = join_text(content).strip()
        else:
            text = ""
        if not text:
            raise self.no_text(status, raw, key)
        return self._answer(
            text,
            raw,
            FINISH.get(raw, "other") if raw else "other",
            openai_usage(data.get("usage")),
            data.get("model"),
            ctx,
        )

    def _refine(
        self, status: int, info: ErrorInfo, headers: Headers, limits: RateLimitSnapshot
    ) -> type[ProviderError] | None:
        if info.code in QUOTA_CODES or info.type in QUOTA_CODES:
            return QuotaExhausted
        if status == 429:
            return RateLimited
        if info.code in OVERLOAD_CODES or info.type in OVERLOAD_CODES:
            return Overloaded
        return super()._refine(status, info, headers, limits)

    def rate_limits(
        self, headers: Headers, body: bytes, *, now: float | None = None
    ) -> RateLimitSnapshot:
        return openai_snapshot(lower_keys(headers), now)
