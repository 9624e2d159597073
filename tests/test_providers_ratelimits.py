"""Rate-limit header and body parsing: every dialect, and garbage that must not crash."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from evtui.providers import make_adapter
from evtui.providers.ratelimits import (
    flexible_reset_s,
    gemini_retry_delay,
    go_duration_s,
    proto_duration_s,
    retry_after_s,
    rfc3339_epoch,
    wait_hint_s,
)
from evtui.providers.types import Limit, RateLimitSnapshot

NOW = datetime(2025, 8, 21, 12, 40, 0, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("12ms", 0.012),
        ("0s", 0.0),
        ("0", 0.0),
        ("1h2m3.5s", 3723.5),
        ("1.5h", 5400.0),
        ("250us", 250e-6),
        ("250µs", 250e-6),
        ("7ns", 7e-9),
        ("2m30.25s", 150.25),
        (" 3s ", 3.0),
    ],
)
def test_go_durations(value, seconds):
    assert go_duration_s(value) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", ["", "abc", "5", "s", "1s2", "-1s", "1 s", "1x", "6m0", "ms", "1s!", "nan", None]
)
def test_go_duration_garbage_is_none(value):
    assert go_duration_s(value) is None


def test_go_duration_memo_returns_the_same_answer_twice():
    assert go_duration_s("17m3s") == go_duration_s("17m3s") == 1023.0
    assert go_duration_s("garbage-17") is None and go_duration_s("garbage-17") is None


@pytest.mark.parametrize(
    ("value", "epoch_offset"),
    [
        ("2025-08-21T12:40:59Z", 59.0),
        ("2025-08-21T14:40:59+02:00", 59.0),
        ("2025-08-21T07:40:59-05:00", 59.0),
        ("2025-08-21T12:40:59.500Z", 59.5),
        ("2025-08-21T12:41:00.25+00:00", 60.25),
    ],
)
def test_rfc3339(value, epoch_offset):
    assert rfc3339_epoch(value) == pytest.approx(NOW + epoch_offset)


@pytest.mark.parametrize(
    "value", ["", "tomorrow", "2025-08-21T12:40:59", "2025-13-01T00:00:00Z", "12:40:59Z", None]
)
def test_rfc3339_garbage_and_naive_times_are_none(value):
    assert rfc3339_epoch(value) is None


@pytest.mark.parametrize(
    ("value", "seconds"), [("33s", 33.0), ("0.5s", 0.5), ("600.5s", 600.5), ("0s", 0.0)]
)
def test_proto_durations(value, seconds):
    assert proto_duration_s(value) == seconds


@pytest.mark.parametrize("value", ["33", "s", "1m", "", 33, None, {"seconds": 3}])
def test_proto_duration_garbage(value):
    assert proto_duration_s(value) is None


def test_retry_after_seconds_float_and_http_date():
    assert retry_after_s({"retry-after": "7"}) == 7.0
    assert retry_after_s({"retry-after": "1.5"}) == 1.5
    now = datetime(2015, 10, 21, 7, 27, 50, tzinfo=UTC).timestamp()
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, now) == 10.0
    # A date already past means "now", not a negative wait.
    assert retry_after_s({"retry-after": "Wed, 21 Oct 2015 07:00:00 GMT"}, now) == 0.0


def test_retry_after_ms_takes_precedence():
    assert retry_after_s({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    # A broken retry-after-ms falls back to retry-after.
    assert retry_after_s({"retry-after-ms": "soon", "retry-after": "9"}) == 9.0


@pytest.mark.parametrize("value", ["soon", "", "-3", "Wed, 99 Foo 2015", "inf", "nan"])
def test_retry_after_garbage_is_none(value):
    assert retry_after_s({"retry-after": value}) is None


def test_flexible_reset_for_gateways():
    assert flexible_reset_s("30") == 30.0  # LiteLLM: a plain int of seconds
    assert flexible_reset_s("1m0s") == 60.0
    assert flexible_reset_s(str(NOW + 12), NOW) == pytest.approx(12.0)  # an epoch time
    assert flexible_reset_s("2025-08-21T12:40:30Z", NOW) == pytest.approx(30.0)
    assert flexible_reset_s("whenever") is None


OPENAI_HEADERS = {
    "x-ratelimit-limit-requests": "10000",
    "x-ratelimit-limit-tokens": "2000000",
    "x-ratelimit-remaining-requests": "9999",
    "x-ratelimit-remaining-tokens": "1998500",
    "x-ratelimit-reset-requests": "6ms",
    "x-ratelimit-reset-tokens": "1h2m3.5s",
}


def test_openai_headers():
    snap = make_adapter("openai").rate_limits(OPENAI_HEADERS, b"")
    assert snap.requests == Limit(10000, 9999, 0.006)
    assert snap.tokens == Limit(2000000, 1998500, 3723.5)
    assert snap.retry_after is None
    assert snap.input_tokens == Limit() and snap.output_tokens == Limit()


def test_openai_headers_case_insensitive_in_plain_dicts_and_multidicts():
    mixed = {k.upper(): v for k, v in OPENAI_HEADERS.items()} | {"Retry-After": "2"}
    proxy = CIMultiDictProxy(CIMultiDict(mixed))
    adapter = make_adapter("openai")
    for headers in (mixed, proxy):
        snap = adapter.rate_limits(headers, b"")
        assert snap.requests.remaining == 9999
        assert snap.retry_after == 2.0


def test_openai_garbage_headers_do_not_crash():
    snap = make_adapter("openai").rate_limits(
        {
            "x-ratelimit-limit-requests": "lots",
            "x-ratelimit-remaining-requests": "12.0",
            "x-ratelimit-reset-requests": "whenever",
        },
        b"<html>",
    )
    assert snap.requests == Limit(None, 12, None)


def test_no_headers_give_an_empty_snapshot():
    for protocol in ("openai", "anthropic", "gemini", "openai-compatible"):
        assert make_adapter(protocol).rate_limits({}, b"").empty


ANTHROPIC_HEADERS = {
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2025-08-21T12:40:01Z",
    "anthropic-ratelimit-tokens-limit": "480000",
    "anthropic-ratelimit-tokens-remaining": "479000",
    "anthropic-ratelimit-tokens-reset": "2025-08-21T12:40:02.5Z",
    "anthropic-ratelimit-input-tokens-limit": "400000",
    "anthropic-ratelimit-input-tokens-remaining": "399000",
    "anthropic-ratelimit-input-tokens-reset": "2025-08-21T14:40:03+02:00",
    "anthropic-ratelimit-output-tokens-limit": "80000",
    "anthropic-ratelimit-output-tokens-remaining": "0",
    "anthropic-ratelimit-output-tokens-reset": "2025-08-21T12:40:30Z",
    "retry-after": "30",
}


def test_anthropic_headers_resets_are_seconds_from_now():
    snap = make_adapter("anthropic").rate_limits(ANTHROPIC_HEADERS, b"", now=NOW)
    assert snap.requests == Limit(4000, 3999, 1.0)
    assert snap.tokens == Limit(480000, 479000, 2.5)
    assert snap.input_tokens == Limit(400000, 399000, 3.0)
    assert snap.output_tokens == Limit(80000, 0, 30.0)
    assert snap.retry_after == 30.0


def test_anthropic_reset_in_the_past_is_zero():
    snap = make_adapter("anthropic").rate_limits(
        {"anthropic-ratelimit-requests-reset": "2025-08-21T12:39:00Z"}, b"", now=NOW
    )
    assert snap.requests.reset_s == 0.0


GEMINI_429 = {
    "error": {
        "code": 429,
        "message": "You exceeded your current quota, please check your plan and billing details.",
        "status": "RESOURCE_EXHAUSTED",
        "details": [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": "generativelanguage.googleapis.com/"
                        "generate_content_free_tier_requests",
                        "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                        "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                        "quotaValue": "10",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.Help", "links": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "33s"},
        ],
    }
}


def test_gemini_retry_delay_from_body_object_and_array():
    assert gemini_retry_delay(orjson.dumps(GEMINI_429)) == 33.0
    assert gemini_retry_delay(orjson.dumps([GEMINI_429])) == 33.0
    half = orjson.loads(orjson.dumps(GEMINI_429))
    half["error"]["details"][2]["retryDelay"] = "0.5s"
    snap = make_adapter("gemini").rate_limits({}, orjson.dumps(half))
    assert snap.retry_after == 0.5


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"retryDelay",
        b'{"error": {"details": "retryDelay"}}',
        b'[{"error": {"details": [{"retryDelay": 33}]}}]',
        b'{"error": {"details": [{"retryDelay": "soon"}]}}',
        b"<html>retryDelay</html>",
    ],
)
def test_gemini_retry_delay_garbage(body):
    assert gemini_retry_delay(body) is None


def test_gemini_header_retry_after_wins_over_body():
    snap = make_adapter("gemini").rate_limits({"retry-after": "5"}, orjson.dumps(GEMINI_429))
    assert snap.retry_after == 5.0


def test_litellm_headers_with_int_reset():
    snap = make_adapter("openai-compatible").rate_limits(
        {
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-reset-requests": "30",
        },
        b"",
    )
    assert snap.requests == Limit(60, 0, 30.0)


def test_wait_hint_prefers_explicit_delay_then_empty_bucket_reset():
    assert wait_hint_s(RateLimitSnapshot(retry_after=2.0, tokens=Limit(1, 0, 60.0))) == 2.0
    snap = RateLimitSnapshot(requests=Limit(10, 3, 5.0), tokens=Limit(100, 0, 12.0))
    assert wait_hint_s(snap) == 12.0
    assert wait_hint_s(RateLimitSnapshot(requests=Limit(10, 3, 5.0))) is None
