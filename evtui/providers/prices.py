"""What a call costs: list prices per model, shipped as data, overridable from config.

The table is `data/prices.json` (JSON, not YAML: this package may not import yaml), USD
per 1M tokens, with its date and sources inside. Costs use the normalised `Usage`, in
which `input_tokens` excludes cached reads and cache writes on every protocol, so one
formula serves all providers:

    cost = input·p_in + cached·p_cached + cache_write·p_write + output·p_out

(reasoning/thinking tokens are inside `output_tokens` and billed as output). Model ids
resolve by longest known prefix, like the model catalogue: "gpt-4o-2024-08-06" → gpt-4o.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources
from typing import Any

import orjson

from evtui.providers.models import resolve_model_id
from evtui.providers.types import Usage

_PRICE_KEYS = ("input", "output", "cached_input", "cache_write", "cache_write_1h")
_LONG_KEYS = ("above", "input", "output", "cached_input")
_ENTRY_KEYS = frozenset((*_PRICE_KEYS, "batch_discount", "long_context", "source"))


class UnknownModel(KeyError):
    """No price for a model: the message lists the ones we know (config can add it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class LongContext:
    """Prices that apply to the whole request once its input exceeds `above` tokens."""

    above: int
    input: float
    output: float
    cached_input: float | None = None


@dataclass(frozen=True)
class ModelPrice:
    """USD per 1M tokens for one model. `batch_discount` is the fraction taken off in batch."""

    model: str
    input: float
    output: float
    cached_input: float
    cache_write: float
    cache_write_1h: float | None = None
    batch_discount: float = 0.0
    long_context: LongContext | None = None
    source: str = ""

    def for_input(self, total_input_tokens: int) -> ModelPrice:
        """The prices that apply to a request with this many input tokens."""
        lc = self.long_context
        if lc is None or total_input_tokens <= lc.above:
            return self
        ratio = lc.input / self.input if self.input else 1.0
        cached = lc.cached_input if lc.cached_input is not None else self.cached_input * ratio
        return replace(
            self,
            input=lc.input,
            output=lc.output,
            cached_input=cached,
            cache_write=self.cache_write * ratio,
            long_context=None,
        )


def _number(model: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"price for {model!r}: {key} must be a number >= 0, got {value!r}")
    return float(value)


def _parse_entry(model: str, raw: Mapping[str, Any]) -> ModelPrice:
    if not isinstance(raw, Mapping):
        raise ValueError(f"price for {model!r} must be a mapping, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _ENTRY_KEYS)
    if unknown:
        raise ValueError(
            f"price for {model!r}: unknown key(s) {', '.join(unknown)}; "
            f"expected {', '.join(sorted(_ENTRY_KEYS))}"
        )
    missing = [k for k in ("input", "output") if raw.get(k) is None]
    if missing:
        raise ValueError(f"price for {model!r}: missing {' and '.join(missing)}")
    p = {k: _number(model, k, raw[k]) for k in _PRICE_KEYS if raw.get(k) is not None}
    discount = _number(model, "batch_discount", raw.get("batch_discount", 0.0))
    if discount > 1:
        raise ValueError(f"price for {model!r}: batch_discount is a fraction 0..1, got {discount}")
    long_context = None
    if raw.get("long_context") is not None:
        lc = raw["long_context"]
        if not isinstance(lc, Mapping) or set(lc) - set(_LONG_KEYS) or "above" not in lc:
            raise ValueError(
                f"price for {model!r}: long_context needs 'above' (tokens) and prices among "
                f"{', '.join(_LONG_KEYS[1:])}"
            )
        long_context = LongContext(
            above=int(_number(model, "long_context.above", lc["above"])),
            input=_number(model, "long_context.input", lc.get("input", p["input"])),
            output=_number(model, "long_context.output", lc.get("output", p["output"])),
            cached_input=(
                _number(model, "long_context.cached_input", lc["cached_input"])
                if lc.get("cached_input") is not None
                else None
            ),
        )
    return ModelPrice(
        model=model,
        input=p["input"],
        output=p["output"],
        cached_input=p.get("cached_input", p["input"]),
        cache_write=p.get("cache_write", p["input"]),
        cache_write_1h=p.get("cache_write_1h"),
        batch_discount=discount,
        long_context=long_context,
        source=str(raw.get("source", "")),
    )


@lru_cache(maxsize=1)
def _shipped() -> dict[str, Any]:
    data = resources.files("evtui.providers").joinpath("data").joinpath("prices.json").read_bytes()
    return orjson.loads(data)


def shipped_as_of() -> str:
    """Date the shipped table was last checked (shown beside every projected cost)."""
    return str(_shipped().get("_as_of", "unknown"))


class PriceTable:
    """Prices by model id. Build with `PriceTable.load(overrides)`; look-ups are cached."""

    def __init__(self, prices: Mapping[str, ModelPrice]) -> None:
        self._prices = dict(prices)
        self._resolved: dict[str, str | None] = {}

    @classmethod
    def load(cls, overrides: Mapping[str, Mapping[str, Any]] | None = None) -> PriceTable:
        """The shipped table, with config `overrides` merged per model (keys as in the data
        file; a known model may override only some keys, a new one needs input and output).
        Raises ValueError naming the model and key when an override is malformed."""
        raw: dict[str, dict[str, Any]] = {m: dict(e) for m, e in _shipped()["models"].items()}
        for model, entry in (overrides or {}).items():
            if not isinstance(entry, Mapping):
                raise ValueError(f"price for {model!r} must be a mapping, got {entry!r}")
            key = model.strip().lower()
            raw[key] = {**raw.get(key, {}), **entry}
        return cls({m: _parse_entry(m, e) for m, e in raw.items()})

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(sorted(self._prices))

    def resolve(self, model: str) -> str:
        """The priced id `model` maps to (longest known prefix); UnknownModel if none."""
        if model not in self._resolved:
            self._resolved[model] = resolve_model_id(model, self._prices)
        key = self._resolved[model]
        if key is None:
            raise UnknownModel(
                f"no price for model {model!r}; known: {', '.join(self.models)} "
                "(add it under prices: in the config)"
            )
        return key

    def price(self, model: str) -> ModelPrice:
        return self._prices[self.resolve(model)]

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and resolve_model_id(model, self._prices) is not None

    def cost_usd(self, model: str, usage: Usage, *, batch: bool = False) -> float:
        """USD for one call's normalised usage (input excludes cached tokens)."""
        p = self.price(model).for_input(usage.total_input_tokens)
        total = (
            usage.input_tokens * p.input
            + usage.cached_input_tokens * p.cached_input
            + usage.cache_write_tokens * p.cache_write
            + usage.output_tokens * p.output
        ) / 1_000_000
        return total * (1.0 - p.batch_discount) if batch else total
