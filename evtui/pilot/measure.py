"""What the pilot measured per target, from the run's files and the engine's learned limits.

Results and route records come from the run directory (so a resumed pilot counts what
earlier sessions did), restricted to the sampled frames. Rate limits come from the
engine's lanes: the configured ones, or the ones the provider's headers revealed; they
are saved in `pilot.json` beside the results so a resumed pilot that sends nothing new
still knows them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evtui.config import Config
from evtui.jobs.layout import TRACE
from evtui.jobs.lines import scan

# Attempt outcomes the provider never counted against its request budget.
_NOT_SENT = frozenset({"rate_limited", "connection_failed"})


@dataclass(frozen=True)
class LaneLimits:
    """One key's limits on one target, per minute; None = not known to be limited."""

    key: str  # "key#1" (never the key text)
    rpm: float | None
    tpm: float | None
    source: str  # config | headers | "" (unknown)


@dataclass(frozen=True)
class TargetMeasure:
    """One target over the pilot's frames."""

    id: str
    protocol: str
    share: float  # configured share of first picks in route mode
    max_output_tokens: int
    frames: int  # frames answered or failed (skipped windows not counted)
    done: int
    failed: int
    cache_hits: int
    attempts: int  # requests on the wire
    counted_requests: int  # of those, the ones the provider counted (not 429s, not unsent)
    rate_limited: int
    overloaded: int
    server_errors: int
    timeouts: int
    other_errors: int
    retry_after_max_s: float | None
    latency_p50_s: float | None
    latency_p95_s: float | None
    latency_mean_s: float | None
    input_per_frame: float
    output_per_frame: float
    rate_tokens_per_frame: float  # what the provider's tokens-per-minute limit counts
    cost_per_frame: float  # USD per captioned frame, cache hits excluded
    lanes: tuple[LaneLimits, ...]

    @property
    def usable(self) -> bool:
        return self.done - self.cache_hits > 0

    @property
    def error_rate(self) -> float:
        return self.failed / self.frames if self.frames else 0.0

    @property
    def rate_limited_rate(self) -> float:
        return self.rate_limited / self.attempts if self.attempts else 0.0

    @property
    def requests_per_frame(self) -> float:
        """Requests the provider counted per caption (retries after errors included)."""
        paid = self.done - self.cache_hits
        return max(self.counted_requests / paid, 1.0) if paid > 0 else 1.0

    @property
    def cost_per_1k(self) -> float:
        return 1000.0 * self.cost_per_frame


def rate_tokens(protocol: str, input_tokens: float, output_tokens: float, max_output: int) -> float:
    """Tokens one request draws from a tokens-per-minute limit, by the provider's rule:
    OpenAI counts max(input, max_tokens), Anthropic input + output (max_tokens pre-charged,
    the unused part given back), Gemini input only."""
    if protocol == "anthropic":
        return input_tokens + output_tokens
    if protocol == "gemini":
        return input_tokens
    return max(input_tokens, float(max_output))


def read_traces(run_dir: str | Path, frames: Iterable[int] | None = None) -> list[dict[str, Any]]:
    """Route records of the run (first answers only, not reruns), optionally of some frames."""
    path = Path(run_dir) / TRACE
    if not path.exists():
        return []
    want = None if frames is None else set(int(f) for f in frames)
    out = []
    for block in scan(path):
        for rec in block.items:
            if rec.get("rerun") or (want is not None and rec.get("frame") not in want):
                continue
            out.append(rec)
    return out


def lane_limits(snapshot: Any) -> dict[str, tuple[LaneLimits, ...]]:
    """Per target, each key's limits as the engine knows them at the end of the run."""
    out: dict[str, tuple[LaneLimits, ...]] = {}
    for tv in getattr(snapshot, "targets", ()):
        lanes = []
        for i, ln in enumerate(tv.lanes, 1):
            parts = ln.key.split(" ")
            label = parts[1] if len(parts) > 1 and parts[1].startswith("key#") else f"key#{i}"
            p = ln.pace
            lanes.append(LaneLimits(label, p.rpm_limit, p.tpm_limit, p.source))
        out[tv.id] = tuple(lanes)
    return out


def merge_limits(
    fresh: Mapping[str, Sequence[LaneLimits]], saved: Mapping[str, Sequence[LaneLimits]]
) -> dict[str, tuple[LaneLimits, ...]]:
    """This session's limits, falling back per key to the ones saved by an earlier session."""
    out: dict[str, tuple[LaneLimits, ...]] = {}
    for tid in set(fresh) | set(saved):
        old = {ln.key: ln for ln in saved.get(tid, ())}
        lanes = []
        for ln in fresh.get(tid, ()) or saved.get(tid, ()):
            prev = old.get(ln.key)
            if not ln.source and prev is not None and prev.source:
                ln = prev
            lanes.append(ln)
        out[tid] = tuple(lanes)
    return out


