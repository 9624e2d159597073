"""`evtui run CONFIG RECORDING --no-ui`: the headless job, resumable, with a live status.

On a terminal one progress line is redrawn in place; off a terminal (or with --json) a
JSON status line is printed every few seconds for log collectors. Ctrl-C (or SIGTERM)
drains: no new frames, in-flight requests finish and are recorded, then exit 130; a
second Ctrl-C stops at once. Either way the next run continues where this one stopped.

Exit codes: 0 all done, 1 some frames failed permanently, 2 bad input or config (or the
run directory cannot be written), 3 budget reached, 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import orjson

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUDGET, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _fmt_s(s: float | None) -> str:
    if s is None or s != s or s == float("inf"):
        return "--"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def status_line(snap: Any) -> str:
    """One line: progress, rate, ETA, spend against projection, cache hits, 429s absorbed."""
    total = snap.slots_total or 0
    done = snap.finished
    pct = f"{done / total:6.1%}" if total else "   --"
    limited = sum(t.rate_limited for t in snap.targets)
    proj = f" of ~${snap.projected_usd:,.2f}" if snap.projected_usd else ""
    budget = f" (budget ${snap.budget_usd:,.2f})" if snap.budget_usd else ""
    fails = f" {snap.failed} failed" if snap.failed else ""
    return (
        f"{snap.state:<8} {done}/{total} {pct} {snap.rate:7.1f}/s ETA {_fmt_s(snap.eta_s)}"
        f"  ${snap.spend_usd:,.4f}{proj}{budget}  cache {snap.cache_hits}"
        f"  429s absorbed {limited}  in flight {snap.in_flight}{fails}"
    )


def status_json(snap: Any) -> bytes:
    return orjson.dumps(
        {
            "state": snap.state,
            "done": snap.done,
            "failed": snap.failed,
            "skipped": snap.skipped,
            "total": snap.slots_total,
            "rate": round(snap.rate, 2),
            "eta_s": None if snap.eta_s is None else round(snap.eta_s, 1),
            "spend_usd": round(snap.spend_usd, 6),
            "projected_usd": None if snap.projected_usd is None else round(snap.projected_usd, 4),
            "cache_hits": snap.cache_hits,
            "in_flight": snap.in_flight,
            "rate_limited": sum(t.rate_limited for t in snap.targets),
        }
    )


def summary(snap: Any) -> str:
    """Per target: requests, successes, 429s, overloads, fallbacks, cache hits, tokens, spend."""
    head = (
        f"{'target':<34} {'req':>7} {'ok':>7} {'429':>5} {'overl':>5} {'5xx':>5} "
        f"{'fallbk':>6} {'cache':>6} {'tok in':>9} {'tok out':>8} {'spend $':>9}"
    )
    lines = [head]
    lines += [
        f"{t.id:<34} {t.requests:>7} {t.ok:>7} {t.rate_limited:>5} {t.overloaded:>5} "
        f"{t.server_errors:>5} {t.fallbacks_out:>6} {t.cache_hits:>6} "
        f"{t.input_tokens:>9} {t.output_tokens:>8} {t.spend_usd:>9.4f}"
        for t in snap.targets
    ]
    lines.append(
        f"{snap.done} done, {snap.failed} failed, {snap.skipped} skipped; "
        f"spent ${snap.spend_usd:,.4f}"
    )
    return "\n".join(lines)


class Reporter:
    """Live status for a headless run: a redrawn line on a TTY, JSON lines otherwise."""

    def __init__(self, stream: TextIO, json_lines: bool, every_s: float = 5.0) -> None:
        self.stream = stream
        self.tty = stream.isatty() and not json_lines
        self.json = json_lines or not stream.isatty()
        self.every_s = every_s
        self._last = 0.0
        self._width = 0

    def tick(self, snap: Any, events: list[Any]) -> None:
        for e in events:
            if e.kind != "caption":
                self._line(f"{e.kind}: {e.message}")
        now = time.monotonic()
        if self.tty:
            text = status_line(snap)
            pad = max(self._width - len(text), 0)
            self._width = len(text)
            self.stream.write("\r" + text + " " * pad)
            self.stream.flush()
        elif now - self._last >= self.every_s:
            self._last = now
            self.stream.write(status_json(snap).decode() + "\n")
            self.stream.flush()

    def _line(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + text.ljust(self._width) + "\n")
            self._width = 0
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self, snap: Any) -> None:
        if self.tty:
            self.stream.write("\r" + status_line(snap).ljust(self._width) + "\n")
        else:
            self.stream.write(status_json(snap).decode() + "\n")
        self.stream.flush()


async def run_headless(job: Any, reporter: Reporter) -> tuple[Any, bool]:
    """Run a Job with signals wired to drain/stop; returns (RunResult, interrupted)."""
    loop = asyncio.get_running_loop()
    eng = job.engine
    interrupted = False

    def on_signal(signame: str) -> None:
        nonlocal interrupted
        if interrupted:
            reporter._line(f"{signame} again: stopping now; in-flight requests are abandoned")
            eng.stop()
            return
        interrupted = True
        reporter._line(f"{signame}: draining in-flight requests (again to stop at once)")
        eng.drain()

    installed = []
    for sig, name in ((signal.SIGINT, "interrupt"), (signal.SIGTERM, "terminate")):
        try:
            loop.add_signal_handler(sig, on_signal, name)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):
            pass

    async def ticker() -> None:
        while True:
            await asyncio.sleep(0.25)
            reporter.tick(eng.snapshot, eng.events.drain())

    tick = asyncio.create_task(ticker())
    try:
        result = await job.run()
    finally:
        tick.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)
    reporter.tick(eng.snapshot, eng.events.drain())
    reporter.close(eng.snapshot)
    return result, interrupted


def cmd_run(args: argparse.Namespace) -> int:
    from evtui.config import ConfigError, load_config
    from evtui.engine.job import Job, default_run_dir
    from evtui.events.errors import RecordingError
    from evtui.jobs import JobError

    ui = wants_app(args.no_ui)
    try:
        cfg = load_config(args.config)
    except ConfigError as e:
        return show_error(e.report(), ui)
    run_dir = Path(args.run_dir) if args.run_dir else default_run_dir(args.config, args.recording)
    mode = "force" if args.force else ("new" if args.new else "refuse")
    if ui:
        return run_in_app(
            args.config,
            args.recording,
            run_dir,
            theme=args.theme,
            on_mismatch=mode,
            retry_failed=args.retry_failed,
            workers=args.workers,
            metrics_port=args.metrics_port,
        )
    try:
        job = Job.open(
            cfg,
            args.recording,
            run_dir,
            on_mismatch=mode,
            retry_failed=args.retry_failed,
            workers=args.workers,
            metrics_port=args.metrics_port,
        )
    except (RecordingError, JobError, OSError) as e:
        return show_error(f"evtui run: {e}", ui)
    err = sys.stderr
    for w in job.warnings:
        print(f"evtui run: warning: {w}", file=err)
    print(
        f"run {job.store.run_dir} ({job.store.opened}): {job.n_frames} frames, "
        f"{job.todo.count} frame×slot pairs to do",
        file=err,
    )
    reporter = Reporter(err, args.json)
    try:
        result, interrupted = asyncio.run(run_headless(job, reporter))
        print(summary(job.engine.snapshot), file=err)
        return _verdict(job, result, interrupted, run_dir, err)
    finally:
        job.close()


def wants_app(no_ui: bool) -> bool:
    """The app needs a terminal on both ends; anywhere else (pipes, CI, cron) run headless."""
    if no_ui:
        return False
    if sys.stdin.isatty() and sys.stdout.isatty():
        return True
    print("not a terminal: running headless (as with --no-ui)", file=sys.stderr)
    return False


def run_in_app(
    config: str | Path, recording: str | Path, run_dir: Path, *, theme: str | None, **kw: Any
) -> int:
    """The app, with the engine in its own process so the UI never waits on it."""
    from evtui.engine.process import RemoteJob, RemoteJobError
    from evtui.tui.app import run_app

    try:
        job = RemoteJob.open(config, recording, run_dir, **kw)
    except RemoteJobError as e:
        return show_error(str(e), True)
    try:
        return run_app(job, theme=theme)
    finally:
        job.close()


def show_error(message: str, ui: bool) -> int:
    """A bad config, recording or run directory: in the app when there is one, else stderr."""
    if ui:
        from evtui.tui.app import run_app_error

        return run_app_error(message)
    print(message, file=sys.stderr)
    return EXIT_BAD_INPUT


def _verdict(job: Any, result: Any, interrupted: bool, run_dir: Path, err: TextIO) -> int:
    if result.state == "failed":
        print(f"evtui run: {result.message}", file=err)
        return EXIT_BAD_INPUT
    if interrupted:
        print(f"interrupted: run the same command to continue ({run_dir})", file=err)
        return EXIT_INTERRUPTED
    if result.state == "budget":
        print(f"evtui run: {result.message}", file=err)
        return EXIT_BUDGET
    if result.failed:
        print(f"{result.failed} frame×slot pairs failed permanently:", file=err)
        for r in job.store.results(states=("failed",)):
            who = r.get("target") or r.get("slot")
            print(f"  frame {r['frame']} {who}: {r['reason']}", file=err)
        return EXIT_FAILED
    return EXIT_OK


def add_run_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser("run", help="caption a recording: resumable, routed, paced")
    p.add_argument("config", help="the job's YAML config")
    p.add_argument("recording", help="the event recording")
    p.add_argument("--no-ui", action="store_true", help="headless: progress line, no app")
    p.add_argument("--run-dir", help="the run directory (default runs/<config>-<recording>)")
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--force", action="store_true", help="continue even if result-changing settings changed"
    )
    g.add_argument(
        "--new", action="store_true", help="start a fresh sibling run if settings changed"
    )
    p.add_argument("--retry-failed", action="store_true", help="retry frames that failed")
    p.add_argument("--workers", type=int, help="render/encode worker processes (default: cores)")
    p.add_argument("--json", action="store_true", help="JSON status lines instead of a bar")
    p.add_argument("--theme", help="the app's theme (default: the config's ui.theme)")
    p.add_argument(
        "--metrics-port", type=int, help="serve Prometheus /metrics on 127.0.0.1:PORT (0: any)"
    )
    p.set_defaults(func=cmd_run)
    return p
