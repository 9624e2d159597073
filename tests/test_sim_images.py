"""The simulator's cheap image checks, token formulas and header formats (reference §4, §5).

Also home of the small image fixtures the other test_sim_* modules import.
"""

from __future__ import annotations

import base64
import binascii
import struct
import zlib

import cv2
import numpy as np
import pytest

from evtui.sim.images import ImageProblem, inspect_b64, standard_b64
from evtui.sim.parsing import _find_data_key, _find_data_url, cut_payloads
from evtui.sim.tokens import (
    anthropic_image_tokens,
    claude_hires,
    gemini_image_tokens,
    openai_image_tokens,
)
from evtui.sim.wire import go_duration, proto_duration, rfc3339

# ----------------------------------------------------------------------------- fixtures


def frame(width: int = 640, height: int = 480, seed: int = 0) -> np.ndarray:
    """A small event-like frame: dark background, a bright disc, some dots."""
    rng = np.random.default_rng(seed)
    img = np.full((height, width, 3), (52, 37, 30), np.uint8)
    n = width * height // 200
    img[rng.integers(0, height, n), rng.integers(0, width, n)] = (255, 255, 255)
    cv2.circle(img, (width // 2, height // 2), min(width, height) // 6, (200, 126, 64), -1)
    return img


def encode(img: np.ndarray, ext: str = ".jpg") -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def jpeg(width: int = 640, height: int = 480, seed: int = 0) -> bytes:
    return encode(frame(width, height, seed), ".jpg")


def png(width: int = 640, height: int = 480) -> bytes:
    return encode(frame(width, height), ".png")


def webp(width: int = 640, height: int = 480) -> bytes:
    return encode(frame(width, height), ".webp")


def png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature and IHDR claiming any size (enough for the size checks)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk + b"\x00" * 64


def gif(width: int = 32, height: int = 16) -> bytes:
    return b"GIF89a" + struct.pack("<HH", width, height) + b"\x00" * 32


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# ----------------------------------------------------------------------------- inspection


@pytest.mark.parametrize(
    ("data", "media_type", "size"),
    [
        (jpeg(640, 480), "image/jpeg", (640, 480)),
        (jpeg(1280, 720), "image/jpeg", (1280, 720)),
        (png(321, 123), "image/png", (321, 123)),
        (webp(200, 100), "image/webp", (200, 100)),
        (gif(32, 16), "image/gif", (32, 16)),
    ],
)
def test_inspect_reads_type_and_size_from_the_bytes(data, media_type, size):
    info = inspect_b64(base64.b64encode(data))
    assert info.media_type == media_type
    assert (info.width, info.height) == size
    assert info.nbytes == len(data)
    assert not info.loose


def test_jpeg_size_found_past_a_large_exif_block():
    data = jpeg(300, 200)
    app1 = b"\xff\xe1" + struct.pack(">H", 20_002) + b"Exif\x00\x00" + b"\x00" * 19_994
    data = data[:2] + app1 + data[2:]
    info = inspect_b64(base64.b64encode(data))  # SOF lies beyond the decoded head
    assert (info.width, info.height) == (300, 200)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "base64"),
        (b"abc$efgh", "base64"),
        (b"ab=cdefg", "base64"),
        (b"abcde", "base64"),  # impossible length
        (base64.b64encode(b"just some text, not an image"), "format"),
        (base64.b64encode(b"\xff\xd8\xff\xe0" + b"\x00" * 20), "corrupt"),  # JPEG without SOF
    ],
)
def test_inspect_refuses_bad_payloads(payload, reason):
    with pytest.raises(ImageProblem) as exc:
        inspect_b64(payload)
    assert exc.value.reason == reason


def test_urlsafe_unpadded_base64_is_flagged_loose_and_decodes():
    data = png(50, 30) + b"\xfb\xff"  # bytes that encode to '-' / '_' in the URL-safe alphabet
    payload = base64.urlsafe_b64encode(data).rstrip(b"=")
    info = inspect_b64(payload)
    assert info.loose and (info.width, info.height) == (50, 30)
    assert binascii.a2b_base64(standard_b64(payload)) == data


# ----------------------------------------------------------------------------- tokens


