"""The send path against real sockets on 127.0.0.1: what arrives, what comes back, and
every way an answer can go wrong on the wire (HTML, empty, huge, cut short, silent,
refused). Servers bind ephemeral ports and are shut down by each test.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
import pytest
from aiohttp import web

from evtui.providers import ProviderClient, make_adapter
from evtui.providers.errors import (
    ConnectionFailed,
    MalformedResponse,
    RateLimited,
    ServerError,
    Timeout,
)
from evtui.providers.types import CaptionRequest, Completion, ImagePart

KEY = "sk-" + "proj-TESTKEY0123456789abcdefghijklmnop"  # split: no key-shaped literal
IMAGE = ImagePart(
    data=b"\xff\xd8\xff" + bytes(range(256)) * 64, media_type="image/jpeg", width=8, height=8
)
REQ = CaptionRequest(model="gpt-4o", prompt="Describe the frame.", image=IMAGE)

OPENAI_OK = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "created": 1731000000,
    "model": "gpt-4o-2024-08-06",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Edges move left.", "refusal": None},
            "finish_reason": "stop",
            "logprobs": None,
        }
    ],
    "usage": {"prompt_tokens": 300, "completion_tokens": 4, "total_tokens": 304},
}
RL_HEADERS = {
    "x-request-id": "req_loop",
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "499",
    "x-ratelimit-reset-requests": "120ms",
    "x-ratelimit-limit-tokens": "30000",
    "x-ratelimit-remaining-tokens": "29000",
    "x-ratelimit-reset-tokens": "2s",
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler):
    """An aiohttp.web server on an ephemeral 127.0.0.1 port answering every path."""
    app = web.Application(client_max_size=64 << 20)
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def serve_raw(reply: bytes, *, then_close: bool = True, hang_s: float = 0.0):
    """A raw TCP server that answers any request with exactly `reply` bytes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(reply)
            await writer.drain()
            if hang_s:
                await asyncio.sleep(hang_s)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if then_close:
                writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        await server.wait_closed()


def run(coro):
    return asyncio.run(coro)


async def send(base_url: str, protocol: str = "openai", req=REQ, timeout_s: float = 5.0, **kw):
    adapter = make_adapter(protocol, base_url=base_url)
    async with ProviderClient(**kw) as client:
        return await client.send(adapter, req, KEY, timeout_s=timeout_s)


def test_success_round_trip_with_rate_limits_and_exact_request():
    seen = {}

    async def handler(request: web.Request) -> web.Response:
        seen["path"] = request.path
        seen["headers"] = dict(request.headers)
        seen["body"] = await request.read()
        return web.json_response(OPENAI_OK, headers=RL_HEADERS)

    async def go():
        async with serve(handler) as url:
            return await send(url), make_adapter("openai", base_url=url).build(REQ, KEY)

    completion, built = run(go())
    assert isinstance(completion, Completion)
    assert completion.text == "Edges move left." and completion.request_id == "req_loop"
    assert completion.model == "gpt-4o-2024-08-06" and completion.latency_s > 0
    assert completion.rate_limits.requests.remaining == 499
    assert completion.rate_limits.tokens.reset_s == 2.0
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["Authorization"] == f"Bearer {KEY}"
    assert seen["headers"]["Content-Type"] == "application/json"
    assert seen["body"] == built.body  # bytes as built, not re-encoded by aiohttp


def test_anthropic_and_gemini_reach_their_paths_with_their_headers():
    seen = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.path, dict(request.headers)))
        if request.path == "/v1/messages":
            body = {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-haiku-4-5",
                "content": [{"type": "text", "text": "A hand."}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 2},
            }
            return web.json_response(body, headers={"request-id": "req_a"})
        body = {
            "candidates": [
                {
                    "content": {"parts": [{"text": "A car."}], "role": "model"},
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2},
        }
        return web.json_response(body)

    async def go():
        async with serve(handler) as url:
            a = await send(url, "anthropic", CaptionRequest("claude-haiku-4-5", "p", IMAGE))
            g = await send(url, "gemini", CaptionRequest("gemini-2.5-flash", "p", IMAGE))
            return a, g

    a, g = run(go())
    assert (a.text, a.request_id, g.text) == ("A hand.", "req_a", "A car.")
    (pa, ha), (pg, hg) = seen
    assert pa == "/v1/messages" and ha["x-api-key"] == KEY
    assert ha["anthropic-version"] == "2023-06-01"
    assert pg == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert hg["x-goog-api-key"] == KEY


def test_429_is_classified_with_headers_and_retry_after():
    async def handler(request: web.Request) -> web.Response:
        body = {
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        }
        return web.json_response(body, status=429, headers={**RL_HEADERS, "retry-after-ms": "750"})

    async def go():
        async with serve(handler) as url:
            await send(url)

    with pytest.raises(RateLimited) as e:
        run(go())
    assert e.value.retry_after == 0.75 and e.value.status == 429
    assert e.value.rate_limits.requests.remaining == 499
    assert e.value.request_id == "req_loop"


@pytest.mark.parametrize(
    ("status", "body", "content_type", "cls", "needle"),
    [
        (
            502,
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            "text/html",
            ServerError,
            "502 Bad Gateway",
        ),
        (200, b"<!DOCTYPE html><html>Login page</html>", "text/html", MalformedResponse, "Login"),
        (200, b"", "application/json", MalformedResponse, "empty body"),
        (200, b'{"object": "list", "data": []}', "application/json", MalformedResponse, "choices"),
        (
            200,
            orjson.dumps(
                {
                    **OPENAI_OK,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": ""},
                            "finish_reason": "stop",
                        }
                    ],
                }
            ),
            "application/json",
            MalformedResponse,
            "no text",
        ),
    ],
)
def test_bad_answers_become_typed_errors(status, body, content_type, cls, needle):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type=content_type)

    async def go():
        async with serve(handler) as url:
            await send(url)

    with pytest.raises(cls) as e:
        run(go())
    assert needle in str(e.value) and "\n" not in str(e.value)


