"""Reading a request body cheaply: base64 payloads cut out, the small skeleton parsed once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from evtui.sim.images import ImageInfo


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
