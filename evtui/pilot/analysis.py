"""Everything a pilot report shows, computed once from the pilot's results.

Both renderings (terminal text and the HTML file) read this one structure, so they never
disagree, and it is built from plain result dicts so tests can hand-make a pilot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from evtui.config import Config
from evtui.pilot.measure import TargetMeasure
from evtui.pilot.project import (
    Binding,
    Plan,
    Projector,
    TargetModel,
    route_shares,
)
from evtui.pilot.sample import Sample, WindowActivity
from evtui.pilot.stats import Agreement, StyleStats, agreement, caption_style

GALLERY_SAMPLE = 24
GALLERY_DISAGREEMENTS = 12


@dataclass(frozen=True)
class Projection:
    """The full recording under the configured weights, and better mixes."""

    windows: int
    frames: int  # windows that would be sent (estimated non-empty)
    configured: Plan | None
    binding: Binding | None
    cheapest: Plan | None  # cheapest within the reference duration
    reference_minutes: float | None
    fastest: Plan | None  # fastest within the reference cost
    reference_usd: float | None
    compare: Plan | None  # every target on every frame
    frontier: tuple[Plan, ...]
    notes: tuple[str, ...]

    @property
    def saving(self) -> float | None:
        """Cost saved by the cheapest mix against the configured weights (0..1)."""
        if self.cheapest is None or self.configured is None or self.configured.cost_usd <= 0:
            return None
        return 1.0 - self.cheapest.cost_usd / self.configured.cost_usd


@dataclass
class PilotAnalysis:
    """The report's content; `table` maps frame → slot → result dict."""

    config_path: str
    recording_path: str
    run_dir: str
    sample: Sample
    activity: WindowActivity
    targets: list[str]
    measures: list[TargetMeasure]
    styles: list[StyleStats]
    agreement: Agreement
    table: dict[int, dict[str, dict[str, Any]]]
    projection: Projection
    gallery: list[tuple[int, str]]  # (frame, why: "sample" | "disagreement")
    state: str = "done"  # done | interrupted | budget | failed
    elapsed_s: float = 0.0
    skipped: int = 0
    thumbnails: dict[int, str] = field(default_factory=dict)  # frame → data: URI


def project_full(
    cfg: Config,
    measures: Sequence[TargetMeasure],
    windows: int,
    frames: int,
    *,
    target_minutes: float | None = None,
    budget_usd: float | None = None,
) -> Projection:
    """The projection for `frames` frames to send out of `windows` windows."""
    e = cfg.engine
    usable = [m for m in measures if m.usable]
    models = [TargetModel.from_measure(m, e.max_concurrency_per_target) for m in usable]
    proj = Projector(models, frames, e.max_in_flight)
    notes: list[str] = []
    for m in measures:
        if not m.usable:
            why = "answered only from the cache" if m.done else "no caption came back"
            notes.append(
                f"{m.id}: {why} in the pilot, so nothing was measured; left out of every mix"
            )
        elif not any(ln.rpm or ln.tpm for ln in m.lanes):
            seen = f" ({m.rate_limited} 429s seen)" if m.rate_limited else ""
            notes.append(
                f"{m.id}: no rate limit known{seen}: set rpm/tpm on its keys for a realistic "
                "projection (otherwise only concurrency and latency bound it)"
            )
    shares = route_shares(measures)
    configured = binding = None
    missing = [t for t in shares if t not in proj.by_id]
    if not shares:
        notes.append("no target has a weight above 0: nothing to project in route mode")
    elif missing:
        notes.append(
            "the configured weights send frames to "
            + ", ".join(missing)
            + ", which the pilot could not measure: no projection for the configured mix"
        )
    else:
        configured = proj.plan(shares)
        binding = proj.binding(shares)
    ref_min = target_minutes
    if ref_min is None and configured is not None and math.isfinite(configured.minutes):
        ref_min = configured.minutes
    ref_usd = budget_usd
    if ref_usd is None and configured is not None:
        ref_usd = configured.cost_usd
    cheapest = proj.cheapest(ref_min) if ref_min else None
    if ref_min and cheapest is None:
        notes.append(f"no mix of the measured targets finishes within {ref_min:.1f} min")
    fastest = proj.fastest(ref_usd) if ref_usd else None
    compare = proj.plan({m.id: 1.0 for m in models}) if models else None
    upto = (ref_min or 0.0) * 3 if ref_min and math.isfinite(ref_min) else None
    return Projection(
        windows=windows,
        frames=frames,
        configured=configured,
        binding=binding,
        cheapest=cheapest,
        reference_minutes=ref_min,
        fastest=fastest,
        reference_usd=ref_usd,
        compare=compare,
        frontier=tuple(proj.frontier(40, upto)),
        notes=tuple(notes),
    )


