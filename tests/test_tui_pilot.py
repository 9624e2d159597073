"""Every interaction of the app, driven with Textual's Pilot against real jobs.

Most tests run a real Job whose engine the app starts, against the simulator; the
ones about filters and flags feed caption events through a fixed engine stand-in so
the frames have exactly the failures, cache hits and disagreements the test needs.
Each asserts the app's state and, for reviews, the records the job store kept.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from textual.app import App
from textual.widgets import Input, OptionList, TextArea

from evtui.engine.telemetry import EMPTY_SNAPSHOT
from evtui.events.errors import RecordingError
from evtui.tui import app as app_mod
from evtui.tui import session as session_mod
from evtui.tui.app import ErrorApp, EvtuiApp, run_app, run_app_error
from evtui.tui.screens.dialogs import ChoiceScreen, EditScreen, GotoScreen, WeightsScreen
from evtui.tui.screens.explain import ExplainScreen
from evtui.tui.session import ledger_reruns
from evtui.tui.widgets.captions import CaptionColumn
from evtui.tui.widgets.frame_list import FrameList
from evtui.tui.widgets.preview import FramePreview
from tests.engine_support import sim_in_thread
from tests.test_tui_support import (
    ALL_DOWN,
    COMPARE,
    ROUTE,
    SCENARIO,
    SEQUENTIAL,
    FixedSource,
    await_until,
    open_job,
    pilot_run,
    preview_shows,
    reviews_of,
    run_to_idle,
)

OPENAI, ANTHROPIC = "openai/gpt-4o", "anthropic/claude-haiku-4-5"


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    """Neither the user's keymap nor the user's themes reach a test."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("EVTUI_KEYMAP", raising=False)
    monkeypatch.delenv("EVTUI_THEMES_DIR", raising=False)


@pytest.fixture(scope="module")
def sim():
    with sim_in_thread(SCENARIO, describer=True) as s:
        yield s


@pytest.fixture(scope="module")
def finished(tmp_path_factory, sim):
    """A compare-mode run directory with every frame captioned (copied by `jobs(done=True)`)."""
    root = tmp_path_factory.mktemp("finished")
    job, ex = open_job(root, sim, COMPARE)
    try:
        run_to_idle(job)
    finally:
        job.close()
        ex.shutdown()
    return root / "run"


@pytest.fixture
def jobs(tmp_path, sim, finished):
    """make(config) -> a Job on the shared simulator; done=True starts from a finished
    copy (its engine goes idle at once but still serves reruns). All closed afterwards."""
    opened = []

    def make(config: str = COMPARE, name: str = "run", done: bool = False):
        if done:
            shutil.copytree(finished, tmp_path / name)
        job, ex = open_job(tmp_path, sim, config, name)
        opened.append((job, ex))
        return job

    yield make
    for job, ex in opened:
        job.close()
        ex.shutdown()


def drive(app: EvtuiApp, script) -> None:
    try:
        pilot_run(app, script)
    finally:
        app.session.close()


async def idle(app: EvtuiApp) -> None:
    await await_until(lambda: app.session.snapshot.state == "idle")
    await await_until(lambda: app.session.book.answered().all())


def text_of(widget) -> str:
    return str(widget.render())


def column(app: EvtuiApp, col: str) -> str:
    (c,) = [c for c in app.main.query(CaptionColumn) if c.col == col]
    return c.text


# -- moving around --------------------------------------------------------------------------
def test_next_prev_first_last_goto_and_palette(jobs):
    job = jobs(done=True)
    app = EvtuiApp(job)

    async def script(pilot):
        await idle(app)
        main = app.main
        await pilot.press("right", "right")
        assert main.frame == 2
        await pilot.press("left")
        assert main.frame == 1
        await pilot.press("end")
        assert main.frame == job.n_frames - 1
        await pilot.press("home")
        assert main.frame == 0
        await pilot.press("g")
        assert isinstance(app.screen, GotoScreen)
        await pilot.press("9", "9", "enter")
        assert isinstance(app.screen, GotoScreen)  # out of range: says so, stays open
        assert "from 0 to 23" in text_of(app.screen.query_one("#goto-error"))
        await pilot.press("backspace", "backspace", "1", "7", "enter")
        assert app.screen is main and main.frame == 17
        preview = main.query_one(FramePreview)
        await preview_shows(app, 17)  # rendered by the preview worker process
        assert np.array_equal(preview.image, job.preview(17))
        assert "17" in text_of(main.query_one("#meta"))
        await pilot.press("ctrl+p")
        await pilot.press("5")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert app.screen is main and main.frame == 5
        await pilot.click(FrameList, offset=(3, 8))  # the list's 8th line: frame 7
        assert main.frame == 7

    drive(app, script)


