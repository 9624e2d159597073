"""The simulator over loopback HTTP: real success shapes, real errors, limits, keys, faults.

Success bodies are validated with the official SDKs' own types. Time is a fake clock moved
by hand, so nothing here depends on how fast the machine is.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import math
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
from anthropic.types import Message
from google.genai import types
from openai.types.chat import ChatCompletion

from evtui.sim import FaultSpec, Scenario, SimServer
from evtui.sim.wire import FINGERPRINT, SIM_HEADER
from tests.test_sim_images import b64, gif, jpeg, png, png_header_only

pytestmark = pytest.mark.anyio

IMAGE = b64(jpeg(640, 480))  # 425 tokens on gpt-4o, 414 on Claude, 1032 on Gemini 2.5
OPENAI_H = {"Authorization": "Bearer sk-test-a"}
ANTHROPIC_H = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
GEMINI_H = {"x-goog-api-key": "AIza-test"}
HEADERS = {"openai": OPENAI_H, "anthropic": ANTHROPIC_H, "gemini": GEMINI_H, "compat": {}}


@pytest.fixture
def anyio_backend():
    return "asyncio"


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def scenario(**data: Any) -> Scenario:
    return Scenario.model_validate(data)


def body_for(
    provider: str,
    image: str | None = IMAGE,
    *,
    model: str | None = None,
    media: str = "image/jpeg",
    max_tokens: int | None = 300,
    text: str = "Describe the frame.",
    **extra: Any,
) -> dict[str, Any]:
    """The request each provider's docs show for one image and a prompt (reference §1.2)."""
    if provider in ("openai", "compat"):
        content: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if image is not None:
            url = f"data:{media};base64,{image}"
            content.append({"type": "image_url", "image_url": {"url": url, "detail": "auto"}})
        body = {"model": model or "gpt-4o", "messages": [{"role": "user", "content": content}]}
        if max_tokens is not None:
            body["max_completion_tokens"] = max_tokens
    elif provider == "anthropic":
        blocks: list[dict[str, Any]] = []
        if image is not None:
            source = {"type": "base64", "media_type": media, "data": image}
            blocks.append({"type": "image", "source": source})
        blocks.append({"type": "text", "text": text})
        body = {
            "model": model or "claude-haiku-4-5",
            "messages": [{"role": "user", "content": blocks}],
        }
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
    else:
        parts: list[dict[str, Any]] = []
        if image is not None:
            parts.append({"inline_data": {"mime_type": media, "data": image}})
        parts.append({"text": text})
        body = {"contents": [{"role": "user", "parts": parts}]}
        if max_tokens is not None:
            body["generationConfig"] = {"maxOutputTokens": max_tokens}
    body.update(extra)
    return body


class Answer:
    def __init__(self, status: int, headers: Any, raw: bytes) -> None:
        self.status = status
        self.headers = headers
        self.raw = raw

    @property
    def json(self) -> Any:
        return orjson.loads(self.raw)


def url_for(sim: SimServer, provider: str, model: str = "gemini-2.5-flash") -> str:
    base = sim.base_url(provider)
    return {
        "openai": f"{base}/chat/completions",
        "compat": f"{base}/chat/completions",
        "anthropic": f"{base}/v1/messages",
        "gemini": f"{base}/v1beta/models/{model}:generateContent",
    }[provider]


async def send(
    sim: SimServer,
    provider: str,
    body: dict[str, Any] | bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    model: str = "gemini-2.5-flash",
    timeout: float = 10.0,
) -> Answer:
    data = body if isinstance(body, bytes) else orjson.dumps(body or body_for(provider))
    hdrs = {"Content-Type": "application/json"}
    hdrs.update(HEADERS[provider] if headers is None else headers)
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as s,
        s.post(url_for(sim, provider, model), data=data, headers=hdrs) as r,
    ):
        answer = Answer(r.status, r.headers, await r.read())
    assert answer.headers.get(SIM_HEADER) == "true"  # every answer says it is simulated
    return answer


# ----------------------------------------------------------------------------- successes


