"""The four wire protocols as the real services speak them: checks, bodies, errors, headers.

Each protocol object reads a request the way its service does (auth header, version header,
required fields, image checks and limits), and writes that service's success body, error
bodies and rate-limit headers (reference §1–§5). Nothing here imports the evtui adapters:
tests against the simulator stay honest.

Requests are read cheaply: the base64 payloads are cut out of the raw body with two
`bytes.find` calls each, so orjson only parses the small remainder (the skeleton), and a
skeleton already seen — every frame of a job shares one — is not walked again. Any doubt
(escapes, a marker inside a prompt) falls back to parsing the whole body.

Every answer says it is simulated: the header `x-evtui-simulated: true`, plus a body
marker a real client tolerates — OpenAI and compat `system_fingerprint: "fp_evtui_sim"`,
Anthropic ids `msg_evtuisim_…`, Gemini `responseId: "evtuisim-…"`. Model names are
echoed unchanged so cost tables keep working.
"""

from __future__ import annotations

import binascii
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import orjson

from evtui.providers.secrets import mask_key
from evtui.sim.limits import KeyLimits

SIM_HEADER = "x-evtui-simulated"
FINGERPRINT = "fp_evtui_sim"
_JSON = "application/json"


# --------------------------------------------------------------------------- replies


class Reply(Exception):
    """A finished non-success answer: status, body, extra headers, and a label for stats."""

    def __init__(
        self,
        status: int,
        body: bytes | dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        label: str = "error",
        content_type: str = _JSON,
    ) -> None:
        super().__init__(status)
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.label = label
        self.content_type = content_type


# --------------------------------------------------------------------------- durations


_GO: dict[int, str] = {}


def go_duration(seconds: float) -> str:
    """Seconds as Go's time.Duration prints them, to the millisecond: '12ms', '6m0s', '1.5s'."""
    ms = round(seconds * 1000)
    text = _GO.get(ms)
    if text is None:
        if len(_GO) > 4096:
            _GO.clear()
        text = _GO[ms] = _go_ms(ms)
    return text


def _go_ms(ms: int) -> str:
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s = f"{rem // 1000}" if rem % 1000 == 0 else f"{rem / 1000:.3f}".rstrip("0")
    if h:
        return f"{h}h{m}m{s}s"
    if m:
        return f"{m}m{s}s"
    return f"{s}s"


def proto_duration(seconds: float) -> str:
    """A protobuf Duration in JSON: '33s', '0.5s'."""
    ms = max(round(seconds * 1000), 0)
    return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms / 1000:.3f}".rstrip("0") + "s"


_RFC3339: dict[int, str] = {}


def rfc3339(epoch_s: float) -> str:
    """UTC time to the second, as Anthropic's reset headers carry it (cached per second)."""
    sec = math.ceil(epoch_s)
    text = _RFC3339.get(sec)
    if text is None:
        if len(_RFC3339) > 512:
            _RFC3339.clear()
        text = _RFC3339[sec] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(sec))
    return text


# --------------------------------------------------------------------------- images


_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_HEAD_CHARS = 8192  # base64 characters decoded to find the format and size
_HEIF_BRANDS = {b"heic": "image/heic", b"heix": "image/heic", b"heim": "image/heic"}
_HEIF_BRANDS |= {b"heis": "image/heic", b"hevc": "image/heic", b"hevx": "image/heic"}
_HEIF_BRANDS |= {b"mif1": "image/heif", b"msf1": "image/heif"}


