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


def test_only_answers_marked_by_the_simulator_are_simulated():
    adapter = make_adapter("openai", base_url="http://127.0.0.1:9")
    body = (
        b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"A bar moves right."},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":500,"completion_tokens":6,"total_tokens":506}}'
    )
    real = adapter.parse_success(200, {"content-type": "application/json"}, body)
    sim = adapter.parse_success(200, {"x-evtui-simulated": "true"}, body)
    assert not real.simulated and sim.simulated
    assert real.text == sim.text == "A bar moves right."


def test_answers_carry_their_cost_for_the_requested_model():
    from evtui.providers.prices import PriceTable

    prices = PriceTable.load()
    adapter = make_adapter("openai", base_url="http://127.0.0.1:9", prices=prices)
    body = (
        b'{"id":"c1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06",'
        b'"choices":[{"index":0,"message":{"role":"assistant","content":"A disc."},'
        b'"finish_reason":"stop"}],"usage":{"prompt_tokens":1000,"completion_tokens":10,'
        b'"total_tokens":1010,"prompt_tokens_details":{"cached_tokens":200}}}'
    )
    c = adapter.parse_success(200, {}, body, model="gpt-4o")
    # gpt-4o: $2.50 in, $1.25 cached, $10 out per 1M; prompt_tokens includes the cached 200.
    assert c.cost_usd == pytest.approx((800 * 2.50 + 200 * 1.25 + 10 * 10.0) / 1e6)
    assert c.cost_usd == pytest.approx(prices.cost_usd("gpt-4o", c.usage))
    assert make_adapter("openai").parse_success(200, {}, body, model="gpt-4o").cost_usd is None
    unknown = adapter.parse_success(200, {}, body, model="my-local-vlm")
    assert unknown.cost_usd is None and unknown.text == "A disc."
