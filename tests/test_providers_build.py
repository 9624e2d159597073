"""Request building: exact wire shape, headers and URLs per protocol; caches that hold."""

from __future__ import annotations

import base64

import orjson
import pytest

from evtui.providers import ADAPTERS, make_adapter
from evtui.providers.base import _IMAGE_TEXT, _IdentityCache, image_base64, image_data_url
from evtui.providers.types import CaptionRequest, ImagePart

JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
B64 = base64.b64encode(JPEG).decode()


def image(data: bytes = JPEG, media_type: str = "image/jpeg") -> ImagePart:
    return ImagePart(data=data, media_type=media_type, width=64, height=48)


def request(model: str = "m", **kw) -> CaptionRequest:
    return CaptionRequest(model=model, prompt="Describe the frame.", image=image(), **kw)


def wire(protocol: str, req: CaptionRequest, key: str = "k-123", **opts):
    http = make_adapter(protocol, **opts).build(req, key)
    return http, orjson.loads(http.body)


def test_registry_names_and_factory():
    assert set(ADAPTERS) == {"openai", "anthropic", "gemini", "openai-compatible"}
    a = make_adapter("anthropic", name="claude-eu", base_url="https://proxy.example/")
    assert a.name == "claude-eu" and a.base_url == "https://proxy.example"
    assert make_adapter("gemini").name == "gemini"
    with pytest.raises(ValueError, match="unknown provider protocol 'bedrock'"):
        make_adapter("bedrock")
    with pytest.raises(ValueError, match="unknown option"):
        make_adapter("openai", max_tokens_field="max_tokens")
    with pytest.raises(ValueError, match="max_tokens_field"):
        make_adapter("openai-compatible", max_tokens_field="n")


def test_openai_shape():
    http, body = wire("openai", request("gpt-4o", temperature=0.2, detail="low"))
    assert http.method == "POST"
    assert http.url == "https://api.openai.com/v1/chat/completions"
    assert http.headers["Authorization"] == "Bearer k-123"
    assert http.headers["Content-Type"] == "application/json"
    assert body["model"] == "gpt-4o"
    assert body["max_completion_tokens"] == 300 and "max_tokens" not in body
    assert body["temperature"] == 0.2
    (msg,) = body["messages"]
    assert msg["role"] == "user"
    text, img = msg["content"]
    assert text == {"type": "text", "text": "Describe the frame."}
    assert img == {
        "type": "image_url",
        "image_url": {"url": f"data:image/jpeg;base64,{B64}", "detail": "low"},
    }


def test_openai_optional_fields_are_omitted_and_system_comes_first():
    _, body = wire("openai", request(system="Be terse."))
    assert "temperature" not in body
    assert "detail" not in body["messages"][1]["content"][1]["image_url"]
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    _, body = wire("openai", request(), detail="high")
    assert body["messages"][0]["content"][1]["image_url"]["detail"] == "high"


def test_openai_org_project_headers_and_v1_base_not_doubled():
    http, _ = wire(
        "openai", request(), organization="org-1", project="proj-2", base_url="http://h/v1/"
    )
    assert http.url == "http://h/v1/chat/completions"
    assert http.headers["OpenAI-Organization"] == "org-1"
    assert http.headers["OpenAI-Project"] == "proj-2"


def test_anthropic_shape():
    http, body = wire("anthropic", request("claude-haiku-4-5", temperature=0.2, system="S"))
    assert http.url == "https://api.anthropic.com/v1/messages"
    assert http.headers == {
        "x-api-key": "k-123",
        "anthropic-version": "2023-06-01",
        "content-type": "application/json",
    }
    assert body["model"] == "claude-haiku-4-5"
    assert body["max_tokens"] == 300
    assert body["temperature"] == 0.2
    assert body["system"] == "S"
    (msg,) = body["messages"]
    first, second = msg["content"]  # image before text
    assert first == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/jpeg", "data": B64},
    }
    assert second == {"type": "text", "text": "Describe the frame."}


def test_anthropic_omits_temperature_and_can_ask_for_oversize_errors():
    _, body = wire("anthropic", request(), oversized_image="error")
    assert "temperature" not in body and "system" not in body
    assert body["messages"][0]["content"][0]["transformations"] == {"oversized_image": "error"}


def test_gemini_shape_and_thinking_budget():
    http, body = wire("gemini", request("gemini-2.5-flash", temperature=0.2, system="S"))
    assert (
        http.url == "https://generativelanguage.googleapis.com/v1beta/models/"
        "gemini-2.5-flash:generateContent"
    )
    assert http.headers == {"x-goog-api-key": "k-123", "Content-Type": "application/json"}
    (content,) = body["contents"]
    assert content["role"] == "user"
    inline, text = content["parts"]
    assert inline == {"inline_data": {"mime_type": "image/jpeg", "data": B64}}
    assert text == {"text": "Describe the frame."}
    assert body["generationConfig"] == {
        "maxOutputTokens": 300,
        "temperature": 0.2,
        "thinkingConfig": {"thinkingBudget": 0},
    }
    assert body["systemInstruction"] == {"parts": [{"text": "S"}]}


