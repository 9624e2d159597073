"""Anthropic Messages: versions, x-api-key, content blocks, 529 overload, spend caps."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from evtui.sim.images import ImageInfo, ImageProblem
from evtui.sim.limits import KeyLimits
from evtui.sim.parsing import ImageRef, Parsed, _int, _Payloads
from evtui.sim.protocol import Protocol, _edge_502, _retry_headers
from evtui.sim.tokens import anthropic_image_tokens, fit_caption, output_tokens
from evtui.sim.wire import Reply, rfc3339

ANTHROPIC_VERSIONS = ("2023-06-01", "2026-10-21")


class AnthropicProtocol(Protocol):
    """POST /v1/messages (reference §1.2, §1.3, §2, §3, §4)."""

    name = style = "anthropic"
    max_body = 32 * 1024 * 1024
    max_image_b64 = 10 * 1024 * 1024
    max_side = 8000
    many_images, many_side = 20, 2000
    max_images = 100
    allowed_types = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})
    request_id_header = "request-id"
    has_preflight = True
    not_json_message = "There was an error parsing the body of your request."

    def __init__(self) -> None:
        super().__init__()
        self.static_headers["anthropic-organization-id"] = "00000000-0000-4000-8000-evtuisim0000"

    def credentials(self, request: Any) -> str | None:
        key = request.headers.get("x-api-key")
        if key:
            return key
        return super().credentials(request)

    def preflight(self, headers: Mapping[str, str]) -> None:
        version = headers.get("anthropic-version")
        if not version:
            raise self.bad_request("anthropic-version: header is required")
        if version not in ANTHROPIC_VERSIONS:
            raise self.bad_request(f'anthropic-version: "{version}" is not a valid version')

    def _error(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        label: str = "error",
    ) -> Reply:
        err: dict[str, Any] = {"type": type_, "message": message}
        if details is not None:
            err["details"] = details
        return Reply(status, {"type": "error", "error": err}, headers, label=label)

    def error_body(self, reply: Reply, rid: str) -> bytes:
        body = reply.body
        if isinstance(body, dict):
            body["request_id"] = rid
            return orjson.dumps(body)
        return body

    def bad_request(self, message: str, param: str | None = None, code: str | None = None) -> Reply:
        return self._error(400, "invalid_request_error", message)

    def auth_missing(self) -> Reply:
        return self._error(
            401, "authentication_error", "x-api-key header is required", label="auth"
        )

    def auth_invalid(self, key: str) -> Reply:
        return self._error(401, "authentication_error", "invalid x-api-key", label="auth")

    def image_error(self, ref: ImageRef, problem: ImageProblem) -> Reply:
        if problem.reason == "base64":
            return self.bad_request(f"{ref.where}.data: invalid base64 data ({problem.detail})")
        if problem.reason == "format":
            return self.bad_request(
                f"{ref.where}.data: Image does not match the provided media type {ref.declared}"
            )
        return self.bad_request(f"{ref.where}.data: Could not process image ({problem.detail})")

    def too_large(self, size: int) -> Reply:
        return self._error(
            413,
            "request_too_large",
            "Request exceeds the maximum allowed number of bytes. The maximum request size is "
            "32 MB for the Messages API.",
            label="too_large",
        )

    def rate_limited(
        self, which: str, lim: KeyLimits | None, wait_s: float, model: str, injected: bool
    ) -> Reply:
        unit = {"requests": "requests", "input_tokens": "input tokens"}.get(which, "tokens")
        if which == "output_tokens":
            unit = "output tokens"
        limit = lim.limit_of(which) if lim is not None and which else 0
        msg = (
            f"This request would exceed the rate limit for your organization (evtui-sim) of "
            f"{limit} {unit} per minute. For details, refer to: "
            "https://docs.claude.com/en/api/rate-limits. You can see the response headers for "
            "current usage. Please reduce the prompt length or the maximum tokens requested, "
            "or try again later."
        )
        return self._error(
            429,
            "rate_limit_error",
            msg,
            headers=_retry_headers(wait_s, ms=False),
            label="rate_limited",
        )

    def quota_exhausted(self, model: str) -> Reply:
        return self._error(
            429,
            "rate_limit_error",
            "You have reached your specified API usage limits. You will regain access on the "
            "1st of next month at 00:00 UTC.",
            details={"error_code": "enforced_spend_limit_reached"},
            label="quota_exhausted",
        )

    def overloaded(self, retry_after: float | None) -> Reply:
        return self._error(
            529,
            "overloaded_error",
            "Overloaded",
            headers=_retry_headers(retry_after, ms=False) if retry_after else None,
            label="overloaded",
        )

    def server_error(self, status: int) -> Reply:
        if status == 502:
            return _edge_502()
        if status == 503:
            return self._error(503, "api_error", "Service unavailable", label="server_error")
        return self._error(500, "api_error", "Internal server error", label="server_error")

    def limit_headers(self, out: dict[str, str], lim: KeyLimits, scale: float) -> None:
        wall = time.time()
        pre = "anthropic-ratelimit-"
        if lim.requests is not None:
            b = lim.requests
            out[pre + "requests-limit"] = b.limit_text
            out[pre + "requests-remaining"] = str(max(int(b.level), 0))
            out[pre + "requests-reset"] = rfc3339(wall + b.full_in_s() / scale)
        tightest = None
        for b, name in ((lim.tokens, ""), (lim.input, "input-"), (lim.output, "output-")):
            if b is None:
                continue
            if name:
                self._token_headers(out, f"{pre}{name}tokens", b, scale, wall)
            if tightest is None or b.level < tightest.level:
                tightest = b
        if tightest is not None:
            self._token_headers(out, pre + "tokens", tightest, scale, wall)

    @staticmethod
    def _token_headers(out: dict[str, str], pre: str, b: Any, scale: float, wall: float) -> None:
        out[pre + "-limit"] = b.limit_text
        out[pre + "-remaining"] = str(max(int(b.level / 1000 + 0.5) * 1000, 0))
        out[pre + "-reset"] = rfc3339(wall + b.full_in_s() / scale)

    # -- reading
    def context(self, headers: Mapping[str, str], path_model: str | None) -> Any:
        return headers.get("anthropic-version", "")

    def _walk(self, d: Any, payloads: _Payloads, version: str) -> Parsed:
        if not isinstance(d, dict):
            raise self.bad_request("Input should be a valid dictionary or object")
        for field in ("model", "max_tokens", "messages"):
            if field not in d:
                raise self.bad_request(f"{field}: Field required")
        model, cap, messages = d["model"], d["max_tokens"], d["messages"]
        if not isinstance(model, str) or not model:
            raise self.bad_request("model: Input should be a valid string")
        if _int(cap) is None:
            raise self.bad_request("max_tokens: Input should be a valid integer")
        if cap < 1:
            raise self.bad_request("max_tokens: Input should be greater than or equal to 1")
        if d.get("stream"):
            raise self.bad_request("stream: the evtui simulator does not stream")
        if not isinstance(messages, list) or not messages:
            raise self.bad_request("messages: at least one message is required")
        p = Parsed(model)
        p.max_output = p.charge_output = cap
        system = d.get("system")
        if isinstance(system, str):
            p.text_chars += len(system)
        elif isinstance(system, list):
            p.text_chars += sum(len(b.get("text", "")) for b in system if isinstance(b, dict))
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
                raise self.bad_request(f"messages.{i}.role: Input should be 'user' or 'assistant'")
            if i == 0 and msg["role"] != "user":
                raise self.bad_request('messages: first message must use the "user" role')
            p.messages += 1
            content = msg.get("content")
            if isinstance(content, str):
                p.text_chars += len(content)
                continue
            if not isinstance(content, list):
                raise self.bad_request(f"messages.{i}.content: Field required")
            for j, block in enumerate(content):
                self._block(p, block, f"messages.{i}.content.{j}", payloads)
        payloads.done()
        self._sampling(d, p, version)
        if len(p.images) > self.max_images:
            raise self.bad_request(
                f"messages: Too many images in request ({len(p.images)} > {self.max_images})"
            )
        return p

    def _block(self, p: Parsed, block: Any, where: str, payloads: _Payloads) -> None:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str):
                raise self.bad_request(f"{where}.text.text: Field required")
            p.text_chars += len(text)
            return
        if kind != "image":
            raise self.bad_request(
                f"{where}: Input tag '{kind}' found using 'type' does not match any of the "
                "expected tags: 'text', 'image', 'document', 'tool_use', 'tool_result'"
            )
        source = block.get("source")
        if not isinstance(source, dict):
            raise self.bad_request(f"{where}.image.source: Field required")
        if source.get("type") != "base64":
            raise self.bad_request(
                f"{where}.image.source: the evtui simulator accepts only base64 image sources"
            )
        media_type, data = source.get("media_type"), source.get("data")
        if media_type not in self.allowed_types:
            raise self.bad_request(
                f"{where}.image.source.base64.media_type: Input should be 'image/jpeg', "
                "'image/png', 'image/gif' or 'image/webp'"
            )
        if not isinstance(data, str):
            raise self.bad_request(f"{where}.image.source.base64.data: Field required")
        p.images.append(ImageRef(payloads.take(data), media_type, f"{where}.image.source.base64"))

    def _sampling(self, d: dict[str, Any], p: Parsed, version: str) -> None:
        set_ = [k for k in ("temperature", "top_p", "top_k") if d.get(k) is not None]
        if set_ and version >= "2026-10-21":
            raise self.bad_request(
                f"{set_[0]}: sampling parameters are not supported with anthropic-version "
                f"{version}; use 2023-06-01 to set them"
            )
        temp = d.get("temperature")
        if temp is not None:
            if isinstance(temp, bool) or not isinstance(temp, int | float) or not 0 <= temp <= 1:
                raise self.bad_request("temperature: Input should be less than or equal to 1")
            if p.model.startswith("claude-sonnet-5") and temp != 1:
                raise self.bad_request(
                    f"temperature: {p.model} does not support non-default sampling parameters"
                )

    def check_image(self, ref: ImageRef, info: ImageInfo, parsed: Parsed, index: int) -> None:
        if info.media_type != ref.declared:
            raise self.image_error(ref, ImageProblem("format", "media type mismatch"))
        if info.b64len > self.max_image_b64:
            raise self.bad_request(
                f"{ref.where}: image exceeds 10 MB maximum: {info.b64len} bytes > "
                f"{self.max_image_b64} bytes"
            )
        side = self.many_side if len(parsed.images) > self.many_images else self.max_side
        if max(info.width, info.height) > side:
            many = " for many-image requests" if side == self.many_side else ""
            raise self.bad_request(
                f"{ref.where}.data: At least one of the image dimensions exceed max allowed "
                f"size{many}: {side} pixels"
            )

    def image_tokens(self, parsed: Parsed, ref: ImageRef, info: ImageInfo) -> int:
        return anthropic_image_tokens(parsed.model, info.width, info.height)

    # -- writing
    def success(
        self, parsed: Parsed, text: str, input_tokens: int, image_tokens: int, rid: str
    ) -> tuple[bytes, int]:
        text, cut = fit_caption(text, parsed.max_output)
        out = output_tokens(text)
        body = {
            "id": f"msg_evtuisim_{rid[4:]}",
            "type": "message",
            "role": "assistant",
            "model": parsed.model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "max_tokens" if cut else "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
                "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
                "output_tokens": out,
                "service_tier": "standard",
            },
        }
        return orjson.dumps(body), out
