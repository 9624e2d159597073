"""Pictures of the app (pytest-textual-snapshot): main screen, explain view, a provider
in cooldown, a disabled key, every provider down, a config error.

Each scenario runs once per module against the simulator, one request at a time, so
captions, tokens, costs, routes, cooldowns and disabled keys are the same on every run.
The app then shows that job with the engine's final snapshot held fixed; only
wall-clock measurements (latencies, rates, countdowns) are replaced by fixed values
(`steady`), since they differ in every run. Accept new pictures after looking at them:
`pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

import pytest

from evtui.config import ConfigError, parse_config
from evtui.tui.app import ErrorApp, EvtuiApp
from tests.engine_support import sim_in_thread
from tests.test_tui_support import (
    ALL_DOWN,
    COMPARE,
    COOLDOWN,
    QUOTA_KEY1,
    ROUTE,
    SCENARIO,
    SEQUENTIAL,
    SIZE,
    FixedSource,
    await_until,
    open_job,
    run_to_idle,
    steady,
    steady_timings,
)

SCENARIOS = {
    "main": (SCENARIO, COMPARE),
    "cooldown": (COOLDOWN, ROUTE),
    "disabled": (QUOTA_KEY1, COMPARE),
    "down": (ALL_DOWN, COMPARE),
}


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EVTUI_KEYMAP", raising=False)
    monkeypatch.delenv("EVTUI_THEMES_DIR", raising=False)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """name -> (job, final snapshot) for each scenario, run to the end sequentially."""
    out = {}
    closers = []
    root = tmp_path_factory.mktemp("snap")
    for name, (scenario, config) in SCENARIOS.items():
        with sim_in_thread(scenario, describer=True) as sim:
            job, ex = open_job(root, sim, config + SEQUENTIAL, name)
            closers.append((job, ex))
            out[name] = (job, run_to_idle(job))
    yield out
    for job, ex in closers:
        job.close()
        ex.shutdown()


def steady_app(job, snap) -> EvtuiApp:
    """The app on a finished job, its engine replaced by the steadied final snapshot."""
    app = EvtuiApp(job, source=FixedSource(steady(snap)))
    s = app.session
    load, traces = s.load, s.traces

    def steady_load() -> None:
        load()
        for cols in s.book.answers.values():
            for hist in cols.values():
                steady_timings(hist)

    def steady_traces(k: int):
        out = traces(k)
        steady_timings(out)
        return out

    s.load, s.traces = steady_load, steady_traces
    return app


def keys(*names: str):
    """Press `names`, then wait for the preview worker's frame to be on screen."""

    async def run_before(pilot) -> None:
        if names:
            await pilot.press(*names)
        main = pilot.app.main
        await await_until(lambda: main.shown == (main.frame, main.method))
        await pilot.pause()

    return run_before


def test_main_screen(snap_compare, finished):
    # frame 12: the disc; both captions side by side with their differing words marked;
    # the anthropic column selected and accepted (its badge, the list's mark)
    app = steady_app(*finished["main"])
    press = keys("g", "1", "2", "enter", "tab", "a")
    assert snap_compare(app, terminal_size=SIZE, run_before=press)


def test_explain_view(snap_compare, finished):
    # frame 0 in route mode: openai's keys answer 429, the route falls back to anthropic
    app = steady_app(*finished["cooldown"])
    assert snap_compare(app, terminal_size=SIZE, run_before=keys("enter"))


def test_provider_in_cooldown(snap_compare, finished):
    job, snap = finished["cooldown"]
    lanes = snap.target("openai/gpt-4o").lanes
    assert all(ln.cooldown_left_s > 0 for ln in lanes)  # what the picture must show
    assert snap_compare(steady_app(job, snap), terminal_size=SIZE, run_before=keys())


def test_disabled_key(snap_compare, finished):
    job, snap = finished["disabled"]
    key1, key2 = snap.target("openai/gpt-4o").lanes
    assert key1.disabled and key1.disabled.startswith("quota exhausted") and not key2.disabled
    # frame 0: key#1's 429 (quota) then key#2's answer in the route line
    assert snap_compare(steady_app(job, snap), terminal_size=SIZE, run_before=keys())


def test_every_provider_down(snap_compare, finished):
    job, snap = finished["down"]
    assert snap.failed == 2 * job.n_frames
    assert snap_compare(steady_app(job, snap), terminal_size=SIZE, run_before=keys())


BAD_CONFIG = """\
providers:
  openai: {protocol: openai, keys: [{key: "${OPENAI_API_KEY}"}]}
targets:
  - {id: openai/gpt-4o}
prompts: {default: {text: Describe the frame.}}
render: {window: fast}
"""


def test_config_error(snap_compare):
    with pytest.raises(ConfigError) as e:
        parse_config(BAD_CONFIG, "job.yaml", env={})
    assert "OPENAI_API_KEY is not set" in e.value.report()  # a missing key and a bad config
    assert snap_compare(ErrorApp(e.value.report()), terminal_size=SIZE)