async def test_openai_success_validates_as_a_chat_completion():
    async with SimServer(describer=False) as sim:
        a = await send(sim, "openai")
    assert a.status == 200
    c = ChatCompletion.model_validate(a.json)
    assert c.choices[0].finish_reason == "stop"
    assert "640x480" in c.choices[0].message.content
    assert c.system_fingerprint == FINGERPRINT and c.model == "gpt-4o"
    u = c.usage
    assert u.prompt_tokens_details.image_tokens == 425
    assert u.prompt_tokens_details.cached_tokens == 0
    assert u.prompt_tokens == 425 + u.prompt_tokens_details.text_tokens
    assert u.completion_tokens == math.ceil(len(c.choices[0].message.content) / 4)
    assert u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert a.headers["x-request-id"].startswith("req_")
    assert a.headers["openai-version"] == "2020-10-01"


async def test_anthropic_success_validates_as_a_message():
    async with SimServer(describer=False) as sim:
        a = await send(sim, "anthropic")
    assert a.status == 200
    m = Message.model_validate(a.json)
    assert m.stop_reason == "end_turn" and m.content[0].type == "text"
    assert m.id.startswith("msg_evtuisim_") and m.model == "claude-haiku-4-5"
    assert m.usage.input_tokens > 414  # image (414) + prompt
    assert m.usage.cache_read_input_tokens == 0 and m.usage.cache_creation_input_tokens == 0
    assert m.usage.cache_creation.ephemeral_5m_input_tokens == 0
    assert a.headers["request-id"].startswith("req_")


async def test_gemini_success_validates_as_a_generate_content_response():
    body = body_for("gemini", generationConfig={"thinkingConfig": {"thinkingBudget": 0}})
    async with SimServer(describer=False) as sim:
        a = await send(sim, "gemini", body)
        v1 = await send(sim, "gemini", body, model="gemini-2.5-flash")
    assert a.status == v1.status == 200
    r = types.GenerateContentResponse.model_validate(a.json)
    assert r.candidates[0].finish_reason == types.FinishReason.STOP
    assert "640x480" in r.text
    details = {d.modality: d.token_count for d in r.usage_metadata.prompt_tokens_details}
    assert details[types.MediaModality.IMAGE] == 1032
    assert r.usage_metadata.prompt_token_count == sum(details.values())
    assert r.usage_metadata.thoughts_token_count is None
    assert r.response_id.startswith("evtuisim-")
    assert not [h for h in a.headers if "ratelimit" in h.lower()]


async def test_compat_success_validates_and_the_v1_gemini_path_is_served():
    async with SimServer(describer=False) as sim:
        a = await send(sim, "compat", body_for("compat", model="Qwen/Qwen2.5-VL-7B-Instruct"))
        root = sim.base_url("gemini")
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{root}/v1/models/gemini-2.5-flash-lite:generateContent",
                data=orjson.dumps(body_for("gemini")),
                headers=GEMINI_H,
            ) as r,
        ):
            assert r.status == 200
    c = ChatCompletion.model_validate(a.json)
    assert c.usage.prompt_tokens > 23 * 18  # Qwen-VL patches: ceil(640/28) x ceil(480/28)
    assert c.system_fingerprint == FINGERPRINT


async def test_answers_cut_at_the_output_cap_report_it():
    async with SimServer(describer=False) as sim:
        o = await send(sim, "openai", body_for("openai", max_tokens=3))
        a = await send(sim, "anthropic", body_for("anthropic", max_tokens=3))
        g = await send(
            sim,
            "gemini",
            body_for(
                "gemini",
                generationConfig={"maxOutputTokens": 3, "thinkingConfig": {"thinkingBudget": 0}},
            ),
        )
    assert o.json["choices"][0]["finish_reason"] == "length"
    assert o.json["usage"]["completion_tokens"] == 3
    assert a.json["stop_reason"] == "max_tokens" and a.json["usage"]["output_tokens"] == 3
    assert g.json["candidates"][0]["finishReason"] == "MAX_TOKENS"


