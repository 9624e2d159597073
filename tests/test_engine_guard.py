"""The caption guard: degenerate answers flagged, rerouted, and a runaway target paused."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from evtui.engine.guard import CaptionGuard, GuardSettings, flags_for
from evtui.sim.describe import DEGENERATE_KINDS, STYLES, degenerate_caption
from tests.engine_support import run


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("kind", [k for k in DEGENERATE_KINDS if k != "boilerplate"])
def test_every_simulated_degenerate_answer_is_flagged(kind: str, style: str) -> None:
    text = degenerate_caption(kind, style)
    want = {"empty": "empty", "refusal": "refusal", "please_provide_image": "asks_for_image"}[kind]
    assert want in flags_for(text, "stop")


@pytest.mark.parametrize(
    "text",
    [
        "A car drives to the right across a static street scene.",
        "Sparse events; I can see an edge moving left.",
        "The image shows a person waving; sorry state of the lighting aside, motion is clear.",
    ],
)
def test_real_captions_are_not_flagged(text: str) -> None:
    assert flags_for(text, "stop") == []
    assert flags_for(text, "length") == ["truncated"]


def test_boilerplate_needs_the_same_text_on_many_different_frames() -> None:
    g = CaptionGuard(GuardSettings(boilerplate_frames=3))
    same = "This image shows a scene with various elements."
    assert g.check(same, "stop", "px1") == []
    assert g.check(same, "stop", "px1") == []  # the same frame again: not evidence
    assert g.check(same, "stop", "px2") == []
    assert g.check(same.upper() + "!", "stop", "px3") == ["boilerplate"]  # normalised
    assert g.check("Something else.", "stop", "px4") == []


def test_pause_when_the_recent_rate_crosses_the_threshold() -> None:
    g = CaptionGuard(GuardSettings(pause_rate=0.5, window=20))
    assert all(g.record("t", False) is None for _ in range(10))
    rates = [g.record("t", True) for _ in range(10)]
    assert rates[-1] is None  # exactly 50 %: not above
    assert g.record("t", True) == pytest.approx(11 / 20)


CFG = """
providers:
  openai: {protocol: openai, base_url: "@openai", keys: [{key: "${EVTUI_T_KEY1}"}]}
  anthropic: {protocol: anthropic, base_url: "@anthropic", keys: [{key: "${EVTUI_T_KEY3}"}]}
targets:
  - {id: anthropic/claude-haiku-4-5, weight: 1, fallbacks: [openai/gpt-4o]}
  - {id: openai/gpt-4o, weight: 0}
prompts: {default: {text: Describe the frame.}}
guard: {pause_rate: 0.5, window: 20}
engine: {max_in_flight: 8}
"""


def test_refusals_are_rerouted_and_the_refusing_target_paused() -> None:
    scen = "faults:\n  - {provider: anthropic, kind: degenerate, caption: refusal}\n"
    r = asyncio.run(run(CFG, scen, 120))
    assert r.result.done == 120 and r.result.failed == 0
    assert Counter(x["target"] for x in r.sink.results) == {"openai/gpt-4o": 120}
    assert all(not x["flags"] for x in r.sink.results)
    rerouted = [tr for tr in r.sink.traces if tr["attempts"][0]["outcome"] == "degenerate"]
    assert rerouted and all("refusal" in tr["attempts"][0]["note"] for tr in rerouted)
    # Paused after its window filled: later frames never went to the refusing target.
    assert r.sim_requests[("anthropic", 200)] <= 20 + 8
    events = [e for e in r.engine.events.drain() if e.kind == "target_paused"]
    assert len(events) == 1 and "anthropic/claude-haiku-4-5" in events[0].message


def test_without_a_fallback_degenerate_captions_are_kept_but_flagged() -> None:
    cfg = CFG.replace(", fallbacks: [openai/gpt-4o]", "").replace(
        "pause_rate: 0.5", "pause_rate: 1"
    )
    scen = "faults:\n  - {provider: anthropic, kind: degenerate, caption: please_provide_image}\n"
    r = asyncio.run(run(cfg, scen, 30))
    assert r.result.done == 30
    assert all(x["flags"] == ["asks_for_image"] for x in r.sink.results)
