"""Gemini generateContent: inline_data, RetryInfo and QuotaFailure, thinking budgets."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import orjson

from evtui.sim.images import ImageInfo, ImageProblem
from evtui.sim.limits import KeyLimits
from evtui.sim.parsing import ImageRef, Parsed, _int, _Payloads
from evtui.sim.protocol import Protocol, _edge_502
from evtui.sim.tokens import fit_caption, gemini_image_tokens, output_tokens
from evtui.sim.wire import Reply, proto_duration

_THINKING_TOKENS = 192


class GeminiProtocol(Protocol):
    """POST /v1beta/models/{model}:generateContent (and /v1/...) (reference §1–§4)."""

    name = style = "gemini"
    loose_base64 = True
    max_body = 100 * 1024 * 1024  # inline payload limit since 2026-01-12
    max_images = 3600
    allowed_types = frozenset({"image/png", "image/jpeg", "image/webp", "image/heic", "image/heif"})
    content_type = "application/json; charset=UTF-8"
    not_json_message = "Invalid JSON payload received. Unexpected token."

    def credentials(self, request: Any) -> str | None:
        return request.headers.get("x-goog-api-key") or request.query.get("key") or None

    def _error(
        self,
        code: int,
        status: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        label: str = "error",
    ) -> Reply:
        err: dict[str, Any] = {"code": code, "message": message, "status": status}
        if details:
            err["details"] = details
        return Reply(
            code, orjson.dumps({"error": err}), label=label, content_type=self.content_type
        )

    def bad_request(self, message: str, param: str | None = None, code: str | None = None) -> Reply:
        details = None
        if param:
            details = [
                {
                    "@type": "type.googleapis.com/google.rpc.BadRequest",
                    "fieldViolations": [{"field": param, "description": message}],
                }
            ]
        return self._error(400, "INVALID_ARGUMENT", message, details)

    def auth_missing(self) -> Reply:
        return self._error(
            403,
            "PERMISSION_DENIED",
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
            label="auth",
        )

    def auth_invalid(self, key: str) -> Reply:
        msg = "API key not valid. Please pass a valid API key."
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            },
            {
                "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
                "locale": "en-US",
                "message": msg,
            },
        ]
        return self._error(400, "INVALID_ARGUMENT", msg, details, label="auth")

    def image_error(self, ref: ImageRef, problem: ImageProblem) -> Reply:
        if problem.reason == "base64":
            return self.bad_request(
                f"Invalid value at '{ref.where}.data' (TYPE_BYTES), Base64 decoding failed.",
                f"{ref.where}.data",
            )
        return self._error(
            400,
            "INVALID_ARGUMENT",
            "Unable to process input image. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
        )

    def too_large(self, size: int) -> Reply:
        return self._error(
            400,
            "INVALID_ARGUMENT",
            f"Request payload size exceeds the limit: {self.max_body} bytes.",
            label="too_large",
        )

    def _quota(
        self, model: str, metric: str, quota_id: str, limit: int, wait_s: float | None, label: str
    ) -> Reply:
        msg = (
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, head to: "
            "https://ai.google.dev/gemini-api/docs/rate-limits.\n"
            f"* Quota exceeded for metric: generativelanguage.googleapis.com/{metric}, "
            f"limit: {limit}, model: {model}"
        )
        details: list[dict[str, Any]] = [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
                        "quotaId": quota_id,
                        "quotaDimensions": {"location": "global", "model": model},
                        "quotaValue": str(limit),
                    }
                ],
            },
            {
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [
                    {
                        "description": "Learn more about Gemini API quotas",
                        "url": "https://ai.google.dev/gemini-api/docs/rate-limits",
                    }
                ],
            },
        ]
        if wait_s is not None and math.isfinite(wait_s):
            msg += f"\nPlease retry in {wait_s:.3f}s."
            details.append(
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": proto_duration(wait_s),
                }
            )
        return self._error(429, "RESOURCE_EXHAUSTED", msg, details, label=label)

    def rate_limited(
        self, which: str, lim: KeyLimits | None, wait_s: float, model: str, injected: bool
    ) -> Reply:
        limit = lim.limit_of(which) if lim is not None and which else 0
        if which in ("requests", ""):
            metric, qid = "generate_content_requests", "GenerateRequestsPerMinutePerProjectPerModel"
        else:
            metric = "generate_content_input_token_count"
            qid = "GenerateContentInputTokensPerModelPerMinute"
        return self._quota(model, metric, qid, limit, wait_s, "rate_limited")

    def quota_exhausted(self, model: str) -> Reply:
        return self._quota(
            model,
            "generate_content_requests",
            "GenerateRequestsPerDayPerProjectPerModel",
            1000,
            3600.0,
            "quota_exhausted",
        )

    def overloaded(self, retry_after: float | None) -> Reply:
        return self._error(
            503,
            "UNAVAILABLE",
            "The model is overloaded. Please try again later.",
            label="overloaded",
        )

    def server_error(self, status: int) -> Reply:
        if status == 502:
            return _edge_502()
        if status == 503:
            return self._error(
                503, "UNAVAILABLE", "The service is currently unavailable.", label="server_error"
            )
        return self._error(
            500,
            "INTERNAL",
            "An internal error has occurred. Please retry or report in "
            "https://developers.generativeai.google/guide/troubleshooting",
            label="server_error",
        )

    # -- reading
    def context(self, headers: Mapping[str, str], path_model: str | None) -> Any:
        return path_model or ""

    def _walk(self, d: Any, payloads: _Payloads, model: str) -> Parsed:
        if not isinstance(d, dict):
            raise self.bad_request("Invalid JSON payload received. Expected an object.")
        contents = d.get("contents")
        if not contents:
            raise self.bad_request("* GenerateContentRequest.contents: contents is not specified\n")
        if not isinstance(contents, list):
            contents = [contents]
        p = Parsed(model)
        system = d.get("systemInstruction") or d.get("system_instruction")
        if isinstance(system, dict):
            parts = system.get("parts", [])
            p.text_chars += sum(len(x.get("text", "")) for x in parts if isinstance(x, dict))
        for i, content in enumerate(contents):
            parts = content.get("parts") if isinstance(content, dict) else None
            if not isinstance(parts, list) or not parts:
                raise self.bad_request(
                    f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be "
                    "empty.\n"
                )
            p.messages += 1
            for j, part in enumerate(parts):
                self._part(p, part, f"contents[{i}].parts[{j}]", payloads)
        payloads.done()
        self._config(d, p)
        return p

    def _part(self, p: Parsed, part: Any, where: str, payloads: _Payloads) -> None:
        if not isinstance(part, dict):
            raise self.bad_request(f"Invalid value at '{where}': expected an object.", where)
        if "text" in part:
            text = part["text"]
            if not isinstance(text, str):
                raise self.bad_request(f"Invalid value at '{where}.text' (TYPE_STRING)", where)
            p.text_chars += len(text)
            return
        blob = part.get("inline_data") or part.get("inlineData")
        if not isinstance(blob, dict):
            raise self.bad_request(
                f"* GenerateContentRequest.{where}.data: required oneof field 'data' must have "
                "one initialized field (the evtui simulator takes text and inline_data)\n"
            )
        mime = blob.get("mime_type") or blob.get("mimeType")
        data = blob.get("data")
        if not isinstance(data, str):
            raise self.bad_request(
                f"* GenerateContentRequest.{where}.inline_data.data: data is empty\n"
            )
        if mime not in self.allowed_types:
            raise self.bad_request(f"Unsupported MIME type: {mime}")
        p.images.append(ImageRef(payloads.take(data), mime, f"{where}.inline_data"))

    def _config(self, d: dict[str, Any], p: Parsed) -> None:
        cfg = d.get("generationConfig") or d.get("generation_config") or {}
        if not isinstance(cfg, dict):
            raise self.bad_request("Invalid value at 'generation_config'", "generation_config")
        cap = cfg.get("maxOutputTokens", cfg.get("max_output_tokens"))
        if cap is not None and (_int(cap) is None or cap < 1):
            raise self.bad_request(
                f"Invalid value at 'generation_config.max_output_tokens' ({cap})",
                "generation_config.max_output_tokens",
            )
        p.max_output = cap
        p.charge_output = cap or 0
        thinking = cfg.get("thinkingConfig") or cfg.get("thinking_config") or {}
        budget = thinking.get("thinkingBudget", thinking.get("thinking_budget"))
        m = p.model
        thinks_by_default = m.startswith("gemini-3") or (
            m.startswith("gemini-2.5") and "lite" not in m
        )
        if budget == 0 and "pro" in m and thinks_by_default:
            raise self.bad_request("Budget 0 is invalid. This model only works in thinking mode.")
        if budget is None or budget == -1:
            thoughts = _THINKING_TOKENS if thinks_by_default else 0
        else:
            thoughts = min(_int(budget) or 0, _THINKING_TOKENS)
        p.options["thoughts"] = thoughts
        p.options["resolution"] = cfg.get("mediaResolution") or cfg.get("media_resolution")
        if len(p.images) > self.max_images:
            raise self.bad_request(f"Too many images: {len(p.images)} > {self.max_images}.")

    def check_image(self, ref: ImageRef, info: ImageInfo, parsed: Parsed, index: int) -> None:
        if info.media_type != ref.declared and {info.media_type, ref.declared} != {
            "image/heic",
            "image/heif",
        }:
            raise self.image_error(ref, ImageProblem("format", "media type mismatch"))

    def image_tokens(self, parsed: Parsed, ref: ImageRef, info: ImageInfo) -> int:
        return gemini_image_tokens(
            parsed.model, info.width, info.height, parsed.options.get("resolution")
        )

    # -- writing
    def success(
        self, parsed: Parsed, text: str, input_tokens: int, image_tokens: int, rid: str
    ) -> tuple[bytes, int]:
        thoughts = parsed.options.get("thoughts", 0)
        cap = parsed.max_output
        usage: dict[str, Any] = {"promptTokenCount": input_tokens}
        if cap is not None and thoughts >= cap:
            # Thinking ate the whole budget: MAX_TOKENS with no parts (reference §0.8).
            candidate: dict[str, Any] = {
                "content": {"role": "model"},
                "finishReason": "MAX_TOKENS",
                "index": 0,
            }
            thoughts, out = cap, 0
        else:
            text, cut = fit_caption(text, None if cap is None else cap - thoughts)
            out = output_tokens(text)
            candidate = {
                "content": {"parts": [{"text": text}], "role": "model"},
                "finishReason": "MAX_TOKENS" if cut else "STOP",
                "index": 0,
            }
            usage["candidatesTokenCount"] = out
        usage["totalTokenCount"] = input_tokens + out + thoughts
        if thoughts:
            usage["thoughtsTokenCount"] = thoughts
        details = [{"modality": "TEXT", "tokenCount": input_tokens - image_tokens}]
        if image_tokens:
            details.append({"modality": "IMAGE", "tokenCount": image_tokens})
        usage["promptTokensDetails"] = details
        body = {
            "candidates": [candidate],
            "usageMetadata": usage,
            "modelVersion": parsed.model,
            "responseId": f"evtuisim-{rid[4:]}",
        }
        return orjson.dumps(body), out + thoughts