async def test_reasoning_and_thinking_eat_the_output_budget():
    async with SimServer(describer=False) as sim:
        o = await send(sim, "openai", body_for("openai", model="o3", max_tokens=100))
        g = await send(sim, "gemini", body_for("gemini", max_tokens=100))
        g_off = await send(
            sim,
            "gemini",
            body_for(
                "gemini",
                generationConfig={"maxOutputTokens": 100, "thinkingConfig": {"thinkingBudget": 0}},
            ),
        )
    choice = o.json["choices"][0]
    assert choice["message"]["content"] == "" and choice["finish_reason"] == "length"
    assert o.json["usage"]["completion_tokens_details"]["reasoning_tokens"] == 100
    cand = g.json["candidates"][0]
    assert cand["finishReason"] == "MAX_TOKENS" and "parts" not in cand["content"]
    assert g.json["usageMetadata"]["thoughtsTokenCount"] == 100
    assert g_off.json["candidates"][0]["finishReason"] == "STOP"


async def test_fast_path_and_full_parse_agree():
    """A prompt containing the data-URL marker, and JSON-escaped slashes, still parse right."""
    async with SimServer(describer=False) as sim:
        plain = await send(sim, "openai")
        tricky = await send(sim, "openai", body_for("openai", text="see data:x;base64,abc"))
        raw = orjson.dumps(body_for("openai")).replace(b"/", b"\\/")
        escaped = await send(sim, "openai", raw)
        a_raw = orjson.dumps(body_for("anthropic")).replace(b"/", b"\\/")
        a_escaped = await send(sim, "anthropic", a_raw)
    image_tokens = [
        x.json["usage"]["prompt_tokens_details"]["image_tokens"] for x in (plain, tricky, escaped)
    ]
    assert image_tokens == [425, 425, 425]
    assert a_escaped.status == 200


async def test_gemini_takes_urlsafe_base64_and_anthropic_does_not():
    data = png(60, 40) + b"\xfb\xff\xfe"
    urlsafe = base64.urlsafe_b64encode(data).decode().rstrip("=")
    assert "-" in urlsafe or "_" in urlsafe
    async with SimServer(describer=False) as sim:
        g = await send(sim, "gemini", body_for("gemini", urlsafe, media="image/png"))
        a = await send(sim, "anthropic", body_for("anthropic", urlsafe, media="image/png"))
    assert g.status == 200
    assert a.status == 400 and "base64" in a.json["error"]["message"]


async def test_captions_come_from_the_describer_once_per_image():
    calls: list[tuple[int, str]] = []

    def describe_image(data: bytes, media_type: str) -> str:
        calls.append((len(data), media_type))
        return f"scene-{len(data)}"

    def caption(desc: str, style: str, *, max_words: int | None = None) -> str:
        return f"{style}: {desc}"

    fake = SimpleNamespace(describe_image=describe_image, caption=caption)
    other = b64(jpeg(320, 240, seed=3))
    async with SimServer(describer=fake) as sim:
        first = await send(sim, "openai")
        again = await send(sim, "openai")
        anth = await send(sim, "anthropic")
        new = await send(sim, "openai", body_for("openai", other))
    text = [x.json["choices"][0]["message"]["content"] for x in (first, again, new)]
    assert text[0] == text[1] == f"openai: scene-{len(base64.b64decode(IMAGE))}"
    assert text[2] != text[0]
    tokens = [x.json["usage"]["prompt_tokens_details"]["image_tokens"] for x in (again, new)]
    assert tokens == [425, 255]  # same request shape, another image: 640x480 vs 320x240
    assert anth.json["content"][0]["text"].startswith("anthropic: scene-")
    assert calls == [
        (len(base64.b64decode(IMAGE)), "image/jpeg"),
        (len(base64.b64decode(other)), "image/jpeg"),
    ]


# ----------------------------------------------------------------------------- request errors


def _err(a: Answer) -> Any:
    return a.json["error"]


