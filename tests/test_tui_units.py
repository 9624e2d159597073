"""The app's parts that need no running app: half blocks, word diff, frame book,
keymaps, themes, formatting, exit codes, and the stylesheet's use of theme variables."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from evtui.engine.telemetry import EMPTY_SNAPSHOT
from evtui.tui import bindings, halfblock, themes
from evtui.tui.book import DONE, FAILED, SKIPPED, FrameBook
from evtui.tui.diff import agreement, disagree, unique_words
from evtui.tui.session import Session, ledger_reruns
from evtui.tui.text import route_summary, secs, sparkline, usd
from evtui.tui.widgets.routing import all_down

TUI = Path(__file__).resolve().parents[1] / "evtui" / "tui"


# -- half blocks --------------------------------------------------------------------------
def test_fit_keeps_aspect_in_square_pixels():
    assert halfblock.fit(320, 240, 60, 100) == (60, 22)  # width-bound: 60 x 45 px
    assert halfblock.fit(320, 240, 200, 20) == (53, 20)  # height-bound: 53 x 40 px
    assert halfblock.fit(0, 240, 60, 20) == (0, 0)


def test_strips_put_upper_pixel_in_front_and_lower_behind():
    img = np.zeros((4, 2, 3), np.uint8)
    img[0] = (255, 0, 0)  # row 0: red (upper half of cell row 0)
    img[1] = (0, 0, 255)  # row 1: blue (lower half)
    img[2:, 0] = (0, 255, 0)
    strips = halfblock.frame_strips(img, 2, 2)
    assert len(strips) == 2 and all(s.cell_length == 2 for s in strips)
    (seg,) = list(strips[0])  # both cells equal: merged into one run
    assert seg.text == "▀▀"
    assert seg.style.color.triplet == (248, 0, 0)  # quantised to 5 bits a channel
    assert seg.style.bgcolor.triplet == (0, 0, 248)
    segs = list(strips[1])
    assert [s.text for s in segs] == ["▀", "▀"]
    assert segs[0].style.color.triplet == (0, 248, 0)
    assert segs[1].style.color.triplet == (0, 0, 0)


def test_strips_reuse_styles_and_merge_runs():
    rng = np.random.default_rng(0)
    img = np.where(rng.random((120, 160, 1)) < 0.1, 255, 20).astype(np.uint8).repeat(3, 2)
    a = halfblock.frame_strips(img, 80, 30)
    b = halfblock.frame_strips(img, 80, 30)
    assert a[3]._segments[0].style is b[3]._segments[0].style  # one Style object per pair
    n_segs = sum(len(s._segments) for s in a)
    assert n_segs < 80 * 30  # equal neighbours merged
    assert all(s.cell_length == 80 for s in a)


def test_shrinking_averages_thin_structure_instead_of_dropping_it():
    img = np.zeros((96, 128, 3), np.uint8)
    img[:, 1::4] = 255  # 1-px vertical lines every 4 px: nearest sampling at /4 misses all
    px = halfblock.resample(img, 32, 24)
    assert px.max() > 0 and px.min() > 0  # every output pixel saw a quarter of a line


# -- word diff ----------------------------------------------------------------------------
def test_unique_words_mark_only_what_the_other_caption_lacks():
    out = unique_words({"a": "A red car turns left.", "b": "A blue car turns left."})
    marked = {k: [t for t, u in v if u] for k, v in out.items()}
    assert marked == {"a": ["red"], "b": ["blue"]}
    assert "".join(t for t, _ in out["a"]) == "A red car turns left."


def test_identical_and_single_captions_mark_nothing():
    same = unique_words({"a": "Edges move.", "b": "edges MOVE"})
    assert not any(u for v in same.values() for _, u in v)
    assert not any(u for _, u in unique_words({"a": "alone"})["a"])


def test_disagreement_is_low_overlap_of_content_words():
    assert agreement({"a": "x"}) is None
    assert not disagree({"a": "a disc moves left", "b": "the disc moves to the left"})
    assert disagree({"a": "a disc moves left", "b": "camera shakes over a textured wall"})


# -- frame book ---------------------------------------------------------------------------
def res(frame, target, state="done", caption="a car", **kw):
    return {
        "frame": frame,
        "slot": target,
        "target": target,
        "state": state,
        "caption": caption if state == "done" else None,
        **kw,
    }


def test_book_keeps_first_answer_and_shows_newest():
    book = FrameBook(5, ["x", "y"], ["x", "y"])
    book.load([res(1, "x", caption="first")], [res(1, "x", caption="again", rerun=True)])
    book.add(res(1, "x", caption="third", rerun=True))
    assert [r["caption"] for r in book.history(1, "x")] == ["first", "again", "third"]
    assert book.newest(1, "x")["caption"] == "third"
    book.add(res(1, "x", state="failed", reason="boom", rerun=True))
    assert book.newest(1, "x")["caption"] == "third"  # a failed rerun does not hide it
    assert book.state[0, 1] == DONE


def test_book_masks_and_navigation():
    book = FrameBook(6, ["x", "y"], ["x", "y"])
    book.add(res(0, "x"))
    book.add(res(1, "x", state="failed", reason="r"))
    book.add(res(2, "y", state="skipped", reason="empty"))
    book.add(res(3, "x", cache_hit=True))
    book.add(res(4, "x", caption="a disc moves left"))
    book.add(res(4, "y", caption="camera shakes over a textured wall"))
    assert book.state[0, 1] == FAILED and book.state[1, 2] == SKIPPED
    assert np.flatnonzero(book.mask("failed")).tolist() == [1]
    assert np.flatnonzero(book.mask("skipped")).tolist() == [2]
    assert np.flatnonzero(book.mask("cache")).tolist() == [3]
    assert np.flatnonzero(book.mask("disagree")).tolist() == [4]
    assert np.flatnonzero(book.mask("unreviewed")).tolist() == [0, 3, 4]
    book.add_review({"frame": 3, "target": "x", "decision": "accept"})
    assert np.flatnonzero(book.mask("unreviewed")).tolist() == [0, 4]
    mask = book.mask("unreviewed")
    assert book.next_in(mask, 0) == 4 and book.next_in(mask, 4) is None
    assert book.next_in(mask, 4, -1) == 0


def test_book_reviews_decision_and_preference():
    book = FrameBook(3, ["x", "y"], ["x", "y"])
    book.add_review({"frame": 2, "target": "x", "decision": "accept"})
    book.add_review({"frame": 2, "target": "x", "decision": "edit", "text": "fixed"})
    book.add_review({"frame": 2, "target": "y", "decision": "prefer"})
    assert book.decision(2, "x")["text"] == "fixed"
    assert book.decision(2, "y") is None and book.preferred(2) == "y"


def test_route_mode_puts_answers_under_who_answered():
    book = FrameBook(3, ["route"], ["x", "y"])
    book.add(res(0, "y") | {"slot": "route"})
    book.add({"frame": 1, "slot": "route", "target": None, "state": "skipped", "reason": "e"})
    assert book.newest(0, "y") is not None and book.newest(0, "x") is None
    assert book.columns_for(1) == ["x", "y", "route"]
    assert book.state[0].tolist() == [DONE, SKIPPED, 0]


def test_ledger_reruns_skips_torn_and_first_answers(tmp_path):
    (tmp_path / "ledger.jsonl").write_bytes(
        b'{"frame": 1, "state": "duplicate", "rerun": true, "caption": "x"}\n'
        b'{"frame": 2, "state": "failed", "reason": "no"}\n'
        b'{"frame": 3, "state": "duplicate", "rerun": tr'
    )
    assert [r["frame"] for r in ledger_reruns(tmp_path)] == [1]
    assert list(ledger_reruns(tmp_path / "nope")) == []


# -- text ---------------------------------------------------------------------------------
def test_route_summary_names_keys_and_fallbacks():
    rec = {
        "attempts": [
            {
                "target": "openai/gpt-4o",
                "key": "openai key#2 sk-…abcd",
                "outcome": "rate_limited",
                "status": 429,
                "latency_s": 0.1,
            },
            {
                "target": "anthropic/claude",
                "key": "anthropic key#1 sk-…wxyz",
                "outcome": "ok",
                "status": 200,
                "latency_s": 1.4,
            },
        ],
        "cache": "off",
    }
    assert route_summary(rec) == "key#2 429 → fell back → anthropic key#1 ok 1.4 s"
    assert route_summary(None) == "-"


def test_number_forms():
    assert secs(0.4321) == "0.43 s" and secs(3725) == "1h02m" and secs(None) == "--"
    assert usd(0.00123) == "$0.0012" and usd(1234.5) == "$1,234.50"
    assert sparkline([0, 1, 2, 4], 4) == "▁▃▅█" and sparkline([0, 0], 2) == "▁▁"


# -- keymaps ------------------------------------------------------------------------------
def test_binding_table_ids_are_unique_and_documented():
    ids = [b.id for b in bindings.ALL]
    assert len(ids) == len(set(ids))
    assert all(b.description and b.tooltip for b in bindings.ALL)
    main_keys = [k for b in bindings.MAIN for k in b.keys.split(",")]
    assert len(main_keys) == len(set(main_keys))
    assert 5 <= sum(b.show for b in bindings.MAIN + bindings.APP) <= 10


def test_keymap_file_remaps_by_id(tmp_path, monkeypatch):
    path = tmp_path / "keymap.yaml"
    path.write_text("next-frame: j, right\naccept: y\n")
    assert bindings.load_keymap(path) == {"next-frame": "j,right", "accept": "y"}
    monkeypatch.setenv("EVTUI_KEYMAP", str(path))
    assert bindings.load_keymap()["accept"] == "y"
    assert bindings.load_keymap(tmp_path / "absent.yaml") == {}


def test_keymap_problems_are_all_reported_with_lines(tmp_path):
    with pytest.raises(bindings.KeymapError) as e:
        bindings.parse_keymap("next-frame: j\nnext-fram: k\naccept: ''\n", "km.yaml")
    assert e.value.problems[0].startswith("km.yaml:2:1: unknown binding id 'next-fram'")
    assert e.value.problems[1].startswith("km.yaml:3:1: accept: expected keys")
    with pytest.raises(bindings.KeymapError, match=r"km.yaml:1:\d+: not valid YAML"):
        bindings.parse_keymap("a: [", "km.yaml")


# -- themes -------------------------------------------------------------------------------
def test_builtin_themes_load():
    found, problems = themes.load_themes((themes.builtin_dir(),))
    assert problems == []
    assert {"evtui-dark", "evtui-light", "evtui-high-contrast"} <= set(found)
    assert found["evtui-light"].dark is False


def test_user_themes_override_and_bad_files_are_reported(tmp_path):
    good = tmp_path / "mine.toml"
    good.write_text('name = "evtui-dark"\nprimary = "#ff0000"\n')
    (tmp_path / "bad.toml").write_text('name = "x"\nprimary = "notacolour"\nflavour = 1\n')
    (tmp_path / "broken.toml").write_text("name = ")
    found, problems = themes.load_themes((themes.builtin_dir(), tmp_path))
    assert found["evtui-dark"].primary == "#ff0000"
    assert len(problems) == 2
    bad = next(p for p in problems if "bad.toml" in p)
    assert "unknown key 'flavour'" in bad and "primary: 'notacolour' is not a colour" in bad
    assert any("broken.toml: not valid TOML" in p for p in problems)


def test_stylesheet_takes_every_colour_from_theme_variables():
    css = (TUI / "app.tcss").read_text()
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    props = re.findall(r"^\s*([\w-]+):\s*([^;]+);", css, flags=re.M)
    colour = re.compile(r"color|background|border(-(top|right|bottom|left))?|outline|tint")
    colour_props = [
        (p, v) for p, v in props if colour.fullmatch(p) or p.endswith(("-color", "-background"))
    ]
    assert len(colour_props) > 20
    for prop, value in colour_props:
        words = [w for w in value.split() if w not in ("round", "thick", "solid", "tall")]
        colours = [w for w in words if not re.fullmatch(r"\d+%?", w)]
        assert colours and all(w.startswith("$") for w in colours), f"{prop}: {value}"
    # Content styles in the code also use variables only, never literal colours.
    for path in TUI.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r'"[^"]*#[0-9a-fA-F]{6}', text), path
        assert not re.search(r'\b(?:on )?(?:red|green|blue|yellow|magenta|cyan)\b"', text), path


# -- engine views -------------------------------------------------------------------------
def lane(disabled=None, cooldown=0.0):
    return SimpleNamespace(disabled=disabled, cooldown_left_s=cooldown)


def test_all_down_only_when_no_target_can_answer():
    t_ok = SimpleNamespace(id="a/x", breaker="closed", breaker_reopens_in_s=0, lanes=(lane(),))
    t_dis = SimpleNamespace(
        id="b/y",
        breaker="closed",
        breaker_reopens_in_s=0,
        lanes=(lane("quota exhausted: no"), lane("auth rejected: bad")),
    )
    t_open = SimpleNamespace(id="c/z", breaker="open", breaker_reopens_in_s=4.0, lanes=(lane(),))
    assert all_down(SimpleNamespace(targets=(t_ok, t_dis))) is None
    msg = all_down(SimpleNamespace(targets=(t_dis, t_open)))
    assert "b/y: every key disabled (auth rejected, quota exhausted)" in msg
    assert "c/z: failing, retry in 4.0 s" in msg


class _Src:
    def __init__(self, state, failed=0, result=None, error=None, alive=True):
        self.snapshot = EMPTY_SNAPSHOT.__class__(
            **{
                **{f: getattr(EMPTY_SNAPSHOT, f) for f in EMPTY_SNAPSHOT.__slots__},
                "state": state,
                "failed": failed,
            }
        )
        self.result, self.error, self.alive = result, error, alive
        self.calls = []

    def drain(self):
        self.calls.append("drain")

    def stop(self):
        self.calls.append("stop")


def _session(src):
    s = Session.__new__(Session)
    s.source, s.interrupted, s.quitting = src, False, 0
    s.snapshot = src.snapshot
    return s


@pytest.mark.parametrize(
    ("state", "failed", "error", "code"),
    [
        ("idle", 0, None, 0),
        ("idle", 2, None, 1),
        ("budget", 0, None, 3),
        ("failed", 0, None, 2),
        ("idle", 0, RuntimeError("x"), 2),
    ],
)
def test_exit_codes(state, failed, error, code):
    assert _session(_Src(state, failed, error=error)).exit_code() == code


def test_quitting_a_running_job_drains_then_stops_and_says_interrupted():
    src = _Src("running")
    s = _session(src)
    assert s.quit() == "draining" and src.calls == ["drain"]
    assert s.quit() == "stopping" and src.calls == ["drain", "stop"]
    assert s.exit_code() == 130
    idle = _session(_Src("idle"))
    assert idle.quit() == "draining" and idle.exit_code() == 0
