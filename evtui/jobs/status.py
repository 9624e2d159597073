"""Progress of a run: counts, spend, per-target numbers and error reasons.

`read_status` answers from outside the writing process: it takes no lock, so it can never
delay or refuse the writer, and starts from the writer's snapshot so a million-frame run
answers in milliseconds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from evtui.jobs import lines
from evtui.jobs.errors import JobError
from evtui.jobs.layout import (
    CAPTIONS,
    LEDGER,
    MANIFEST,
    SNAPSHOT,
    history_total,
    ingest_file,
    read_manifest,
)
from evtui.jobs.lock import holder_pid
from evtui.jobs.state import DONE, FAILED, SKIPPED, Table


def summarise(
    table: Table, total: int | None, manifest: dict[str, Any], retry_failed: bool
) -> dict[str, Any]:
    """Counts, spend and reasons. Top-level counts cover the manifest's current prompt
    versions (results of older ones, kept after a forced change, are `superseded`)."""
    prompts = manifest.get("prompts")
    current = (
        {v for v in prompts.values() if isinstance(v, str)} if isinstance(prompts, dict) else set()
    )
    targets: dict[str, dict[str, Any]] = {}
    agg = np.zeros(4, np.int64)
    superseded = 0
    for kid, (target, pv) in enumerate(table.keys):
        counts = table.counts(kid)
        sums = table.sums[kid]
        t = targets.setdefault(
            target,
            {
                "done": 0,
                "failed": 0,
                "skipped": 0,
                "duplicates": 0,
                "spend_usd": 0.0,
                "input_tokens": 0,
                "output_tokens": 0,
                "cache_hits": 0,
                "prompt_versions": {},
            },
        )
        is_current = not current or pv in current or pv == ""
        if is_current:
            t["done"] += int(counts[DONE])
            t["failed"] += int(counts[FAILED])
            t["skipped"] += int(counts[SKIPPED])
            agg += counts
        else:
            superseded += int(counts[DONE] + counts[FAILED] + counts[SKIPPED])
        t["duplicates"] += int(sums[4])
        t["spend_usd"] += float(sums[0])
        t["input_tokens"] += int(sums[1])
        t["output_tokens"] += int(sums[2])
        t["cache_hits"] += int(sums[3])
        t["prompt_versions"][pv] = {
            "done": int(counts[DONE]),
            "failed": int(counts[FAILED]),
            "skipped": int(counts[SKIPPED]),
            "current": is_current,
        }
    for t in targets.values():
        t["spend_usd"] = round(t["spend_usd"], 10)  # equal however the sums were grouped
    targets = dict(sorted(targets.items()))
    if manifest.get("mode") == "route":  # count frames, not (frame, target) keys
        agg = np.bincount(table.combined(current or None), minlength=4)[:4].astype(np.int64)
    terminal = int(agg[DONE] + agg[SKIPPED] + (0 if retry_failed else agg[FAILED]))
    s = table.sums.sum(axis=0) if len(table.keys) else np.zeros(5)
    return {
        "done": int(agg[DONE]),
        "failed": int(agg[FAILED]),
        "skipped": int(agg[SKIPPED]),
        "pending": None if total is None else max(total - terminal, 0),
        "total": total,
        "superseded": superseded,
        "duplicates": int(s[4]),
        "spend_usd": round(float(s[0]), 10),
        "input_tokens": int(s[1]),
        "output_tokens": int(s[2]),
        "cache_hits": int(s[3]),
        "targets": targets,
        "errors": {"failed": table.reason_counts(FAILED), "skipped": table.reason_counts(SKIPPED)},
    }


def read_status(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """`status()` of a run from outside: takes no lock, never blocks or refuses the writer.

    Starts from the writer's snapshot (status.npz, at most ~2 s old) and reads only the
    lines appended since, so it stays fast on a million-frame run; without a usable
    snapshot it reads the files whole. Torn last lines are ignored, not cut.
    """
    path = Path(run_dir)
    env = read_manifest(path)
    if env is None:
        raise JobError(f"{path} is not a run directory (no {MANIFEST})")
    ends = {n: lines.complete_size(path / n) for n in (CAPTIONS, LEDGER)}
    snap = Table.load(path / SNAPSHOT)
    table, start, first, total, retry = (
        Table(),
        dict.fromkeys(ends, 0),
        dict.fromkeys(ends, 1),
        None,
        False,
    )
    if snap is not None:
        t, head = snap
        offsets, counted = head.get("offsets", {}), head.get("lines", {})
        if head.get("run_id") == env["run_id"] and all(
            isinstance(offsets.get(n), int) and offsets[n] <= ends[n] for n in ends
        ):
            table, start = t, {n: offsets[n] for n in ends}
            first = {n: counted.get(n, -1) + 1 for n in ends}
            total, retry = head.get("total"), bool(head.get("retry_failed"))
    for name, done in ((LEDGER, False), (CAPTIONS, True)):
        if (path / name).exists():
            ingest_file(table, path / name, done, start[name], ends[name], first[name])
    if total is None:
        total = env["manifest"].get("total")
        total = total if type(total) is int else history_total(path)
    out = summarise(table, total, env["manifest"], retry)
    pid = holder_pid(path)
    out.update(
        run_dir=str(path), run_id=env["run_id"], writer={"pid": pid, "live": pid is not None}
    )
    return out