@pytest.mark.parametrize(
    ("model", "w", "h", "detail", "tokens"),
    [  # reference §5.4
        ("gpt-4o", 640, 480, "auto", 425),
        ("gpt-4o", 1280, 720, "high", 1105),
        ("gpt-4.1", 3840, 2160, "auto", 1105),
        ("gpt-4o", 3840, 2160, "low", 85),
        ("gpt-4o-mini", 640, 480, "auto", 14167),
        ("gpt-4o-mini", 1920, 1080, "auto", 36835),
        ("gpt-4.1-mini", 640, 480, "auto", 487),
        ("gpt-4.1-mini", 1280, 720, "auto", 1491),
        ("gpt-4.1-mini", 1920, 1080, "auto", 3305),
        ("gpt-5.4", 640, 480, "high", 360),
        ("gpt-5.4", 1920, 1080, "high", 2448),
        ("gpt-5.4", 3840, 2160, "high", 2765),
    ],
)
def test_openai_image_tokens(model, w, h, detail, tokens):
    assert openai_image_tokens(model, w, h, detail) == tokens


@pytest.mark.parametrize(
    ("model", "w", "h", "tokens"),
    [
        ("claude-haiku-4-5", 640, 480, 414),
        ("claude-sonnet-4-6", 1280, 720, 1196),
        ("claude-sonnet-4-5", 1920, 1080, 1560),
        ("claude-haiku-4-5", 1075, 1520, 1551),
        ("claude-opus-4-7", 1920, 1080, 2691),
        ("claude-opus-5", 3840, 2160, 4784),
    ],
)
def test_anthropic_image_tokens(model, w, h, tokens):
    assert anthropic_image_tokens(model, w, h) == tokens


def test_claude_tiers():
    assert claude_hires("claude-opus-4-7") and claude_hires("claude-opus-4-8-20261001")
    assert claude_hires("claude-opus-5") and claude_hires("claude-mythos-5")
    assert not claude_hires("claude-opus-4-5") and not claude_hires("claude-sonnet-5-5")
    assert not claude_hires("claude-haiku-4-5")


@pytest.mark.parametrize(
    ("model", "w", "h", "res", "tokens"),
    [
        ("gemini-2.5-flash", 640, 480, None, 1032),
        ("gemini-2.5-flash", 1280, 720, None, 1548),
        ("gemini-2.5-flash", 960, 540, None, 1548),
        ("gemini-2.5-flash-lite", 300, 200, None, 258),
        ("gemini-2.5-flash", 1280, 720, "MEDIA_RESOLUTION_LOW", 64),
        ("gemini-3-flash", 1920, 1080, None, 1120),
        ("gemini-3-pro", 1920, 1080, "MEDIA_RESOLUTION_LOW", 280),
    ],
)
def test_gemini_image_tokens(model, w, h, res, tokens):
    assert gemini_image_tokens(model, w, h, res) == tokens


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.012, "12ms"),
        (0.999, "999ms"),
        (1, "1s"),
        (8.64, "8.64s"),
        (360, "6m0s"),
        (3723.5, "1h2m3.5s"),
    ],
)
def test_go_durations(seconds, text):
    assert go_duration(seconds) == text


def test_proto_durations_and_rfc3339():
    assert proto_duration(33) == "33s"
    assert proto_duration(0.5) == "0.5s"
    assert proto_duration(2.25) == "2.25s"
    assert rfc3339(1_700_000_000.2) == "2023-11-14T22:13:21Z"  # rounded up to the second


# ----------------------------------------------------------------------------- cutting


def test_cut_payloads_empties_each_image_and_keeps_the_rest():
    body = b'{"a":"data:image/png;base64,QUJD","b":"data:image/jpeg;base64,REVG"}'
    skeleton, spans = cut_payloads(body, _find_data_url)
    assert [body[a:b] for a, b in spans] == [b"QUJD", b"REVG"]
    assert skeleton == b'{"a":"data:image/png;base64,","b":"data:image/jpeg;base64,"}'
    body = b'{"source": {"data" :  "QUJD", "x": {"data": 3}}}'
    skeleton, spans = cut_payloads(body, _find_data_key)
    assert [body[a:b] for a, b in spans] == [b"QUJD"]
    assert skeleton == b'{"source": {"data" :  "", "x": {"data": 3}}}'
