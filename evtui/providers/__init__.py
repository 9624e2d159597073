"""One module per provider wire protocol, and the one send path that drives them.

adapter = make_adapter("anthropic")
async with ProviderClient() as client:
    completion = await client.send(adapter, request, key, timeout_s=60)
"""

from __future__ import annotations

from typing import Any

from evtui.providers.anthropic import AnthropicAdapter
from evtui.providers.base import ProviderAdapter
from evtui.providers.gemini import GeminiAdapter
from evtui.providers.openai import OpenAIAdapter
from evtui.providers.openai_compat import OpenAICompatibleAdapter
from evtui.providers.prices import PriceTable

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    cls.protocol: cls
    for cls in (OpenAIAdapter, AnthropicAdapter, GeminiAdapter, OpenAICompatibleAdapter)
}


def make_adapter(
    protocol: str,
    *,
    base_url: str | None = None,
    name: str | None = None,
    prices: PriceTable | None = None,
    **opts: Any,
) -> ProviderAdapter:
    """The adapter for a protocol name from the config ("openai", "openai-compatible"…)."""
    try:
        cls = ADAPTERS[protocol]
    except KeyError:
        known = ", ".join(sorted(ADAPTERS))
        raise ValueError(f"unknown provider protocol {protocol!r} (known: {known})") from None
    return cls(name=name, base_url=base_url, options=opts, prices=prices)


__all__ = [
    "ADAPTERS",
    "AnthropicAdapter",
    "GeminiAdapter",
    "OpenAIAdapter",
    "OpenAICompatibleAdapter",
    "ProviderAdapter",
    "ProviderClient",
    "make_adapter",
]


def __getattr__(name: str) -> Any:
    # The client pulls in aiohttp (~200 ms); config checks and price look-ups need not.
    if name == "ProviderClient":
        from evtui.providers.client import ProviderClient

        return ProviderClient
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