def test_preview_is_redrawn_only_on_frame_or_size_change(jobs):
    app = EvtuiApp(jobs(done=True))

    async def script(pilot):
        await idle(app)
        preview = app.main.query_one(FramePreview)
        await preview_shows(app, 0)
        await pilot.pause()
        built = preview.builds
        await pilot.pause(0.5)  # five engine ticks
        assert preview.builds == built
        await pilot.press("right")
        await preview_shows(app, 1)
        await pilot.pause()
        assert preview.builds == built + 1
        await pilot.resize_terminal(100, 34)
        await pilot.pause()
        assert preview.builds == built + 2

    drive(app, script)


# -- engine control -----------------------------------------------------------------------
def test_pause_holds_the_engine_and_resume_finishes_the_job(jobs):
    job = jobs(COMPARE + SEQUENTIAL)  # one request at a time: long enough to pause
    app = EvtuiApp(job)

    async def script(pilot):
        s = app.session
        await await_until(lambda: s.snapshot.state == "running")
        await pilot.press("space")
        await await_until(lambda: s.snapshot.state == "paused")
        await await_until(lambda: s.snapshot.in_flight == 0)
        sent = sum(t.requests for t in s.snapshot.targets)
        await pilot.pause(0.3)
        assert s.snapshot.state == "paused"
        assert sum(t.requests for t in s.snapshot.targets) == sent  # nothing new sent
        assert sent < 2 * job.n_frames
        await pilot.press("space")
        await await_until(lambda: s.snapshot.state == "idle")
        assert s.snapshot.done == 2 * job.n_frames

    drive(app, script)


def test_quit_before_the_end_drains_and_exits_interrupted(jobs):
    job = jobs(COMPARE + SEQUENTIAL)
    app = EvtuiApp(job)

    async def script(pilot):
        s = app.session
        await await_until(lambda: s.snapshot.state == "running")
        await pilot.press("space")
        await await_until(lambda: s.snapshot.state == "paused")
        await pilot.press("q")
        await await_until(lambda: not s.alive)
        await pilot.pause(0.2)

    drive(app, script)
    assert app.return_value == 130
    assert 0 < app.session.snapshot.finished < 2 * job.n_frames  # the rest stays pending
    assert len(list(job.store.results())) == app.session.snapshot.finished


def test_quit_when_done_is_zero(jobs):
    app = EvtuiApp(jobs(done=True))

    async def script(pilot):
        await idle(app)
        await pilot.press("q")
        await await_until(lambda: not app.session.alive)
        await pilot.pause(0.2)

    drive(app, script)
    assert app.return_value == 0


def test_rerun_one_target_then_all_keeps_first_answers(jobs, sim):
    job = jobs(done=True)
    app = EvtuiApp(job)
    book = app.session.book

    async def script(pilot):
        await idle(app)
        first = {r["target"]: r["caption"] for r in job.store.results(frame=3)}
        before = sim.stats.count()
        await pilot.press("right", "right", "right", "tab", "r")  # frame 3, anthropic column
        await await_until(lambda: len(book.history(3, ANTHROPIC)) == 2)
        assert sim.stats.count() == before + 1 and len(book.history(3, OPENAI)) == 1
        assert "rerun ×1" in column(app, ANTHROPIC)
        await pilot.press("R")
        await await_until(lambda: len(book.history(3, OPENAI)) == 2)
        await await_until(lambda: len(book.history(3, ANTHROPIC)) == 3)
        assert sim.stats.count() == before + 3
        # the job keeps the first answers; the reruns sit in the ledger beside them
        assert {r["target"]: r["caption"] for r in job.store.results(frame=3)} == first
        await await_until(lambda: len([r for r in ledger_reruns(job.store.run_dir)]) == 3)
        assert book.history(3, OPENAI)[0]["caption"] == first[OPENAI]
        await pilot.press("enter")
        body = text_of(app.screen.query_one("#explain-body"))
        assert "answer 1: first answer (as recorded)" in body and "rerun 2" in body
        assert "route record 3 of 3 (rerun)" in body

    drive(app, script)


