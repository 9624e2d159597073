"""`evtui pilot` end to end against the simulator: sample, compare mode, report, resume.

Runs the command as a user does, in a subprocess, against simulated providers on
loopback: OpenAI with a tokens-per-minute cap in its headers, Gemini with an rpm set in
the config.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from evtui.pilot.cli import add_pilot_parser
from tests.engine_support import KEYS, sim_in_thread, write_config

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample_data" / "sample.evt3.raw"
TARGETS = ("openai/gpt-4o", "anthropic/claude-haiku-4-5", "gemini/gemini-2.5-flash")

CONFIG = """
providers:
  openai: {protocol: openai, base_url: "@openai", keys: [{key: "${EVTUI_T_KEY1}"}]}
  anthropic: {protocol: anthropic, base_url: "@anthropic", keys: [{key: "${EVTUI_T_KEY2}"}]}
  gemini:
    protocol: gemini
    base_url: "@gemini"
    keys: [{key: "${EVTUI_T_KEY3}", rpm: 120}]
targets:
  - {id: openai/gpt-4o, weight: 2}
  - {id: anthropic/claude-haiku-4-5, weight: 1}
  - {id: gemini/gemini-2.5-flash, weight: 1}
prompts: {default: {text: Describe the frame.}}
render: {window: 33ms, width: 160, height: 120}
"""
SCENARIO = """
providers:
  openai: {tpm: 40000, latency_ms: 20}
  anthropic: {rpm: 600, latency_ms: 30}
  gemini: {latency_ms: 20}
"""


def pilot(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "evtui.cli", "pilot", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **KEYS},
        cwd=ROOT,
    )


def test_pilot_runs_every_target_and_writes_a_self_contained_report(tmp_path: Path) -> None:
    run_dir, html_path = tmp_path / "run", tmp_path / "out" / "pilot.html"
    with sim_in_thread(SCENARIO, describer=True) as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG, sim)
        args = (
            *(str(cfg), str(SAMPLE), "--frames", "60", "--no-ui", "--seed", "7"),
            *("--run-dir", str(run_dir), "--report", str(html_path), "--workers", "1"),
        )
        r = pilot(*args)
        assert r.returncode == 0, r.stderr
        sent = sim.stats.count()
        assert sent == 60 * len(TARGETS)  # compare mode: every sampled frame on every target
        # Running it again resumes: nothing is sent twice, and the report is rebuilt with
        # the limits learned last time (saved in pilot.json).
        again = pilot(*args)
        assert again.returncode == 0, again.stderr
        assert sim.stats.count() == sent
    caps = [orjson.loads(x) for x in (run_dir / "captions.jsonl").read_bytes().splitlines()]
    assert len(caps) == 180 and {c["target"] for c in caps} == set(TARGETS)
    saved = orjson.loads((run_dir / "pilot.json").read_bytes())
    assert saved["sample"]["method"] == "stratified" and len(saved["sample"]["frames"]) == 60
    assert sorted({c["frame"] for c in caps}) == saved["sample"]["frames"]

    for out in (r.stdout, again.stdout):
        assert "binds first: openai/gpt-4o tokens per minute on key#1: 40,0" in out
        assert "raising it ×2" in out and "cheapest mix within" in out
        assert all(t in out for t in TARGETS)
        assert "refusal%" in out and "ROUGE-L" in out
    html = html_path.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    for t in TARGETS:
        assert html.count(t) >= 4  # tables, gallery header, agreement
    thumbs = re.findall(r'<img[^>]*src="data:image/jpeg;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(thumbs) >= 24
    import base64

    assert all(base64.b64decode(b)[:3] == b"\xff\xd8\xff" for b in thumbs)
    # Self-contained: every src/href is inline data, nothing is fetched from anywhere.
    refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", html)
    assert refs and all(x.startswith("data:") for x in refs)
    assert "http://" not in html and "https://" not in html and "<link" not in html
    assert "<script" not in html
    assert html.count("<svg") >= 4
    # Captions are shown beside the frames, escaped.
    assert "caption length" in html and 'class="gallery"' in html
    assert any(c["caption"].split("\n")[0][:40] in html for c in caps if "<" not in c["caption"])
    # No secret anywhere the pilot wrote or printed.
    written = [html, r.stdout, r.stderr, again.stdout, again.stderr]
    written += [p.read_text(errors="replace") for p in run_dir.iterdir() if p.is_file()]
    for secret in KEYS.values():
        assert all(secret not in text for text in written)


def test_bad_arguments_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    with sim_in_thread() as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG, sim)
        args = _parse([str(cfg), str(SAMPLE), "--frames", "0", "--no-ui"])
        assert args.func(args) == 2
        err = capsys.readouterr().err
        assert "--frames" in err and len(err.strip().splitlines()) == 1
        # As a user runs it: a file that is not a recording is one line, no traceback.
        junk = tmp_path / "junk.raw"
        junk.write_bytes(b"\x00\x01garbage" * 100)
        r = pilot(str(cfg), str(junk), "--frames", "5", "--no-ui", "--run-dir", str(tmp_path / "r"))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert str(junk) in r.stderr and len(r.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("providers: {}\ntargets: []\nprompts: {}\n")
    args = _parse([str(bad), str(SAMPLE), "--frames", "5", "--no-ui"])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "targets" in err


def _parse(argv: list[str], load_ui=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="evtui")
    add_pilot_parser(parser.add_subparsers(dest="command"), load_ui=load_ui)
    return parser.parse_args(["pilot", *argv])


def test_the_interactive_runner_drives_the_job_when_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)
    seen = []

    def fake_app(job) -> None:  # what evtui/cli.py passes: runs the job, returns on quit
        seen.append(job.todo.count)
        asyncio.run(job.run())

    with sim_in_thread() as sim:
        cfg = write_config(tmp_path / "job.yaml", CONFIG, sim)
        base = [str(cfg), str(SAMPLE), "--frames", "6", "--sample", "uniform", "--workers", "1"]
        args = _parse([*base, "--run-dir", str(tmp_path / "a")], load_ui=lambda: fake_app)
        assert args.func(args) == 0
        assert seen == [6 * len(TARGETS)] and sim.stats.count() == 18
        # --no-ui never asks for the app.
        args = _parse([*base, "--no-ui", "--run-dir", str(tmp_path / "n")], load_ui=lambda: 1 / 0)
        assert args.func(args) == 0
        assert sim.stats.count() == 36
        # No app can start and no --no-ui: it says so and runs headless.
        args = _parse([*base, "--run-dir", str(tmp_path / "b")], load_ui=lambda: None)
        assert args.func(args) == 0
        assert sim.stats.count() == 54
    err = capsys.readouterr().err
    assert "running headless" in err
    frames = orjson.loads((tmp_path / "a" / "pilot.json").read_bytes())["sample"]["frames"]
    assert frames == [30, 91, 151, 212, 273, 333]  # 6 evenly spaced of 364 windows
    assert (tmp_path / "a" / "pilot.html").is_file()
