"""The four simulated wire protocols, by name. Each lives in its own module
(`openai`, `anthropic`, `gemini`; shared parts in `protocol`, `parsing`, `images`,
`tokens`, `wire`), speaking as the real service does: checks, bodies, errors, headers.

Each protocol object reads a request the way its service does (auth header, version header,
required fields, image checks and limits), and writes that service's success body, error
bodies and rate-limit headers (reference §1–§5). Nothing here imports the evtui adapters:
tests against the simulator stay honest.

Requests are read cheaply: the base64 payloads are cut out of the raw body with two
`bytes.find` calls each, so orjson only parses the small remainder (the skeleton), and a
skeleton already seen — every frame of a job shares one — is not walked again. Any doubt
(escapes, a marker inside a prompt) falls back to parsing the whole body.

Every answer says it is simulated: the header `x-evtui-simulated: true`, plus a body
marker a real client tolerates — OpenAI and compat `system_fingerprint: "fp_evtui_sim"`,
Anthropic ids `msg_evtuisim_…`, Gemini `responseId: "evtuisim-…"`. Model names are
echoed unchanged so cost tables keep working.
"""

from __future__ import annotations

from collections.abc import Callable

from evtui.sim.anthropic import AnthropicProtocol
from evtui.sim.gemini import GeminiProtocol
from evtui.sim.openai import CompatProtocol, OpenAIProtocol
from evtui.sim.protocol import Protocol

PROTOCOLS: dict[str, Callable[[], Protocol]] = {
    "openai": OpenAIProtocol,
    "anthropic": AnthropicProtocol,
    "gemini": GeminiProtocol,
    "compat": CompatProtocol,
}