def test_live_weights_reach_the_router(jobs):
    job = jobs(ROUTE, "route")
    app = EvtuiApp(job)

    async def script(pilot):
        s = app.session
        await idle(app)
        await pilot.press("w")
        assert isinstance(app.screen, WeightsScreen)
        first = app.screen.query_one("#weight-0", Input)
        first.value = "-1"
        await pilot.press("enter")
        assert isinstance(app.screen, WeightsScreen)  # refused, says why
        assert ">= 0" in text_of(app.screen.query_one("#weights-error"))
        first.value = "5"
        first.focus()
        await pilot.press("enter")
        await await_until(lambda: s.snapshot.target(OPENAI).weight == 5.0)
        assert s.snapshot.target(OPENAI).share == pytest.approx(5 / 6)
        assert s.snapshot.target(ANTHROPIC).weight == 1.0

    drive(app, script)


# -- review ---------------------------------------------------------------------------------
def test_accept_reject_edit_prefer_are_stored_beside_the_raw_captions(jobs):
    job = jobs(done=True)
    app = EvtuiApp(job)

    async def script(pilot):
        await idle(app)
        raw = {r["target"]: r["caption"] for r in job.store.results(frame=1)}
        await pilot.press("right", "a")  # frame 1: accept openai
        await pilot.press("tab", "x")  # reject anthropic
        await pilot.press("e")
        assert isinstance(app.screen, EditScreen)
        area = app.screen.query_one(TextArea)
        assert area.text == raw[ANTHROPIC]  # starts from the provider's words
        area.text = "A disc crosses the frame left to right."
        await pilot.press("ctrl+s")
        await pilot.press("shift+tab", "p")  # prefer openai
        assert reviews_of(job) == [
            {"frame": 1, "target": OPENAI, "decision": "accept"},
            {"frame": 1, "target": ANTHROPIC, "decision": "reject"},
            {
                "frame": 1,
                "target": ANTHROPIC,
                "decision": "edit",
                "text": "A disc crosses the frame left to right.",
            },
            {"frame": 1, "target": OPENAI, "decision": "prefer"},
        ]
        assert {r["target"]: r["caption"] for r in job.store.results(frame=1)} == raw
        assert "✓ accepted" in column(app, OPENAI) and "★ preferred" in column(app, OPENAI)
        text = column(app, ANTHROPIC)
        assert "✎ edited" in text and "A disc crosses the frame" in text
        assert raw[ANTHROPIC][:30] in text  # the raw caption stays on screen
        line = app.main.query_one(FrameList).render_line(1).text
        assert "✓" in line and "★" in line
        # next unreviewed skips the reviewed frame, and wraps around at the end
        await pilot.press("home", "u")
        assert app.main.frame == 2
        await pilot.press("end", "u")
        assert app.main.frame == 0

    drive(app, script)


def test_reviews_survive_reopening(tmp_path, jobs, sim):
    job = jobs(done=True)
    app = EvtuiApp(job)

    async def script(pilot):
        await idle(app)
        await pilot.press("a")

    drive(app, script)
    job.close()
    again, ex = open_job(tmp_path, sim, COMPARE)
    try:
        app2 = EvtuiApp(again, source=FixedSource(EMPTY_SNAPSHOT))

        async def check(pilot):
            assert app2.session.book.decision(0, OPENAI)["decision"] == "accept"
            assert "✓ accepted" in column(app2, OPENAI)

        drive(app2, check)
    finally:
        again.close()
        ex.shutdown()


