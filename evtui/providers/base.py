"""What every wire protocol shares: the adapter interface, image encoding, error bodies.

An adapter is pure: it turns a CaptionRequest into bytes on the wire and bytes off
the wire into a Completion or a typed ProviderError. It never does I/O, so the same
code is unit-tested with hand-written bodies and driven by the client in production.
"""

from __future__ import annotations

import base64
import contextlib
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from evtui.providers.errors import (
    AuthRejected,
    BadRequest,
    ContentRefused,
    ImageTooLarge,
    MalformedResponse,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ServerError,
)
from evtui.providers.prices import PriceTable
from evtui.providers.ratelimits import Headers, wait_hint_s
from evtui.providers.secrets import mask_secrets
from evtui.providers.types import (
    CaptionRequest,
    Completion,
    HttpRequest,
    ImagePart,
    RateLimitSnapshot,
    Usage,
)

JSON_CONTENT_TYPE = "application/json"
MESSAGE_MAX = 300
SNIPPET_MAX = 200


# ---------------------------------------------------------------------------------------
# Image encoding, once per image bytes object


class _IdentityCache:
    """Strings derived from a bytes object, keyed by that object's identity.

    The entry keeps the bytes alive, so an id cannot be reused while cached; the bound
    on items and on characters keeps a run of large PNGs from pinning memory.
    """

    def __init__(self, max_items: int, max_chars: int) -> None:
        self.max_items = max_items
        self.max_chars = max_chars
        self._items: dict[tuple[int, str], tuple[bytes, str]] = {}
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, data: bytes, tag: str) -> str | None:
        hit = self._items.get((id(data), tag))
        return hit[1] if hit is not None and hit[0] is data else None

    def put(self, data: bytes, tag: str, text: str) -> str:
        if len(text) > self.max_chars:
            return text
        with self._lock:  # adapters may be shared by event loops in several threads
            items = self._items
            while items and (
                len(items) >= self.max_items or self._chars + len(text) > self.max_chars
            ):
                _, old = items.pop(next(iter(items)))
                self._chars -= len(old)
            old_entry = items.get((id(data), tag))
            if old_entry is not None:
                self._chars -= len(old_entry[1])
            items[(id(data), tag)] = (data, text)
            self._chars += len(text)
        return text

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._chars = 0


_IMAGE_TEXT = _IdentityCache(max_items=128, max_chars=64 << 20)


def image_base64(image: ImagePart) -> str:
    """Bare base64 (Anthropic, Gemini), computed once per bytes object across adapters."""
    if image.b64 is not None:
        return image.b64
    data = image.data
    hit = _IMAGE_TEXT.get(data, "")
    if hit is not None:
        return hit
    return _IMAGE_TEXT.put(data, "", base64.b64encode(data).decode("ascii"))


def image_data_url(image: ImagePart) -> str:
    """`data:<type>;base64,<...>` (OpenAI and compatible servers), cached like the base64."""
    if image.b64 is not None:
        # One copy; caching it would only churn the LRU when every frame is new.
        return f"data:{image.media_type};base64,{image.b64}"
    data = image.data
    hit = _IMAGE_TEXT.get(data, image.media_type)
    if hit is not None:
        return hit
    url = f"data:{image.media_type};base64,{image_base64(image)}"
    return _IMAGE_TEXT.put(data, image.media_type, url)


# ---------------------------------------------------------------------------------------
# Messages that are safe to show


def clean_text(text: str, key: str | None, limit: int = MESSAGE_MAX) -> str:
    """One line, secrets masked, bounded: how any provider text enters an exception."""
    masked = mask_secrets(text, (key,) if key else ())
    line = " ".join(masked.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def body_snippet(body: bytes, key: str | None, limit: int = SNIPPET_MAX) -> str:
    """The first bytes of an unreadable body (an HTML error page…), masked before cutting."""
    if not body:
        return "empty body"
    head = body[: 4096 + (len(key) if key else 0)].decode("utf-8", "replace")
    return clean_text(head, key, limit)


def load_json(body: bytes) -> Any:
    """Parsed JSON or None; a one-element array is unwrapped (Gemini sometimes sends one)."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if isinstance(data, list) and len(data) == 1:
        return data[0]
    return data


def as_int(value: Any) -> int:
    """Token counts as ints; absent, null or non-numeric counts as zero."""
    if type(value) is int:
        return value
    if isinstance(value, float) and value == value:
        return int(value)
    return 0


def as_str(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


# ---------------------------------------------------------------------------------------
# Error bodies, read tolerantly


@dataclass(slots=True)
class ErrorInfo:
    """The parts of any provider's error body that classification needs."""

    message: str = ""
    type: str | None = None
    code: str | None = None  # as a string even when the server sent an int
    status: str | None = None  # google.rpc status name (RESOURCE_EXHAUSTED…)
    detail_code: str | None = None  # Anthropic error.details.error_code
    reasons: tuple[str, ...] = ()  # google.rpc.ErrorInfo reasons (API_KEY_INVALID)
    quota_ids: tuple[str, ...] = ()  # google.rpc.QuotaFailure violations
    embedded_status: int | None = None  # status a gateway put in the body
    request_id: str | None = None
    is_json: bool = False


def _status_int(value: Any) -> int | None:
    if type(value) is int and 100 <= value <= 599:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) == 3:
        return int(value)
    return None