BIG = 50 << 20
CHUNK = 256 << 10


def _streaming_handler(sent: dict, *, declare_length: bool) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if declare_length:
            resp.content_length = BIG
        await resp.prepare(request)
        sent["bytes"] = 0
        chunk = b" " * CHUNK
        try:
            while sent["bytes"] < BIG:
                await resp.write(chunk)
                sent["bytes"] += CHUNK
        except (ConnectionError, RuntimeError):
            pass
        finally:
            sent["done"].set()
        return resp

    return handler


@pytest.mark.parametrize("declare_length", [False, True])
def test_huge_body_is_refused_at_the_cap_without_reading_it(declare_length):
    sent: dict = {}

    async def go():
        sent["done"] = asyncio.Event()
        async with serve(_streaming_handler(sent, declare_length=declare_length)) as url:
            with pytest.raises(MalformedResponse) as e:
                await send(url, max_body_bytes=1 << 20, timeout_s=30)
            # The server notices the closed connection and stops writing.
            await asyncio.wait_for(sent["done"].wait(), 10)
            return e.value

    err = run(go())
    assert "cap" in str(err)
    if declare_length:
        assert "Content-Length" in str(err)
    # Stopped near the 1 MiB cap: at most the cap plus what the socket buffers held.
    assert sent["bytes"] < BIG // 4, sent["bytes"]


def test_default_cap_is_8_mib():
    assert ProviderClient().max_body_bytes == 8 << 20


def test_gzip_bomb_is_capped_after_decompression():
    payload = gzip.compress(b" " * (4 << 20))  # ~4 KB on the wire, 4 MiB inflated

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=payload,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def go():
        async with serve(handler) as url:
            await send(url, max_body_bytes=1 << 20)

    with pytest.raises(MalformedResponse, match="cap"):
        run(go())


def test_gzip_answer_is_decompressed_and_read():
    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=gzip.compress(orjson.dumps(OPENAI_OK)),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )

    async def go():
        async with serve(handler) as url:
            return await send(url)

    assert run(go()).text == "Edges move left."


def test_truncated_body_is_malformed():
    reply = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    reply += orjson.dumps(OPENAI_OK)[:100]

    async def go():
        async with serve_raw(reply) as url:
            await send(url)

    with pytest.raises(MalformedResponse, match="cut short"):
        run(go())


def test_truncated_chunked_body_is_malformed():
    reply = b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{"choices": [1,\r\n'

    async def go():
        async with serve_raw(reply) as url:
            await send(url)

    with pytest.raises(MalformedResponse, match="cut short"):
        run(go())


def test_garbage_instead_of_http_is_malformed():
    async def go():
        async with serve_raw(b"SSH-2.0-OpenSSH_9.6\r\n\r\n") as url:
            await send(url)

    with pytest.raises(MalformedResponse, match="unreadable HTTP"):
        run(go())


def test_server_closing_without_an_answer_is_a_connection_failure():
    async def go():
        async with serve_raw(b"") as url:
            await send(url)

    with pytest.raises(ConnectionFailed, match="ServerDisconnected"):
        run(go())


def test_server_that_never_answers_times_out():
    async def handler(request: web.Request) -> web.Response:
        await asyncio.sleep(30)
        return web.json_response(OPENAI_OK)

    async def go():
        async with serve(handler) as url:
            await send(url, timeout_s=0.3)

    with pytest.raises(Timeout, match=r"0\.3 s") as e:
        run(go())
    assert e.value.retryable


def test_body_that_stalls_after_the_headers_times_out():
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{"

    async def go():
        async with serve_raw(head, hang_s=30) as url:
            await send(url, timeout_s=0.3)

    with pytest.raises(Timeout):
        run(go())


def test_connection_refused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port now.

    async def go():
        await send(f"http://127.0.0.1:{port}")

    with pytest.raises(ConnectionFailed) as e:
        run(go())
    assert e.value.retryable and KEY not in str(e.value)


def test_pool_is_reused_and_bounded_under_concurrency():
    peers: set[int] = set()

    async def handler(request: web.Request) -> web.Response:
        peers.add(request.transport.get_extra_info("peername")[1])
        await asyncio.sleep(0.005)
        return web.json_response(OPENAI_OK)

    async def go():
        async with serve(handler) as url:
            adapter = make_adapter("openai", base_url=url)
            async with ProviderClient(limit=8, limit_per_host=8) as client:
                results = await asyncio.gather(
                    *(client.send(adapter, REQ, KEY, timeout_s=10) for _ in range(200))
                )
                session = client.session()
                assert client.session() is session  # one session for the loop
        return results

    results = run(go())
    assert len(results) == 200 and all(r.text == "Edges move left." for r in results)
    assert 1 <= len(peers) <= 8  # keep-alive connections reused, never more than the limit


def test_one_session_per_event_loop_and_close():
    client = ProviderClient()

    async def use():
        s = client.session()
        assert client.session() is s
        await client.close()
        assert s.closed
        return s

    first = run(use())
    second = run(use())  # a new loop gets its own session
    assert first is not second
