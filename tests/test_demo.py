"""`evtui demo --no-ui`: the newcomer's first command runs end to end and exits 0."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent


def test_demo_headless_completes_with_a_summary(tmp_path: Path) -> None:
    run_dir = tmp_path / "demo"
    r = subprocess.run(
        [sys.executable, "-m", "evtui.cli", "demo", "--no-ui", "--run-dir", str(run_dir),
         "--frames", "80"],
        capture_output=True, text=True, timeout=300, cwd=ROOT, env=dict(os.environ),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    caps = [orjson.loads(x) for x in (run_dir / "captions.jsonl").read_bytes().splitlines()]
    assert len({c["frame"] for c in caps}) == len(caps) >= 70
    assert {c["target"] for c in caps} >= {"openai/gpt-4o-mini", "gemini/gemini-2.5-flash"}
    assert all(c["simulated"] for c in caps)
    for target in ("openai/gpt-4o-mini", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash"):
        assert target in r.stderr  # the per-target summary
    assert "Traceback" not in r.stderr