def parse_error_body(body: bytes) -> ErrorInfo:
    """OpenAI, Anthropic, Gemini and gateway error shapes (error as object or string…)."""
    data = load_json(body)
    info = ErrorInfo()
    if not isinstance(data, dict):
        return info
    info.is_json = True
    err = data.get("error")
    if isinstance(err, dict):
        info.message = as_str(err.get("message")) or ""
        info.type = as_str(err.get("type"))
        code = err.get("code")
        info.code = as_str(code)
        info.embedded_status = _status_int(code)
        info.status = as_str(err.get("status"))
        details = err.get("details")
        if isinstance(details, dict):
            info.detail_code = as_str(details.get("error_code"))
        elif isinstance(details, list):
            _read_google_details(info, details)
    elif isinstance(err, str):
        info.message = err
    if not info.message:
        for field in ("message", "detail", "msg"):
            value = data.get(field)
            if isinstance(value, str) and value:
                info.message = value
                break
            if isinstance(value, (dict, list)) and value:
                info.message = orjson.dumps(value).decode()
                break
    status_code = _status_int(data.get("status_code"))  # Bifrost
    if status_code is not None:
        info.embedded_status = status_code
    info.request_id = as_str(data.get("request_id"))
    return info


def _read_google_details(info: ErrorInfo, details: list[Any]) -> None:
    reasons: list[str] = []
    quota_ids: list[str] = []
    for d in details:
        if not isinstance(d, dict):
            continue
        reason = d.get("reason")
        if isinstance(reason, str):
            reasons.append(reason)
        violations = d.get("violations")
        if isinstance(violations, list):
            for v in violations:
                if isinstance(v, dict):
                    qid = v.get("quotaId") or v.get("quotaMetric")
                    if isinstance(qid, str):
                        quota_ids.append(qid)
    info.reasons = tuple(reasons)
    info.quota_ids = tuple(quota_ids)


_IMAGE_TOO_LARGE = re.compile(
    r"image_dimensions_too_large|image_too_large|request_too_large|payload_too_large"
    r"|image[^.]{0,60}(?:too large|too big|exceeds?|dimensions)"
    r"|(?:payload|request|entity)[^.]{0,20}too large|payload size exceeds",
    re.IGNORECASE,
)


def looks_like_image_too_large(info: ErrorInfo) -> bool:
    """Size/dimension rejections (413 aside) that a smaller re-encode would fix."""
    for field in (info.detail_code, info.code, info.type):
        if field and _IMAGE_TOO_LARGE.search(field):
            return True
    return bool(info.message) and _IMAGE_TOO_LARGE.search(info.message) is not None


def class_for_status(status: int) -> type[ProviderError]:
    """The reference's status table, before any provider-specific reading of the body."""
    if status in (401, 403):
        return AuthRejected
    if status == 402:
        return QuotaExhausted
    if status == 413:
        return ImageTooLarge
    if status == 429:
        return RateLimited
    if status in (503, 529):
        return Overloaded
    if status in (408, 409) or 500 <= status <= 599:
        return ServerError
    if 400 <= status <= 499 or 300 <= status <= 399:
        return BadRequest
    return MalformedResponse


# ---------------------------------------------------------------------------------------
# The adapter interface


@dataclass(frozen=True, slots=True)
class ResponseContext:
    """What an adapter knows about an answer besides its body, passed as one object."""

    status: int
    key: str | None
    model: str | None  # the model that was asked for
    rate_limits: RateLimitSnapshot
    latency_s: float
    request_id: str | None
    simulated: bool


SIMULATED_HEADER = "x-evtui-simulated"
"""Set by evtui's simulator on every answer."""