# -- views ----------------------------------------------------------------------------------
def test_render_method_switches_the_preview_only(jobs):
    job = jobs(done=True)
    app = EvtuiApp(job)

    async def script(pilot):
        await idle(app)
        main = app.main
        preview = main.query_one(FramePreview)
        await pilot.press("m")
        assert isinstance(app.screen, ChoiceScreen)
        options = app.screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = ids.index("histogram")
        await pilot.press("enter")
        assert main.method == "histogram"
        await preview_shows(app, 0, "histogram")
        assert np.array_equal(preview.image, job.preview(0, method="histogram"))
        assert "job renders cdframe" in text_of(main.query_one("#meta"))
        assert job.plan.method == "cdframe"
        await pilot.press("right")  # the method stays while moving
        await preview_shows(app, 1, "histogram")
        assert np.array_equal(preview.image, job.preview(1, method="histogram"))
        await pilot.press("ctrl+p")
        await pilot.press(*"cdframe")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert main.method == "cdframe"
        await preview_shows(app, 1)
        assert np.array_equal(preview.image, job.preview(1))

    drive(app, script)


def test_explain_view_shows_every_attempt_and_steps(jobs):
    job = jobs(done=True)
    app = EvtuiApp(job)

    async def script(pilot):
        await idle(app)
        await pilot.press("right", "enter")
        assert isinstance(app.screen, ExplainScreen) and app.screen.frame == 1
        body = text_of(app.screen.query_one("#explain-body"))
        (tr,) = [t for t in job.store.trace(1) if t["slot"] == OPENAI]
        key = tr["attempts"][0]["key"].split(" ", 1)[1]
        assert key in body and "route record 1 of 1 (first)" in body
        assert f"final done · {OPENAI}" in body
        caption = next(r["caption"] for r in job.store.results(frame=1) if r["target"] == OPENAI)
        assert caption in body
        await pilot.press("right")
        assert app.screen.frame == 2
        await pilot.press("escape")
        assert app.screen is app.main and app.main.frame == 1

    drive(app, script)


# -- flags, filters and next-of-a-kind (scripted caption events) ------------------------------
def result(frame, target, state="done", caption="A disc moves left.", **kw):
    return {
        "frame": frame,
        "slot": target,
        "target": target,
        "state": state,
        "caption": caption if state == "done" else None,
        "latency_s": 0.5,
        "input_tokens": 100,
        "output_tokens": 20,
        "cost_usd": 0.001,
        **kw,
    }


def scripted(src: FixedSource) -> None:
    src.feed("caption", result(2, OPENAI, "failed", reason="server error 500, 4 attempts"))
    src.feed("caption", result(2, ANTHROPIC))
    src.feed("caption", result(5, OPENAI, caption="A disc moves left across the frame."))
    src.feed("caption", result(5, ANTHROPIC, caption="The camera shakes over a textured wall."))
    src.feed("caption", result(7, OPENAI, cache_hit=True, cache_source=2))
    src.feed("caption", result(7, ANTHROPIC))
    for t in (OPENAI, ANTHROPIC):
        src.feed("caption", result(9, t, "skipped", reason="near-empty: 3 events < floor 20"))
        src.feed("caption", result(11, t))