async def test_auth_errors_per_provider():
    sc = scenario(
        providers={
            p: {"keys": ["sk-test-a", "sk-test-b", "sk-ant-test", "AIza-test"]}
            for p in ("openai", "anthropic", "gemini", "compat")
        }
    )
    wrong = "sk-" + "proj-WRONGabcdefghijklmnop1234"
    async with SimServer(sc, describer=False) as sim:
        o_none = await send(sim, "openai", headers={})
        o_bad = await send(sim, "openai", headers={"Authorization": f"Bearer {wrong}"})
        o_b = await send(sim, "openai", headers={"Authorization": "Bearer sk-test-b"})
        a_none = await send(sim, "anthropic", headers={"anthropic-version": "2023-06-01"})
        a_bad = await send(sim, "anthropic", headers={**ANTHROPIC_H, "x-api-key": wrong})
        a_bearer = await send(
            sim,
            "anthropic",
            headers={"Authorization": "Bearer sk-ant-test", "anthropic-version": "2023-06-01"},
        )
        g_none = await send(sim, "gemini", headers={})
        g_bad = await send(sim, "gemini", headers={"x-goog-api-key": wrong})
        c_none = await send(sim, "compat", headers={})
    assert o_none.status == 401 and _err(o_none)["code"] is None
    assert "didn't provide an API key" in _err(o_none)["message"]
    assert o_bad.status == 401 and _err(o_bad)["code"] == "invalid_api_key"
    assert wrong not in o_bad.raw.decode() and "1234" in _err(o_bad)["message"]
    assert o_b.status == 200
    assert a_none.status == 401 and _err(a_none)["type"] == "authentication_error"
    assert a_bad.status == 401 and a_bad.json["type"] == "error"
    assert a_bad.json["request_id"] == a_bad.headers["request-id"]
    assert a_bearer.status == 200  # anthropic SDK 2.x sends Authorization: Bearer
    assert g_none.status == 403 and _err(g_none)["status"] == "PERMISSION_DENIED"
    assert g_bad.status == 400 and _err(g_bad)["status"] == "INVALID_ARGUMENT"
    info = [d for d in _err(g_bad)["details"] if d["@type"].endswith("ErrorInfo")]
    assert info[0]["reason"] == "API_KEY_INVALID"
    assert c_none.status == 401 and c_none.json == {"error": "Unauthorized"}


async def test_any_key_is_accepted_when_none_are_listed_and_compat_needs_none():
    async with SimServer(describer=False) as sim:
        o = await send(sim, "openai", headers={"Authorization": "Bearer whatever"})
        c = await send(sim, "compat", headers={})
    assert o.status == c.status == 200


@pytest.mark.parametrize(
    ("headers", "body", "message"),
    [
        ({"x-api-key": "k"}, None, "anthropic-version: header is required"),
        (
            {"x-api-key": "k", "anthropic-version": "2024-01-01"},
            None,
            '"2024-01-01" is not a valid',
        ),
        (ANTHROPIC_H, {"model": "claude-haiku-4-5", "messages": []}, "max_tokens: Field required"),
        (ANTHROPIC_H, {"max_tokens": 5, "messages": []}, "model: Field required"),
        (ANTHROPIC_H, {"model": "m", "max_tokens": 5}, "messages: Field required"),
        (
            {**ANTHROPIC_H, "anthropic-version": "2026-10-21"},
            body_for("anthropic", temperature=0.2),
            "not supported with anthropic-version 2026-10-21",
        ),
        (ANTHROPIC_H, body_for("anthropic", image="QUJD$$$$"), "invalid base64"),
        (
            ANTHROPIC_H,
            body_for("anthropic", media="image/png"),
            "does not match the provided media type",
        ),
        (
            ANTHROPIC_H,
            body_for("anthropic", b64(png_header_only(9000, 10)), media="image/png"),
            "8000 pixels",
        ),
        (ANTHROPIC_H, body_for("anthropic", media="image/bmp"), "media_type: Input should be"),
    ],
)
async def test_anthropic_request_errors(headers, body, message):
    async with SimServer(describer=False) as sim:
        a = await send(sim, "anthropic", body, headers)
    assert a.status == 400
    assert a.json["type"] == "error" and _err(a)["type"] == "invalid_request_error"
    assert message in _err(a)["message"]


async def test_anthropic_temperature_is_fine_on_the_old_version_only():
    body = body_for("anthropic", temperature=0.2)
    async with SimServer(describer=False) as sim:
        old = await send(sim, "anthropic", body)
        new = await send(sim, "anthropic", body, {**ANTHROPIC_H, "anthropic-version": "2026-10-21"})
    assert old.status == 200
    assert new.status == 400  # same body, another version: not served from the parsed template