class ProviderAdapter(ABC):
    """One wire protocol: build requests, read answers, classify failures, read limits."""

    protocol: ClassVar[str]
    default_base_url: ClassVar[str]
    option_names: ClassVar[frozenset[str]] = frozenset()
    request_id_header: ClassVar[str | None] = "x-request-id"

    _CACHE_MAX: ClassVar[int] = 256

    def __init__(
        self,
        name: str | None = None,
        base_url: str | None = None,
        options: Mapping[str, Any] | None = None,
        *,
        prices: PriceTable | None = None,
    ) -> None:
        self.name = name or self.protocol
        self.prices = prices
        self.base_url = (base_url or self.default_base_url).rstrip("/")
        opts = dict(options or {})
        unknown = sorted(set(opts) - self.option_names)
        if unknown:
            allowed = ", ".join(sorted(self.option_names)) or "none"
            raise ValueError(
                f"{self.protocol} adapter: unknown option(s) {', '.join(unknown)} "
                f"(allowed: {allowed})"
            )
        self.options: dict[str, Any] = opts
        self._headers_by_key: dict[str, dict[str, str]] = {}
        self._url_by_model: dict[str, str] = {}
        # Entries hold the request, so an id cannot be reused while it is cached.

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, base_url={self.base_url!r})"

    # -- requests -----------------------------------------------------------------------

    def build(self, req: CaptionRequest, key: str) -> HttpRequest:
        """The request as sent. `headers` is shared per key: treat it as read-only."""
        return HttpRequest("POST", self.url_for(req.model), self.headers_for(key), self.body(req))

    def url_for(self, model: str) -> str:
        url = self._url_by_model.get(model)
        if url is None:
            if len(self._url_by_model) >= self._CACHE_MAX:
                self._url_by_model.clear()
            url = self._url_by_model[model] = self._make_url(model)
        return url

    def headers_for(self, key: str) -> dict[str, str]:
        headers = self._headers_by_key.get(key)
        if headers is None:
            if len(self._headers_by_key) >= self._CACHE_MAX:
                self._headers_by_key.clear()
            headers = self._headers_by_key[key] = self._make_headers(key)
        return headers

    def body(self, req: CaptionRequest) -> bytes:
        """JSON body. Not cached per request: every frame is new, and remembering bodies
        for the rare retry cost more per request (~10 µs of bookkeeping) than rebuilding."""
        return orjson.dumps(self._payload(req))

    @abstractmethod
    def _make_url(self, model: str) -> str: ...

    @abstractmethod
    def _make_headers(self, key: str) -> dict[str, str]: ...

    @abstractmethod
    def _payload(self, req: CaptionRequest) -> dict[str, Any]: ...

    def join(self, path: str) -> str:
        """base + path, without doubling a version segment the base already ends with."""
        base = self.base_url
        first = path.lstrip("/").split("/", 1)[0]
        if first and base.endswith("/" + first):
            path = path.lstrip("/")[len(first) :]
        return base + ("" if not path or path.startswith("/") else "/") + path

    # -- responses ----------------------------------------------------------------------

    def parse_success(
        self,
        status: int,
        headers: Headers,
        body: bytes,
        *,
        key: str | None = None,
        model: str | None = None,
        rate_limits: RateLimitSnapshot | None = None,
        latency_s: float = 0.0,
    ) -> Completion:
        """A 2xx body as a Completion; refusals and unreadable bodies raise typed errors."""
        headers = lower_keys(headers)
        if rate_limits is None:
            rate_limits = self.rate_limits(headers, body)
        request_id = self.request_id(headers)
        data = load_json(body)
        if not isinstance(data, dict):
            raise MalformedResponse(
                f"{status} answer is not a JSON object: {body_snippet(body, key)}",
                provider=self.name,
                status=status,
                rate_limits=rate_limits,
                request_id=request_id,
            )
        ctx = ResponseContext(
            status,
            key,
            model,
            rate_limits,
            latency_s,
            request_id,
            # Outputs must never pass a simulated caption off as a real one.
            headers.get(SIMULATED_HEADER) == "true",
        )
        try:
            return self._completion(data, ctx)
        except ProviderError as e:
            if e.rate_limits is None:
                e.rate_limits = rate_limits
            if e.request_id is None:
                e.request_id = request_id
            raise
        except (AttributeError, TypeError, KeyError, IndexError, ValueError) as e:
            raise MalformedResponse(
                f"{status} answer has an unexpected shape ({type(e).__name__}): "
                f"{body_snippet(body, key)}",
                provider=self.name,
                status=status,
                rate_limits=rate_limits,
                request_id=request_id,
            ) from None

    def _answer(
        self,
        text: str,
        raw: str | None,
        finish: str,
        usage: Usage,
        answered: object,
        ctx: ResponseContext,
        *,
        request_id: str | None = None,
    ) -> Completion:
        """The Completion every protocol builds; `answered` is the model the body names.

        Priced by the model that was asked for (the target), not the dated version that
        answered; a model missing from the table leaves the cost None (config checks it).
        """
        model = ctx.model
        cost = None
        if self.prices is not None and model:
            with contextlib.suppress(KeyError):
                cost = self.prices.cost_usd(model, usage)
        return Completion(
            text=text,
            finish_reason=finish,
            raw_finish_reason=raw,
            usage=usage,
            model=answered if isinstance(answered, str) and answered else (model or ""),
            provider=self.name,
            request_id=request_id or ctx.request_id,
            rate_limits=ctx.rate_limits,
            latency_s=ctx.latency_s,
            simulated=ctx.simulated,
            cost_usd=cost,
        )

    @abstractmethod
    def _completion(self, data: dict[str, Any], ctx: ResponseContext) -> Completion:
        """A parsed 2xx body as a Completion; raise typed errors for refusals and gaps."""

    def request_id(self, headers: Headers) -> str | None:
        name = self.request_id_header
        return headers.get(name) if name else None

    def no_text(self, status: int, finish: str | None, key: str | None) -> MalformedResponse:
        """A 2xx with nothing to caption with (often: the output budget went to reasoning)."""
        why = f"{status} answer has no text (finish reason {finish or 'none'})"
        if finish and finish.lower() in ("length", "max_tokens"):
            why += ": the output budget ran out before any text; raise max_output_tokens"
        return MalformedResponse(clean_text(why, key), provider=self.name, status=status)

    def refused(self, status: int, why: str, code: str | None, key: str | None) -> ContentRefused:
        return ContentRefused(clean_text(why, key), provider=self.name, status=status, code=code)

    # -- errors -------------------------------------------------------------------------

    def classify_error(
        self,
        status: int,
        headers: Headers,
        body: bytes,
        *,
        key: str | None = None,
        rate_limits: RateLimitSnapshot | None = None,
    ) -> ProviderError:
        """A non-2xx answer as the taxonomy class the engine acts on (reference §3, §9)."""
        headers = lower_keys(headers)
        if rate_limits is None:
            rate_limits = self.rate_limits(headers, body)
        info = parse_error_body(body)
        cls = self._refine(status, info, headers, rate_limits) or class_for_status(status)
        note = ""
        if cls.retryable and (headers.get("x-should-retry") or "").strip().lower() == "false":
            cls, note = QuotaExhausted, " (server says x-should-retry: false)"
        if info.message:
            message = clean_text(info.message, key)
        elif info.is_json:
            message = f"error body without a message: {body_snippet(body, key)}"
        else:
            message = f"non-JSON error body: {body_snippet(body, key)}"
        retry_after = wait_hint_s(rate_limits) if cls is RateLimited else rate_limits.retry_after
        return cls(
            message + note,
            provider=self.name,
            status=status,
            code=self._code(info),
            retry_after=retry_after,
            rate_limits=rate_limits,
            request_id=self.request_id(headers) or info.request_id,
        )

    def _refine(
        self, status: int, info: ErrorInfo, headers: Headers, limits: RateLimitSnapshot
    ) -> type[ProviderError] | None:
        """Provider-specific reading of the body; None falls back to the status table."""
        if status in (400, 413, 422) and looks_like_image_too_large(info):
            return ImageTooLarge
        return None

    def _code(self, info: ErrorInfo) -> str | None:
        for c in (info.detail_code, info.code, info.type, info.status):
            if c and not c.isdigit():
                return c
        return None

    @abstractmethod
    def rate_limits(
        self, headers: Headers, body: bytes, *, now: float | None = None
    ) -> RateLimitSnapshot:
        """Rate-limit state from any response, success or not."""


def lower_keys(headers: Mapping[str, str]) -> Headers:
    """Plain dicts (tests, other clients) made case-insensitive by lower-casing once."""
    if isinstance(headers, dict):
        return {k.lower(): v for k, v in headers.items()}
    return headers


def join_text(parts: Iterable[Any], text_key: str = "text") -> str:
    """Join the text of content blocks/parts, skipping thoughts and non-text blocks."""
    out = []
    for p in parts:
        if isinstance(p, dict) and not p.get("thought"):
            t = p.get(text_key)
            if isinstance(t, str) and p.get("type", "text") in ("text", "output_text"):
                out.append(t)
    return "".join(out)
