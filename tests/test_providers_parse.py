"""Success bodies per protocol → Completion (text, finish reason, normalised usage), and
the 200s that are not successes: refusals, blocks, empty answers, wrong shapes.

Fixtures are written by hand from the reference (§1.2, §2) and checked against the
official SDKs' own response types, so they are shaped like real answers.
"""

from __future__ import annotations

import orjson
import pytest

from evtui.providers import make_adapter
from evtui.providers.errors import ContentRefused, MalformedResponse, Overloaded, ServerError
from evtui.providers.types import Completion, Usage

OPENAI_OK = {
    "id": "chatcmpl-AbC123",
    "object": "chat.completion",
    "created": 1731000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "A bright edge sweeps left across a dark frame.",
                "refusal": None,
                "annotations": [],
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ],
    "usage": {
        "prompt_tokens": 1200,
        "completion_tokens": 20,
        "total_tokens": 1220,
        "prompt_tokens_details": {"cached_tokens": 1024, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
    "service_tier": "default",
    "system_fingerprint": "fp_50cad350e4",
}


def _choice(**message_and_finish):
    finish = message_and_finish.pop("finish_reason", "stop")
    body = orjson.loads(orjson.dumps(OPENAI_OK))
    body["choices"][0]["message"].update(message_and_finish)
    body["choices"][0]["finish_reason"] = finish
    return body


OPENAI_REFUSAL = _choice(content=None, refusal="I'm sorry, I can't help with that.")
OPENAI_FILTERED = _choice(content=None, finish_reason="content_filter")
OPENAI_LENGTH_EMPTY = _choice(content="", finish_reason="length")
OPENAI_LENGTH_EMPTY["usage"]["completion_tokens_details"]["reasoning_tokens"] = 300
OPENAI_TRUNCATED = _choice(content="A bright edge sweeps", finish_reason="length")

ANTHROPIC_OK = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-haiku-4-5-20251001",
    "content": [
        {"type": "thinking", "thinking": "Edges move left.", "signature": "EqQBCgIYAhIM"},
        {"type": "text", "text": "A hand waves "},
        {"type": "text", "text": "in front of the sensor."},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {
        "input_tokens": 1500,
        "output_tokens": 25,
        "cache_creation_input_tokens": 100,
        "cache_read_input_tokens": 200,
        "service_tier": "standard",
    },
}
ANTHROPIC_REFUSAL = dict(ANTHROPIC_OK, content=[], stop_reason="refusal")
ANTHROPIC_MAX_EMPTY = dict(ANTHROPIC_OK, content=[], stop_reason="max_tokens")

GEMINI_OK = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {"text": "Thinking about motion...", "thought": True},
                    {"text": "A person walks "},
                    {"text": "to the right."},
                ],
                "role": "model",
            },
            "finishReason": "STOP",
            "index": 0,
        }
    ],
    "usageMetadata": {
        "promptTokenCount": 1300,
        "candidatesTokenCount": 12,
        "totalTokenCount": 1340,
        "cachedContentTokenCount": 1000,
        "thoughtsTokenCount": 28,
        "promptTokensDetails": [
            {"modality": "TEXT", "tokenCount": 10},
            {"modality": "IMAGE", "tokenCount": 1290},
        ],
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "kXc2aPHXOvXfz7IP8a2hkAk",
}
GEMINI_MAX_TOKENS = {
    "candidates": [{"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}],
    "usageMetadata": {
        "promptTokenCount": 1300,
        "totalTokenCount": 1599,
        "thoughtsTokenCount": 299,
    },
    "modelVersion": "gemini-2.5-flash",
    "responseId": "abc",
}
GEMINI_SAFETY = {
    "candidates": [
        {
            "finishReason": "SAFETY",
            "index": 0,
            "safetyRatings": [
                {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH"}
            ],
        }
    ],
    "usageMetadata": {"promptTokenCount": 1300, "totalTokenCount": 1300},
    "modelVersion": "gemini-2.5-flash",
}
GEMINI_BLOCKED = {
    "promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},
    "usageMetadata": {"promptTokenCount": 1300, "totalTokenCount": 1300},
    "modelVersion": "gemini-2.5-flash",
}

OLLAMA_OK = {
    "id": "chatcmpl-123",
    "object": "chat.completion",
    "created": 1731000000,
    "model": "llava:7b",
    "system_fingerprint": "fp_ollama",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": " Two cars pass. "},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 600, "completion_tokens": 5, "total_tokens": 605},
}
VLLM_ABORT = orjson.loads(orjson.dumps(OLLAMA_OK))
VLLM_ABORT["choices"][0]["finish_reason"] = "abort"


# -- the fixtures are shaped like real answers: the SDKs' own types accept them ---------


@pytest.mark.parametrize(
    "body",
    [
        OPENAI_OK,
        OPENAI_REFUSAL,
        OPENAI_FILTERED,
        OPENAI_LENGTH_EMPTY,
        OPENAI_TRUNCATED,
        OLLAMA_OK,
    ],
)
def test_openai_fixtures_validate_with_the_sdk(body):
    from openai.types.chat import ChatCompletion

    parsed = ChatCompletion.model_validate(body)
    assert parsed.choices[0].message.role == "assistant"


@pytest.mark.parametrize("body", [ANTHROPIC_OK, ANTHROPIC_REFUSAL, ANTHROPIC_MAX_EMPTY])
def test_anthropic_fixtures_validate_with_the_sdk(body):
    from anthropic.types import Message

    assert Message.model_validate(body).role == "assistant"


@pytest.mark.parametrize("body", [GEMINI_OK, GEMINI_MAX_TOKENS, GEMINI_SAFETY, GEMINI_BLOCKED])
def test_gemini_fixtures_validate_with_the_sdk(body):
    from google.genai import types

    # extra="forbid" in the SDK's models: a misspelt field would fail here.
    types.GenerateContentResponse.model_validate(body)


# -- successes ------------------------------------------------------------------------


def parse(protocol: str, body, headers=None, **kw):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return make_adapter(protocol).parse_success(200, headers or {}, raw, **kw)


def test_openai_success():
    c = parse("openai", OPENAI_OK, {"x-request-id": "req_123"}, model="gpt-4o", latency_s=0.25)
    assert c.text == "A bright edge sweeps left across a dark frame."
    assert (c.finish_reason, c.raw_finish_reason) == ("stop", "stop")
    assert c.model == "gpt-4o-2024-08-06"  # the model that answered
    assert c.provider == "openai" and c.request_id == "req_123" and c.latency_s == 0.25
    # prompt_tokens includes the cached ones: 1200 = 176 fresh + 1024 cached.
    assert c.usage == Usage(input_tokens=176, output_tokens=20, cached_input_tokens=1024)
    assert c.usage.total_input_tokens == 1200


def test_openai_truncated_answer_is_length():
    c = parse("openai", OPENAI_TRUNCATED)
    assert c.finish_reason == "length" and c.text == "A bright edge sweeps"


def test_openai_refusal_and_content_filter_are_refused():
    with pytest.raises(ContentRefused, match="can't help"):
        parse("openai", OPENAI_REFUSAL)
    with pytest.raises(ContentRefused, match="content filter") as e:
        parse("openai", OPENAI_FILTERED)
    assert e.value.code == "content_filter"


def test_openai_length_with_no_text_explains_the_budget():
    with pytest.raises(MalformedResponse, match="output budget"):
        parse("openai", OPENAI_LENGTH_EMPTY)


def test_openai_usage_with_cache_writes_and_reasoning():
    body = orjson.loads(orjson.dumps(OPENAI_OK))
    body["usage"] = {
        "prompt_tokens": 1000,
        "completion_tokens": 400,
        "total_tokens": 1400,
        "prompt_tokens_details": {"cached_tokens": 500, "cache_write_tokens": 100},
        "completion_tokens_details": {"reasoning_tokens": 350},
    }
    u = parse("openai", body).usage
    assert (u.input_tokens, u.cached_input_tokens, u.cache_write_tokens) == (400, 500, 100)
    assert (u.output_tokens, u.reasoning_tokens) == (400, 350)
    assert u.total_input_tokens == 1000


def test_anthropic_success():
    c = parse("anthropic", ANTHROPIC_OK, {"request-id": "req_011"})
    assert c.text == "A hand waves in front of the sensor."  # thinking skipped
    assert (c.finish_reason, c.raw_finish_reason) == ("stop", "end_turn")
    assert c.request_id == "req_011" and c.model == "claude-haiku-4-5-20251001"
    # input_tokens already excludes cache reads and writes: copied, not subtracted.
    assert c.usage == Usage(
        input_tokens=1500, output_tokens=25, cached_input_tokens=200, cache_write_tokens=100
    )
    assert c.usage.total_input_tokens == 1800


def test_anthropic_refusal_and_empty_max_tokens():
    with pytest.raises(ContentRefused, match="refusal"):
        parse("anthropic", ANTHROPIC_REFUSAL)
    with pytest.raises(MalformedResponse, match="no text"):
        parse("anthropic", ANTHROPIC_MAX_EMPTY)


def test_anthropic_max_tokens_with_text_is_length():
    body = dict(ANTHROPIC_OK, stop_reason="max_tokens")
    assert parse("anthropic", body).finish_reason == "length"


def test_gemini_success():
    c = parse("gemini", GEMINI_OK)
    assert c.text == "A person walks to the right."  # the thought part is skipped
    assert (c.finish_reason, c.raw_finish_reason) == ("stop", "STOP")
    assert c.model == "gemini-2.5-flash" and c.request_id == "kXc2aPHXOvXfz7IP8a2hkAk"
    # promptTokenCount includes cached; thoughts are output.
    assert c.usage == Usage(
        input_tokens=300,
        output_tokens=40,
        cached_input_tokens=1000,
        image_tokens=1290,
        reasoning_tokens=28,
    )


def test_gemini_max_tokens_without_text_names_thinking():
    with pytest.raises(MalformedResponse, match=r"MAX_TOKENS.*thinking") as e:
        parse("gemini", GEMINI_MAX_TOKENS)
    assert e.value.code == "MAX_TOKENS" and e.value.retryable


def test_gemini_safety_and_prompt_block_are_refused():
    with pytest.raises(ContentRefused, match="SAFETY") as e:
        parse("gemini", GEMINI_SAFETY)
    assert e.value.code == "SAFETY"
    with pytest.raises(ContentRefused, match="PROHIBITED_CONTENT"):
        parse("gemini", GEMINI_BLOCKED)


def test_gemini_unknown_finish_reason_with_text_is_other():
    body = orjson.loads(orjson.dumps(GEMINI_OK))
    body["candidates"][0]["finishReason"] = "SOMETHING_NEW"
    c = parse("gemini", body)
    assert (c.finish_reason, c.raw_finish_reason) == ("other", "SOMETHING_NEW")


def test_openai_compatible_minimal_servers():
    c = parse("openai-compatible", OLLAMA_OK, model="llava")
    assert c.text == "Two cars pass." and c.provider == "openai-compatible"
    assert c.usage == Usage(input_tokens=600, output_tokens=5)
    c = parse("openai-compatible", VLLM_ABORT)
    assert (c.finish_reason, c.raw_finish_reason) == ("other", "abort")


def test_openai_compatible_content_as_a_list_of_parts():
    body = orjson.loads(orjson.dumps(OLLAMA_OK))
    body["choices"][0]["message"]["content"] = [
        {"type": "text", "text": "Two "},
        {"type": "text", "text": "cars."},
    ]
    assert parse("openai-compatible", body).text == "Two cars."


def test_gateway_error_inside_a_200_is_classified():
    bifrost = {
        "is_bifrost_error": True,
        "status_code": 503,
        "error": {"type": "server_error", "message": "all upstream keys failed"},
    }
    with pytest.raises(Overloaded) as e:  # the status inside the body: 503
        parse("openai-compatible", bifrost)
    assert "all upstream keys failed" in str(e.value) and e.value.status == 503
    portkey = {"status": "failure", "message": "upstream said no", "error": {"type": "x"}}
    with pytest.raises(ServerError) as e:  # no status given: a bad gateway
        parse("openai-compatible", portkey)
    assert e.value.status == 502 and "upstream said no" in str(e.value)


# -- 200s that cannot be read ---------------------------------------------------------


@pytest.mark.parametrize("protocol", ["openai", "anthropic", "gemini", "openai-compatible"])
@pytest.mark.parametrize(
    ("body", "pattern"),
    [
        (b"", "empty body"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "502 Bad Gateway"),
        (b'{"choices": [', "not a JSON object"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b'"just a string"', "not a JSON object"),
        (b'{"unexpected": true}', "no "),
        (b'{"choices": [{"message": "text"}], "content": "x", "candidates": [7]}', None),
        (b'{"choices": [], "content": 3, "candidates": []}', "no "),
    ],
)
def test_unreadable_success_bodies_become_malformed(protocol, body, pattern):
    with pytest.raises(MalformedResponse, match=pattern) as e:
        parse(protocol, body)
    assert "\n" not in str(e.value)
    assert e.value.rate_limits is not None


def test_malformed_keeps_rate_limits_and_request_id():
    headers = {"x-request-id": "req_9", "x-ratelimit-remaining-requests": "5"}
    with pytest.raises(MalformedResponse) as e:
        parse("openai", b"<html>", headers)
    assert e.value.request_id == "req_9"
    assert e.value.rate_limits.requests.remaining == 5


def test_non_json_snippet_is_truncated_and_masked():
    key = "sk-proj-" + "Q" * 40
    body = b"<html>" + b"x" * 150 + key.encode() + b"y" * 5000 + b"</html>"
    with pytest.raises(MalformedResponse) as e:
        parse("openai", body, key=key)
    text = str(e.value)
    assert key not in text and "Q" * 10 not in text
    assert len(e.value.message) < 300


def test_wrong_types_inside_the_body_never_escape_as_python_errors():
    nasty = [
        {"choices": [{"message": {"content": 42}, "finish_reason": 7}]},
        {"choices": [None]},
        {"content": [{"type": "text", "text": None}], "stop_reason": ["x"]},
        {"candidates": [{"content": {"parts": "text"}, "finishReason": None}]},
        {"candidates": [None]},
        {"candidates": [{"content": {"parts": [{"text": "ok"}]}}], "usageMetadata": "lots"},
        {"promptFeedback": "blocked?"},
    ]
    for protocol in ("openai", "anthropic", "gemini", "openai-compatible"):
        for body in nasty:
            try:
                outcome = parse(protocol, body)
            except (MalformedResponse, ContentRefused) as e:
                outcome = e
            assert isinstance(outcome, (Completion, MalformedResponse, ContentRefused))
