"""Error bodies per protocol → the taxonomy class, code, retry_after and rate limits.

Each case is a documented body (reference §3, §8, §9) written by hand. The class
decides what the engine does, so a wrong class is a wrong action: retrying a spent
budget, or giving up on a frame that only needed a second.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from evtui.providers import make_adapter
from evtui.providers.errors import (
    AuthRejected,
    BadRequest,
    ImageTooLarge,
    MalformedResponse,
    Overloaded,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ServerError,
)


def classify(protocol: str, status: int, body, headers=None, key: str | None = None):
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    err = make_adapter(protocol).classify_error(status, headers or {}, raw, key=key)
    assert isinstance(err, ProviderError)
    assert "\n" not in str(err)
    return err


def openai_error(message: str, type_: str | None, code: str | None, param=None):
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


# -- OpenAI -----------------------------------------------------------------------------

OPENAI_RATE = openai_error(
    "Rate limit reached for gpt-4o in organization org-abc on tokens per min (TPM): "
    "Limit 30000, Used 29500, Requested 1500. Please try again in 2s.",
    "tokens",
    "rate_limit_exceeded",
)
OPENAI_QUOTA = openai_error(
    "You exceeded your current quota, please check your plan and billing details.",
    "insufficient_quota",
    "insufficient_quota",
)


def test_openai_fixture_validates_with_the_sdk():
    from openai.types import ErrorObject

    for body in (OPENAI_RATE, OPENAI_QUOTA):
        assert ErrorObject.model_validate(body["error"]).message


def test_openai_rate_limited_with_retry_after_and_headers():
    headers = {
        "retry-after": "2",
        "x-ratelimit-limit-tokens": "30000",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "2s",
        "x-request-id": "req_abc",
    }
    err = classify("openai", 429, OPENAI_RATE, headers)
    assert type(err) is RateLimited and err.retryable
    assert err.retry_after == 2.0 and err.code == "rate_limit_exceeded"
    assert err.rate_limits.tokens.remaining == 0 and err.request_id == "req_abc"
    assert "tokens per min" in err.message


def test_openai_rate_limited_without_retry_after_waits_for_the_empty_bucket():
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "1m30s",
        "x-ratelimit-remaining-tokens": "5000",
        "x-ratelimit-reset-tokens": "6s",
    }
    err = classify("openai", 429, OPENAI_RATE, headers)
    assert type(err) is RateLimited and err.retry_after == 90.0


@pytest.mark.parametrize(
    "code",
    [
        "insufficient_quota",
        "credit_balance_exhausted",
        "organization_spend_limit_exceeded",
        "project_spend_limit_exceeded",
        "organization_usage_limit_exceeded",
    ],
)
def test_openai_quota_429s_are_not_retried(code):
    err = classify("openai", 429, openai_error("Spend cap reached.", "requests", code))
    assert type(err) is QuotaExhausted and not err.retryable and err.code == code
    err = classify("openai", 429, OPENAI_QUOTA, {"retry-after": "20"})
    assert type(err) is QuotaExhausted  # a retry-after does not make a quota retryable


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (
            401,
            openai_error("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
            AuthRejected,
            "invalid_api_key",
        ),
        (
            403,
            openai_error("Country, region, or territory not supported", "request_forbidden", None),
            AuthRejected,
            "request_forbidden",
        ),
        (
            400,
            openai_error(
                "This model's maximum context length is 128000 tokens.",
                "invalid_request_error",
                "context_length_exceeded",
                "messages",
            ),
            BadRequest,
            "context_length_exceeded",
        ),
        (
            404,
            openai_error("The model `gpt-9` does not exist", "invalid_request_error", None),
            BadRequest,
            "invalid_request_error",
        ),
        (
            400,
            openai_error(
                "Image too large: 60 MB > 50 MB.", "invalid_request_error", "image_too_large"
            ),
            ImageTooLarge,
            "image_too_large",
        ),
        (413, b"<html><body>413 Request Entity Too Large</body></html>", ImageTooLarge, None),
        (
            500,
            openai_error("The server had an error processing your request.", "server_error", None),
            ServerError,
            "server_error",
        ),
        (
            503,
            openai_error(
                "The engine is currently overloaded, please try again later.",
                "server_is_overloaded",
                None,
            ),
            Overloaded,
            "server_is_overloaded",
        ),
        (502, b"<html><head><title>502 Bad Gateway</title></head></html>", ServerError, None),
        (504, b"", ServerError, None),
        (408, b"", ServerError, None),
        (409, openai_error("lock timeout", "conflict", None), ServerError, "conflict"),
        (422, openai_error("Unprocessable", "invalid_request_error", None), BadRequest, None),
    ],
)
def test_openai_status_table(status, body, cls, code):
    err = classify("openai", status, body)
    assert type(err) is cls
    if code:
        assert err.code == code
    assert err.status == status and err.provider == "openai"


def test_non_json_error_bodies_show_their_first_bytes():
    err = classify("openai", 502, b"<html><head><title>502 Bad Gateway</title></head>\n</html>")
    assert "non-JSON" in err.message and "502 Bad Gateway" in err.message
    err = classify("openai", 504, b"")
    assert "empty body" in err.message
    err = classify("openai", 500, b'{"error": {}}')
    assert "without a message" in err.message


def test_x_should_retry_false_stops_retries():
    err = classify("openai", 429, OPENAI_RATE, {"x-should-retry": "false", "retry-after": "1"})
    assert type(err) is QuotaExhausted and "x-should-retry" in err.message
    err = classify("openai", 400, openai_error("bad", "invalid_request_error", None), {})
    assert type(err) is BadRequest
    # Only a veto: "true" does not turn a 400 into something retryable.
    err = classify("openai", 400, openai_error("bad", None, None), {"x-should-retry": "true"})
    assert type(err) is BadRequest


# -- Anthropic --------------------------------------------------------------------------


def anthropic_error(type_: str, message: str, details=None):
    error = {"type": type_, "message": message}
    if details is not None:
        error["details"] = details
    return {"type": "error", "error": error, "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy"}


ANTHROPIC_RATE = anthropic_error(
    "rate_limit_error",
    "This request would exceed the rate limit for your organization of 50,000 input tokens "
    "per minute.",
)
ANTHROPIC_SPEND = anthropic_error(
    "rate_limit_error",
    "You have reached your monthly spend limit.",
    {"error_code": "enforced_spend_limit_reached"},
)
ANTHROPIC_RAMP = anthropic_error(
    "rate_limit_error", "Usage is ramping too fast.", {"error_code": "ramp_limit_exceeded"}
)
ANTHROPIC_OVERLOADED = anthropic_error("overloaded_error", "Overloaded")
ANTHROPIC_DIMENSIONS = anthropic_error(
    "invalid_request_error",
    "messages.0.content.0.image.source.base64.data: image dimensions exceed max allowed size",
    {
        "error_code": "image_dimensions_too_large",
        "max_side_length_pixels": 8000,
        "paths": ["messages.0.content.0"],
    },
)


def test_anthropic_fixtures_validate_with_the_sdk():
    from anthropic.types import ErrorResponse

    for body in (ANTHROPIC_RATE, ANTHROPIC_SPEND, ANTHROPIC_OVERLOADED, ANTHROPIC_DIMENSIONS):
        assert ErrorResponse.model_validate(body).type == "error"


NOW = datetime(2025, 8, 21, 12, 40, 0, tzinfo=UTC).timestamp()


def test_anthropic_rate_limited_with_retry_after():
    headers = {
        "retry-after": "12",
        "anthropic-ratelimit-input-tokens-limit": "50000",
        "anthropic-ratelimit-input-tokens-remaining": "0",
        "anthropic-ratelimit-input-tokens-reset": "2025-08-21T12:40:12Z",
        "request-id": "req_hdr",
    }
    adapter = make_adapter("anthropic")
    limits = adapter.rate_limits(headers, b"", now=NOW)
    err = adapter.classify_error(429, headers, orjson.dumps(ANTHROPIC_RATE), rate_limits=limits)
    assert type(err) is RateLimited and err.retry_after == 12.0
    assert err.rate_limits.input_tokens.reset_s == 12.0
    assert err.request_id == "req_hdr" and err.code == "rate_limit_error"


def test_anthropic_request_id_from_body_when_no_header():
    err = classify("anthropic", 429, ANTHROPIC_RATE, {"retry-after": "1"})
    assert err.request_id == "req_011CSHoEeqs5C35K2UUqR7Fy"


def test_anthropic_spend_cap_and_rate_limit_without_retry_after_are_quota():
    err = classify("anthropic", 429, ANTHROPIC_SPEND)
    assert type(err) is QuotaExhausted and err.code == "enforced_spend_limit_reached"
    contract = anthropic_error(
        "rate_limit_error", "Contract limit.", {"error_code": "contract_spend_limit_reached"}
    )
    assert type(classify("anthropic", 429, contract, {"retry-after": "5"})) is QuotaExhausted
    # The spend-cap 429 carries no retry-after: a bare rate_limit_error without one is quota.
    assert type(classify("anthropic", 429, ANTHROPIC_RATE)) is QuotaExhausted
    assert type(classify("anthropic", 429, ANTHROPIC_RATE, {"retry-after-ms": "800"})) is (
        RateLimited
    )


def test_anthropic_ramp_limit_is_a_wait():
    err = classify("anthropic", 429, ANTHROPIC_RAMP, {"retry-after": "30"})
    assert type(err) is RateLimited and err.retry_after == 30.0
    assert err.code == "ramp_limit_exceeded"
    assert type(classify("anthropic", 429, ANTHROPIC_RAMP)) is RateLimited


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (529, ANTHROPIC_OVERLOADED, Overloaded),
        (401, anthropic_error("authentication_error", "invalid x-api-key"), AuthRejected),
        (403, anthropic_error("permission_error", "not allowed"), AuthRejected),
        (402, anthropic_error("billing_error", "Your credit balance is too low."), QuotaExhausted),
        (404, anthropic_error("not_found_error", "model: claude-9"), BadRequest),
        (400, anthropic_error("invalid_request_error", "max_tokens: required"), BadRequest),
        (400, ANTHROPIC_DIMENSIONS, ImageTooLarge),
        (
            400,
            anthropic_error(
                "invalid_request_error",
                "messages.0.content.0.image.source.base64: image exceeds 5 MB maximum: "
                "5316852 bytes > 5242880 bytes",
            ),
            ImageTooLarge,
        ),
        (
            413,
            anthropic_error("request_too_large", "Request exceeds the maximum size"),
            ImageTooLarge,
        ),
        (
            413,
            b"<html><center><h1>413 Request Entity Too Large</h1></center></html>",
            ImageTooLarge,
        ),
        (500, anthropic_error("api_error", "Internal server error"), ServerError),
        (504, anthropic_error("timeout_error", "Request timed out"), ServerError),
        (409, anthropic_error("conflict_error", "conflict"), ServerError),
        (503, b"upstream connect error or disconnect/reset before headers", Overloaded),
    ],
)
def test_anthropic_status_table(status, body, cls):
    assert type(classify("anthropic", status, body)) is cls


# -- Gemini -----------------------------------------------------------------------------


def gemini_error(code: int, status: str, message: str, *details):
    return {"error": {"code": code, "message": message, "status": status, "details": list(details)}}


def quota_failure(quota_id: str):
    return {
        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
        "violations": [
            {
                "quotaMetric": "generativelanguage.googleapis.com/"
                "generate_content_free_tier_requests",
                "quotaId": quota_id,
                "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                "quotaValue": "10",
            }
        ],
    }


def retry_info(delay: str):
    return {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": delay}


QUOTA_MESSAGE = (
    "You exceeded your current quota, please check your plan and billing details. For more "
    "information on this error, head to: https://ai.google.dev/gemini-api/docs/rate-limits."
)
GEMINI_PER_MINUTE = gemini_error(
    429,
    "RESOURCE_EXHAUSTED",
    QUOTA_MESSAGE,
    quota_failure("GenerateRequestsPerMinutePerProjectPerModel-FreeTier"),
    retry_info("33s"),
)
GEMINI_PER_DAY = gemini_error(
    429,
    "RESOURCE_EXHAUSTED",
    QUOTA_MESSAGE,
    quota_failure("GenerateRequestsPerDayPerProjectPerModel-FreeTier"),
    retry_info("43s"),
)
GEMINI_KEY_INVALID = gemini_error(
    400,
    "INVALID_ARGUMENT",
    "API key not valid. Please pass a valid API key.",
    {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    },
)


def test_gemini_per_minute_quota_waits_retry_delay_even_in_an_array():
    for body in (GEMINI_PER_MINUTE, [GEMINI_PER_MINUTE]):
        err = classify("gemini", 429, body)
        assert type(err) is RateLimited and err.retry_after == 33.0
        assert err.rate_limits.retry_after == 33.0 and err.code == "RESOURCE_EXHAUSTED"
        assert "exceeded your current quota" in err.message


def test_gemini_per_day_quota_stops():
    err = classify("gemini", 429, GEMINI_PER_DAY)
    assert type(err) is QuotaExhausted and not err.retryable


def test_gemini_billing_messages_stop_but_the_usual_quota_text_does_not():
    prepay = gemini_error(
        429, "RESOURCE_EXHAUSTED", "Your prepayment credits are depleted. Please top up."
    )
    assert type(classify("gemini", 429, prepay)) is QuotaExhausted
    # The standard per-minute text mentions "billing details": still a wait.
    plain = gemini_error(429, "RESOURCE_EXHAUSTED", QUOTA_MESSAGE, retry_info("0.5s"))
    err = classify("gemini", 429, plain)
    assert type(err) is RateLimited and err.retry_after == 0.5


@pytest.mark.parametrize(
    ("status", "body", "cls", "code"),
    [
        (400, GEMINI_KEY_INVALID, AuthRejected, "API_KEY_INVALID"),
        (
            403,
            gemini_error(403, "PERMISSION_DENIED", "Method doesn't allow unregistered callers."),
            AuthRejected,
            "PERMISSION_DENIED",
        ),
        (
            400,
            gemini_error(
                400, "FAILED_PRECONDITION", "User location is not supported for the API use."
            ),
            QuotaExhausted,
            "FAILED_PRECONDITION",
        ),
        (
            400,
            gemini_error(400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
            BadRequest,
            "INVALID_ARGUMENT",
        ),
        (
            400,
            gemini_error(
                400,
                "INVALID_ARGUMENT",
                "Request payload size exceeds the limit: 20971520 bytes.",
            ),
            ImageTooLarge,
            "INVALID_ARGUMENT",
        ),
        (
            503,
            gemini_error(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
            Overloaded,
            "UNAVAILABLE",
        ),
        (500, gemini_error(500, "INTERNAL", "An internal error has occurred."), ServerError, None),
        (
            504,
            gemini_error(
                504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."
            ),
            ServerError,
            None,
        ),
        (404, gemini_error(404, "NOT_FOUND", "models/gemini-9 is not found"), BadRequest, None),
    ],
)
def test_gemini_status_table(status, body, cls, code):
    err = classify("gemini", status, body)
    assert type(err) is cls
    if code:
        assert err.code == code


# -- OpenAI-compatible servers and gateways ---------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "headers", "cls", "needle"),
    [
        # vLLM: code is the HTTP status as an int; type names the exception.
        (
            400,
            {
                "error": {
                    "message": "bad image",
                    "type": "BadRequestError",
                    "param": None,
                    "code": 400,
                }
            },
            {},
            BadRequest,
            "bad image",
        ),
        (401, {"error": "Unauthorized"}, {}, AuthRejected, "Unauthorized"),
        (
            503,
            {
                "error": {
                    "message": "Request queue full.",
                    "type": "ServiceUnavailableError",
                    "param": None,
                    "code": 503,
                }
            },
            {},
            Overloaded,
            "queue full",
        ),
        (
            429,
            {"error": {"message": "Too many requests", "type": "TooManyRequests", "code": 429}},
            {"retry-after": "3"},
            RateLimited,
            "Too many",
        ),
        # Ollama: 503 when its queue is full; native errors are a bare string.
        (
            503,
            {"error": "server busy, please try again.  maximum pending requests exceeded"},
            {},
            Overloaded,
            "server busy",
        ),
        (
            404,
            {
                "error": {
                    "message": 'model "llava" not found, try pulling it first',
                    "type": "not_found_error",
                    "param": None,
                    "code": None,
                }
            },
            {},
            BadRequest,
            "try pulling",
        ),
        # LM Studio, older builds.
        (400, {"error": "Model does not support images"}, {}, BadRequest, "support images"),
        # LiteLLM: string status codes, litellm.* exception names, budgets.
        (
            429,
            {
                "error": {
                    "message": "litellm.RateLimitError: RateLimitError: OpenAIException - "
                    "Rate limit reached for gpt-4o",
                    "type": None,
                    "param": None,
                    "code": "429",
                }
            },
            {"x-ratelimit-reset-requests": "30", "x-ratelimit-remaining-requests": "0"},
            RateLimited,
            "litellm.RateLimitError",
        ),
        (
            400,
            {
                "error": {
                    "message": "Budget has been exceeded! Current cost: 10.51, Max budget: 10.0",
                    "type": "budget_exceeded",
                    "param": None,
                    "code": "400",
                }
            },
            {},
            QuotaExhausted,
            "Budget",
        ),
        (
            429,
            {
                "error": {
                    "message": "litellm.RateLimitError: OpenAIException - You exceeded your "
                    "current quota. insufficient_quota",
                    "type": "throttling_error",
                    "param": None,
                    "code": "429",
                }
            },
            {},
            QuotaExhausted,
            "insufficient_quota",
        ),
        (
            500,
            {
                "error": {
                    "message": "litellm.ServiceUnavailableError: AnthropicException - Overloaded",
                    "type": None,
                    "param": None,
                    "code": "500",
                }
            },
            {},
            Overloaded,
            "Overloaded",
        ),
        (
            429,
            {"error": {"message": "slow down", "type": "throttling_error", "code": None}},
            {},
            RateLimited,
            "slow down",
        ),
        # Bifrost's envelope.
        (
            429,
            {
                "is_bifrost_error": True,
                "status_code": 429,
                "error": {
                    "type": "rate_limit",
                    "code": "rate_limit_exceeded",
                    "message": "provider rate limited",
                },
            },
            {},
            RateLimited,
            "provider rate limited",
        ),
        # Portkey's gateway failure.
        (
            502,
            {
                "status": "failure",
                "message": "All providers failed",
                "error": {"type": "gateway_error", "code": None, "message": "upstream timeout"},
            },
            {},
            ServerError,
            "upstream timeout",
        ),
        # FastAPI-style bodies from small servers.
        (
            422,
            {"detail": [{"loc": ["body", "model"], "msg": "field required"}]},
            {},
            BadRequest,
            "field required",
        ),
        (500, b"Internal Server Error", {}, ServerError, "Internal Server Error"),
    ],
)
def test_openai_compatible_error_shapes(status, body, headers, cls, needle):
    err = classify("openai-compatible", status, body, headers)
    assert type(err) is cls, err
    assert needle in err.message


def test_litellm_int_reset_feeds_retry_after():
    body = {"error": {"message": "litellm.RateLimitError: slow", "type": None, "code": "429"}}
    headers = {"x-ratelimit-reset-requests": "30", "x-ratelimit-remaining-requests": "0"}
    err = classify("openai-compatible", 429, body, headers)
    assert type(err) is RateLimited and err.retry_after == 30.0
    assert err.code is None  # "429" is the status again, not a code worth showing


# -- secrets never leak -----------------------------------------------------------------

KEYS = {
    "openai": "sk-" + "proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    "anthropic": "sk-" + "ant-api03-ABCDEFGHIJKLMNOPQRSTUVWXYZ0123",
    "gemini": "AI" + "zaSyABCDEFGHIJKLMNOPQRSTUVWXYZ0123456",
    "openai-compatible": "local-secret-not-shaped-like-any-key",
}


@pytest.mark.parametrize("protocol", sorted(KEYS))
@pytest.mark.parametrize("status", [400, 401, 429, 500, 502])
def test_an_error_body_that_echoes_the_key_is_masked(protocol, status):
    key = KEYS[protocol]
    bodies = [
        openai_error(f"Incorrect API key provided: {key}. See your dashboard.", "x", "y"),
        anthropic_error("authentication_error", f"invalid x-api-key {key}"),
        gemini_error(400, "INVALID_ARGUMENT", f"API key {key} not valid"),
        {"error": f"bad key {key}"},
        f"<html><body>Unauthorized: key={key}</body></html>".encode(),
    ]
    for body in bodies:
        err = classify(protocol, status, body, key=key)
        for text in (str(err), err.message, repr(err.args)):
            assert key not in text
            assert key[6:22] not in text  # not even a long piece of it


def test_errors_without_a_key_still_mask_key_shaped_strings():
    err = classify("openai", 401, openai_error(f"bad key {KEYS['openai']}", None, None))
    assert KEYS["openai"] not in str(err)


def test_long_messages_are_one_bounded_line():
    body = openai_error("line one\nline two\t" + "x" * 5000, "server_error", None)
    err = classify("openai", 500, body)
    assert "\n" not in err.message and len(err.message) <= 300
    assert err.message.startswith("line one line two")


def test_redirects_are_a_configuration_error_not_a_retry():
    err = classify("openai-compatible", 301, b"")
    assert type(err) is BadRequest


def test_malformed_response_is_used_for_nonsense_statuses():
    assert type(classify("openai", 100, b"")) is MalformedResponse
