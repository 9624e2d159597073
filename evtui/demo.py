"""`evtui demo`: the whole tool on the bundled sample, against simulated providers.

No keys, no network, no set-up: three providers on an in-process simulator (loopback,
their real wire protocols), weighted routing with a fallback chain, a tokens-per-minute
cap the engine learns from headers, and a scripted storm of 429s and an outage, so the
first run shows what the engine does when providers misbehave.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import os
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from evtui.config import Config, parse_config
from evtui.sim.scenario import Scenario, parse_scenario
from evtui.sim.thread import SimThread

_SAMPLE_NAME = Path("sample_data") / "sample.evt3.raw"


def sample_path() -> Path:
    """The bundled sample: beside the source tree, else under the current directory."""
    for base in (Path(__file__).resolve().parent.parent, Path.cwd()):
        if (base / _SAMPLE_NAME).is_file():
            return base / _SAMPLE_NAME
    return Path(__file__).resolve().parent.parent / _SAMPLE_NAME


# Stand-in keys: the simulator checks them like a provider would. Not secrets.
DEMO_KEYS = {
    "EVTUI_DEMO_OPENAI_1": "demo-openai-key-one",
    "EVTUI_DEMO_OPENAI_2": "demo-openai-key-two",
    "EVTUI_DEMO_ANTHROPIC": "demo-anthropic-key",
    "EVTUI_DEMO_GEMINI": "demo-gemini-key",
}

CONFIG = """\
# The demo job: route each frame to one of three providers by weight.
mode: route
providers:
  openai:
    protocol: openai
    base_url: "@openai"
    keys:                       # two keys: the engine picks the one with more headroom
      - {key: "${EVTUI_DEMO_OPENAI_1}", name: team}
      - {key: "${EVTUI_DEMO_OPENAI_2}", name: spare}
  anthropic:
    protocol: anthropic
    base_url: "@anthropic"
    keys: [{key: "${EVTUI_DEMO_ANTHROPIC}"}]
  gemini:
    protocol: gemini
    base_url: "@gemini"
    keys: [{key: "${EVTUI_DEMO_GEMINI}"}]
targets:
  - {id: openai/gpt-4o-mini, weight: 2, fallbacks: [gemini/gemini-2.5-flash]}
  - {id: anthropic/claude-haiku-4-5, weight: 1, fallbacks: [openai/gpt-4o-mini]}
  - {id: gemini/gemini-2.5-flash, weight: 1}
prompts:
  default:
    text: >-
      This is a pseudo-frame rendered from an event camera: bright pixels brightened,
      dark ones darkened during a short time window. Describe the motion and the scene
      in one or two sentences.
max_output_tokens: 200
budget_usd: 5
render: {method: cdframe, window: 33ms, overlap: 50%}
retry: {max_attempts_per_frame_target: 5, backoff_base_s: 1, backoff_cap_s: 20}
engine: {max_in_flight: 48, initial_concurrency: 8, breaker_open_s: 10, breaker_open_cap_s: 40}
"""

# Scenario seconds; time_scale 10 plays them ten times faster than real time.
SCENARIO = """\
seed: 7
time_scale: 10
providers:
  openai:
    tpm: 2000000                # the cap nobody wrote in the config: learnt from headers
    latency_ms: {dist: lognormal, median: 700, p95: 1800}
    keys: [demo-openai-key-one, demo-openai-key-two]
  anthropic:
    latency_ms: {dist: lognormal, median: 900, p95: 2200}
    keys: [demo-anthropic-key]
  gemini:
    latency_ms: {dist: lognormal, median: 500, p95: 1400}
    keys: [demo-gemini-key]
faults:
  - {provider: anthropic, kind: rate_limited, rate: 1.0, from: 20s, to: 60s, retry_after: 10s}
  - {provider: gemini, kind: outage, from: 80s, duration: 60s}
  - {provider: anthropic, kind: overloaded, rate: 0.3, from: 150s, to: 170s}
