"""Clients nobody here wrote, against the simulator: the official openai, anthropic and
google-genai SDKs parse its successes and map its errors to their own classes, reading
the retry delay exactly as they would from the real service. The same scenarios then
drive evtui's own adapters, which must classify them the same way."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import Any

import cv2
import numpy as np
import pytest

from evtui.providers import errors as ev
from evtui.providers import make_adapter
from evtui.providers.client import ProviderClient
from evtui.providers.types import CaptionRequest, ImagePart
from evtui.sim import FaultSpec, Scenario, SimServer

openai = pytest.importorskip("openai")
anthropic = pytest.importorskip("anthropic")
genai = pytest.importorskip("google.genai")
from google.genai import errors as genai_errors  # noqa: E402
from google.genai import types as genai_types  # noqa: E402

KEY = "sk-test-conformance"
PROMPT = "Describe this event-camera frame."


def frame_jpeg() -> bytes:
    """A small frame like evtui sends: a dark CD-frame background with an event streak."""
    img = np.full((120, 160, 3), (52, 37, 30), np.uint8)
    img[40:44, 30:130] = 255
    img[44:48, 30:130] = (200, 126, 64)
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()


JPEG = frame_jpeg()
B64 = base64.b64encode(JPEG).decode()


def with_sim(body: Callable[[SimServer], Awaitable[Any]], scenario: Scenario | None = None) -> Any:
    async def run() -> Any:
        async with SimServer(scenario or Scenario(), port=0) as sim:
            return await body(sim)

    return asyncio.run(run())


def faults(*specs: dict) -> list[FaultSpec]:
    return [FaultSpec.model_validate(s) for s in specs]


# -- official SDKs: successes ----------------------------------------------------------


def test_openai_sdk_parses_a_success():
    async def body(sim: SimServer):
        client = openai.AsyncOpenAI(base_url=sim.base_url("openai"), api_key=KEY, max_retries=0)
        r = await client.chat.completions.create(
            model="gpt-4o",
            max_completion_tokens=200,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": PROMPT},
                        {
                            "type": "image_url",
                            "image_url": {"url": f"data:image/jpeg;base64,{B64}"},
                        },
                    ],
                }
            ],
        )
        await client.close()
        return r

    r = with_sim(body)
    assert r.choices[0].message.content.strip()
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.prompt_tokens > 0 and r.usage.completion_tokens > 0


def test_anthropic_sdk_parses_a_success():
    async def body(sim: SimServer):
        client = anthropic.AsyncAnthropic(
            base_url=sim.base_url("anthropic"),
            api_key=KEY,
            max_retries=0,
            default_headers={"anthropic-version": "2023-06-01"},
        )
        r = await client.messages.create(
            model="claude-haiku-4-5",
            max_tokens=200,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "image",
                            "source": {"type": "base64", "media_type": "image/jpeg", "data": B64},
                        },
                        {"type": "text", "text": PROMPT},
                    ],
                }
            ],
        )
        await client.close()
        return r

    r = with_sim(body)
    assert r.content[0].type == "text" and r.content[0].text.strip()
    assert r.stop_reason == "end_turn"
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0


def genai_client(sim: SimServer):
    return genai.Client(
        api_key=KEY,
        http_options=genai_types.HttpOptions(base_url=sim.base_url("gemini"), api_version="v1beta"),
    )


def test_genai_sdk_parses_a_success():
    async def body(sim: SimServer):
        client = genai_client(sim)
        return await client.aio.models.generate_content(
            model="gemini-2.5-flash",
            contents=[genai_types.Part.from_bytes(data=JPEG, mime_type="image/jpeg"), PROMPT],
        )

    r = with_sim(body)
    assert r.text and r.text.strip()
    assert r.usage_metadata.prompt_token_count > 0


# -- official SDKs: errors ---------------------------------------------------------------


def openai_call(sim: SimServer):
    client = openai.AsyncOpenAI(base_url=sim.base_url("openai"), api_key=KEY, max_retries=0)
    return client, client.chat.completions.create(
        model="gpt-4o",
        max_completion_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": PROMPT},
                    {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{B64}"}},
                ],
            }
        ],
    )


def anthropic_call(sim: SimServer):
    client = anthropic.AsyncAnthropic(
        base_url=sim.base_url("anthropic"), api_key=KEY, max_retries=0
    )
    return client, client.messages.create(
        model="claude-haiku-4-5",
        max_tokens=50,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/jpeg", "data": B64},
                    },
                    {"type": "text", "text": PROMPT},
                ],
            }
        ],
    )


def sdk_error(call, fault_list: list[FaultSpec]) -> tuple[BaseException, Any]:
    async def body(sim: SimServer):
        sim.set_faults(fault_list)
        client, coro = call(sim)
        try:
            await coro
        except Exception as e:  # the SDK's own class is what we assert on
            return e, client
        finally:
            await client.close()
        raise AssertionError("the SDK call succeeded under a fault")

    return with_sim(body)


def test_openai_sdk_rate_limit_and_its_retry_delay():
    e, client = sdk_error(
        openai_call, faults({"provider": "openai", "kind": "rate_limited", "retry_after": "2.5s"})
    )
    assert isinstance(e, openai.RateLimitError)
    assert client._parse_retry_after_header(e.response.headers) == pytest.approx(2.5)
    assert e.code == "rate_limit_exceeded"


def test_openai_sdk_quota_exhausted_is_a_429_with_its_code():
    e, _ = sdk_error(openai_call, faults({"provider": "openai", "kind": "quota_exhausted"}))
    assert isinstance(e, openai.RateLimitError)
    assert (
        e.code in {"insufficient_quota", "credit_balance_exhausted"}
        or e.type == "insufficient_quota"
    )


def test_openai_sdk_server_errors():
    e, _ = sdk_error(openai_call, faults({"provider": "openai", "kind": "overloaded"}))
    assert isinstance(e, openai.InternalServerError) and e.status_code == 503


def test_anthropic_sdk_rate_limit_and_its_retry_delay():
    e, client = sdk_error(
        anthropic_call,
        faults({"provider": "anthropic", "kind": "rate_limited", "retry_after": "3s"}),
    )
    assert isinstance(e, anthropic.RateLimitError)
    assert client._parse_retry_after_header(e.response.headers) == pytest.approx(3.0)


def test_anthropic_sdk_overloaded_is_529():
    e, _ = sdk_error(anthropic_call, faults({"provider": "anthropic", "kind": "overloaded"}))
    assert isinstance(e, anthropic.OverloadedError) and e.status_code == 529


def test_anthropic_sdk_spend_cap_has_no_retry_after():
    e, client = sdk_error(
        anthropic_call, faults({"provider": "anthropic", "kind": "quota_exhausted"})
    )
    assert isinstance(e, anthropic.RateLimitError)
    assert "retry-after" not in e.response.headers
    assert client._parse_retry_after_header(e.response.headers) is None


def test_genai_sdk_rate_limit_carries_retry_info():
    async def body(sim: SimServer):
        sim.set_faults(faults({"provider": "gemini", "kind": "rate_limited", "retry_after": "4s"}))
        try:
            await genai_client(sim).aio.models.generate_content(
                model="gemini-2.5-flash",
                contents=[genai_types.Part.from_bytes(data=JPEG, mime_type="image/jpeg"), PROMPT],
            )
        except genai_errors.ClientError as e:
            return e
        raise AssertionError("no error")

    e = with_sim(body)
    assert e.code == 429 and e.status == "RESOURCE_EXHAUSTED"
    details = e.details["error"]["details"] if "error" in e.details else e.details
    delays = [d.get("retryDelay") for d in details if d.get("@type", "").endswith("RetryInfo")]
    assert delays == ["4s"]


def test_sdks_reject_an_unknown_key_as_auth_errors():
    scen = Scenario.model_validate(
        {"providers": {"openai": {"keys": ["sk-good"]}, "anthropic": {"keys": ["sk-good"]}}}
    )

    async def body(sim: SimServer):
        out = []
        for call in (openai_call, anthropic_call):
            client, coro = call(sim)
            try:
                await coro
            except Exception as e:
                out.append(e)
            finally:
                await client.close()
        return out

    oe, ae = with_sim(body, scen)
    assert isinstance(oe, openai.AuthenticationError)
    assert isinstance(ae, anthropic.AuthenticationError)
    assert KEY not in str(oe) and KEY not in str(ae)  # the simulator masks echoed keys


# -- evtui's adapters against the same scenarios ---------------------------------------

ADAPTER_MODELS = {
    "openai": "gpt-4o",
    "anthropic": "claude-haiku-4-5",
    "gemini": "gemini-2.5-flash",
    "compat": "qwen2.5-vl",
}
PROTOCOL = {
    "openai": "openai",
    "anthropic": "anthropic",
    "gemini": "gemini",
    "compat": "openai-compatible",
}


def evtui_call(
    provider: str,
    fault_list: list[FaultSpec],
    scenario: Scenario | None = None,
    timeout_s: float = 5,
):
    async def body(sim: SimServer):
        sim.set_faults(fault_list)
        adapter = make_adapter(PROTOCOL[provider], base_url=sim.base_url(provider))
        client = ProviderClient()
        req = CaptionRequest(
            model=ADAPTER_MODELS[provider],
            prompt=PROMPT,
            image=ImagePart(JPEG, "image/jpeg", 160, 120),
            max_output_tokens=100,
        )
        try:
            return await client.send(adapter, req, KEY, timeout_s=timeout_s)
        except ev.ProviderError as e:
            return e
        finally:
            await client.close()

    return with_sim(body, scenario)


@pytest.mark.parametrize("provider", sorted(ADAPTER_MODELS))
def test_evtui_success_is_simulated_and_accounted(provider):
    c = evtui_call(provider, [])
    assert not isinstance(c, ev.ProviderError), c
    assert c.text.strip() and c.finish_reason == "stop"
    assert c.usage.input_tokens > 0 and c.usage.output_tokens > 0
    assert c.simulated  # every simulated answer says so, and evtui keeps that mark


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_evtui_reads_the_retry_delay(provider):
    e = evtui_call(
        provider, faults({"provider": provider, "kind": "rate_limited", "retry_after": "2.5s"})
    )
    assert isinstance(e, ev.RateLimited)
    # Anthropic's retry-after is whole seconds; OpenAI adds retry-after-ms, Gemini "2.5s".
    assert e.retry_after == pytest.approx({"anthropic": 3.0}.get(provider, 2.5))


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_evtui_tells_quota_from_rate_limit(provider):
    e = evtui_call(provider, faults({"provider": provider, "kind": "quota_exhausted"}))
    assert isinstance(e, ev.QuotaExhausted), e


@pytest.mark.parametrize(
    "provider, kind, cls",
    [
        ("anthropic", "overloaded", ev.Overloaded),
        ("openai", "overloaded", ev.Overloaded),
        ("openai", "server_error", ev.ServerError),
        ("gemini", "malformed_json", ev.MalformedResponse),
        ("anthropic", "truncated_body", ev.MalformedResponse),
        ("compat", "overloaded", ev.Overloaded),
    ],
)
def test_evtui_classifies_injected_faults(provider, kind, cls):
    e = evtui_call(provider, faults({"provider": provider, "kind": kind}))
    assert isinstance(e, cls), e


def test_evtui_times_out_on_a_hang_and_refuses_a_bad_key():
    e = evtui_call(
        "openai", faults({"provider": "openai", "kind": "hang", "hang": "30s"}), timeout_s=0.5
    )
    assert isinstance(e, ev.Timeout)
    scen = Scenario.model_validate({"providers": {"anthropic": {"keys": ["sk-good"]}}})
    e = evtui_call("anthropic", [], scen)
    assert isinstance(e, ev.AuthRejected) and KEY not in str(e)