async def test_anthropic_size_limits():
    big = b64(png_header_only(100, 100) + b"\x00" * (8 * 1024 * 1024))  # > 10 MB base64
    many = [b64(png_header_only(2100, 100))] * 21
    body = body_for("anthropic", big, media="image/png")
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": d}}
        for d in many
    ]
    many_body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": content}],
    }
    async with SimServer(describer=False) as sim:
        image = await send(sim, "anthropic", body)
        request = await send(sim, "anthropic", b"x" * (33 * 1024 * 1024))
        crowd = await send(sim, "anthropic", many_body)
    assert image.status == 400 and "image exceeds 10 MB maximum" in _err(image)["message"]
    assert request.status == 413 and _err(request)["type"] == "request_too_large"
    assert crowd.status == 400 and "many-image requests: 2000 pixels" in _err(crowd)["message"]


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        ({"model": "gpt-4o"}, "missing_required_parameter", "messages"),
        ({"model": "gpt-4o", "messages": []}, "empty_array", "messages"),
        (
            body_for("openai", image="QUJD$$$$"),
            "invalid_image_url",
            "messages[0].content[1].image_url",
        ),
        (body_for("openai", b64(b"plain text, no image")), "invalid_image_format", None),
        (body_for("openai", media="image/png"), "invalid_image", None),
        (body_for("openai", b64(gif())), "invalid_image", None),  # GIF bytes, says JPEG
        (
            {**body_for("openai", model="gpt-5", max_tokens=None), "max_tokens": 5},
            "unsupported_parameter",
            "max_tokens",
        ),
        (body_for("openai", model="o3", temperature=0.2), "unsupported_value", "temperature"),
        (body_for("openai", temperature=2.5), "decimal_above_max_value", "temperature"),
    ],
)
async def test_openai_request_errors(body, code, param):
    async with SimServer(describer=False) as sim:
        a = await send(sim, "openai", body)
    assert a.status == 400
    err = _err(a)
    assert set(err) == {"message", "type", "param", "code"}
    assert err["type"] == "invalid_request_error" and err["code"] == code
    if param is not None:
        assert err["param"] == param


async def test_gemini_and_compat_request_errors():
    async with SimServer(describer=False) as sim:
        no_contents = await send(sim, "gemini", {"generationConfig": {}})
        bad_b64 = await send(sim, "gemini", body_for("gemini", image="QUJD$$$$"))
        gif_type = await send(sim, "gemini", body_for("gemini", b64(gif()), media="image/gif"))
        pro_no_think = await send(
            sim,
            "gemini",
            body_for("gemini", generationConfig={"thinkingConfig": {"thinkingBudget": 0}}),
            model="gemini-2.5-pro",
        )
        stream = await send(
            sim, "gemini", body_for("gemini"), model="gemini-2.5-flash:streamGenerateContent"
        )
        compat = await send(sim, "compat", {"model": "m"})
    assert no_contents.status == 400 and "contents is not specified" in _err(no_contents)["message"]
    assert bad_b64.status == 400 and _err(bad_b64)["details"][0]["@type"].endswith("BadRequest")
    assert gif_type.status == 400 and "Unsupported MIME type" in _err(gif_type)["message"]
    assert (
        pro_no_think.status == 400
        and "only works in thinking mode" in _err(pro_no_think)["message"]
    )
    assert stream.status == 404 and _err(stream)["status"] == "NOT_FOUND"
    assert compat.status == 400
    assert _err(compat)["code"] == 400 and _err(compat)["type"] == "BadRequestError"


# ----------------------------------------------------------------------------- rate limits


async def test_openai_limits_count_down_trip_and_refill():
    clock = Clock()
    sc = scenario(providers={"openai": {"rpm": 3, "tpm": 100_000}})
    async with SimServer(sc, clock=clock, describer=False) as sim:
        ok = [await send(sim, "openai") for _ in range(3)]
        limited = await send(sim, "openai")
        clock.advance(20.0)
        again = await send(sim, "openai")
    assert [a.headers["x-ratelimit-remaining-requests"] for a in ok] == ["2", "1", "0"]
    assert [a.headers["x-ratelimit-reset-requests"] for a in ok] == ["20s", "40s", "1m0s"]
    assert all(a.headers["x-ratelimit-limit-requests"] == "3" for a in ok)
    tokens = [int(a.headers["x-ratelimit-remaining-tokens"]) for a in ok]
    assert (
        tokens[0] > tokens[1] > tokens[2]
        and 100_000 - tokens[0] == ok[0].json["usage"]["prompt_tokens"]
    )
    assert limited.status == 429
    err = _err(limited)
    assert (err["type"], err["code"]) == ("requests", "rate_limit_exceeded")
    assert limited.headers["retry-after"] == "20" and limited.headers["retry-after-ms"] == "20000"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    assert again.status == 200
    assert sim.stats.limited["openai", "requests"] == 1


