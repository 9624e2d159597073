"""Caption statistics on hand-made captions whose answers are known."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evtui.pilot.stats import (
    agreement,
    caption_style,
    classify,
    distinct_n,
    jaccard,
    lcs_length,
    rouge_l_f,
    words,
)
from evtui.sim.describe import DEGENERATE_KINDS, STYLES, degenerate_caption


def _lcs_dp(a: list[str], b: list[str]) -> int:
    m = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            m[i + 1][j + 1] = m[i][j] + 1 if x == y else max(m[i][j + 1], m[i + 1][j])
    return m[-1][-1]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from("abcde"), max_size=70),
    st.lists(st.sampled_from("abcdef"), max_size=70),
)
def test_bit_parallel_lcs_equals_dynamic_programming(a: list[str], b: list[str]) -> None:
    assert lcs_length(a, b) == _lcs_dp(a, b) == lcs_length(b, a)


def test_words_lowercase_and_keep_apostrophes() -> None:
    assert words("The car's LEFT edge, 3 times!") == ["the", "car's", "left", "edge", "3", "times"]
    assert words("") == [] and words(None) == []


def test_rouge_l_and_jaccard_known_values() -> None:
    a = words("the cat sat on the mat")
    b = words("the cat on the mat")
    assert lcs_length(a, b) == 5
    assert rouge_l_f(a, b) == pytest.approx(2 * 5 / 11)
    assert jaccard(a, b) == pytest.approx(4 / 5)  # {the, cat, on, mat} of {.., sat}
    assert rouge_l_f(a, a) == 1.0 and rouge_l_f(a, []) == 0.0
    assert jaccard([], []) == 0.0


def test_distinct_n_counts_within_captions_only() -> None:
    caps = [["a", "b", "a", "b"], ["a", "b"]]
    assert distinct_n(caps, 1) == pytest.approx(2 / 6)
    # bigrams: (a b) (b a) (a b) | (a b): the (b, a) across the caption boundary is not one
    assert distinct_n(caps, 2) == pytest.approx(2 / 4)
    assert distinct_n([["x"], ["y"]], 2) == 0.0
    assert distinct_n([], 1) == 0.0


@pytest.mark.parametrize("kind", DEGENERATE_KINDS)
@pytest.mark.parametrize("style", STYLES)
def test_classify_flags_every_simulated_degenerate_answer(kind: str, style: str) -> None:
    text = degenerate_caption(kind, style)
    expected = {
        "refusal": "refusal",
        "please_provide_image": "asks_for_image",
        "empty": "empty",
        "boilerplate": "ok",  # boilerplate is a property of many captions, not of one
    }[kind]
    assert classify(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "A dark disc moves to the right across the upper left of the frame.",
        "Event frames only show change, so static parts of the scene cannot be seen here.",
        "The car is unable to move past the barrier; no image noise is visible.",
        "Sorry-looking gray speckle covers the frame.",
    ],
)
def test_classify_leaves_real_captions_alone(text: str) -> None:
    assert classify(text) == "ok"


def test_classify_catches_common_refusal_phrasings() -> None:
    assert classify("I'm sorry, but I can't help with identifying people.") == "refusal"
    assert classify("As an AI, I cannot describe this.") == "refusal"
    assert classify("I don’t see an image attached. Could you upload it?") == "asks_for_image"
    assert classify("Could you please share the image you want described?") == "asks_for_image"
    assert classify("   \n") == "empty" and classify(None) == "empty"


def test_caption_style_on_hand_made_captions() -> None:
    caps = {
        0: "The image shows a car moving left.",
        1: "The image shows a car moving right.",
        2: "The image shows a dark disc near the centre.",
        3: "The image shows a bright edge.",
        4: "A fan spins in the lower right corner.",
        5: "Two people walk past a door.",
        6: "Two people walk past a door.",  # the same text on another frame
        7: "I'm sorry, but I can't help with that.",
        8: "Please provide the image you would like me to describe.",
        9: "",
    }
    s = caption_style("x/y", caps, truncated=[4])
    assert s.captions == 10
    assert s.top_opener == "the image shows a" and s.top_opener_share == pytest.approx(0.4)
    assert s.boilerplate_rate == pytest.approx(0.4)  # 4 of 10 share one opening (>= 10 %, >= 3)
    assert (s.refusals, s.asks_for_image, s.empty) == (1, 1, 1)
    assert s.refusal_rate == pytest.approx(0.3)
    assert s.identical_share == pytest.approx(0.2)  # frames 5 and 6
    assert s.truncated_rate == pytest.approx(0.1)
    n_words = [len(words(t)) for t in caps.values()]
    assert s.words_mean == pytest.approx(sum(n_words) / 10)
    assert s.vocabulary == len({w for t in caps.values() for w in words(t)})
    all_words = [w for t in caps.values() for w in words(t)]
    assert s.distinct_1 == pytest.approx(len(set(all_words)) / len(all_words))


def test_caption_style_of_nothing_is_zeros() -> None:
    s = caption_style("x/y", {})
    assert s.captions == 0 and s.words_mean == 0.0 and s.refusal_rate == 0.0


def test_agreement_per_pair_and_per_frame() -> None:
    table = {
        0: {"a": "a red car moves left", "b": "a red car moves left", "c": "blue sky"},
        1: {"a": "a red car moves left", "b": "a red car moves right", "c": None},
        2: {"a": "I'm sorry, but I can't help with that.", "b": "a fan", "c": "a fan"},
    }
    ag = agreement(table, ["a", "b", "c"])
    ab = ag.pair("a", "b")
    assert ab is not None and ab.frames == 2  # frame 2: a refused, so not counted
    assert ab.rouge_l == pytest.approx((1.0 + 0.8) / 2)
    assert ab.jaccard == pytest.approx((1.0 + 4 / 6) / 2)
    ac = ag.pair("c", "a")
    assert ac is not None and ac.frames == 1 and ac.rouge_l == 0.0
    bc = ag.pair("b", "c")
    assert bc is not None and bc.frames == 2 and bc.rouge_l == pytest.approx(0.5)
    # Per frame: a missing or refused caption scores 0 against the others.
    assert ag.per_frame[0] == pytest.approx(1 / 3)
    assert ag.per_frame[1] == pytest.approx(0.8 / 3)
    assert ag.per_frame[2] == pytest.approx(1 / 3)
    assert min(ag.per_frame, key=ag.per_frame.get) == 1
