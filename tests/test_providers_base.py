"""Adapters take the encoder's precomputed base64 instead of encoding on the event loop."""

from __future__ import annotations

import base64

import orjson
import pytest

from evtui.providers import make_adapter
from evtui.providers.types import CaptionRequest, ImagePart

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "gemini", "openai-compatible"])
def test_precomputed_base64_is_used_as_is(protocol):
    adapter = make_adapter(protocol, base_url="http://127.0.0.1:9")
    # A sentinel that is not the base64 of the bytes: only the precomputed text can produce it.
    sentinel = base64.b64encode(b"precomputed-by-the-encoder").decode()
    image = ImagePart(JPEG, "image/jpeg", 64, 48, b64=sentinel)
    req = CaptionRequest(model="m-1", prompt="Describe.", image=image)
    body = adapter.build(req, "k-test").body
    assert sentinel.encode() in body
    assert base64.b64encode(JPEG) not in body
    orjson.loads(body)  # still valid JSON


def test_without_precomputed_base64_the_bytes_are_encoded():
    adapter = make_adapter("anthropic", base_url="http://127.0.0.1:9")
    req = CaptionRequest(
        model="m-1", prompt="Describe.", image=ImagePart(JPEG, "image/jpeg", 64, 48)
    )
    assert base64.b64encode(JPEG) in adapter.build(req, "k-test").body