async def test_openai_tokens_per_minute_charges_the_larger_of_input_and_cap():
    clock = Clock()
    sc = scenario(providers={"openai": {"tpm": 1000}})
    async with SimServer(sc, clock=clock, describer=False) as sim:
        first = await send(sim, "openai", body_for("openai", max_tokens=700))
        second = await send(sim, "openai", body_for("openai", max_tokens=10))
    prompt = first.json["usage"]["prompt_tokens"]
    assert 300 < prompt < 700
    assert first.headers["x-ratelimit-remaining-tokens"] == "300"  # charged the cap, 700
    assert second.status == 429 and _err(second)["type"] == "tokens"  # needs its input, > 300
    assert second.headers["retry-after-ms"] == str((prompt - 300) * 60)  # refill 1000/min


async def test_anthropic_limits_use_rfc3339_resets_and_retry_after():
    clock = Clock()
    sc = scenario(providers={"anthropic": {"rpm": 2, "tpm": 40_000}})
    async with SimServer(sc, clock=clock, describer=False) as sim:
        ok = [await send(sim, "anthropic") for _ in range(2)]
        limited = await send(sim, "anthropic")
    h = ok[1].headers
    assert h["anthropic-ratelimit-requests-limit"] == "2"
    assert [a.headers["anthropic-ratelimit-requests-remaining"] for a in ok] == ["1", "0"]
    reset = dt.datetime.fromisoformat(
        h["anthropic-ratelimit-requests-reset"].replace("Z", "+00:00")
    )
    ahead = (reset - dt.datetime.now(dt.UTC)).total_seconds()
    assert 50 < ahead <= 61  # two requests out of 2/min: full again in 60 s
    assert int(h["anthropic-ratelimit-tokens-remaining"]) % 1000 == 0  # rounded to thousands
    assert limited.status == 429 and _err(limited)["type"] == "rate_limit_error"
    assert limited.headers["retry-after"] == "30"
    assert "2 requests per minute" in _err(limited)["message"]


async def test_gemini_limits_answer_resource_exhausted_with_retry_info():
    clock = Clock()
    sc = scenario(providers={"gemini": {"rpm": 1}})
    async with SimServer(sc, clock=clock, describer=False) as sim:
        ok = await send(sim, "gemini")
        limited = await send(sim, "gemini")
    assert ok.status == 200 and not [k for k in ok.headers if "ratelimit" in k.lower()]
    err = _err(limited)
    assert limited.status == 429 and err["status"] == "RESOURCE_EXHAUSTED"
    kinds = {d["@type"].rsplit(".", 1)[1]: d for d in err["details"]}
    assert kinds["RetryInfo"]["retryDelay"] == "60s"
    quota = kinds["QuotaFailure"]["violations"][0]
    assert quota["quotaId"] == "GenerateRequestsPerMinutePerProjectPerModel"
    assert quota["quotaDimensions"]["model"] == "gemini-2.5-flash"


async def test_limits_are_per_key_and_per_model():
    clock = Clock()
    sc = scenario(providers={"openai": {"rpm": 1, "keys": ["sk-test-a", "sk-test-b"]}})
    async with SimServer(sc, clock=clock, describer=False) as sim:
        a1 = await send(sim, "openai")
        a2 = await send(sim, "openai")
        b1 = await send(sim, "openai", headers={"Authorization": "Bearer sk-test-b"})
        a_mini = await send(sim, "openai", body_for("openai", model="gpt-4.1"))
    assert (a1.status, a2.status, b1.status, a_mini.status) == (200, 429, 200, 200)


async def test_time_scale_shortens_the_waits_clients_are_told():
    clock = Clock()
    sc = scenario(providers={"openai": {"rpm": 1}}, time_scale=60)
    async with SimServer(sc, clock=clock, describer=False) as sim:
        await send(sim, "openai")
        limited = await send(sim, "openai")
        clock.advance(1.0)  # one real second is one scenario minute
        again = await send(sim, "openai")
    assert limited.headers["retry-after-ms"] == "1000"
    assert again.status == 200


