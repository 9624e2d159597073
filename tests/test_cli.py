"""The `evtui` command end to end: info, convert, render, and how it fails."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from evtui.cli import main
from tests.test_windows import events_with_jitter

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def npz(tmp_path):
    ev = events_with_jitter(30_000, seed=11)
    path = tmp_path / "in.npz"
    np.savez(path, t=ev["t"], x=ev["x"], y=ev["y"], p=ev["p"].astype(np.uint8))
    return path, ev


def run_cli(*args: str, env: dict | None = None, preexec=None) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "evtui.cli", *args],
        capture_output=True,
        text=True,
        env=e,
        timeout=120,
        preexec_fn=preexec,
    )


def test_info_prints_count_and_time_span(npz, capsys):
    path, ev = npz
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    rows = dict(line.split(None, 1) for line in out.splitlines() if line.strip() and " " in line)
    assert rows["events"].strip() == str(len(ev))
    assert rows["first"].split() == ["t", str(int(ev["t"].min())), "us"]
    assert rows["last"].split() == ["t", str(int(ev["t"].max())), "us"]
    assert main(["info", str(path), "--json"]) == 0
    facts = json.loads(capsys.readouterr().out)
    assert facts["events"] == len(ev)
    assert (facts["first_t_us"], facts["last_t_us"]) == (int(ev["t"].min()), int(ev["t"].max()))
    assert facts["format"] == "npz"


@pytest.mark.parametrize(
    "content, expect",
    [
        (None, "no such file"),
        (b"", "empty"),
        (b"\x00\x01\x02\x03garbage" * 10, "not a recognised event recording"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, content, expect):
    path = tmp_path / "bad.raw"
    if content is not None:
        path.write_bytes(content)
    r = run_cli("info", str(path))
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and expect in lines[0]


def test_convert_to_npz_with_time_cut(npz, tmp_path):
    path, ev = npz
    out = tmp_path / "cut.npz"
    lo, hi = int(ev["t"][5_000]), int(ev["t"][20_000])
    assert main(["convert", str(path), str(out), "--start", str(lo), "--end", str(hi)]) == 0
    with np.load(out) as z:
        assert {"t", "x", "y", "p"} <= set(z.files)
        sel = ev[(ev["t"] >= lo) & (ev["t"] < hi)]
        assert z["t"].dtype == np.int64 and z["x"].dtype == np.uint16
        assert np.array_equal(z["t"], sel["t"]) and np.array_equal(z["x"], sel["x"])
        assert np.array_equal(z["y"], sel["y"]) and np.array_equal(z["p"], sel["p"])
    assert not list(tmp_path.glob("*.partial"))


def test_convert_refuses_unknown_output_extension(npz, tmp_path):
    path, _ = npz
    r = run_cli("convert", str(path), str(tmp_path / "out.xyz"))
    assert r.returncode == 2 and "output format" in r.stderr and "Traceback" not in r.stderr


def test_convert_on_a_full_disk_fails_cleanly(npz, tmp_path):
    """RLIMIT_FSIZE makes writes fail with EFBIG exactly as a full disk fails them."""
    import resource
    import signal

    path, _ = npz
    out = tmp_path / "full.npz"

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    r = run_cli("convert", str(path), str(out), "--to", "npz", preexec=limit)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    assert path.exists()  # the input is untouched


def test_render_writes_one_png_per_window(npz, tmp_path):
    path, ev = npz
    out = tmp_path / "frames"
    assert (
        main(["render", str(path), "--window", "20ms", "--method", "histogram", "--out", str(out)])
        == 0
    )
    span = int(ev["t"].max()) - int(ev["t"][0]) + 1
    files = sorted(out.glob("frame_*.png"))
    assert len(files) == -(-span // 20_000)
    img = cv2.imread(str(files[0]))
    assert img is not None and img.shape == (128, 128, 3)


def test_render_sheet(npz, tmp_path):
    path, _ = npz
    out = tmp_path / "sheet"
    assert (
        main(
            [
                "render",
                str(path),
                "--window",
                "5ms",
                "--sheet",
                "--sheet-max",
                "12",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    sheet = cv2.imread(str(out / "sheet.png"))
    assert sheet is not None and sheet.shape[1] > 240


def test_render_rejects_unknown_method(npz, tmp_path):
    path, _ = npz
    r = run_cli("render", str(path), "--method", "nope", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "unknown 'nope'" in r.stderr and "Traceback" not in r.stderr


def test_sim_serves_until_sigterm_and_exits_0(tmp_path):
    import signal
    import socket
    import time
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    e = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "evtui.cli", "sim", "--port", str(port), "--rpm", "60"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=e,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "simulator did not come up"
                time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err


def test_sim_rejects_a_broken_scenario_in_one_line(tmp_path):
    bad = tmp_path / "scenario.yaml"
    bad.write_text("providers:\n  openai: {rpm: -3}\n")
    r = run_cli("sim", "--port", "0", "--scenario", str(bad))
    assert r.returncode == 2
    assert str(bad) in r.stderr and "Traceback" not in r.stderr
