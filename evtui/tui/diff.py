"""Word-level comparison of captions: which words only one provider used, and how far apart.

Captions are compared word by word (case and punctuation ignored) with difflib's
alignment, so a word counts as shared only where it lines up with the other caption,
not merely if it appears somewhere in it. A word is marked when no other caption
shares it: with two providers that is exactly the difference, with more it shows what
each one alone said.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from difflib import SequenceMatcher
from typing import Any

_TOKEN = re.compile(r"\S+|\s+")
_PUNCT = string.punctuation + "“”‘’«»…–—"
# Words too common to say anything about agreement.
STOPWORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "and",
        "or",
        "of",
        "in",
        "on",
        "at",
        "to",
        "with",
        "from",
        "by",
        "as",
        "is",
        "are",
        "was",
        "be",
        "it",
        "its",
        "this",
        "that",
        "there",
        "some",
        "about",
        "into",
        "than",
        "then",
        "which",
        "while",
        "for",
    }
)
DISAGREE_BELOW = 0.35  # content-word overlap under which two captions disagree


def tokens(text: str) -> list[str]:
    """Words and the whitespace between them, so joining them gives `text` back."""
    return _TOKEN.findall(text)


def norm(word: str) -> str:
    return word.strip(_PUNCT).lower()


def _words(toks: list[str]) -> tuple[list[int], list[str]]:
    idx = [i for i, t in enumerate(toks) if not t.isspace()]
    return idx, [norm(toks[i]) for i in idx]


def unique_words(captions: Mapping[str, str]) -> dict[str, list[tuple[str, bool]]]:
    """Per caption: its tokens, each flagged True when no other caption shares that word."""
    split = {k: tokens(v) for k, v in captions.items()}
    words = {k: _words(t) for k, t in split.items()}
    out: dict[str, list[tuple[str, bool]]] = {}
    for k, toks in split.items():
        idx, mine = words[k]
        shared = [False] * len(mine)
        others = [w for o, (_, w) in words.items() if o != k]
        for theirs in others:
            sm = SequenceMatcher(None, mine, theirs, autojunk=False)
            for a, _, size in sm.get_matching_blocks():
                for j in range(a, a + size):
                    shared[j] = True
        flag = dict.fromkeys(range(len(toks)), False)
        if others:
            for j, i in enumerate(idx):
                flag[i] = not shared[j] and bool(mine[j])
        out[k] = [(t, flag[i]) for i, t in enumerate(toks)]
    return out


_WORD = re.compile(r"\w+")


def content_words(text: str) -> frozenset[str]:
    """Lower-cased words minus stopwords: what two captions must share to agree."""
    return frozenset(_WORD.findall(text.lower())) - STOPWORDS


def agreement(captions: Mapping[str, str], words: Any = content_words) -> float | None:
    """The lowest pairwise overlap (Jaccard) of content words; None with fewer than two.

    `words` maps a caption to its word set (a cache may stand in for content_words)."""
    sets = [words(c) for c in captions.values() if c]
    if len(sets) < 2:
        return None
    worst = 1.0
    for i, a in enumerate(sets):
        for b in sets[i + 1 :]:
            union = a | b
            worst = min(worst, len(a & b) / len(union) if union else 1.0)
    return worst


def disagree(captions: Mapping[str, str], words: Any = content_words) -> bool:
    score = agreement(captions, words)
    return score is not None and score < DISAGREE_BELOW


__all__ = ["agreement", "content_words", "disagree", "tokens", "unique_words"]