def limits_to_json(limits: Mapping[str, Sequence[LaneLimits]]) -> dict[str, list[dict[str, Any]]]:
    return {t: [asdict(ln) for ln in lanes] for t, lanes in limits.items()}


def limits_from_json(data: Any) -> dict[str, tuple[LaneLimits, ...]]:
    """Saved limits; anything malformed is ignored (they are a cache, relearned next run)."""
    out: dict[str, tuple[LaneLimits, ...]] = {}
    if not isinstance(data, dict):
        return out
    for tid, lanes in data.items():
        try:
            out[str(tid)] = tuple(
                LaneLimits(
                    str(d["key"]),
                    None if d.get("rpm") is None else float(d["rpm"]),
                    None if d.get("tpm") is None else float(d["tpm"]),
                    str(d.get("source") or ""),
                )
                for d in lanes
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _pct(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def measure_targets(
    cfg: Config,
    results: Sequence[Mapping[str, Any]],
    traces: Sequence[Mapping[str, Any]],
    limits: Mapping[str, Sequence[LaneLimits]],
) -> list[TargetMeasure]:
    """Per-target figures of the pilot, in config order. `cfg` is the user's config (its
    weights give the route shares the projection starts from)."""
    shares = cfg.model_copy(update={"mode": "route"}).shares()
    out = []
    for t in cfg.targets:
        mine = [r for r in results if (r.get("target") or r.get("slot")) == t.id]
        done = [r for r in mine if r.get("state") == "done"]
        failed = [r for r in mine if r.get("state") == "failed"]
        paid = [r for r in done if not r.get("cache_hit")]
        attempts = [a for tr in traces for a in tr.get("attempts", ()) if a.get("target") == t.id]
        outcomes: dict[str, int] = {}
        for a in attempts:
            outcomes[a.get("outcome", "")] = outcomes.get(a.get("outcome", ""), 0) + 1
        lat = [float(a["latency_s"]) for a in attempts if a.get("outcome") == "ok"]
        if not lat:
            lat = [float(r.get("latency_s") or 0.0) for r in paid]
        waits = [float(a["retry_after_s"]) for a in attempts if a.get("retry_after_s") is not None]
        protocol = cfg.providers[t.provider].protocol
        max_out = cfg.output_tokens(t)
        ins = np.array([float(r.get("input_tokens") or 0) for r in paid])
        outs = np.array([float(r.get("output_tokens") or 0) for r in paid])
        costs = np.array([float(r.get("cost_usd") or 0.0) for r in paid])
        rate_tok = [rate_tokens(protocol, i, o, max_out) for i, o in zip(ins, outs, strict=True)]
        known = {"ok", "rate_limited", "overloaded", "server_error", "timeout"}
        out.append(
            TargetMeasure(
                id=t.id,
                protocol=protocol,
                share=shares.get(t.id, 0.0),
                max_output_tokens=max_out,
                frames=len(done) + len(failed),
                done=len(done),
                failed=len(failed),
                cache_hits=len(done) - len(paid),
                attempts=len(attempts),
                counted_requests=sum(v for k, v in outcomes.items() if k not in _NOT_SENT),
                rate_limited=outcomes.get("rate_limited", 0),
                overloaded=outcomes.get("overloaded", 0),
                server_errors=outcomes.get("server_error", 0),
                timeouts=outcomes.get("timeout", 0),
                other_errors=sum(v for k, v in outcomes.items() if k not in known),
                retry_after_max_s=max(waits) if waits else None,
                latency_p50_s=_pct(lat, 50),
                latency_p95_s=_pct(lat, 95),
                latency_mean_s=float(np.mean(lat)) if lat else None,
                input_per_frame=float(ins.mean()) if len(ins) else 0.0,
                output_per_frame=float(outs.mean()) if len(outs) else 0.0,
                rate_tokens_per_frame=float(np.mean(rate_tok)) if rate_tok else 0.0,
                cost_per_frame=float(costs.mean()) if len(costs) else 0.0,
                lanes=tuple(limits.get(t.id, ())),
            )
        )
    return out


__all__ = [
    "LaneLimits",
    "TargetMeasure",
    "lane_limits",
    "limits_from_json",
    "limits_to_json",
    "measure_targets",
    "merge_limits",
    "rate_tokens",
    "read_traces",
]
