"""The one HTTP send path: a pooled aiohttp session per event loop, bounded body reads.

Everything an adapter cannot see happens here: timeouts, refused connections, bodies
cut short or too big to hold. Each becomes a typed ProviderError carrying the
rate-limit headers of the response, when there was one. Kept lean on purpose: the
engine sends hundreds of requests in flight and this path must cost little more than
a bare aiohttp loop.
"""

from __future__ import annotations

import asyncio
from time import perf_counter

import aiohttp

from evtui.providers.base import ProviderAdapter, clean_text
from evtui.providers.errors import (
    ConnectionFailed,
    MalformedResponse,
    ProviderError,
    Timeout,
)
from evtui.providers.types import CaptionRequest, Completion, HttpRequest

DEFAULT_MAX_BODY = 8 << 20


class ProviderClient:
    """Sends built requests. One session (and connection pool) per event loop, reused."""

    def __init__(
        self,
        *,
        limit: int = 1024,
        limit_per_host: int = 1024,
        keepalive_timeout_s: float = 30.0,
        ttl_dns_cache_s: int = 300,
        connect_timeout_s: float | None = 10.0,
        max_body_bytes: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.limit = limit
        self.limit_per_host = limit_per_host
        self.keepalive_timeout_s = keepalive_timeout_s
        self.ttl_dns_cache_s = ttl_dns_cache_s
        self.connect_timeout_s = connect_timeout_s
        self.max_body_bytes = max_body_bytes
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[float, aiohttp.ClientTimeout] = {}

    # -- session ------------------------------------------------------------------------

    def session(self) -> aiohttp.ClientSession:
        """This loop's session, created on first use (a session is bound to its loop)."""
        loop = asyncio.get_running_loop()
        session = self._session
        if loop is self._loop and session is not None and not session.closed:
            return session
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self.limit,
                limit_per_host=self.limit_per_host,
                keepalive_timeout=self.keepalive_timeout_s,
                ttl_dns_cache=self.ttl_dns_cache_s,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.connect_timeout_s),
                cookie_jar=aiohttp.DummyCookieJar(),  # nothing to remember between calls
                raise_for_status=False,
            )
            for old in [lp for lp in self._sessions if lp.is_closed()]:
                del self._sessions[old]
            self._sessions[loop] = session
        self._loop, self._session = loop, session
        return session

    def _timeout(self, timeout_s: float) -> aiohttp.ClientTimeout:
        t = self._timeouts.get(timeout_s)
        if t is None:
            if len(self._timeouts) > 64:
                self._timeouts.clear()
            t = self._timeouts[timeout_s] = aiohttp.ClientTimeout(
                total=timeout_s, sock_connect=self.connect_timeout_s
            )
        return t

    async def close(self) -> None:
        """Close this loop's session; sessions of loops already closed are dropped."""
        loop = asyncio.get_running_loop()
        for lp, session in list(self._sessions.items()):
            if lp is loop:
                await session.close()
            if lp is loop or lp.is_closed():
                del self._sessions[lp]
        if self._loop is loop or (self._loop is not None and self._loop.is_closed()):
            self._loop = self._session = None

    async def __aenter__(self) -> ProviderClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- sending ------------------------------------------------------------------------

    async def send(
        self, adapter: ProviderAdapter, req: CaptionRequest, key: str, *, timeout_s: float
    ) -> Completion:
        """One request, one answer: a Completion, or a ProviderError naming what went wrong."""
        return await self.send_built(adapter, adapter.build(req, key), req.model, key, timeout_s)

    async def send_built(
        self,
        adapter: ProviderAdapter,
        http: HttpRequest,
        model: str,
        key: str,
        timeout_s: float,
    ) -> Completion:
        """`send` for a request already built (the engine counts its bytes first)."""
        session = self._session
        if session is None or session.closed or asyncio.get_running_loop() is not self._loop:
            session = self.session()
        cap = self.max_body_bytes
        start = perf_counter()
        try:
            async with session.request(
                http.method,
                http.url,
                data=http.body,
                headers=http.headers,
                timeout=self._timeout(timeout_s),
                allow_redirects=False,
            ) as resp:
                status = resp.status
                headers = resp.headers
                length = resp.content_length
                if length is not None and length <= cap and "Content-Encoding" not in headers:
                    body = await resp.read()  # the common case, already bounded
                else:
                    body = await self._read_capped(resp, adapter)
        except ProviderError:
            raise
        except TimeoutError:
            raise Timeout(
                f"no complete answer within {timeout_s:g} s", provider=adapter.name
            ) from None
        except aiohttp.ClientPayloadError as e:
            raise MalformedResponse(
                f"body cut short: {_describe(e, key)}", provider=adapter.name
            ) from None
        except (aiohttp.ClientResponseError, ValueError) as e:
            raise MalformedResponse(
                f"unreadable HTTP answer: {_describe(e, key)}", provider=adapter.name
            ) from None
        except (aiohttp.ClientError, OSError) as e:
            raise ConnectionFailed(_describe(e, key), provider=adapter.name) from None
        latency = perf_counter() - start
        limits = adapter.rate_limits(headers, body)
        if 200 <= status < 300:
            return adapter.parse_success(
                status,
                headers,
                body,
                key=key,
                model=model,
                rate_limits=limits,
                latency_s=latency,
            )
        raise adapter.classify_error(status, headers, body, key=key, rate_limits=limits)

    async def _read_capped(self, resp: aiohttp.ClientResponse, adapter: ProviderAdapter) -> bytes:
        """Bodies of unknown or compressed size: stop at `max_body_bytes`, read no further."""
        cap = self.max_body_bytes
        length = resp.content_length
        if length is not None and "Content-Encoding" not in resp.headers:
            raise self._too_big(resp, adapter, f"Content-Length {length}")
        chunks: list[bytes] = []
        total = 0
        content = resp.content
        while True:
            chunk = await content.readany()
            if not chunk:
                return b"".join(chunks)
            total += len(chunk)
            if total > cap:
                raise self._too_big(resp, adapter, f"more than {cap} bytes streamed")
            chunks.append(chunk)

    def _too_big(
        self, resp: aiohttp.ClientResponse, adapter: ProviderAdapter, what: str
    ) -> MalformedResponse:
        resp.close()  # drop the connection instead of draining the rest
        return MalformedResponse(
            f"body over the {self.max_body_bytes}-byte cap ({what}); not read",
            provider=adapter.name,
            status=resp.status,
            rate_limits=adapter.rate_limits(resp.headers, b""),
            request_id=adapter.request_id(resp.headers),
        )


def _describe(e: BaseException, key: str) -> str:
    text = str(e) or type(e).__name__
    return clean_text(f"{type(e).__name__}: {text}", key)