def test_next_failed_disagreeing_unreviewed_and_filters(jobs):
    job = jobs()
    src = FixedSource(EMPTY_SNAPSHOT)
    scripted(src)
    app = EvtuiApp(job, source=src)

    async def script(pilot):
        await pilot.pause(0.2)
        main = app.main
        assert main.frame == 0
        await pilot.press("f")
        assert main.frame == 2
        assert "failed: server error 500" in column(app, OPENAI)
        await pilot.press("d")
        assert main.frame == 5
        assert "≠" in main.query_one(FrameList).render_line(5).text
        await pilot.press("u")
        assert main.frame == 7
        assert "cache hit · from frame 2" in column(app, OPENAI)
        await pilot.press("slash")
        assert isinstance(app.screen, ChoiceScreen)
        options = app.screen.query_one(OptionList)
        ids = [options.get_option_at_index(i).id for i in range(options.option_count)]
        options.highlighted = ids.index("failed")
        await pilot.press("enter")
        assert main.filter == "failed" and main.frames.tolist() == [2] and main.frame == 2
        main.set_filter("skipped")
        assert main.frames.tolist() == [9] and main.frame == 9
        await pilot.press("ctrl+p")
        await pilot.press(*"fi cache")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await pilot.pause()
        assert main.filter == "cache" and main.frames.tolist() == [7]
        await pilot.press("right")  # nowhere to go inside the filter
        assert main.frame == 7
        main.set_filter("all")
        assert main.frames.size == job.n_frames
        # a new answer arriving live updates the list and the current frame's column
        await pilot.press("home")
        src.feed("caption", result(0, OPENAI, caption="A freshly arrived caption."))
        await pilot.pause(0.3)
        assert "A freshly arrived caption." in column(app, OPENAI)
        assert "●" in main.query_one(FrameList).render_line(0).text

    drive(app, script)


def test_keymap_file_remaps_keys_and_a_bad_one_is_reported(tmp_path, jobs):
    job = jobs()
    km = tmp_path / "keymap.yaml"
    km.write_text("next-frame: j\n")
    app = EvtuiApp(job, source=FixedSource(EMPTY_SNAPSHOT), keymap_path=km)

    async def script(pilot):
        await pilot.press("j")
        assert app.main.frame == 1
        await pilot.press("right")  # no longer bound
        assert app.main.frame == 1

    drive(app, script)
    bad = tmp_path / "bad.yaml"
    bad.write_text("nxt-frame: j\n")
    app2 = EvtuiApp(job, source=FixedSource(EMPTY_SNAPSHOT), keymap_path=bad)

    async def check(pilot):
        notes = [n.message for n in app2._notifications]
        assert any("unknown binding id 'nxt-frame'" in n for n in notes)
        await pilot.press("right")  # defaults still work
        assert app2.main.frame == 1

    drive(app2, check)


def test_themes_switch_and_unknown_theme_is_reported(jobs):
    app = EvtuiApp(jobs(), source=FixedSource(EMPTY_SNAPSHOT), theme="evtui-light")

    async def script(pilot):
        assert app.theme == "evtui-light"
        app.theme = "evtui-high-contrast"
        await pilot.pause()
        assert app.get_css_variables()["background"].upper() == "#000000"

    drive(app, script)
    app2 = EvtuiApp(jobs(name="run2"), source=FixedSource(EMPTY_SNAPSHOT), theme="nope")

    async def check(pilot):
        assert app2.theme == "evtui-dark"
        assert any("unknown theme 'nope'" in n.message for n in app2._notifications)

    drive(app2, check)


# -- errors in the UI -------------------------------------------------------------------------
def test_every_provider_down_is_a_banner_then_stderr_and_exit_code_one(
    tmp_path, monkeypatch, capsys
):
    seen = {}

    async def watch_then_quit(pilot):
        app = pilot.app
        await await_until(lambda: app.session.snapshot.state == "idle")
        await pilot.pause(0.3)
        banner = app.main.query_one("#banner")
        seen["shown"] = banner.display
        seen["text"] = text_of(banner)
        await pilot.press("q")

    monkeypatch.setattr(
        app_mod.EvtuiApp,
        "run",
        lambda self: App.run(self, headless=True, size=(120, 40), auto_pilot=watch_then_quit),
    )
    with sim_in_thread(ALL_DOWN) as sim:
        job, ex = open_job(tmp_path, sim, COMPARE)
        try:
            code = run_app(job)
        finally:
            job.close()
            ex.shutdown()
    assert code == 1  # every frame failed
    assert seen["shown"] and "Every provider is down" in seen["text"]
    assert "every key disabled (quota exhausted)" in seen["text"]
    err = capsys.readouterr().err
    assert "evtui: Every provider is down" in err  # the same words, on stderr at exit
    assert "0 done, 48 failed" in err