def caption_table(
    results: Sequence[Mapping[str, Any]],
) -> dict[int, dict[str, dict[str, Any]]]:
    """frame → slot → its final result."""
    table: dict[int, dict[str, dict[str, Any]]] = {}
    for r in results:
        slot = r.get("slot") or r.get("target")
        if slot:
            table.setdefault(int(r["frame"]), {})[str(slot)] = dict(r)
    return table


def style_by_target(
    targets: Sequence[str], results: Sequence[Mapping[str, Any]]
) -> list[StyleStats]:
    out = []
    for t in targets:
        done = [r for r in results if r.get("target") == t and r.get("state") == "done"]
        caps = {int(r["frame"]): r.get("caption") for r in done}
        cut = [
            int(r["frame"])
            for r in done
            if "truncated" in (r.get("flags") or ()) or r.get("finish_reason") == "length"
        ]
        out.append(caption_style(t, caps, cut))
    return out


def pick_gallery(
    frames: Sequence[int], per_frame_agreement: Mapping[int, float]
) -> list[tuple[int, str]]:
    """Up to 24 frames spread over the sample, plus the 12 frames the targets agree on least."""
    frames = sorted(frames)
    if len(frames) <= GALLERY_SAMPLE:
        spread = list(frames)
    else:
        pos = ((np.arange(GALLERY_SAMPLE) + 0.5) * len(frames) / GALLERY_SAMPLE).astype(int)
        spread = [frames[i] for i in pos]
    chosen = set(spread)
    worst = sorted(per_frame_agreement.items(), key=lambda kv: (kv[1], kv[0]))
    extra = [f for f, _ in worst if f not in chosen][:GALLERY_DISAGREEMENTS]
    out = [(f, "sample") for f in spread] + [(f, "disagreement") for f in extra]
    return sorted(out)


def analyse(
    cfg: Config,
    *,
    config_path: str,
    recording_path: str,
    run_dir: str,
    sample: Sample,
    activity: WindowActivity,
    results: Sequence[Mapping[str, Any]],
    measures: list[TargetMeasure],
    target_minutes: float | None = None,
    budget_usd: float | None = None,
) -> PilotAnalysis:
    """Statistics, agreement, projection and gallery of one pilot."""
    wanted = set(int(f) for f in sample.frames)
    results = [r for r in results if int(r["frame"]) in wanted and not r.get("rerun")]
    targets = [t.id for t in cfg.targets]
    table = caption_table(results)
    captions = {
        f: {t: (r.get("caption") if r.get("state") == "done" else None) for t, r in row.items()}
        for f, row in table.items()
        if any(r.get("state") != "skipped" for r in row.values())
    }
    agree = agreement(captions, targets)
    frames_to_send = _sendable(cfg, activity)
    projection = project_full(
        cfg,
        measures,
        sample.n_windows,
        frames_to_send,
        target_minutes=target_minutes,
        budget_usd=budget_usd,
    )
    skipped = sum(
        1 for row in table.values() if all(r.get("state") == "skipped" for r in row.values())
    )
    return PilotAnalysis(
        config_path=config_path,
        recording_path=recording_path,
        run_dir=run_dir,
        sample=sample,
        activity=activity,
        targets=targets,
        measures=measures,
        styles=style_by_target(targets, results),
        agreement=agree,
        table=table,
        projection=projection,
        gallery=pick_gallery(list(captions), agree.per_frame),
        skipped=skipped,
    )


def _sendable(cfg: Config, activity: WindowActivity) -> int:
    """Windows the full run would send: those not skipped as near-empty (estimated)."""
    vals = activity.values
    floor = cfg.render.min_events
    if activity.unit != "events" or floor <= 0:
        return len(vals)
    return int(np.count_nonzero(vals >= floor - 0.5))


__all__ = [
    "PilotAnalysis",
    "Projection",
    "analyse",
    "caption_table",
    "pick_gallery",
    "project_full",
    "style_by_target",
]