class ImageProblem(Exception):
    """Why an image was refused: reason is 'base64', 'format' or 'corrupt'."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ImageInfo:
    """What the simulator learnt about one base64 payload; cached by payload."""

    __slots__ = ("b64len", "captions", "desc", "height", "loose", "media_type", "nbytes", "width")

    def __init__(self, media_type: str, width: int, height: int, nbytes: int, b64len: int):
        self.media_type = media_type
        self.width = width
        self.height = height
        self.nbytes = nbytes
        self.b64len = b64len
        self.desc: object = None
        self.captions: dict[str, str] = {}
        self.loose = False  # URL-safe alphabet or no padding: valid for Gemini only


def _jpeg_size(b: bytes) -> tuple[int, int] | None:
    i, n = 2, len(b)
    while i + 9 <= n:
        if b[i] != 0xFF:
            return None
        marker = b[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:
            i += 2
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return (b[i + 7] << 8) | b[i + 8], (b[i + 5] << 8) | b[i + 6]
        if marker in (0xD9, 0xDA):
            return None
        i += 2 + ((b[i + 2] << 8) | b[i + 3])
    return None


def _sniff(head: bytes) -> tuple[str | None, tuple[int, int] | None]:
    """Media type from the magic bytes, and the pixel size when the head holds it."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", _jpeg_size(head)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        if len(head) >= 24 and head[12:16] == b"IHDR":
            return "image/png", (
                int.from_bytes(head[16:20], "big"),
                int.from_bytes(head[20:24], "big"),
            )
        return "image/png", None
    if head[:6] in (b"GIF87a", b"GIF89a"):
        if len(head) >= 10:
            return "image/gif", (
                int.from_bytes(head[6:8], "little"),
                int.from_bytes(head[8:10], "little"),
            )
        return "image/gif", None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", _webp_size(head)
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        i = head.find(b"ispe")
        if i >= 0 and len(head) >= i + 16:
            return _HEIF_BRANDS[head[8:12]], (
                int.from_bytes(head[i + 8 : i + 12], "big"),
                int.from_bytes(head[i + 12 : i + 16], "big"),
            )
        return _HEIF_BRANDS[head[8:12]], None
    return None, None


