"""What the simulated providers do over time: limits, latency and faults, from YAML or code.

A scenario file reads like this (durations take `ms`, `s`, `m`, `h` or bare seconds):

    seed: 7
    time_scale: 60            # one real second plays one scenario minute
    providers:
      anthropic: {rpm: 50, tpm: 40000, latency_ms: {dist: lognormal, median: 900, p95: 2500}}
      openai: {rpm: 500, tpm: 200000, keys: [sk-test-a, sk-test-b]}
    faults:
      - {provider: anthropic, kind: overloaded, rate: 0.05, from: 2m, to: 4m}
      - {provider: openai, kind: outage, from: 5m, duration: 60s}
      - {provider: gemini, kind: rate_limited, rate: 0.1, retry_after: 2s}

Every problem in a file is reported at once, each with its file, line, key path and what
was expected, as harlequin does for its config.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from evtui.providers.secrets import mask_secrets

PROVIDERS: tuple[str, ...] = ("openai", "anthropic", "gemini", "compat")
FAULT_KINDS: tuple[str, ...] = (
    "rate_limited",
    "quota_exhausted",
    "overloaded",
    "server_error",
    "hang",
    "malformed_json",
    "truncated_body",
    "outage",
    "degenerate",
)
ProviderName = Literal["openai", "anthropic", "gemini", "compat"]
FaultKind = Literal[
    "rate_limited",
    "quota_exhausted",
    "overloaded",
    "server_error",
    "hang",
    "malformed_json",
    "truncated_body",
    "outage",
    "degenerate",
]

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*")
_UNIT_S = {"ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> object:
    """'2m', '60s', '500ms', '1h', 1.5 → seconds; anything else is left for pydantic to reject."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        m = _DURATION.fullmatch(value)
        if m is None:
            raise ValueError(f"expected a duration such as 500ms, 2s, 3m or 1h, got {value!r}")
        return float(m.group(1)) * _UNIT_S[m.group(2)]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LatencySpec(_Strict):
    """Per-request latency in milliseconds: fixed, uniform, or lognormal by median and p95."""

    dist: Literal["fixed", "uniform", "lognormal"] = "fixed"
    value: float | None = Field(default=None, ge=0)
    min: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, ge=0)
    median: float | None = Field(default=None, gt=0)
    p95: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _fields_match_dist(self) -> LatencySpec:
        needed = {"fixed": ("value",), "uniform": ("min", "max"), "lognormal": ("median", "p95")}
        want = needed[self.dist]
        missing = [k for k in want if getattr(self, k) is None]
        stray = [
            k
            for k in ("value", "min", "max", "median", "p95")
            if k not in want and getattr(self, k) is not None
        ]
        if missing:
            raise ValueError(f"dist {self.dist} needs {' and '.join(want)}")
        if stray:
            raise ValueError(f"{', '.join(stray)} not used by dist {self.dist} (needs {want})")
        if self.dist == "uniform" and self.min > self.max:  # type: ignore[operator]
            raise ValueError("min must not exceed max")
        if self.dist == "lognormal" and self.p95 < self.median:  # type: ignore[operator]
            raise ValueError("p95 must be at least the median")
        return self

    def sampler(self, rng: random.Random) -> Callable[[], float] | None:
        """Draws of this latency in seconds from `rng`; None when it is always zero."""
        if self.dist == "fixed":
            value = (self.value or 0.0) / 1000
            return (lambda: value) if value > 0 else None
        if self.dist == "uniform":
            lo, hi = (self.min or 0.0) / 1000, (self.max or 0.0) / 1000
            return (lambda: rng.uniform(lo, hi)) if hi > 0 else None
        mu = math.log(self.median / 1000)  # type: ignore[operator]
        sigma = (math.log(self.p95 / 1000) - mu) / _Z95  # type: ignore[operator]
        return lambda: rng.lognormvariate(mu, sigma)


_Z95 = 1.6448536269514722  # the standard normal's 95th percentile