@pytest.mark.parametrize(
    ("model", "opts", "budget"),
    [
        ("gemini-2.5-flash-lite", {}, 0),
        ("models/gemini-2.5-flash", {}, 0),
        ("gemini-2.5-pro", {}, None),  # Pro cannot disable thinking
        ("gemini-3.5-flash", {}, None),
        ("gemini-2.5-pro", {"thinking_budget": 128}, 128),
        ("gemini-2.5-flash", {"thinking_budget": None}, None),
    ],
)
def test_gemini_thinking_budget_option(model, opts, budget):
    http, body = wire("gemini", request(model), **opts)
    assert body["generationConfig"].get("thinkingConfig") == (
        None if budget is None else {"thinkingBudget": budget}
    )
    assert http.url.endswith(f"/models/{model.removeprefix('models/')}:generateContent")


def test_gemini_media_resolution_and_api_version():
    http, body = wire(
        "gemini", request(), media_resolution="MEDIA_RESOLUTION_LOW", api_version="v1"
    )
    assert "/v1/models/m:generateContent" in http.url
    assert body["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_LOW"


def test_openai_compatible_shape_and_options():
    http, body = wire("openai-compatible", request("llava"), base_url="http://127.0.0.1:11434")
    assert http.url == "http://127.0.0.1:11434/v1/chat/completions"
    assert http.headers["Authorization"] == "Bearer k-123"
    assert body["max_tokens"] == 300 and "max_completion_tokens" not in body
    assert body["messages"][0]["content"][1]["image_url"] == {
        "url": f"data:image/jpeg;base64,{B64}"
    }

    http, body = wire(
        "openai-compatible",
        request(),
        key="",
        base_url="http://gw:4000/v1",
        path="/v1/chat/completions",
        max_tokens_field="max_completion_tokens",
        extra_headers={"x-portkey-provider": "openai"},
    )
    assert http.url == "http://gw:4000/v1/chat/completions"
    assert "Authorization" not in http.headers  # no key, no auth header
    assert http.headers["x-portkey-provider"] == "openai"
    assert body["max_completion_tokens"] == 300

    http, _ = wire("openai-compatible", request(), base_url="http://h:1234", path="api/chat")
    assert http.url == "http://h:1234/api/chat"


def test_png_media_type_reaches_every_protocol():
    req = CaptionRequest(model="m", prompt="p", image=image(b"\x89PNG" + JPEG, "image/png"))
    _, oa = wire("openai", req)
    assert oa["messages"][0]["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    _, an = wire("anthropic", req)
    assert an["messages"][0]["content"][0]["source"]["media_type"] == "image/png"
    _, ge = wire("gemini", req)
    assert ge["contents"][0]["parts"][0]["inline_data"]["mime_type"] == "image/png"


def test_base64_computed_once_per_image_across_adapters():
    img = image(bytes(JPEG))  # a fresh bytes object, not cached yet
    a = image_base64(img)
    assert a is image_base64(img)  # the same string object: not recomputed
    # Another ImagePart around the same bytes object shares the entry.
    assert image_base64(ImagePart(img.data, "image/jpeg", 1, 1)) is a
    url = image_data_url(img)
    assert url is image_data_url(img) and url.endswith(a)
    # The bodies of the three protocols carry exactly that text.
    req = CaptionRequest(model="m", prompt="p", image=img)
    for protocol in ("anthropic", "gemini", "openai"):
        assert a.encode() in make_adapter(protocol).build(req, "k").body
    # Equal bytes in a different object are a different entry, with the same content.
    other = image(bytes(JPEG))
    assert image_base64(other) == a


def test_identity_cache_is_bounded_by_items_and_chars():
    cache = _IdentityCache(max_items=3, max_chars=100)
    blobs = [bytes([i]) * 10 for i in range(6)]
    for b in blobs:
        cache.put(b, "", "x" * 30)
    assert len(cache._items) == 3 and cache._chars == 90
    assert cache.get(blobs[0], "") is None and cache.get(blobs[5], "") == "x" * 30
    cache.put(blobs[0], "", "y" * 80)  # evicts until it fits under 100 chars
    assert cache._chars <= 100
    assert cache.put(blobs[1], "", "z" * 500) == "z" * 500  # too big to keep at all
    assert cache.get(blobs[1], "") is None
    assert _IMAGE_TEXT.max_items > 0


def test_headers_reused_per_key_and_bodies_rebuilt_identically():
    adapter = make_adapter("openai")
    req = request()
    first = adapter.build(req, "k1")
    again = adapter.build(req, "k1")
    assert again.body == first.body and again.headers is first.headers
    other_key = adapter.build(req, "k2")
    assert other_key.headers["Authorization"] == "Bearer k2"
    assert first.headers["Authorization"] == "Bearer k1"
    # An equal but distinct request is built afresh, with the same bytes.
    twin = request()
    assert adapter.build(twin, "k1").body == first.body