# ----------------------------------------------------------------------------- faults


def fault(provider: str, kind: str, **kw: Any) -> FaultSpec:
    return FaultSpec(provider=provider, kind=kind, **kw)


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini", "compat"])
async def test_injected_rate_limits_carry_the_providers_retry_signal(provider):
    async with SimServer(describer=False) as sim:
        sim.set_faults([fault(provider, "rate_limited", retry_after=2)])
        a = await send(sim, provider)
    assert a.status == 429
    if provider == "gemini":
        retry = [d for d in _err(a)["details"] if d["@type"].endswith("RetryInfo")]
        assert retry[0]["retryDelay"] == "2s"
    else:
        assert a.headers["retry-after"] == "2"
    if provider == "openai":
        assert a.headers["retry-after-ms"] == "2000" and _err(a)["code"] == "rate_limit_exceeded"
    if provider == "anthropic":
        assert _err(a)["type"] == "rate_limit_error"
    assert sim.stats.faults[provider, "rate_limited"] == 1


async def test_quota_exhausted_bodies():
    async with SimServer(describer=False) as sim:
        sim.set_faults([fault("*", "quota_exhausted")])
        o, a, g, c = [await send(sim, p) for p in ("openai", "anthropic", "gemini", "compat")]
    assert o.status == a.status == g.status == c.status == 429
    assert _err(o)["code"] == "insufficient_quota" and "retry-after" not in o.headers
    assert _err(a)["details"]["error_code"] == "enforced_spend_limit_reached"
    assert "retry-after" not in a.headers
    quota = [d for d in _err(g)["details"] if d["@type"].endswith("QuotaFailure")]
    assert "PerDay" in quota[0]["violations"][0]["quotaId"]
    assert _err(c)["type"] == "budget_exceeded"


async def test_overloaded_is_529_at_anthropic_and_503_elsewhere():
    async with SimServer(describer=False) as sim:
        sim.set_faults([fault("*", "overloaded", retry_after=3)])
        o, a, g, c = [await send(sim, p) for p in ("openai", "anthropic", "gemini", "compat")]
    assert (o.status, a.status, g.status, c.status) == (503, 529, 503, 503)
    assert _err(a) == {"type": "overloaded_error", "message": "Overloaded"}
    assert a.headers["retry-after"] == "3"
    assert _err(o)["code"] == "server_is_overloaded"
    assert _err(g)["status"] == "UNAVAILABLE"
    assert _err(c)["message"] == "Request queue full." and _err(c)["code"] == 503


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors(status):
    async with SimServer(describer=False) as sim:
        sim.set_faults([fault("*", "server_error", status=status)])
        answers = [await send(sim, p) for p in ("openai", "anthropic", "gemini", "compat")]
    assert [a.status for a in answers] == [status] * 4
    if status == 502:  # from the edge, not JSON
        assert all(a.raw.startswith(b"<html>") for a in answers)
        assert all(a.headers["Content-Type"].startswith("text/html") for a in answers)
    else:
        assert all(isinstance(a.json, dict) for a in answers)
    if status == 500:
        assert _err(answers[0])["type"] == "server_error"
        assert _err(answers[1])["type"] == "api_error"
        assert _err(answers[2])["status"] == "INTERNAL"


async def test_server_error_without_a_status_picks_among_500_502_503():
    async with SimServer(describer=False) as sim:
        sim.set_faults([fault("openai", "server_error")])
        statuses = {(await send(sim, "openai")).status for _ in range(30)}
    assert statuses == {500, 502, 503}


async def test_malformed_json_and_truncated_bodies():
    async with SimServer(describer=False) as sim:
        sim.set_faults([fault("openai", "malformed_json"), fault("anthropic", "truncated_body")])
        bad = await send(sim, "openai")
        with pytest.raises(aiohttp.ClientPayloadError):
            await send(sim, "anthropic")
    assert bad.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(bad.raw)