def _latency_shorthand(value: object) -> object:
    """`latency_ms: 250` means a fixed 250 ms."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return {"dist": "fixed", "value": value}
    return value


class LimitSpec(_Strict):
    """Per-minute budgets of one key (None = unlimited). Token buckets refill continuously."""

    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    itpm: int | None = Field(default=None, gt=0)  # input tokens (Anthropic-style)
    otpm: int | None = Field(default=None, gt=0)  # output tokens, pre-charged from max_tokens

    @property
    def limited(self) -> bool:
        return any(v is not None for v in (self.rpm, self.tpm, self.itpm, self.otpm))


class ProviderSpec(LimitSpec):
    """One simulated provider: its keys, its limits (per key, per model), its latency."""

    keys: list[str] | None = None
    latency_ms: Annotated[LatencySpec | None, BeforeValidator(_latency_shorthand)] = None
    models: dict[str, LimitSpec] = Field(default_factory=dict)
    # How a request is charged against `tpm`: OpenAI counts max(input, max_output) (its
    # rate-limit guide), Anthropic input + max_output, Gemini input only. None = that default.
    token_cost: Literal["sum", "max", "input"] | None = None

    @field_validator("keys")
    @classmethod
    def _keys_not_empty(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (not v or any(not k for k in v)):
            raise ValueError("keys must list at least one non-empty key (omit it to accept any)")
        return v

    def limits_for(self, model: str) -> LimitSpec:
        """The per-model override when there is one, else the provider-wide limits."""
        return self.models.get(model, self)


class FaultSpec(_Strict):
    """A fault injected into a share (`rate`) of one provider's requests in a time window.

    Windows are relative to server start, in scenario time (real time × time_scale).
    """

    provider: Literal["openai", "anthropic", "gemini", "compat", "*"]
    kind: FaultKind
    rate: float = Field(default=1.0, ge=0, le=1)
    start: Duration = Field(default=0.0, alias="from")
    to: Duration | None = None
    duration: Duration | None = None
    model: str | None = None
    key: str | None = None  # only requests made with this API key
    retry_after: Duration | None = None
    status: Literal[500, 502, 503] | None = None  # server_error: fixed status, else a pick
    hang: Duration | None = None  # hang: how long to hold the request before closing
    # degenerate: answer 200 with a content-free caption of this kind
    caption: Literal["refusal", "boilerplate", "empty", "please_provide_image"] | None = None
    mode: Literal["reset", "503"] | None = None  # outage: reset connections or answer 503

    @model_validator(mode="after")
    def _consistent(self) -> FaultSpec:
        if self.to is not None and self.duration is not None:
            raise ValueError("give either 'to' or 'duration', not both")
        if self.to is not None and self.to <= self.start:
            raise ValueError(f"'to' ({self.to:g}s) must be after 'from' ({self.start:g}s)")
        only = {"status": "server_error", "hang": "hang", "mode": "outage", "caption": "degenerate"}
        for key, kind in only.items():
            if getattr(self, key) is not None and self.kind != kind:
                raise ValueError(f"'{key}' applies only to kind {kind}")
        if self.retry_after is not None and self.kind not in ("rate_limited", "overloaded"):
            raise ValueError("'retry_after' applies only to kinds rate_limited and overloaded")
        if (self.model is not None or self.key is not None) and self.kind == "outage":
            raise ValueError("an outage takes the whole provider down: drop 'model' and 'key'")
        return self

    @property
    def end(self) -> float:
        """End of the window in scenario seconds (inf when open-ended)."""
        if self.to is not None:
            return self.to
        if self.duration is not None:
            return self.start + self.duration
        return math.inf


class Scenario(_Strict):
    """Everything the simulator does differently from a perfect, unlimited, instant provider."""

    providers: dict[ProviderName, ProviderSpec] = Field(default_factory=dict)
    faults: list[FaultSpec] = Field(default_factory=list)
    seed: int = 0
    time_scale: float = Field(default=1.0, gt=0)

    def provider(self, name: str) -> ProviderSpec:
        return self.providers.get(name) or ProviderSpec()  # type: ignore[call-overload]

    def with_limits(self, rpm: int | None = None, tpm: int | None = None) -> Scenario:
        """The same scenario with `rpm`/`tpm` per key on every simulated provider."""
        if rpm is None and tpm is None:
            return self
        providers: dict[str, ProviderSpec] = {}
        for name in PROVIDERS:
            spec = self.provider(name)
            update: dict[str, int] = {}
            if rpm is not None:
                update["rpm"] = rpm
            if tpm is not None:
                update["tpm"] = tpm
            providers[name] = spec.model_copy(update=update)
        return self.model_copy(update={"providers": providers})

    def secrets(self) -> list[str]:
        keys = [k for spec in self.providers.values() for k in (spec.keys or [])]
        return keys + [f.key for f in self.faults if f.key]


class ScenarioError(ValueError):
    """A scenario file that cannot be used; `problems` holds one line per problem."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        head = f"{path}: {len(problems)} problem{'s' if len(problems) > 1 else ''} in scenario"
        super().__init__("\n".join([head, *("  " + p for p in problems)]))