def test_engine_failure_is_a_banner_not_a_traceback(jobs):
    src = FixedSource(EMPTY_SNAPSHOT)
    src.error = OSError(28, "No space left on device")
    app = EvtuiApp(jobs(), source=src)

    async def script(pilot):
        await pilot.pause(0.2)
        banner = text_of(app.main.query_one("#banner"))
        assert "the engine stopped: OSError" in banner and "No space left" in banner
        await pilot.press("q")
        await pilot.pause(0.2)

    drive(app, script)
    assert app.return_value == 2


def test_unreadable_window_is_a_message_in_the_preview(jobs, monkeypatch):
    job = jobs()
    real = session_mod.render_range

    def broken(plan, k0, k1, *a, **kw):
        if k0 == 1:
            raise RecordingError("sample.evt3.raw", "truncated event word", 4096)
        return real(plan, k0, k1, *a, **kw)

    monkeypatch.setattr(session_mod, "render_range", broken)
    monkeypatch.setattr(session_mod, "PREVIEW_POOL", "thread")  # the patch reaches it
    app = EvtuiApp(job, source=FixedSource(EMPTY_SNAPSHOT))

    async def script(pilot):
        await pilot.press("right")
        await preview_shows(app, 1)
        preview = app.main.query_one(FramePreview)
        assert preview.image is None
        lines = [preview.render_line(y).text.strip() for y in range(preview.size.height)]
        text = " ".join(x for x in lines if x)
        assert "cannot render frame 1: sample.evt3.raw: byte 4096: truncated event word" in text
        await pilot.press("right")  # the app goes on
        await preview_shows(app, 2)
        assert preview.image is not None and app.main.frame == 2

    drive(app, script)


def test_error_app_shows_the_message_and_run_app_error_prints_it(monkeypatch, capsys):
    msg = "job.yaml:7:14: providers.openai.keys[0].key: environment variable OPENAI_KEY is not set"
    app = ErrorApp(msg)

    async def script(pilot):
        assert msg in text_of(app.query_one("#error-message"))
        await pilot.press("q")

    pilot_run(app, script)
    assert app.return_value == 2

    async def press_q(pilot):
        await pilot.pause()
        await pilot.press("q")

    monkeypatch.setattr(
        ErrorApp, "run", lambda self: App.run(self, headless=True, auto_pilot=press_q)
    )
    assert run_app_error(msg) == 2
    assert msg in capsys.readouterr().err


def test_run_app_returns_the_exit_code_and_reports(jobs, monkeypatch, capsys):
    job = jobs()

    async def wait_then_quit(pilot):
        await idle(pilot.app)
        await pilot.press("q")

    monkeypatch.setattr(
        app_mod.EvtuiApp,
        "run",
        lambda self: App.run(self, headless=True, size=(120, 40), auto_pilot=wait_then_quit),
    )
    assert run_app(job) == 0
    err = capsys.readouterr().err
    assert f"48 done, 0 failed, 0 skipped this session; results in {job.store.run_dir}" in err


def test_screenshot_binding_saves_an_svg_in_the_run_dir(jobs):
    job = jobs()
    app = EvtuiApp(job, source=FixedSource(EMPTY_SNAPSHOT))

    async def script(pilot):
        await pilot.press("f8")
        await pilot.pause()

    drive(app, script)
    assert list(Path(job.store.run_dir).glob("*.svg"))


def test_previews_come_from_the_worker_once_and_inline_after_close(jobs):
    job = jobs(done=True)
    s = session_mod.Session(job, source=FixedSource(EMPTY_SNAPSHOT))
    try:
        first = s.request_view(3)
        assert s.request_view(3) is first or first.done()  # one render, however often asked
        v = first.result(timeout=30)
        assert v.index == 3 and np.array_equal(v.pixels, job.preview(3))
        assert s.cached_view(3) is v
    finally:
        s.close()
    later = s.request_view(4)  # the pool is gone: rendered here, not lost, no deadlock
    assert later.done() and np.array_equal(later.result().pixels, job.preview(4))
