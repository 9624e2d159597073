"""Reading images out of request bodies cheaply: base64 checks, format sniffing, sizes."""

from __future__ import annotations

import binascii

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
