"""`evtui pilot CONFIG RECORDING --frames N`: sample, caption in compare mode, report.

The pilot runs every target on every sampled frame (compare mode, whatever the config
says) with the caption cache off, in its own run directory so it never mixes with the
real run, and resumes like any run. At the end it prints the report and writes it as
one HTML file; interrupted or stopped by the budget, it still reports what finished.

Exit codes: 0 report written, 2 bad input or config (or the report cannot be written),
3 budget reached (report written), 130 interrupted (report written; run again to finish).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from evtui.cli_run import (
    EXIT_BAD_INPUT,
    EXIT_BUDGET,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Reporter,
    run_headless,
)
from evtui.config import ConfigError, load_config
from evtui.engine.job import Job, window_spec
from evtui.events.errors import RecordingError
from evtui.events.recording import Recording
from evtui.jobs import JobError
from evtui.pilot.analysis import PilotAnalysis, analyse
from evtui.pilot.measure import (
    lane_limits,
    limits_from_json,
    limits_to_json,
    measure_targets,
    merge_limits,
    read_traces,
)
from evtui.pilot.report import html_report, text_report, thumbnail_uri
from evtui.pilot.sample import DEFAULT_STRATA, METHODS, sample_windows, window_activity

PILOT_FILE = "pilot.json"
UiRunner = Callable[[Job], Any]  # runs the job in the app until the user quits
UiLoader = Callable[[], UiRunner | None]  # the runner, or None when no app can start


def default_pilot_dir(config_path: str | Path, recording_path: str | Path) -> Path:
    rec = Path(recording_path).name.split(".")[0]
    return Path("runs") / f"pilot-{Path(config_path).stem}-{rec}"


def _fail(message: str) -> int:
    print(f"evtui pilot: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _saved(run_dir: Path) -> dict[str, Any]:
    try:
        data = orjson.loads((run_dir / PILOT_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def cmd_pilot(args: argparse.Namespace, load_ui: UiLoader | None = None) -> int:
    """Run a pilot and report. Without --no-ui, `load_ui()` gives the interactive app's
    runner; it is called only then, so a headless pilot never imports the app."""
    if args.frames <= 0:
        return _fail(f"--frames: expected a positive number of frames, got {args.frames}")
    if args.target_hours is not None and args.target_hours <= 0:
        return _fail(f"--target-hours: expected a positive duration, got {args.target_hours}")
    if args.budget is not None and args.budget <= 0:
        return _fail(f"--budget: expected a positive amount, got {args.budget}")
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        print(e.report(), file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        spec = window_spec(cfg)
        rec = Recording(args.recording)
        activity = window_activity(rec, spec)
        n_windows = len(activity.values)
        if n_windows == 0:
            return _fail(f"{args.recording}: no windows of {spec.describe()} to sample")
        sample = sample_windows(
            n_windows,
            args.frames,
            args.sample,
            seed=args.seed,
            activity=activity.values,
            strata=args.strata,
            min_activity=float(cfg.render.min_events) if activity.unit == "events" else None,
        )
    except (RecordingError, ValueError) as e:
        return _fail(str(e))
    run_dir = Path(args.run_dir) if args.run_dir else default_pilot_dir(args.config, args.recording)
    report_path = Path(args.report) if args.report else run_dir / "pilot.html"
    # Every target on every frame, each answer from the provider itself: a cached caption
    # would hide the latency, tokens and limits the pilot is there to measure.
    compare = cfg.model_copy(
        update={"mode": "compare", "cache": cfg.cache.model_copy(update={"enabled": False})}
    )
    mode = "force" if args.force else ("new" if args.new else "refuse")
    try:
        job = Job.open(
            compare,
            args.recording,
            run_dir,
            frames=sample.frames.tolist(),
            workers=args.workers,
            on_mismatch=mode,
        )
    except (RecordingError, JobError, OSError) as e:
        return _fail(str(e))
    err = sys.stderr
    try:
        run_dir = Path(job.store.run_dir)
        if not args.report:
            report_path = run_dir / "pilot.html"
        print(
            f"pilot {run_dir}: {sample.describe()}; {len(cfg.targets)} targets in compare mode, "
            f"{job.todo.count} frame×target pairs to do",
            file=err,
        )
        started = time.monotonic()
        interrupted = False
        ui = load_ui() if load_ui is not None and not args.no_ui else None
        if ui is not None:
            ui(job)
            snap = job.engine.snapshot
            left = (snap.slots_total or 0) - snap.finished
            interrupted = left > 0 and snap.state not in ("budget", "failed")
        else:
            if not args.no_ui:
                print("evtui pilot: no interactive app here; running headless", file=err)
            _, interrupted = asyncio.run(run_headless(job, Reporter(err, args.json)))
        elapsed = time.monotonic() - started
        snap = job.engine.snapshot
        state = "interrupted" if interrupted else snap.state
        if state not in ("done", "budget", "interrupted", "failed"):
            state = "interrupted" if state in ("stopped", "draining") else "done"
        saved = _saved(run_dir)
        limits = merge_limits(lane_limits(snap), limits_from_json(saved.get("limits")))
        frames = set(int(f) for f in sample.frames)
        try:
            results = [r for r in job.store.results() if int(r["frame"]) in frames]
            traces = read_traces(run_dir, frames)
        except JobError as e:  # a damaged file: name it, keep what is on disk
            return _fail(str(e))
        measures = measure_targets(cfg, results, traces, limits)
        analysis = analyse(
            cfg,
            config_path=str(args.config),
            recording_path=str(args.recording),
            run_dir=str(run_dir),
            sample=sample,
            activity=activity,
            results=results,
            measures=measures,
            target_minutes=None if args.target_hours is None else args.target_hours * 60,
            budget_usd=args.budget,
        )
        analysis.state = state
        analysis.elapsed_s = elapsed
        _thumbnails(job, analysis)
        _write_atomic(
            run_dir / PILOT_FILE,
            orjson.dumps(
                {
                    "sample": {
                        "method": sample.method,
                        "seed": sample.seed,
                        "n_windows": sample.n_windows,
                        "frames": sample.frames.tolist(),
                    },
                    "limits": limits_to_json(limits),
                    "state": state,
                    "elapsed_s": round(elapsed, 3),
                },
                option=orjson.OPT_INDENT_2,
            ),
        )
        try:
            report_path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(report_path, html_report(analysis).encode("utf-8"))
        except OSError as e:
            print(text_report(analysis))
            return _fail(f"{report_path}: cannot write the report: {e.strerror or e}")
        print(text_report(analysis, str(report_path)))
    finally:
        job.close()
    if snap.state == "failed":
        return _fail(snap.message or "the run failed")
    if interrupted:
        print(f"interrupted: run the same command to finish the pilot ({run_dir})", file=err)
        return EXIT_INTERRUPTED
    if state == "budget":
        print(f"evtui pilot: {snap.message}", file=err)
        return EXIT_BUDGET
    return EXIT_OK


def _thumbnails(job: Job, a: PilotAnalysis) -> None:
    """Render the gallery's frames small; a frame that cannot be rendered goes without."""
    for frame, _ in a.gallery:
        try:
            a.thumbnails[frame] = thumbnail_uri(job.preview(frame))
        except (RecordingError, ValueError, IndexError, OSError):
            continue


