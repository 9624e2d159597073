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


def test_demo_opens_the_app_on_a_terminal_and_quits_cleanly(tmp_path: Path) -> None:
    """The quickstart's `evtui demo`, in a real pseudo-terminal: it draws, runs, and `q`
    at the end exits 0 with the verdict on stderr."""
    import pty
    import select
    import time

    pid, fd = pty.fork()
    if pid == 0:  # the child: evtui demo on the terminal
        os.chdir(ROOT)
        os.environ.update({"TERM": "xterm-256color", "COLUMNS": "160", "LINES": "45"})
        os.execv(
            sys.executable,
            [sys.executable, "-m", "evtui.cli", "demo", "--run-dir", str(tmp_path / "d"),
             "--frames", "40"],
        )  # fmt: skip
    import fcntl
    import struct
    import termios

    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 45, 160, 0, 0))
    seen = b""
    deadline = time.monotonic() + 120
    sent = False
    status = None
    while time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        if not sent and b"idle" in seen[-200_000:] and b"40/40" in seen:
            os.write(fd, b"q")
            sent = True
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.kill(pid, 9)
        raise AssertionError("the demo app did not finish")
    if status is None or not os.WIFEXITED(status):
        _, status = os.waitpid(pid, 0)
    assert sent, seen[-2000:]
    assert os.WEXITSTATUS(status) == 0
    assert b"openai/gpt-4o-mini" in seen and b"routing" in seen
    caps = (tmp_path / "d" / "captions.jsonl").read_bytes().splitlines()
    assert len(caps) >= 35
