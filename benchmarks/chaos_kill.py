"""Kill `evtui run` with SIGKILL many times at random moments, then check nothing was lost.

The CI suite does 10 kills (tests/test_run_cli.py); this does as many as you like:

    python benchmarks/chaos_kill.py --kills 100 [--seed 1] [--inflight 32]

After the final resume it checks: exactly one done record per frame, every line of
captions.jsonl parses, no frame both done and skipped, and requests paid twice (answers
the simulator gave beyond the frames recorded) ≤ kills × the in-flight cap. Prints PASS or
FAIL and exits 1 on FAIL.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import _common  # noqa: F401  (puts the repo on sys.path)
import orjson

from evtui.events.recording import Recording
from evtui.events.windows import WindowSpec
from evtui.sim.scenario import parse_scenario
from evtui.sim.thread import SimThread

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_data" / "sample.evt3.raw"
KEYS = {"CHAOS_KEY_A": "chaos-key-a-0123456789", "CHAOS_KEY_B": "chaos-key-b-0123456789"}
CONFIG = """
providers:
  openai: {{protocol: openai, base_url: "{openai}", keys: [{{key: "${{CHAOS_KEY_A}}"}}]}}
  anthropic: {{protocol: anthropic, base_url: "{anthropic}", keys: [{{key: "${{CHAOS_KEY_B}}"}}]}}
targets:
  - {{id: anthropic/claude-haiku-4-5, weight: 1, fallbacks: [openai/gpt-4o]}}
  - {{id: openai/gpt-4o, weight: 1}}
prompts: {{default: {{text: Describe the frame.}}}}
render: {{window: 33ms, overlap: "{overlap}", width: 160, height: 120}}
engine: {{max_in_flight: {inflight}}}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--inflight", type=int, default=32)
    ap.add_argument("--overlap", default="95%", help="window overlap: more → more frames")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    spec = WindowSpec.parse("33ms", overlap=args.overlap)
    expected = Recording(SAMPLE).window_count(spec)
    scen = parse_scenario("providers:\n  anthropic: {latency_ms: 40}\n  openai: {latency_ms: 40}\n")
    with tempfile.TemporaryDirectory() as tmp, SimThread(scen, describer=False) as sim:
        cfg = Path(tmp) / "job.yaml"
        cfg.write_text(
            CONFIG.format(
                openai=sim.base_url("openai"),
                anthropic=sim.base_url("anthropic"),
                overlap=args.overlap,
                inflight=args.inflight,
            )
        )
        run_dir = Path(tmp) / "run"
        argv = [sys.executable, "-m", "evtui.cli", "run", str(cfg), str(SAMPLE), "--no-ui",
                "--run-dir", str(run_dir)]  # fmt: skip
        env = {**os.environ, **KEYS, "EVTUI_CACHE_DIR": str(Path(tmp) / "cache")}
        t0 = time.monotonic()
        for i in range(args.kills):
            p = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
            before = sim.stats.count()
            deadline = time.monotonic() + 60
            while sim.stats.count() == before and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.5))
            p.send_signal(signal.SIGKILL)
            p.wait(60)
            if p.returncode == 0:
                print(f"kill {i + 1}: the run had already finished; stopping the kills")
                break
        final = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        paid = sim.stats.count(status=200)
        elapsed = time.monotonic() - t0
        caps = [orjson.loads(x) for x in (run_dir / "captions.jsonl").read_bytes().splitlines()]
        ledger_path = run_dir / "ledger.jsonl"
        ledger = [orjson.loads(x) for x in ledger_path.read_bytes().splitlines()]
    per_frame = Counter(c["frame"] for c in caps)
    skipped = {x["frame"] for x in ledger if x["state"] == "skipped"}
    problems = []
    if final.returncode != 0:
        problems.append(f"final resume exited {final.returncode}: {final.stderr[-500:]}")
    if set(per_frame.values()) != {1}:
        problems.append("a frame has more than one done record")
    if len(per_frame) + len(skipped) != expected or skipped & set(per_frame):
        problems.append(f"{len(per_frame)} done + {len(skipped)} skipped != {expected} windows")
    twice = paid - len(per_frame)
    bound = args.kills * args.inflight
    if twice > bound:
        problems.append(f"{twice} requests paid twice > {bound}")
    print(
        f"{args.kills} kills over {elapsed:.0f} s; {expected} windows; {len(per_frame)} done, "
        f"{len(skipped)} skipped; paid twice {twice} (bound {bound}, "
        f"{twice / max(args.kills, 1):.1f} per kill)"
    )
    print("FAIL: " + "; ".join(problems) if problems else "PASS")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