def add_pilot_parser(subparsers: Any, load_ui: UiLoader | None = None) -> argparse.ArgumentParser:
    """Register `evtui pilot`. `load_ui` (from evtui/cli.py, which may import the app)
    returns the app's `run_app`, or None when it cannot start; without it, or with
    --no-ui, the pilot runs headless."""
    p = subparsers.add_parser(
        "pilot", help="caption a sample in compare mode and project the full run's cost and time"
    )
    p.add_argument("config", help="the job's YAML config")
    p.add_argument("recording", help="the event recording")
    p.add_argument("--frames", "-n", type=int, default=5000, help="frames to sample (5000)")
    p.add_argument(
        "--sample", choices=METHODS, default="stratified", help="how to pick them (stratified)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for random and stratified samples")
    p.add_argument(
        "--strata", type=int, default=DEFAULT_STRATA, help="activity strata (stratified)"
    )
    p.add_argument("--no-ui", action="store_true", help="headless: progress line, no app")
    p.add_argument("--run-dir", help="the pilot's run directory (default runs/pilot-…)")
    p.add_argument("--report", help="the HTML report to write (default RUN_DIR/pilot.html)")
    p.add_argument(
        "--target-hours", type=float, help="find the cheapest mix finishing within this time"
    )
    p.add_argument("--budget", type=float, help="find the fastest mix costing at most this (USD)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--force", action="store_true", help="continue even if result-changing settings changed"
    )
    g.add_argument(
        "--new", action="store_true", help="start a fresh sibling run if settings changed"
    )
    p.add_argument("--workers", type=int, help="render/encode worker processes (default: cores)")
    p.add_argument("--json", action="store_true", help="JSON status lines instead of a bar")
    p.set_defaults(func=lambda args: cmd_pilot(args, load_ui))
    return p


__all__ = ["add_pilot_parser", "cmd_pilot", "default_pilot_dir"]


def main(argv: list[str] | None = None) -> int:
    """`python -m evtui.pilot.cli CONFIG RECORDING ...`: the command on its own (headless)."""
    parser = argparse.ArgumentParser(prog="evtui")
    add_pilot_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["pilot", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("evtui: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return _fail(f"{where}{e.strerror or e}")


if __name__ == "__main__":
    sys.exit(main())
