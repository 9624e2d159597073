"""`evtui status|explain|export RUN`: read a run directory, live or finished, without locking.

These never take the run's lock, so they work while `evtui run` is writing: they read
only lines that were complete when they started.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

import orjson

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _run_dir(text: str) -> Path | None:
    p = Path(text)
    if not (p / "manifest.json").is_file():
        print(f"evtui: error: {p}: not a run directory (no manifest.json)", file=sys.stderr)
        return None
    return p


def cmd_status(args: argparse.Namespace) -> int:
    from evtui.jobs import JobError, read_status

    run_dir = _run_dir(args.run)
    if run_dir is None:
        return EXIT_BAD_INPUT
    try:
        st = read_status(run_dir)
    except JobError as e:
        print(f"evtui status: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        sys.stdout.write(orjson.dumps(st, default=str).decode() + "\n")
        return EXIT_OK
    total = st.get("total")
    writer = st.get("writer") or {}
    live = f"running (pid {writer.get('pid')})" if writer.get("live") else "not running"
    print(f"{run_dir}: {live}")
    print(
        f"  done {st['done']}  failed {st['failed']}  skipped {st['skipped']}  "
        f"pending {st['pending']}" + (f"  of {total}" if total else "")
    )
    print(f"  spent ${st.get('spend_usd', 0.0):,.4f}; cache hits {st.get('cache_hits', 0)}")
    for target, t in sorted((st.get("targets") or {}).items()):
        print(
            f"  {target}: done {t['done']}, failed {t['failed']}, skipped {t['skipped']}, "
            f"${t['spend_usd']:,.4f}"
        )
    for state, reasons in (st.get("errors") or {}).items():
        if reasons:
            print(f"  {state}:")
            for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:10]:
                print(f"    {n} × {reason}")
    return EXIT_OK


def explain_text(frame: int, traces: list[dict[str, Any]], results: list[dict[str, Any]]) -> str:
    """For each slot: the pick, every attempt with outcome and delay, fallbacks, cache, cost."""
    out = [f"frame {frame}"]
    if not traces and not results:
        return f"frame {frame}: nothing recorded yet (pending)"
    latest: dict[str, dict[str, Any]] = {}
    for tr in traces:
        latest[str(tr.get("slot"))] = tr  # the last route record of each slot is final
    for slot, tr in latest.items():
        pick = tr.get("pick") or {}
        weights = pick.get("weights")
        how = "weighted pick" if weights else "asked for"
        wtxt = (
            " (weights " + ", ".join(f"{k} {v:g}" for k, v in weights.items()) + ")"
            if weights
            else ""
        )
        out.append(f"  {slot}: {how} {pick.get('target', '?')}{wtxt}")
        if tr.get("cache") not in (None, "off", "miss"):
            out.append(f"    cache: {tr['cache']} hit")
        for i, a in enumerate(tr.get("attempts", []), 1):
            status = f" HTTP {a['status']}" if a.get("status") else ""
            extra = []
            if a.get("waited_s"):
                extra.append(f"waited {a['waited_s']:.3g} s")
            if a.get("retry_after_s") is not None:
                extra.append(f"provider said retry after {a['retry_after_s']:.3g} s")
            if a.get("counted") is False:
                extra.append("not counted against the frame's retry budget")
            if a.get("note"):
                extra.append(a["note"])
            tail = ("; " + "; ".join(extra)) if extra else ""
            out.append(
                f"    {i}. {a['target']} {a['key']}: {a['outcome']}{status} "
                f"in {a['latency_s']:.3g} s, {a['bytes']} bytes sent{tail}"
            )
        out.extend(f"    fell back: {fb}" for fb in tr.get("fallbacks", []))
        f = tr.get("final") or {}
        line = f"    → {f.get('state')} by {f.get('target')}"
        if f.get("state") == "done":
            line += (
                f": {f.get('input_tokens', 0)} tokens in, {f.get('output_tokens', 0)} out, "
                f"${f.get('cost_usd', 0.0):.6f}"
            )
        elif f.get("reason"):
            line += f": {f['reason']}"
        out.append(line)
    for r in results:
        if r.get("state") == "done":
            src = r.get("cache_source")
            cache = f" [cache hit from frame {src.get('frame')}]" if src else ""
            out.append(f"  caption ({r.get('target')}){cache}: {r.get('caption')}")
    return "\n".join(out)


def cmd_explain(args: argparse.Namespace) -> int:
    from evtui.jobs.layout import TRACE
    from evtui.jobs.lines import complete_size, grep_frame
    from evtui.jobs.records import final_records

    run_dir = _run_dir(args.run)
    if run_dir is None:
        return EXIT_BAD_INPUT
    trace_path = run_dir / TRACE
    end = complete_size(trace_path) if trace_path.exists() else 0
    traces = list(grep_frame(trace_path, args.frame, end)) if end else []
    results = list(final_records(run_dir, frame=args.frame))
    if args.json:
        sys.stdout.write(orjson.dumps({"traces": traces, "results": results}).decode() + "\n")
    else:
        print(explain_text(args.frame, traces, results))
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from evtui.jobs import export as ex
    from evtui.jobs.layout import read_manifest

    run_dir = _run_dir(args.run)
    if run_dir is None:
        return EXIT_BAD_INPUT
    out = Path(args.out)
    fmt = args.format
    try:
        if fmt == "jsonl":
            n = ex.export_jsonl(run_dir, out)
        elif fmt == "csv":
            n = ex.export_csv(run_dir, out)
        elif fmt == "parquet":
            n = ex.export_parquet(run_dir, out)
        else:
            manifest = read_manifest(run_dir) or {}
            n = _export_webdataset(run_dir, manifest, out, args.shard_size)
    except ex.ExportUnavailable as e:
        print(f"evtui export: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(f"{out}: {n} {'samples' if fmt == 'webdataset' else 'rows'}", file=sys.stderr)
    return EXIT_OK


def _export_webdataset(run_dir: Path, manifest: dict[str, Any], out: Path, shard: int) -> int:
    """Re-render each captioned frame as PNG (settings from the manifest) beside its captions."""
    from evtui.events.windows import WindowSpec
    from evtui.frames.encode import EncodeSpec
    from evtui.frames.pipeline import FramePlan, encoded_windows, make_executor
    from evtui.jobs.export import ShardWriter, frame_samples

    man = manifest.get("manifest", manifest)
    render = man["render"]
    plan = FramePlan(
        path=man["recording"]["path"],
        window=WindowSpec.parse(render["window"], overlap=render.get("overlap")),
        method=render["method"],
        size=tuple(render["size"]),  # type: ignore[arg-type]
        encode=EncodeSpec(formats=("png",)),
    )
    samples = dict(frame_samples(run_dir))

    async def write() -> int:
        # Streamed: each PNG is written as it arrives, never all held in memory.
        n = 0
        with make_executor("process") as pool, ShardWriter(out, shard_size=shard) as w:
            async for ew in encoded_windows(plan, sorted(samples), executor=pool):
                w.write(ew.index, ew.data, samples.pop(ew.index))
                n += 1
        return n

    return asyncio.run(write())


def add_job_parsers(subparsers: Any) -> None:
    sp = subparsers.add_parser("status", help="progress, spend and errors of a run directory")
    sp.add_argument("run", help="the run directory")
    sp.add_argument("--json", action="store_true", help="one JSON object")
    sp.set_defaults(func=cmd_status)

    sp = subparsers.add_parser("explain", help="the full route of one frame: picks, attempts")
    sp.add_argument("run", help="the run directory")
    sp.add_argument("frame", type=int, help="window index")
    sp.add_argument("--json", action="store_true", help="the raw route records and results")
    sp.set_defaults(func=cmd_explain)

    sp = subparsers.add_parser("export", help="captions as JSONL, CSV, Parquet or WebDataset")
    sp.add_argument("run", help="the run directory")
    sp.add_argument("--format", choices=("jsonl", "csv", "parquet", "webdataset"), default="jsonl")
    sp.add_argument("--out", "-o", required=True, help="output file (directory for webdataset)")
    sp.add_argument("--shard-size", type=int, default=1000, help="samples per WebDataset shard")
    sp.set_defaults(func=cmd_export)
