"""The job configuration: one YAML file, validated strictly, the single source of truth.

Every problem is collected before anything is reported, each with its file, line, column
and key path, so a user fixes a config in one pass instead of one error per run. Secrets
come only from `${ENV}` references; the expanded values live in memory and are never
written back (`Config.redacted()` keeps the references, which is also a loadable config).

cfg = load_config("job.yaml")          # raises ConfigError(path, problems)
print(describe_routing(cfg))            # who gets which share, what falls back to what
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from evtui.providers import ADAPTERS
from evtui.providers.prices import PriceTable
from evtui.providers.secrets import mask_key

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_ONLY_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_WINDOW = re.compile(r"^\s*(\d+ev|[0-9]*\.?[0-9]+\s*(us|µs|ms|s)?)\s*$")
_OVERLAP = re.compile(r"^\s*([0-9]*\.?[0-9]+%|\d+ev|[0-9]*\.?[0-9]+\s*(us|µs|ms|s)?)\s*$")
# Renderer names of evtui.events.render.RENDERERS (config may not import events).
RenderMethod = Literal[
    "histogram", "cdframe", "signed", "binary", "timesurface", "voxel", "reconstruction"
]

Path_ = tuple[str | int, ...]


# -- problems --------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a config, located in the source (line/column 1-based, 0 if none)."""

    line: int
    column: int
    path: str
    message: str

    def format(self, file: str | os.PathLike[str]) -> str:
        where = f"{file}:{self.line}:{self.column}" if self.line else f"{file}"
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class ConfigError(Exception):
    """A config that cannot be used; `problems` lists every reason at once."""

    def __init__(self, path: str | os.PathLike[str], problems: list[Problem]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(self.report())

    def report(self) -> str:
        return "\n".join(p.format(self.path) for p in self.problems)


# -- models ----------------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _env(info: ValidationInfo) -> Mapping[str, str]:
    ctx = info.context or {}
    return ctx.get("env", os.environ)


class Key(_Strict):
    """One API key: a `${ENV}` reference, expanded in memory only, with its known limits."""

    key: SecretStr
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)
    name: str | None = None
    _env_name: str = PrivateAttr(default="")

    @field_validator("key", mode="before")
    @classmethod
    def _expand(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            raise ValueError("expected a ${ENV_VAR} reference string")
        m = _ONLY_REF.match(value.strip())
        if not m:
            raise ValueError(
                "expected a ${ENV_VAR} reference (keys are never written in the config file)"
            )
        env = _env(info)
        if m.group(1) not in env:
            raise ValueError(f"environment variable {m.group(1)} is not set")
        if not env[m.group(1)]:
            raise ValueError(f"environment variable {m.group(1)} is empty")
        return env[m.group(1)]

    @model_validator(mode="wrap")
    @classmethod
    def _remember_ref(cls, data: Any, handler: Any) -> Key:
        obj = handler(data)
        if isinstance(data, Mapping) and isinstance(data.get("key"), str):
            m = _ONLY_REF.match(data["key"].strip())
            if m:
                obj._env_name = m.group(1)
        return obj

    @property
    def env_name(self) -> str:
        return self._env_name

    @property
    def masked(self) -> str:
        return mask_key(self.key.get_secret_value())


class Provider(_Strict):
    protocol: str
    base_url: str | None = None
    keys: tuple[Key, ...] = ()
    timeout_s: float = Field(default=60.0, gt=0, le=3600)
    connect_timeout_s: float = Field(default=10.0, gt=0, le=600)
    options: dict[str, Any] = Field(default_factory=dict)
    _base_url_ref: str | None = PrivateAttr(default=None)

    @field_validator("protocol")
    @classmethod
    def _known_protocol(cls, value: str) -> str:
        if value not in ADAPTERS:
            raise ValueError(f"expected one of {', '.join(sorted(ADAPTERS))}, got {value!r}")
        return value

    @field_validator("base_url", mode="before")
    @classmethod
    def _expand_url(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value
        env = _env(info)
        missing = [n for n in _ENV_REF.findall(value) if n not in env]
        if missing:
            raise ValueError(f"environment variable {', '.join(missing)} is not set")
        url = _ENV_REF.sub(lambda m: env[m.group(1)], value)
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError("expected an http:// or https:// URL")
        return url.rstrip("/")

    @model_validator(mode="wrap")
    @classmethod
    def _remember_ref(cls, data: Any, handler: Any) -> Provider:
        obj = handler(data)
        if isinstance(data, Mapping) and isinstance(data.get("base_url"), str):
            obj._base_url_ref = data["base_url"]
        return obj


class Target(_Strict):
    id: str
    weight: float = Field(default=1.0, ge=0)
    fallbacks: tuple[str, ...] = ()
    max_output_tokens: int | None = Field(default=None, gt=0)
    detail: Literal["low", "high", "auto", "original"] | None = None
    prompt: str = "default"

    @field_validator("id")
    @classmethod
    def _provider_slash_model(cls, value: str) -> str:
        provider, _, model = value.partition("/")
        if not provider or not model:
            raise ValueError(f"expected provider/model like openai/gpt-4o, got {value!r}")
        return value

    @property
    def provider(self) -> str:
        return self.id.partition("/")[0]

    @property
    def model(self) -> str:
        return self.id.partition("/")[2]


class Retry(_Strict):
    max_attempts_per_frame_target: int = Field(default=4, ge=1, le=20)
    backoff_base_s: float = Field(default=0.5, gt=0, le=60)
    backoff_cap_s: float = Field(default=30.0, gt=0, le=600)
    jitter: Literal["full", "equal", "none"] = "full"

    @model_validator(mode="after")
    def _cap_above_base(self) -> Retry:
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("backoff_cap_s must be >= backoff_base_s")
        return self


class Prompt(_Strict):
    text: str = Field(min_length=1)
    system: str | None = None

    @property
    def version(self) -> str:
        """Short hash of the template text: a change of text is a new prompt version."""
        blob = f"{len(self.system or '')}:{self.system or ''}\x00{self.text}".encode()
        return hashlib.sha256(blob).hexdigest()[:10]


class Cache(_Strict):
    enabled: bool = True
    scope: Literal["target", "provider", "any"] = "target"
    threshold: float | None = Field(default=None, ge=0, le=1)
    dir: str | None = None


class Render(_Strict):
    method: RenderMethod = "cdframe"
    window: str = "33ms"
    overlap: str | None = None
    width: int | None = Field(default=None, gt=0, le=16384)
    height: int | None = Field(default=None, gt=0, le=16384)
    format: Literal["jpeg", "png", "webp"] = "jpeg"
    quality: int = Field(default=85, ge=1, le=100)
    min_events: int = Field(default=20, ge=0)  # fewer: skipped as near-empty, never sent

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not _WINDOW.match(value) or _is_zero(value):
            raise ValueError(
                f"expected a duration like 33ms or an event count like 20000ev, got {value!r}"
            )
        return value.strip()

    @field_validator("overlap", mode="before")
    @classmethod
    def _overlap(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not _OVERLAP.match(value):
            raise ValueError(f"expected a fraction like 50% or a size like 10ms, got {value!r}")
        if value.strip().endswith("%") and not 0 <= float(value.strip()[:-1]) < 100:
            raise ValueError(f"overlap must be in [0%, 100%), got {value!r}")
        return value.strip()


def _is_zero(text: str) -> bool:
    digits = re.sub(r"[^0-9.]", "", text)
    try:
        return float(digits) <= 0
    except ValueError:
        return True


class Engine(_Strict):
    """How hard the engine pushes and how it backs off; defaults suit real providers."""

    max_in_flight: int = Field(default=1024, ge=1, le=100_000)
    initial_concurrency: int = Field(default=32, ge=1, le=100_000)
    max_concurrency_per_target: int = Field(default=4096, ge=1, le=100_000)
    breaker_failures: int = Field(default=5, ge=1, le=10_000)
    breaker_open_s: float = Field(default=5.0, gt=0, le=3600)
    breaker_open_cap_s: float = Field(default=60.0, gt=0, le=86400)
    default_retry_after_s: float = Field(default=1.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _caps(self) -> Engine:
        if self.breaker_open_cap_s < self.breaker_open_s:
            raise ValueError("breaker_open_cap_s must be >= breaker_open_s")
        return self


class Guard(_Strict):
    """Caption guard: flag answers that are not captions, reroute and pause on them."""

    enabled: bool = True
    reroute: bool = True  # empty, refusal, asks-for-image: try the next target in the chain
    pause_rate: float = Field(default=0.2, gt=0, le=1)  # over the last `window` answers
    window: int = Field(default=100, ge=5, le=100_000)
    boilerplate_frames: int = Field(default=50, ge=2, le=1_000_000)


class Ui(_Strict):
    """The app: a theme name (themes/ or ~/.config/evtui/themes/), a keymap file, and the
    CPU priority of the engine's process under the app (higher `engine_nice`: the engine
    yields the CPU sooner when the UI needs it; the UI uses little, so the run barely
    slows; --no-ui runs are never reniced)."""

    theme: str | None = None
    keymap: str | None = None  # YAML: binding id -> keys (see evtui/tui/bindings.py)
    engine_nice: int = Field(default=5, ge=0, le=19)


class LongContextPrice(_Strict):
    above: int = Field(gt=0)
    input: float | None = Field(default=None, ge=0)
    output: float | None = Field(default=None, ge=0)
    cached_input: float | None = Field(default=None, ge=0)


class PriceOverride(_Strict):
    """USD per 1M tokens; a known model may override only some fields."""

    input: float | None = Field(default=None, ge=0)
    output: float | None = Field(default=None, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    cache_write_1h: float | None = Field(default=None, ge=0)
    batch_discount: float | None = Field(default=None, ge=0, le=1)
    long_context: LongContextPrice | None = None
    source: str | None = None


class Config(_Strict):
    providers: dict[str, Provider]
    targets: tuple[Target, ...]
    mode: Literal["route", "compare"] = "route"
    retry: Retry = Field(default_factory=Retry)
    prompts: dict[str, Prompt]
    max_output_tokens: int = Field(default=300, gt=0, le=65536)
    budget_usd: float | None = Field(default=None, gt=0)
    cache: Cache = Field(default_factory=Cache)
    render: Render = Field(default_factory=Render)
    prices: dict[str, PriceOverride] = Field(default_factory=dict)
    engine: Engine = Field(default_factory=Engine)
    guard: Guard = Field(default_factory=Guard)
    ui: Ui = Field(default_factory=Ui)
    _source: str = PrivateAttr(default="")
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @field_validator("providers", "targets", "prompts")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        # An after-validator, so it stays silent when the items themselves failed.
        if not value:
            raise ValueError("expected at least one entry")
        return value

    # -- derived views ------------------------------------------------------------------

    @property
    def source(self) -> str:
        return self._source

    def target(self, target_id: str) -> Target:
        for t in self.targets:
            if t.id == target_id:
                return t
        raise KeyError(target_id)

    def shares(self) -> dict[str, float]:
        """Fraction of frames each target gets first (route); 1.0 each in compare mode."""
        if self.mode == "compare":
            return {t.id: 1.0 for t in self.targets}
        total = sum(t.weight for t in self.targets)
        return {t.id: (t.weight / total if total else 0.0) for t in self.targets}

    def fallback_chain(self, target_id: str) -> tuple[str, ...]:
        """The order attempts take: the target, then its fallbacks depth first, each once."""
        by_id = {t.id: t for t in self.targets}
        seen: list[str] = []

        def visit(tid: str) -> None:
            if tid in seen or tid not in by_id:
                return
            seen.append(tid)
            for f in by_id[tid].fallbacks:
                visit(f)

        visit(target_id)
        return tuple(seen)

    def prompt_version(self, name: str = "default") -> str:
        return self.prompts[name].version

    def output_tokens(self, target: Target) -> int:
        return target.max_output_tokens or self.max_output_tokens

    def price_table(self) -> PriceTable:
        return PriceTable.load(_price_overrides(self))

    def secrets(self) -> list[str]:
        """Every expanded secret, so logs and traces can mask them."""
        return [k.key.get_secret_value() for p in self.providers.values() for k in p.keys]

    def redacted(self) -> dict[str, Any]:
        """The config as a plain dict with keys as their `${ENV}` references (no secret is
        present); the frozen snapshot written into a job directory. Loads back as a config."""
        out = self.model_dump(mode="json", exclude_none=True)
        for name, prov in self.providers.items():
            p_out = out["providers"][name]
            if prov._base_url_ref is not None:
                p_out["base_url"] = prov._base_url_ref
            p_out["keys"] = [
                {**k_out, "key": f"${{{k.env_name}}}"}
                for k, k_out in zip(prov.keys, p_out["keys"], strict=True)
            ]
        return out


def _price_overrides(cfg: Config) -> dict[str, dict[str, Any]]:
    return {m: p.model_dump(exclude_none=True) for m, p in cfg.prices.items()}


# -- YAML with positions ---------------------------------------------------------------


@dataclass
class _Marks:
    """Source positions per key path: where the key is written and where its value starts."""

    key: dict[Path_, tuple[int, int]]
    value: dict[Path_, tuple[int, int]]

    def at(self, path: Path_, *, prefer_key: bool = False) -> tuple[int, int]:
        p = tuple(path)
        while True:
            first, second = (self.key, self.value) if prefer_key else (self.value, self.key)
            if p in first:
                return first[p]
            if p in second:
                return second[p]
            if not p:
                return (1, 1)
            p = p[:-1]
            prefer_key = True


def _pos(mark: yaml.Mark) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def _walk(node: yaml.Node, path: Path_, marks: _Marks, problems: list[Problem]) -> None:
    marks.value[path] = _pos(node.start_mark)
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for k, v in node.value:
            name = k.value if isinstance(k, yaml.ScalarNode) else str(k.value)
            sub = (*path, name)
            if name in seen:
                line, col = _pos(k.start_mark)
                problems.append(Problem(line, col, _dotted(sub), "duplicate key"))
            seen.add(name)
            marks.key[sub] = _pos(k.start_mark)
            _walk(v, sub, marks, problems)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), marks, problems)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _parse_yaml(text: str, problems: list[Problem]) -> tuple[Any, _Marks]:
    marks = _Marks({}, {})
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            problems.append(Problem(1, 1, "", "the file is empty; expected a mapping of settings"))
            return None, marks
        _walk(node, (), marks, problems)
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = _pos(mark) if mark else (0, 0)
        what = " ".join(s for s in (e.context, e.problem) if s)
        problems.append(Problem(line, col, "", f"YAML syntax error: {what}"))
        return None, marks
    except yaml.YAMLError as e:
        problems.append(Problem(0, 0, "", f"YAML error: {e}"))
        return None, marks
    finally:
        loader.dispose()
    if not isinstance(data, dict):
        problems.append(Problem(1, 1, "", f"expected a mapping of settings, got {_kind(data)}"))
        return None, marks
    return data, marks


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


# -- pydantic errors → problems --------------------------------------------------------


def _unwrap(tp: Any, segment: str | int) -> Any:
    """The type found one step into `tp` along `segment` (a field, a dict key, an index)."""
    while True:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            tp = args[0] if args else None
            continue
        break
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        f = tp.model_fields.get(str(segment))
        return f.annotation if f else None
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is dict and len(args) == 2:
        return args[1]
    if origin in (tuple, list) and args:
        return args[0]
    return None


def _model_at(path: Path_) -> type[BaseModel] | None:
    tp: Any = Config
    for seg in path:
        tp = _unwrap(tp, seg)
        if tp is None:
            return None
    while typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = next((a for a in typing.get_args(tp) if a is not type(None)), None)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _message(err: Mapping[str, Any], path: Path_) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        model = _model_at(path[:-1])
        if model is None:
            return f"unknown key {path[-1]!r}"
        known = list(model.model_fields)
        close = difflib.get_close_matches(str(path[-1]), known, n=1, cutoff=0.7)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown key {path[-1]!r} ({hint}expected one of: {', '.join(known)})"
    if kind == "missing":
        return f"missing required key {path[-1]!r}" if path else "missing required key"
    msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    value = err.get("input")
    secret = "keys" in path
    if not secret and isinstance(value, int | float | str | bool) and kind != "value_error":
        shown = repr(value) if len(repr(value)) < 60 else repr(value)[:57] + "..."
        msg = f"{msg}, got {shown}"
    return msg


def _from_validation(e: ValidationError, marks: _Marks) -> list[Problem]:
    out = []
    for err in e.errors(include_url=False):
        # Drop pydantic's synthetic loc parts (e.g. 'function-after[...]').
        path = tuple(p for p in err["loc"] if isinstance(p, int) or "[" not in str(p))
        prefer_key = err["type"] in ("extra_forbidden", "missing")
        line, col = marks.at(path, prefer_key=prefer_key)
        out.append(Problem(line, col, _dotted(path), _message(err, path)))
    return out


# -- semantic checks -------------------------------------------------------------------


def _semantic(cfg: Config, marks: _Marks) -> list[Problem]:
    out: list[Problem] = []

    def add(path: Path_, message: str) -> None:
        line, col = marks.at(path)
        out.append(Problem(line, col, _dotted(path), message))

    ids = [t.id for t in cfg.targets]
    for i, t in enumerate(cfg.targets):
        if t.id in ids[:i]:
            add(
                ("targets", i, "id"),
                f"duplicate target {t.id!r} (first at targets[{ids.index(t.id)}])",
            )
        if t.provider not in cfg.providers:
            known = ", ".join(sorted(cfg.providers))
            add(("targets", i, "id"), f"unknown provider {t.provider!r} (declared: {known})")
        for j, f in enumerate(t.fallbacks):
            if f not in ids:
                add(("targets", i, "fallbacks", j), f"fallback {f!r} is not a declared target")
            elif f == t.id:
                add(("targets", i, "fallbacks", j), "a target cannot fall back to itself")
        if t.prompt not in cfg.prompts:
            known = ", ".join(sorted(cfg.prompts))
            add(("targets", i, "prompt"), f"unknown prompt {t.prompt!r} (declared: {known})")
    if "default" not in cfg.prompts and any(t.prompt == "default" for t in cfg.targets):
        pass  # reported per target above
    out.extend(_cycles(cfg, marks))
    if cfg.mode == "route" and not any(t.weight > 0 for t in cfg.targets):
        add(("targets",), "in route mode at least one target needs a weight > 0")
    for name, p in cfg.providers.items():
        if p.protocol == "openai-compatible" and not p.base_url:
            add(("providers", name, "protocol"), "an openai-compatible provider needs base_url")
    try:
        table = cfg.price_table()
    except ValueError as e:
        add(("prices",), str(e))
    else:
        for i, t in enumerate(cfg.targets):
            if t.model not in table:
                add(
                    ("targets", i, "id"),
                    f"no price known for model {t.model!r}; add it under prices: "
                    "(input and output, USD per 1M tokens)",
                )
    return out


def _cycles(cfg: Config, marks: _Marks) -> list[Problem]:
    """Each fallback cycle once, named in order (a → b → a), at its first edge."""
    edges = {t.id: [f for f in t.fallbacks if f != t.id] for t in cfg.targets}
    index = {t.id: i for i, t in enumerate(cfg.targets)}
    found: list[Problem] = []
    reported: set[frozenset[str]] = set()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(tid: str) -> None:
        state[tid] = 1
        stack.append(tid)
        for f in edges.get(tid, []):
            if f not in edges:
                continue
            if state.get(f) == 1:
                cycle = [*stack[stack.index(f) :], f]
                members = frozenset(cycle)
                if members not in reported:
                    reported.add(members)
                    i = index[cycle[0]]
                    j = cfg.targets[i].fallbacks.index(cycle[1])
                    line, col = marks.at(("targets", i, "fallbacks", j))
                    found.append(
                        Problem(
                            line,
                            col,
                            _dotted(("targets", i, "fallbacks")),
                            f"fallback cycle: {' → '.join(cycle)}",
                        )
                    )
            elif f not in state:
                visit(f)
        stack.pop()
        state[tid] = 2

    for t in cfg.targets:
        if t.id not in state:
            visit(t.id)
    return found


# -- loading ---------------------------------------------------------------------------


def parse_config(
    text: str, source: str = "<config>", env: Mapping[str, str] | None = None
) -> Config:
    """Validate config text; raises ConfigError with every problem, sorted by position."""
    problems: list[Problem] = []
    data, marks = _parse_yaml(text, problems)
    if data is None:
        raise ConfigError(source, problems)
    ctx = {"env": os.environ if env is None else env}
    try:
        cfg = Config.model_validate(data, context=ctx)
    except ValidationError as e:
        problems.extend(_from_validation(e, marks))
        # Semantic checks still run on the parts that did validate, when they can.
        cfg = None
    if cfg is not None:
        problems.extend(_semantic(cfg, marks))
    if problems:
        problems.sort(key=lambda p: (p.line, p.column, p.path))
        raise ConfigError(source, problems)
    assert cfg is not None
    cfg._source = source
    return cfg


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML config file (env defaults to os.environ)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(p, [Problem(0, 0, "", f"cannot read: {e.strerror or e}")]) from None
    except UnicodeDecodeError as e:
        raise ConfigError(p, [Problem(0, 0, "", f"not UTF-8 text: {e.reason}")]) from None
    return parse_config(text, str(p), env)


# -- the routing tree ------------------------------------------------------------------


def _limits(k: Key) -> str:
    parts = [f"rpm {k.rpm}" if k.rpm else "", f"tpm {k.tpm}" if k.tpm else ""]
    known = ", ".join(p for p in parts if p)
    return known if known else "limits learned from headers"


def describe_routing(cfg: Config) -> str:
    """The resolved routing tree as plain text, so nobody reasons about which path runs."""
    lines = [f"config: {cfg.source}" if cfg.source else "config:"]
    if cfg.mode == "route":
        lines.append("mode: route (one caption per frame, first target chosen by weight)")
    else:
        lines.append("mode: compare (every frame goes to every target)")
    shares = cfg.shares()
    width = max(len(t.id) for t in cfg.targets)
    lines.append("targets:")
    for t in cfg.targets:
        share = "every frame" if cfg.mode == "compare" else f"{shares[t.id] * 100:5.1f}% of frames"
        prompt = f"prompt {t.prompt}@{cfg.prompts[t.prompt].version}"
        lines.append(
            f"  {t.id:<{width}}  {share}  weight {t.weight:g}  {prompt}  "
            f"max_output_tokens {cfg.output_tokens(t)}"
            + (f"  detail {t.detail}" if t.detail else "")
        )
        chain = cfg.fallback_chain(t.id)
        lines.append(
            "    fallbacks: " + (" → ".join(chain) if len(chain) > 1 else "none (fails alone)")
        )
    lines.append("providers:")
    for name in sorted(cfg.providers):
        p = cfg.providers[name]
        url = p.base_url or "default endpoint"
        lines.append(
            f"  {name}: {p.protocol} at {url}; timeout {p.timeout_s:g}s, "
            f"connect {p.connect_timeout_s:g}s"
        )
        if not p.keys:
            lines.append("    no keys (unauthenticated)")
        for i, k in enumerate(p.keys, 1):
            label = f" {k.name}" if k.name else ""
            lines.append(f"    key#{i}{label} ${{{k.env_name}}} = {k.masked}  {_limits(k)}")
    r = cfg.retry
    lines.append(
        f"retry: up to {r.max_attempts_per_frame_target} attempts per frame×target, backoff "
        f"{r.backoff_base_s:g}s doubling to {r.backoff_cap_s:g}s, {r.jitter} jitter"
    )
    e = cfg.engine
    lines.append(
        f"engine: up to {e.max_in_flight} frames in flight; per target {e.initial_concurrency} "
        f"concurrent at start, adaptive up to {e.max_concurrency_per_target}; breaker opens "
        f"after {e.breaker_failures} failures in a row for {e.breaker_open_s:g}s "
        f"(doubling to {e.breaker_open_cap_s:g}s)"
    )
    lines.append(
        f"budget: ${cfg.budget_usd:,.2f}" if cfg.budget_usd else "budget: none (no spending cap)"
    )
    c = cfg.cache
    if c.enabled:
        thr = f", threshold {c.threshold:g}" if c.threshold is not None else ""
        lines.append(f"cache: on, scope {c.scope}{thr}")
    else:
        lines.append("cache: off")
    g = cfg.guard
    if g.enabled:
        lines.append(
            "guard: "
            + ("empty/refusal/asks-for-image answers go to the next target; " if g.reroute else "")
            + f"a target pauses above {g.pause_rate:.0%} non-captions in its last {g.window}"
        )
    else:
        lines.append("guard: off")
    rd = cfg.render
    size = f" {rd.width}x{rd.height}" if rd.width and rd.height else ""
    overlap = f" overlap {rd.overlap}" if rd.overlap else ""
    lines.append(
        f"render: {rd.method}, window {rd.window}{overlap}{size}, {rd.format} q{rd.quality}; "
        f"windows under {rd.min_events} events skipped"
    )
    return "\n".join(lines)


__all__ = [
    "Config",
    "ConfigError",
    "Key",
    "Problem",
    "Prompt",
    "Provider",
    "Target",
    "describe_routing",
    "load_config",
    "parse_config",
]
