"""What every simulated protocol does: checks, limits, replies; subclasses fill in the wire."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from evtui.sim.images import ImageInfo, ImageProblem
from evtui.sim.limits import KeyLimits
from evtui.sim.parsing import (
    _MAX_TEMPLATE_BYTES,
    ImageRef,
    Parsed,
    _Fallback,
    _find_data_key,
    _Payloads,
    cut_payloads,
)
from evtui.sim.wire import _JSON, SIM_HEADER, Reply


class Protocol:
    """Shared shape of a simulated provider; subclasses fill in their service's details."""

    name = ""
    style = ""
    max_body = 50 * 1024 * 1024
    allowed_types: frozenset[str] = frozenset()
    requires_key = True
    loose_base64 = False  # accepts URL-safe / unpadded base64 (protobuf JSON does)
    request_id_header: str | None = None
    content_type = _JSON
    has_preflight = False  # header checks before the body is read
    find_payload: Callable[[bytes, int], int] = staticmethod(_find_data_key)
    not_json_message = "The request body is not valid JSON."

    def __init__(self) -> None:
        self.static_headers = {"Content-Type": self.content_type, SIM_HEADER: "true"}
        self._templates: dict[tuple[bytes, Any], Parsed] = {}

    # -- reading
    def credentials(self, request: Any) -> str | None:
        """The API key as this provider reads it (`request` has .headers and .query)."""
        auth = request.headers.get("Authorization")
        if auth and auth[:7].lower() == "bearer ":
            return auth[7:].strip() or None
        return None

    def preflight(self, headers: Mapping[str, str]) -> None:
        """Header checks before the body is read (when `has_preflight`)."""

    def parse(self, body: bytes, path_model: str | None, headers: Mapping[str, str]) -> Parsed:
        """The request as the service reads it; raises the service's 400 as a Reply.

        Frames of one job share everything but the image, so the body with its payloads cut
        out (the skeleton) is looked up first: a request already walked is only re-pointed
        at its new payloads.
        """
        context = self.context(headers, path_model)
        try:
            skeleton, spans = cut_payloads(body, self.find_payload)
        except _Fallback:
            return self._parse_whole(body, context)
        key = (skeleton, context)
        template = self._templates.get(key)
        if template is not None:
            return template.again(body, spans)
        try:
            parsed = self._walk(orjson.loads(skeleton), _Payloads(body, spans), context)
        except (_Fallback, orjson.JSONDecodeError):
            return self._parse_whole(body, context)
        if len(skeleton) <= _MAX_TEMPLATE_BYTES:
            if len(self._templates) >= 1024:
                self._templates.clear()
            self._templates[key] = parsed.template()
        return parsed

    def _parse_whole(self, body: bytes, context: Any) -> Parsed:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise self.bad_request(self.not_json_message) from None
        return self._walk(data, _Payloads(body, None), context)

    def context(self, headers: Mapping[str, str], path_model: str | None) -> Any:
        """What besides the body changes how it reads (a header, the model in the path)."""
        return None

    def _walk(self, d: Any, payloads: _Payloads, context: Any) -> Parsed:
        raise NotImplementedError

    def check_image(self, ref: ImageRef, info: ImageInfo, parsed: Parsed, index: int) -> None:
        """Provider limits on one valid image; raise Reply."""

    def image_tokens(self, parsed: Parsed, ref: ImageRef, info: ImageInfo) -> int:
        raise NotImplementedError

    # -- writing
    def success(
        self, parsed: Parsed, text: str, input_tokens: int, image_tokens: int, rid: str
    ) -> tuple[bytes, int]:
        """The success body and the output tokens it reports."""
        raise NotImplementedError

    def limit_headers(self, out: dict[str, str], lim: KeyLimits, scale: float) -> None:
        """Add this provider's rate-limit headers for `lim` to `out` (none by default)."""

    def error_body(self, reply: Reply, rid: str) -> bytes:
        """The bytes of an error reply (Anthropic adds the request id to its bodies)."""
        return reply.body if isinstance(reply.body, bytes) else orjson.dumps(reply.body)

    def auth_missing(self) -> Reply:
        raise NotImplementedError

    def auth_invalid(self, key: str) -> Reply:
        raise NotImplementedError

    def bad_request(self, message: str, param: str | None = None, code: str | None = None) -> Reply:
        raise NotImplementedError

    def image_error(self, ref: ImageRef, problem: ImageProblem) -> Reply:
        raise NotImplementedError

    def too_large(self, size: int) -> Reply:
        raise NotImplementedError

    def rate_limited(
        self, which: str, lim: KeyLimits | None, wait_s: float, model: str, injected: bool
    ) -> Reply:
        raise NotImplementedError

    def quota_exhausted(self, model: str) -> Reply:
        raise NotImplementedError

    def overloaded(self, retry_after: float | None) -> Reply:
        raise NotImplementedError

    def server_error(self, status: int) -> Reply:
        raise NotImplementedError


def _retry_headers(wait_s: float, ms: bool) -> dict[str, str]:
    if not math.isfinite(wait_s):
        return {}
    out = {"retry-after": str(max(math.ceil(wait_s), 1))}
    if ms:
        out["retry-after-ms"] = str(max(round(wait_s * 1000), 1))
    return out


_EDGE_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


def _edge_502() -> Reply:
    return Reply(502, _EDGE_502, label="server_error", content_type="text/html")