def _marks(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], yaml.Mark]) -> None:
    """Where each key path starts in the file (value nodes; key nodes under '[key]')."""
    out[path] = node.start_mark
    if isinstance(node, yaml.MappingNode):
        for knode, vnode in node.value:
            key = knode.value
            out[(*path, key, "[key]")] = knode.start_mark
            _marks(vnode, (*path, key), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _marks(item, (*path, i), out)


def _where(loc: tuple[Any, ...], marks: dict[tuple[Any, ...], yaml.Mark]) -> yaml.Mark | None:
    """The mark of the deepest existing node on `loc` (a missing key points at its parent)."""
    for n in range(len(loc), -1, -1):
        mark = marks.get(tuple(loc[:n]))
        if mark is not None:
            return mark
    return None


def _dotted(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if part == "[key]":
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _clean_loc(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Drop pydantic's union/function tags ('function-before[...]', 'LatencySpec')."""
    return tuple(
        p
        for p in loc
        if not (isinstance(p, str) and (("[" in p and p != "[key]") or p == "LatencySpec"))
    )


def parse_scenario(text: str, source: str = "<scenario>") -> Scenario:
    """A Scenario from YAML text; raises ScenarioError naming file, line and key path."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"{mark.line + 1}:{mark.column + 1}" if mark else "?"
        raise ScenarioError(source, [f"{source}:{line}: not valid YAML: {exc.problem}"]) from None
    if node is None:
        return Scenario()
    if not isinstance(node, yaml.MappingNode):
        raise ScenarioError(
            source, [f"{source}:{node.start_mark.line + 1}: expected a mapping at the top level"]
        )
    data = yaml.SafeLoader(text).get_single_data()
    marks: dict[tuple[Any, ...], yaml.Mark] = {}
    _marks(node, (), marks)
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        secrets = _keys_in(data)
        problems = []
        for err in exc.errors(include_url=False):
            loc = _clean_loc(tuple(err["loc"]))
            mark = _where(loc, marks)
            line = f"{mark.line + 1}:{mark.column + 1}" if mark else "?"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key"
            elif err["type"] == "missing":
                msg = "required key missing"
            elif "got" not in msg and not isinstance(err.get("input"), dict | list | None):
                msg += f" (got {err['input']!r})"
            problems.append(mask_secrets(f"{source}:{line}: {_dotted(loc)}: {msg}", secrets))
        raise ScenarioError(source, problems) from None


def _keys_in(data: object) -> list[str]:
    """Keys listed anywhere in the raw data, so messages never echo them unmasked."""
    try:
        return [
            k
            for spec in (data.get("providers") or {}).values()  # type: ignore[union-attr]
            for k in (spec.get("keys") or [])
            if isinstance(k, str)
        ]
    except (AttributeError, TypeError):
        return []


def load_scenario(path: str | Path) -> Scenario:
    """Read a scenario file; raises ScenarioError (with line numbers) or OSError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ScenarioError(str(p), [f"{p}: not UTF-8 text ({exc.reason})"]) from None
    return parse_scenario(text, str(p))
