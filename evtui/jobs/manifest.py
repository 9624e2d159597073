"""Compare a run's stored manifest with a new one: which differences would change results.

A resumed run must produce what a fresh run with the new settings would; anything that
could change a caption (recording, rendering, prompts, models, targets, mode, provider
options) is refused. Settings that only change how, how fast or at what price results
arrive (budget, retries, weights, fallbacks, keys, timeouts, endpoints, cache, prices)
are accepted. Unknown differences are refused: the safe default for a key we have
never seen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

# Differences at these paths cannot change a caption (`*` matches anything, dots too).
HARMLESS: tuple[str, ...] = (
    "evtui_version",
    "total",
    "recording.path",
    "config.budget_usd",
    "config.retry",
    "config.retry.*",
    "config.cache",
    "config.cache.*",
    "config.prices",
    "config.prices.*",
    "config.engine",
    "config.engine.*",
    "config.guard",
    "config.guard.*",
    "config.ui",
    "config.ui.*",
    "config.targets[*].weight",
    "config.targets[*].fallbacks",
    "config.providers.*.keys",
    "config.providers.*.timeout_s",
    "config.providers.*.connect_timeout_s",
    "config.providers.*.base_url",
)
_HARMLESS_RE = re.compile("|".join(re.escape(p).replace(r"\*", ".*") for p in HARMLESS))
# Values under these names are never shown, even redacted ones.
_SECRET_NAMES = frozenset(
    {"key", "keys", "api_key", "secret", "password", "token", "authorization"}
)
_ABSENT = object()


@dataclass(frozen=True)
class Difference:
    """One changed setting; `str()` is the line the user reads."""

    path: str
    old: Any
    new: Any
    harmless: bool

    def __str__(self) -> str:
        if _is_secret(self.path):
            return f"{self.path}: (changed)"
        return f"{self.path}: {_show(self.old)} -> {_show(self.new)}"


def diff(old: dict[str, Any], new: dict[str, Any]) -> list[Difference]:
    """Every difference between two manifests, in a stable order, each classified."""
    found: list[tuple[str, Any, Any]] = []
    _walk(old, new, "", found)
    changed_top = {k for k in set(old) | set(new) if k != "config" and old.get(k) != new.get(k)}
    out: list[Difference] = []
    for path, a, b in sorted(found, key=lambda f: f[0]):
        # config.render / config.prompts repeat what the top-level render / prompts say.
        head = path.split(".", 2)
        if head[0] == "config" and len(head) > 1 and _root(head[1]) in changed_top:
            continue
        out.append(Difference(path, a, b, _harmless(path, a, b)))
    return out


def harmful(differences: list[Difference]) -> list[Difference]:
    return [d for d in differences if not d.harmless]


def _root(part: str) -> str:
    return part.split("[", 1)[0]


def _walk(a: Any, b: Any, path: str, out: list[tuple[str, Any, Any]]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        pairs = {str(k): (a.get(k, _ABSENT), b.get(k, _ABSENT)) for k in [*a, *b]}
    elif _is_id_list(a) and _is_id_list(b):
        ia, ib = {v["id"]: v for v in a}, {v["id"]: v for v in b}
        pairs = {f"[{k}]": (ia.get(k, _ABSENT), ib.get(k, _ABSENT)) for k in [*ia, *ib]}
    else:
        if a != b or type(a) is not type(b):
            out.append((path, a, b))
        return
    for k, (x, y) in pairs.items():
        sub = f"{path}{k}" if k.startswith("[") else (f"{path}.{k}" if path else k)
        if x is _ABSENT or y is _ABSENT:
            out.append((sub, x, y))  # added or removed whole: one line, not one per leaf
        else:
            _walk(x, y, sub, out)


def _is_id_list(value: Any) -> bool:
    """Lists of {id: ...} dicts compare by id, so reordering targets is no difference."""
    if not isinstance(value, list | tuple) or not value:
        return False
    if not all(isinstance(v, dict) and isinstance(v.get("id"), str) for v in value):
        return False
    return len({v["id"] for v in value}) == len(value)


def _harmless(path: str, old: Any, new: Any) -> bool:
    if _HARMLESS_RE.fullmatch(path):
        return True
    # A provider added or removed whole changes nothing unless a target uses it, and a
    # target's change is reported on its own.
    parts = path.split(".")
    return (
        len(parts) == 3
        and parts[:2] == ["config", "providers"]
        and (old is _ABSENT or new is _ABSENT)
    )


def _is_secret(path: str) -> bool:
    return any(p.lower() in _SECRET_NAMES for p in re.split(r"[.\[\]]", path) if p)


def _show(value: Any, limit: int = 80) -> str:
    if value is _ABSENT:
        return "(absent)"
    if isinstance(value, str):
        text = value
    else:
        text = orjson.dumps(_masked(value), default=str, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: "***" if str(k).lower() in _SECRET_NAMES else _masked(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_masked(v) for v in value]
    return value