async def test_hang_outlasts_the_client_and_the_server_still_stops():
    sim = SimServer(describer=False)
    await sim.start()
    try:
        sim.set_faults([fault("gemini", "hang", hang=600)])
        with pytest.raises(asyncio.TimeoutError):
            await send(sim, "gemini", timeout=0.3)
    finally:
        await asyncio.wait_for(sim.stop(), 30)  # the held request is released at stop


async def test_outage_resets_connections_or_answers_503():
    async with SimServer(describer=False) as sim:
        sim.set_faults([fault("openai", "outage"), fault("anthropic", "outage", mode="503")])
        with pytest.raises(aiohttp.ClientConnectionError):  # reset or disconnected
            await send(sim, "openai")
        a = await send(sim, "anthropic")
        g = await send(sim, "gemini")
    assert a.status == 503 and g.status == 200
    assert sim.stats.faults["openai", "outage"] == 1


async def test_faults_apply_only_inside_their_window():
    clock = Clock()
    sc = scenario(faults=[{"provider": "openai", "kind": "overloaded", "from": "10s", "to": "20s"}])
    async with SimServer(sc, clock=clock, describer=False) as sim:
        statuses = []
        for step in (0, 9.9, 0.1, 9.8, 0.2, 100):  # t = 0, 9.9, 10, 19.8, 20, 120
            clock.advance(step)
            statuses.append((await send(sim, "openai")).status)
    assert statuses == [200, 200, 503, 503, 200, 200]


async def test_time_scale_plays_minutes_as_seconds():
    clock = Clock()
    sc = scenario(
        time_scale=60,
        faults=[
            {"provider": "anthropic", "kind": "outage", "mode": "503", "from": "2m", "to": "4m"}
        ],
    )
    async with SimServer(sc, clock=clock, describer=False) as sim:
        before = await send(sim, "anthropic")
        clock.advance(2.5)
        during = await send(sim, "anthropic")
        assert sim.elapsed() == pytest.approx(150)
        clock.advance(1.6)
        after = await send(sim, "anthropic")
    assert (before.status, during.status, after.status) == (200, 503, 200)


async def test_fault_rates_are_seeded_and_can_target_one_model():
    async def run(seed: int) -> list[int]:
        sc = scenario(
            seed=seed,
            faults=[{"provider": "openai", "kind": "overloaded", "rate": 0.5, "model": "gpt-4o"}],
        )
        async with SimServer(sc, describer=False) as sim:
            out = [(await send(sim, "openai")).status for _ in range(40)]
            other = await send(sim, "openai", body_for("openai", model="gpt-4.1"))
            assert other.status == 200
            return out

    a, b, c = await run(1), await run(1), await run(2)
    assert a == b and a != c
    assert 5 < a.count(503) < 35


async def test_stats_count_requests_faults_and_tokens():
    async with SimServer(describer=False) as sim:
        ok = await send(sim, "openai")
        await send(sim, "openai", headers={})
        sim.set_faults([fault("openai", "overloaded")])
        await send(sim, "openai")
    assert sim.stats.count("openai") == 3
    assert sim.stats.count("openai", 200) == 1 and sim.stats.count(status=401) == 1
    assert sim.stats.faults["openai", "overloaded"] == 1
    assert sim.stats.input_tokens["openai"] == ok.json["usage"]["prompt_tokens"]
    assert sim.stats.output_tokens["openai"] == ok.json["usage"]["completion_tokens"]
    assert sim.stats.as_dict()["requests"]["openai 503"] == 1


async def test_latency_holds_answers_back():
    sc = scenario(providers={"openai": {"latency_ms": 400}})
    async with SimServer(sc, describer=False) as sim:
        with pytest.raises(asyncio.TimeoutError):
            await send(sim, "openai", timeout=0.05)
        fast = await send(sim, "anthropic", timeout=10)
    assert fast.status == 200


def test_latency_draws_repeat_for_a_seed():
    sc = scenario(
        seed=5, providers={"anthropic": {"latency_ms": {"dist": "uniform", "min": 1, "max": 900}}}
    )
    a, b = SimServer(sc), SimServer(sc)
    other = SimServer(sc.model_copy(update={"seed": 6}))
    draw = [s._lanes["anthropic"].latency for s in (a, b, other)]
    first = [draw[0]() for _ in range(20)]
    assert first == [draw[1]() for _ in range(20)]
    assert first != [draw[2]() for _ in range(20)]