def _webp_size(h: bytes) -> tuple[int, int] | None:
    chunk = h[12:16]
    if chunk == b"VP8 " and len(h) >= 30 and h[23:26] == b"\x9d\x01\x2a":
        w = int.from_bytes(h[26:28], "little") & 0x3FFF
        return w, int.from_bytes(h[28:30], "little") & 0x3FFF
    if chunk == b"VP8L" and len(h) >= 25 and h[20] == 0x2F:
        bits = int.from_bytes(h[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(h) >= 30:
        return int.from_bytes(h[24:27], "little") + 1, int.from_bytes(h[27:30], "little") + 1
    return None


_URLSAFE = bytes.maketrans(b"-_", b"+/")


def standard_b64(payload: bytes) -> bytes:
    """URL-safe or unpadded base64 (which protobuf JSON accepts) as standard, padded base64."""
    if b"-" in payload or b"_" in payload:
        payload = payload.translate(_URLSAFE)
    pad = -len(payload) % 4
    return payload + b"=" * pad if pad else payload


def inspect_b64(payload: bytes) -> ImageInfo:
    """Check a base64 image without decoding all of it: alphabet, padding, magic, size.

    URL-safe characters and missing padding are accepted but flagged `loose`: only Gemini's
    proto-JSON parser takes them.
    """
    n = len(payload)
    if n == 0:
        raise ImageProblem("base64", "the image data is empty")
    rest = payload.translate(None, _B64_ALPHABET)  # what is not standard base64
    urlsafe = rest.translate(None, b"=")
    pad = b"=" * (len(rest) - len(urlsafe))
    if urlsafe.translate(None, b"-_"):
        raise ImageProblem("base64", "invalid base64 characters")
    if pad and (len(pad) > 2 or n % 4 or not payload.endswith(pad)):
        raise ImageProblem("base64", "invalid base64 padding")
    if n % 4 == 1:
        raise ImageProblem("base64", "base64 length is not valid")
    loose = bool(n % 4) or bool(urlsafe)
    data = standard_b64(payload) if loose else payload
    head = binascii.a2b_base64(data[:_HEAD_CHARS])
    media_type, size = _sniff(head)
    if media_type is None:
        raise ImageProblem("format", "the data is not a PNG, JPEG, GIF, WEBP or HEIF image")
    if size is None and media_type == "image/jpeg" and n > _HEAD_CHARS:
        size = _jpeg_size(binascii.a2b_base64(data))
    if size is None or size[0] <= 0 or size[1] <= 0:
        raise ImageProblem("corrupt", f"could not read the size of the {media_type} image")
    info = ImageInfo(media_type, size[0], size[1], len(data) // 4 * 3 - data[-2:].count(b"="), n)
    info.loose = loose
    return info


# --------------------------------------------------------------------------- image tokens


def openai_tile_tokens(w: int, h: int, base: int, tile: int, low: bool) -> int:
    """Tile models: fit 2048², short side to 768, 512-px tiles (reference §5.1)."""
    if low:
        return base
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = math.floor(w * s), math.floor(h * s)
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = math.floor(w * s), math.floor(h * s)
    return base + tile * math.ceil(w / 512) * math.ceil(h / 512)


# The simulator bills image tokens with its own implementation of the published
# formulas, on purpose: it stands in for the real services, and sharing evtui's
# estimator (evtui/providers/images.py) would make every "estimate vs billed usage"
# check, and the calibrator's tests, agree with itself by construction.


def openai_patch_tokens(w: int, h: int, budget: int | None, max_side: int, mult: float) -> int:
    """Patch models: 32-px patches under a pixel and patch budget, times a multiplier."""
    if max(w, h) > max_side:
        s = max_side / max(w, h)
        w, h = max(math.floor(w * s), 1), max(math.floor(h * s), 1)
    patches = math.ceil(w / 32) * math.ceil(h / 32)
    if budget is not None and patches > budget:
        s = math.sqrt(32 * 32 * budget / (w * h))
        s *= min(math.floor(w * s / 32) / (w * s / 32), math.floor(h * s / 32) / (h * s / 32))
        w, h = math.floor(w * s), math.floor(h * s)
        patches = math.ceil(w / 32) * math.ceil(h / 32)
    return math.ceil(patches * mult)


# (prefix, rule): longest prefix wins. Tile: (base, tile). Patch: {detail: (budget, side, mult)}.
_OPENAI_RULES: list[tuple[str, tuple[str, Any]]] = [
    ("gpt-4o-mini", ("tile", (2833, 5667))),
    ("gpt-4o", ("tile", (85, 170))),
    ("gpt-4.5", ("tile", (85, 170))),
    ("gpt-4.1-mini", ("patch", {"*": (6144, 2048, 1.62)})),
    ("gpt-4.1-nano", ("patch", {"*": (1536, 10**9, 2.46)})),
    ("gpt-4.1", ("tile", (85, 170))),
    ("gpt-5-mini", ("patch", {"*": (1536, 10**9, 1.2)})),
    ("gpt-5-nano", ("patch", {"*": (1536, 10**9, 1.5)})),
    (
        "gpt-5.4",
        (
            "patch",
            {
                "high": (2500, 2048, 1.2),
                "original": (10000, 6000, 1.2),
                "low": (6144, 2048, 1.2),
                "auto": (2500, 2048, 1.2),
            },
        ),
    ),
    (
        "gpt-5.5",
        (
            "patch",
            {
                "high": (2500, 2048, 1.2),
                "original": (10000, 6000, 1.2),
                "low": (256, 512, 1.2),
                "auto": (10000, 6000, 1.2),
            },
        ),
    ),
    (
        "gpt-5.6",
        (
            "patch",
            {
                "high": (2500, 2048, 1.2),
                "original": (None, 65535, 1.2),
                "low": (256, 512, 1.2),
                "auto": (None, 65535, 1.2),
            },
        ),
    ),
    ("gpt-5", ("tile", (70, 140))),
    ("o1", ("tile", (75, 150))),
    ("o3", ("tile", (75, 150))),
    ("o4-mini", ("patch", {"*": (1536, 10**9, 1.72)})),
]
_OPENAI_RULES.sort(key=lambda r: -len(r[0]))
_TOKENS: dict[tuple[Any, ...], int] = {}


def _openai_rule(model: str) -> tuple[str, Any]:
    for prefix, rule in _OPENAI_RULES:
        if model.startswith(prefix):
            return rule
    return "tile", (85, 170)


def openai_image_tokens(model: str, w: int, h: int, detail: str) -> int:
    key = ("openai", model, w, h, detail)
    n = _TOKENS.get(key)
    if n is None:
        kind, p = _openai_rule(model)
        if kind == "tile":
            n = openai_tile_tokens(w, h, p[0], p[1], detail == "low")
        else:
            budget, side, mult = p.get(detail) or p.get("high") or p["*"]
            n = openai_patch_tokens(w, h, budget, side, mult)
        _remember(key, n)
    return n


def claude_image_tokens(w: int, h: int, max_edge: int = 1568, max_tok: int = 1568) -> int:
    """28-px patches after the downscale that satisfies both the edge and token limits."""

    def fits(a: int, b: int) -> bool:
        ca, cb = math.ceil(a / 28), math.ceil(b / 28)
        return ca * 28 <= max_edge and cb * 28 <= max_edge and ca * cb <= max_tok

    def size(a: int, b: int) -> tuple[int, int]:
        if fits(a, b):
            return a, b
        if b > a:
            y, x = size(b, a)
            return x, y
        r, lo, hi = a / b, 1, a
        while lo + 1 < hi:
            mid = (lo + hi) // 2
            if fits(mid, max(round(mid / r), 1)):
                lo = mid
            else:
                hi = mid
        return lo, max(round(lo / r), 1)

    a, b = size(w, h)
    return math.ceil(a / 28) * math.ceil(b / 28)


def claude_hires(model: str) -> bool:
    """Claude 4.7 and later Opus, Opus 5+, Mythos use the high-resolution image tier."""
    if "mythos" in model:
        return True
    i = model.find("opus-")
    if i < 0:
        return False
    parts = model[i + 5 :].split("-")
    try:
        major = int(parts[0])
        minor = int(parts[1]) if len(parts) > 1 and len(parts[1]) == 1 else 0
    except ValueError:
        return False
    return (major, minor) >= (4, 7)


def anthropic_image_tokens(model: str, w: int, h: int) -> int:
    key = ("anthropic", model, w, h)
    n = _TOKENS.get(key)
    if n is None:
        hires = claude_hires(model)
        n = claude_image_tokens(w, h, 2576, 4784) if hires else claude_image_tokens(w, h)
        _remember(key, n)
    return n


_GEMINI3_RES = {"MEDIA_RESOLUTION_LOW": 280, "MEDIA_RESOLUTION_MEDIUM": 560}
_GEMINI25_RES = {"MEDIA_RESOLUTION_LOW": 64, "MEDIA_RESOLUTION_MEDIUM": 256}
_GEMINI25_RES["MEDIA_RESOLUTION_HIGH"] = 256


def gemini_image_tokens(model: str, w: int, h: int, resolution: str | None) -> int:
    """Gemini 3: fixed budget per media_resolution; older: 258 per 768-px crop tile."""
    if model.startswith("gemini-3"):
        return _GEMINI3_RES.get(resolution or "", 1120)
    if resolution in _GEMINI25_RES:
        return _GEMINI25_RES[resolution]  # type: ignore[index]
    if w <= 384 and h <= 384:
        return 258
    crop = max(math.floor(min(w, h) / 1.5), 1)
    return 258 * math.ceil(w / crop) * math.ceil(h / crop)


def compat_image_tokens(w: int, h: int) -> int:
    """Qwen-VL style (a common vLLM vision model): one token per 28-px patch, capped."""
    return min(math.ceil(w / 28) * math.ceil(h / 28), 16384)


def _remember(key: tuple[Any, ...], n: int) -> None:
    if len(_TOKENS) > 4096:
        _TOKENS.clear()
    _TOKENS[key] = n


def text_tokens(chars: int, messages: int) -> int:
    """~4 characters a token, plus a few tokens of framing per message."""
    return (chars + 3) // 4 + 3 * messages + 3


def output_tokens(text: str) -> int:
    return max((len(text) + 3) // 4, 1) if text else 0


def fit_caption(text: str, budget: int | None) -> tuple[str, bool]:
    """The caption cut to `budget` tokens (~4 chars each); True when it was cut."""
    if budget is None or output_tokens(text) <= budget:
        return text, False
    return text[: max(budget, 0) * 4].rstrip(), True


# --------------------------------------------------------------------------- requests


class ImageRef:
    """One image in a request: where its base64 lies, what the client said it is, and where
    it sits in the request (for error messages).

    The payload is `src[start:end]`; it is only copied out when first seen (`payload`).
    """

    __slots__ = ("declared", "detail", "end", "info", "src", "start", "where")

    def __init__(
        self, span: tuple[bytes, int, int], declared: str, where: str, detail: str | None = None
    ):
        self.src, self.start, self.end = span
        self.declared = declared
        self.where = where
        self.detail = detail
        self.info: ImageInfo | None = None

    @property
    def payload(self) -> bytes:
        return self.src[self.start : self.end]


class Parsed:
    """What the simulator needs from a request body, protocol-independent."""

    __slots__ = (
        "charge_output",
        "images",
        "max_output",
        "messages",
        "model",
        "options",
        "text_chars",
    )

    def __init__(self, model: str) -> None:
        self.model = model
        self.images: list[ImageRef] = []
        self.text_chars = 0
        self.messages = 0
        self.max_output: int | None = None  # cap on the answer, None = the model's own
        self.charge_output = 0  # what the limiter pre-charges for output
        self.options: dict[str, Any] = {}

    def _clone(self) -> Parsed:
        p = Parsed(self.model)
        p.text_chars = self.text_chars
        p.messages = self.messages
        p.max_output = self.max_output
        p.charge_output = self.charge_output
        p.options = self.options  # read-only once parsed
        return p

    def template(self) -> Parsed:
        """A copy without payloads, to re-point at the next request with this skeleton."""
        t = self._clone()
        t.images = [ImageRef((b"", 0, 0), r.declared, r.where, r.detail) for r in self.images]
        return t

    def again(self, body: bytes, spans: list[tuple[int, int]]) -> Parsed:
        """This template filled with the payloads at `spans` of `body`."""
        p = self._clone()
        p.images = [
            ImageRef((body, a, b), r.declared, r.where, r.detail)
            for r, (a, b) in zip(self.images, spans, strict=True)
        ]
        return p


_MAX_TEMPLATE_BYTES = 16 * 1024  # skeletons larger than this (long prompts) are not kept


class _Fallback(Exception):
    """The cut-out fast path does not match the parsed body: parse it whole."""


def _find_data_url(body: bytes, pos: int) -> int:
    i = body.find(b";base64,", pos)
    return -1 if i < 0 else i + 8


def _find_data_key(body: bytes, pos: int) -> int:
    """Start of the string value of the next `"data"` key, or -1."""
    while True:
        i = body.find(b'"data"', pos)
        if i < 0:
            return -1
        j = i + 6
        while body[j : j + 1] in (b" ", b"\t", b"\r", b"\n"):
            j += 1
        if body[j : j + 1] == b":":
            j += 1
            while body[j : j + 1] in (b" ", b"\t", b"\r", b"\n"):
                j += 1
            if body[j : j + 1] == b'"':
                return j + 1
        pos = i + 6


def cut_payloads(
    body: bytes, find: Callable[[bytes, int], int]
) -> tuple[bytes, list[tuple[int, int]]]:
    """(body with every image payload emptied, each payload's (start, end) in the body)."""
    spans: list[tuple[int, int]] = []
    pieces: list[bytes] = []
    pos = 0
    start = find(body, 0)
    while start >= 0:
        end = body.find(b'"', start)  # JSON escapes, if any, are undone on a cache miss
        if end < 0:
            raise _Fallback
        pieces.append(body[pos:start])
        spans.append((start, end))
        pos = end
        start = find(body, end)
    if not spans:
        return body, spans
    pieces.append(body[pos:])
    return b"".join(pieces), spans


class _Payloads:
    """Hands the cut-out payloads to the walker in order, or reads them from the JSON."""

    __slots__ = ("body", "i", "spans")

    def __init__(self, body: bytes, spans: list[tuple[int, int]] | None) -> None:
        self.body = body
        self.spans = spans
        self.i = 0

    def take(self, data: str) -> tuple[bytes, int, int]:
        if self.spans is None:
            try:
                raw = data.encode("ascii")
            except UnicodeEncodeError:
                raw = b"!"  # fails the alphabet check: reported as invalid base64
            return raw, 0, len(raw)
        if data or self.i >= len(self.spans):
            raise _Fallback
        start, end = self.spans[self.i]
        self.i += 1
        return self.body, start, end

    def done(self) -> None:
        if self.spans is not None and self.i != len(self.spans):
            raise _Fallback


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --------------------------------------------------------------------------- protocols


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


# ----------------------------------------------------------------- OpenAI


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


# ----------------------------------------------------------------- Anthropic


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


# ----------------------------------------------------------------- Gemini


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


PROTOCOLS: dict[str, Callable[[], Protocol]] = {
    "openai": OpenAIProtocol,
    "anthropic": AnthropicProtocol,
    "gemini": GeminiProtocol,
    "compat": CompatProtocol,
}
