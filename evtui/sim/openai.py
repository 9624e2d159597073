"""OpenAI Chat Completions, and the OpenAI-compatible servers (vLLM-style errors)."""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar

import orjson

from evtui.providers.secrets import mask_key
from evtui.sim.images import ImageInfo, ImageProblem
from evtui.sim.limits import KeyLimits
from evtui.sim.parsing import ImageRef, Parsed, _find_data_url, _int, _Payloads
from evtui.sim.protocol import Protocol, _edge_502, _retry_headers
from evtui.sim.tokens import compat_image_tokens, fit_caption, openai_image_tokens, output_tokens
from evtui.sim.wire import FINGERPRINT, Reply, go_duration

_OPENAI_REASONING = ("o1", "o3", "o4", "gpt-5")
_EFFORT_TOKENS = {"none": 0, "minimal": 16, "low": 64, "medium": 192, "high": 576, "xhigh": 1024}
_DETAILS = ("low", "high", "auto", "original")


def _openai_default_effort(model: str) -> str | None:
    if not model.startswith(_OPENAI_REASONING):
        return None
    if model.startswith("gpt-5.") and not model.startswith("gpt-5.0"):
        return "none"  # gpt-5.1 and later default to no reasoning
    return "medium"


class OpenAIProtocol(Protocol):
    """POST /v1/chat/completions (reference §1.2, §2, §3, §4)."""

    name = style = "openai"
    max_body = 50 * 1024 * 1024  # 2025 docs (late-2026 docs say 512 MB)
    max_images = 500
    allowed_types = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
    request_id_header = "x-request-id"
    find_payload = staticmethod(_find_data_url)
    not_json_message = (
        "We could not parse the JSON body of your request. (HINT: This likely means you "
        "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
        "but what was sent was not valid JSON.)"
    )

    def __init__(self) -> None:
        super().__init__()
        self.static_headers["openai-version"] = "2020-10-01"

    # -- errors
    def _error(
        self,
        status: int,
        message: str,
        type_: str,
        param: str | None = None,
        code: Any = None,
        headers: dict[str, str] | None = None,
        label: str = "error",
    ) -> Reply:
        body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
        return Reply(status, body, headers, label=label)

    def bad_request(self, message: str, param: str | None = None, code: str | None = None) -> Reply:
        return self._error(400, message, "invalid_request_error", param, code)

    def auth_missing(self) -> Reply:
        return self._error(
            401,
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY). "
            "You can obtain an API key from https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            label="auth",
        )

    def auth_invalid(self, key: str) -> Reply:
        return self._error(
            401,
            f"Incorrect API key provided: {mask_key(key)}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            "invalid_request_error",
            code="invalid_api_key",
            label="auth",
        )

    def image_error(self, ref: ImageRef, problem: ImageProblem) -> Reply:
        if problem.reason == "base64":
            return self.bad_request(
                f"Invalid base64 image data: {problem.detail}.", ref.where, "invalid_image_url"
            )
        if problem.reason == "format":
            return self.bad_request(
                "You uploaded an unsupported image. Please make sure your image has of one the "
                "following formats: ['png', 'jpeg', 'gif', 'webp'].",
                ref.where,
                "invalid_image_format",
            )
        return self.bad_request(
            f"The image data you provided does not represent a valid image: {problem.detail}.",
            ref.where,
            "invalid_image",
        )

    def too_large(self, size: int) -> Reply:
        return self._error(
            413,
            f"Request too large: {size} bytes exceeds the {self.max_body} byte limit.",
            "invalid_request_error",
            code="request_too_large",
            label="too_large",
        )

    def rate_limited(
        self, which: str, lim: KeyLimits | None, wait_s: float, model: str, injected: bool
    ) -> Reply:
        unit = "requests per min (RPM)" if which == "requests" else "tokens per min (TPM)"
        limit = lim.limit_of(which) if lim is not None and which else 0
        if math.isfinite(wait_s):
            msg = (
                f"Rate limit reached for {model} in organization org-evtuisim on {unit}: "
                f"Limit {limit}. Please try again in {go_duration(wait_s)}. "
                "Visit https://platform.openai.com/account/rate-limits to learn more."
            )
        else:
            msg = (
                f"Request too large for {model} in organization org-evtuisim on {unit}: "
                f"Limit {limit}. The input or output tokens must be reduced in order to run "
                "successfully. Visit https://platform.openai.com/account/rate-limits to learn more."
            )
        type_ = "requests" if which == "requests" else "tokens"
        return self._error(
            429,
            msg,
            type_,
            code="rate_limit_exceeded",
            headers=_retry_headers(wait_s, ms=True),
            label="rate_limited",
        )

    def quota_exhausted(self, model: str) -> Reply:
        return self._error(
            429,
            "You exceeded your current quota, please check your plan and billing details. For "
            "more information on this error, read the docs: "
            "https://platform.openai.com/docs/guides/error-codes/api-errors.",
            "insufficient_quota",
            code="insufficient_quota",
            label="quota_exhausted",
        )

    def overloaded(self, retry_after: float | None) -> Reply:
        return self._error(
            503,
            "The server is overloaded or not ready yet.",
            "service_unavailable_error",
            code="server_is_overloaded",
            headers=_retry_headers(retry_after, ms=True) if retry_after else None,
            label="overloaded",
        )

    def server_error(self, status: int) -> Reply:
        if status == 502:
            return _edge_502()
        if status == 503:
            return self.overloaded(None)
        return self._error(
            500,
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            label="server_error",
        )

    # -- headers
    def limit_headers(self, out: dict[str, str], lim: KeyLimits, scale: float) -> None:
        b = lim.requests
        if b is not None:
            out["x-ratelimit-limit-requests"] = b.limit_text
            out["x-ratelimit-remaining-requests"] = str(int(b.level) if b.level > 0 else 0)
            out["x-ratelimit-reset-requests"] = go_duration(b.full_in_s() / scale)
        b = lim.tokens
        if b is not None:
            out["x-ratelimit-limit-tokens"] = b.limit_text
            out["x-ratelimit-remaining-tokens"] = str(int(b.level) if b.level > 0 else 0)
            out["x-ratelimit-reset-tokens"] = go_duration(b.full_in_s() / scale)

    # -- reading
    def _walk(self, d: Any, payloads: _Payloads, context: Any = None) -> Parsed:
        if not isinstance(d, dict):
            raise self.bad_request(self.not_json_message)
        model = d.get("model")
        if not isinstance(model, str) or not model:
            raise self.bad_request("you must provide a model parameter")
        if d.get("stream"):
            raise self.bad_request(
                "The evtui simulator does not stream: send stream=false.", "stream", "unsupported"
            )
        messages = d.get("messages")
        if messages is None:
            raise self.bad_request(
                "Missing required parameter: 'messages'.", "messages", "missing_required_parameter"
            )
        if not isinstance(messages, list) or not messages:
            raise self.bad_request(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                "messages",
                "empty_array",
            )
        p = Parsed(model)
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or "role" not in msg:
                raise self.bad_request(
                    f"Missing required parameter: 'messages[{i}].role'.",
                    f"messages[{i}].role",
                    "missing_required_parameter",
                )
            p.messages += 1
            content = msg.get("content")
            if isinstance(content, str):
                p.text_chars += len(content)
            elif isinstance(content, list):
                for j, part in enumerate(content):
                    self._part(p, part, f"messages[{i}].content[{j}]", payloads)
            elif content is not None:
                raise self.bad_request(
                    f"Invalid type for 'messages[{i}].content': expected one of a string or "
                    "array of objects.",
                    f"messages[{i}].content",
                    "invalid_type",
                )
        payloads.done()
        self._options(d, p)
        return p

    def _part(self, p: Parsed, part: Any, where: str, payloads: _Payloads) -> None:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise self.bad_request(
                    f"Missing required parameter: '{where}.text'.",
                    f"{where}.text",
                    "missing_required_parameter",
                )
            p.text_chars += len(text)
        elif kind == "image_url":
            iu = part.get("image_url")
            url = iu.get("url") if isinstance(iu, dict) else iu if isinstance(iu, str) else None
            if not isinstance(url, str):
                raise self.bad_request(
                    f"Missing required parameter: '{where}.image_url.url'.",
                    f"{where}.image_url.url",
                    "missing_required_parameter",
                )
            detail = iu.get("detail") if isinstance(iu, dict) else None
            if detail is not None and detail not in self._details(p.model):
                allowed = ", ".join(f"'{x}'" for x in self._details(p.model))
                raise self.bad_request(
                    f"Invalid value: '{detail}'. Supported values are: {allowed}.",
                    f"{where}.image_url.detail",
                    "invalid_value",
                )
            if not url.startswith("data:") or ";base64," not in url:
                raise self.bad_request(
                    "The evtui simulator accepts only base64 data URLs "
                    "(data:image/...;base64,...), not remote image URLs.",
                    f"{where}.image_url.url",
                    "invalid_image_url",
                )
            head, _, data = url.partition(";base64,")
            p.images.append(
                ImageRef(payloads.take(data), head[5:], f"{where}.image_url", detail or "auto")
            )
        else:
            raise self.bad_request(
                f"Invalid value: '{kind}'. Supported values are: 'text', 'image_url', "
                "'input_audio', 'refusal', 'audio', and 'file'.",
                f"{where}.type",
                "invalid_value",
            )

    def _details(self, model: str) -> tuple[str, ...]:
        return _DETAILS if model.startswith(("gpt-5.4", "gpt-5.5", "gpt-5.6")) else _DETAILS[:3]

    def _options(self, d: dict[str, Any], p: Parsed) -> None:
        reasoning = p.model.startswith(_OPENAI_REASONING)
        effort = None
        if reasoning:
            effort = d.get("reasoning_effort") or _openai_default_effort(p.model)
        if effort is not None and effort not in _EFFORT_TOKENS:
            raise self.bad_request(
                f"Invalid value: '{effort}'.", "reasoning_effort", "invalid_value"
            )
        if reasoning and d.get("max_tokens") is not None:
            raise self.bad_request(
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
                "unsupported_parameter",
            )
        temp = d.get("temperature")
        if temp is not None and (isinstance(temp, bool) or not isinstance(temp, int | float)):
            raise self.bad_request(
                "Invalid type for 'temperature': expected a decimal.", "temperature", "invalid_type"
            )
        if reasoning and effort != "none" and temp is not None and temp != 1:
            raise self.bad_request(
                f"Unsupported value: 'temperature' does not support {temp} with this model. "
                "Only the default (1) value is supported.",
                "temperature",
                "unsupported_value",
            )
        if temp is not None and not 0 <= temp <= 2:
            raise self.bad_request(
                f"Invalid 'temperature': decimal above maximum value. Expected a value <= 2, "
                f"but got {temp} instead.",
                "temperature",
                "decimal_above_max_value",
            )
        cap = d.get("max_completion_tokens")
        name = "max_completion_tokens"
        if cap is None:
            cap, name = d.get("max_tokens"), "max_tokens"
        if cap is not None and (_int(cap) is None or cap < 1):
            raise self.bad_request(
                f"Invalid '{name}': integer below minimum value. Expected a value >= 1.",
                name,
                "integer_below_min_value",
            )
        p.max_output = cap
        p.charge_output = cap or 0
        p.options["reasoning"] = _EFFORT_TOKENS[effort] if effort else 0
        if len(p.images) > self.max_images:
            raise self.bad_request(
                f"Too many images in request. Max is {self.max_images}.",
                "messages",
                "invalid_value",
            )

    def check_image(self, ref: ImageRef, info: ImageInfo, parsed: Parsed, index: int) -> None:
        declared = "image/jpeg" if ref.declared == "image/jpg" else ref.declared
        if declared not in self.allowed_types or info.media_type not in self.allowed_types:
            raise self.image_error(ref, ImageProblem("format", "unsupported format"))
        if declared != info.media_type:
            raise self.bad_request(
                f"The image data is {info.media_type} but the data URL says {ref.declared}.",
                ref.where,
                "invalid_image",
            )

    def image_tokens(self, parsed: Parsed, ref: ImageRef, info: ImageInfo) -> int:
        return openai_image_tokens(parsed.model, info.width, info.height, ref.detail or "auto")

    # -- writing
    def _answer(self, parsed: Parsed, text: str) -> tuple[str, str, int, int]:
        """(text, finish_reason, completion_tokens, reasoning_tokens)."""
        reasoning = parsed.options.get("reasoning", 0)
        cap = parsed.max_output
        if cap is not None and reasoning >= cap:
            return "", "length", cap, cap
        text, cut = fit_caption(text, None if cap is None else cap - reasoning)
        return text, "length" if cut else "stop", output_tokens(text) + reasoning, reasoning

    def success(
        self, parsed: Parsed, text: str, input_tokens: int, image_tokens: int, rid: str
    ) -> tuple[bytes, int]:
        text, finish, completion, reasoning = self._answer(parsed, text)
        body = {
            "id": f"chatcmpl-{rid[4:]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": parsed.model,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": text,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": finish,
                }
            ],
            "usage": {
                "prompt_tokens": input_tokens,
                "completion_tokens": completion,
                "total_tokens": input_tokens + completion,
                "prompt_tokens_details": {
                    "cached_tokens": 0,
                    "audio_tokens": 0,
                    "image_tokens": image_tokens,
                    "text_tokens": input_tokens - image_tokens,
                },
                "completion_tokens_details": {
                    "reasoning_tokens": reasoning,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": FINGERPRINT,
        }
        return orjson.dumps(body), completion


# ----------------------------------------------------------------- compat (vLLM)


class CompatProtocol(OpenAIProtocol):
    """An OpenAI-compatible server in vLLM's manner: same requests, vLLM's error shapes.

    vLLM: a 401 body is the bare string `{"error": "Unauthorized"}`; other errors carry the
    HTTP status as an int `code` and a class-like `type`; no rate-limit headers; `detail`
    is ignored; images are Qwen-VL style 28-px patches. Keys are optional unless listed.
    """

    name = style = "compat"
    requires_key = False
    request_id_header = None
    _TYPES: ClassVar[dict[int, str]] = {
        400: "BadRequestError",
        404: "NotFoundError",
        413: "BadRequestError",
        429: "RateLimitError",
        500: "InternalServerError",
        503: "ServiceUnavailableError",
    }

    def __init__(self) -> None:
        Protocol.__init__(self)

    def _error(
        self,
        status: int,
        message: str,
        type_: str,
        param: str | None = None,
        code: Any = None,
        headers: dict[str, str] | None = None,
        label: str = "error",
    ) -> Reply:
        body = {
            "error": {
                "message": message,
                "type": self._TYPES.get(status, "BadRequestError"),
                "param": param,
                "code": status,
            }
        }
        return Reply(status, orjson.dumps(body), headers, label=label)

    def auth_missing(self) -> Reply:
        return Reply(401, b'{"error":"Unauthorized"}', label="auth")

    def auth_invalid(self, key: str) -> Reply:
        return self.auth_missing()

    def quota_exhausted(self, model: str) -> Reply:
        # vLLM has no quotas; a LiteLLM proxy in front of it answers budget_exceeded.
        body = {
            "error": {
                "message": "Budget has been exceeded! Current cost: 10.0012, Max budget: 10.0",
                "type": "budget_exceeded",
                "param": None,
                "code": "429",
            }
        }
        return Reply(429, orjson.dumps(body), label="quota_exhausted")

    def overloaded(self, retry_after: float | None) -> Reply:
        return self._error(
            503,
            "Request queue full.",
            "",
            headers=_retry_headers(retry_after, ms=False) if retry_after else None,
            label="overloaded",
        )

    def rate_limited(
        self, which: str, lim: KeyLimits | None, wait_s: float, model: str, injected: bool
    ) -> Reply:
        return self._error(
            429,
            f"Rate limit exceeded for {model}: too many {which or 'requests'} per minute.",
            "",
            headers=_retry_headers(wait_s, ms=False),
            label="rate_limited",
        )

    def server_error(self, status: int) -> Reply:
        if status == 502:
            return _edge_502()
        if status == 503:
            return self.overloaded(None)
        return self._error(500, "Internal Server Error", "", label="server_error")

    def limit_headers(self, out: dict[str, str], lim: KeyLimits, scale: float) -> None:
        """vLLM sends no rate-limit headers."""

    def _details(self, model: str) -> tuple[str, ...]:
        return _DETAILS

    def _options(self, d: dict[str, Any], p: Parsed) -> None:
        cap = d.get("max_completion_tokens")
        if cap is None:
            cap = d.get("max_tokens")
        if cap is not None and (_int(cap) is None or cap < 1):
            raise self.bad_request(f"max_tokens must be at least 1, got {cap}.", "max_tokens")
        p.max_output = cap
        p.charge_output = cap or 0
        p.options["reasoning"] = 0

    def image_tokens(self, parsed: Parsed, ref: ImageRef, info: ImageInfo) -> int:
        return compat_image_tokens(info.width, info.height)

    def success(
        self, parsed: Parsed, text: str, input_tokens: int, image_tokens: int, rid: str
    ) -> tuple[bytes, int]:
        text, cut = fit_caption(text, parsed.max_output)
        completion = output_tokens(text)
        body = {
            "id": f"chatcmpl-{rid[4:]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": parsed.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "tool_calls": []},
                    "logprobs": None,
                    "finish_reason": "length" if cut else "stop",
                    "stop_reason": None,
                }
            ],
            "usage": {
                "prompt_tokens": input_tokens,
                "total_tokens": input_tokens + completion,
                "completion_tokens": completion,
                "prompt_tokens_details": {"cached_tokens": 0},
            },
            "system_fingerprint": FINGERPRINT,
        }
        return orjson.dumps(body), completion