"""

TIME_SCALE = 10.0
SIM_NICE = 10  # the demo simulator's CPU priority (it stands for remote services)


def demo_config(sim: Any) -> Config:
    text = CONFIG
    for p in ("openai", "anthropic", "gemini"):
        text = text.replace(f"@{p}", sim.base_url(p))
    return parse_config(text, "<evtui demo>", env=DEMO_KEYS)


def demo_scenario() -> Scenario:
    return parse_scenario(SCENARIO, "<evtui demo scenario>")


def cmd_demo(args: argparse.Namespace) -> int:
    from evtui.cli_run import (
        EXIT_BAD_INPUT,
        Reporter,
        _verdict,
        run_headless,
        summary,
        wants_app,
    )
    from evtui.engine.job import Job

    sample = sample_path()
    if not sample.is_file():
        print(
            f"evtui demo: {_SAMPLE_NAME}: the bundled sample is missing "
            "(run it from a clone of the evtui repository)",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / "demo"
    frames = list(range(args.frames)) if args.frames else None
    if wants_app(args.no_ui):
        return _demo_app(args, sample, run_dir, frames)
    err = sys.stderr
    with SimThread(demo_scenario()) as sim:
        cfg = demo_config(sim)
        job = Job.open(
            cfg,
            sample,
            run_dir,
            on_mismatch="force",  # the simulator's port changes every run: not a new job
            frames=frames,
            time_scale=TIME_SCALE,
            metrics_port=args.metrics_port,
        )
        try:
            print(
                f"evtui demo: {job.n_frames} frames of {sample.name} through three simulated "
                f"providers into {run_dir} ({job.todo.count} to do)",
                file=err,
            )
            result, interrupted = asyncio.run(run_headless(job, Reporter(err, args.json)))
            print(summary(job.engine.snapshot), file=err)
            return _verdict(job, result, interrupted, run_dir, err)
        finally:
            job.close()


def _serve_sim(port: int, scenario_path: str) -> None:
    """The simulator's own process for the app: quiet (the terminal belongs to the app),
    and at low CPU priority: it stands in for remote services, so it never delays the UI."""
    with contextlib.suppress(OSError):
        os.nice(SIM_NICE)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    from evtui.sim.server import run_sim

    run_sim(port, scenario_path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo_app(args: argparse.Namespace, sample: Path, run_dir: Path, frames: Any) -> int:
    """The demo in the app: simulator, engine and app each in their own process, so
    neither the simulator nor the engine ever makes the app wait."""
    from evtui.cli_run import run_in_app

    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="evtui-demo-") as tmp:
        scenario = Path(tmp) / "scenario.yaml"
        scenario.write_text(SCENARIO)
        sim = mp.get_context("spawn").Process(
            target=_serve_sim, args=(port, str(scenario)), daemon=True
        )
        sim.start()
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or not sim.is_alive():
                        print("evtui demo: the simulator did not start", file=sys.stderr)
                        return 2
                    time.sleep(0.05)
            root = f"http://127.0.0.1:{port}"
            text = CONFIG.replace("@openai", f"{root}/v1")
            text = text.replace("@anthropic", root).replace("@gemini", root)
            config = Path(tmp) / "demo.yaml"
            config.write_text(text)
            os.environ.update(DEMO_KEYS)  # the engine process inherits them
            return run_in_app(
                config,
                sample,
                run_dir,
                theme=args.theme,
                on_mismatch="force",
                frames=frames,
                time_scale=TIME_SCALE,
                metrics_port=args.metrics_port,
            )
        finally:
            sim.terminate()
            sim.join(10)


def add_demo_parser(subparsers: Any) -> None:
    sp = subparsers.add_parser(
        "demo", help="the whole tool on the bundled sample against simulated providers"
    )
    sp.add_argument("--no-ui", action="store_true", help="headless: progress line and summary")
    sp.add_argument("--run-dir", help="where the demo run goes (default runs/demo)")
    sp.add_argument("--frames", type=int, help="only the first N frames")
    sp.add_argument("--json", action="store_true", help="JSON status lines instead of a bar")
    sp.add_argument("--theme", help="the app's theme: evtui-dark, evtui-light, …")
    sp.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    sp.set_defaults(func=cmd_demo)
