"""Shared set-up for engine tests: frames, configs pointed at a simulator, one-call runs."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evtui.config import Config, parse_config
from evtui.engine.dispatcher import Engine, MemorySink, RunResult
from evtui.engine.records import FrameWork
from evtui.frames.encode import EncodeSpec, encode_frame
from evtui.providers.types import ImagePart
from evtui.sim.scenario import parse_scenario
from evtui.sim.server import SimServer
from evtui.sim.thread import SimThread

# Fake keys built at run time (a repo scan rejects key-shaped literals).
KEYS = {f"EVTUI_T_KEY{i}": "test" + "x" * 16 + str(i) for i in range(1, 5)}


def images(pool: int = 8, size: tuple[int, int] = (64, 48), seed: int = 0) -> list[ImagePart]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(pool):
        a = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        e = encode_frame(a, EncodeSpec())
        out.append(ImagePart(e.data, e.media_type, e.width, e.height, e.b64))
    return out


def frames(n: int, pool: int = 8) -> list[FrameWork]:
    imgs = images(pool)
    return [
        FrameWork(i, imgs[i % pool], t0_us=i * 1000, t1_us=i * 1000 + 1000, events=100)
        for i in range(n)
    ]


def config(text: str, sim: SimServer) -> Config:
    """Config text with @openai, @anthropic, @gemini, @compat replaced by base URLs."""
    for p in ("openai", "anthropic", "gemini", "compat"):
        text = text.replace(f"@{p}", sim.base_url(p))
    return parse_config(text, "<test>", env=KEYS)


@dataclass
class Run:
    result: RunResult
    sink: MemorySink
    engine: Engine
    sim_requests: Counter[tuple[str, int]]
    sim: SimServer

    @property
    def attempts(self) -> list[dict[str, Any]]:
        return [a for tr in self.sink.traces for a in tr["attempts"]]

    def outcomes(self, target_prefix: str = "") -> Counter[str]:
        return Counter(a["outcome"] for a in self.attempts if a["target"].startswith(target_prefix))

    def by_frame(self) -> dict[int, dict[str, Any]]:
        return {r["frame"]: r for r in self.sink.results}


async def run(
    cfg_text: str,
    scenario: str = "{}",
    n: int = 200,
    *,
    time_scale: float = 1.0,
    describer: Any = False,
    **engine_kw: Any,
) -> Run:
    scen = parse_scenario(scenario) if scenario.strip() != "{}" else None
    async with SimServer(scen, describer=describer) as sim:
        cfg = config(cfg_text, sim)
        sink = MemorySink()
        eng = Engine(cfg, commit=sink, time_scale=time_scale, seed=1, **engine_kw)
        result = await eng.run(frames(n), total=n)
        return Run(result, sink, eng, Counter(sim.stats.requests), sim)


@contextlib.contextmanager
def sim_in_thread(scenario: str = "{}", describer: Any = False) -> Iterator[SimServer]:
    """A simulator on its own thread and loop, for tests that run evtui as a subprocess."""
    scen = parse_scenario(scenario) if scenario.strip() != "{}" else None
    with SimThread(scen, describer=describer) as sim:
        yield sim


def write_config(path: Path, text: str, sim: SimServer) -> Path:
    for p in ("openai", "anthropic", "gemini", "compat"):
        text = text.replace(f"@{p}", sim.base_url(p))
    path.write_text(text)
    return path


SAMPLE = Path(__file__).resolve().parent.parent / "sample_data" / "sample.evt3.raw"

# Compare mode over two simulated providers on small frames: a whole job in seconds.
COMPARE_CONFIG = """
providers:
  openai: {protocol: openai, base_url: "@openai", keys: [{key: "${EVTUI_T_KEY1}"}]}
  anthropic: {protocol: anthropic, base_url: "@anthropic", keys: [{key: "${EVTUI_T_KEY3}"}]}
targets:
  - {id: anthropic/claude-haiku-4-5}
  - {id: openai/gpt-4o}
mode: compare
prompts: {default: {text: Describe the frame.}}
render: {window: 100ms, width: 160, height: 120}
"""


def wait(pred: Any, timeout: float = 60.0) -> None:
    """Until `pred()` holds (a test helper: fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
