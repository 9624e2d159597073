"""The README tells the truth: its config is the example file and loads, its gateway
snippet loads, and every command it shows runs (the `$` lines for real, against the
simulator on the port the example names; the reference list and the benchmarks parse
their options)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from evtui.config import parse_config
from evtui.sim.thread import SimThread

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
BLOCK = re.compile(r"```(\w*)\n(.*?)```", re.S)


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCK.findall(README) if kind == lang]


def test_the_readme_config_is_the_example_and_it_loads() -> None:
    (job,) = [b for b in blocks("yaml") if b.startswith("# A complete evtui job")]
    assert job == (ROOT / "examples" / "job.yaml").read_text()
    env = {n: "x" * 24 for n in re.findall(r"\$\{(\w+)\}", job)}
    cfg = parse_config(job, "README.md", env=env)
    assert {t.id for t in cfg.targets} >= {"openai/gpt-4o-mini", "local/llava-v1.6"}


def test_the_gateway_snippet_loads() -> None:
    (snippet,) = [b for b in blocks("yaml") if "litellm" in b]
    providers = yaml.safe_load(snippet)["providers"]
    text = yaml.safe_dump(
        {
            "providers": providers,
            "targets": [{"id": f"{name}/llava-v1.6"} for name in providers],
            "prompts": {"default": {"text": "Describe."}},
            "prices": {"llava-v1.6": {"input": 0, "output": 0}},
        }
    )
    cfg = parse_config(text, "README.md", env={"LITELLM_KEY": "k" * 20})
    assert {p.protocol for p in cfg.providers.values()} == {"openai-compatible"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_dollar_command_runs(tmp_path: Path) -> None:
    commands = [
        line[2:] for b in blocks("console") for line in b.splitlines() if line.startswith("$ ")
    ]
    assert len(commands) >= 6
    port = _free_port()
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    sim_cfg = tmp_path / "examples" / "sim.yaml"
    sim_cfg.write_text(sim_cfg.read_text().replace("8787", str(port)))
    (tmp_path / "sample_data").symlink_to(ROOT / "sample_data")
    env = {**os.environ, "EVTUI_SIM_KEY": "anything-at-all"}
    with SimThread(port=port, describer=False):
        for cmd in commands:
            argv = shlex.split(cmd)
            assert argv[0] == "evtui"
            r = subprocess.run(
                [sys.executable, "-m", "evtui.cli", *argv[1:]],
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert r.returncode == 0, f"{cmd}\n{r.stderr}"
            assert "Traceback" not in r.stderr
    assert (tmp_path / "captions.csv").exists() and (tmp_path / "pilot.html").exists()
    assert list((tmp_path / "shards").glob("*.tar"))


def _reference() -> list[list[str]]:
    (ref,) = [b for b in blocks("") if b.startswith("evtui demo [--no-ui]")]
    return [shlex.split(line.split("  ")[0]) for line in ref.splitlines() if line.strip()]


@pytest.mark.parametrize("argv", _reference(), ids=lambda a: " ".join(a[:3]))
def test_every_command_in_the_reference_exists_with_its_options(argv: list[str]) -> None:
    words = [w for w in argv[1:] if not w.isupper() and not w.startswith("[") and "|" not in w]
    sub = [w for w in words if not w.startswith("-")][:2]
    r = subprocess.run(
        [sys.executable, "-m", "evtui.cli", *sub, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    if r.returncode != 0 and len(sub) == 2:  # `evtui run CONFIG` style: one subcommand
        r = subprocess.run(
            [sys.executable, "-m", "evtui.cli", sub[0], "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
    assert r.returncode == 0, r.stderr
    for flag in re.findall(r"--[a-z][a-z-]*", " ".join(argv)):
        assert flag in r.stdout, f"{' '.join(argv)}: {flag} not in --help"


def _benchmarks() -> list[str]:
    (bench,) = [b for b in blocks("") if b.startswith("python benchmarks/")]
    return [line.split()[1] for line in bench.splitlines() if line.strip()]


@pytest.mark.parametrize("script", _benchmarks())
def test_every_benchmark_shown_exists_and_parses_its_options(script: str) -> None:
    assert (ROOT / script).is_file()
    r = subprocess.run(
        [sys.executable, script, "--help"], capture_output=True, text=True, timeout=120, cwd=ROOT
    )
    assert r.returncode == 0, r.stderr
    assert "usage" in r.stdout.lower()
